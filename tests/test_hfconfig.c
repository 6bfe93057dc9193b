/* test_hfconfig.c -- `randlora params --config / --weights`: transformers
 * configs give the built-in architectures' counts (two real configs shipped
 * in tests/fixtures/hf, written by hand from the published config.json),
 * PEFT's target_modules rules, safetensors headers read without the data,
 * sharded indexes, and every bad input exits 2 naming the field or file. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "hfconfig.h"
#include "io/rl_st_header.h"
#include "paper_ref.h"
#include "params.h"
#include "rl_test.h"
#include "rl_test_cmd.h"

TestSuite(hf, .init = rl_test_mark);

#define LLAMA "tests/fixtures/hf/llama-3.2-3b/config.json"
#define QWEN2 "tests/fixtures/hf/qwen2-0.5b/config.json"
#define CLIP "tests/fixtures/hf/clip-vit-base-patch32/config.json"

static char out[1 << 17], err[8192];

static int run(const char *const *args, int n)
{
    return rl_test_run_cmd(cmd_params, "params", args, n, out, sizeof out, err, sizeof err);
}

/* Trainable parameters of (model, targets, method, r) through the command's functions. */
static params_result hf_count(const hf_model *m, hf_targets_kind kind, const char *spec, rl_method method, int r)
{
    bool *matched = calloc((size_t)m->n, sizeof *matched);
    hf_groups *g = malloc(sizeof *g);
    cr_assert(matched && g);
    cr_assert_eq(hf_match(m, kind, spec, matched), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(hf_group(m, matched, g), RL_OK, "%s", rl_errmsg());
    params_result res;
    cr_assert_eq(params_count(method, r, g->sel.m, g->sel.n, &res), RL_OK, "%s", rl_errmsg());
    free(matched);
    free(g);
    return res;
}

static params_result builtin_count(const char *arch, const char *targets, rl_method method, int r)
{
    params_selection sel;
    cr_assert_eq(params_select(params_arch_find(arch), targets, &sel), RL_OK, "%s", rl_errmsg());
    params_result res;
    cr_assert_eq(params_count(method, r, sel.m, sel.n, &res), RL_OK, "%s", rl_errmsg());
    return res;
}

/* The config path and the built-in table agree on every method, r and
 * target set: params, bases floats and checkpoint sizes. */
static void same_as_builtin(const char *config, const char *arch, const char *list, const char *builtin_targets)
{
    hf_model m;
    cr_assert_eq(hf_model_from_config(&m, config), RL_OK, "%s", rl_errmsg());
    static const rl_method methods[3] = {RL_METHOD_LORA, RL_METHOD_VERA, RL_METHOD_RANDLORA};
    static const int rs[4] = {1, 8, 32, 256};
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 4; j++) {
            params_result a = hf_count(&m, HF_TARGETS_LIST, list, methods[k], rs[j]);
            params_result b = builtin_count(arch, builtin_targets, methods[k], rs[j]);
            cr_expect_eq(a.params, b.params, "%s %s %s r=%d: config %llu, built-in %llu", config, list,
                         rl_method_name(methods[k]), rs[j], (unsigned long long)a.params, (unsigned long long)b.params);
            cr_expect_eq(a.layers, b.layers);
            cr_expect_eq(a.bases_floats, b.bases_floats);
            cr_expect_eq(a.ckpt_bytes_peft020, b.ckpt_bytes_peft020);
        }
    hf_model_free(&m);
}

RL_TEST(hf, llama_config_gives_the_builtin_counts)
{
    same_as_builtin(LLAMA, "llama-3.2-3b", "q_proj,v_proj", "q_proj,v_proj");
    same_as_builtin(LLAMA, "llama-3.2-3b", "all-linear", "all-linear");
}

RL_TEST(hf, qwen2_and_clip_configs_give_the_builtin_counts)
{
    same_as_builtin(QWEN2, "qwen2-0.5b", "q_proj,k_proj,v_proj,up_proj,down_proj", "q,k,v,up_proj,down_proj");
    same_as_builtin(CLIP, "clip-vit-b-32", "all-linear", "all-linear");
    same_as_builtin(CLIP, "clip-vit-b-32", "q_proj,v_proj", "q,v");
}

