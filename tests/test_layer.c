/* test_layer.c -- the adapted linear layer and RandLora's two step paths. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#include "adapters/rl_adapter_impl.h" /* RL_PARTS_MIN_ROWS */
#include "adapters/rl_layer.h"
#include "core/rl_blas.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "rl_test.h"
#include "train/rl_optim.h"

TestSuite(layer, .init = rl_test_mark);

typedef struct {
    int d_out, d_in, r, kind;
} lcase;

static double rel(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

ParameterizedTestParameters(layer, randlora_paths_agree)
{
    static lcase cases[] = {
        {20, 12, 4, RL_BASES_DENSE}, {12, 20, 4, RL_BASES_DENSE}, {16, 16, 5, RL_BASES_DENSE},
        {20, 12, 5, RL_BASES_SPARSE}, {12, 20, 3, RL_BASES_VERY_SPARSE}, {33, 17, 6, RL_BASES_DENSE},
    };
    return cr_make_param_array(lcase, cases, sizeof cases / sizeof cases[0]);
}

/* Every plan (each of forward, parameter gradients and dx factorised or
 * materialised) computes the same output, dx and gradients as the all-
 * factorised step. Both are float32 with reductions of length <= 33 taken in
 * a different order: 1e-5 relative to the largest entry is ~100 ulp of room.
 * The ternary kernels (very_sparse) take uniform plans only. */
ParameterizedTest(lcase *c, layer, randlora_paths_agree)
{
    const int n = 7, o = c->d_out, i = c->d_in;
    rl_shared_bases *b = NULL;
    cr_assert_eq(rl_shared_bases_new(&b, RL_METHOD_RANDLORA, c->r, o, i, (rl_bases_kind)c->kind, RL_BF16,
                                     RL_FMA, 4), RL_OK);
    rl_adapter_config cfg = rl_adapter_config_default(RL_METHOD_RANDLORA);
    cfg.r = c->r;
    cfg.alpha = 3.0 * c->r;
    rl_adapter *a = NULL;
    cr_assert_eq(rl_adapter_new(&a, &cfg, o, i, b, n), RL_OK);
    float *W = rl_alloc_floats((size_t)o * i), *bias = rl_alloc_floats(o), *x = rl_alloc_floats((size_t)n * i);
    float *dy = rl_alloc_floats((size_t)n * o), *y[8], *dx[8], *g[8];
    rl_mt gen;
    rl_mt_seed(&gen, 8);
    rl_mt_fill_normal(&gen, W, (size_t)o * i, 0.3f);
    rl_mt_fill_normal(&gen, bias, o, 1.0f);
    rl_mt_fill_normal(&gen, x, (size_t)n * i, 1.0f);
    rl_mt_fill_normal(&gen, dy, (size_t)n * o, 1.0f);
    rl_span s = rl_adapter_span(a);
    rl_mt_fill_normal(&gen, s.p, s.n, 0.2f);
    const rl_path F = RL_PATH_FACTORISED, M = RL_PATH_MATERIALISED;
    for (int p = 0; p < 8; p++) {
        rl_plan plan = {p & 1 ? M : F, p & 2 ? M : F, p & 4 ? M : F};
        rl_layer *l = NULL;
        cr_assert_eq(rl_layer_new(&l, W, bias, a, n, RL_PATH_AUTO), RL_OK, "%s", rl_errmsg());
        y[p] = rl_alloc_floats((size_t)n * o);
        dx[p] = rl_alloc_floats((size_t)n * i);
        g[p] = rl_alloc_floats(s.n);
        bool uniform = p == 0 || p == 7;
        if (c->kind == RL_BASES_VERY_SPARSE && !uniform) {
            cr_assert_eq(rl_layer_fix_plan(l, plan), RL_EINVAL, "mixed plan on the ternary kernels");
            rl_layer_free(l);
            continue;
        }
        cr_assert_eq(rl_layer_fix_plan(l, plan), RL_OK, "%s", rl_errmsg());
        rl_adapter_zero_grad(a);
        cr_assert_eq(rl_layer_forward(l, x, n, y[p]), RL_OK);
        cr_assert_eq(rl_layer_backward(l, x, dy, n, dx[p]), RL_OK);
        memcpy(g[p], s.g, s.n * sizeof(float));
        rl_layer_free(l);
        if (p == 0) continue;
        cr_assert(rel(y[p], y[0], (size_t)n * o) <= 1e-5, "plan %d output %g", p, rel(y[p], y[0], (size_t)n * o));
        cr_assert(rel(dx[p], dx[0], (size_t)n * i) <= 1e-5, "plan %d dx %g", p, rel(dx[p], dx[0], (size_t)n * i));
        cr_assert(rel(g[p], g[0], s.n) <= 1e-5, "plan %d grads %g", p, rel(g[p], g[0], s.n));
    }
    /* and the factorised layer is base + adapter */
    float *yb = rl_alloc_floats((size_t)n * o);
    for (int t = 0; t < n; t++) memcpy(yb + (size_t)t * o, bias, o * sizeof(float));
    rl_gemm(RL_NOTRANS, RL_TRANS, n, o, i, 1.0f, x, i, W, i, 1.0f, yb, o);
    cr_assert_eq(rl_adapter_forward(a, x, n, yb), RL_OK);
    cr_assert(rel(y[0], yb, (size_t)n * o) <= 1e-6);
    for (int p = 0; p < 8; p++) {
        rl_dealloc(y[p]);
        rl_dealloc(dx[p]);
        rl_dealloc(g[p]);
    }
    rl_dealloc(yb);
    rl_dealloc(W);
    rl_dealloc(bias);
    rl_dealloc(x);
    rl_dealloc(dy);
    rl_adapter_free(a);
    rl_shared_bases_free(b);
    rl_test_check_leak();
}

/* A training step (forward, backward, AdamW) allocates nothing, on every
 * method and path: the tracked peak does not move and current returns to
 * where it was. */
RL_TEST(layer, training_step_allocates_nothing)
{
    const int n = 32, o = 24, i = 20, r = 4; /* n > d_in: LoRA's auto plan takes ΔW for its forward */
    static const int methods[4] = {RL_METHOD_FULL, RL_METHOD_LORA, RL_METHOD_VERA, RL_METHOD_RANDLORA};
    for (int m = 0; m < 4; m++)
        for (int p = 0; p < (methods[m] == RL_METHOD_RANDLORA || methods[m] == RL_METHOD_VERA ? 3 : 1); p++) {
            rl_shared_bases *b = NULL;
            if (methods[m] == RL_METHOD_VERA || methods[m] == RL_METHOD_RANDLORA)
                cr_assert_eq(rl_shared_bases_new(&b, methods[m], r, o, i, RL_BASES_DENSE, RL_BF16, RL_FMA, 0), RL_OK);
            rl_adapter_config cfg = rl_adapter_config_default((rl_method)methods[m]);
            cfg.r = r;
            rl_adapter *a = NULL;
            cr_assert_eq(rl_adapter_new(&a, &cfg, o, i, b, n), RL_OK);
            float *W = rl_alloc_floats((size_t)o * i), *x = rl_alloc_floats((size_t)n * i);
            float *y = rl_alloc_floats((size_t)n * o), *dx = rl_alloc_floats((size_t)n * i);
            rl_layer *l = NULL;
            cr_assert_eq(rl_layer_new(&l, methods[m] == RL_METHOD_FULL ? NULL : W, NULL, a, n, (rl_path)p), RL_OK);
            rl_adamw *opt = NULL;
            cr_assert_eq(rl_adamw_new(&opt, rl_adapter_param_count(a), 1e-3f, 0.0f), RL_OK);
            size_t before = rl_mem_current();
            rl_mem_reset_peak();
            for (int step = 0; step < 3; step++) {
                rl_adapter_zero_grad(a);
                cr_assert_eq(rl_layer_forward(l, x, n, y), RL_OK);
                cr_assert_eq(rl_layer_backward(l, x, y, n, dx), RL_OK);
                rl_adamw_step(opt, rl_adapter_span(a));
            }
            cr_assert_eq(rl_mem_peak(), before, "method %d path %d allocated in a step", methods[m], p);
            cr_assert_eq(rl_mem_current(), before);
            rl_adamw_free(opt);
            rl_layer_free(l);
            rl_dealloc(W);
            rl_dealloc(x);
            rl_dealloc(y);
            rl_dealloc(dx);
            rl_adapter_free(a);
            rl_shared_bases_free(b);
        }
}

RL_TEST(layer, path_rules)
{
    rl_shared_bases *b = NULL;
    cr_assert_eq(rl_shared_bases_new(&b, RL_METHOD_RANDLORA, 32, 768, 768, RL_BASES_DENSE, RL_BF16, RL_FMA, 0), RL_OK);
    rl_adapter_config cfg = rl_adapter_config_default(RL_METHOD_RANDLORA);
    rl_adapter *a = NULL;
    cr_assert_eq(rl_adapter_new(&a, &cfg, 768, 768, b, 4096), RL_OK);
    float w;
    rl_layer *l = NULL;
    cr_assert_eq(rl_layer_new(&l, &w, NULL, a, 4096, RL_PATH_AUTO), RL_OK);
    /* the FLOP model: few tokens -> factorised, many -> materialised, and
     * between the two crossovers (the forward's at n = oi/(o+i) = 384, the
     * gradients' at n = Koi/(K(o+i) - oi) = 768) the forward and dx take ΔW
     * while the gradients stay factorised */
    const rl_path F = RL_PATH_FACTORISED, M = RL_PATH_MATERIALISED;
    rl_plan p64 = rl_layer_choose_plan(l, 64, true), p4k = rl_layer_choose_plan(l, 4096, true);
    rl_plan p512 = rl_layer_choose_plan(l, 512, true);
    cr_assert(p64.fwd == F && p64.grads == F && p64.dx == F);
    cr_assert(p4k.fwd == M && p4k.grads == M && p4k.dx == M);
    cr_assert(p512.fwd == M && p512.grads == F && p512.dx == M);
    char name[64];
    cr_assert_str_eq(rl_plan_name(p512, true, name, sizeof name), "mixed(fwd=M grads=F dx=M)");
    cr_assert_str_eq(rl_plan_name(p4k, true, name, sizeof name), "materialised");
    /* the chosen plan is never worse in the model than either uniform one */
    for (int n = 16; n <= 8192; n *= 2)
        for (int dx = 0; dx < 2; dx++) {
            double best = rl_layer_plan_flops(l, rl_layer_choose_plan(l, n, dx), n, dx);
            cr_assert(best <= rl_layer_plan_flops(l, rl_plan_uniform(F), n, dx));
            cr_assert(best <= rl_layer_plan_flops(l, rl_plan_uniform(M), n, dx));
        }
    cr_assert(rl_layer_plan_flops(l, rl_plan_uniform(M), 4096, false) <
              rl_layer_plan_flops(l, rl_plan_uniform(F), 4096, false));
    /* LoRA and VeRA at 768², r = 32: factorised for few rows; for many, ΔW
     * serves the forward (once n > d_in) and dx while the gradients stay on
     * the factors (T = dyᵀh is cheaper than G = dyᵀx); VeRA's gradients take
     * G when r is large next to the layer (r = 256 on the ViT's 64x64 q) */
    for (int m = RL_METHOD_LORA; m <= RL_METHOD_VERA; m++) {
        rl_plan few = rl_plan_for((rl_method)m, RL_BASES_DENSE, 768, 768, 32, 64, true, false);
        rl_plan many = rl_plan_for((rl_method)m, RL_BASES_DENSE, 768, 768, 32, 4096, true, false);
        rl_plan nodx = rl_plan_for((rl_method)m, RL_BASES_DENSE, 768, 768, 32, 4096, false, false);
        cr_assert(few.fwd == F && few.grads == F && few.dx == F, "method %d", m);
        cr_assert(many.fwd == M && many.grads == F && many.dx == M, "method %d", m);
        cr_assert(nodx.fwd == M && nodx.grads == F, "method %d", m);
        /* written out for n = 4096, with dx: ΔW once; base forward and dx on
         * W + ΔW; h = x Aᵀ; LoRA dB, dh, dA; VeRA T and its reductions */
        const double N = 4096, o = 768, i = 768, R = 32;
        double want = 2 * o * i * R + 2 * 2 * N * o * i + 2 * N * R * i +
                      (m == RL_METHOD_LORA ? 2 * N * R * (2 * o + i) : 2 * N * R * o + 4 * o * R);
        cr_assert_float_eq(rl_plan_flops((rl_method)m, RL_BASES_DENSE, many, 768, 768, 32, 4096, true), want, 1.0);
    }
    rl_plan v2 = rl_plan_for(RL_METHOD_VERA, RL_BASES_DENSE, 64, 64, 256, 2048, true, false);
    cr_assert(v2.fwd == M && v2.grads == M && v2.dx == M);
    /* LoRA's gradients never take G, whatever the shape */
    rl_plan l2 = rl_plan_for(RL_METHOD_LORA, RL_BASES_DENSE, 64, 64, 256, 2048, true, false);
    cr_assert(l2.grads == F && l2.fwd == M);
    /* the model term by term, written out for 768², r = 32 (K = 768), n = 512, with dx */
    {
        const double N = 512, o = 768, i = 768, K = 768, U = 2 * K * 768, Fg = 4 * K * 768;
        double want = 2 * 2 * N * o * i                 /* base forward and dx */
                      + 2 * o * i * K + U               /* ΔW once, for forward and dx */
                      + 2 * N * K * (i + o) + Fg;       /* factorised gradients */
        cr_assert_float_eq(rl_layer_plan_flops(l, p512, 512, true), want, 1.0);
    }
    float x[768] = {0}, y[768];
    cr_assert_eq(rl_layer_backward(l, x, y, 1, NULL), RL_EINVAL, "backward before forward");
    rl_layer_free(l);
    rl_adapter_free(a);
    rl_shared_bases_free(b);

    cfg = rl_adapter_config_default(RL_METHOD_LORA);
    cr_assert_eq(rl_adapter_new(&a, &cfg, 8, 8, NULL, 4), RL_OK);
    cr_assert_eq(rl_layer_new(&l, &w, NULL, a, 4, RL_PATH_MATERIALISED), RL_EINVAL);
    cr_assert(strstr(rl_errmsg(), "randlora and vera only") != NULL, "%s", rl_errmsg());
    cr_assert_eq(rl_layer_new(&l, NULL, NULL, a, 4, RL_PATH_AUTO), RL_EINVAL, "lora needs W");
    cr_assert_eq(rl_layer_new(&l, &w, NULL, a, 5, RL_PATH_AUTO), RL_EINVAL, "more rows than the adapter");
    rl_adapter_free(a);
    rl_path p;
    cr_assert_eq(rl_path_parse("materialised", &p), RL_OK);
    cr_assert_eq(p, RL_PATH_MATERIALISED);
    cr_assert_eq(rl_path_parse("fused", &p), RL_EINVAL);
}

/* AdamW against torch.optim.AdamW's update written out for one step. */
RL_TEST(layer, adamw_first_steps)
{
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, -0.25f};
    rl_adamw *o = NULL;
    cr_assert_eq(rl_adamw_new(&o, 2, 0.1f, 0.01f), RL_OK);
    rl_adamw_step(o, (rl_span){p, g, 2});
    /* step 1: m̂ = g, v̂ = g², update = lr · g / (|g| + eps) = ±lr; decay p·(1 - lr·wd) */
    cr_assert_float_eq(p[0], 1.0f * (1 - 0.001f) - 0.1f, 1e-6);
    cr_assert_float_eq(p[1], -2.0f * (1 - 0.001f) + 0.1f, 1e-6);
    rl_adamw_free(o);
    cr_assert_eq(rl_adamw_new(&o, 2, 0.0f, 0.0f), RL_EINVAL);
}

