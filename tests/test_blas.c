/* test_blas.c -- the BLAS kernels and threads: cpuid features, the choice
 * of OpenBLAS core by features, the SGEMM self-check, the front end's
 * re-execution protocol (experiments/kernels.c) and the element-wise loops'
 * independence of the thread count (rl_par.h). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/rl_layer.h"
#include "core/rl_blas.h"
#include "core/rl_cpu.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "kernels.h"
#include "models/rl_nn.h"
#include "rl_test.h"
#include "train/rl_optim.h"

TestSuite(blas, .init = rl_test_mark);

static rl_cpu_features avx512_cpu(const char *vendor, bool bf16)
{
    rl_cpu_features f;
    memset(&f, 0, sizeof f);
    snprintf(f.vendor, sizeof f.vendor, "%s", vendor);
    f.sse3 = f.avx = f.fma = f.avx2 = true;
    f.avx512f = f.avx512cd = f.avx512bw = f.avx512dq = f.avx512vl = true;
    f.avx512_bf16 = bf16;
    f.os_ymm = f.os_zmm = true;
    return f;
}

RL_TEST(blas, core_tiers)
{
    cr_assert_eq(rl_blas_core_tier("Prescott"), RL_TIER_SSE);
    cr_assert_eq(rl_blas_core_tier("Sandybridge"), RL_TIER_AVX);
    cr_assert_eq(rl_blas_core_tier("Haswell"), RL_TIER_AVX2);
    cr_assert_eq(rl_blas_core_tier("zen"), RL_TIER_AVX2, "names compare without case");
    cr_assert_eq(rl_blas_core_tier("SkylakeX"), RL_TIER_AVX512);
    cr_assert_eq(rl_blas_core_tier("Cooperlake"), RL_TIER_AVX512);
    cr_assert_eq(rl_blas_core_tier("Frobnicator"), -1);
    cr_assert_eq(rl_blas_core_tier(NULL), -1);
}

/* The choice follows the features, never the vendor: the Xeon
 * (family 6, model 207: Prescott fallback) and this project's Zen 5 get the
 * same answer for the same features. */
/* The block of the skinny products fits OpenBLAS 0.3.21's small-matrix
 * kernels on its AVX-512 cores (rows·r·width <= 10⁶, rows·r <= 1200, a
 * multiple of 8, at least 16), and is RL_SKINNY_ROWS everywhere else. */
RL_TEST(blas, skinny_rows_fit_small_kernels)
{
    cr_assert_eq(rl_blas_skinny_rows_on("Cooperlake", 32, 768), 32, "37.5 rows by rows·r <= 1200, 40.7 by 10⁶");
    cr_assert_eq(rl_blas_skinny_rows_on("SkylakeX", 16, 768), 72, "75 by rows·r, 81.4 by 10⁶");
    cr_assert_eq(rl_blas_skinny_rows_on("SkylakeX", 8, 4096), 24, "30.5 by 10⁶");
    cr_assert_eq(rl_blas_skinny_rows_on("Cooperlake", 64, 768), 16, "18.75 by rows·r");
    cr_assert_eq(rl_blas_skinny_rows_on("Cooperlake", 32, 4096), RL_SKINNY_ROWS, "7 rows: too few");
    cr_assert_eq(rl_blas_skinny_rows_on("Haswell", 32, 768), RL_SKINNY_ROWS, "no small kernels");
    cr_assert_eq(rl_blas_skinny_rows_on(NULL, 32, 768), RL_SKINNY_ROWS);
    cr_assert_eq(rl_blas_skinny_rows_on("Cooperlake", 0, 768), RL_SKINNY_ROWS);
    cr_assert_eq(rl_blas_skinny_rows(32, 768), rl_blas_skinny_rows_on(rl_blas_corename(), 32, 768));
}

