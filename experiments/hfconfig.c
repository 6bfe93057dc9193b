/* hfconfig.c -- `randlora params --config / --weights`: a Hugging Face
 * model's linear modules from its config.json or its safetensors headers,
 * PEFT's target_modules rules, and params.c's tables for the matched
 * modules (hfconfig.h has the layouts and rules). */
#include "hfconfig.h"

#include <ctype.h>
#include <inttypes.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commands.h"
#include "io/rl_json.h"
#include "io/rl_st_header.h"

/* ---- the module list ---- */

void hf_model_free(hf_model *m)
{
    if (!m) return;
    free(m->m);
    memset(m, 0, sizeof *m);
}

static rl_status add(hf_model *m, int d_out, int d_in, bool conv1d, bool head, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static rl_status add(hf_model *m, int d_out, int d_in, bool conv1d, bool head, const char *fmt, ...)
{
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 64;
        hf_module *p = realloc(m->m, (size_t)cap * sizeof *p);
        if (!p) return rl_fail(RL_ENOMEM, "out of memory for %d modules", cap);
        m->m = p;
        m->cap = cap;
    }
    hf_module *x = &m->m[m->n];
    memset(x, 0, sizeof *x);
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(x->name, sizeof x->name, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof x->name)
        return rl_fail(RL_EINVAL, "module name '%s...' is longer than %d characters", x->name, HF_MAX_NAME - 1);
    x->d_out = d_out;
    x->d_in = d_in;
    x->conv1d = conv1d;
    x->head = head;
    m->n++;
    return RL_OK;
}

/* ---- config.json ---- */

/* A positive size field (dims, heads, layers). */
static rl_status dim(const rl_json *j, const char *key, int *out)
{
    long long v;
    RL_TRY(rl_json_int(j, key, 1, PARAMS_MAX_DIM, &v));
    *out = (int)v;
    return RL_OK;
}

/* An optional size field: *out keeps its default when absent or null. */
static rl_status dim_opt(const rl_json *j, const char *key, int *out)
{
    return rl_json_has(j, key) ? dim(j, key, out) : RL_OK;
}

static rl_status bool_opt(const rl_json *j, const char *key, bool *out)
{
    return rl_json_has(j, key) ? rl_json_bool(j, key, out) : RL_OK;
}

/* architectures[0], or "" */
static const char *first_arch(const rl_json *j)
{
    const char *a = "";
    if (rl_json_has(j, "architectures") && rl_json_str_at(j, "architectures", 0, &a) != RL_OK) a = "";
    return a;
}

/* Number of labels of a classification head: id2label's size, else
 * num_labels, else transformers' default 2. */
static rl_status n_labels(const rl_json *j, int *out)
{
    *out = 2;
    if (rl_json_has(j, "id2label")) {
        size_t n;
        RL_TRY(rl_json_size(j, "id2label", &n));
        if (n < 1 || n > PARAMS_MAX_DIM)
            return rl_fail(RL_EFORMAT, "%s: field 'id2label' has %zu labels", rl_json_path(j), n);
        *out = (int)n;
        return RL_OK;
    }
    return dim_opt(j, "num_labels", out);
}

/* Attention geometry of a decoder: heads, kv heads, head_dim. */
static rl_status attention(const rl_json *j, int h, int *heads, int *kv, int *hd)
{
    RL_TRY(dim(j, "num_attention_heads", heads));
    *kv = *heads;
    RL_TRY(dim_opt(j, "num_key_value_heads", kv));
    if (rl_json_has(j, "head_dim")) return dim(j, "head_dim", hd);
    if (h % *heads)
        return rl_fail(RL_EFORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d (and no head_dim)",
                       rl_json_path(j), h, *heads);
    *hd = h / *heads;
    return RL_OK;
}

/* LLaMA-style decoders (and Phi-3's fused projections). */
static rl_status decoder(hf_model *m, const rl_json *j, bool phi3, bool tie_default, const char *name)
{
    int h, inter, L, heads, kv = 0, hd = 0, vocab;
    bool tie = tie_default;
    RL_TRY(dim(j, "hidden_size", &h));
    RL_TRY(dim(j, "intermediate_size", &inter));
    RL_TRY(dim(j, "num_hidden_layers", &L));
    RL_TRY(attention(j, h, &heads, &kv, &hd));
    RL_TRY(dim(j, "vocab_size", &vocab));
    RL_TRY(bool_opt(j, "tie_word_embeddings", &tie));
    if ((long long)(heads + 2 * kv) * hd > PARAMS_MAX_DIM || 2LL * inter > PARAMS_MAX_DIM)
        return rl_fail(RL_EFORMAT, "%s: projection sizes exceed %d", rl_json_path(j), PARAMS_MAX_DIM);
    for (int i = 0; i < L; i++) {
        const char *p = "model.layers";
        if (phi3) {
            RL_TRY(add(m, (heads + 2 * kv) * hd, h, false, false, "%s.%d.self_attn.qkv_proj", p, i));
            RL_TRY(add(m, h, heads * hd, false, false, "%s.%d.self_attn.o_proj", p, i));
            RL_TRY(add(m, 2 * inter, h, false, false, "%s.%d.mlp.gate_up_proj", p, i));
            RL_TRY(add(m, h, inter, false, false, "%s.%d.mlp.down_proj", p, i));
        } else {
            RL_TRY(add(m, heads * hd, h, false, false, "%s.%d.self_attn.q_proj", p, i));
            RL_TRY(add(m, kv * hd, h, false, false, "%s.%d.self_attn.k_proj", p, i));
            RL_TRY(add(m, kv * hd, h, false, false, "%s.%d.self_attn.v_proj", p, i));
            RL_TRY(add(m, h, heads * hd, false, false, "%s.%d.self_attn.o_proj", p, i));
            RL_TRY(add(m, inter, h, false, false, "%s.%d.mlp.gate_proj", p, i));
            RL_TRY(add(m, inter, h, false, false, "%s.%d.mlp.up_proj", p, i));
            RL_TRY(add(m, h, inter, false, false, "%s.%d.mlp.down_proj", p, i));
        }
    }
    RL_TRY(add(m, vocab, h, false, true, "lm_head"));
    m->m[m->n - 1].tied = tie;
    snprintf(m->desc, sizeof m->desc, "%s: %d layers, hidden %d, MLP %d, %d heads, %d KV heads of %d, vocab %d%s",
             name, L, h, inter, heads, kv, hd, vocab, tie ? ", lm_head tied to the input embedding" : "");
    return RL_OK;
}

