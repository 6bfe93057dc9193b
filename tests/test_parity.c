/* test_parity.c -- every PEFT reference file passes `randlora parity`, and the
 * checker fails when the data disagree (so a PASS means something). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rl_budget.h"
#include "core/rl_tensor.h"
#include "rl_test.h"
#include "io/rl_safetensors.h"
#include "parity.h"

static const char *const shared_files[] = {
    "lora_basic", "lora_rslora", "randlora_dense_square", "randlora_dense_wide_in",
    "randlora_dense_wide_out", "randlora_shared_two_layers", "randlora_sparse",
    "randlora_very_sparse", "vera_two_layers",
};
/* Made by tests/gen/gen_parity.py from PEFT's own code, with real parameter
 * gradients (tests/fixtures/peft_extra/README.md). */
static const char *const extra_files[] = {
    "randlora_dense_three_layers", "randlora_dense_r1", "randlora_dense_r_gt_min",
    "randlora_sparse_two_layers", "randlora_very_sparse_two_layers", "randlora_dense_key_big",
    "vera_three_layers", "lora_r3", "lora_rslora_r6",
};

typedef struct {
    int extra; /* 0: tests/fixtures/peft, 1: tests/fixtures/peft_extra */
    int index;
} pcase;

TestSuite(parity, .init = rl_test_mark);

static void path_of(const pcase *c, char *buf, size_t len)
{
    snprintf(buf, len, "tests/fixtures/%s/%s.safetensors", c->extra ? "peft_extra" : "peft",
             c->extra ? extra_files[c->index] : shared_files[c->index]);
}

ParameterizedTestParameters(parity, reference_file_passes)
{
    static pcase cases[18];
    for (int i = 0; i < 9; i++) {
        cases[i] = (pcase){0, i};
        cases[9 + i] = (pcase){1, i};
    }
    return cr_make_param_array(pcase, cases, 18);
}

ParameterizedTest(pcase *c, parity, reference_file_passes)
{
    char path[256];
    path_of(c, path, sizeof path);
    parity_result res;
    rl_status st = parity_check_file(path, PARITY_DEFAULT_TOL, &res);
    cr_assert_eq(st, RL_OK, "%s: %s", path, rl_errmsg());
    cr_assert(res.pass, "%s: %s err %g", path, res.fail_what, res.fail_err);
    cr_assert(res.max_rel <= PARITY_DEFAULT_TOL);
    if (strcmp(res.method, "lora") != 0) {
        /* bases regenerated from the key: bit-exact (VeRA would be allowed 1 ulp) */
        cr_assert_eq(res.bases_mismatch, 0, "%s: %ld base elements differ", path, res.bases_mismatch);
        cr_assert(res.init_checked >= 2 * res.layers, "init values were compared");
    }
    /* every file carries PEFT's real parameter gradients: none is all zero */
    cr_assert_eq(res.ref_grad_zero, 0, "%s: unexpected all-zero reference gradient", path);
    cr_assert(res.grad_rel > 0.0 && res.grad_rel <= PARITY_DEFAULT_TOL, "%s: grad err %g", path, res.grad_rel);
    if (strcmp(res.method, "lora") != 0)
        cr_assert(res.param_grad_rel > 0.0, "%s: parameter gradients were compared", path);
    /* Against the float64 truth, where the file has it: the same float32
     * bound as against PEFT (reductions of at most a few hundred terms,
     * relative rounding ~1e-7 each side). */
    cr_assert(res.truth_out_rel <= PARITY_DEFAULT_TOL && res.truth_dx_rel <= PARITY_DEFAULT_TOL, "%s", path);
    if (strcmp(res.method, "lora") != 0)
        cr_assert(res.truth_grad_rel >= 0.0, "%s: truth.grad.<param> present and compared", path);
    cr_assert(res.truth_grad_rel <= PARITY_DEFAULT_TOL, "%s: truth grad err %g", path, res.truth_grad_rel);
    rl_test_check_leak();
}

/* Copy a fixture, applying one change: scale tensor `name` by `factor`, or
 * set metadata `mkey` to `mval`. */
