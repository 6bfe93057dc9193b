/* test_candidate.c -- `randlora fixture` and `randlora parity --candidate`:
 * the float64 reference reproduces every PEFT-made truth.*, a new fixture
 * passes parity and carries PEFT's bases bit for bit, a faithful candidate
 * passes, and deliberately wrong ones (the paper's pairing of the flattened
 * factors, scaling alpha instead of alpha / r, a missing, misshapen or
 * misnamed tensor, altered bases) fail naming the tensor. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "candidate.h"
#include "commands.h"
#include "core/rl_tensor.h"
#include "fixture.h"
#include "io/rl_safetensors.h"
#include "rl_test.h"
#include "rl_test_cmd.h"

TestSuite(candidate, .init = rl_test_mark);

static const char *const refs[] = {
    "peft/lora_basic", "peft/lora_rslora", "peft/randlora_dense_square", "peft/randlora_dense_wide_in",
    "peft/randlora_dense_wide_out", "peft/randlora_shared_two_layers", "peft/randlora_sparse",
    "peft/randlora_very_sparse", "peft/vera_two_layers", "peft_extra/randlora_dense_three_layers",
    "peft_extra/randlora_dense_r1", "peft_extra/randlora_dense_r_gt_min", "peft_extra/randlora_sparse_two_layers",
    "peft_extra/randlora_very_sparse_two_layers", "peft_extra/randlora_dense_key_big", "peft_extra/vera_three_layers",
    "peft_extra/lora_r3", "peft_extra/lora_rslora_r6",
};
#define N_REFS (int)(sizeof refs / sizeof refs[0])

static char out[1 << 15], err[4096];

static void ref_path(int i, char *buf, size_t len) { snprintf(buf, len, "tests/fixtures/%s.safetensors", refs[i]); }

ParameterizedTestParameters(candidate, truth64_reproduces_peft_truth)
{
    static int idx[N_REFS];
    for (int i = 0; i < N_REFS; i++) idx[i] = i;
    return cr_make_param_array(int, idx, N_REFS);
}

/* The float64 reference against PEFT's own float64 runs (their truth.*). */
ParameterizedTest(int *i, candidate, truth64_reproduces_peft_truth)
{
    rl_test_mark();
    char p[256];
    ref_path(*i, p, sizeof p);
    double worst;
    cr_assert_eq(fixture_check_truth(p, &worst), RL_OK, "%s", rl_errmsg());
    cr_expect(worst >= 0, "%s has truth.* tensors", p);
    cr_expect(worst <= FIXTURE_TRUTH_TOL, "%s: %.3g", p, worst);
    rl_test_check_leak();
}

ParameterizedTestParameters(candidate, faithful_candidate_passes)
{
    static int idx[N_REFS];
    for (int i = 0; i < N_REFS; i++) idx[i] = i;
    return cr_make_param_array(int, idx, N_REFS);
}

/* This implementation written out as a candidate passes every file. */
ParameterizedTest(int *i, candidate, faithful_candidate_passes)
{
    rl_test_mark();
    char p[256], dir[64], c[128];
    ref_path(*i, p, sizeof p);
    rl_test_tmpdir(dir, "rl_cand_");
    snprintf(c, sizeof c, "%s/cand.safetensors", dir);
    cr_assert_eq(fixture_write_candidate(p, RL_PAIRING_PEFT, 1.0, true, c), RL_OK, "%s", rl_errmsg());
    parity_result res;
    cr_assert_eq(parity_check_candidate(p, c, PARITY_DEFAULT_TOL, &res), RL_OK, "%s", rl_errmsg());
    cr_expect(res.pass, "%s: %s %g", p, res.fail_what, res.fail_err);
    cr_expect(res.bases_mismatch == 0 && !res.bases_absent);
    cr_expect(res.max_rel <= PARITY_DEFAULT_TOL && res.max_rel_what[0]);
    unlink(c);
    rl_test_rmdir(dir);
    rl_test_check_leak();
}

static int parity(const char *const *a, int n)
{
    return rl_test_run_cmd(cmd_parity, "parity", a, n, out, sizeof out, err, sizeof err);
}