/* One step of a RandLora layer (rank r, alpha 8) on the very_sparse bases b,
 * through the ternary kernels or BLAS on the dense bases: y, dx, the
 * gradients (*g, allocated here; their count returned) and, given dw, ΔW. */
static size_t ternary_step(rl_shared_bases *b, int o, int i, int n, int r, rl_path path, bool dense, const float *W,
                           const float *x, const float *dy, float *y, float *dx, float **g, float *dw)
{
    rl_adapter_config cfg = rl_adapter_config_default(RL_METHOD_RANDLORA);
    cfg.r = r;
    cfg.alpha = 8;
    cfg.dense_kernels = dense;
    rl_adapter *a = NULL;
    cr_assert_eq(rl_adapter_new(&a, &cfg, o, i, b, n), RL_OK);
    rl_span sp = rl_adapter_span(a);
    rl_mt p;
    rl_mt_seed(&p, 5);
    rl_mt_fill_normal(&p, sp.p, sp.n, 0.3f);
    rl_layer *l = NULL;
    cr_assert_eq(rl_layer_new(&l, W, NULL, a, n, path), RL_OK);
    *g = rl_alloc_floats(sp.n);
    cr_assert_eq(rl_layer_forward(l, x, n, y), RL_OK);
    cr_assert_eq(rl_layer_backward(l, x, dy, n, dx), RL_OK);
    memcpy(*g, sp.g, sp.n * sizeof(float));
    if (dw) cr_assert_eq(rl_adapter_delta_weight(a, dw), RL_OK);
    rl_layer_free(l);
    rl_adapter_free(a);
    return sp.n;
}