/* PEFT's logged anchors (experiments/reference/paper.csv) from the shipped
 * Llama-3.2-3B config alone. */
RL_TEST(hf, llama_config_reproduces_peft_anchors)
{
    paper_refs *t;
    cr_assert_eq(paper_refs_load(&t, PAPER_REF_CSV), RL_OK, "%s", rl_errmsg());
    hf_model m;
    cr_assert_eq(hf_model_from_config(&m, LLAMA), RL_OK, "%s", rl_errmsg());
    static const struct { rl_method m; int r; const char *id; } anc[4] = {
        {RL_METHOD_RANDLORA, 32, "peft_mmqa_randlora_r32_params"}, {RL_METHOD_LORA, 32, "peft_mmqa_lora_r32_params"},
        {RL_METHOD_LORA, 64, "peft_mmqa_lora_r64_params"}, {RL_METHOD_VERA, 256, "peft_mmqa_vera_r256_params"}};
    for (int i = 0; i < 4; i++) {
        double want = paper_ref_value(t, anc[i].id);
        cr_assert(want > 0, "%s missing from paper.csv", anc[i].id);
        cr_expect_eq((double)hf_count(&m, HF_TARGETS_LIST, "q_proj,v_proj", anc[i].m, anc[i].r).params, want, "%s",
                     anc[i].id);
    }
    hf_model_free(&m);
    paper_refs_free(t);
    /* and through the command, as a user types it */
    const char *a[] = {"--config", LLAMA, "--targets", "q_proj,v_proj", "--method", "randlora", "--r", "32", "--csv"};
    cr_assert_eq(run(a, 9), 0, "%s", err);
    cr_expect(strstr(out, ",randlora,32,q_proj+v_proj,56,9289728,9535488\n"), "%s", out);
}