RL_TEST(blas, upgrade_by_features)
{
    rl_cpu_features intel = avx512_cpu("GenuineIntel", true), amd = avx512_cpu("AuthenticAMD", true);
    intel.family = 6, intel.model = 207;
    amd.family = 26, amd.model = 2;
    cr_assert_str_eq(rl_blas_upgrade("Prescott", &intel), "Cooperlake");
    cr_assert_str_eq(rl_blas_upgrade("Prescott", &amd), "Cooperlake");
    cr_assert_str_eq(rl_blas_upgrade("Haswell", &amd), "Cooperlake");
    cr_assert_null(rl_blas_upgrade("Cooperlake", &amd), "already the best tier");
    cr_assert_null(rl_blas_upgrade("SkylakeX", &amd), "the same tier: no change");
    cr_assert_null(rl_blas_upgrade("Unheard-of", &amd), "an unknown core is left alone");
    rl_cpu_features nobf = avx512_cpu("GenuineIntel", false);
    cr_assert_str_eq(rl_blas_upgrade("Prescott", &nobf), "SkylakeX");
    /* AVX-512 in cpuid but not enabled by the OS: AVX2 kernels at best */
    rl_cpu_features noos = amd;
    noos.os_zmm = false;
    cr_assert_eq(rl_cpu_tier_of(&noos), RL_TIER_AVX2);
    cr_assert_str_eq(rl_blas_upgrade("Prescott", &noos), "Haswell");
    cr_assert_null(rl_blas_upgrade("Zen", &noos));
    /* no AVX at all: nothing better than SSE kernels */
    rl_cpu_features sse;
    memset(&sse, 0, sizeof sse);
    sse.sse3 = true;
    cr_assert_eq(rl_cpu_tier_of(&sse), RL_TIER_SSE);
    cr_assert_null(rl_blas_upgrade("Prescott", &sse));
}

/* The features cpuid reports agree with the kernel's /proc/cpuinfo flags. */
RL_TEST(blas, detect_matches_cpuinfo)
{
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp) cr_skip_test("no /proc/cpuinfo");
    char line[8192] = "";
    while (fgets(line, sizeof line, fp))
        if (strncmp(line, "flags", 5) == 0) break;
    fclose(fp);
    if (strncmp(line, "flags", 5) != 0) cr_skip_test("no flags line");
    rl_cpu_features f;
    rl_cpu_detect(&f);
    static const char *const names[4] = {" avx2", " fma", " avx512f", " avx512bw"};
    const bool got[4] = {f.avx2, f.fma, f.avx512f, f.avx512bw};
    for (int i = 0; i < 4; i++) {
        char pat[32];
        snprintf(pat, sizeof pat, "%s ", names[i]);
        bool listed = strstr(line, pat) != NULL;
        if (!listed) { /* the last flag of the line ends with a newline */
            snprintf(pat, sizeof pat, "%s\n", names[i]);
            listed = strstr(line, pat) != NULL;
        }
        cr_assert_eq(got[i], listed, "%s: cpuid %d, /proc/cpuinfo %d", names[i] + 1, got[i], listed);
    }
}

RL_TEST(blas, selfcheck_and_rates)
{
    cr_assert_eq(rl_blas_selfcheck(), RL_OK, "%s", rl_errmsg());
    double fma = 0, sg = 0;
    cr_assert_eq(rl_cpu_fma_peak(RL_TIER_AVX512, 1, 0.03, &fma), RL_OK);
    cr_assert(fma > 0.1, "fma peak %g GFLOP/s", fma);
    cr_assert_eq(rl_cpu_fma_peak(RL_TIER_AVX512, 0, 0.03, &fma), RL_EINVAL);
    cr_assert_eq(rl_blas_sgemm_rate(64, 0.01, &sg), RL_OK);
    cr_assert(sg > 0.1, "sgemm %g GFLOP/s", sg);
    cr_assert_eq(rl_blas_sgemm_rate(8, 0.01, &sg), RL_EINVAL);
}

/* The re-executed process (RL_BLAS_KERNEL=trial:<OpenBLAS's core>) checks
 * SGEMM and keeps the kernels, recording it for children and for the
 * report; a user's OPENBLAS_CORETYPE is respected (and named). Neither path
 * executes anything when the check passes. */
RL_TEST(blas, kernel_choice_protocol)
{
    char *argv[] = {"randlora", NULL};
    setenv("RL_BLAS_KERNEL", "trial:Prescott", 1);
    kernels_choose(argv);
    cr_assert_str_eq(getenv("RL_BLAS_KERNEL"), "chosen:Prescott");
    cr_assert(strstr(rl_blas_selection(), "chosen by randlora over OpenBLAS's own Prescott") != NULL, "%s",
              rl_blas_selection());
    kernels_choose(argv); /* a child of it: no second check, the same note */
    cr_assert(strstr(rl_blas_selection(), "over OpenBLAS's own Prescott") != NULL);
    unsetenv("RL_BLAS_KERNEL");
    setenv("OPENBLAS_CORETYPE", rl_blas_corename(), 1);
    kernels_choose(argv);
    cr_assert(strstr(rl_blas_selection(), "set by the user") != NULL, "%s", rl_blas_selection());
    setenv("RL_BLAS_KERNEL", "off", 1);
    unsetenv("OPENBLAS_CORETYPE");
    kernels_choose(argv);
    cr_assert(strstr(rl_blas_selection(), "RL_BLAS_KERNEL=off") != NULL, "%s", rl_blas_selection());
    unsetenv("RL_BLAS_KERNEL");
}