static void write_variant(const char *src, const char *dst, const char *name, float factor,
                          const char *mkey, const char *mval)
{
    rl_st_file *f = NULL;
    cr_assert_eq(rl_st_open(&f, src), RL_OK, "%s", rl_errmsg());
    rl_st_writer *w = NULL;
    cr_assert_eq(rl_st_writer_new(&w), RL_OK);
    static const char *const keys[] = {"format", "method", "r", "tokens", "layers", "projection_prng_key",
                                       "alpha", "use_rslora", "sparse", "very_sparse", "bases_dtype", "d_initial"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *v = rl_st_meta(f, keys[k]);
        if (mkey && strcmp(mkey, keys[k]) == 0) v = mval;
        if (v) cr_assert_eq(rl_st_writer_meta(w, keys[k], v), RL_OK);
    }
    for (size_t i = 0; i < rl_st_count(f); i++) {
        const rl_st_tensor *t = rl_st_at(f, i);
        float *buf = malloc((t->numel ? t->numel : 1) * sizeof(float));
        rl_st_to_f32(t, buf);
        if (name && strcmp(t->name, name) == 0)
            for (size_t j = 0; j < t->numel; j++) buf[j] *= factor;
        int shape[RL_ST_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++) shape[d] = (int)t->shape[d];
        cr_assert_eq(rl_st_writer_add(w, t->name, t->dtype, t->ndim, shape, buf), RL_OK);
        free(buf);
    }
    cr_assert_eq(rl_st_writer_save(w, dst), RL_OK, "%s", rl_errmsg());
    rl_st_writer_free(w);
    rl_st_close(f);
}

static void tmp_path(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "/tmp/rl_parity_%ld_%s.safetensors", (long)getpid(), tag);
}

RL_TEST(parity, unchanged_copy_still_passes)
{
    char p[256];
    tmp_path(p, sizeof p, "copy");
    write_variant("tests/fixtures/peft/randlora_dense_square.safetensors", p, NULL, 1.0f, NULL, NULL);
    parity_result res;
    cr_assert_eq(parity_check_file(p, PARITY_DEFAULT_TOL, &res), RL_OK, "%s", rl_errmsg());
    cr_assert(res.pass);
    unlink(p);
}

RL_TEST(parity, detects_wrong_output)
{
    char p[256];
    tmp_path(p, sizeof p, "out");
    /* 1e-4 relative is 10x the tolerance */
    write_variant("tests/fixtures/peft/randlora_dense_square.safetensors", p, "layers.0.expect.output",
                  1.0001f, NULL, NULL);
    parity_result res;
    cr_assert_eq(parity_check_file(p, PARITY_DEFAULT_TOL, &res), RL_OK);
    cr_assert_not(res.pass);
    cr_assert_str_eq(res.fail_what, "layers.0.expect.output");
    cr_assert(res.fail_err > 5e-5 && res.fail_err < 2e-4, "err %g", res.fail_err);
    unlink(p);
}

RL_TEST(parity, detects_wrong_gradient)
{
    char p[256];
    tmp_path(p, sizeof p, "grad");
    write_variant("tests/fixtures/peft_extra/randlora_dense_three_layers.safetensors", p,
                  "layers.2.expect.grad.randlora_gamma", 1.001f, NULL, NULL);
    parity_result res;
    cr_assert_eq(parity_check_file(p, PARITY_DEFAULT_TOL, &res), RL_OK);
    cr_assert_not(res.pass);
    cr_assert_str_eq(res.fail_what, "layers.2.expect.grad.randlora_gamma");
    unlink(p);
}

RL_TEST(parity, detects_bases_from_another_key)
{
    char p[256];
    tmp_path(p, sizeof p, "key");
    write_variant("tests/fixtures/peft/vera_two_layers.safetensors", p, NULL, 1.0f,
                  "projection_prng_key", "1");
    parity_result res;
    cr_assert_eq(parity_check_file(p, PARITY_DEFAULT_TOL, &res), RL_OK);
    cr_assert_not(res.pass);
    cr_assert(strstr(res.fail_what, "vera_A") != NULL, "%s", res.fail_what);
    cr_assert(res.bases_mismatch > 0);
    unlink(p);
}

