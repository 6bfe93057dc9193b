/* rl_randlora.c -- RandLora (Albert et al., ICLR 2025) as PEFT's randlora.Linear.
 *
 * Shared frozen bases (rl_bases.h): A (r, 1, min_dim), B (max_dim, NB, r).
 * Per layer: mn = min(d_in, d_out), mx = max, nb = ceil(mn / r), K = r·nb;
 * trainable λ (r, nb) and Γ (nb, mn); s = alpha / r.
 *
 * PEFT flattens both factors over c in [0, K) (peft-semantics.md §2.5):
 *   UB[p, c] = B[p, c / r, c % r]               (mx, K): the first K columns
 *              of B viewed as (max_dim, NB·r), i.e. a view with stride NB·r
 *   UA[c, q] = (λ[k, b] · A[k, q]) · Γ[b, q]    (K, mn), with
 *              (k, b) = (c / nb, c % nb)         PEFT's pairing (default)
 *              (k, b) = (c % r,  c / r)          the paper's Σ_b B_b Λ_b A Γ_b
 *   M = UB · UA  (mx, mn);  ΔW = s·M if d_in <= d_out, else s·Mᵀ.
 * The trainable side (Γ) therefore always spans the smaller dimension.
 *
 * d_in <= d_out (mn = d_in):             d_in > d_out (mn = d_out):
 *   H   = x UAᵀ          (n, K)            H   = x UB            (n, K)
 *   y  += s · H UBᵀ      (n, d_out)        y  += s · H UA        (n, d_out)
 *   dH  = s · dy UB      (n, K)            dUA = s · Hᵀ dy       (K, d_out)
 *   dUA = dHᵀ x          (K, d_in)         dH  = s · dy UAᵀ      (n, K)
 *   dx += dH UA          (n, d_in)         dx += dH UBᵀ          (n, d_in)
 * then, PEFT's UniqueBaseGrad (§2.6), with g = dUA:
 *   dλ[k, b] += Σ_q g[c, q] · A[k, q] · Γ[b, q]
 *   dΓ[b, q] += Σ_k g[c, q] · A[k, q] · λ[k, b]
 * The bases get no gradient.
 */
#include "rl_adapter_impl.h"

#include <string.h>

#include "../core/rl_blas.h"
#include "../core/rl_par.h"
#include "../core/rl_tensor.h"

/* (k, b) of flattened row c under the configured pairing. */
static inline void pair_of(const rl_adapter *a, int c, int *k, int *b)
{
    if (a->cfg.pairing == RL_PAIRING_PAPER) {
        *k = c % a->cfg.r;
        *b = c / a->cfg.r;
    } else {
        *k = c / a->nb;
        *b = c % a->nb;
    }
}

/* Rows of UA (and dUA) formed at a time by delta_weight and the
 * materialised gradient: the buffer stays far below a weight's size. */
#define UA_CHUNK 256

/* The buffer of delta_weight's and the materialised gradient's chunks: the
 * dUA block of the workspace, so that a forward's UA and H (kept for
 * backward) survive a ΔW built between forward and backward (rl_layer). */
static float *chunk_buf(rl_adapter *a) { return a->work + (a->max_tokens > 0 ? (size_t)a->K * a->mn : 0); }

/* n_max > 0: UA and dUA whole plus H and dH for the factorised path;
 * n_max == 0 (materialised path only): one chunk of UA rows. */
static size_t randlora_work_size(const rl_adapter *a, int n_max)
{
    if (a->ternary) return rl_tern_work_size(a, n_max);
    if (n_max == 0) return (size_t)(a->K < UA_CHUNK ? a->K : UA_CHUNK) * a->mn;
    return 2 * (size_t)a->K * a->mn + 2 * (size_t)n_max * a->K;
}

static void randlora_reset(rl_adapter *a)
{
    size_t nl = (size_t)a->cfg.r * a->nb, ng = (size_t)a->nb * a->mn;
    memset(a->params, 0, nl * sizeof(float));
    /* PEFT: constant_(gamma, 1 / max(gamma.shape)) = 1 / mn since nb <= mn */
    rl_fill(a->params + nl, ng, (float)(1.0 / (double)a->mn));
}