RL_TEST(hf, llama_module_names_and_shapes)
{
    hf_model m;
    cr_assert_eq(hf_model_from_config(&m, LLAMA), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(m.n, 28 * 7 + 1);
    cr_expect_str_eq(m.m[0].name, "model.layers.0.self_attn.q_proj");
    cr_expect(m.m[0].d_out == 3072 && m.m[0].d_in == 3072);
    cr_expect_str_eq(m.m[1].name, "model.layers.0.self_attn.k_proj");
    cr_expect(m.m[1].d_out == 1024 && m.m[1].d_in == 3072, "8 KV heads of 128");
    cr_expect_str_eq(m.m[6].name, "model.layers.0.mlp.down_proj");
    cr_expect(m.m[6].d_out == 3072 && m.m[6].d_in == 8192);
    cr_expect_str_eq(m.m[m.n - 1].name, "lm_head");
    cr_expect(m.m[m.n - 1].head && m.m[m.n - 1].tied && m.m[m.n - 1].d_out == 128256);
    hf_model_free(&m);
}

/* ---- PEFT's target rules ---- */

RL_TEST(hf, list_items_match_whole_dotted_suffixes)
{
    const char *k = "model.layers.10.self_attn.q_proj";
#define M(t) hf_list_item_matches(k, t, strlen(t))
    cr_expect(M("q_proj"));
    cr_expect(M("self_attn.q_proj"));
    cr_expect(M("layers.10.self_attn.q_proj"));
    cr_expect(M("model.layers.10.self_attn.q_proj"));
    cr_expect(!M("proj"), "a suffix must start after a '.'");
    cr_expect(!M("0.self_attn.q_proj"), "layer 10 is not layer 0");
    cr_expect(!M("self_attn"), "not a suffix of the name");
    cr_expect(!M("xmodel.layers.10.self_attn.q_proj"));
#undef M
}

static int n_matched(const hf_model *m, hf_targets_kind kind, const char *spec, rl_status *st)
{
    bool *matched = calloc((size_t)m->n, sizeof *matched);
    cr_assert(matched);
    *st = hf_match(m, kind, spec, matched);
    int n = 0;
    for (int i = 0; i < m->n; i++) n += matched[i];
    free(matched);
    return n;
}

RL_TEST(hf, regex_is_a_full_match_and_all_linear_skips_the_head)
{
    hf_model m;
    rl_status st;
    cr_assert_eq(hf_model_from_config(&m, LLAMA), RL_OK, "%s", rl_errmsg());
    cr_expect_eq(n_matched(&m, HF_TARGETS_REGEX, ".*\\.(q|v)_proj", &st), 56);
    cr_expect_eq(n_matched(&m, HF_TARGETS_REGEX, "model\\.layers\\.(0|1)\\.self_attn\\.q_proj", &st), 2);
    cr_expect_eq(n_matched(&m, HF_TARGETS_REGEX, ".*", &st), 197, "a string matching everything takes the head too");
    n_matched(&m, HF_TARGETS_REGEX, "q_proj", &st);
    cr_expect_eq(st, RL_ENOTFOUND, "re.fullmatch: 'q_proj' is no whole module name");
    cr_expect(strstr(rl_errmsg(), "'q_proj'"), "%s", rl_errmsg());
    n_matched(&m, HF_TARGETS_REGEX, "model\\.layers\\.\\d+\\.mlp\\.up_proj", &st);
    cr_expect_eq(st, RL_EINVAL, "Python's \\d is refused, not silently misread");
    cr_expect(strstr(rl_errmsg(), "[0-9]"), "%s", rl_errmsg());
    n_matched(&m, HF_TARGETS_REGEX, "(q_proj", &st);
    cr_expect_eq(st, RL_EINVAL);
    cr_expect(strstr(rl_errmsg(), "not a valid"), "%s", rl_errmsg());
    cr_expect_eq(n_matched(&m, HF_TARGETS_LIST, "all-linear", &st), 196, "every linear but lm_head");
    cr_expect_eq(n_matched(&m, HF_TARGETS_LIST, "ALL-LINEAR", &st), 196, "PEFT lower-cases the shorthand");
    cr_expect_eq(n_matched(&m, HF_TARGETS_LIST, "lm_head", &st), 1, "the head when named");
    n_matched(&m, HF_TARGETS_LIST, "q_proj,all-linear", &st);
    cr_expect_eq(st, RL_EINVAL);
    n_matched(&m, HF_TARGETS_LIST, "q_proj,,v_proj", &st);
    cr_expect_eq(st, RL_EINVAL);
    hf_model_free(&m);
    hf_model clip;
    cr_assert_eq(hf_model_from_config(&clip, CLIP), RL_OK, "%s", rl_errmsg());
    cr_expect_eq(n_matched(&clip, HF_TARGETS_LIST, "all-linear", &st), 146, "CLIPModel has no output embedding");
    hf_model_free(&clip);
}

RL_TEST(hf, no_match_exits_2_naming_the_targets)
{
    const char *a[] = {"--config", LLAMA, "--targets", "query,value"};
    cr_expect_eq(run(a, 4), 2);
    cr_expect(strstr(err, "'query,value'") && strstr(err, "model.layers.0"), "%s", err);
    const char *b[] = {"--config", LLAMA, "--target-regex", "q_proj"};
    cr_expect_eq(run(b, 4), 2);
    cr_expect(strstr(err, "regex 'q_proj'"), "%s", err);
    const char *c[] = {"--config", LLAMA};
    cr_expect_eq(run(c, 2), 2);
    cr_expect(strstr(err, "--targets"), "%s", err);
    const char *d[] = {"--config", LLAMA, "--targets", "q_proj", "--target-regex", ".*"};
    cr_expect_eq(run(d, 6), 2);
}

RL_TEST(hf, command_prints_the_matched_modules_and_the_table)
{
    const char *a[] = {"--config", QWEN2, "--target-regex", "model\\.layers\\.[0-3]\\.(self_attn|mlp)\\.(q|down)_proj"};
    cr_assert_eq(run(a, 4), 0, "%s", err);
    cr_expect(strstr(out, "matched  8 of 169 linear modules"), "%s", out);
    cr_expect(strstr(out, "model.layers.*.self_attn.q_proj") && strstr(out, "* = 0-3"), "%s", out);
    cr_expect(strstr(out, "randlora PEFT<=0.20*"), "the table for lora, vera, randlora: %s", out);
}

/* ---- other model families, from configs written here ---- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

RL_TEST(hf, gpt2_phi3_neox_vit_dinov2_shapes)
{
    char dir[64], p[128];
    rl_test_tmpdir(dir, "rl_hf_");
    hf_model m;
    snprintf(p, sizeof p, "%s/gpt2.json", dir);
    write_text(p, "{\"model_type\": \"gpt2\", \"n_embd\": 768, \"n_layer\": 12, \"n_head\": 12, \"n_inner\": null, "
                  "\"vocab_size\": 50257}");
    cr_assert_eq(hf_model_from_config(&m, p), RL_OK, "%s", rl_errmsg());
    cr_expect_str_eq(m.m[0].name, "transformer.h.0.attn.c_attn");
    cr_expect(m.m[0].conv1d && m.m[0].d_out == 2304 && m.m[0].d_in == 768, "Conv1D nf = 3 * n_embd");
    cr_expect(m.m[2].d_out == 3072, "n_inner null -> 4 * n_embd");
    /* VeRA counts d_out + r: Conv1D must not be read (in, out) */
    cr_expect_eq(hf_count(&m, HF_TARGETS_LIST, "c_attn", RL_METHOD_VERA, 256).params, 12u * (2304 + 256));
    hf_model_free(&m);
    snprintf(p, sizeof p, "%s/phi3.json", dir);
    write_text(p, "{\"model_type\": \"phi3\", \"hidden_size\": 3072, \"intermediate_size\": 8192, "
                  "\"num_hidden_layers\": 32, \"num_attention_heads\": 32, \"num_key_value_heads\": 32, "
                  "\"vocab_size\": 32064, \"tie_word_embeddings\": false}");
    cr_assert_eq(hf_model_from_config(&m, p), RL_OK, "%s", rl_errmsg());
    cr_expect_str_eq(m.m[0].name, "model.layers.0.self_attn.qkv_proj");
    cr_expect(m.m[0].d_out == 9216 && m.m[2].d_out == 16384, "fused qkv and gate_up");
    rl_status st;
    cr_expect_eq(n_matched(&m, HF_TARGETS_LIST, "q_proj,k_proj,v_proj,up_proj,down_proj", &st), 32,
                 "as the paper's scripts target it, only down_proj exists in Phi-3");
    hf_model_free(&m);
    snprintf(p, sizeof p, "%s/neox.json", dir);
    write_text(p, "{\"model_type\": \"gpt_neox\", \"hidden_size\": 512, \"intermediate_size\": 2048, "
                  "\"num_hidden_layers\": 6, \"num_attention_heads\": 8, \"vocab_size\": 50304}");
    cr_assert_eq(hf_model_from_config(&m, p), RL_OK, "%s", rl_errmsg());
    cr_expect_str_eq(m.m[0].name, "gpt_neox.layers.0.attention.query_key_value");
    cr_expect(m.m[m.n - 1].head && !strcmp(m.m[m.n - 1].name, "embed_out"));
    hf_model_free(&m);
    snprintf(p, sizeof p, "%s/vit.json", dir);
    write_text(p, "{\"model_type\": \"vit\", \"architectures\": [\"ViTForImageClassification\"], \"hidden_size\": 768, "
                  "\"intermediate_size\": 3072, \"num_hidden_layers\": 12, \"num_attention_heads\": 12, "
                  "\"id2label\": {\"0\": \"a\", \"1\": \"b\", \"2\": \"c\"}}");
    cr_assert_eq(hf_model_from_config(&m, p), RL_OK, "%s", rl_errmsg());
    cr_expect_str_eq(m.m[0].name, "vit.encoder.layer.0.attention.attention.query");
    cr_expect(!strcmp(m.m[m.n - 1].name, "classifier") && m.m[m.n - 1].d_out == 3 && !m.m[m.n - 1].head,
              "a classifier is no output embedding: all-linear keeps it");
    hf_model_free(&m);
    snprintf(p, sizeof p, "%s/dinov2.json", dir);
    write_text(p, "{\"model_type\": \"dinov2\", \"hidden_size\": 768, \"mlp_ratio\": 4, \"num_hidden_layers\": 12, "
                  "\"num_attention_heads\": 12}");
    cr_assert_eq(hf_model_from_config(&m, p), RL_OK, "%s", rl_errmsg());
    cr_expect_str_eq(m.m[4].name, "encoder.layer.0.mlp.fc1");
    hf_model_free(&m);
    same_as_builtin(p, "vit-b-14", "query,value", "q,v"); /* the built-in DINOv2 ViT-B/14 */
    same_as_builtin(p, "vit-b-14", "all-linear", "all-linear");
    rl_test_rmdir(dir);
}