RL_TEST(candidate, wrong_pairing_and_scaling_fail_naming_the_tensor)
{
    char dir[64], c[128];
    const char *ref = "tests/fixtures/peft/randlora_dense_wide_in.safetensors"; /* r = 6, nb = 4 */
    rl_test_tmpdir(dir, "rl_cand_");
    snprintf(c, sizeof c, "%s/cand.safetensors", dir);
    cr_assert_eq(fixture_write_candidate(ref, RL_PAIRING_PAPER, 1.0, true, c), RL_OK, "%s", rl_errmsg());
    const char *a[] = {"--candidate", c, ref};
    cr_expect_eq(parity(a, 3), 1);
    cr_expect(strstr(out, "FAIL ") && strstr(out, "layers.0.output (") && strstr(out, "0 passed, 1 failed"), "%s", out);
    cr_assert_eq(fixture_write_candidate(ref, RL_PAIRING_PEFT, 6.0, true, c), RL_OK, "%s", rl_errmsg()); /* alpha, not alpha / r */
    cr_expect_eq(parity(a, 3), 1);
    cr_expect(strstr(out, "FAIL ") && strstr(out, "layers.0.output (") && strstr(out, "truth.output"), "%s", out);
    /* LoRA too: alpha instead of alpha / r */
    const char *lref = "tests/fixtures/peft/lora_basic.safetensors";
    cr_assert_eq(fixture_write_candidate(lref, RL_PAIRING_PEFT, 4.0, false, c), RL_OK, "%s", rl_errmsg());
    const char *b[] = {"--candidate", c, lref};
    cr_expect_eq(parity(b, 3), 1);
    cr_expect(strstr(out, "layers.0.output ("), "%s", out);
    /* and the faithful one, through the command */
    cr_assert_eq(fixture_write_candidate(ref, RL_PAIRING_PEFT, 1.0, false, c), RL_OK, "%s", rl_errmsg());
    cr_expect_eq(parity(a, 3), 0, "%s", out);
    cr_expect(strstr(out, "PASS ") && strstr(out, "bases=not-given") && strstr(out, "1 passed, 0 failed"), "%s", out);
    unlink(c);
    rl_test_rmdir(dir);
}

/* Copy a safetensors file, dropping `drop`, scaling element 0 of `bump`,
 * replacing `reshape` by a 1-D tensor of its element count, and adding an
 * `extra` tensor (each may be NULL). */
static void rewrite(const char *src, const char *dst, const char *drop, const char *bump, const char *reshape,
                    const char *extra)
{
    rl_st_file *f;
    cr_assert_eq(rl_st_open(&f, src), RL_OK, "%s", rl_errmsg());
    rl_st_writer *w;
    cr_assert_eq(rl_st_writer_new(&w), RL_OK);
    for (size_t i = 0; i < rl_st_count(f); i++) {
        const rl_st_tensor *t = rl_st_at(f, i);
        if (drop && !strcmp(t->name, drop)) continue;
        float *v = rl_alloc_floats(t->numel);
        cr_assert(v);
        rl_st_to_f32(t, v);
        int shape[8];
        for (int d = 0; d < t->ndim; d++) shape[d] = (int)t->shape[d];
        int ndim = t->ndim;
        if (bump && !strcmp(t->name, bump)) v[0] = v[0] * 1.5f + 1.0f;
        if (reshape && !strcmp(t->name, reshape)) ndim = 1, shape[0] = (int)t->numel;
        cr_assert_eq(rl_st_writer_add(w, t->name, RL_DT_F32, ndim, shape, v), RL_OK);
        rl_dealloc(v);
    }
    if (extra) {
        float z[2] = {0, 0};
        int s[1] = {2};
        cr_assert_eq(rl_st_writer_add(w, extra, RL_DT_F32, 1, s, z), RL_OK);
    }
    cr_assert_eq(rl_st_writer_save(w, dst), RL_OK, "%s", rl_errmsg());
    rl_st_writer_free(w);
    rl_st_close(f);
}

