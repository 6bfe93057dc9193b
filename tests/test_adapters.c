/* test_adapters.c -- the adapter contract, for every method through one interface.
 *
 * Cases: methods {full, lora, vera, randlora dense / sparse / very_sparse}
 * x orientations {d_in < d_out, d_in > d_out, square} x r {dividing min_dim,
 * not dividing it}. Parameters are set to random values (not the init) so
 * every gradient path carries signal.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "adapters/rl_adapter.h"
#include "adapters/rl_bases.h"
#include "core/rl_blas.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "rl_test.h"

typedef struct {
    int method;   /* rl_method */
    int kind;     /* rl_bases_kind, randlora only */
    int d_out, d_in, r;
} acase;

TestSuite(adapters, .init = rl_test_mark);

/* Everything a case needs, built from the case alone. */
typedef struct {
    rl_shared_bases *bases;
    rl_adapter *a;
    int n;
    float *x, *G, *y, *dx;
} fixture;

static void fixture_new(fixture *f, const acase *c, int n, bool randomise)
{
    memset(f, 0, sizeof *f);
    rl_adapter_config cfg = rl_adapter_config_default((rl_method)c->method);
    cfg.r = c->r;
    cfg.alpha = 2.0 * c->r;
    cfg.init_seed = 7;
    if (c->method == RL_METHOD_VERA || c->method == RL_METHOD_RANDLORA) {
        rl_status st = rl_shared_bases_new(&f->bases, (rl_method)c->method, c->r, c->d_out, c->d_in,
                                           (rl_bases_kind)c->kind, RL_BF16, RL_FMA, 11);
        cr_assert_eq(st, RL_OK, "bases: %s", rl_errmsg());
    }
    cr_assert_eq(rl_adapter_new(&f->a, &cfg, c->d_out, c->d_in, f->bases, n), RL_OK, "%s", rl_errmsg());
    f->n = n;
    f->x = rl_alloc_floats((size_t)n * c->d_in);
    f->G = rl_alloc_floats((size_t)n * c->d_out);
    f->y = rl_alloc_floats((size_t)n * c->d_out);
    f->dx = rl_alloc_floats((size_t)n * c->d_in);
    rl_mt g;
    rl_mt_seed(&g, 1234);
    rl_mt_fill_normal(&g, f->x, (size_t)n * c->d_in, 1.0f);
    rl_mt_fill_normal(&g, f->G, (size_t)n * c->d_out, 1.0f);
    if (randomise) {
        rl_span s = rl_adapter_span(f->a);
        rl_mt_fill_normal(&g, s.p, s.n, 0.5f);
    }
}

static void fixture_free(fixture *f)
{
    rl_adapter_free(f->a);
    rl_shared_bases_free(f->bases);
    rl_dealloc(f->x);
    rl_dealloc(f->G);
    rl_dealloc(f->y);
    rl_dealloc(f->dx);
}

/* L = Σ adapter(x) ⊙ G, accumulated in double. */
static double loss(fixture *f)
{
    int dout = rl_adapter_d_out(f->a);
    memset(f->y, 0, (size_t)f->n * dout * sizeof(float));
    cr_assert_eq(rl_adapter_forward(f->a, f->x, f->n, f->y), RL_OK);
    double L = 0.0;
    for (size_t i = 0; i < (size_t)f->n * dout; i++) L += (double)f->y[i] * f->G[i];
    return L;
}

#define N_CASES 36
static acase all_cases[N_CASES];
static void make_cases(void)
{
    static const int shapes[3][2] = {{20, 12}, {12, 20}, {16, 16}};
    static const int methods[6][2] = {{RL_METHOD_FULL, 0},     {RL_METHOD_LORA, 0},
                                      {RL_METHOD_VERA, 0},     {RL_METHOD_RANDLORA, RL_BASES_DENSE},
                                      {RL_METHOD_RANDLORA, RL_BASES_SPARSE},
                                      {RL_METHOD_RANDLORA, RL_BASES_VERY_SPARSE}};
    int i = 0;
    for (int m = 0; m < 6; m++)
        for (int s = 0; s < 3; s++)
            for (int rr = 0; rr < 2; rr++) /* r = 4 divides 12 and 16; r = 5 divides neither */
                all_cases[i++] = (acase){methods[m][0], methods[m][1], shapes[s][0], shapes[s][1],
                                         rr ? 5 : 4};
}