static rl_status gpt2(hf_model *m, const rl_json *j)
{
    int h, L, heads, vocab;
    bool tie = true; /* GPT2LMHeadModel ties lm_head to wte */
    RL_TRY(dim(j, rl_json_has(j, "n_embd") ? "n_embd" : "hidden_size", &h));
    RL_TRY(dim(j, rl_json_has(j, "n_layer") ? "n_layer" : "num_hidden_layers", &L));
    RL_TRY(dim(j, rl_json_has(j, "n_head") ? "n_head" : "num_attention_heads", &heads));
    RL_TRY(dim(j, "vocab_size", &vocab));
    RL_TRY(bool_opt(j, "tie_word_embeddings", &tie));
    int inner = 4 * h; /* n_inner: null means 4 * n_embd */
    RL_TRY(dim_opt(j, "n_inner", &inner));
    if (h % heads) return rl_fail(RL_EFORMAT, "%s: n_embd %d is not a multiple of n_head %d", rl_json_path(j), h, heads);
    for (int i = 0; i < L; i++) {
        RL_TRY(add(m, 3 * h, h, true, false, "transformer.h.%d.attn.c_attn", i));
        RL_TRY(add(m, h, h, true, false, "transformer.h.%d.attn.c_proj", i));
        RL_TRY(add(m, inner, h, true, false, "transformer.h.%d.mlp.c_fc", i));
        RL_TRY(add(m, h, inner, true, false, "transformer.h.%d.mlp.c_proj", i));
    }
    RL_TRY(add(m, vocab, h, false, true, "lm_head"));
    m->m[m->n - 1].tied = tie;
    snprintf(m->desc, sizeof m->desc, "GPT-2: %d layers, n_embd %d, MLP %d, %d heads, vocab %d (Conv1D weights "
             "stored (in, out))", L, h, inner, heads, vocab);
    return RL_OK;
}

static rl_status gpt_neox(hf_model *m, const rl_json *j)
{
    int h, inter, L, heads, vocab;
    bool tie = false;
    RL_TRY(dim(j, "hidden_size", &h));
    RL_TRY(dim(j, "intermediate_size", &inter));
    RL_TRY(dim(j, "num_hidden_layers", &L));
    RL_TRY(dim(j, "num_attention_heads", &heads));
    RL_TRY(dim(j, "vocab_size", &vocab));
    RL_TRY(bool_opt(j, "tie_word_embeddings", &tie));
    for (int i = 0; i < L; i++) {
        RL_TRY(add(m, 3 * h, h, false, false, "gpt_neox.layers.%d.attention.query_key_value", i));
        RL_TRY(add(m, h, h, false, false, "gpt_neox.layers.%d.attention.dense", i));
        RL_TRY(add(m, inter, h, false, false, "gpt_neox.layers.%d.mlp.dense_h_to_4h", i));
        RL_TRY(add(m, h, inter, false, false, "gpt_neox.layers.%d.mlp.dense_4h_to_h", i));
    }
    RL_TRY(add(m, vocab, h, false, true, "embed_out"));
    m->m[m->n - 1].tied = tie;
    snprintf(m->desc, sizeof m->desc, "GPT-NeoX: %d layers, hidden %d, MLP %d, %d heads, vocab %d", L, h, inter,
             heads, vocab);
    return RL_OK;
}

