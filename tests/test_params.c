/* test_params.c -- `randlora params`: PEFT's own logged counts reproduced
 * exactly, the architecture table against hand sums and published model
 * sizes, --shapes and --targets parsing, and the command's output and exit
 * codes. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "params.h"
#include "rl_test_cmd.h"

TestSuite(params);

/* Count (arch, targets, method, r) through the functions the command uses. */
static params_result count(const char *arch, const char *targets, rl_method m, int r)
{
    const params_arch *a = params_arch_find(arch);
    cr_assert_not_null(a, "arch %s is not built in", arch);
    params_selection sel;
    cr_assert_eq(params_select(a, targets, &sel), RL_OK, "%s", rl_errmsg());
    params_result res;
    cr_assert_eq(params_count(m, r, sel.m, sel.n, &res), RL_OK, "%s", rl_errmsg());
    return res;
}

/* Run cmd_params with argv {"params", args...}, capturing stdout and stderr. */
static int run(const char *const *args, int n, char *out, size_t out_len, char *err, size_t err_len)
{
    return rl_test_run_cmd(cmd_params, "params", args, n, out, out_len, err, err_len);
}

static char out[1 << 16], err[4096];

/* ---- PEFT's anchors: method_comparison/MetaMathQA logs, Llama-3.2-3B with
 * q_proj and v_proj adapted (DESIGN.md, paper-results.md). ---- */

Test(params, anchor_randlora_r32)
{
    cr_expect_eq(count("llama-3.2-3b", "q_proj,v_proj", RL_METHOD_RANDLORA, 32).params, 9289728u);
}

Test(params, anchor_lora_r32)
{
    cr_expect_eq(count("llama-3.2-3b", "q_proj,v_proj", RL_METHOD_LORA, 32).params, 9175040u);
}

Test(params, anchor_lora_r64)
{
    cr_expect_eq(count("llama-3.2-3b", "q_proj,v_proj", RL_METHOD_LORA, 64).params, 18350080u);
}

Test(params, anchor_vera_r256)
{
    cr_expect_eq(count("llama-3.2-3b", "q_proj,v_proj", RL_METHOD_VERA, 256).params, 129024u);
}

/* ---- shared bases and checkpoint sizes ---- */

Test(params, bases_floats_llama32_qv)
{
    params_result rl = count("llama-3.2-3b", "q_proj,v_proj", RL_METHOD_RANDLORA, 32);
    cr_expect_eq(rl.max_out, 3072);
    cr_expect_eq(rl.max_in, 3072);
    cr_expect_eq(rl.layers, 56u);
    /* A (32, 1, 3072) + B (3072, ceil(3072/32) = 96, 32) */
    cr_expect_eq(rl.bases_floats, (uint64_t)32 * 3072 + (uint64_t)3072 * 96 * 32);
    cr_expect_eq(rl.ckpt_bytes, 4 * (rl.params + rl.bases_floats));
    /* PEFT <= 0.20: one more copy of A and B under each of the 56 modules. */
    cr_expect_eq(rl.ckpt_bytes_peft020, rl.ckpt_bytes + 4 * 56 * rl.bases_floats);

    params_result ve = count("llama-3.2-3b", "q_proj,v_proj", RL_METHOD_VERA, 256);
    cr_expect_eq(ve.bases_floats, (uint64_t)256 * 3072 + (uint64_t)3072 * 256); /* A (r, I) + B (O, r) */
    cr_expect_eq(ve.ckpt_bytes_peft020, ve.ckpt_bytes, "VeRA stores no per-layer aliases");

    params_result lo = count("llama-3.2-3b", "q_proj,v_proj", RL_METHOD_LORA, 32);
    cr_expect_eq(lo.bases_floats, 0u);
    cr_expect_eq(lo.ckpt_bytes, 4 * lo.params);
}

/* (O, I) is the element-wise maximum, not the largest module: k_proj and
 * down_proj together give (O, I) = (4096, 14336) on Llama 3 8B. */