ParameterizedTestParameters(adapters, fd_gradients)
{
    make_cases();
    return cr_make_param_array(acase, all_cases, N_CASES);
}

/* Finite-difference check of every parameter and of dx, element by element.
 * The adapter output is linear in each single parameter and in x (the other
 * entries held fixed), so the central difference has no truncation error and
 * a large step (eps = 0.5) is exact up to the float32 rounding of the two
 * forward passes: ~1e-7 relative on each of n·d_out outputs, i.e. an
 * absolute error in the difference quotient of about 1e-6 · |L terms| / eps.
 * Tolerance: |fd - g| <= 1e-3 · max|g| + 1e-3 · |g|. */
ParameterizedTest(acase *c, adapters, fd_gradients)
{
    fixture f;
    fixture_new(&f, c, 3, true);
    rl_adapter_zero_grad(f.a);
    memset(f.dx, 0, (size_t)f.n * c->d_in * sizeof(float));
    cr_assert_eq(rl_adapter_backward(f.a, f.x, f.G, f.n, f.dx), RL_OK);
    rl_span s = rl_adapter_span(f.a);
    const float eps = 0.5f;
    double gmax = 0.0;
    for (size_t i = 0; i < s.n; i++) gmax = fmax(gmax, fabs(s.g[i]));
    cr_assert(gmax > 0.0, "all parameter gradients are zero for method %d", c->method);
    for (size_t i = 0; i < s.n; i++) {
        float keep = s.p[i];
        s.p[i] = keep + eps;
        double Lp = loss(&f);
        s.p[i] = keep - eps;
        double Lm = loss(&f);
        s.p[i] = keep;
        double fd = (Lp - Lm) / (2.0 * eps);
        cr_assert(fabs(fd - s.g[i]) <= 1e-3 * gmax + 1e-3 * fabs(s.g[i]),
                  "method %d (%d,%d) r=%d param %zu: fd %.7g vs analytic %.7g", c->method, c->d_out,
                  c->d_in, c->r, i, fd, (double)s.g[i]);
    }
    double dxmax = 0.0;
    for (size_t i = 0; i < (size_t)f.n * c->d_in; i++) dxmax = fmax(dxmax, fabs(f.dx[i]));
    for (size_t i = 0; i < (size_t)f.n * c->d_in; i++) {
        float keep = f.x[i];
        f.x[i] = keep + eps;
        double Lp = loss(&f);
        f.x[i] = keep - eps;
        double Lm = loss(&f);
        f.x[i] = keep;
        double fd = (Lp - Lm) / (2.0 * eps);
        cr_assert(fabs(fd - f.dx[i]) <= 1e-3 * dxmax + 1e-3 * fabs(f.dx[i]),
                  "method %d dx[%zu]: fd %.7g vs analytic %.7g", c->method, i, fd, (double)f.dx[i]);
    }
    fixture_free(&f);
    rl_test_check_leak();
}

ParameterizedTestParameters(adapters, forward_equals_merged_weight)
{
    make_cases();
    return cr_make_param_array(acase, all_cases, N_CASES);
}

/* forward(x) == x (W + ΔW)ᵀ - x Wᵀ, and merge / unmerge restore W.
 * Tolerances: the two sides differ only by float32 rounding of reductions of
 * length <= 20 (d_in) plus the K <= 20 terms of ΔW: 1e-5 relative to the
 * largest output is ~100 ulp of headroom. Unmerge restores W up to the
 * rounding of W + ΔW - ΔW: 2 ulp of max(|W|, |ΔW|) per element. */