RL_TEST(parity, detects_wrong_pairing_or_scaling)
{
    char p[256];
    tmp_path(p, sizeof p, "alpha");
    /* a different alpha changes the scaling: the outputs must no longer match */
    write_variant("tests/fixtures/peft/randlora_sparse.safetensors", p, NULL, 1.0f, "alpha", "161");
    parity_result res;
    cr_assert_eq(parity_check_file(p, PARITY_DEFAULT_TOL, &res), RL_OK);
    cr_assert_not(res.pass);
    unlink(p);
}

RL_TEST(parity, bad_files_are_errors_not_crashes)
{
    parity_result res;
    cr_assert_eq(parity_check_file("tests/fixtures/peft/no_such_file.safetensors", 1e-5, &res), RL_EIO);
    cr_assert_not(res.pass);
    char p[256];
    tmp_path(p, sizeof p, "meta");
    write_variant("tests/fixtures/peft/lora_basic.safetensors", p, NULL, 1.0f, "r", "four");
    cr_assert_eq(parity_check_file(p, 1e-5, &res), RL_EFORMAT);
    cr_assert(strstr(rl_errmsg(), "'r'") != NULL, "%s", rl_errmsg());
    write_variant("tests/fixtures/peft/lora_basic.safetensors", p, NULL, 1.0f, "format", "other");
    cr_assert_eq(parity_check_file(p, 1e-5, &res), RL_EFORMAT);
    cr_assert(strstr(rl_errmsg(), "peft-parity-v1") != NULL, "%s", rl_errmsg());
    write_variant("tests/fixtures/peft/randlora_dense_square.safetensors", p, NULL, 1.0f, "r", "0");
    cr_assert_eq(parity_check_file(p, 1e-5, &res), RL_EFORMAT);
    unlink(p);
}

/* A reference file whose parameter gradient is all zero (the defect of the
 * first shared files) fails, naming the tensor; the finite-difference guard
 * still says that ours agrees with the file's own loss. */
RL_TEST(parity, all_zero_reference_gradient_fails_the_file)
{
    const char *files[2] = {"tests/fixtures/peft/randlora_dense_square.safetensors",
                            "tests/fixtures/peft/vera_two_layers.safetensors"};
    const char *zeroed[2] = {"layers.0.expect.grad.randlora_gamma", "layers.1.expect.grad.vera_lambda_b"};
    for (int i = 0; i < 2; i++) {
        char p[256];
        tmp_path(p, sizeof p, "zero");
        write_variant(files[i], p, zeroed[i], 0.0f, NULL, NULL);
        parity_result res;
        cr_assert_eq(parity_check_file(p, PARITY_DEFAULT_TOL, &res), RL_OK, "%s", rl_errmsg());
        cr_assert_not(res.pass, "%s: a zeroed gradient must fail", zeroed[i]);
        cr_assert_eq(res.ref_grad_zero, 1);
        cr_assert(strstr(res.fail_what, zeroed[i]) != NULL, "%s", res.fail_what);
        cr_assert(strstr(res.fail_what, "all zero") && strstr(res.fail_what, "agrees with"), "%s", res.fail_what);
        cr_assert(res.fd_max_err <= PARITY_FD_TOL, "fd err %g", res.fd_max_err);
        unlink(p);
    }
}

/* A wrong parameter gradient in the reference fails at the usual tolerance
 * (no finite-difference fallback hides it). */
RL_TEST(parity, detects_wrong_parameter_gradient_in_shared_file)
{
    char p[256];
    tmp_path(p, sizeof p, "lam");
    write_variant("tests/fixtures/peft/randlora_sparse.safetensors", p, "layers.0.expect.grad.randlora_lambda",
                  1.0001f, NULL, NULL);
    parity_result res;
    cr_assert_eq(parity_check_file(p, PARITY_DEFAULT_TOL, &res), RL_OK);
    cr_assert_not(res.pass);
    cr_assert_str_eq(res.fail_what, "layers.0.expect.grad.randlora_lambda");
    unlink(p);
}

RL_TEST(parity, ulp_distance)
{
    cr_assert_eq(parity_ulp_diff(1.0f, 1.0f), 0u);
    cr_assert_eq(parity_ulp_diff(1.0f, nextafterf(1.0f, 2.0f)), 1u);
    cr_assert_eq(parity_ulp_diff(-0.0f, 0.0f), 0u);
    cr_assert_eq(parity_ulp_diff(nextafterf(0.0f, -1.0f), nextafterf(0.0f, 1.0f)), 2u);
    cr_assert(isinf(parity_rel_err((float[]){NAN}, (float[]){1.0f}, 1)));
}

