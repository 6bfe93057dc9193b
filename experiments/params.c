/* params.c -- `randlora params`: trainable parameters, shared-bases floats
 * and checkpoint sizes of LoRA, VeRA and RandLora on real architectures
 * (params.h has the formulas and the checkpoint layouts). */
#include "params.h"

#include "commands.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/rl_adapter.h"
#include "core/rl_parse.h"
#include "flags.h"

/* ---- the built-in architectures ----
 *
 * Shapes are (d_out, d_in) as nn.Linear stores them, built from each model's
 * Hugging Face config.json by the macros below, so every row reads as the
 * config fields it comes from. Module names are the HF attribute names, which
 * are what PEFT's target_modules match. all-linear (PEFT's
 * _maybe_include_all_linear_layers) selects every row of an architecture:
 * the output embedding (lm_head) it excludes is not listed, and for CLIPModel
 * it includes visual_projection and text_projection, which are listed.
 */

/* DINOv2 (Dinov2Layer): attention.attention.{query,key,value} (h -> h),
 * attention.output.dense (h -> h), mlp.fc1 (h -> mlp), mlp.fc2 (mlp -> h),
 * with mlp = hidden_size * mlp_ratio. */
#define DINOV2(h, mlp, L)                                                      \
    {"query", "q", "attention.attention.query", NULL, (h), (h), (L)},         \
    {"key", "k", "attention.attention.key", NULL, (h), (h), (L)},             \
    {"value", "v", "attention.attention.value", NULL, (h), (h), (L)},         \
    {"dense", "o", "attention.output.dense", NULL, (h), (h), (L)},            \
    {"fc1", NULL, "mlp.fc1", NULL, (mlp), (h), (L)},                          \
    {"fc2", NULL, "mlp.fc2", NULL, (h), (mlp), (L)}

/* One CLIP tower (CLIPEncoderLayer): self_attn.{q,k,v,out}_proj (h -> h),
 * mlp.fc1 (h -> intermediate), mlp.fc2 (intermediate -> h). */
#define CLIP_TOWER(tower, h, mlp, L)                                           \
    {"q_proj", "q", "self_attn.q_proj", tower, (h), (h), (L)},                \
    {"k_proj", "k", "self_attn.k_proj", tower, (h), (h), (L)},                \
    {"v_proj", "v", "self_attn.v_proj", tower, (h), (h), (L)},                \
    {"out_proj", "o", "self_attn.out_proj", tower, (h), (h), (L)},            \
    {"fc1", NULL, "mlp.fc1", tower, (mlp), (h), (L)},                         \
    {"fc2", NULL, "mlp.fc2", tower, (h), (mlp), (L)}

/* CLIPModel's two projections into the joint space (projection_dim), one each. */
#define CLIP_PROJ(hv, ht, proj)                                                \
    {"visual_projection", NULL, "visual_projection", "vision", (proj), (hv), 1}, \
    {"text_projection", NULL, "text_projection", "text", (proj), (ht), 1}

/* LLaMA / Qwen2 decoder layer: self_attn.q_proj (h -> heads*head_dim),
 * k_proj and v_proj (h -> kv_heads*head_dim), o_proj (heads*head_dim -> h),
 * mlp.gate_proj and up_proj (h -> intermediate), down_proj (intermediate -> h). */
#define LLAMA(h, inter, L, q_out, kv_out)                                      \
    {"q_proj", "q", "self_attn.q_proj", NULL, (q_out), (h), (L)},             \
    {"k_proj", "k", "self_attn.k_proj", NULL, (kv_out), (h), (L)},            \
    {"v_proj", "v", "self_attn.v_proj", NULL, (kv_out), (h), (L)},            \
    {"o_proj", "o", "self_attn.o_proj", NULL, (h), (q_out), (L)},             \
    {"gate_proj", NULL, "mlp.gate_proj", NULL, (inter), (h), (L)},            \
    {"up_proj", NULL, "mlp.up_proj", NULL, (inter), (h), (L)},                \
    {"down_proj", NULL, "mlp.down_proj", NULL, (h), (inter), (L)}