/* ViT and DINOv2 encoders (ViTModel / Dinov2Model, or *ForImageClassification). */
static rl_status vit(hf_model *m, const rl_json *j, bool dinov2)
{
    int h, L, heads, inter = 0, labels = 0;
    RL_TRY(dim(j, "hidden_size", &h));
    RL_TRY(dim(j, "num_hidden_layers", &L));
    RL_TRY(dim(j, "num_attention_heads", &heads));
    bool cls = strstr(m->arch, "ForImageClassification") != NULL, swiglu = false;
    if (cls) RL_TRY(n_labels(j, &labels));
    if (dinov2) {
        int ratio = 4;
        RL_TRY(dim_opt(j, "mlp_ratio", &ratio));
        RL_TRY(bool_opt(j, "use_swiglu_ffn", &swiglu));
        inter = h * ratio;
        if (swiglu) inter = (inter * 2 / 3 + 7) / 8 * 8; /* Dinov2SwiGLUFFN */
    } else {
        RL_TRY(dim(j, "intermediate_size", &inter));
    }
    const char *p = cls ? (dinov2 ? "dinov2." : "vit.") : "";
    for (int i = 0; i < L; i++) {
        RL_TRY(add(m, h, h, false, false, "%sencoder.layer.%d.attention.attention.query", p, i));
        RL_TRY(add(m, h, h, false, false, "%sencoder.layer.%d.attention.attention.key", p, i));
        RL_TRY(add(m, h, h, false, false, "%sencoder.layer.%d.attention.attention.value", p, i));
        RL_TRY(add(m, h, h, false, false, "%sencoder.layer.%d.attention.output.dense", p, i));
        if (!dinov2) {
            RL_TRY(add(m, inter, h, false, false, "%sencoder.layer.%d.intermediate.dense", p, i));
            RL_TRY(add(m, h, inter, false, false, "%sencoder.layer.%d.output.dense", p, i));
        } else if (swiglu) {
            RL_TRY(add(m, 2 * inter, h, false, false, "%sencoder.layer.%d.mlp.weights_in", p, i));
            RL_TRY(add(m, h, inter, false, false, "%sencoder.layer.%d.mlp.weights_out", p, i));
        } else {
            RL_TRY(add(m, inter, h, false, false, "%sencoder.layer.%d.mlp.fc1", p, i));
            RL_TRY(add(m, h, inter, false, false, "%sencoder.layer.%d.mlp.fc2", p, i));
        }
    }
    if (cls) RL_TRY(add(m, labels, dinov2 ? 2 * h : h, false, false, "classifier"));
    else if (!dinov2) RL_TRY(add(m, h, h, false, false, "pooler.dense")); /* ViTModel's pooler */
    snprintf(m->desc, sizeof m->desc, "%s: %d layers, hidden %d, MLP %d, %d heads%s", dinov2 ? "DINOv2" : "ViT", L,
             h, inter, heads, cls ? ", classifier head" : "");
    return RL_OK;
}

/* One CLIP tower under `prefix` from the fields under `sub` ("" or "vision_config."). */
static rl_status clip_tower(hf_model *m, const rl_json *j, const char *sub, const char *prefix, int *h_out,
                            int *L_out)
{
    char k[96];
    int h, inter, L;
    snprintf(k, sizeof k, "%shidden_size", sub);
    RL_TRY(dim(j, k, &h));
    snprintf(k, sizeof k, "%sintermediate_size", sub);
    RL_TRY(dim(j, k, &inter));
    snprintf(k, sizeof k, "%snum_hidden_layers", sub);
    RL_TRY(dim(j, k, &L));
    for (int i = 0; i < L; i++) {
        static const char *const att[4] = {"k_proj", "v_proj", "q_proj", "out_proj"}; /* CLIPAttention's order */
        for (int a = 0; a < 4; a++)
            RL_TRY(add(m, h, h, false, false, "%s.encoder.layers.%d.self_attn.%s", prefix, i, att[a]));
        RL_TRY(add(m, inter, h, false, false, "%s.encoder.layers.%d.mlp.fc1", prefix, i));
        RL_TRY(add(m, h, inter, false, false, "%s.encoder.layers.%d.mlp.fc2", prefix, i));
    }
    *h_out = h;
    *L_out = L;
    return RL_OK;
}

static rl_status clip(hf_model *m, const rl_json *j, bool vision_only)
{
    int hv, Lv, ht = 0, Lt = 0, proj = 512; /* CLIPConfig's default projection_dim */
    RL_TRY(dim_opt(j, "projection_dim", &proj));
    if (vision_only) {
        RL_TRY(clip_tower(m, j, "", "vision_model", &hv, &Lv));
        if (strstr(m->arch, "WithProjection")) RL_TRY(add(m, proj, hv, false, false, "visual_projection"));
        snprintf(m->desc, sizeof m->desc, "CLIP vision tower: %d layers, hidden %d", Lv, hv);
        return RL_OK;
    }
    RL_TRY(clip_tower(m, j, "text_config.", "text_model", &ht, &Lt));
    RL_TRY(clip_tower(m, j, "vision_config.", "vision_model", &hv, &Lv));
    RL_TRY(add(m, proj, hv, false, false, "visual_projection"));
    RL_TRY(add(m, proj, ht, false, false, "text_projection"));
    snprintf(m->desc, sizeof m->desc, "CLIP: vision %d layers x hidden %d, text %d layers x hidden %d, projections to %d",
             Lv, hv, Lt, ht, proj);
    return RL_OK;
}

static const char *const supported =
    "llama, mistral, qwen2, qwen3, gemma, gemma2, phi3, gpt2, gpt_neox, vit, dinov2, clip, clip_vision_model";