/* ---- hostile files and outputs (issue 15) ----
 * The memory cases run the CLI under RLIMIT_AS = 1 GB (rl_test_cli) and
 * expect exit 2 naming the field long before the timeout: the old code
 * allocated 2-15 GB there, or ran for up to a minute. */
#define HOSTILE_AS ((size_t)1 << 30)
#define HOSTILE_TIMEOUT_S (RL_TEST_ASAN ? 60.0 : 20.0)

/* Defect 1: `parity --out FILE FILE` replaced its own input. By path, by
 * hard link and by symbolic link: exit 2 and the input untouched. */
RL_TEST(parity, out_never_overwrites_an_input)
{
    const char *src = "tests/fixtures/peft/lora_basic.safetensors";
    char in[256], hard[256], sym[256], csv[256];
    tmp_path(in, sizeof in, "in");
    tmp_path(hard, sizeof hard, "hard");
    tmp_path(sym, sizeof sym, "sym");
    snprintf(csv, sizeof csv, "/tmp/rl_parity_%ld_out.csv", (long)getpid());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, in);
    cr_assert_eq(system(cmd), 0);
    unlink(hard);
    unlink(sym);
    cr_assert_eq(link(in, hard), 0);
    cr_assert_eq(symlink(in, sym), 0);
    const char *outs[3] = {in, hard, sym};
    for (int k = 0; k < 3; k++) {
        rl_test_run r;
        rl_test_cli(&r, (const char *const[]){"parity", "--out", outs[k], in, NULL}, 0, 0, HOSTILE_TIMEOUT_S);
        RL_TEST_EXPECT_EXIT(&r, 2, "refusing to overwrite");
        cr_assert(rl_test_same_file(in, src), "--out %s changed the input", outs[k]);
    }
    rl_test_run r;
    rl_test_cli(&r, (const char *const[]){"parity", "--out", csv, in, NULL}, 0, 0, HOSTILE_TIMEOUT_S);
    RL_TEST_EXPECT_EXIT(&r, 0, "1 passed, 0 failed");
    cr_assert_eq(access(csv, R_OK), 0, "the CSV was not written");
    unlink(csv);
    unlink(sym);
    unlink(hard);
    unlink(in);
}

/* Defects 2 and 3: counts in the metadata. A large `tokens` or `r` no
 * longer sizes memory (checked against the tensors the file holds), and a
 * value past 32 bits is out of range, never truncated (4294967304 = 2^32 + 8
 * was read as 8, 4294967302 as 6). Under 1 GB of address space: exit 2,
 * naming the field. */
