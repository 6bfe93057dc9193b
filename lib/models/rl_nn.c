/* rl_nn.c -- LayerNorm, GELU, cross-entropy, attention: forward and backward. */
#include "rl_nn.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "../core/rl_cpu.h"
#include "../core/rl_par.h"

/* ---- layernorm ---- */

void rl_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                          const float *beta, int n, int d)
{
    RL_PAR_FOR_W(n, d)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        double m = 0, v = 0;
        for (int j = 0; j < d; j++) m += xi[j];
        m /= d;
        for (int j = 0; j < d; j++) v += (xi[j] - m) * (xi[j] - m);
        v /= d;
        float rs = (float)(1.0 / sqrt(v + RL_LN_EPS));
        mean[i] = (float)m;
        rstd[i] = rs;
        float *yi = y + (size_t)i * d;
        const float mf = (float)m;
#pragma omp simd
        for (int j = 0; j < d; j++) yi[j] = (xi[j] - mf) * rs * gamma[j] + beta[j];
    }
}

/* With x̂ = (x - mean)·rstd and g = dy ⊙ γ:
 *   dx = rstd · (g - mean(g) - x̂ · mean(g ⊙ x̂))
 *   dγ += Σ_rows dy ⊙ x̂,   dβ += Σ_rows dy
 * dx row by row; dγ, dβ by blocks of columns (each column sums its rows
 * in order), so that threads never share an output (rl_par.h). */
void rl_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *gamma, int n, int d,
                           int dx_accumulate)
{
    RL_PAR_FOR_W(n, d)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d, *dyi = dy + (size_t)i * d;
        float *dxi = dx + (size_t)i * d;
        double sg = 0, sgx = 0;
        for (int j = 0; j < d; j++) {
            float xh = (xi[j] - mean[i]) * rstd[i];
            float g = dyi[j] * gamma[j];
            sg += g;
            sgx += g * xh;
        }
        const float mg = (float)(sg / d), mgx = (float)(sgx / d), mi = mean[i], ri = rstd[i];
        if (dx_accumulate) {
#pragma omp simd
            for (int j = 0; j < d; j++) dxi[j] += ri * (dyi[j] * gamma[j] - mg - ((xi[j] - mi) * ri) * mgx);
        } else {
#pragma omp simd
            for (int j = 0; j < d; j++) dxi[j] = ri * (dyi[j] * gamma[j] - mg - ((xi[j] - mi) * ri) * mgx);
        }
    }
    if (!dgamma && !dbeta) return;
    /* blocks of LN_COLS columns, each element summing its rows in ascending
     * order (a vector lane per column) */
    enum { LN_COLS = 16 };
    const int nblk = (d + LN_COLS - 1) / LN_COLS;
    RL_PAR_FOR_W(nblk, (size_t)n * LN_COLS)
    for (int bk = 0; bk < nblk; bk++) {
        const int j0 = bk * LN_COLS, w = d - j0 < LN_COLS ? d - j0 : LN_COLS;
        float sgam[LN_COLS], sbet[LN_COLS];
        for (int jj = 0; jj < w; jj++) {
            sgam[jj] = dgamma ? dgamma[j0 + jj] : 0.0f;
            sbet[jj] = dbeta ? dbeta[j0 + jj] : 0.0f;
        }
        for (int i = 0; i < n; i++) {
            const float *dyi = dy + (size_t)i * d + j0, *xi = x + (size_t)i * d + j0, mi = mean[i], ri = rstd[i];
#pragma omp simd
            for (int jj = 0; jj < w; jj++) {
                sgam[jj] += dyi[jj] * ((xi[jj] - mi) * ri);
                sbet[jj] += dyi[jj];
            }
        }
        for (int jj = 0; jj < w; jj++) {
            if (dgamma) dgamma[j0 + jj] = sgam[jj];
            if (dbeta) dbeta[j0 + jj] = sbet[jj];
        }
    }
}

/* ---- vector kernels ----
 *
 * The element-wise kernels below are compiled twice, for the baseline ISA
 * and for AVX-512, and the wider one runs when the CPU has it (rl_cpu.h).
 * Their loops are `omp simd`: per-element operations only, so no sum is
 * reordered. GELU's erff and expf come for whole vectors from glibc's libmvec
 * (`omp declare simd` below), a few ulp from the scalar functions; each
 * array is cut into blocks of a fixed size, a multiple of every vector
 * width, so which elements take the vector path depends on the array only,
 * never on the thread count. */