static const params_arch archs[] = {
    /* facebook/dinov2-base config.json: hidden_size 768, mlp_ratio 4,
     * num_hidden_layers 12, num_attention_heads 12. */
    {"vit-b-14", "DINOv2 ViT-B/14 backbone: 12 layers, hidden 768, MLP 3072", "facebook/dinov2-base",
     6, {DINOV2(768, 768 * 4, 12)}},
    /* facebook/dinov2-large config.json: hidden_size 1024, mlp_ratio 4,
     * num_hidden_layers 24, num_attention_heads 16. */
    {"vit-l-14", "DINOv2 ViT-L/14 backbone: 24 layers, hidden 1024, MLP 4096", "facebook/dinov2-large",
     6, {DINOV2(1024, 1024 * 4, 24)}},
    /* openai/clip-vit-base-patch32 config.json: vision_config hidden_size 768,
     * intermediate_size 3072, num_hidden_layers 12; text_config hidden_size
     * 512, intermediate_size 2048, num_hidden_layers 12; projection_dim 512. */
    {"clip-vit-b-32",
     "CLIP ViT-B/32, both towers counted: vision 12 x 768/3072, text 12 x 512/2048, projections to 512",
     "openai/clip-vit-base-patch32",
     14, {CLIP_TOWER("vision", 768, 3072, 12), CLIP_TOWER("text", 512, 2048, 12), CLIP_PROJ(768, 512, 512)}},
    /* openai/clip-vit-large-patch14 config.json: vision_config 1024 / 4096 /
     * 24 layers; text_config 768 / 3072 / 12 layers; projection_dim 768. */
    {"clip-vit-l-14",
     "CLIP ViT-L/14, both towers counted: vision 24 x 1024/4096, text 12 x 768/3072, projections to 768",
     "openai/clip-vit-large-patch14",
     14, {CLIP_TOWER("vision", 1024, 4096, 24), CLIP_TOWER("text", 768, 3072, 12), CLIP_PROJ(1024, 768, 768)}},
    /* laion/CLIP-ViT-H-14-laion2B-s32B-b79K config.json: vision_config 1280 /
     * 5120 / 32 layers; text_config 1024 / 4096 / 24 layers; projection_dim
     * 1024. */
    {"clip-vit-h-14",
     "CLIP ViT-H/14, both towers counted: vision 32 x 1280/5120, text 24 x 1024/4096, projections to 1024",
     "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
     14, {CLIP_TOWER("vision", 1280, 5120, 32), CLIP_TOWER("text", 1024, 4096, 24), CLIP_PROJ(1280, 1024, 1024)}},
    /* meta-llama/Meta-Llama-3-8B config.json: hidden_size 4096,
     * intermediate_size 14336, num_hidden_layers 32, num_attention_heads 32,
     * num_key_value_heads 8, head_dim 4096/32 = 128. */
    {"llama-3-8b", "Llama 3 8B: 32 layers, hidden 4096, MLP 14336, 32 heads, 8 KV heads of 128",
     "meta-llama/Meta-Llama-3-8B", 7, {LLAMA(4096, 14336, 32, 32 * 128, 8 * 128)}},
    /* meta-llama/Llama-3.2-3B config.json: hidden_size 3072,
     * intermediate_size 8192, num_hidden_layers 28, num_attention_heads 24,
     * num_key_value_heads 8, head_dim 128. */
    {"llama-3.2-3b", "Llama 3.2 3B: 28 layers, hidden 3072, MLP 8192, 24 heads, 8 KV heads of 128",
     "meta-llama/Llama-3.2-3B", 7, {LLAMA(3072, 8192, 28, 24 * 128, 8 * 128)}},
    /* Qwen/Qwen2-0.5B config.json: hidden_size 896, intermediate_size 4864,
     * num_hidden_layers 24, num_attention_heads 14, num_key_value_heads 2,
     * head_dim 896/14 = 64. */
    {"qwen2-0.5b", "Qwen2 0.5B: 24 layers, hidden 896, MLP 4864, 14 heads, 2 KV heads of 64",
     "Qwen/Qwen2-0.5B", 7, {LLAMA(896, 4864, 24, 14 * 64, 2 * 64)}},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

int params_n_archs(void) { return (int)COUNT(archs); }

const params_arch *params_arch_at(int i)
{
    RL_ASSERT(i >= 0 && i < params_n_archs(), "arch index %d of %d", i, params_n_archs());
    return &archs[i];
}

const params_arch *params_arch_find(const char *name)
{
    for (size_t i = 0; i < COUNT(archs); i++)
        if (strcmp(archs[i].name, name) == 0) return &archs[i];
    return NULL;
}

/* ---- selections ---- */

/* Does target `t` (length n) name module m: its name, its alias, or a dotted
 * suffix of its in-block path (PEFT matches a key equal to the target or
 * ending in "." + target)? */
static bool matches(const params_module *m, const char *t, size_t n)
{
    if (m->alias && strlen(m->alias) == n && strncmp(m->alias, t, n) == 0) return true;
    size_t lp = strlen(m->path);
    if (n > lp || strncmp(m->path + lp - n, t, n) != 0) return false;
    return n == lp || m->path[lp - n - 1] == '.';
}

/* Append "sep name" to buf unless name is already among the '+'-joined names. */
static void join_unique(char *buf, size_t len, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = buf; *p;) {
        const char *e = strchr(p, '+');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && strncmp(p, name, n) == 0) return;
        p += k + (e ? 1 : 0);
    }
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%s", used ? "+" : "", name);
}