static const float *lambda_of(const rl_adapter *a) { return a->params; }
static const float *gamma_of(const rl_adapter *a) { return a->params + (size_t)a->cfg.r * a->nb; }
static const float *ub_of(const rl_adapter *a) { return a->bases->B; }
static int ub_ld(const rl_adapter *a) { return a->bases->n_bases * a->cfg.r; }

/* UA[c, q] = (λ[k, b] · A[k, q]) · Γ[b, q] for rows c in [c0, c1), rounded
 * left to right as PEFT; row c goes to UA[(c - c0) · mn]. */
static void build_ua_rows(const rl_adapter *a, float *UA, int c0, int c1)
{
    const int mn = a->mn, nb = a->nb, ldA = a->bases->min_dim;
    const float *lam = lambda_of(a), *gam = gamma_of(a), *A = a->bases->A;
    RL_PAR_FOR_W(c1 - c0, mn)
    for (int c = c0; c < c1; c++) {
        int k, b;
        pair_of(a, c, &k, &b);
        const float l = lam[(size_t)k * nb + b];
        const float *Ak = A + (size_t)k * ldA, *Gb = gam + (size_t)b * mn;
        float *row = UA + (size_t)(c - c0) * mn;
#pragma omp simd
        for (int q = 0; q < mn; q++) row[q] = (l * Ak[q]) * Gb[q];
    }
}

static void build_ua(const rl_adapter *a, float *UA) { build_ua_rows(a, UA, 0, a->K); }

static void randlora_forward(rl_adapter *a, const float *x, int n, float *y)
{
    if (a->ternary) {
        rl_tern_forward(a, x, n, y);
        return;
    }
    const int K = a->K, mn = a->mn, di = a->d_in, dout = a->d_out, ldb = ub_ld(a);
    float *UA = a->work, *H = UA + 2 * (size_t)K * mn;
    const float *UB = ub_of(a);
    build_ua(a, UA);
    if (di <= dout) {
        rl_gemm(RL_NOTRANS, RL_TRANS, n, K, di, 1.0f, x, di, UA, mn, 0.0f, H, K);
        rl_gemm(RL_NOTRANS, RL_TRANS, n, dout, K, a->scaling, H, K, UB, ldb, 1.0f, y, dout);
    } else {
        rl_gemm(RL_NOTRANS, RL_NOTRANS, n, K, di, 1.0f, x, di, UB, ldb, 0.0f, H, K);
        rl_gemm(RL_NOTRANS, RL_NOTRANS, n, dout, K, a->scaling, H, K, UA, mn, 1.0f, y, dout);
    }
    rl_fwd_keep(a, n); /* UA and H */
}

/* dλ and dΓ from g = ∂L/∂UA rows [c0, c1) (row c at g[(c - c0) · mn]):
 * PEFT's UniqueBaseGrad backward. Two passes, each over independent
 * outputs so that threads never share one (rl_par.h): dλ[k, b] is one row
 * of g against A[k] ⊙ Γ[b] (a double sum over q); dΓ[b, q] sums
 * g[c, q] · A[k, q] · λ[k, b] over the rows c of basis b in ascending c
 * (the order a single pass over c would take), a block of q per thread. */