/* The element-wise loops give bit-identical results on 1 and 2 threads
 * (each output is written by one thread and sums its terms in a fixed
 * order; GELU's vector and scalar paths fall on the same elements): AdamW,
 * GELU, LayerNorm (dx, dγ, dβ) and attention, on sizes above RL_PAR_MIN so
 * that the loops do split (the GELU array, 32757 elements, ends in a partial
 * vector). */
RL_TEST(blas, loops_do_not_depend_on_threads)
{
    const int n = 512, d = 64, B = 32, T = 16, h = 4;
    const size_t nd = (size_t)n * d;
    float *x = rl_alloc_floats(nd), *dy = rl_alloc_floats(nd), *gam = rl_alloc_floats(d), *bet = rl_alloc_floats(d);
    float *mean = rl_alloc_floats(n), *rstd = rl_alloc_floats(n), *y[2], *dx[2], *dg[2], *db[2], *p[2], *o[2], *dq[2], *gf[2], *gb[2];
    float *P = rl_alloc_floats((size_t)B * h * T * T), *dP = rl_alloc_floats((size_t)B * h * T * T);
    float *dk = rl_alloc_floats(nd), *dv = rl_alloc_floats(nd);
    rl_mt g;
    rl_mt_seed(&g, 77);
    rl_mt_fill_normal(&g, x, nd, 1.0f);
    rl_mt_fill_normal(&g, dy, nd, 1.0f);
    rl_mt_fill_normal(&g, gam, d, 1.0f);
    rl_mt_fill_normal(&g, bet, d, 1.0f);
    for (int t = 0; t < 2; t++) {
        rl_blas_set_threads(t + 1);
        y[t] = rl_alloc_floats(nd);
        dx[t] = rl_alloc_floats(nd);
        dg[t] = rl_alloc_floats(d);
        db[t] = rl_alloc_floats(d);
        p[t] = rl_alloc_floats(nd);
        o[t] = rl_alloc_floats(nd);
        dq[t] = rl_alloc_floats(nd);
        gf[t] = rl_alloc_floats(nd);
        gb[t] = rl_alloc_floats(nd);
        rl_layernorm_forward(y[t], mean, rstd, x, gam, bet, n, d);
        rl_layernorm_backward(dx[t], dg[t], db[t], dy, x, mean, rstd, gam, n, d, 0);
        const size_t ng = nd - 11; /* ends in a partial vector */
        rl_gelu_forward(gf[t], x, ng);
        rl_gelu_backward(gb[t], dy, x, ng);
        cr_assert(memcmp(gf[0], gf[t], ng * sizeof(float)) == 0 && memcmp(gb[0], gb[t], ng * sizeof(float)) == 0,
                  "gelu forward, backward");
        rl_attention_forward(o[t], P, x, dy, y[t], B, T, d, h);
        rl_attention_backward(dq[t], dk, dv, dP, dy, P, x, dy, y[t], B, T, d, h);
        memcpy(p[t], x, nd * sizeof(float));
        rl_adamw *opt = NULL;
        cr_assert_eq(rl_adamw_new(&opt, nd, 1e-3f, 0.01f), RL_OK);
        for (int s = 0; s < 3; s++) rl_adamw_step(opt, (rl_span){p[t], dy, nd});
        rl_adamw_free(opt);
    }
    cr_assert(memcmp(y[0], y[1], nd * sizeof(float)) == 0, "layernorm forward");
    cr_assert(memcmp(dx[0], dx[1], nd * sizeof(float)) == 0, "layernorm dx");
    cr_assert(memcmp(dg[0], dg[1], d * sizeof(float)) == 0 && memcmp(db[0], db[1], d * sizeof(float)) == 0,
              "layernorm dgamma, dbeta");
    cr_assert(memcmp(o[0], o[1], nd * sizeof(float)) == 0, "attention forward");
    cr_assert(memcmp(dq[0], dq[1], nd * sizeof(float)) == 0, "attention dq");
    cr_assert(memcmp(p[0], p[1], nd * sizeof(float)) == 0, "adamw");
    for (int t = 0; t < 2; t++) {
        float *bufs[] = {y[t], dx[t], dg[t], db[t], p[t], o[t], dq[t], gf[t], gb[t]};
        for (int k = 0; k < 9; k++) rl_dealloc(bufs[k]);
    }
    float *bufs[] = {x, dy, gam, bet, mean, rstd, P, dP, dk, dv};
    for (int k = 0; k < 10; k++) rl_dealloc(bufs[k]);
}

