/* rl_blas.c -- cblas wrappers (the only file that includes cblas.h),
 * threads, and the check of OpenBLAS's kernel choice. */
#include "rl_blas.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "rl_clock.h"
#include "rl_rng.h"

static void gemm_whole(rl_trans ta, rl_trans tb, int m, int n, int k, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc)
{
    RL_ASSERT(m >= 0 && n >= 0 && k >= 0, "gemm: m=%d n=%d k=%d", m, n, k);
    if (m == 0 || n == 0) return;
    if (k == 0) {
        /* cblas would scale C by beta; do the same without reading A/B */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, ta == RL_TRANS ? CblasTrans : CblasNoTrans,
                tb == RL_TRANS ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

void rl_gemm_whole(rl_trans ta, rl_trans tb, int m, int n, int k, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_whole(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- the split of one product over the BLAS threads ---- */

typedef struct {
    rl_trans ta, tb;
    int m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
    bool rows; /* split C's rows (else its columns) */
} gemm_job;

/* [lo, hi) of d for part p of parts, boundaries on multiples of RL_GEMM_ALIGN */
static void split_range(int d, int p, int parts, int *lo, int *hi)
{
    *lo = p == 0 ? 0 : (int)((long)d * p / parts) / RL_GEMM_ALIGN * RL_GEMM_ALIGN;
    *hi = p + 1 == parts ? d : (int)((long)d * (p + 1) / parts) / RL_GEMM_ALIGN * RL_GEMM_ALIGN;
}

static void gemm_part(void *ctx, int p, int parts)
{
    const gemm_job *j = ctx;
    int lo, hi;
    split_range(j->rows ? j->m : j->n, p, parts, &lo, &hi);
    if (hi <= lo) return;
    if (j->rows) /* rows lo..hi of op(A) and of C */
        gemm_whole(j->ta, j->tb, hi - lo, j->n, j->k, j->alpha, j->ta == RL_TRANS ? j->A + lo : j->A + (size_t)lo * j->lda,
                   j->lda, j->B, j->ldb, j->beta, j->C + (size_t)lo * j->ldc, j->ldc);
    else /* columns lo..hi of op(B) and of C */
        gemm_whole(j->ta, j->tb, j->m, hi - lo, j->k, j->alpha, j->A, j->lda,
                   j->tb == RL_TRANS ? j->B + (size_t)lo * j->ldb : j->B + lo, j->ldb, j->beta, j->C + lo, j->ldc);
}

int rl_gemm_parts(int m, int n, int k)
{
#ifdef _OPENMP
    if (!rl_blas_shares_openmp() || omp_in_parallel()) return 1;
    if ((double)m * n * k < RL_GEMM_SPLIT_MACS) return 1;
    const int d = m >= n ? m : n, t = openblas_get_num_threads();
    int parts = d / RL_GEMM_SPLIT_MIN;
    return parts < 1 ? 1 : parts < t ? parts : t;
#else
    (void)m, (void)n, (void)k;
    return 1;
#endif
}

void rl_gemm(rl_trans ta, rl_trans tb, int m, int n, int k,
             float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc)
{
    const int parts = m > 0 && n > 0 && k > 0 ? rl_gemm_parts(m, n, k) : 1;
    if (parts < 2) {
        gemm_whole(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    gemm_job j = {.ta = ta, .tb = tb, .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc,
                  .alpha = alpha, .beta = beta, .A = A, .B = B, .C = C, .rows = m >= n};
    rl_blas_run_parts(parts, gemm_part, &j);
}

void rl_gemm_ref(rl_trans ta, rl_trans tb, int m, int n, int k,
                 float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0.0;
            for (int p = 0; p < k; p++) {
                float a = ta == RL_TRANS ? A[(long)p * lda + i] : A[(long)i * lda + p];
                float b = tb == RL_TRANS ? B[(long)j * ldb + p] : B[(long)p * ldb + j];
                acc += (double)a * (double)b;
            }
            float *c = &C[(long)i * ldc + j];
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}

int rl_blas_skinny_rows(int r, int width) { return rl_blas_skinny_rows_on(openblas_get_corename(), r, width); }

int rl_blas_skinny_rows_on(const char *core, int r, int width)
{
    if (r < 1 || width < 1 || rl_blas_core_tier(core) != RL_TIER_AVX512) return RL_SKINNY_ROWS;
    long rows = 1000000L / ((long)r * width), t = 1200L / r;
    rows = (rows < t ? rows : t) / 8 * 8;
    return rows >= 16 ? (int)rows : RL_SKINNY_ROWS;
}

/* ---- threads ---- */

bool rl_blas_shares_openmp(void)
{
#ifdef _OPENMP
    return openblas_get_parallel() == 2;
#else
    return false;
#endif
}

const char *rl_blas_threading(void)
{
    int p = openblas_get_parallel();
    return p == 2 ? "openmp" : p == 1 ? "pthread" : "serial";
}

void rl_blas_set_threads(int n)
{
    if (n < 1) return;
    openblas_set_num_threads(n);
#ifdef _OPENMP
    /* the element-wise loops: the same pool as BLAS, or one thread beside a
     * pthread OpenBLAS (whose spinning workers they would compete with) */
    omp_set_num_threads(rl_blas_shares_openmp() ? n : 1);
#endif
}

int rl_blas_threads(void) { return openblas_get_num_threads(); }

void rl_blas_run_parts(int parts, void (*fn)(void *ctx, int part, int parts), void *ctx)
{
#ifdef _OPENMP
    if (parts > 1 && rl_blas_shares_openmp()) {
        const int keep = openblas_get_num_threads();
        openblas_set_num_threads(1);
#pragma omp parallel for num_threads(parts) schedule(static, 1)
        for (int p = 0; p < parts; p++) fn(ctx, p, parts);
        rl_blas_set_threads(keep);
        return;
    }
#endif
    fn(ctx, 0, 1);
}

const char *rl_blas_corename(void) { return openblas_get_corename(); }
const char *rl_blas_config(void) { return openblas_get_config(); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static rl_status sgemm_rate(int size, double seconds, bool whole, double *gflops)
{
    if (size < 16) return rl_fail(RL_EINVAL, "sgemm rate: size %d too small", size);
    const size_t nn = (size_t)size * size;
    enum { MAX_CALLS = 200 };
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    double *t = malloc(MAX_CALLS * sizeof *t);
    rl_status st = a && b && c && t ? RL_OK : rl_fail(RL_ENOMEM, "sgemm rate: cannot allocate 3 x %dx%d", size, size);
    if (st == RL_OK) {
        rl_mt g;
        rl_mt_seed(&g, 1);
        for (size_t i = 0; i < nn; i++) {
            a[i] = 2 * rl_mt_uniform01(&g) - 1;
            b[i] = 2 * rl_mt_uniform01(&g) - 1;
        }
        void (*gemm)(rl_trans, rl_trans, int, int, int, float, const float *, int, const float *, int, float, float *,
                     int) = whole ? rl_gemm_whole : rl_gemm;
        for (int w = 0; w < 2; w++) gemm(RL_NOTRANS, RL_NOTRANS, size, size, size, 1.0f, a, size, b, size, 0.0f, c, size);
        int n = 0;
        double start = rl_now();
        while (n < MAX_CALLS && (n < 7 || rl_now() - start < seconds)) {
            double t0 = rl_now();
            gemm(RL_NOTRANS, RL_NOTRANS, size, size, size, 1.0f, a, size, b, size, 0.0f, c, size);
            t[n++] = rl_now() - t0;
        }
        qsort(t, (size_t)n, sizeof *t, cmp_double);
        double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
        *gflops = 2.0 * (double)size * size * size / med / 1e9;
    }
    free(a);
    free(b);
    free(c);
    free(t);
    return st;
}

rl_status rl_blas_sgemm_rate(int size, double seconds, double *gflops) { return sgemm_rate(size, seconds, false, gflops); }

rl_status rl_blas_sgemm_rate_whole(int size, double seconds, double *gflops)
{
    return sgemm_rate(size, seconds, true, gflops);
}

/* ---- kernel choice ---- */

int rl_blas_core_tier(const char *core)
{
    static const struct {
        const char *name;
        int tier;
    } cores[] = {
        /* OpenBLAS 0.3.21's DYNAMIC_ARCH core names (driver/others/dynamic.c) */
        {"Katmai", RL_TIER_SSE},      {"Coppermine", RL_TIER_SSE},   {"Northwood", RL_TIER_SSE},
        {"Prescott", RL_TIER_SSE},    {"Banias", RL_TIER_SSE},       {"Atom", RL_TIER_SSE},
        {"Core2", RL_TIER_SSE},       {"Penryn", RL_TIER_SSE},       {"Dunnington", RL_TIER_SSE},
        {"Nehalem", RL_TIER_SSE},     {"Athlon", RL_TIER_SSE},       {"Opteron", RL_TIER_SSE},
        {"Opteron_SSE3", RL_TIER_SSE}, {"Barcelona", RL_TIER_SSE},   {"Nano", RL_TIER_SSE},
        {"Bobcat", RL_TIER_SSE},      {"Sandybridge", RL_TIER_AVX},  {"Bulldozer", RL_TIER_AVX},
        {"Piledriver", RL_TIER_AVX},  {"Steamroller", RL_TIER_AVX},  {"Excavator", RL_TIER_AVX2},
        {"Haswell", RL_TIER_AVX2},    {"Zen", RL_TIER_AVX2},         {"SkylakeX", RL_TIER_AVX512},
        {"Cooperlake", RL_TIER_AVX512}, {"SapphireRapids", RL_TIER_AVX512},
    };
    if (!core) return -1;
    for (size_t i = 0; i < sizeof cores / sizeof cores[0]; i++)
        if (strcasecmp(core, cores[i].name) == 0) return cores[i].tier;
    return -1;
}

const char *rl_blas_best_core(const rl_cpu_features *f)
{
    switch (rl_cpu_tier_of(f)) {
    case RL_TIER_AVX512: return f->avx512_bf16 ? "Cooperlake" : "SkylakeX";
    case RL_TIER_AVX2: return "Haswell";
    case RL_TIER_AVX: return "Sandybridge";
    case RL_TIER_SSE: break;
    }
    return NULL;
}

const char *rl_blas_upgrade(const char *current, const rl_cpu_features *f)
{
    int have = rl_blas_core_tier(current);
    const char *best = rl_blas_best_core(f);
    if (have < 0 || !best) return NULL;
    return rl_blas_core_tier(best) > have ? best : NULL;
}

rl_status rl_blas_selfcheck(void)
{
    static const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {64, 64, 64}, {129, 67, 258}, {256, 256, 256}};
    const size_t cap = 258 * 258;
    float *A = malloc(cap * sizeof *A), *B = malloc(cap * sizeof *B), *C = malloc(cap * sizeof *C);
    float *C0 = malloc(cap * sizeof *C0);
    rl_status st = A && B && C && C0 ? RL_OK : rl_fail(RL_ENOMEM, "blas check: no memory");
    rl_mt g;
    rl_mt_seed(&g, 20240601);
    for (size_t s = 0; st == RL_OK && s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; st == RL_OK && t < 4; t++) {
            const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            const rl_trans ta = (t & 1) ? RL_TRANS : RL_NOTRANS, tb = (t & 2) ? RL_TRANS : RL_NOTRANS;
            const int lda = ta == RL_TRANS ? m : k, ldb = tb == RL_TRANS ? k : n;
            const float alpha = 1.5f, beta = t == 3 ? 0.0f : 0.5f;
            for (size_t i = 0; i < (size_t)m * k; i++) A[i] = 2 * rl_mt_uniform01(&g) - 1;
            for (size_t i = 0; i < (size_t)k * n; i++) B[i] = 2 * rl_mt_uniform01(&g) - 1;
            for (size_t i = 0; i < (size_t)m * n; i++) C0[i] = C[i] = 2 * rl_mt_uniform01(&g) - 1;
            rl_gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, n);
            for (int i = 0; i < m && st == RL_OK; i++)
                for (int j = 0; j < n; j++) {
                    double acc = 0, mag = 0;
                    for (int p = 0; p < k; p++) {
                        double a = ta == RL_TRANS ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                        double b = tb == RL_TRANS ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j];
                        acc += a * b;
                        mag += fabs(a * b);
                    }
                    double c0 = C0[(size_t)i * n + j], ref = alpha * acc + beta * c0;
                    double bound = k * (double)FLT_EPSILON * (fabs(alpha) * mag + fabs(beta * c0));
                    double err = fabs((double)C[(size_t)i * n + j] - ref);
                    if (!(err <= bound)) {
                        st = rl_fail(RL_ESHAPE, "SGEMM on OpenBLAS's %s kernels disagrees with the naive product: "
                                     "m=%d n=%d k=%d trans=%c%c, C[%d,%d] = %g, expected %g (bound %.2g)",
                                     rl_blas_corename(), m, n, k, ta == RL_TRANS ? 'T' : 'N',
                                     tb == RL_TRANS ? 'T' : 'N', i, j, (double)C[(size_t)i * n + j], ref, bound);
                        break;
                    }
                }
        }
    free(A);
    free(B);
    free(C);
    free(C0);
    return st;
}

static char selection[256];

void rl_blas_set_selection(const char *note) { snprintf(selection, sizeof selection, "%s", note ? note : ""); }
const char *rl_blas_selection(void) { return selection; }

/* Before any rl_blas_set_threads: the loops must not start a default-sized
 * OpenMP team beside a pthread OpenBLAS. */
__attribute__((constructor)) static void rl_blas_init_threads(void)
{
#ifdef _OPENMP
    if (!rl_blas_shares_openmp()) omp_set_num_threads(1);
#endif
}