/* very_sparse bases: the ternary kernels (adds and subtracts over the bases'
 * index) give what BLAS on the dense bases gives, on both paths and in both
 * orientations, up to float32 summation order: 1e-5 of the largest entry
 * (reductions of <= 64 terms, ~100 ulp of room). */
RL_TEST(layer, ternary_kernels_match_dense_kernels)
{
    static const int shapes[3][2] = {{64, 40}, {40, 64}, {48, 48}};
    for (int s = 0; s < 3; s++)
        for (int path = RL_PATH_FACTORISED; path <= RL_PATH_MATERIALISED; path++) {
            const int o = shapes[s][0], i = shapes[s][1], n = 9, r = 4;
            rl_shared_bases *b = NULL;
            cr_assert_eq(rl_shared_bases_new(&b, RL_METHOD_RANDLORA, r, o, i, RL_BASES_VERY_SPARSE, RL_BF16, RL_FMA, 3),
                         RL_OK);
            float *W = rl_alloc_floats((size_t)o * i), *x = rl_alloc_floats((size_t)n * i);
            float *dy = rl_alloc_floats((size_t)n * o), *y[2], *dx[2], *g[2], *dw[2];
            rl_mt gen;
            rl_mt_seed(&gen, 21);
            rl_mt_fill_normal(&gen, W, (size_t)o * i, 0.2f);
            rl_mt_fill_normal(&gen, x, (size_t)n * i, 1.0f);
            rl_mt_fill_normal(&gen, dy, (size_t)n * o, 1.0f);
            size_t np = 0;
            for (int k = 0; k < 2; k++) {
                y[k] = rl_alloc_floats((size_t)n * o);
                dx[k] = rl_alloc_floats((size_t)n * i);
                dw[k] = rl_alloc_floats((size_t)o * i);
                np = ternary_step(b, o, i, n, r, (rl_path)path, k == 1, W, x, dy, y[k], dx[k], &g[k], dw[k]);
            }
            cr_assert(rel(y[0], y[1], (size_t)n * o) <= 1e-5, "(%d,%d) path %d output", o, i, path);
            cr_assert(rel(dx[0], dx[1], (size_t)n * i) <= 1e-5, "(%d,%d) path %d dx", o, i, path);
            cr_assert(rel(g[0], g[1], np) <= 1e-5, "(%d,%d) path %d grads %g", o, i, path, rel(g[0], g[1], np));
            cr_assert(rel(dw[0], dw[1], (size_t)o * i) <= 1e-5, "(%d,%d) delta weight", o, i);
            for (int k = 0; k < 2; k++) {
                rl_dealloc(y[k]);
                rl_dealloc(dx[k]);
                rl_dealloc(g[k]);
                rl_dealloc(dw[k]);
            }
            rl_dealloc(W);
            rl_dealloc(x);
            rl_dealloc(dy);
            rl_shared_bases_free(b);
        }
}