/* rl_blas_run_parts calls every part once, on as many threads as parts
 * (OpenMP flavour), with BLAS on one thread inside and its thread count back
 * after; one part runs in place. */
static void mark_part(void *ctx, int part, int parts)
{
    int *seen = ctx;
    seen[part] += 1 + 100 * parts;
    seen[8 + part] = rl_blas_threads();
}

RL_TEST(blas, run_parts_calls_every_part)
{
    rl_blas_set_threads(2);
    int seen[16] = {0};
    rl_blas_run_parts(3, mark_part, seen);
    for (int p = 0; p < 3; p++) cr_assert_eq(seen[p], 301, "part %d", p);
    cr_assert_eq(seen[3], 0);
    if (rl_blas_shares_openmp())
        for (int p = 0; p < 3; p++) cr_assert_eq(seen[8 + p], 1, "BLAS on one thread inside part %d", p);
    cr_assert_eq(rl_blas_threads(), 2, "thread count restored");
    memset(seen, 0, sizeof seen);
    rl_blas_run_parts(1, mark_part, seen);
    cr_assert(seen[0] == 101 && seen[8] == 2, "one part: in place, BLAS threads untouched");
    rl_blas_set_threads(1);
}

/* rl_gemm's split over threads: every (ta, tb), split by rows (m >= n) and
 * by columns (n > m), with strides wider than the matrices, alpha and beta,
 * and a split dimension that is not a multiple of the alignment. Columns
 * outside C's n are left as they were; inside, the split and the whole
 * one-thread call each agree with the naive double-accumulated product
 * within 1e-4 relative to the magnitude |alpha| sum_p |a_ip b_pj| + |beta c_ij|
 * (float32 rounding over k <= 200 terms: k·2^-24 ~ 1.2e-5, kept 8x clear).
 * Not bit for bit: OpenBLAS's edge tiles sum in another order, so an
 * element can round differently when a cut moves it to a tile's edge. */
RL_TEST(blas, gemm_split_equals_whole)
{
    static const int shapes[][3] = {{203, 64, 97}, {70, 301, 200}, {1024, 32, 48}};
    for (int s = 0; s < 3; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                const int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 7;
                float *A = rl_alloc_floats((size_t)(ta ? k : m) * lda), *B = rl_alloc_floats((size_t)(tb ? n : k) * ldb);
                float *C0 = rl_alloc_floats((size_t)m * ldc), *C1 = rl_alloc_floats((size_t)m * ldc);
                float *Cr = rl_alloc_floats((size_t)m * ldc), *Am = rl_alloc_floats((size_t)(ta ? k : m) * lda);
                float *Bm = rl_alloc_floats((size_t)(tb ? n : k) * ldb), *Cm = rl_alloc_floats((size_t)m * ldc);
                rl_mt g;
                rl_mt_seed(&g, 11 + s);
                rl_mt_fill_normal(&g, A, (size_t)(ta ? k : m) * lda, 1.0f);
                rl_mt_fill_normal(&g, B, (size_t)(tb ? n : k) * ldb, 1.0f);
                rl_mt_fill_normal(&g, C0, (size_t)m * ldc, 1.0f);
                memcpy(C1, C0, (size_t)m * ldc * sizeof(float));
                memcpy(Cr, C0, (size_t)m * ldc * sizeof(float));
                for (size_t e = 0; e < (size_t)(ta ? k : m) * lda; e++) Am[e] = fabsf(A[e]);
                for (size_t e = 0; e < (size_t)(tb ? n : k) * ldb; e++) Bm[e] = fabsf(B[e]);
                for (size_t e = 0; e < (size_t)m * ldc; e++) Cm[e] = fabsf(C0[e]);
                rl_blas_set_threads(1);
                rl_gemm(ta, tb, m, n, k, 0.5f, A, lda, B, ldb, 0.75f, C0, ldc);
                rl_gemm_ref(ta, tb, m, n, k, 0.5f, A, lda, B, ldb, 0.75f, Cr, ldc);
                rl_gemm_ref(ta, tb, m, n, k, 0.5f, Am, lda, Bm, ldb, 0.75f, Cm, ldc);
                rl_blas_set_threads(2);
                if (rl_blas_shares_openmp())
                    cr_assert_eq(rl_gemm_parts(m, n, k), 2, "shape %d: split in two at 2 threads", s);
                rl_gemm(ta, tb, m, n, k, 0.5f, A, lda, B, ldb, 0.75f, C1, ldc);
                rl_blas_set_threads(1);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < ldc; j++) {
                        size_t e = (size_t)i * ldc + j;
                        if (j >= n) { /* outside the product: untouched by either */
                            cr_assert(memcmp(&C0[e], &C1[e], sizeof(float)) == 0, "shape %d: C[%d][%d] written", s, i, j);
                            continue;
                        }
                        cr_assert(fabsf(C1[e] - Cr[e]) <= 1e-4f * Cm[e], "shape %d ta %d tb %d: C[%d][%d] split %.9g vs naive %.9g",
                                  s, ta, tb, i, j, C1[e], Cr[e]);
                        cr_assert(fabsf(C0[e] - Cr[e]) <= 1e-4f * Cm[e], "shape %d ta %d tb %d: C[%d][%d] whole %.9g vs naive %.9g",
                                  s, ta, tb, i, j, C0[e], Cr[e]);
                    }
                float *bufs[] = {A, B, C0, C1, Cr, Am, Bm, Cm};
                for (int q = 0; q < 8; q++) rl_dealloc(bufs[q]);
            }
    cr_assert_eq(rl_gemm_parts(64, 64, 64), 1, "a product under RL_GEMM_SPLIT_MACS runs whole");
}