static rl_status from_config(hf_model *m, const rl_json *j)
{
    const char *mt;
    RL_TRY(rl_json_str(j, "model_type", &mt));
    snprintf(m->model_type, sizeof m->model_type, "%s", mt);
    snprintf(m->arch, sizeof m->arch, "%s", first_arch(j));
    static const struct { const char *type, *name, *arch; bool tie; } dec[] = {
        {"llama", "Llama", "LlamaForCausalLM", false},       {"mistral", "Mistral", "MistralForCausalLM", false},
        {"qwen2", "Qwen2", "Qwen2ForCausalLM", false},       {"qwen3", "Qwen3", "Qwen3ForCausalLM", false},
        {"gemma", "Gemma", "GemmaForCausalLM", true},        {"gemma2", "Gemma2", "Gemma2ForCausalLM", true},
        {"phi3", "Phi-3", "Phi3ForCausalLM", false},
    };
    for (size_t i = 0; i < sizeof dec / sizeof dec[0]; i++)
        if (strcmp(mt, dec[i].type) == 0) {
            if (!m->arch[0]) snprintf(m->arch, sizeof m->arch, "%s", dec[i].arch);
            return decoder(m, j, strcmp(mt, "phi3") == 0, dec[i].tie, dec[i].name);
        }
    if (strcmp(mt, "gpt2") == 0) return gpt2(m, j);
    if (strcmp(mt, "gpt_neox") == 0) return gpt_neox(m, j);
    if (strcmp(mt, "vit") == 0) return vit(m, j, false);
    if (strcmp(mt, "dinov2") == 0) return vit(m, j, true);
    if (strcmp(mt, "clip") == 0) return clip(m, j, false);
    if (strcmp(mt, "clip_vision_model") == 0) return clip(m, j, true);
    return rl_fail(RL_EFORMAT, "%s: model_type '%s' is not supported (supported: %s; or read the modules from "
                   "the checkpoint with --weights)", rl_json_path(j), mt, supported);
}

rl_status hf_model_from_config(hf_model *out, const char *path)
{
    memset(out, 0, sizeof *out);
    rl_json *j;
    RL_TRY(rl_json_load(&j, path));
    snprintf(out->source, sizeof out->source, "%s", path);
    rl_status st = from_config(out, j);
    rl_json_free(j);
    if (st != RL_OK) hf_model_free(out);
    return st;
}

/* ---- checkpoints ---- */

static bool is_float(const char *dt)
{
    return !strcmp(dt, "F64") || !strcmp(dt, "F32") || !strcmp(dt, "F16") || !strcmp(dt, "BF16") ||
           !strncmp(dt, "F8_", 3);
}

/* Last dotted part of a name. */
static const char *leaf(const char *name)
{
    const char *d = strrchr(name, '.');
    return d ? d + 1 : name;
}

/* A 2-D weight that is an embedding, judged by its module's last name. */
static bool embedding_by_name(const char *module)
{
    const char *l = leaf(module);
    return !strncmp(l, "embed", 5) || strstr(l, "embedding") || !strcmp(l, "wte") || !strcmp(l, "wpe");
}

/* Do checkpoint module c and config module d name the same module, up to a
 * leading prefix on either side ("h.0.attn" vs "transformer.h.0.attn")? */
static bool same_module(const char *c, const char *d)
{
    size_t a = strlen(c), b = strlen(d);
    if (a == b) return strcmp(c, d) == 0;
    const char *lo = a < b ? c : d, *hi = a < b ? d : c;
    size_t n = a < b ? a : b, N = a < b ? b : a;
    return strcmp(hi + N - n, lo) == 0 && hi[N - n - 1] == '.';
}

/* Module name of a "<module>.weight" tensor into buf; false otherwise. */
static bool weight_module(const char *tensor, char *buf, size_t len)
{
    size_t n = strlen(tensor);
    if (n <= 7 || strcmp(tensor + n - 7, ".weight") != 0 || n - 7 >= len) return false;
    memcpy(buf, tensor, n - 7);
    buf[n - 7] = '\0';
    return true;
}

/* Check every config module against the checkpoint; names become the
 * checkpoint's. */
static rl_status check_against(hf_model *out, const rl_st_checkpoint *c, const hf_model *cfg, const char *path)
{
    for (int k = 0; k < cfg->n; k++) {
        const hf_module *d = &cfg->m[k];
        long hit = -1;
        char mod[HF_MAX_NAME];
        for (size_t i = 0; i < rl_st_checkpoint_count(c) && hit < 0; i++)
            if (weight_module(rl_st_checkpoint_at(c, i)->name, mod, sizeof mod) && same_module(mod, d->name))
                hit = (long)i;
        if (hit < 0) {
            if (d->head && d->tied) continue; /* a tied head has no weight of its own */
            return rl_fail(RL_ENOTFOUND, "%s: no tensor \"%s.weight\" (module of %s, %d x %d) -- is this the "
                           "config of this checkpoint?", path, d->name, cfg->source, d->d_out, d->d_in);
        }
        const rl_st_entry *e = rl_st_checkpoint_at(c, (size_t)hit);
        int64_t r0 = d->conv1d ? d->d_in : d->d_out, r1 = d->conv1d ? d->d_out : d->d_in;
        if (e->ndim != 2 || e->shape[0] != r0 || e->shape[1] != r1)
            return rl_fail(RL_ESHAPE, "%s: tensor \"%s\" has shape [%lld%s%lld] but %s gives module %s (out, in) = "
                           "(%d, %d)%s", rl_st_checkpoint_file_of(c, (size_t)hit), e->name,
                           (long long)e->shape[0], e->ndim > 1 ? ", " : "", e->ndim > 1 ? (long long)e->shape[1] : 0LL,
                           cfg->source, d->name, d->d_out, d->d_in, d->conv1d ? ", stored (in, out) as a Conv1D" : "");
        hf_module *x = &out->m[k];
        weight_module(e->name, x->name, sizeof x->name);
    }
    return RL_OK;
}