ParameterizedTest(acase *c, adapters, forward_equals_merged_weight)
{
    fixture f;
    fixture_new(&f, c, 4, true);
    size_t nw = (size_t)c->d_out * c->d_in, ny = (size_t)f.n * c->d_out;
    float *W = rl_alloc_floats(nw), *W0 = rl_alloc_floats(nw), *dw = rl_alloc_floats(nw);
    float *y2 = rl_alloc_floats(ny), *y1 = rl_alloc_floats(ny);
    rl_mt g;
    rl_mt_seed(&g, 99);
    rl_mt_fill_normal(&g, W, nw, 1.0f);
    memcpy(W0, W, nw * sizeof(float));
    /* y1 = x Wᵀ + adapter(x) */
    rl_gemm(RL_NOTRANS, RL_TRANS, f.n, c->d_out, c->d_in, 1.0f, f.x, c->d_in, W, c->d_in, 0.0f, y1, c->d_out);
    cr_assert_eq(rl_adapter_forward(f.a, f.x, f.n, y1), RL_OK);
    cr_assert_eq(rl_adapter_delta_weight(f.a, dw), RL_OK);
    cr_assert_eq(rl_adapter_merge(f.a, W, true), RL_OK);
    for (size_t i = 0; i < nw; i++) cr_assert_eq(W[i], W0[i] + dw[i], "merge is W + delta_weight");
    rl_gemm(RL_NOTRANS, RL_TRANS, f.n, c->d_out, c->d_in, 1.0f, f.x, c->d_in, W, c->d_in, 0.0f, y2, c->d_out);
    double emax = 0.0, ymax = 0.0;
    for (size_t i = 0; i < ny; i++) {
        emax = fmax(emax, fabs((double)y1[i] - y2[i]));
        ymax = fmax(ymax, fabs(y2[i]));
    }
    cr_assert(emax <= 1e-5 * ymax, "forward vs merged: err %.3g of %.3g", emax, ymax);
    cr_assert_eq(rl_adapter_unmerge(f.a, W), RL_OK);
    for (size_t i = 0; i < nw; i++) {
        double bound = 2.0 * FLT_EPSILON * fmax(fabs(W0[i]), fabs(dw[i]));
        cr_assert(fabs((double)W[i] - W0[i]) <= bound, "unmerge W[%zu] = %.9g, was %.9g", i, W[i], W0[i]);
    }
    rl_dealloc(W);
    rl_dealloc(W0);
    rl_dealloc(dw);
    rl_dealloc(y1);
    rl_dealloc(y2);
    fixture_free(&f);
    rl_test_check_leak();
}

ParameterizedTestParameters(adapters, zero_delta_at_init)
{
    make_cases();
    return cr_make_param_array(acase, all_cases, N_CASES);
}

/* PEFT's init makes every method a no-op: ΔW exactly 0 and forward adds 0. */
ParameterizedTest(acase *c, adapters, zero_delta_at_init)
{
    fixture f;
    fixture_new(&f, c, 2, false);
    size_t nw = (size_t)c->d_out * c->d_in;
    float *dw = rl_alloc_floats(nw);
    rl_fill(dw, nw, 1.0f);
    cr_assert_eq(rl_adapter_delta_weight(f.a, dw), RL_OK);
    for (size_t i = 0; i < nw; i++) cr_assert_eq(dw[i], 0.0f, "delta_weight[%zu] = %g at init", i, dw[i]);
    (void)loss(&f);
    for (size_t i = 0; i < (size_t)f.n * c->d_out; i++) cr_assert_eq(f.y[i], 0.0f);
    /* and the init values are PEFT's */
    rl_span s = rl_adapter_span(f.a);
    if (c->method == RL_METHOD_RANDLORA) {
        int mn = c->d_out < c->d_in ? c->d_out : c->d_in, nb = rl_adapter_n_bases(f.a);
        for (int i = 0; i < c->r * nb; i++) cr_assert_eq(s.p[i], 0.0f, "lambda starts at 0");
        for (int i = 0; i < nb * mn; i++) cr_assert_eq(s.p[c->r * nb + i], 1.0f / (float)mn, "gamma = 1/min_dim");
    } else if (c->method == RL_METHOD_VERA) {
        for (int i = 0; i < c->d_out; i++) cr_assert_eq(s.p[i], 0.0f, "lambda_b starts at 0");
        for (int i = 0; i < c->r; i++) cr_assert_eq(s.p[c->d_out + i], 0.1f, "lambda_d = d_initial");
    } else if (c->method == RL_METHOD_LORA) {
        double bound = rl_kaiming_bound(sqrt(5.0), c->d_in);
        bool any = false;
        for (int i = 0; i < c->r * c->d_in; i++) {
            cr_assert(fabs(s.p[i]) <= bound, "A within the kaiming bound");
            any |= s.p[i] != 0.0f;
        }
        cr_assert(any, "A is random, not zero");
    }
    rl_dealloc(dw);
    fixture_free(&f);
    rl_test_check_leak();
}