/* A training step is deterministic for a given thread count: two runs on 2
 * threads, from the same state, agree bit for bit -- RandLora, and LoRA and
 * VeRA, whose skinny products run in two row parts there. */
RL_TEST(blas, step_deterministic_at_two_threads)
{
    static const rl_method methods[3] = {RL_METHOD_RANDLORA, RL_METHOD_LORA, RL_METHOD_VERA};
    for (int m = 0; m < 3; m++) {
        const int o = 256, i = 256, n = 512, r = 16;
        rl_blas_set_threads(2);
        rl_shared_bases *b = NULL;
        if (methods[m] != RL_METHOD_LORA)
            cr_assert_eq(rl_shared_bases_new(&b, methods[m], r, o, i, RL_BASES_DENSE, RL_BF16, RL_FMA, 1), RL_OK);
        rl_adapter_config cfg = rl_adapter_config_default(methods[m]);
        cfg.r = r;
        float *W = rl_alloc_floats((size_t)o * i), *x = rl_alloc_floats((size_t)n * i), *dy = rl_alloc_floats((size_t)n * o);
        float *y = rl_alloc_floats((size_t)n * o), *dx[2], *pr[2];
        rl_mt g;
        rl_mt_seed(&g, 5);
        rl_mt_fill_normal(&g, W, (size_t)o * i, 0.1f);
        rl_mt_fill_normal(&g, x, (size_t)n * i, 1.0f);
        rl_mt_fill_normal(&g, dy, (size_t)n * o, 1.0f);
        for (int run = 0; run < 2; run++) {
            rl_adapter *a = NULL;
            cr_assert_eq(rl_adapter_new(&a, &cfg, o, i, b, n), RL_OK);
            rl_span sp = rl_adapter_span(a);
            rl_mt pg;
            rl_mt_seed(&pg, 9);
            rl_mt_fill_normal(&pg, sp.p, sp.n, 0.05f);
            rl_layer *l = NULL;
            cr_assert_eq(rl_layer_new(&l, W, NULL, a, n, RL_PATH_AUTO), RL_OK);
            rl_adamw *opt = NULL;
            cr_assert_eq(rl_adamw_new(&opt, sp.n, 1e-3f, 0.0f), RL_OK);
            dx[run] = rl_alloc_floats((size_t)n * i);
            pr[run] = rl_alloc_floats(sp.n);
            for (int s = 0; s < 2; s++) {
                rl_adapter_zero_grad(a);
                cr_assert_eq(rl_layer_forward(l, x, n, y), RL_OK);
                cr_assert_eq(rl_layer_backward(l, x, dy, n, dx[run]), RL_OK);
                rl_adamw_step(opt, sp);
            }
            memcpy(pr[run], sp.p, sp.n * sizeof(float));
            size_t np = sp.n;
            rl_adamw_free(opt);
            rl_layer_free(l);
            rl_adapter_free(a);
            if (run == 1) {
                cr_assert(memcmp(dx[0], dx[1], (size_t)n * i * sizeof(float)) == 0, "method %d: dx", methods[m]);
                cr_assert(memcmp(pr[0], pr[1], np * sizeof(float)) == 0, "method %d: parameters after two steps",
                          methods[m]);
            }
        }
        for (int run = 0; run < 2; run++) {
            rl_dealloc(dx[run]);
            rl_dealloc(pr[run]);
        }
        rl_dealloc(W);
        rl_dealloc(x);
        rl_dealloc(dy);
        rl_dealloc(y);
        rl_shared_bases_free(b);
    }
    rl_blas_set_threads(1);
}