static rl_status from_checkpoint(hf_model *out, const rl_st_checkpoint *c, const char *path)
{
    for (size_t i = 0; i < rl_st_checkpoint_count(c); i++) {
        const rl_st_entry *e = rl_st_checkpoint_at(c, i);
        char mod[HF_MAX_NAME];
        if (e->ndim != 2 || !is_float(e->dtype) || !weight_module(e->name, mod, sizeof mod)) continue;
        if (e->shape[0] < 1 || e->shape[1] < 1 || e->shape[0] > PARAMS_MAX_DIM || e->shape[1] > PARAMS_MAX_DIM)
            return rl_fail(RL_EFORMAT, "%s: tensor \"%s\" has shape [%lld, %lld] (each dim must be in [1, %d])",
                           rl_st_checkpoint_file_of(c, i), e->name, (long long)e->shape[0], (long long)e->shape[1],
                           PARAMS_MAX_DIM);
        const char *l = leaf(mod);
        bool head = !strcmp(mod, "lm_head") || !strcmp(l, "lm_head") || !strcmp(l, "embed_out");
        if (!head && embedding_by_name(mod)) {
            out->n_skipped++;
            continue;
        }
        RL_TRY(add(out, (int)e->shape[0], (int)e->shape[1], false, head, "%s", mod));
    }
    if (out->n == 0)
        return rl_fail(RL_ENOTFOUND, "%s: no 2-D floating-point \"<module>.weight\" tensor in the checkpoint", path);
    snprintf(out->desc, sizeof out->desc, "checkpoint: %d linear-module candidates from %zu tensors in %zu file%s "
             "(%d 2-D weights set aside as embeddings by name)", out->n, rl_st_checkpoint_count(c),
             rl_st_checkpoint_n_files(c), rl_st_checkpoint_n_files(c) > 1 ? "s" : "", out->n_skipped);
    return RL_OK;
}

rl_status hf_model_from_weights(hf_model *out, const char *path, const hf_model *cfg)
{
    memset(out, 0, sizeof *out);
    rl_st_checkpoint *c;
    RL_TRY(rl_st_checkpoint_scan(&c, path));
    rl_status st = RL_OK;
    if (cfg) {
        *out = *cfg; /* source: the config's path */
        out->m = malloc((size_t)(cfg->n ? cfg->n : 1) * sizeof *out->m);
        out->cap = cfg->n;
        if (!out->m) st = rl_fail(RL_ENOMEM, "out of memory");
        else memcpy(out->m, cfg->m, (size_t)cfg->n * sizeof *out->m);
        if (st == RL_OK) st = check_against(out, c, cfg, path);
        size_t u = strlen(out->source);
        snprintf(out->source + u, sizeof out->source - u, " + %.400s", path);
    } else {
        snprintf(out->arch, sizeof out->arch, "checkpoint");
        snprintf(out->source, sizeof out->source, "%s", path);
        st = from_checkpoint(out, c, path);
    }
    out->read_bytes = rl_st_checkpoint_read_bytes(c);
    out->data_bytes = rl_st_checkpoint_data_bytes(c);
    out->n_files = (int)rl_st_checkpoint_n_files(c);
    rl_st_checkpoint_free(c);
    if (st != RL_OK) hf_model_free(out);
    return st;
}

/* ---- PEFT's target rules ---- */

bool hf_list_item_matches(const char *key, const char *t, size_t n)
{
    size_t k = strlen(key);
    if (k == n) return strncmp(key, t, n) == 0;
    return k > n && strncmp(key + k - n, t, n) == 0 && key[k - n - 1] == '.';
}

/* Python re syntax that POSIX ERE reads differently or not at all. */
static const char *python_only(const char *re)
{
    for (const char *p = re; *p; p++) {
        if (p[0] == '\\' && (p[1] == 'd' || p[1] == 'D')) return "\\d (write [0-9])";
        if (p[0] == '(' && p[1] == '?') return "(?...) groups (write plain (...))";
        if ((p[0] == '*' || p[0] == '+' || p[0] == '?' || p[0] == '}') && p[1] == '?')
            return "lazy quantifiers (*?, +?, ?" "?): a full match does not need them";
        if (p[0] == '\\' && p[1]) p++;
    }
    return NULL;
}