/* The ternary kernels' tiles run in parts on the BLAS threads: at 2 threads
 * and 421 rows (4 tiles of 128, 2 parts) the step gives what the dense
 * kernels give, in both orientations, and the same bits on a second run.
 * Tolerance 4e-5 of the largest entry: the gradients now sum 421 tokens
 * (float32: up to 421·2^-24 = 2.5e-5 of the summed magnitudes in the worst
 * case; the 1e-5 of the 9-row test above assumes <= 64 terms). */
RL_TEST(layer, ternary_tile_parts_match_dense_kernels)
{
    static const int shapes[2][2] = {{64, 40}, {40, 64}};
    for (int s = 0; s < 2; s++) {
        const int o = shapes[s][0], i = shapes[s][1], n = 3 * 128 + 37, r = 4;
        rl_blas_set_threads(2);
        rl_shared_bases *b = NULL;
        cr_assert_eq(rl_shared_bases_new(&b, RL_METHOD_RANDLORA, r, o, i, RL_BASES_VERY_SPARSE, RL_BF16, RL_FMA, 3), RL_OK);
        float *W = rl_alloc_floats((size_t)o * i), *x = rl_alloc_floats((size_t)n * i);
        float *dy = rl_alloc_floats((size_t)n * o), *y[3], *dx[3], *g[3];
        rl_mt gen;
        rl_mt_seed(&gen, 23);
        rl_mt_fill_normal(&gen, W, (size_t)o * i, 0.2f);
        rl_mt_fill_normal(&gen, x, (size_t)n * i, 1.0f);
        rl_mt_fill_normal(&gen, dy, (size_t)n * o, 1.0f);
        size_t np = 0;
        for (int k = 0; k < 3; k++) { /* ternary, ternary again, dense */
            y[k] = rl_alloc_floats((size_t)n * o);
            dx[k] = rl_alloc_floats((size_t)n * i);
            np = ternary_step(b, o, i, n, r, RL_PATH_FACTORISED, k == 2, W, x, dy, y[k], dx[k], &g[k], NULL);
        }
        rl_blas_set_threads(1);
        cr_assert(!memcmp(y[0], y[1], (size_t)n * o * sizeof(float)) && !memcmp(dx[0], dx[1], (size_t)n * i * sizeof(float)) &&
                      !memcmp(g[0], g[1], np * sizeof(float)),
                  "(%d,%d): two runs at 2 threads differ", o, i);
        cr_assert(rel(y[0], y[2], (size_t)n * o) <= 4e-5, "(%d,%d) output %g", o, i, rel(y[0], y[2], (size_t)n * o));
        cr_assert(rel(dx[0], dx[2], (size_t)n * i) <= 4e-5, "(%d,%d) dx %g", o, i, rel(dx[0], dx[2], (size_t)n * i));
        cr_assert(rel(g[0], g[2], np) <= 4e-5, "(%d,%d) grads %g", o, i, rel(g[0], g[2], np));
        for (int k = 0; k < 3; k++) {
            rl_dealloc(y[k]);
            rl_dealloc(dx[k]);
            rl_dealloc(g[k]);
        }
        rl_dealloc(W);
        rl_dealloc(x);
        rl_dealloc(dy);
        rl_shared_bases_free(b);
    }
}