/* Forward and backward allocate nothing: the peak of the tracked allocator
 * does not move across a full step. */
ParameterizedTestParameters(adapters, step_allocates_nothing)
{
    make_cases();
    return cr_make_param_array(acase, all_cases, N_CASES);
}

ParameterizedTest(acase *c, adapters, step_allocates_nothing)
{
    fixture f;
    fixture_new(&f, c, 4, true);
    rl_mem_reset_peak();
    size_t before = rl_mem_current();
    memset(f.y, 0, (size_t)f.n * c->d_out * sizeof(float));
    cr_assert_eq(rl_adapter_forward(f.a, f.x, f.n, f.y), RL_OK);
    cr_assert_eq(rl_adapter_backward(f.a, f.x, f.G, f.n, f.dx), RL_OK);
    cr_assert_eq(rl_mem_peak(), before, "a training step allocated %zu bytes", rl_mem_peak() - before);
    /* more rows than the workspace was sized for is an error, not an overflow */
    cr_assert_eq(rl_adapter_forward(f.a, f.x, f.n + 1, f.y), RL_EINVAL);
    cr_assert(strstr(rl_errmsg(), "at most 4") != NULL, "message: %s", rl_errmsg());
    fixture_free(&f);
    rl_test_check_leak();
}

/* param_count: the adapter's block size, PEFT's closed forms, and hand values. */
RL_TEST(adapters, param_count_formulas)
{
    static const int shapes[][2] = {{20, 12}, {12, 20}, {16, 16}, {7, 3}, {3, 7}, {64, 64}, {40, 64}, {96, 24}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int r = 1; r <= 9; r += 2) {
            int o = shapes[s][0], i = shapes[s][1], mn = o < i ? o : i;
            int nb = (mn + r - 1) / r;
            cr_assert_eq(rl_param_count_formula(RL_METHOD_RANDLORA, r, o, i), (size_t)nb * (r + mn));
            cr_assert_eq(rl_param_count_formula(RL_METHOD_VERA, r, o, i), (size_t)(o + r));
            cr_assert_eq(rl_param_count_formula(RL_METHOD_LORA, r, o, i), (size_t)r * (i + o));
            cr_assert_eq(rl_param_count_formula(RL_METHOD_FULL, r, o, i), (size_t)o * i);
            for (int m = RL_METHOD_FULL; m <= RL_METHOD_RANDLORA; m++) {
                acase c = {m, 0, o, i, r};
                fixture f;
                fixture_new(&f, &c, 1, false);
                cr_assert_eq(rl_adapter_param_count(f.a), rl_param_count_formula((rl_method)m, r, o, i));
                fixture_free(&f);
            }
        }
    /* peft-semantics.md §2.8 examples */
    cr_assert_eq(rl_param_count_formula(RL_METHOD_RANDLORA, 32, 4096, 4096), 528384u);
    cr_assert_eq(rl_param_count_formula(RL_METHOD_RANDLORA, 32, 1024, 4096), 33792u);
    cr_assert_eq(rl_param_count_formula(RL_METHOD_RANDLORA, 8, 64, 64), 8u * 8 + 8u * 64);
    cr_assert_eq(rl_param_count_formula(RL_METHOD_RANDLORA, 8, 40, 64), 8u * 5 + 5u * 40);
    cr_assert_eq(rl_param_count_formula(RL_METHOD_RANDLORA, 8, 96, 24), 8u * 3 + 3u * 24);
}