/* The valid target names of `a`, space-separated, for error messages. */
static void valid_names(const params_arch *a, char *buf, size_t len)
{
    char names[256] = "", aliases[64] = "";
    for (int i = 0; i < a->n_modules; i++) {
        join_unique(names, sizeof names, a->modules[i].name);
        if (a->modules[i].alias) join_unique(aliases, sizeof aliases, a->modules[i].alias);
    }
    for (char *p = names; *p; p++)
        if (*p == '+') *p = ' ';
    for (char *p = aliases; *p; p++)
        if (*p == '+') *p = ' ';
    snprintf(buf, len, "%s, aliases %s, or all-linear", names, aliases);
}

rl_status params_select(const params_arch *a, const char *targets, params_selection *sel)
{
    if (!a || !targets || !sel) return rl_fail(RL_EINVAL, "params_select: NULL argument");
    RL_ASSERT(a->n_modules <= PARAMS_MAX_MODULES, "%s has %d modules", a->name, a->n_modules);
    bool want[PARAMS_MAX_MODULES] = {false};
    char valid[512];
    const char *p = targets;
    int item = 0;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *t = p;
        while (n && *t == ' ') t++, n--;
        while (n && t[n - 1] == ' ') n--;
        item++;
        if (n == 0) {
            valid_names(a, valid, sizeof valid);
            return rl_fail(RL_EINVAL, "--targets '%s': item %d is empty (valid for %s: %s)",
                           targets, item, a->name, valid);
        }
        bool found = false;
        if (n == strlen("all-linear") && strncmp(t, "all-linear", n) == 0) {
            for (int i = 0; i < a->n_modules; i++) want[i] = true;
            found = true;
        }
        for (int i = 0; i < a->n_modules; i++)
            if (matches(&a->modules[i], t, n)) want[i] = found = true;
        if (!found) {
            valid_names(a, valid, sizeof valid);
            return rl_fail(RL_EINVAL, "--targets: '%.*s' is not a linear module of %s (valid: %s)",
                           (int)n, t, a->name, valid);
        }
        if (!e) break;
        p = e + 1;
    }
    sel->n = 0;
    sel->targets[0] = '\0';
    for (int i = 0; i < a->n_modules; i++)
        if (want[i]) {
            sel->m[sel->n++] = a->modules[i];
            join_unique(sel->targets, sizeof sel->targets, a->modules[i].name);
        }
    return RL_OK;
}

/* Parse a positive decimal integer <= max from s[0..n): digits only. */
static bool parse_pos(const char *s, size_t n, long max, int *out)
{
    char num[24];
    if (n == 0 || n >= sizeof num) return false;
    memcpy(num, s, n);
    num[n] = '\0';
    return rl_parse_int(num, 1, (int)max, NULL, out) == RL_OK;
}