/* A RandLora adapter made with 0 rows serves the materialised path only. */
RL_TEST(layer, zero_row_adapter_is_materialised_only)
{
    rl_shared_bases *b = NULL;
    cr_assert_eq(rl_shared_bases_new(&b, RL_METHOD_RANDLORA, 4, 24, 20, RL_BASES_DENSE, RL_BF16, RL_FMA, 0), RL_OK);
    rl_adapter_config cfg = rl_adapter_config_default(RL_METHOD_RANDLORA);
    cfg.r = 4;
    rl_adapter *a = NULL;
    cr_assert_eq(rl_adapter_new(&a, &cfg, 24, 20, b, 0), RL_OK);
    float W[24 * 20] = {0}, x[3 * 20] = {0}, y[3 * 24];
    cr_assert_eq(rl_adapter_forward(a, x, 3, y), RL_EINVAL, "no factorised workspace");
    rl_layer *l = NULL;
    cr_assert_eq(rl_layer_new(&l, W, NULL, a, 3, RL_PATH_FACTORISED), RL_EINVAL);
    cr_assert_eq(rl_layer_new(&l, W, NULL, a, 3, RL_PATH_AUTO), RL_OK);
    rl_plan zp = rl_layer_choose_plan(l, 3, true);
    cr_assert(zp.fwd == RL_PATH_MATERIALISED && zp.grads == RL_PATH_MATERIALISED && zp.dx == RL_PATH_MATERIALISED);
    cr_assert_eq(rl_layer_fix_plan(l, rl_plan_uniform(RL_PATH_FACTORISED)), RL_EINVAL, "no workspace");
    cr_assert_eq(rl_layer_forward(l, x, 3, y), RL_OK);
    rl_layer_free(l);
    rl_adapter_free(a);
    cfg = rl_adapter_config_default(RL_METHOD_LORA);
    cr_assert_eq(rl_adapter_new(&a, &cfg, 24, 20, NULL, 0), RL_EINVAL, "0 rows is for RandLora only");
    rl_shared_bases_free(b);
}