/* Naive ΔW from the definitions, for both pairings, against delta_weight. */
static void naive_delta(const rl_adapter *a, const rl_shared_bases *b, bool paper, double *M)
{
    int o = rl_adapter_d_out(a), i = rl_adapter_d_in(a), mn = o < i ? o : i, mx = o < i ? i : o;
    int r = b->r, nb = rl_adapter_n_bases(a), NB = b->n_bases;
    rl_span s = rl_adapter_span((rl_adapter *)a);
    const float *lam = s.p, *gam = s.p + r * nb;
    double sc = rl_adapter_scaling(a);
    for (int p = 0; p < mx; p++)
        for (int q = 0; q < mn; q++) {
            double acc = 0.0;
            if (paper) { /* Σ_b B_b Λ_b A Γ_b */
                for (int bb = 0; bb < nb; bb++)
                    for (int k = 0; k < r; k++)
                        acc += (double)b->B[((size_t)p * NB + bb) * r + k] * lam[k * nb + bb] *
                               b->A[(size_t)k * b->min_dim + q] * gam[bb * mn + q];
            } else { /* PEFT: column c of B·flat ~ row c of U·flat */
                for (int c = 0; c < r * nb; c++) {
                    int kb = c / r, kk = c % r, k = c / nb, bb = c % nb;
                    acc += (double)b->B[((size_t)p * NB + kb) * r + kk] * lam[k * nb + bb] *
                           b->A[(size_t)k * b->min_dim + q] * gam[bb * mn + q];
                }
            }
            /* ΔW[o][i]: M (mx, mn) or its transpose */
            if (i <= o) M[(size_t)p * i + q] = sc * acc;
            else M[(size_t)q * i + p] = sc * acc;
        }
}

RL_TEST(adapters, randlora_pairings_match_definitions)
{
    static const int shapes[3][2] = {{20, 12}, {12, 20}, {16, 16}};
    for (int s = 0; s < 3; s++)
        for (int paper = 0; paper < 2; paper++)
            for (int r = 3; r <= 5; r++) {
                int o = shapes[s][0], i = shapes[s][1];
                rl_shared_bases *b = NULL;
                cr_assert_eq(rl_shared_bases_new(&b, RL_METHOD_RANDLORA, r, o, i, RL_BASES_DENSE, RL_BF16,
                                                 RL_FMA, 5), RL_OK);
                rl_adapter_config cfg = rl_adapter_config_default(RL_METHOD_RANDLORA);
                cfg.r = r;
                cfg.pairing = paper ? RL_PAIRING_PAPER : RL_PAIRING_PEFT;
                rl_adapter *a = NULL;
                cr_assert_eq(rl_adapter_new(&a, &cfg, o, i, b, 1), RL_OK);
                rl_mt g;
                rl_mt_seed(&g, 3);
                rl_mt_fill_normal(&g, rl_adapter_span(a).p, rl_adapter_param_count(a), 1.0f);
                size_t nw = (size_t)o * i;
                float *dw = rl_alloc_floats(nw);
                double *M = malloc(nw * sizeof *M);
                rl_adapter_delta_weight(a, dw);
                naive_delta(a, b, paper, M);
                double emax = 0.0, mmax = 0.0;
                for (size_t e = 0; e < nw; e++) {
                    emax = fmax(emax, fabs(dw[e] - M[e]));
                    mmax = fmax(mmax, fabs(M[e]));
                }
                /* float32 vs double over K <= 20 products: 1e-5 relative */
                cr_assert(emax <= 1e-5 * mmax, "(%d,%d) r=%d paper=%d: err %g of %g", o, i, r, paper, emax, mmax);
                free(M);
                rl_dealloc(dw);
                rl_adapter_free(a);
                rl_shared_bases_free(b);
            }
}

/* ---- bad input: a clear status, a message naming the problem, no leak ---- */