#define GRAD_QBLOCK 256
static void accumulate_factor_grads_rows(rl_adapter *a, const float *g, int c0, int c1)
{
    const int mn = a->mn, nb = a->nb, ldA = a->bases->min_dim;
    const float *lam = lambda_of(a), *gam = gamma_of(a), *A = a->bases->A;
    float *dlam = a->grads, *dgam = a->grads + (size_t)a->cfg.r * nb;
    RL_PAR_FOR_W(c1 - c0, mn)
    for (int c = c0; c < c1; c++) {
        int k, b;
        pair_of(a, c, &k, &b);
        const float *Ak = A + (size_t)k * ldA, *Gb = gam + (size_t)b * mn;
        const float *gc = g + (size_t)(c - c0) * mn;
        double acc = 0.0;
        for (int q = 0; q < mn; q++) acc += (double)(gc[q] * Ak[q]) * Gb[q];
        dlam[(size_t)k * nb + b] += (float)acc;
    }
    const int nblk = (mn + GRAD_QBLOCK - 1) / GRAD_QBLOCK;
    RL_PAR_FOR_W(nblk, (size_t)(c1 - c0) * (mn < GRAD_QBLOCK ? mn : GRAD_QBLOCK))
    for (int blk = 0; blk < nblk; blk++) {
        const int q0 = blk * GRAD_QBLOCK, q1 = q0 + GRAD_QBLOCK < mn ? q0 + GRAD_QBLOCK : mn;
        for (int c = c0; c < c1; c++) {
            int k, b;
            pair_of(a, c, &k, &b);
            const float l = lam[(size_t)k * nb + b];
            const float *Ak = A + (size_t)k * ldA, *gc = g + (size_t)(c - c0) * mn;
            float *dGb = dgam + (size_t)b * mn;
#pragma omp simd
            for (int q = q0; q < q1; q++) dGb[q] += (gc[q] * Ak[q]) * l;
        }
    }
}

static void accumulate_factor_grads(rl_adapter *a, const float *g) { accumulate_factor_grads_rows(a, g, 0, a->K); }

static void randlora_backward(rl_adapter *a, const float *x, const float *dy, int n, float *dx)
{
    if (a->ternary) {
        rl_tern_backward(a, x, dy, n, dx);
        return;
    }
    const int K = a->K, mn = a->mn, di = a->d_in, dout = a->d_out, ldb = ub_ld(a);
    const float s = a->scaling;
    float *UA = a->work, *dUA = UA + (size_t)K * mn, *H = dUA + (size_t)K * mn;
    float *dH = H + (size_t)n * K;
    const float *UB = ub_of(a);
    const bool kept = rl_fwd_cached(a, n); /* UA and H from the forward */
    if (dx && !kept) build_ua(a, UA);      /* UA serves dx only */
    if (di <= dout) {
        rl_gemm(RL_NOTRANS, RL_NOTRANS, n, K, dout, s, dy, dout, UB, ldb, 0.0f, dH, K); /* dH = s dy UB */
        rl_gemm(RL_TRANS, RL_NOTRANS, K, di, n, 1.0f, dH, K, x, di, 0.0f, dUA, mn);   /* dUA = dHᵀ x */
        if (dx) rl_gemm(RL_NOTRANS, RL_NOTRANS, n, di, K, 1.0f, dH, K, UA, mn, 1.0f, dx, di); /* dx += dH UA */
    } else {
        if (!kept) rl_gemm(RL_NOTRANS, RL_NOTRANS, n, K, di, 1.0f, x, di, UB, ldb, 0.0f, H, K); /* H = x UB */
        rl_gemm(RL_TRANS, RL_NOTRANS, K, dout, n, s, H, K, dy, dout, 0.0f, dUA, mn);  /* dUA = s Hᵀ dy */
        if (dx) {
            rl_gemm(RL_NOTRANS, RL_TRANS, n, K, dout, s, dy, dout, UA, mn, 0.0f, dH, K);  /* dH = s dy UAᵀ */
            rl_gemm(RL_NOTRANS, RL_TRANS, n, di, K, 1.0f, dH, K, UB, ldb, 1.0f, dx, di); /* dx += dH UBᵀ */
        }
    }
    accumulate_factor_grads(a, dUA);
}