#pragma omp declare simd notinbranch
extern float erff(float);
#pragma omp declare simd notinbranch
extern float expf(float);

#if defined(__x86_64__) && !defined(__AVX512F__)
#define RL_NN_AVX512 1
#if defined(__clang__)   /* clang has no prefer-vector-width in target() */
#define TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))
#else
#define TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,prefer-vector-width=512")))
#endif
#endif

/* Does this CPU run the AVX-512 kernels? (cpuid, once per call of the
 * wrappers: cheap next to their loops) */
static bool use_avx512(void)
{
#ifdef RL_NN_AVX512
    rl_cpu_features f;
    rl_cpu_detect(&f);
    return rl_cpu_tier_of(&f) == RL_TIER_AVX512;
#else
    return false;
#endif
}

/* ---- gelu ---- */

#define GELU_BLOCK 2048

static inline __attribute__((always_inline)) void gelu_fwd_k(float *y, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

/* gelu'(x) = Φ(x) + x φ(x) */
static inline __attribute__((always_inline)) void gelu_bwd_k(float *dx, const float *dy, const float *x, size_t n)
{
    const float inv_sqrt_2pi = 0.3989422804014327f;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float cdf = 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f));
        float pdf = inv_sqrt_2pi * expf(-0.5f * x[i] * x[i]);
        dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
}

/* One signature for both directions (the forward ignores dy). */
typedef void (*gelu_fn)(float *out, const float *dy, const float *x, size_t n);
static void gelu_fwd_base(float *y, const float *dy, const float *x, size_t n) { (void)dy, gelu_fwd_k(y, x, n); }
static void gelu_bwd_base(float *dx, const float *dy, const float *x, size_t n) { gelu_bwd_k(dx, dy, x, n); }
#ifdef RL_NN_AVX512
TARGET_AVX512 static void gelu_fwd_avx512(float *y, const float *dy, const float *x, size_t n)
{
    (void)dy, gelu_fwd_k(y, x, n);
}
TARGET_AVX512 static void gelu_bwd_avx512(float *dx, const float *dy, const float *x, size_t n)
{
    gelu_bwd_k(dx, dy, x, n);
}
#endif

/* The kernel over fixed blocks of GELU_BLOCK elements, one thread each. */
static void gelu_blocks(bool fwd, float *out, const float *dy, const float *x, size_t n)
{
    gelu_fn f = fwd ? gelu_fwd_base : gelu_bwd_base;
#ifdef RL_NN_AVX512
    if (use_avx512()) f = fwd ? gelu_fwd_avx512 : gelu_bwd_avx512;
#endif
    const size_t nb = (n + GELU_BLOCK - 1) / GELU_BLOCK;
    RL_PAR_FOR_W(nb, 8 * GELU_BLOCK)
    for (size_t b = 0; b < nb; b++) {
        const size_t lo = b * GELU_BLOCK;
        f(out + lo, dy ? dy + lo : NULL, x + lo, n - lo < GELU_BLOCK ? n - lo : GELU_BLOCK);
    }
}

void rl_gelu_forward(float *y, const float *x, size_t n) { gelu_blocks(true, y, NULL, x, n); }
void rl_gelu_backward(float *dx, const float *dy, const float *x, size_t n) { gelu_blocks(false, dx, dy, x, n); }

/* ---- losses ---- */

double rl_xent_forward_backward(float *dz, const float *z, const int *y, int n, int c, int *correct)
{
    double loss = 0;
    int hits = 0;
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * c;
        int am = 0;
        float mx = zi[0];
        for (int j = 1; j < c; j++)
            if (zi[j] > mx) {
                mx = zi[j];
                am = j;
            }
        hits += am == y[i];
        double s = 0;
        for (int j = 0; j < c; j++) s += exp((double)zi[j] - mx);
        double lse = mx + log(s);
        loss += lse - zi[y[i]];
        if (dz) {
            float *dzi = dz + (size_t)i * c;
            for (int j = 0; j < c; j++)
                dzi[j] = (float)((exp((double)zi[j] - lse) - (j == y[i])) / n);
        }
    }
    if (correct) *correct = hits;
    return loss / n;
}

double rl_mse_forward_backward(float *dz, const float *z, const float *t, int n, int c)
{
    double loss = 0;
    for (size_t i = 0; i < (size_t)n * c; i++) {
        double e = (double)z[i] - t[i];
        loss += 0.5 * e * e;
        if (dz) dz[i] = (float)(e / n);
    }
    return loss / n;
}