RL_TEST(adapters, rejects_bad_rank_and_shapes)
{
    rl_adapter *a = (rl_adapter *)0x1;
    for (int m = RL_METHOD_LORA; m <= RL_METHOD_RANDLORA; m++) {
        rl_adapter_config cfg = rl_adapter_config_default((rl_method)m);
        cfg.r = 0;
        rl_shared_bases dummy = {.method = (rl_method)m, .r = 0};
        cr_assert_eq(rl_adapter_new(&a, &cfg, 8, 8, &dummy, 1), RL_EINVAL);
        cr_assert_null(a);
        cr_assert(strstr(rl_errmsg(), "`r` should be a positive integer") != NULL, "%s", rl_errmsg());
        cfg.r = -3;
        cr_assert_eq(rl_adapter_new(&a, &cfg, 8, 8, &dummy, 1), RL_EINVAL);
    }
    rl_adapter_config cfg = rl_adapter_config_default(RL_METHOD_LORA);
    cr_assert_eq(rl_adapter_new(&a, &cfg, 0, 8, NULL, 1), RL_EINVAL);
    cr_assert(strstr(rl_errmsg(), "d_out=0") != NULL, "%s", rl_errmsg());
    cr_assert_eq(rl_adapter_new(&a, &cfg, 8, -1, NULL, 1), RL_EINVAL);
    cr_assert_eq(rl_adapter_new(&a, &cfg, 8, 8, NULL, 0), RL_EINVAL);
    cfg = rl_adapter_config_default(RL_METHOD_RANDLORA);
    cr_assert_eq(rl_adapter_new(&a, &cfg, 8, 8, NULL, 1), RL_EINVAL, "randlora without bases");
    cr_assert_null(a);
}

RL_TEST(adapters, rejects_layer_larger_than_shared_bases)
{
    rl_shared_bases *b = NULL;
    cr_assert_eq(rl_shared_bases_new(&b, RL_METHOD_RANDLORA, 4, 20, 12, RL_BASES_DENSE, RL_BF16, RL_FMA, 0), RL_OK);
    rl_adapter_config cfg = rl_adapter_config_default(RL_METHOD_RANDLORA);
    cfg.r = 4;
    rl_adapter *a = NULL;
    cr_assert_eq(rl_adapter_new(&a, &cfg, 20, 12, b, 2), RL_OK, "the layer the bases were made for");
    rl_adapter_free(a);
    cr_assert_eq(rl_adapter_new(&a, &cfg, 12, 20, b, 2), RL_OK, "the transposed layer fits too");
    rl_adapter_free(a);
    cr_assert_eq(rl_adapter_new(&a, &cfg, 30, 12, b, 2), RL_ERANGE);
    cr_assert(strstr(rl_errmsg(), "randlora_B has a size of 20 but 30") != NULL, "%s", rl_errmsg());
    cr_assert_eq(rl_adapter_new(&a, &cfg, 16, 16, b, 2), RL_ERANGE);
    cr_assert(strstr(rl_errmsg(), "randlora_A has a size of 12 but 16") != NULL, "%s", rl_errmsg());
    cfg.r = 2;
    cr_assert_eq(rl_adapter_new(&a, &cfg, 20, 12, b, 2), RL_ERANGE, "rank differs from the bases'");
    cr_assert_null(a);
    rl_shared_bases_free(b);

    cr_assert_eq(rl_shared_bases_new(&b, RL_METHOD_VERA, 4, 20, 12, RL_BASES_DENSE, RL_F32, RL_FMA, 0), RL_OK);
    cfg = rl_adapter_config_default(RL_METHOD_VERA);
    cfg.r = 4;
    cr_assert_eq(rl_adapter_new(&a, &cfg, 20, 13, b, 2), RL_ERANGE);
    cr_assert(strstr(rl_errmsg(), "larger than the shared bases") != NULL, "%s", rl_errmsg());
    cfg.method = RL_METHOD_RANDLORA;
    cr_assert_eq(rl_adapter_new(&a, &cfg, 20, 12, b, 2), RL_EINVAL, "vera bases for a randlora adapter");
    rl_shared_bases_free(b);
}