static rl_status match_regex(const hf_model *m, const char *spec, bool *matched)
{
    const char *bad = python_only(spec);
    if (bad)
        return rl_fail(RL_EINVAL, "--target-regex '%s': %s is Python regex syntax; this is a POSIX extended "
                       "regular expression matched against the whole module name", spec, bad);
    size_t n = strlen(spec);
    char *anchored = malloc(n + 5);
    if (!anchored) return rl_fail(RL_ENOMEM, "out of memory");
    snprintf(anchored, n + 5, "^(%s)$", spec); /* re.fullmatch */
    regex_t re;
    int rc = regcomp(&re, anchored, REG_EXTENDED | REG_NOSUB);
    free(anchored);
    if (rc != 0) {
        char msg[160];
        regerror(rc, &re, msg, sizeof msg);
        return rl_fail(RL_EINVAL, "--target-regex '%s' is not a valid POSIX extended regular expression: %s", spec, msg);
    }
    for (int i = 0; i < m->n; i++) matched[i] = regexec(&re, m->m[i].name, 0, NULL, 0) == 0;
    regfree(&re);
    return RL_OK;
}

static rl_status match_list(const hf_model *m, const char *spec, bool *matched)
{
    const char *p = spec;
    int item = 0;
    for (int i = 0; i < m->n; i++) matched[i] = false;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && isspace((unsigned char)*p)) p++, n--;
        while (n && isspace((unsigned char)p[n - 1])) n--;
        item++;
        if (n == 0) return rl_fail(RL_EINVAL, "--targets '%s': item %d is empty", spec, item);
        if (n == 10 && strncasecmp(p, "all-linear", 10) == 0)
            return rl_fail(RL_EINVAL, "--targets '%s': all-linear is a target on its own, not a list item", spec);
        for (int i = 0; i < m->n; i++)
            if (hf_list_item_matches(m->m[i].name, p, n)) matched[i] = true;
        if (!e) break;
        p = e + 1;
    }
    return RL_OK;
}

rl_status hf_match(const hf_model *m, hf_targets_kind kind, const char *spec, bool *matched)
{
    if (!m || !spec || !matched) return rl_fail(RL_EINVAL, "hf_match: NULL argument");
    const char *t = spec;
    while (isspace((unsigned char)*t)) t++;
    size_t n = strlen(t);
    while (n && isspace((unsigned char)t[n - 1])) n--;
    if (kind == HF_TARGETS_LIST && n == 10 && strncasecmp(t, "all-linear", 10) == 0) {
        /* PEFT: every Linear/Conv1D but model.get_output_embeddings() */
        for (int i = 0; i < m->n; i++) matched[i] = !m->m[i].head;
    } else if (kind == HF_TARGETS_LIST) {
        RL_TRY(match_list(m, spec, matched));
    } else {
        RL_TRY(match_regex(m, spec, matched));
    }
    for (int i = 0; i < m->n; i++)
        if (matched[i]) return RL_OK;
    return rl_fail(RL_ENOTFOUND, "no linear module of %s matches the targets %s'%s' (%s); module names look like "
                   "'%s'", m->source, kind == HF_TARGETS_REGEX ? "regex " : "", spec,
                   kind == HF_TARGETS_REGEX ? "re.fullmatch against the whole name"
                                            : "a list item must equal a name or end it after a '.'",
                   m->n ? m->m[0].name : "?");
}

/* ---- grouping ---- */

/* name with every all-digit dotted part replaced by '*'; *index gets the
 * first such number (-1 if none). */
static void pattern_of(const char *name, char *out, size_t len, long *index)
{
    size_t j = 0;
    *index = -1;
    for (const char *p = name; *p && j + 1 < len;) {
        const char *e = strchr(p, '.');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        bool digits = n > 0;
        for (size_t i = 0; i < n; i++) digits &= isdigit((unsigned char)p[i]) != 0;
        if (digits) {
            if (*index < 0) *index = strtol(p, NULL, 10);
            out[j++] = '*';
        } else {
            for (size_t i = 0; i < n && j + 1 < len; i++) out[j++] = p[i];
        }
        if (!e) break;
        if (j + 1 < len) out[j++] = '.';
        p = e + 1;
    }
    out[j] = '\0';
}

/* Flush the run [lo, hi] into the range list buf ("0-3,5"). */
static void range_end(char *buf, size_t len, long lo, long hi)
{
    if (lo < 0) return;
    size_t u = strlen(buf);
    if (hi > lo) snprintf(buf + u, len - u, "%s%ld-%ld", u ? "," : "", lo, hi);
    else snprintf(buf + u, len - u, "%s%ld", u ? "," : "", lo);
}

/* Add index v (indices arrive in ascending order) to the run [*lo, *hi]. */
static void range_add(char *buf, size_t len, long v, long *lo, long *hi)
{
    if (*lo >= 0 && v == *hi + 1) {
        *hi = v;
        return;
    }
    range_end(buf, len, *lo, *hi);
    *lo = *hi = v;
}