/* ---- attention ----
 *
 * One (sequence, head) pair per iteration of a loop on the loop threads
 * (rl_par.h); each pair writes only its own rows of o, P, dq, dk, dv and its
 * own T·T block of the scratch, so threads share no output. The products are
 * small (T·T·dh per head: 16·16·16 in the ViT of rl_model.h): plain loops
 * whose inner loop runs along a contiguous row (an axpy, `omp simd`: the
 * rows it reads and writes never overlap), so that it vectorises without
 * reordering any sum: every output element accumulates
 * its terms in ascending order, one multiply and one add each (no FMA
 * contraction in ISO C mode), whatever the vector width. The pair kernels
 * are compiled twice like GELU's; their softmax takes expf from libmvec. */

#define ATTN_STACK 4096 /* floats of a transposed head kept on the stack (T·dh) */

#define ATTN_ROW 64 /* rows up to this long accumulate in registers */

/* out (T, dh) row stride d := alpha · op(A) · X, A (T, T), op(A) = A or Aᵀ,
 * X (T, dh) row stride d */
static inline __attribute__((always_inline)) void small_mm(float *out, float alpha, const float *A, bool trans,
                                                           const float *X, int T, int dh, int d)
{
    for (int r = 0; r < T; r++) {
        float acc[ATTN_ROW], *o = dh <= ATTN_ROW ? acc : out + (size_t)r * d;
        for (int e = 0; e < dh; e++) o[e] = 0.0f;
        for (int c = 0; c < T; c++) {
            const float a = alpha * (trans ? A[(size_t)c * T + r] : A[(size_t)r * T + c]), *x = X + (size_t)c * d;
#pragma omp simd
            for (int e = 0; e < dh; e++) o[e] += a * x[e];
        }
        if (o == acc)
            for (int e = 0; e < dh; e++) out[(size_t)r * d + e] = acc[e];
    }
}

/* S (T, T) := alpha · X Yᵀ for X, Y (T, dh) row stride d: with Y transposed
 * into yt (dh, T), each row of S accumulates X[r, e] · yt[e, :] over
 * ascending e, then is scaled (what a dot product per element would give). */
static inline __attribute__((always_inline)) void small_abt(float *S, float alpha, const float *X, const float *Y,
                                                            int T, int dh, int d, float *yt)
{
    if ((size_t)T * dh > ATTN_STACK) { /* a head too large for the stack: one dot product per element */
        for (int r = 0; r < T; r++)
            for (int c = 0; c < T; c++) {
                const float *x = X + (size_t)r * d, *y = Y + (size_t)c * d;
                float acc = 0.0f;
                for (int e = 0; e < dh; e++) acc += x[e] * y[e];
                S[(size_t)r * T + c] = alpha * acc;
            }
        return;
    }
    for (int c = 0; c < T; c++)
        for (int e = 0; e < dh; e++) yt[(size_t)e * T + c] = Y[(size_t)c * d + e];
    for (int r = 0; r < T; r++) {
        float acc[ATTN_ROW], *row = T <= ATTN_ROW ? acc : S + (size_t)r * T;
        const float *x = X + (size_t)r * d;
        for (int c = 0; c < T; c++) row[c] = 0.0f;
        for (int e = 0; e < dh; e++) {
            const float xe = x[e], *y = yt + (size_t)e * T;
#pragma omp simd
            for (int c = 0; c < T; c++) row[c] += xe * y[c];
        }
#pragma omp simd
        for (int c = 0; c < T; c++) S[(size_t)r * T + c] = row[c] * alpha;
    }
}

typedef struct {
    float *o, *P, *dq, *dk, *dv, *dP;
    const float *q, *k, *v, *dout, *Pc;
    int T, d, h, dh;
    float scale;
} attn_args;

/* T and dh are arguments so that a call with constants (the ViT's 16 x 16
 * heads) compiles to fixed-length, register-held rows. */
static inline __attribute__((always_inline)) void fwd_pair_k(const attn_args *a, int bj, const int T, const int dh)
{
    const int d = a->d, b = bj / a->h, j = bj % a->h;
    const size_t off = (size_t)b * T * d + (size_t)j * dh;
    float *Pb = a->P + (size_t)bj * T * T, yt[ATTN_STACK];
    small_abt(Pb, a->scale, a->q + off, a->k + off, T, dh, d, yt); /* S = q kᵀ / √dh  (T, T) */
    for (int r = 0; r < T; r++) {
        float *row = Pb + (size_t)r * T, mx = row[0];
        for (int c = 1; c < T; c++) mx = row[c] > mx ? row[c] : mx;
#pragma omp simd
        for (int c = 0; c < T; c++) row[c] = expf(row[c] - mx);
        float s = 0;
        for (int c = 0; c < T; c++) s += row[c];
#pragma omp simd
        for (int c = 0; c < T; c++) row[c] /= s;
    }
    small_mm(a->o + off, 1.0f, Pb, false, a->v + off, T, dh, d); /* o = P v  (T, dh) */
}