/* Static storage for the "OUTxIN" names of parsed shapes: a selection holds
 * pointers, so the names must outlive the call (one --shapes per process). */
static char shape_names[PARAMS_MAX_MODULES][24];

rl_status params_parse_shapes(const char *spec, params_selection *sel)
{
    if (!spec || !sel) return rl_fail(RL_EINVAL, "params_parse_shapes: NULL argument");
    sel->n = 0;
    sel->targets[0] = '\0';
    const char *p = spec;
    for (int piece = 1;; piece++) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (sel->n == PARAMS_MAX_MODULES)
            return rl_fail(RL_EINVAL, "--shapes: more than %d pieces", PARAMS_MAX_MODULES);
        int v[3] = {0, 0, 1}, k = 0;
        bool ok = n > 0;
        for (size_t s = 0; ok && s <= n;) {
            size_t t = s;
            while (t < n && p[t] != 'x') t++;
            ok = k < 3 && parse_pos(p + s, t - s, k < 2 ? PARAMS_MAX_DIM : PARAMS_MAX_COUNT, &v[k]);
            k++;
            s = t + 1;
        }
        if (!ok || k < 2) {
            if (n == 0)
                return rl_fail(RL_EINVAL, "--shapes '%s': piece %d is empty (expected OUTxIN[xCOUNT])",
                               spec, piece);
            return rl_fail(RL_EINVAL,
                           "--shapes: piece '%.*s' is not OUTxIN[xCOUNT] with positive integers "
                           "(OUT, IN <= %d, COUNT <= %d)",
                           (int)n, p, PARAMS_MAX_DIM, PARAMS_MAX_COUNT);
        }
        char *name = shape_names[sel->n];
        snprintf(name, sizeof shape_names[0], "%dx%d", v[0], v[1]);
        sel->m[sel->n++] = (params_module){name, NULL, name, NULL, v[0], v[1], v[2]};
        size_t used = strlen(sel->targets);
        snprintf(sel->targets + used, sizeof sel->targets - used, "%s%dx%dx%d", used ? "+" : "", v[0],
                 v[1], v[2]);
        if (!e) break;
        p = e + 1;
    }
    return RL_OK;
}

/* ---- counting ---- */

/* 64-bit arithmetic that reports overflow instead of wrapping. */
static bool mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a && b > UINT64_MAX / a) return false;
    *out = a * b;
    return true;
}

static bool add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b > UINT64_MAX - a) return false;
    *out = a + b;
    return true;
}

rl_status params_count(rl_method method, int r, const params_module *m, int n, params_result *out)
{
    if (!m || !out)                      return rl_fail(RL_EINVAL, "params_count: NULL argument");
    else if (r < 1 || r > PARAMS_MAX_DIM) return rl_fail(RL_EINVAL, "--r %d is not in [1, %d]", r, PARAMS_MAX_DIM);
    else if (n < 1)                       return rl_fail(RL_EINVAL, "params_count: no modules to adapt");
    for (int i = 0; i < n; i++)
        if (m[i].d_out < 1 || m[i].d_out > PARAMS_MAX_DIM || m[i].d_in < 1 ||
            m[i].d_in > PARAMS_MAX_DIM || m[i].count < 1 || m[i].count > PARAMS_MAX_COUNT)
            return rl_fail(RL_EINVAL, "params_count: module '%s' has shape %dx%d x%d outside the limits",
                           m[i].name, m[i].d_out, m[i].d_in, m[i].count);

    *out = (params_result){0};
    for (int i = 0; i < n; i++) {
        uint64_t each = rl_param_count_formula(method, r, m[i].d_out, m[i].d_in), all;
        if (!mul_ok(each, (uint64_t)m[i].count, &all) || !add_ok(out->params, all, &out->params))
            return rl_fail(RL_ERANGE, "the count overflows 64 bits");
        out->layers += (uint64_t)m[i].count;
        if (m[i].d_out > out->max_out) out->max_out = m[i].d_out;
        if (m[i].d_in > out->max_in) out->max_in = m[i].d_in;
    }

    /* Shared bases as PEFT sizes and saves them (params.h). */
    uint64_t O = (uint64_t)out->max_out, I = (uint64_t)out->max_in, R = (uint64_t)r;
    if (method == RL_METHOD_RANDLORA) {
        int mn = out->max_out < out->max_in ? out->max_out : out->max_in;
        uint64_t mx = O > I ? O : I;
        out->bases_floats = R * (uint64_t)mn + mx * (uint64_t)rl_randlora_n_bases(mn, r) * R;
    } else if (method == RL_METHOD_VERA) {
        out->bases_floats = R * I + O * R;
    }

    uint64_t floats, copies, extra;
    if (!add_ok(out->params, out->bases_floats, &floats) || !mul_ok(floats, 4, &out->ckpt_bytes))
        return rl_fail(RL_ERANGE, "the checkpoint size overflows 64 bits");
    copies = method == RL_METHOD_RANDLORA ? out->layers : 0;
    if (!mul_ok(out->bases_floats, copies, &extra) || !mul_ok(extra, 4, &extra) ||
        !add_ok(out->ckpt_bytes, extra, &out->ckpt_bytes_peft020))
        return rl_fail(RL_ERANGE, "the PEFT <= 0.20 checkpoint size overflows 64 bits");
    return RL_OK;
}