Test(params, bases_use_elementwise_max)
{
    params_result r = count("llama-3-8b", "k,down_proj", RL_METHOD_RANDLORA, 64);
    cr_expect_eq(r.max_out, 4096);
    cr_expect_eq(r.max_in, 14336);
    cr_expect_eq(r.bases_floats, (uint64_t)64 * 4096 + (uint64_t)14336 * 64 * 64);
    params_result v = count("llama-3-8b", "k,down_proj", RL_METHOD_VERA, 16);
    cr_expect_eq(v.bases_floats, (uint64_t)16 * 14336 + (uint64_t)4096 * 16);
}

/* ---- the architecture table ---- */

/* LoRA r(in + out) summed by hand over every linear module. */
Test(params, lora_all_linear_hand_sums)
{
    /* Llama 3 8B, per layer: q 4096+4096, k 4096+1024, v 4096+1024,
     * o 4096+4096, gate/up 4096+14336, down 14336+4096; 32 layers. */
    uint64_t llama = 8 * (uint64_t)32 * (8192 + 5120 + 5120 + 8192 + 3 * 18432);
    cr_expect_eq(count("llama-3-8b", "all-linear", RL_METHOD_LORA, 8).params, llama);
    cr_expect_eq(count("llama-3-8b", "all-linear", RL_METHOD_LORA, 8).layers, 7u * 32);
    /* DINOv2 ViT-B/14: 4 x (768+768) + 2 x (768+3072), 12 layers. */
    uint64_t dino = 16 * (uint64_t)12 * (4 * 1536 + 2 * 3840);
    cr_expect_eq(count("vit-b-14", "all-linear", RL_METHOD_LORA, 16).params, dino);
    /* CLIP ViT-B/32, both towers: vision 12 x (4 x 1536 + 2 x 3840), text
     * 12 x (4 x 1024 + 2 x 2560), visual_projection 768+512, text_projection
     * 512+512. */
    uint64_t clip = 32 * ((uint64_t)12 * (4 * 1536 + 2 * 3840) + (uint64_t)12 * (4 * 1024 + 2 * 2560) +
                          1280 + 1024);
    cr_expect_eq(count("clip-vit-b-32", "all-linear", RL_METHOD_LORA, 32).params, clip);
    cr_expect_eq(count("clip-vit-b-32", "all-linear", RL_METHOD_LORA, 32).layers, 12u * 6 * 2 + 2);
}

/* The linear weights of the decoder stacks (method "full": out*in) plus the
 * token embeddings give the published model sizes, which ties the table's
 * shapes to the real checkpoints: Llama 3 8B 8.03B (embeddings and lm_head
 * 2 x 128256 x 4096), Llama 3.2 3B 3.21B (tied embeddings 128256 x 3072),
 * Qwen2 0.5B 0.494B (tied 151936 x 896); norms add < 0.01%. */
Test(params, full_weights_match_published_sizes)
{
    uint64_t l8 = count("llama-3-8b", "all-linear", RL_METHOD_FULL, 1).params;
    cr_expect_eq(l8, (uint64_t)32 * (2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 4096 * 14336));
    cr_expect(l8 + 2ull * 128256 * 4096 > 8025000000ull && l8 + 2ull * 128256 * 4096 < 8035000000ull);
    uint64_t l3 = count("llama-3.2-3b", "all-linear", RL_METHOD_FULL, 1).params;
    cr_expect(l3 + 128256ull * 3072 > 3210000000ull && l3 + 128256ull * 3072 < 3215000000ull, "%lu",
              (unsigned long)l3);
    uint64_t q = count("qwen2-0.5b", "all-linear", RL_METHOD_FULL, 1).params;
    cr_expect(q + 151936ull * 896 > 493000000ull && q + 151936ull * 896 < 495000000ull, "%lu",
              (unsigned long)q);
}

/* Every architecture: VeRA is sum(out) + r per module; RandLora's count at
 * r = 1 is mn(1 + mn) per module and at r >= max(mn) is r + mn per module. */