RL_TEST(adapters, safe_merge_refuses_non_finite)
{
    static const int methods[4] = {RL_METHOD_FULL, RL_METHOD_LORA, RL_METHOD_VERA, RL_METHOD_RANDLORA};
    for (int m = 0; m < 4; m++) {
        acase c = {methods[m], 0, 6, 5, 2};
        fixture f;
        fixture_new(&f, &c, 1, true);
        rl_span s = rl_adapter_span(f.a);
        s.p[s.n - 1] = NAN;
        float W[30], W0[30];
        for (int i = 0; i < 30; i++) W[i] = W0[i] = (float)i;
        cr_assert_eq(rl_adapter_merge(f.a, W, true), RL_ENONFINITE, "method %d", methods[m]);
        cr_assert(strstr(rl_errmsg(), "NaNs detected in the merged weights") != NULL, "%s", rl_errmsg());
        cr_assert_eq(memcmp(W, W0, sizeof W), 0, "safe merge left W untouched");
        cr_assert_eq(rl_adapter_merge(f.a, W, false), RL_OK, "an unsafe merge goes through, as PEFT's");
        bool any_nan = false;
        for (int i = 0; i < 30; i++) any_nan |= isnan(W[i]);
        cr_assert(any_nan);
        fixture_free(&f);
    }
}

/* The memory budget's estimates (rl_budget.h) bound what is really
 * allocated: rl_shared_bases_bytes >= the peak of rl_shared_bases_new (the
 * dense generator's chunk included), rl_adapter_bytes_bound >= what
 * rl_adapter_new holds, with the bases given and not (NULL: not drawn yet),
 * for every method, bases kind and a spread of shapes, ranks and rows. */
RL_TEST(adapters, budget_estimates_bound_the_real_allocations)
{
    static const int shapes[][2] = {{48, 32}, {16, 64}, {33, 7}, {1, 40}, {96, 96}};
    static const int ranks[] = {1, 3, 8, 40};
    static const int rows[] = {0, 1, 5, 300};
    for (int m = RL_METHOD_FULL; m <= RL_METHOD_RANDLORA; m++)
        for (int kind = 0; kind < (m == RL_METHOD_RANDLORA ? 3 : 1); kind++)
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
                for (size_t ri = 0; ri < sizeof ranks / sizeof ranks[0]; ri++) {
                    const int o = shapes[si][0], i = shapes[si][1], r = ranks[ri];
                    rl_shared_bases *b = NULL;
                    if (m == RL_METHOD_VERA || m == RL_METHOD_RANDLORA) {
                        size_t before = rl_mem_current();
                        rl_mem_reset_peak();
                        rl_status st = rl_shared_bases_new(&b, (rl_method)m, r, o, i, (rl_bases_kind)kind,
                                                           RL_BASES_FMT_DEFAULT, RL_BASES_FMA_DEFAULT, 3);
                        if (st != RL_OK) continue; /* e.g. an all-zero sparse basis: refused, nothing to bound */
                        size_t peak = rl_mem_peak() - before;
                        size_t est = rl_shared_bases_bytes((rl_method)m, r, o, i, (rl_bases_kind)kind);
                        cr_assert(est >= peak, "bases %s/%d %dx%d r=%d: estimate %zu < peak %zu",
                                  rl_method_name((rl_method)m), kind, o, i, r, est, peak);
                    }
                    for (size_t ni = 0; ni < sizeof rows / sizeof rows[0]; ni++) {
                        if (rows[ni] == 0 && m != RL_METHOD_RANDLORA) continue;
                        rl_adapter_config cfg = rl_adapter_config_default((rl_method)m);
                        cfg.r = r;
                        size_t before = rl_mem_current();
                        rl_adapter *a = NULL;
                        cr_assert_eq(rl_adapter_new(&a, &cfg, o, i, b, rows[ni]), RL_OK, "%s", rl_errmsg());
                        size_t held = rl_mem_current() - before;
                        size_t with = rl_adapter_bytes_bound(&cfg, o, i, b, rows[ni]);
                        size_t without = rl_adapter_bytes_bound(&cfg, o, i, NULL, rows[ni]);
                        cr_assert(with >= held && without >= held,
                                  "adapter %s/%d %dx%d r=%d rows=%d: bounds %zu / %zu < %zu held",
                                  rl_method_name((rl_method)m), kind, o, i, r, rows[ni], with, without, held);
                        rl_adapter_free(a);
                    }
                    rl_shared_bases_free(b);
                }
}