/* ---- output ---- */

/* 1234567 -> "1,234,567" */
static const char *commas(uint64_t v, char *buf, size_t len)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%" PRIu64, v);
    size_t j = 0;
    for (int i = 0; i < n && j + 2 < len; i++) {
        if (i && (n - i) % 3 == 0) buf[j++] = ',';
        buf[j++] = digits[i];
    }
    buf[j] = '\0';
    return buf;
}

/* Bytes in SI units, three significant digits: "75.3 MB", "4.30 MB". */
static const char *si_bytes(uint64_t b, char *buf, size_t len)
{
    static const char *const unit[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    double v = (double)b;
    int u = 0;
    while (v >= 999.5 && u < 6) v /= 1000.0, u++;
    if (u == 0) snprintf(buf, len, "%" PRIu64 " B", b);
    else snprintf(buf, len, "%.*f %s", v < 9.995 ? 2 : v < 99.95 ? 1 : 0, v, unit[u]);
    return buf;
}

void params_print_csv_row(const char *arch, rl_method method, int r, const params_selection *sel,
                          const params_result *res)
{
    printf("%s,%s,%d,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n", arch, rl_method_name(method), r,
           sel->targets, res->layers, res->params, res->bases_floats);
}

void params_print_report(const char *title, const params_selection *sel, rl_method method, int r,
                         rl_bases_kind kind, const params_result *res)
{
    char a[32], b[32], c[32];
    printf("%s\n", title);
    printf("method %s, r = %d", rl_method_name(method), r);
    if (method == RL_METHOD_RANDLORA)
        printf(", bases %s (the kind changes neither counts nor sizes: all are stored as F32)",
               rl_bases_kind_name(kind));
    printf("\ntargets %s: %" PRIu64 " adapted modules\n\n", sel->targets, res->layers);
    int w = 26;
    for (int i = 0; i < sel->n; i++) {
        int n = (int)strlen(sel->m[i].name) + (sel->m[i].tower ? (int)strlen(sel->m[i].tower) + 1 : 0);
        if (n > w) w = n;
    }
    printf("  %-*s %13s %7s %15s %15s\n", w, "module", "out x in", "count", "params/module", "params");
    for (int i = 0; i < sel->n; i++) {
        const params_module *m = &sel->m[i];
        char label[224], shape[32];
        snprintf(label, sizeof label, "%s%s%s", m->tower ? m->tower : "", m->tower ? " " : "", m->name);
        snprintf(shape, sizeof shape, "%d x %d", m->d_out, m->d_in);
        size_t each = rl_param_count_formula(method, r, m->d_out, m->d_in);
        printf("  %-*s %13s %7d %15s %15s\n", w, label, shape, m->count, commas(each, a, sizeof a),
               commas((uint64_t)each * (uint64_t)m->count, b, sizeof b));
    }
    printf("\ntrainable parameters  %s\n", commas(res->params, a, sizeof a));
    if (method == RL_METHOD_RANDLORA) {
        int mn = res->max_out < res->max_in ? res->max_out : res->max_in;
        int mx = res->max_out > res->max_in ? res->max_out : res->max_in;
        printf("shared bases          (O, I) = (%d, %d): A (%d, 1, %d) + B (%d, %d, %d) = %s floats\n",
               res->max_out, res->max_in, r, mn, mx, rl_randlora_n_bases(mn, r), r,
               commas(res->bases_floats, a, sizeof a));
    } else if (method == RL_METHOD_VERA) {
        printf("shared bases          (O, I) = (%d, %d): A (%d, %d) + B (%d, %d) = %s floats\n",
               res->max_out, res->max_in, r, res->max_in, res->max_out, r,
               commas(res->bases_floats, a, sizeof a));
    } else {
        printf("shared bases          none\n");
    }
    printf("checkpoint, F32       %s bytes (%s): %s\n", commas(res->ckpt_bytes, a, sizeof a),
           si_bytes(res->ckpt_bytes, b, sizeof b),
           res->bases_floats ? "trainable + one canonical copy of the bases" : "trainable only");
    if (method == RL_METHOD_RANDLORA)
        printf("  PEFT <= 0.20 layout %s bytes (%s): + a copy of randlora_A/B under each of the "
               "%" PRIu64 " modules, %.0fx\n",
               commas(res->ckpt_bytes_peft020, a, sizeof a), si_bytes(res->ckpt_bytes_peft020, c, sizeof c),
               res->layers, (double)res->ckpt_bytes_peft020 / (double)res->ckpt_bytes);
    else if (method == RL_METHOD_VERA)
        printf("  PEFT (every version) stores the same: VeRA drops its per-layer aliases\n");
}

/* The --arch all table of one architecture. Returns 0, or 2 on bad
 * --targets for this architecture. */
static int print_arch_table(const params_arch *a, const char *targets, const rl_method *methods,
                            int n_methods, const int *rs, int n_rs, bool csv)
{
    params_selection sel;
    if (params_select(a, targets, &sel) != RL_OK) {
        fprintf(stderr, "randlora params: %s\n", rl_errmsg());
        return 2;
    }
    return params_print_table(a->name, a->desc, a->source, &sel, methods, n_methods, rs, n_rs, csv);
}

int params_print_table(const char *name, const char *desc, const char *source, const params_selection *sel,
                       const rl_method *methods, int n_methods, const int *rs, int n_rs, bool csv)
{
    RL_ASSERT(n_methods >= 1 && n_methods <= 8, "%d methods", n_methods);
    bool has_randlora = false;
    for (int k = 0; k < n_methods; k++) has_randlora |= methods[k] == RL_METHOD_RANDLORA;
    if (!csv) {
        uint64_t layers = 0;
        for (int i = 0; i < sel->n; i++) layers += (uint64_t)sel->m[i].count;
        printf("== %s -- %s [%s]\n   targets %s: %" PRIu64 " adapted modules\n", name, desc, source,
               sel->targets, layers);
        printf("   %5s  %*s", "", 14 * n_methods - 2, "trainable parameters");
        printf("  | %*s\n", 11 * n_methods + (has_randlora ? 21 : 0) - 1, "checkpoint F32 (params + bases)");
        printf("   %5s", "r");
        for (int k = 0; k < n_methods; k++) printf(" %13s", rl_method_name(methods[k]));
        printf("  |");
        for (int k = 0; k < n_methods; k++) printf(" %10s", rl_method_name(methods[k]));
        if (has_randlora) printf(" %20s", "randlora PEFT<=0.20*");
        printf("\n");
    }
    for (int j = 0; j < n_rs; j++) {
        params_result res[8];
        for (int k = 0; k < n_methods; k++)
            if (params_count(methods[k], rs[j], sel->m, sel->n, &res[k]) != RL_OK) {
                fprintf(stderr, "randlora params: %s\n", rl_errmsg());
                return 2;
            }
        if (csv) {
            for (int k = 0; k < n_methods; k++) params_print_csv_row(name, methods[k], rs[j], sel, &res[k]);
            continue;
        }
        char buf[32];
        printf("   %5d", rs[j]);
        for (int k = 0; k < n_methods; k++) printf(" %13s", commas(res[k].params, buf, sizeof buf));
        printf("  |");
        for (int k = 0; k < n_methods; k++) printf(" %10s", si_bytes(res[k].ckpt_bytes, buf, sizeof buf));
        for (int k = 0; k < n_methods; k++)
            if (methods[k] == RL_METHOD_RANDLORA)
                printf(" %20s", si_bytes(res[k].ckpt_bytes_peft020, buf, sizeof buf));
        printf("\n");
    }
    if (!csv) printf("\n");
    return 0;
}

void params_print_table_note(void)
{
    printf("* RandLora as PEFT <= 0.20 saves it: a full copy of randlora_A/B under every adapted\n"
           "  module besides the canonical one (peft-semantics.md 5.3). VeRA stores one copy in\n"
           "  every version; LoRA has no bases. Sizes in SI units (1 MB = 10^6 bytes).\n");
}

static void print_list(void)
{
    for (size_t i = 0; i < COUNT(archs); i++) {
        char valid[512];
        valid_names(&archs[i], valid, sizeof valid);
        printf("%-14s %s [%s]; targets: %s\n", archs[i].name, archs[i].desc, archs[i].source, valid);
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: randlora params --arch NAME --targets LIST --method M --r R [--csv] [--bases KIND]\n"
            "       randlora params --shapes OUTxIN[xCOUNT],... --method M --r R [--csv]\n"
            "       randlora params --arch all [--targets LIST] [--method M] [--r R] [--csv]\n"
            "       randlora params --list\n"
            "  Exact trainable-parameter counts of M (lora, vera, randlora, or full) on the\n"
            "  linear modules LIST of a built-in architecture (--list names them), or on\n"
            "  shapes given as OUTxIN (nn.Linear's weight shape) times COUNT layers. Also\n"
            "  the shared random bases (floats) and the F32 checkpoint size, with one copy\n"
            "  of the bases and in PEFT <= 0.20's layout (a copy under every RandLora module).\n"
            "  --targets  comma-separated HF module names (q_proj,v_proj), dotted suffixes\n"
            "             (self_attn.q_proj), aliases q,k,v,o, or all-linear\n"
            "  --arch all a table for every built-in architecture: lora, vera and randlora\n"
            "             (or --method M) at r = 8,16,32,64,128,256 (or --r R); targets\n"
            "             default to q,v (query and value projections)\n"
            "  --bases    dense (default), sparse or very_sparse: accepted for completeness;\n"
            "             every kind is stored as F32, so counts and sizes do not change\n"
            "  --csv      print '" PARAMS_CSV_HEADER "'\n"
            "             and one row per count; targets are joined with '+'\n");
}

int cmd_params(int argc, char **argv)
{
    const char *arch = NULL, *targets = NULL, *method_s = NULL, *r_s = NULL, *bases_s = NULL,
               *shapes = NULL;
    bool csv = false, list = false;
    for (int i = 1; i < argc; i++) /* a Hugging Face config or checkpoint: hfconfig.c */
        if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "--weights") == 0) return params_hf(argc, argv);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **val = NULL;
        if (strcmp(a, "--arch") == 0) val = &arch;
        else if (strcmp(a, "--targets") == 0) val = &targets;
        else if (strcmp(a, "--method") == 0) val = &method_s;
        else if (strcmp(a, "--r") == 0) val = &r_s;
        else if (strcmp(a, "--bases") == 0) val = &bases_s;
        else if (strcmp(a, "--shapes") == 0) val = &shapes;
        else if (strcmp(a, "--csv") == 0) csv = true;
        else if (strcmp(a, "--list") == 0) list = true;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "randlora params: %s '%s'\n",
                    strncmp(a, "--", 2) == 0 ? "unknown flag" : "unexpected argument", a);
            usage(stderr);
            return 2;
        }
        if (val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "randlora params: %s needs a value\n", a);
                return 2;
            }
            *val = argv[++i];
        }
    }
    if (list) {
        print_list();
        return 0;
    }

    rl_method method = RL_METHOD_RANDLORA;
    rl_bases_kind kind = RL_BASES_DENSE;
    int r = 0;
    if (method_s && rl_method_parse(method_s, &method) != RL_OK) {
        fprintf(stderr, "randlora params: --method: %s\n", rl_errmsg());
        return 2;
    } else if (r_s && !flag_int("randlora params", "--r", r_s, 1, PARAMS_MAX_DIM, &r)) {
        return 2;
    } else if (bases_s && rl_bases_kind_parse(bases_s, &kind) != RL_OK) {
        fprintf(stderr, "randlora params: --bases: %s\n", rl_errmsg());
        return 2;
    } else if (!arch && !shapes) {
        fprintf(stderr, "randlora params: missing --arch NAME (or --arch all, or --shapes OUTxIN[xCOUNT],...)\n");
        usage(stderr);
        return 2;
    } else if (arch && shapes) {
        fprintf(stderr, "randlora params: give --arch or --shapes, not both\n");
        return 2;
    } else if (shapes && targets) {
        fprintf(stderr, "randlora params: --targets has no meaning with --shapes (every shape is adapted)\n");
        return 2;
    }

    if (arch && strcmp(arch, "all") == 0) {
        static const rl_method three[] = {RL_METHOD_LORA, RL_METHOD_VERA, RL_METHOD_RANDLORA};
        static const int six[] = {8, 16, 32, 64, 128, 256};
        const rl_method *methods = method_s ? &method : three;
        int n_methods = method_s ? 1 : 3;
        const int *rs = r_s ? &r : six;
        int n_rs = r_s ? 1 : (int)COUNT(six);
        const char *t = targets ? targets : "q,v";
        for (size_t i = 0; i < COUNT(archs); i++) {   /* check every arch before printing */
            params_selection sel;
            if (params_select(&archs[i], t, &sel) != RL_OK) {
                fprintf(stderr, "randlora params: --arch all: %s\n", rl_errmsg());
                return 2;
            }
        }
        if (csv) printf("%s\n", PARAMS_CSV_HEADER);
        for (size_t i = 0; i < COUNT(archs); i++) {
            int rc = print_arch_table(&archs[i], t, methods, n_methods, rs, n_rs, csv);
            if (rc) return rc;
        }
        if (!csv) params_print_table_note();
        return 0;
    }

    if (!method_s || !r_s || (arch && !targets)) {
        fprintf(stderr, "randlora params: missing %s\n",
                arch && !targets ? "--targets LIST" : !method_s ? "--method M" : "--r R");
        usage(stderr);
        return 2;
    }

    params_selection sel;
    char title[512];
    const char *arch_name = "shapes";
    if (shapes) {
        if (params_parse_shapes(shapes, &sel) != RL_OK) {
            fprintf(stderr, "randlora params: %s\n", rl_errmsg());
            return 2;
        }
        snprintf(title, sizeof title, "shapes given on the command line (OUTxINxCOUNT)");
    } else {
        const params_arch *a = params_arch_find(arch);
        if (!a) {
            fprintf(stderr, "randlora params: unknown --arch '%s' (valid:", arch);
            for (size_t i = 0; i < COUNT(archs); i++) fprintf(stderr, " %s", archs[i].name);
            fprintf(stderr, ", or all; --list describes them)\n");
            return 2;
        }
        if (params_select(a, targets, &sel) != RL_OK) {
            fprintf(stderr, "randlora params: %s\n", rl_errmsg());
            return 2;
        }
        arch_name = a->name;
        snprintf(title, sizeof title, "%s -- %s [%s]", a->name, a->desc, a->source);
    }
    params_result res;
    if (params_count(method, r, sel.m, sel.n, &res) != RL_OK) {
        fprintf(stderr, "randlora params: %s\n", rl_errmsg());
        return 2;
    }
    if (csv) {
        printf("%s\n", PARAMS_CSV_HEADER);
        params_print_csv_row(arch_name, method, r, &sel, &res);
    } else {
        params_print_report(title, &sel, method, r, kind, &res);
    }
    return 0;
}