/* Under rl_layer an adapter keeps its forward's intermediates for backward
 * (LoRA's and VeRA's h, RandLora's UA and H), on 1 thread and on 2
 * (where LoRA and VeRA split them in row parts). Over two training steps,
 * with the parameters moved by AdamW between them, every RandLora and VeRA
 * plan and every LoRA plan (its gradients always on the factors),
 * the layer's dx and gradients equal a recomputation from scratch: the
 * adapter called directly (nothing kept) on the same parameters, plus the
 * base's dy·W. The operations and their order are the same, so the results
 * are compared bit for bit. */
RL_TEST(layer, kept_forward_matches_recompute)
{
    static const int shapes[2][2] = {{20, 12}, {12, 20}};
    static const int methods[3] = {RL_METHOD_LORA, RL_METHOD_VERA, RL_METHOD_RANDLORA};
    const rl_path F = RL_PATH_FACTORISED, M = RL_PATH_MATERIALISED;
    for (int th = 1; th <= 2; th++) /* LoRA and VeRA on one thread and on two */
    for (int s = 0; s < 2; s++)
        for (int m = 0; m < 3; m++)
            for (int pl = 0; pl < 8; pl++) {
                if (methods[m] == RL_METHOD_LORA && (pl & 2)) continue; /* LoRA: gradients on the factors */
                rl_blas_set_threads(th);
                const int o = shapes[s][0], i = shapes[s][1], n = 2 * RL_PARTS_MIN_ROWS + 6, r = 4; /* two row parts on 2 threads */
                rl_shared_bases *b = NULL;
                if (methods[m] != RL_METHOD_LORA)
                    cr_assert_eq(rl_shared_bases_new(&b, methods[m], r, o, i, RL_BASES_DENSE, RL_BF16, RL_FMA, 2), RL_OK);
                rl_adapter_config cfg = rl_adapter_config_default((rl_method)methods[m]);
                cfg.r = r;
                rl_adapter *a = NULL;
                cr_assert_eq(rl_adapter_new(&a, &cfg, o, i, b, n), RL_OK);
                rl_span sp = rl_adapter_span(a);
                float *W = rl_alloc_floats((size_t)o * i), *x = rl_alloc_floats((size_t)n * i);
                float *dy = rl_alloc_floats((size_t)n * o), *y = rl_alloc_floats((size_t)n * o);
                float *dx = rl_alloc_floats((size_t)n * i), *dx2 = rl_alloc_floats((size_t)n * i);
                float *g = rl_alloc_floats(sp.n);
                rl_mt gen;
                rl_mt_seed(&gen, 30 + pl);
                rl_mt_fill_normal(&gen, W, (size_t)o * i, 0.3f);
                rl_mt_fill_normal(&gen, x, (size_t)n * i, 1.0f);
                rl_mt_fill_normal(&gen, dy, (size_t)n * o, 1.0f);
                rl_mt_fill_normal(&gen, sp.p, sp.n, 0.2f);
                rl_layer *l = NULL;
                cr_assert_eq(rl_layer_new(&l, W, NULL, a, n, RL_PATH_AUTO), RL_OK);
                if (methods[m] == RL_METHOD_LORA)
                    cr_assert_eq(rl_layer_fix_plan(l, (rl_plan){F, M, F}), RL_EINVAL, "LoRA: gradients on the factors");
                cr_assert_eq(rl_layer_fix_plan(l, (rl_plan){pl & 1 ? M : F, pl & 2 ? M : F, pl & 4 ? M : F}), RL_OK,
                             "%s", rl_errmsg());
                rl_adamw *opt = NULL;
                cr_assert_eq(rl_adamw_new(&opt, sp.n, 1e-2f, 0.0f), RL_OK);
                for (int step = 0; step < 2; step++) {
                    rl_adapter_zero_grad(a);
                    cr_assert_eq(rl_layer_forward(l, x, n, y), RL_OK);
                    cr_assert_eq(rl_layer_backward(l, x, dy, n, dx), RL_OK);
                    memcpy(g, sp.g, sp.n * sizeof(float));
                    /* from scratch: the adapter alone, nothing kept */
                    rl_adapter_zero_grad(a);
                    cr_assert_eq(rl_adapter_forward(a, x, n, y), RL_OK);
                    rl_gemm(RL_NOTRANS, RL_NOTRANS, n, i, o, 1.0f, dy, o, W, i, 0.0f, dx2, i);
                    cr_assert_eq(rl_adapter_backward(a, x, dy, n, dx2), RL_OK);
                    if (pl == 0) { /* the same operations in the same order: bit for bit */
                        cr_assert(memcmp(g, sp.g, sp.n * sizeof(float)) == 0, "shape %d method %d step %d: gradients",
                                  s, methods[m], step);
                        cr_assert(memcmp(dx, dx2, (size_t)n * i * sizeof(float)) == 0, "shape %d method %d step %d: dx",
                                  s, methods[m], step);
                    } else { /* other routes: float32 reorderings of sums of <= 134 terms (~sqrt(134) = 12
                               roundings, ~1e-6 of the largest entry: 1e-5 allows 10x) */
                        cr_assert(rel(g, sp.g, sp.n) <= 1e-5, "plan %d step %d: gradients %g", pl, step, rel(g, sp.g, sp.n));
                        cr_assert(rel(dx, dx2, (size_t)n * i) <= 1e-5, "plan %d step %d: dx", pl, step);
                    }
                    rl_adamw_step(opt, sp); /* the parameters move: nothing from this step may be reused */
                }
                rl_adamw_free(opt);
                rl_layer_free(l);
                rl_dealloc(W);
                rl_dealloc(x);
                rl_dealloc(dy);
                rl_dealloc(y);
                rl_dealloc(dx);
                rl_dealloc(dx2);
                rl_dealloc(g);
                rl_adapter_free(a);
                rl_shared_bases_free(b);
            }
}