Test(params, every_arch_vera_and_randlora_limits)
{
    cr_assert_eq(params_n_archs(), 8);
    for (int i = 0; i < params_n_archs(); i++) {
        const params_arch *a = params_arch_at(i);
        cr_expect_eq(params_arch_find(a->name), a);
        for (const char *c = a->name; *c; c++)
            cr_expect((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.',
                      "%s: names are lowercase with hyphens", a->name);
        uint64_t outs = 0, layers = 0, rl1 = 0, rlbig = 0;
        for (int k = 0; k < a->n_modules; k++) {
            const params_module *m = &a->modules[k];
            uint64_t mn = (uint64_t)(m->d_out < m->d_in ? m->d_out : m->d_in);
            outs += (uint64_t)m->d_out * m->count;
            layers += (uint64_t)m->count;
            rl1 += mn * (1 + mn) * m->count;
            rlbig += (8192 + mn) * m->count;
        }
        cr_expect_eq(count(a->name, "all-linear", RL_METHOD_VERA, 256).params, outs + 256 * layers, "%s",
                     a->name);
        cr_expect_eq(count(a->name, "all-linear", RL_METHOD_RANDLORA, 1).params, rl1, "%s", a->name);
        cr_expect_eq(count(a->name, "all-linear", RL_METHOD_RANDLORA, 8192).params, rlbig, "%s", a->name);
        /* q,v picks two modules per block (per tower for CLIP). */
        cr_expect_eq(count(a->name, "q,v", RL_METHOD_LORA, 8).layers,
                     2 * (count(a->name, "q", RL_METHOD_LORA, 8).layers), "%s", a->name);
    }
}

Test(params, shapes_from_config)
{
    params_selection s;
    cr_assert_eq(params_select(params_arch_find("qwen2-0.5b"), "k_proj,o_proj", &s), RL_OK);
    cr_expect_eq(s.n, 2);
    cr_expect(s.m[0].d_out == 128 && s.m[0].d_in == 896 && s.m[0].count == 24, "k_proj 896 -> 2 x 64");
    cr_expect(s.m[1].d_out == 896 && s.m[1].d_in == 896, "o_proj 896 -> 896");
    cr_assert_eq(params_select(params_arch_find("llama-3-8b"), "down_proj", &s), RL_OK);
    cr_expect(s.m[0].d_out == 4096 && s.m[0].d_in == 14336 && s.m[0].count == 32);
    cr_assert_eq(params_select(params_arch_find("clip-vit-h-14"), "fc1", &s), RL_OK);
    cr_expect_eq(s.n, 2, "fc1 of both towers");
    cr_expect(s.m[0].d_out == 5120 && s.m[0].d_in == 1280 && s.m[0].count == 32);
    cr_expect(s.m[1].d_out == 4096 && s.m[1].d_in == 1024 && s.m[1].count == 24);
}

/* ---- --targets ---- */

Test(params, targets_names_aliases_suffixes)
{
    const params_arch *l = params_arch_find("llama-3.2-3b");
    params_selection a, b, c;
    cr_assert_eq(params_select(l, "q_proj,v_proj", &a), RL_OK);
    cr_assert_eq(params_select(l, "v, q", &b), RL_OK);
    cr_assert_eq(params_select(l, "self_attn.q_proj,self_attn.v_proj,q", &c), RL_OK);
    cr_expect_str_eq(a.targets, "q_proj+v_proj");
    cr_expect_str_eq(b.targets, "q_proj+v_proj", "table order, not command-line order");
    cr_expect_str_eq(c.targets, "q_proj+v_proj", "duplicates collapse");
    cr_expect_eq(c.n, 2);
    params_selection d;
    cr_assert_eq(params_select(params_arch_find("vit-b-14"), "attention.output.dense,o", &d), RL_OK);
    cr_expect_eq(d.n, 1);
    cr_expect_str_eq(d.targets, "dense");
    cr_expect_eq(params_select(params_arch_find("vit-b-14"), "ut.dense", &d), RL_EINVAL,
                 "a suffix must start at a dot");
}

Test(params, targets_unknown_names_the_item_and_lists_valid)
{
    params_selection s;
    cr_assert_eq(params_select(params_arch_find("llama-3-8b"), "q_proj,fc1", &s), RL_EINVAL);
    cr_expect(strstr(rl_errmsg(), "'fc1'") && strstr(rl_errmsg(), "down_proj") &&
              strstr(rl_errmsg(), "all-linear"), "%s", rl_errmsg());
    cr_expect_eq(params_select(params_arch_find("llama-3-8b"), "q,,v", &s), RL_EINVAL);
    cr_expect_eq(params_select(params_arch_find("llama-3-8b"), "", &s), RL_EINVAL);
}

/* ---- --shapes ---- */

Test(params, shapes_parse_good)
{
    params_selection s;
    cr_assert_eq(params_parse_shapes("768x768x24,3072x768x12", &s), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(s.n, 2);
    cr_expect(s.m[0].d_out == 768 && s.m[0].d_in == 768 && s.m[0].count == 24);
    cr_expect(s.m[1].d_out == 3072 && s.m[1].d_in == 768 && s.m[1].count == 12);
    cr_expect_str_eq(s.targets, "768x768x24+3072x768x12");
    params_result r;
    cr_assert_eq(params_count(RL_METHOD_LORA, 4, s.m, s.n, &r), RL_OK);
    cr_expect_eq(r.params, 4u * (24 * 1536 + 12 * 3840));
    cr_expect_eq(r.layers, 36u);
    cr_assert_eq(params_parse_shapes("40x64", &s), RL_OK);
    cr_expect(s.n == 1 && s.m[0].count == 1, "COUNT defaults to 1");
    cr_expect_str_eq(s.targets, "40x64x1");
    /* peft-semantics.md §2.2's example: q 64x64, v 40x64, down 96x24 at r=8
     * give A (8, 1, 64) and B (96, 8, 8). */
    cr_assert_eq(params_parse_shapes("64x64,40x64,96x24", &s), RL_OK);
    cr_assert_eq(params_count(RL_METHOD_RANDLORA, 8, s.m, s.n, &r), RL_OK);
    cr_expect_eq(r.bases_floats, 8u * 64 + 96u * 8 * 8);
    cr_expect_eq(r.params, (8u * 8 + 8 * 64) + (8 * 5 + 5 * 40) + (8 * 3 + 3 * 24));
}

Test(params, shapes_parse_bad_names_the_piece)
{
    static const char *const bad[][2] = {
        {"768x", "'768x'"},       {"x768", "'x768'"},           {"768x768x0", "'768x768x0'"},
        {"7x7x2x3", "'7x7x2x3'"}, {"768X768", "'768X768'"},     {"-5x3", "'-5x3'"},
        {"2000000x3", "'2000000x3'"}, {"8x8,3072xx7", "'3072xx7'"}, {"8x8,", "piece 2 is empty"},
        {"", "piece 1 is empty"}, {"8 x8", "'8 x8'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        params_selection s;
        cr_expect_eq(params_parse_shapes(bad[i][0], &s), RL_EINVAL, "'%s' accepted", bad[i][0]);
        cr_expect(strstr(rl_errmsg(), bad[i][1]) != NULL, "'%s': message '%s' does not name it", bad[i][0],
                  rl_errmsg());
    }
}

Test(params, count_rejects_bad_rank)
{
    params_selection s;
    params_result r;
    cr_assert_eq(params_parse_shapes("8x8", &s), RL_OK);
    cr_expect_eq(params_count(RL_METHOD_LORA, 0, s.m, s.n, &r), RL_EINVAL);
    cr_expect_eq(params_count(RL_METHOD_LORA, -4, s.m, s.n, &r), RL_EINVAL);
    cr_expect_eq(params_count(RL_METHOD_LORA, 4, s.m, 0, &r), RL_EINVAL);
}

/* ---- the command ---- */

Test(params, csv_header_and_row_exact)
{
    cr_expect_str_eq(PARAMS_CSV_HEADER, "arch,method,r,targets,layers,params,bases_floats");
    const char *args[] = {"--arch", "llama-3.2-3b", "--targets", "q_proj,v_proj", "--method", "randlora",
                          "--r", "32", "--csv"};
    cr_assert_eq(run(args, 9, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(out, "arch,method,r,targets,layers,params,bases_floats\n"
                          "llama-3.2-3b,randlora,32,q_proj+v_proj,56,9289728,9535488\n");
    cr_expect_str_eq(err, "");
}

Test(params, csv_shapes_row)
{
    const char *args[] = {"--shapes", "768x768x24,3072x768x12", "--method", "vera", "--r", "16", "--csv"};
    cr_assert_eq(run(args, 7, out, sizeof out, err, sizeof err), 0, "%s", err);
    /* VeRA: 24 x (768 + 16) + 12 x (3072 + 16); bases 16 x 768 + 3072 x 16 */
    cr_expect_str_eq(out, "arch,method,r,targets,layers,params,bases_floats\n"
                          "shapes,vera,16,768x768x24+3072x768x12,36,55872,61440\n");
}

Test(params, human_report_and_all_tables)
{
    const char *one[] = {"--arch", "llama-3.2-3b", "--targets", "q,v", "--method", "randlora", "--r", "32"};
    cr_assert_eq(run(one, 8, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_expect(strstr(out, "9,289,728") && strstr(out, "9,535,488") && strstr(out, "75,300,864") &&
              strstr(out, "2,211,250,176"), "%s", out);

    const char *all[] = {"--arch", "all"};
    cr_assert_eq(run(all, 2, out, sizeof out, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < params_n_archs(); i++)
        cr_expect(strstr(out, params_arch_at(i)->name) != NULL, "no table for %s", params_arch_at(i)->name);
    cr_expect(strstr(out, "9,175,040") && strstr(out, "18,350,080") && strstr(out, "129,024") &&
              strstr(out, "9,289,728"), "the anchors are in the llama-3.2-3b table");

    const char *csv[] = {"--arch", "all", "--csv"};
    cr_assert_eq(run(csv, 3, out, sizeof out, err, sizeof err), 0, "%s", err);
    int lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    cr_expect_eq(lines, 1 + params_n_archs() * 6 * 3, "header + arch x r x method rows");
    cr_expect(strstr(out, "llama-3.2-3b,vera,256,q_proj+v_proj,56,129024,") != NULL);

    const char *list[] = {"--list"};
    cr_assert_eq(run(list, 1, out, sizeof out, err, sizeof err), 0);
    lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    cr_expect_eq(lines, params_n_archs());
    cr_expect(strstr(out, "both towers") != NULL, "--list says CLIP counts both towers");
}

Test(params, bad_usage_exits_2_naming_the_problem)
{
    static const struct {
        int n;
        const char *args[10];
        const char *says;
    } cases[] = {
        {0, {NULL}, "missing --arch"},
        {8, {"--arch", "gpt-5", "--targets", "q", "--method", "lora", "--r", "8"}, "'gpt-5'"},
        {8, {"--arch", "llama-3-8b", "--targets", "fc1", "--method", "lora", "--r", "8"}, "'fc1'"},
        {8, {"--arch", "llama-3-8b", "--targets", "q", "--method", "dora", "--r", "8"}, "dora"},
        {8, {"--arch", "llama-3-8b", "--targets", "q", "--method", "lora", "--r", "0"}, "--r '0'"},
        {8, {"--arch", "llama-3-8b", "--targets", "q", "--method", "lora", "--r", "8x"}, "--r '8x'"},
        {6, {"--arch", "llama-3-8b", "--targets", "q", "--method", "lora"}, "missing --r"},
        {6, {"--arch", "llama-3-8b", "--targets", "q", "--r", "8"}, "missing --method"},
        {6, {"--arch", "llama-3-8b", "--method", "lora", "--r", "8"}, "missing --targets"},
        {6, {"--shapes", "8x8,3072xx7", "--method", "lora", "--r", "8"}, "'3072xx7'"},
        {8, {"--shapes", "8x8", "--targets", "q", "--method", "lora", "--r", "8"}, "--targets"},
        {8, {"--shapes", "8x8", "--arch", "vit-b-14", "--method", "lora", "--r", "8"}, "not both"},
        {4, {"--arch", "all", "--targets", "fc1"}, "'fc1'"},
        {4, {"--arch", "all", "--bases", "dens"}, "'dens'"},
        {1, {"--r"}, "--r needs a value"},
        {1, {"--frobnicate"}, "'--frobnicate'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run(cases[i].args, cases[i].n, out, sizeof out, err, sizeof err);
        cr_expect_eq(rc, 2, "case %zu: exit %d", i, rc);
        cr_expect(strstr(err, cases[i].says) != NULL, "case %zu: stderr '%s' lacks '%s'", i, err, cases[i].says);
        cr_expect(strstr(out, "arch,method") == NULL && strstr(out, "==") == NULL,
                  "case %zu: printed results on stdout", i);
    }
}