RL_TEST(hf, bad_configs_exit_2_naming_field_or_type)
{
    char dir[64], p[128];
    rl_test_tmpdir(dir, "rl_hf_");
    static const struct { const char *json, *want; } cases[] = {
        {"{\"model_type\": \"llama\", \"intermediate_size\": 8, \"num_hidden_layers\": 2, \"num_attention_heads\": 2, "
         "\"vocab_size\": 10}", "'hidden_size' is missing"},
        {"{\"model_type\": \"mixtral\", \"hidden_size\": 8}", "model_type 'mixtral' is not supported"},
        {"{\"hidden_size\": 8}", "'model_type' is missing"},
        {"{\"model_type\": \"llama\", \"hidden_size\": \"big\", \"intermediate_size\": 8, \"num_hidden_layers\": 2, "
         "\"num_attention_heads\": 2, \"vocab_size\": 10}", "'hidden_size' = \"big\" is not an integer"},
        {"{\"model_type\": \"llama\", \"hidden_size\": 0, \"intermediate_size\": 8, \"num_hidden_layers\": 2, "
         "\"num_attention_heads\": 2, \"vocab_size\": 10}", "'hidden_size' = 0 is outside"},
        {"{\"model_type\": \"llama\", \"hidden_size\": 10, \"intermediate_size\": 8, \"num_hidden_layers\": 2, "
         "\"num_attention_heads\": 3, \"vocab_size\": 10}", "not a multiple of num_attention_heads"},
        {"{\"model_type\": \"clip\", \"text_config\": {\"hidden_size\": 8, \"intermediate_size\": 8, "
         "\"num_hidden_layers\": 1}}", "'vision_config.hidden_size' is missing"},
        {"{\"model_type\": \"llama\",", "not valid JSON"},
        {"[1, 2]", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(p, sizeof p, "%s/c%zu.json", dir, i);
        write_text(p, cases[i].json);
        const char *a[] = {"--config", p, "--targets", "all-linear"};
        cr_expect_eq(run(a, 4), 2, "case %zu", i);
        cr_expect(strstr(err, cases[i].want) && strstr(err, p), "case %zu: %s", i, err);
    }
    const char *a[] = {"--config", "/nonexistent/config.json", "--targets", "all-linear"};
    cr_expect_eq(run(a, 4), 2);
    cr_expect(strstr(err, "/nonexistent/config.json"), "%s", err);
    rl_test_rmdir(dir);
}

/* ---- safetensors headers only ---- */

typedef struct {
    const char *name, *dtype;
    int ndim;
    long long shape[4];
} ent;

static int dsize(const char *dt) { return !strcmp(dt, "F32") ? 4 : !strcmp(dt, "I64") ? 8 : 2; }

/* A safetensors file whose header describes `e` and whose data region is a
 * hole (ftruncate): nothing but the header is ever written. `lie` adds
 * bytes to the last entry's data_offsets end; `short_by` shortens the file. */
static void write_st(const char *path, const ent *e, int n, long long lie, long long short_by)
{
    char *h = malloc(1 << 16);
    cr_assert(h);
    int at = sprintf(h, "{\"__metadata__\":{\"format\":\"pt\"}");
    long long off = 0;
    for (int i = 0; i < n; i++) {
        long long bytes = dsize(e[i].dtype);
        at += sprintf(h + at, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", e[i].name, e[i].dtype);
        for (int d = 0; d < e[i].ndim; d++) at += sprintf(h + at, "%s%lld", d ? "," : "", e[i].shape[d]), bytes *= e[i].shape[d];
        long long end = off + bytes + (i == n - 1 ? lie : 0);
        at += sprintf(h + at, "],\"data_offsets\":[%lld,%lld]}", off, end);
        off = end;
    }
    at += sprintf(h + at, "}");
    while ((8 + at) % 8) h[at++] = ' ';
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    cr_assert(fd >= 0, "%s", path);
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)((unsigned long long)at >> (8 * i));
    cr_assert_eq(write(fd, le, 8), 8);
    cr_assert_eq(write(fd, h, (size_t)at), at);
    cr_assert_eq(ftruncate(fd, 8 + at + off - short_by), 0, "sparse file of %lld bytes", 8 + at + off);
    close(fd);
    free(h);
}

/* Bytes this process has read through read(2) and friends. */
static long long rchar(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    long long v = -1;
    char line[128];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "rchar: %lld", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

RL_TEST(hf, header_scan_never_reads_a_16_gib_data_region)
{
    char dir[64], p[128];
    rl_test_tmpdir(dir, "rl_hf_");
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    static const ent e[] = {
        {"model.embed_tokens.weight", "BF16", 2, {131072, 4096}},
        {"model.layers.0.mlp.up_proj.weight", "BF16", 2, {131072, 65536}}, /* 16 GiB */
        {"model.layers.0.mlp.down_proj.weight", "BF16", 2, {4096, 131072}},
        {"model.layers.0.input_layernorm.weight", "BF16", 1, {4096}},
        {"model.position_ids", "I64", 2, {1, 4096}},
    };
    write_st(p, e, 5, 0, 0);
    long long r0 = rchar();
    rl_st_header *h;
    cr_assert_eq(rl_st_header_read(&h, p), RL_OK, "%s", rl_errmsg());
    long long r1 = rchar();
    cr_expect_eq(rl_st_header_count(h), 5u);
    const rl_st_entry *up = rl_st_header_find(h, "model.layers.0.mlp.up_proj.weight");
    cr_assert_not_null(up);
    cr_expect(up->shape[0] == 131072 && up->shape[1] == 65536 && up->end - up->begin == 17179869184ULL);
    cr_expect_str_eq(rl_st_header_meta(h, "format"), "pt");
    cr_expect(rl_st_header_file_bytes(h) > 17179869184ULL);
    cr_expect_lt(rl_st_header_read_bytes(h), 4096u);
    if (r0 >= 0 && r1 >= 0) /* /proc/self/io: every byte read(2) returned */
        cr_expect_lt(r1 - r0, 1 << 20, "read %lld bytes of a 17 GB file", r1 - r0);
    rl_st_header_free(h);
    /* the command on it: embeddings set aside, both MLP weights listed */
    const char *a[] = {"--weights", p, "--targets", "all-linear", "--method", "lora", "--r", "8", "--csv"};
    cr_assert_eq(run(a, 9), 0, "%s", err);
    cr_expect(strstr(out, ",lora,8,up_proj+down_proj,2,2654208,0\n"), "%s", out);
    rl_test_rmdir(dir);
}

RL_TEST(hf, headers_that_lie_exit_2_naming_the_tensor)
{
    char dir[64], p[128];
    rl_test_tmpdir(dir, "rl_hf_");
    snprintf(p, sizeof p, "%s/lie.safetensors", dir);
    static const ent e[] = {{"a.weight", "F32", 2, {8, 8}}, {"b.weight", "BF16", 2, {16, 8}}};
    write_st(p, e, 2, 6, 0); /* b's offsets hold 6 bytes more than [16, 8] BF16 */
    const char *a[] = {"--weights", p, "--targets", "all-linear"};
    cr_expect_eq(run(a, 4), 2);
    cr_expect(strstr(err, "\"b.weight\"") && strstr(err, "lies about the size") && strstr(err, p), "%s", err);
    write_st(p, e, 2, 0, 100); /* the file is 100 bytes shorter than its header says */
    cr_expect_eq(run(a, 4), 2);
    cr_expect(strstr(err, "\"b.weight\"") && strstr(err, "truncated"), "%s", err);
    static const ent bad[] = {{"c.weight", "Q4_K", 2, {8, 8}}};
    write_st(p, bad, 1, 0, 0);
    cr_expect_eq(run(a, 4), 2);
    cr_expect(strstr(err, "unknown dtype \"Q4_K\""), "%s", err);
    rl_test_rmdir(dir);
}

RL_TEST(hf, sharded_index_and_missing_shard)
{
    char dir[64], p[128], idx[128];
    rl_test_tmpdir(dir, "rl_hf_");
    static const ent s1[] = {{"model.layers.0.self_attn.q_proj.weight", "BF16", 2, {64, 64}},
                             {"model.layers.0.self_attn.v_proj.weight", "BF16", 2, {16, 64}}};
    static const ent s2[] = {{"model.layers.1.self_attn.q_proj.weight", "BF16", 2, {64, 64}},
                             {"model.layers.1.self_attn.v_proj.weight", "BF16", 2, {16, 64}},
                             {"lm_head.weight", "BF16", 2, {1000, 64}}};
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    write_st(p, s1, 2, 0, 0);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    write_st(p, s2, 3, 0, 0);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    write_text(idx, "{\"metadata\": {\"total_size\": 150528}, \"weight_map\": {"
                    "\"model.layers.0.self_attn.q_proj.weight\": \"model-00001-of-00002.safetensors\","
                    "\"model.layers.0.self_attn.v_proj.weight\": \"model-00001-of-00002.safetensors\","
                    "\"model.layers.1.self_attn.q_proj.weight\": \"model-00002-of-00002.safetensors\","
                    "\"model.layers.1.self_attn.v_proj.weight\": \"model-00002-of-00002.safetensors\","
                    "\"lm_head.weight\": \"model-00002-of-00002.safetensors\"}}");
    const char *a[] = {"--weights", idx, "--targets", "all-linear", "--method", "lora", "--r", "4", "--csv"};
    cr_assert_eq(run(a, 9), 0, "%s", err);
    cr_expect(strstr(out, ",lora,4,q_proj+v_proj,4,1664,0\n"), "lm_head left out: %s", out);
    const char *b[] = {"--weights", idx, "--targets", "lm_head", "--method", "lora", "--r", "4", "--csv"};
    cr_assert_eq(run(b, 9), 0, "%s", err);
    /* a shard the index names is gone */
    unlink(p);
    cr_expect_eq(run(a, 9), 2);
    cr_expect(strstr(err, "model-00002-of-00002.safetensors") && strstr(err, "cannot open"), "%s", err);
    /* a mapped tensor its shard lacks */
    write_st(p, s2, 2, 0, 0);
    cr_expect_eq(run(a, 9), 2);
    cr_expect(strstr(err, "\"lm_head.weight\"") && strstr(err, "model-00002-of-00002.safetensors"), "%s", err);
    rl_test_rmdir(dir);
}

RL_TEST(hf, config_checked_against_its_checkpoint)
{
    char dir[64], cfg[128], p[128];
    rl_test_tmpdir(dir, "rl_hf_");
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    write_text(cfg, "{\"model_type\": \"gpt2\", \"n_embd\": 64, \"n_layer\": 1, \"n_head\": 4, \"vocab_size\": 100}");
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    /* GPT-2 checkpoints name modules without "transformer." and store Conv1D (in, out) */
    ent e[] = {{"wte.weight", "F32", 2, {100, 64}},          {"h.0.attn.c_attn.weight", "F32", 2, {64, 192}},
               {"h.0.attn.c_proj.weight", "F32", 2, {64, 64}}, {"h.0.mlp.c_fc.weight", "F32", 2, {64, 256}},
               {"h.0.mlp.c_proj.weight", "F32", 2, {256, 64}}};
    write_st(p, e, 5, 0, 0);
    const char *a[] = {"--config", cfg, "--weights", p, "--targets", "c_attn", "--method", "vera", "--r", "8", "--csv"};
    cr_assert_eq(run(a, 11), 0, "%s", err);
    cr_expect(strstr(out, ",vera,8,c_attn,1,200,"), "d_out 192 + r 8: %s", out);
    e[1].shape[1] = 190;
    write_st(p, e, 5, 0, 0);
    cr_expect_eq(run(a, 11), 2);
    cr_expect(strstr(err, "\"h.0.attn.c_attn.weight\"") && strstr(err, "[64, 190]"), "%s", err);
    write_st(p, e, 1, 0, 0);
    cr_expect_eq(run(a, 11), 2);
    cr_expect(strstr(err, "c_attn.weight"), "%s", err);
    rl_test_rmdir(dir);
}