rl_status hf_group(const hf_model *m, const bool *matched, hf_groups *g)
{
    memset(g, 0, sizeof *g);
    long lo[PARAMS_MAX_MODULES], hi[PARAMS_MAX_MODULES];
    for (int i = 0; i < m->n; i++) {
        if (!matched[i]) continue;
        char pat[HF_MAX_NAME];
        long idx;
        pattern_of(m->m[i].name, pat, sizeof pat, &idx);
        int k = 0;
        while (k < g->sel.n && !(strcmp(g->names[k], pat) == 0 && g->sel.m[k].d_out == m->m[i].d_out &&
                                 g->sel.m[k].d_in == m->m[i].d_in))
            k++;
        if (k == g->sel.n) {
            if (k == PARAMS_MAX_MODULES)
                return rl_fail(RL_EINVAL, "the targets match more than %d kinds of module (name pattern and shape)",
                               PARAMS_MAX_MODULES);
            snprintf(g->names[k], sizeof g->names[k], "%s", pat);
            g->sel.m[k] = (params_module){.name = g->names[k], .path = g->names[k], .d_out = m->m[i].d_out,
                                          .d_in = m->m[i].d_in, .count = 0};
            lo[k] = hi[k] = -1;
            g->sel.n++;
        }
        if (g->sel.m[k].count >= PARAMS_MAX_COUNT)
            return rl_fail(RL_EINVAL, "more than %d modules named %s", PARAMS_MAX_COUNT, pat);
        g->sel.m[k].count++;
        if (idx >= 0) range_add(g->layers[k], sizeof g->layers[k], idx, &lo[k], &hi[k]);
    }
    for (int k = 0; k < g->sel.n; k++) {
        range_end(g->layers[k], sizeof g->layers[k], lo[k], hi[k]);
        /* the targets field of a CSV row: distinct last names joined by '+' */
        const char *l = leaf(g->names[k]);
        bool seen = false;
        for (int q = 0; q < k; q++) seen |= strcmp(leaf(g->names[q]), l) == 0;
        if (!seen) {
            size_t u = strlen(g->sel.targets);
            snprintf(g->sel.targets + u, sizeof g->sel.targets - u, "%s%s", u ? "+" : "", l);
        }
    }
    return RL_OK;
}

/* ---- the command ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: randlora params --config CONFIG.json [--weights W] (--targets LIST | --target-regex RE)\n"
            "                       [--method M] [--r R] [--csv] [--modules]\n"
            "       randlora params --weights MODEL.safetensors|MODEL.safetensors.index.json (--targets ...)\n"
            "  The linear modules of a Hugging Face model from its files alone: a transformers\n"
            "  config.json (model_type %s),\n"
            "  or a checkpoint's safetensors headers (never its data; a sharded checkpoint through its\n"
            "  index). With both, the config's modules are checked against the checkpoint.\n"
            "  Targets follow PEFT's target_modules: --targets q_proj,v_proj is a list (a module matches\n"
            "  an item equal to its name or ending it after a '.'), --targets all-linear every linear\n"
            "  module but the output head, --target-regex RE a string (a POSIX extended regex that must\n"
            "  match the whole name, as re.fullmatch). The matched modules are printed, then the\n"
            "  trainable parameters, shared bases and checkpoint sizes: for --method M --r R, or a table\n"
            "  over lora, vera, randlora and r = 8..256 (either flag narrows it).\n"
            "  --modules  list every matched module instead of one line per kind\n"
            "  --csv      '" PARAMS_CSV_HEADER "' rows; arch is the file read\n",
            supported);
}

/* argv parsing kept local (issue 15 moves flags to experiments/flags.h). */
typedef struct {
    const char *config, *weights, *targets, *regex, *method, *r, *bases;
    bool csv, modules;
} hf_args;

static int parse_args(int argc, char **argv, hf_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char **val = NULL;
        if (!strcmp(f, "--config")) val = &a->config;
        else if (!strcmp(f, "--weights")) val = &a->weights;
        else if (!strcmp(f, "--targets")) val = &a->targets;
        else if (!strcmp(f, "--target-regex")) val = &a->regex;
        else if (!strcmp(f, "--method")) val = &a->method;
        else if (!strcmp(f, "--r")) val = &a->r;
        else if (!strcmp(f, "--bases")) val = &a->bases;
        else if (!strcmp(f, "--csv")) a->csv = true;
        else if (!strcmp(f, "--modules")) a->modules = true;
        else if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "randlora params: %s '%s' (with --config / --weights)\n",
                    strncmp(f, "--", 2) == 0 ? "unknown flag" : "unexpected argument", f);
            usage(stderr);
            return -1;
        }
        if (val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "randlora params: %s needs a value\n", f);
                return -1;
            }
            *val = argv[++i];
        }
    }
    if (!a->targets == !a->regex) {
        fprintf(stderr, "randlora params: give one of --targets LIST (or all-linear) and --target-regex RE\n");
        return -1;
    }
    return 1;
}

/* Positive integer <= max, digits only. */
static bool parse_int(const char *s, long max, int *out)
{
    char *end;
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 9) return false;
    long v = strtol(s, &end, 10);
    if (v < 1 || v > max) return false;
    *out = (int)v;
    return true;
}

