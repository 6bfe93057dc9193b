/* test_rank.c -- the rank module (rl_rank) and `randlora rank` on the
 * reference files: LoRA updates have rank r, VeRA's at most r, dense
 * RandLora's min_dim (the fixtures' gammas are perturbed), sparse bases lose
 * exactly their zero columns of A; the float32 tolerance is the right one. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/rl_adapter.h"
#include "adapters/rl_bases.h"
#include "analysis/rl_rank.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "io/rl_safetensors.h"
#include "parity.h"
#include "rank.h"

static size_t mem0;
static void setup(void) { mem0 = rl_mem_current(); }
static void check_no_leak(void) { cr_expect_eq(rl_mem_current(), mem0, "tracked memory leaked"); }
TestSuite(rank, .init = setup, .fini = check_no_leak);

/* ΔW of layer `li` of a parity file, spectrum at the float32 tolerance. */
static rl_spectrum *fixture_spectrum(const char *path, int li, parity_setup *ps_out, int *zero_cols)
{
    rl_st_file *f = NULL;
    cr_assert_eq(rl_st_open(&f, path), RL_OK, "%s", rl_errmsg());
    parity_setup ps;
    cr_assert_eq(parity_setup_read(f, &ps), RL_OK, "%s", rl_errmsg());
    int o = ps.shapes[li][0], i = ps.shapes[li][1];
    rl_adapter *a = NULL;
    cr_assert_eq(rl_adapter_new(&a, &ps.cfg, o, i, ps.bases, 1), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(parity_load_params(f, li, a), RL_OK, "%s", rl_errmsg());
    float *dw = rl_alloc_floats((size_t)o * i);
    cr_assert_eq(rl_adapter_delta_weight(a, dw), RL_OK);
    rl_spectrum *sp = NULL;
    cr_assert_eq(rl_spectrum_new(&sp, dw, o, i, 0.0), RL_OK, "%s", rl_errmsg());
    if (zero_cols) *zero_cols = ps.method == RL_METHOD_RANDLORA ? rl_rank_zero_columns_A(ps.bases, sp->k) : 0;
    *ps_out = ps;
    ps_out->bases = NULL;
    parity_setup_free(&ps);
    rl_dealloc(dw);
    rl_adapter_free(a);
    rl_st_close(f);
    return sp;
}

static const char *const lora_files[] = {
    "tests/fixtures/peft/lora_basic.safetensors", "tests/fixtures/peft/lora_rslora.safetensors",
    "tests/fixtures/peft_extra/lora_r3.safetensors", "tests/fixtures/peft_extra/lora_rslora_r6.safetensors"};

Test(rank, lora_fixtures_have_rank_r)
{
    for (size_t f = 0; f < sizeof lora_files / sizeof lora_files[0]; f++) {
        parity_setup ps;
        rl_spectrum *sp = fixture_spectrum(lora_files[f], 0, &ps, NULL);
        cr_expect_eq(sp->rank, ps.cfg.r, "%s: rank %d, r %d", lora_files[f], sp->rank, ps.cfg.r);
        rl_spectrum_free(sp);
    }
}

Test(rank, vera_fixtures_rank_at_most_r)
{
    const char *files[] = {"tests/fixtures/peft/vera_two_layers.safetensors",
                           "tests/fixtures/peft_extra/vera_three_layers.safetensors"};
    int layers[] = {2, 3};
    for (int f = 0; f < 2; f++)
        for (int li = 0; li < layers[f]; li++) {
            parity_setup ps;
            rl_spectrum *sp = fixture_spectrum(files[f], li, &ps, NULL);
            cr_expect(sp->rank <= ps.cfg.r && sp->rank >= 1, "%s layer %d: rank %d, r %d", files[f], li, sp->rank,
                      ps.cfg.r);
            rl_spectrum_free(sp);
        }
}

Test(rank, dense_randlora_fixtures_are_full_rank)
{
    const char *files[] = {"tests/fixtures/peft/randlora_dense_square.safetensors",
                           "tests/fixtures/peft/randlora_dense_wide_in.safetensors",
                           "tests/fixtures/peft/randlora_dense_wide_out.safetensors",
                           "tests/fixtures/peft/randlora_shared_two_layers.safetensors",
                           "tests/fixtures/peft_extra/randlora_dense_r1.safetensors",
                           "tests/fixtures/peft_extra/randlora_dense_r_gt_min.safetensors",
                           "tests/fixtures/peft_extra/randlora_dense_key_big.safetensors",
                           "tests/fixtures/peft_extra/randlora_dense_three_layers.safetensors"};
    int layers[] = {1, 1, 1, 2, 1, 1, 1, 3};
    for (int f = 0; f < 8; f++)
        for (int li = 0; li < layers[f]; li++) {
            parity_setup ps;
            rl_spectrum *sp = fixture_spectrum(files[f], li, &ps, NULL);
            cr_expect_eq(sp->rank, sp->k, "%s layer %d: rank %d of min_dim %d", files[f], li, sp->rank, sp->k);
            rl_spectrum_free(sp);
        }
}

/* Claim (d): a zero column of the shared A is a lost direction. */
Test(rank, sparse_fixtures_lose_the_zero_columns_of_A)
{
    const char *files[] = {"tests/fixtures/peft/randlora_sparse.safetensors",
                           "tests/fixtures/peft/randlora_very_sparse.safetensors",
                           "tests/fixtures/peft_extra/randlora_sparse_two_layers.safetensors",
                           "tests/fixtures/peft_extra/randlora_very_sparse_two_layers.safetensors"};
    int layers[] = {1, 1, 2, 2};
    int total_zero = 0;
    for (int f = 0; f < 4; f++)
        for (int li = 0; li < layers[f]; li++) {
            parity_setup ps;
            int z;
            rl_spectrum *sp = fixture_spectrum(files[f], li, &ps, &z);
            cr_expect(sp->rank <= sp->k - z, "%s layer %d: rank %d > min_dim %d - zero columns %d", files[f], li,
                      sp->rank, sp->k, z);
            total_zero += z;
            rl_spectrum_free(sp);
        }
    cr_expect_gt(total_zero, 0, "the sparse fixtures do have zero columns (randlora_sparse: rank 31 of 32)");
    parity_setup ps;
    int z;
    rl_spectrum *sp = fixture_spectrum(files[0], 0, &ps, &z);
    cr_expect_eq(z, 1);
    cr_expect_eq(sp->rank, 31, "randlora_sparse: rank %d (the README says 31 of 32)", sp->rank);
    rl_spectrum_free(sp);
}

/* A float32 LoRA update B·A of exact rank r: the float32 tolerance finds r;
 * a float64 tolerance counts the float32 rounding noise as rank. */
Test(rank, float32_tolerance_gives_r_where_float64_does_not)
{
    parity_setup ps;
    rl_spectrum *sp = fixture_spectrum("tests/fixtures/peft/lora_basic.safetensors", 0, &ps, NULL);
    cr_expect_eq(sp->rank, ps.cfg.r);
    cr_expect_float_eq(sp->tol, sp->sigma_max * (sp->m > sp->n ? sp->m : sp->n) * FLT_EPSILON, 1e-12 * sp->tol);
    double tol64 = rl_rank_tol(sp->sigma_max, sp->m, sp->n, DBL_EPSILON);
    int r64 = rl_rank_count(sp->s, sp->k, tol64);
    cr_expect_gt(r64, ps.cfg.r, "float64 tolerance %.3g gives rank %d, expected > r = %d", tol64, r64, ps.cfg.r);
    rl_spectrum_set_tol(sp, tol64);
    cr_expect_eq(sp->rank, r64);
    rl_spectrum_free(sp);
}

/* Known spectra: diag(3, 2, 1, 0) padded into a 5x4 matrix. */
Test(rank, summaries_of_a_known_spectrum)
{
    float a[5 * 4] = {0};
    a[0 * 4 + 0] = 3.0f;
    a[1 * 4 + 1] = -2.0f;
    a[3 * 4 + 2] = 1.0f;   /* a row permutation does not change singular values */
    rl_spectrum *sp = NULL;
    cr_assert_eq(rl_spectrum_new(&sp, a, 5, 4, 0.0), RL_OK, "%s", rl_errmsg());
    cr_expect_eq(sp->k, 4);
    cr_expect_float_eq(sp->s[0], 3.0, 1e-12);
    cr_expect_float_eq(sp->s[1], 2.0, 1e-12);
    cr_expect_float_eq(sp->s[2], 1.0, 1e-12);
    cr_expect_float_eq(sp->s[3], 0.0, 1e-12);
    cr_expect_eq(sp->rank, 3);
    cr_expect_float_eq(sp->stable_rank, 14.0 / 9.0, 1e-12);
    cr_expect_float_eq(sp->fro, sqrt(14.0), 1e-12);
    double p[3] = {0.5, 1.0 / 3.0, 1.0 / 6.0}, h = 0.0;
    for (int i = 0; i < 3; i++) h -= p[i] * log(p[i]);
    cr_expect_float_eq(sp->effective_rank, exp(h), 1e-12);
    cr_expect_float_eq(rl_rank_energy_top(sp->s, sp->k, 1), 9.0 / 14.0, 1e-12);
    cr_expect_float_eq(rl_rank_energy_top(sp->s, sp->k, 4), 1.0, 1e-12);
    /* a caller tolerance overrides the rule */
    rl_spectrum_set_tol(sp, 1.5);
    cr_expect_eq(sp->rank, 2);
    rl_spectrum_free(sp);
    /* the input is not destroyed */
    cr_expect_eq(a[0], 3.0f);
    cr_expect_eq(a[1 * 4 + 1], -2.0f);
}

Test(rank, zero_matrix_and_flat_spectrum)
{
    float z[6] = {0}, I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    rl_spectrum *sp = NULL;
    cr_assert_eq(rl_spectrum_new(&sp, z, 2, 3, 0.0), RL_OK);
    cr_expect_eq(sp->rank, 0);
    cr_expect_float_eq(sp->effective_rank, 0.0, 1e-15);
    cr_expect_float_eq(sp->stable_rank, 0.0, 1e-15);
    rl_spectrum_free(sp);
    cr_assert_eq(rl_spectrum_new(&sp, I, 3, 3, 0.0), RL_OK);
    cr_expect_eq(sp->rank, 3);
    cr_expect_float_eq(sp->effective_rank, 3.0, 1e-12);
    cr_expect_float_eq(sp->stable_rank, 3.0, 1e-12);
    rl_spectrum_free(sp);
}

Test(rank, bad_input_is_an_error)
{
    float a[4] = {1, 2, 3, NAN};
    double s[2], w[4];
    rl_spectrum *sp = (rl_spectrum *)0x1;
    cr_expect_eq(rl_sv_values(a, 0, 2, s, w), RL_EINVAL);
    cr_expect_eq(rl_sv_values(a, 2, 2, NULL, w), RL_EINVAL);
    cr_expect_eq(rl_sv_values(a, 2, 2, s, w), RL_ENONFINITE);
    cr_expect(strstr(rl_errmsg(), "(1, 1)") != NULL, "message names the entry: %s", rl_errmsg());
    cr_expect_eq(rl_spectrum_new(&sp, a, 2, 2, 0.0), RL_ENONFINITE);
    cr_expect_null(sp);
    cr_expect_eq(rl_spectrum_new(&sp, a, -1, 2, 0.0), RL_EINVAL);
}

/* Claim (c): with every Γ_b equal (the init constant) and random λ, the
 * update collapses to (Σ_b B_b Λ_b) A Γ: rank <= r; perturbing Γ gives
 * full rank (r = 3 does not divide 20, r = 4 does). */
Test(rank, equal_gammas_rank_at_most_r_perturbed_full)
{
    for (int r = 3; r <= 4; r++) {
        rl_shared_bases *b = NULL;
        cr_assert_eq(rl_shared_bases_new(&b, RL_METHOD_RANDLORA, r, 28, 20, RL_BASES_DENSE, RL_BF16, RL_FMA, 7), RL_OK);
        rl_adapter_config cfg = rl_adapter_config_default(RL_METHOD_RANDLORA);
        cfg.r = r;
        rl_adapter *a = NULL;
        cr_assert_eq(rl_adapter_new(&a, &cfg, 28, 20, b, 1), RL_OK);
        const rl_param_info *lam = rl_adapter_find_param(a, "randlora_lambda");
        const rl_param_info *gam = rl_adapter_find_param(a, "randlora_gamma");
        float *p = rl_adapter_span(a).p;
        rl_mt g;
        rl_mt_seed(&g, 11);
        rl_mt_fill_normal(&g, p + lam->offset, (size_t)lam->shape[0] * lam->shape[1], 1.0f);
        float dw[28 * 20];
        rl_spectrum *sp = NULL;
        cr_assert_eq(rl_adapter_delta_weight(a, dw), RL_OK);
        cr_assert_eq(rl_spectrum_new(&sp, dw, 28, 20, 0.0), RL_OK);
        cr_expect(sp->rank <= r && sp->rank > 0, "equal gammas r=%d: rank %d", r, sp->rank);
        rl_spectrum_free(sp);
        for (size_t i = 0; i < (size_t)gam->shape[0] * gam->shape[1]; i++)
            p[gam->offset + i] *= 1.0f + 0.5f * rl_mt_normal(&g);
        cr_assert_eq(rl_adapter_delta_weight(a, dw), RL_OK);
        cr_assert_eq(rl_spectrum_new(&sp, dw, 28, 20, 0.0), RL_OK);
        cr_expect_eq(sp->rank, 20, "perturbed gammas r=%d: rank %d of 20", r, sp->rank);
        rl_spectrum_free(sp);
        rl_adapter_free(a);
        rl_shared_bases_free(b);
    }
}

/* The predicted rank of claim (d) and the zero-column count. */
Test(rank, sparse_prediction_formula)
{
    cr_expect_float_eq(rl_rank_predicted_sparse(100, 1, 0.25), 25.0, 1e-12);
    cr_expect_float_eq(rl_rank_predicted_sparse(100, 2, 0.5), 75.0, 1e-12);
    cr_expect_float_eq(rl_rank_basis_density(RL_BASES_SPARSE, 64), 1.0 / 3.0, 1e-15);
    cr_expect_float_eq(rl_rank_basis_density(RL_BASES_VERY_SPARSE, 64), 0.125, 1e-15);
    rl_shared_bases *b = NULL;
    cr_assert_eq(rl_shared_bases_new(&b, RL_METHOD_RANDLORA, 2, 64, 64, RL_BASES_VERY_SPARSE, RL_BF16, RL_FMA, 3), RL_OK);
    int z = rl_rank_zero_columns_A(b, 64), zz = 0;
    for (int q = 0; q < 64; q++) zz += b->A[q] == 0.0f && b->A[64 + q] == 0.0f;
    cr_expect_eq(z, zz);
    cr_expect_gt(z, 20, "very sparse r=2 on 64: about 64*(7/8)^2 = 49 zero columns expected, got %d", z);
    rl_shared_bases_free(b);
}

/* `randlora rank --fixture FILE --csv`: the exact header, one row per layer. */
Test(rank, cli_csv_output)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    cr_assert_eq(rank_fixture_write("tests/fixtures/peft/randlora_shared_two_layers.safetensors", fp, true, 0.0), RL_OK,
                 "%s", rl_errmsg());
    fclose(fp);
    cr_expect(strncmp(buf, RANK_CSV_HEADER "\n", strlen(RANK_CSV_HEADER) + 1) == 0, "header: %s", buf);
    cr_expect_str_eq(RANK_CSV_HEADER, "layer,out,in,min_dim,rank,effective_rank,stable_rank,sigma_max,sigma_min");
    int lines = 0;
    for (char *p = buf; *p; p++) lines += *p == '\n';
    cr_expect_eq(lines, 3, "header + 2 layers:\n%s", buf);
    cr_expect(strstr(buf, "\n0,100,20,20,20,") != NULL, "layer 0 row:\n%s", buf);
    free(buf);
    fp = open_memstream(&buf, &len);
    cr_expect_eq(rank_fixture_write("tests/fixtures/peft/nonexistent.safetensors", fp, true, 0.0), RL_EIO);
    cr_expect(strstr(rl_errmsg(), "nonexistent") != NULL, "%s", rl_errmsg());
    fclose(fp);
    free(buf);
}