RL_TEST(candidate, incomplete_or_misnamed_candidates)
{
    char dir[64], c[128], d[128];
    const char *ref = "tests/fixtures/peft/randlora_shared_two_layers.safetensors";
    rl_test_tmpdir(dir, "rl_cand_");
    snprintf(c, sizeof c, "%s/cand.safetensors", dir);
    snprintf(d, sizeof d, "%s/bad.safetensors", dir);
    cr_assert_eq(fixture_write_candidate(ref, RL_PAIRING_PEFT, 1.0, true, c), RL_OK, "%s", rl_errmsg());
    const char *a[] = {"--candidate", d, ref};
    rewrite(c, d, "layers.1.grad.randlora_gamma", NULL, NULL, NULL);
    cr_expect_eq(parity(a, 3), 1);
    cr_expect(strstr(out, "layers.1.grad.randlora_gamma is missing from the candidate"), "%s", out);
    rewrite(c, d, NULL, NULL, "layers.0.delta_weight", NULL);
    cr_expect_eq(parity(a, 3), 1);
    cr_expect(strstr(out, "layers.0.delta_weight has shape [2000]") && strstr(out, "[100, 20]"), "%s", out);
    rewrite(c, d, NULL, "layers.1.grad.randlora_lambda", NULL, NULL);
    cr_expect_eq(parity(a, 3), 1);
    cr_expect(strstr(out, "layers.1.grad.randlora_lambda ("), "%s", out);
    rewrite(c, d, NULL, "randlora_B", NULL, NULL);
    cr_expect_eq(parity(a, 3), 1);
    cr_expect(strstr(out, "randlora_B: 1 elements differ"), "%s", out);
    /* input errors: exit 2 naming the key or file */
    rewrite(c, d, NULL, NULL, NULL, "layers.0.grad.lambda");
    cr_expect_eq(parity(a, 3), 2);
    cr_expect(strstr(err, "'layers.0.grad.lambda' is not a candidate key"), "%s", err);
    rewrite(c, d, NULL, NULL, NULL, "layers.2.output");
    cr_expect_eq(parity(a, 3), 2, "the reference has 2 layers");
    const char *b[] = {"--candidate", "/nonexistent/cand.safetensors", ref};
    cr_expect_eq(parity(b, 3), 2);
    cr_expect(strstr(err, "/nonexistent/cand.safetensors"), "%s", err);
    const char *e[] = {"--candidate", c, ref, ref};
    cr_expect_eq(parity(e, 4), 2);
    const char *g[] = {"--candidate", c};
    cr_expect_eq(parity(g, 2), 2);
    const char *h[] = {"--candidate", c, "--tol", "-1", ref};
    cr_expect_eq(parity(h, 5), 2);
    const char *k[] = {"--candidate", c, "--tol", "1e-5", ref};
    cr_expect_eq(parity(k, 5), 0, "%s%s", out, err);
    unlink(c);
    unlink(d);
    rl_test_rmdir(dir);
}

/* ---- randlora fixture ---- */

static int fixture(const char *const *a, int n)
{
    return rl_test_run_cmd(cmd_fixture, "fixture", a, n, out, sizeof out, err, sizeof err);
}

static void expect_same_tensor(const char *fa, const char *fb, const char *name)
{
    rl_st_file *a, *b;
    cr_assert_eq(rl_st_open(&a, fa), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(rl_st_open(&b, fb), RL_OK, "%s", rl_errmsg());
    const rl_st_tensor *x = rl_st_find(a, name), *y = rl_st_find(b, name);
    cr_assert(x && y, "%s in both", name);
    cr_expect(x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) == 0, "%s differs", name);
    rl_st_close(a);
    rl_st_close(b);
}