static inline __attribute__((always_inline)) void bwd_pair_k(const attn_args *a, int bj, const int T, const int dh)
{
    const int d = a->d, b = bj / a->h, j = bj % a->h;
    const size_t off = (size_t)b * T * d + (size_t)j * dh;
    const float *Pb = a->Pc + (size_t)bj * T * T;
    float *dPb = a->dP + (size_t)bj * T * T, yt[ATTN_STACK];
    small_mm(a->dv + off, 1.0f, Pb, true, a->dout + off, T, dh, d); /* dv = Pᵀ do */
    small_abt(dPb, 1.0f, a->dout + off, a->v + off, T, dh, d, yt); /* dP = do vᵀ */
    for (int r = 0; r < T; r++) {
        float *dr = dPb + (size_t)r * T;
        const float *pr = Pb + (size_t)r * T;
        float s = 0;
        for (int c = 0; c < T; c++) s += dr[c] * pr[c];
        for (int c = 0; c < T; c++) dr[c] = pr[c] * (dr[c] - s);
    }
    small_mm(a->dq + off, a->scale, dPb, false, a->k + off, T, dh, d); /* dq = dS k / √dh */
    small_mm(a->dk + off, a->scale, dPb, true, a->q + off, T, dh, d);  /* dk = dSᵀ q / √dh */
}

static inline __attribute__((always_inline)) void fwd_pair(const attn_args *a, int bj)
{
    if (a->T == 16 && a->dh == 16) fwd_pair_k(a, bj, 16, 16);
    else fwd_pair_k(a, bj, a->T, a->dh);
}

static inline __attribute__((always_inline)) void bwd_pair(const attn_args *a, int bj)
{
    if (a->T == 16 && a->dh == 16) bwd_pair_k(a, bj, 16, 16);
    else bwd_pair_k(a, bj, a->T, a->dh);
}

static void fwd_pair_base(const attn_args *a, int bj) { fwd_pair(a, bj); }
static void bwd_pair_base(const attn_args *a, int bj) { bwd_pair(a, bj); }
#ifdef RL_NN_AVX512
TARGET_AVX512 static void fwd_pair_avx512(const attn_args *a, int bj) { fwd_pair(a, bj); }
TARGET_AVX512 static void bwd_pair_avx512(const attn_args *a, int bj) { bwd_pair(a, bj); }
#endif

typedef void (*pair_fn)(const attn_args *, int);

static pair_fn pick(bool fwd)
{
#ifdef RL_NN_AVX512
    if (use_avx512()) return fwd ? fwd_pair_avx512 : bwd_pair_avx512;
#endif
    return fwd ? fwd_pair_base : bwd_pair_base;
}

void rl_attention_forward(float *o, float *P, const float *q, const float *k, const float *v, int B,
                          int T, int d, int h)
{
    const int dh = d / h;
    const attn_args a = {.o = o, .P = P, .q = q, .k = k, .v = v, .T = T, .d = d, .h = h, .dh = dh,
                         .scale = 1.0f / sqrtf((float)dh)};
    const pair_fn f = pick(true);
    RL_PAR_FOR_W(B * h, (size_t)T * T * dh)
    for (int bj = 0; bj < B * h; bj++) f(&a, bj);
}

/* dv = Pᵀ do;  dP = do vᵀ;  dS = P ⊙ (dP - rowsum(dP ⊙ P));
 * dq = dS k / √dh;  dk = dSᵀ q / √dh                                        */
void rl_attention_backward(float *dq, float *dk, float *dv, float *dP, const float *dout,
                           const float *P, const float *q, const float *k, const float *v, int B, int T,
                           int d, int h)
{
    const int dh = d / h;
    const attn_args a = {.dq = dq, .dk = dk, .dv = dv, .dP = dP, .dout = dout, .Pc = P, .q = q, .k = k, .v = v,
                         .T = T, .d = d, .h = h, .dh = dh, .scale = 1.0f / sqrtf((float)dh)};
    const pair_fn f = pick(false);
    RL_PAR_FOR_W(B * h, (size_t)T * T * dh)
    for (int bj = 0; bj < B * h; bj++) f(&a, bj);
}