static void print_model(const hf_model *m, const bool *matched, const hf_groups *g, const hf_args *a)
{
    int n = 0;
    for (int i = 0; i < m->n; i++) n += matched[i];
    printf("model    %s%s%s (%s)\n         %s\n", m->model_type, m->model_type[0] ? " " : "", m->arch, m->source,
           m->desc);
    if (m->read_bytes)
        printf("         safetensors headers only: %llu bytes read of %d file%s holding %llu bytes of tensors\n",
               m->read_bytes, m->n_files, m->n_files > 1 ? "s" : "", m->data_bytes);
    for (int i = 0; i < m->n; i++)
        if (m->m[i].head)
            printf("         output head %s (%d x %d%s): all-linear leaves it out, as PEFT does\n", m->m[i].name,
                   m->m[i].d_out, m->m[i].d_in, m->m[i].tied ? ", tied to the input embedding" : "");
    if (a->regex)
        printf("targets  regex '%s' (PEFT: a string, re.fullmatch on the whole module name)\n", a->regex);
    else
        printf("targets  %s (PEFT: %s)\n", a->targets,
               strcasecmp(a->targets, "all-linear") == 0
                   ? "every Linear/Conv1D module but the output embedding"
                   : "a list; a module matches an item equal to its name or ending it after a '.'");
    printf("matched  %d of %d linear modules\n", n, m->n);
    int w = 8;
    for (int i = 0; i < m->n; i++)
        if (matched[i] && (int)strlen(m->m[i].name) > w) w = (int)strlen(m->m[i].name);
    if (a->modules) {
        for (int i = 0; i < m->n; i++)
            if (matched[i])
                printf("  %-*s %7d x %-7d%s\n", w, m->m[i].name, m->m[i].d_out, m->m[i].d_in,
                       m->m[i].conv1d ? " (Conv1D, stored in x out)" : "");
    } else {
        for (int k = 0; k < g->sel.n; k++)
            printf("  %-*s %7d x %-7d x%-5d %s%s\n", w, g->names[k], g->sel.m[k].d_out, g->sel.m[k].d_in,
                   g->sel.m[k].count, g->layers[k][0] ? "* = " : "", g->layers[k]);
    }
    printf("\n");
}

int params_hf(int argc, char **argv)
{
    hf_args a;
    int pr = parse_args(argc, argv, &a);
    if (pr <= 0) return pr == 0 ? 0 : 2;
    rl_method method = RL_METHOD_RANDLORA;
    rl_bases_kind kind = RL_BASES_DENSE;
    int r = 0;
    if (a.method && rl_method_parse(a.method, &method) != RL_OK) {
        fprintf(stderr, "randlora params: --method: %s\n", rl_errmsg());
        return 2;
    } else if (a.r && !parse_int(a.r, PARAMS_MAX_DIM, &r)) {
        fprintf(stderr, "randlora params: --r '%s' is not an integer in [1, %d]\n", a.r, PARAMS_MAX_DIM);
        return 2;
    } else if (a.bases && rl_bases_kind_parse(a.bases, &kind) != RL_OK) {
        fprintf(stderr, "randlora params: --bases: %s\n", rl_errmsg());
        return 2;
    }

    hf_model cfg = {0}, m = {0};
    rl_status st = RL_OK;
    if (a.config) st = hf_model_from_config(&cfg, a.config);
    if (st == RL_OK && a.weights) st = hf_model_from_weights(&m, a.weights, a.config ? &cfg : NULL);
    else if (st == RL_OK) m = cfg, cfg = (hf_model){0};
    hf_model_free(&cfg);
    if (st != RL_OK) {
        fprintf(stderr, "randlora params: %s\n", rl_errmsg());
        return 2;
    }
    int rc = 0;
    bool *matched = calloc((size_t)m.n, sizeof *matched);
    hf_groups *g = malloc(sizeof *g);
    if (!matched || !g) {
        fprintf(stderr, "randlora params: out of memory\n");
        rc = 2;
    } else if (hf_match(&m, a.regex ? HF_TARGETS_REGEX : HF_TARGETS_LIST, a.regex ? a.regex : a.targets, matched) !=
                   RL_OK ||
               hf_group(&m, matched, g) != RL_OK) {
        fprintf(stderr, "randlora params: %s\n", rl_errmsg());
        rc = 2;
    }
    if (rc == 0) {
        char name[512];
        snprintf(name, sizeof name, "%s", a.config ? a.config : a.weights);
        for (char *p = name; *p; p++)
            if (*p == ',' || *p == '\n') *p = '_'; /* one CSV field */
        if (!a.csv) print_model(&m, matched, g, &a);
        if (a.method && a.r) {
            params_result res;
            if (params_count(method, r, g->sel.m, g->sel.n, &res) != RL_OK) {
                fprintf(stderr, "randlora params: %s\n", rl_errmsg());
                rc = 2;
            } else if (a.csv) {
                printf("%s\n", PARAMS_CSV_HEADER);
                params_print_csv_row(name, method, r, &g->sel, &res);
            } else {
                char title[900];
                snprintf(title, sizeof title, "%s -- %s", name, m.desc);
                params_print_report(title, &g->sel, method, r, kind, &res);
            }
        } else {
            static const rl_method three[] = {RL_METHOD_LORA, RL_METHOD_VERA, RL_METHOD_RANDLORA};
            static const int six[] = {8, 16, 32, 64, 128, 256};
            if (a.csv) printf("%s\n", PARAMS_CSV_HEADER);
            rc = params_print_table(name, m.desc, m.arch, &g->sel, a.method ? &method : three, a.method ? 1 : 3,
                                    a.r ? &r : six, a.r ? 1 : 6, a.csv);
            if (rc == 0 && !a.csv) params_print_table_note();
        }
    }
    free(matched);
    free(g);
    hf_model_free(&m);
    return rc;
}