RL_TEST(parity, metadata_counts_are_strict_and_checked_against_the_file)
{
    static const struct { const char *file, *key, *value, *must; } cases[] = {
        {"lora_basic", "tokens", "1000000000", "metadata 'tokens' = 1000000000"},
        {"randlora_dense_square", "tokens", "1000000000", "metadata 'tokens' = 1000000000"},
        {"randlora_dense_square", "r", "100000000", "metadata 'r' = 100000000"},
        {"vera_two_layers", "r", "2000000000", "metadata 'r' = 2000000000"},
        {"randlora_dense_square", "r", "4294967304", "metadata 'r' '4294967304' is outside 1..2147483647"},
        {"lora_basic", "tokens", "4294967302", "metadata 'tokens' '4294967302' is outside 1..2147483647"},
        {"lora_basic", "r", "3abc", "metadata 'r' '3abc' is not an integer"},
        {"lora_basic", "layers", "-1", "metadata 'layers' '-1' is outside 1..64"},
        {"randlora_sparse", "projection_prng_key", "18446744073709551616", "'projection_prng_key'"},
        {"lora_basic", "alpha", "nan", "metadata 'alpha' 'nan' is not a number"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char src[256], p[256];
        snprintf(src, sizeof src, "tests/fixtures/peft/%s.safetensors", cases[k].file);
        tmp_path(p, sizeof p, "count");
        write_variant(src, p, NULL, 1.0f, cases[k].key, cases[k].value);
        parity_result res;
        cr_assert_eq(parity_check_file(p, PARITY_DEFAULT_TOL, &res), RL_EFORMAT, "%s %s=%s: %s", cases[k].file,
                     cases[k].key, cases[k].value, rl_errmsg());
        cr_assert(strstr(rl_errmsg(), cases[k].must), "%s", rl_errmsg());
        for (int cmd = 0; cmd < 2; cmd++) {
            rl_test_run r;
            const char *const parity_args[] = {"parity", p, NULL}, *const rank_args[] = {"rank", "--fixture", p, NULL};
            rl_test_cli(&r, cmd ? rank_args : parity_args, HOSTILE_AS, 0, HOSTILE_TIMEOUT_S);
            RL_TEST_EXPECT_EXIT(&r, 2, cases[k].must);
        }
        unlink(p);
    }
}

/* A RandLora file whose two layers are 1 x N and N x 1: PEFT sizes the
 * shared bases by the largest d_out and d_in, so they are N x N (1.6 GB for
 * N = 20,000, r = 8) though the file is 160 kB. Only what
 * parity_setup_read looks at is written. */
static void write_wide_randlora(const char *path, int N)
{
    rl_st_writer *w = NULL;
    cr_assert_eq(rl_st_writer_new(&w), RL_OK);
    static const char *const meta[][2] = {{"format", "peft-parity-v1"}, {"method", "randlora"}, {"r", "8"},
                                          {"layers", "2"}, {"tokens", "1"}, {"alpha", "16"}, {"sparse", "false"},
                                          {"very_sparse", "false"}, {"projection_prng_key", "0"}};
    for (size_t k = 0; k < sizeof meta / sizeof meta[0]; k++)
        cr_assert_eq(rl_st_writer_meta(w, meta[k][0], meta[k][1]), RL_OK);
    float *z = calloc((size_t)N, sizeof(float));
    cr_assert_eq(rl_st_writer_add(w, "layers.0.weight", RL_DT_F32, 2, (int[]){1, N}, z), RL_OK);
    cr_assert_eq(rl_st_writer_add(w, "layers.0.x", RL_DT_F32, 2, (int[]){1, N}, z), RL_OK);
    cr_assert_eq(rl_st_writer_add(w, "layers.0.randlora_lambda", RL_DT_F32, 2, (int[]){8, 1}, z), RL_OK);
    cr_assert_eq(rl_st_writer_add(w, "layers.1.weight", RL_DT_F32, 2, (int[]){N, 1}, z), RL_OK);
    cr_assert_eq(rl_st_writer_add(w, "layers.1.x", RL_DT_F32, 2, (int[]){1, 1}, z), RL_OK);
    cr_assert_eq(rl_st_writer_add(w, "layers.1.randlora_lambda", RL_DT_F32, 2, (int[]){8, 1}, z), RL_OK);
    cr_assert_eq(rl_st_writer_save(w, path), RL_OK, "%s", rl_errmsg());
    rl_st_writer_free(w);
    free(z);
}

RL_TEST(parity, shared_bases_are_budgeted_before_they_are_drawn)
{
    char p[256];
    tmp_path(p, sizeof p, "wide");
    write_wide_randlora(p, 20000);
    for (int cmd = 0; cmd < 2; cmd++) {
        rl_test_run r;
        const char *const parity_args[] = {"parity", p, NULL}, *const rank_args[] = {"rank", "--fixture", p, NULL};
        rl_test_cli(&r, cmd ? rank_args : parity_args, HOSTILE_AS, 0, HOSTILE_TIMEOUT_S);
        RL_TEST_EXPECT_EXIT(&r, 2, "over the memory budget");
        cr_assert(strstr(r.out, "shared randlora bases") && strstr(r.out, "largest layer (20000, 20000)"), "%s", r.out);
    }
    /* in-process with an explicit budget: the same refusal, nothing allocated */
    rl_budget_set((size_t)256 << 20);
    parity_result res;
    cr_assert_eq(parity_check_file(p, PARITY_DEFAULT_TOL, &res), RL_EBUDGET, "%s", rl_errmsg());
    rl_budget_set(0);
    unlink(p);
}