void rl_randlora_dx_acc(rl_adapter *a, const float *dy, int n, float *dx)
{
    RL_ASSERT(!a->ternary && a->max_tokens >= n, "randlora dx: needs the dense kernels' per-row workspace");
    const int K = a->K, mn = a->mn, di = a->d_in, dout = a->d_out, ldb = ub_ld(a);
    const float s = a->scaling;
    float *UA = a->work, *dH = UA + 2 * (size_t)K * mn + (size_t)n * K;
    const float *UB = ub_of(a);
    if (!rl_fwd_cached(a, n)) build_ua(a, UA);
    if (di <= dout) {
        rl_gemm(RL_NOTRANS, RL_NOTRANS, n, K, dout, s, dy, dout, UB, ldb, 0.0f, dH, K); /* dH = s dy UB */
        rl_gemm(RL_NOTRANS, RL_NOTRANS, n, di, K, 1.0f, dH, K, UA, mn, 1.0f, dx, di);   /* dx += dH UA */
    } else {
        rl_gemm(RL_NOTRANS, RL_TRANS, n, K, dout, s, dy, dout, UA, mn, 0.0f, dH, K);    /* dH = s dy UAᵀ */
        rl_gemm(RL_NOTRANS, RL_TRANS, n, di, K, 1.0f, dH, K, UB, ldb, 1.0f, dx, di);    /* dx += dH UBᵀ */
    }
}

void rl_randlora_grads_from_G(rl_adapter *a, const float *G)
{
    if (a->ternary) {
        rl_tern_grads_from_G(a, G);
        return;
    }
    const int K = a->K, mn = a->mn, di = a->d_in, dout = a->d_out, ldb = ub_ld(a);
    const float *UB = ub_of(a);
    float *dUA = chunk_buf(a); /* one chunk of rows at a time */
    for (int c0 = 0; c0 < K; c0 += UA_CHUNK) {
        int c1 = c0 + UA_CHUNK < K ? c0 + UA_CHUNK : K, rows = c1 - c0;
        if (di <= dout) /* dUA = s · UB[:, c0:c1]ᵀ G      (rows, d_in),  UB (d_out, K) */
            rl_gemm(RL_TRANS, RL_NOTRANS, rows, mn, dout, a->scaling, UB + c0, ldb, G, di, 0.0f, dUA, mn);
        else            /* dUA = s · UB[:, c0:c1]ᵀ Gᵀ     (rows, d_out), UB (d_in, K) */
            rl_gemm(RL_TRANS, RL_TRANS, rows, mn, di, a->scaling, UB + c0, ldb, G, di, 0.0f, dUA, mn);
        accumulate_factor_grads_rows(a, dUA, c0, c1);
    }
}

void rl_randlora_delta_weight_acc(rl_adapter *a, float *dw, float beta)
{
    if (a->ternary) {
        rl_tern_delta_weight_acc(a, dw, beta);
        return;
    }
    const int K = a->K, mn = a->mn, di = a->d_in, dout = a->d_out, ldb = ub_ld(a);
    float *UA = chunk_buf(a); /* one chunk of rows at a time */
    const float *UB = ub_of(a);
    for (int c0 = 0; c0 < K; c0 += UA_CHUNK) {
        int c1 = c0 + UA_CHUNK < K ? c0 + UA_CHUNK : K, rows = c1 - c0;
        float b = c0 == 0 ? beta : 1.0f;
        build_ua_rows(a, UA, c0, c1);
        if (di <= dout) /* ΔW += s · UB[:, c0:c1] UA[c0:c1]      (d_out, d_in) */
            rl_gemm(RL_NOTRANS, RL_NOTRANS, dout, di, rows, a->scaling, UB + c0, ldb, UA, mn, b, dw, di);
        else            /* ΔW += s · UA[c0:c1]ᵀ UB[:, c0:c1]ᵀ    (d_out, d_in) */
            rl_gemm(RL_TRANS, RL_TRANS, dout, di, rows, a->scaling, UA, mn, UB + c0, ldb, b, dw, di);
    }
}

static void randlora_delta_weight(rl_adapter *a, float *dw) { rl_randlora_delta_weight_acc(a, dw, 0.0f); }

const rl_adapter_ops rl_randlora_ops = {
    .name = "randlora",
    .work_size = randlora_work_size,
    .reset = randlora_reset,
    .forward = randlora_forward,
    .backward = randlora_backward,
    .delta_weight = randlora_delta_weight,
};