/* LoRA and VeRA take their skinny products in row parts, one per BLAS
 * thread, each skinny_rows rows at a time (rl_adapter_impl.h): on one
 * thread n = 2·skinny_rows + 44 rows are two whole blocks and a part, on
 * two threads two parts of a block and a part each, whose sums add at the
 * end. Both give the same output, dx and gradients up to float32 rounding:
 * the sums over rows have up to 2·256 + 44 terms taken in another order, a
 * random walk of ~sqrt(556) = 24 roundings, ~1.4e-6 of the largest entry;
 * 1e-5 allows 7x. */
RL_TEST(layer, skinny_layouts_agree)
{
    const int o = 48, i = 40, r = 8, n = 2 * rl_blas_skinny_rows(r, o > i ? o : i) + 44;
    static const int methods[2] = {RL_METHOD_LORA, RL_METHOD_VERA};
    for (int m = 0; m < 2; m++) {
        rl_shared_bases *b = NULL;
        if (methods[m] == RL_METHOD_VERA)
            cr_assert_eq(rl_shared_bases_new(&b, RL_METHOD_VERA, r, o, i, RL_BASES_DENSE, RL_BF16, RL_FMA, 6), RL_OK);
        rl_adapter_config cfg = rl_adapter_config_default((rl_method)methods[m]);
        cfg.r = r;
        rl_adapter *a = NULL;
        cr_assert_eq(rl_adapter_new(&a, &cfg, o, i, b, n), RL_OK);
        rl_span sp = rl_adapter_span(a);
        float *W = rl_alloc_floats((size_t)o * i), *x = rl_alloc_floats((size_t)n * i), *dy = rl_alloc_floats((size_t)n * o);
        float *y[2], *dx[2], *g[2];
        rl_mt gen;
        rl_mt_seed(&gen, 12);
        rl_mt_fill_normal(&gen, W, (size_t)o * i, 0.2f);
        rl_mt_fill_normal(&gen, x, (size_t)n * i, 1.0f);
        rl_mt_fill_normal(&gen, dy, (size_t)n * o, 1.0f);
        rl_mt_fill_normal(&gen, sp.p, sp.n, 0.3f);
        rl_layer *l = NULL;
        cr_assert_eq(rl_layer_new(&l, W, NULL, a, n, RL_PATH_AUTO), RL_OK);
        cr_assert_eq(rl_layer_fix_plan(l, rl_plan_uniform(RL_PATH_FACTORISED)), RL_OK); /* every term on the factors */
        for (int t = 0; t < 2; t++) {
            rl_blas_set_threads(t + 1);
            cr_assert_eq(rl_blas_threads(), t + 1, "the layout follows the BLAS thread count");
            y[t] = rl_alloc_floats((size_t)n * o);
            dx[t] = rl_alloc_floats((size_t)n * i);
            g[t] = rl_alloc_floats(sp.n);
            rl_adapter_zero_grad(a);
            cr_assert_eq(rl_layer_forward(l, x, n, y[t]), RL_OK);
            cr_assert_eq(rl_layer_backward(l, x, dy, n, dx[t]), RL_OK);
            memcpy(g[t], sp.g, sp.n * sizeof(float));
        }
        cr_assert(rel(y[1], y[0], (size_t)n * o) <= 1e-5, "method %d output", methods[m]);
        cr_assert(rel(dx[1], dx[0], (size_t)n * i) <= 1e-5, "method %d dx", methods[m]);
        cr_assert(rel(g[1], g[0], sp.n) <= 1e-5, "method %d gradients %g", methods[m], rel(g[1], g[0], sp.n));
        for (int t = 0; t < 2; t++) {
            rl_dealloc(y[t]);
            rl_dealloc(dx[t]);
            rl_dealloc(g[t]);
        }
        rl_layer_free(l);
        rl_adapter_free(a);
        rl_dealloc(W);
        rl_dealloc(x);
        rl_dealloc(dy);
        rl_shared_bases_free(b);
    }
}