RL_TEST(candidate, fixture_writes_a_verified_reference)
{
    char dir[64], p[128];
    rl_test_tmpdir(dir, "rl_fix_");
    snprintf(p, sizeof p, "%s/fx.safetensors", dir);
    /* randlora_dense_square's configuration: the same bases and init, bit for bit */
    const char *a[] = {"--method", "randlora", "--r", "8", "--shapes", "32x32", "--tokens", "6", "--alpha", "160",
                       "--key", "0", "--out", p};
    cr_assert_eq(fixture(a, 14), 0, "%s", err);
    cr_expect(strstr(out, "verified against 12 PEFT-made randlora files"), "%s", out);
    const char *sq = "tests/fixtures/peft/randlora_dense_square.safetensors";
    expect_same_tensor(p, sq, "randlora_A");
    expect_same_tensor(p, sq, "randlora_B");
    expect_same_tensor(p, sq, "layers.0.init.randlora_gamma");
    rl_st_file *f;
    cr_assert_eq(rl_st_open(&f, p), RL_OK);
    cr_expect_str_eq(rl_st_meta(f, "generator"), "randlora-c");
    cr_expect(strstr(rl_st_meta(f, "verified_against"), "randlora_dense_square.safetensors"));
    cr_expect_null(rl_st_meta(f, "peft_commit"), "not PEFT-made");
    rl_st_close(f);
    parity_result res;
    cr_assert_eq(parity_check_file(p, PARITY_DEFAULT_TOL, &res), RL_OK, "%s", rl_errmsg());
    cr_expect(res.pass && res.truth_out_rel <= 1e-5 && res.truth_grad_rel <= 1e-5, "%s", res.fail_what);
    /* other methods and kinds, several layers */
    const char *b[][12] = {
        {"--method", "randlora", "--r", "5", "--shapes", "40x24,24x40x2", "--very_sparse", "--key", "3", "--out", p},
        {"--method", "lora", "--r", "3", "--shapes", "14x22", "--rslora", "--alpha", "6", "--out", p},
        {"--method", "vera", "--r", "4", "--shapes", "20x12,12x30", "--d-initial", "0.5", "--out", p},
    };
    int nb[3] = {11, 11, 10};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(fixture(b[i], nb[i]), 0, "%d: %s", i, err);
        cr_assert_eq(parity_check_file(p, PARITY_DEFAULT_TOL, &res), RL_OK, "%s", rl_errmsg());
        cr_expect(res.pass, "%d: %s", i, res.fail_what);
        /* and the numpy-free candidate path on it */
        char c[128];
        snprintf(c, sizeof c, "%s/c.safetensors", dir);
        cr_assert_eq(fixture_write_candidate(p, RL_PAIRING_PEFT, 1.0, true, c), RL_OK);
        cr_assert_eq(parity_check_candidate(p, c, PARITY_DEFAULT_TOL, &res), RL_OK);
        cr_expect(res.pass, "%d: %s", i, res.fail_what);
        unlink(c);
    }
    unlink(p);
    rl_test_rmdir(dir);
}

RL_TEST(candidate, fixture_bad_usage_exits_2)
{
    char dir[64], p[128];
    rl_test_tmpdir(dir, "rl_fix_");
    snprintf(p, sizeof p, "%s/fx.safetensors", dir);
    static const struct { const char *args[10]; int n; const char *want; } cases[] = {
        {{"--method", "lora", "--r", "2", "--shapes", "8x8"}, 6, "missing --out"},
        {{"--method", "full", "--r", "2", "--shapes", "8x8", "--out", "X"}, 8, "--method 'full'"},
        {{"--method", "lora", "--r", "0", "--shapes", "8x8", "--out", "X"}, 8, "--r '0'"},
        {{"--method", "lora", "--r", "2", "--shapes", "8y8", "--out", "X"}, 8, "8y8"},
        {{"--method", "lora", "--r", "2", "--shapes", "8x8", "--sparse", "--out", "X"}, 9, "--sparse is for"},
        {{"--method", "vera", "--r", "2", "--shapes", "8x8", "--alpha", "3", "--out", "X"}, 10, "--alpha has no meaning"},
        {{"--method", "lora", "--r", "2", "--shapes", "8x8", "--tokens", "-3", "--out", "X"}, 10, "--tokens '-3'"},
        {{"--method", "lora", "--r", "2", "--shapes", "100000x8", "--out", "X"}, 8, "too large"},
        {{"--method", "lora", "--r", "2", "--shapes", "8x8", "--bogus", "X"}, 8, "unknown flag '--bogus'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_expect_eq(fixture(cases[i].args, cases[i].n), 2, "case %zu", i);
        cr_expect(strstr(err, cases[i].want), "case %zu: %s", i, err);
    }
    const char *v[] = {"--method", "lora", "--r", "2", "--shapes", "8x8", "--verify", "/nonexistent", "--out", p};
    cr_expect_eq(fixture(v, 10), 2);
    cr_expect(strstr(err, "/nonexistent"), "%s", err);
    /* a folder without PEFT-made files vouches for nothing: no file written */
    const char *e[] = {"--method", "lora", "--r", "2", "--shapes", "8x8", "--verify", dir, "--out", p};
    cr_expect_eq(fixture(e, 10), 1);
    cr_expect(strstr(err, "no PEFT-made lora reference"), "%s", err);
    cr_expect(access(p, F_OK) != 0);
    rl_test_rmdir(dir);
}
