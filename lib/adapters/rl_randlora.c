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

static size_t randlora_work_size(const rl_adapter *a, int n_max)
{
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

/* UA[c, q] = (λ[k, b] · A[k, q]) · Γ[b, q], rounded left to right as PEFT. */
static void build_ua(const rl_adapter *a, float *UA)
{
    const int mn = a->mn, nb = a->nb, ldA = a->bases->min_dim;
    const float *lam = lambda_of(a), *gam = gamma_of(a), *A = a->bases->A;
    for (int c = 0; c < a->K; c++) {
        int k, b;
        pair_of(a, c, &k, &b);
        const float l = lam[(size_t)k * nb + b];
        const float *Ak = A + (size_t)k * ldA, *Gb = gam + (size_t)b * mn;
        float *row = UA + (size_t)c * mn;
        for (int q = 0; q < mn; q++) row[q] = (l * Ak[q]) * Gb[q];
    }
}

static void randlora_forward(rl_adapter *a, const float *x, int n, float *y)
{
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
}

/* dλ and dΓ from g = ∂L/∂UA (K, mn): PEFT's UniqueBaseGrad backward. */
static void accumulate_factor_grads(rl_adapter *a, const float *g)
{
    const int mn = a->mn, nb = a->nb, ldA = a->bases->min_dim;
    const float *lam = lambda_of(a), *gam = gamma_of(a), *A = a->bases->A;
    float *dlam = a->grads, *dgam = a->grads + (size_t)a->cfg.r * nb;
    for (int c = 0; c < a->K; c++) {
        int k, b;
        pair_of(a, c, &k, &b);
        const float l = lam[(size_t)k * nb + b];
        const float *Ak = A + (size_t)k * ldA, *Gb = gam + (size_t)b * mn;
        const float *gc = g + (size_t)c * mn;
        float *dGb = dgam + (size_t)b * mn;
        double acc = 0.0;
        for (int q = 0; q < mn; q++) {
            float ga = gc[q] * Ak[q];
            acc += (double)ga * Gb[q];
            dGb[q] += ga * l;
        }
        dlam[(size_t)k * nb + b] += (float)acc;
    }
}

static void randlora_backward(rl_adapter *a, const float *x, const float *dy, int n, float *dx)
{
    const int K = a->K, mn = a->mn, di = a->d_in, dout = a->d_out, ldb = ub_ld(a);
    const float s = a->scaling;
    float *UA = a->work, *dUA = UA + (size_t)K * mn, *H = dUA + (size_t)K * mn;
    float *dH = H + (size_t)n * K;
    const float *UB = ub_of(a);
    build_ua(a, UA);
    if (di <= dout) {
        rl_gemm(RL_NOTRANS, RL_NOTRANS, n, K, dout, s, dy, dout, UB, ldb, 0.0f, dH, K); /* dH = s dy UB */
        rl_gemm(RL_TRANS, RL_NOTRANS, K, di, n, 1.0f, dH, K, x, di, 0.0f, dUA, mn);   /* dUA = dHᵀ x */
        if (dx) rl_gemm(RL_NOTRANS, RL_NOTRANS, n, di, K, 1.0f, dH, K, UA, mn, 1.0f, dx, di); /* dx += dH UA */
    } else {
        rl_gemm(RL_NOTRANS, RL_NOTRANS, n, K, di, 1.0f, x, di, UB, ldb, 0.0f, H, K);  /* H = x UB */
        rl_gemm(RL_TRANS, RL_NOTRANS, K, dout, n, s, H, K, dy, dout, 0.0f, dUA, mn);  /* dUA = s Hᵀ dy */
        rl_gemm(RL_NOTRANS, RL_TRANS, n, K, dout, s, dy, dout, UA, mn, 0.0f, dH, K);  /* dH = s dy UAᵀ */
        if (dx) rl_gemm(RL_NOTRANS, RL_TRANS, n, di, K, 1.0f, dH, K, UB, ldb, 1.0f, dx, di); /* dx += dH UBᵀ */
    }
    accumulate_factor_grads(a, dUA);
}

void rl_randlora_grads_from_G(rl_adapter *a, const float *G)
{
    const int K = a->K, mn = a->mn, di = a->d_in, dout = a->d_out, ldb = ub_ld(a);
    float *dUA = a->work + (size_t)K * mn;
    const float *UB = ub_of(a);
    if (di <= dout) /* dUA = s · UBᵀ G      (K, d_in),  UB (d_out, K) */
        rl_gemm(RL_TRANS, RL_NOTRANS, K, mn, dout, a->scaling, UB, ldb, G, di, 0.0f, dUA, mn);
    else            /* dUA = s · UBᵀ Gᵀ     (K, d_out), UB (d_in, K)  */
        rl_gemm(RL_TRANS, RL_TRANS, K, mn, di, a->scaling, UB, ldb, G, di, 0.0f, dUA, mn);
    accumulate_factor_grads(a, dUA);
}

static void randlora_delta_weight(rl_adapter *a, float *dw)
{
    const int K = a->K, mn = a->mn, di = a->d_in, dout = a->d_out, ldb = ub_ld(a);
    float *UA = a->work;
    const float *UB = ub_of(a);
    build_ua(a, UA);
    if (di <= dout) /* ΔW = s · UB UA  (d_out, d_in) */
        rl_gemm(RL_NOTRANS, RL_NOTRANS, dout, di, K, a->scaling, UB, ldb, UA, mn, 0.0f, dw, di);
    else            /* ΔW = s · UAᵀ UBᵀ (d_out, d_in) */
        rl_gemm(RL_TRANS, RL_TRANS, dout, di, K, a->scaling, UA, mn, UB, ldb, 0.0f, dw, di);
}

const rl_adapter_ops rl_randlora_ops = {
    .name = "randlora",
    .work_size = randlora_work_size,
    .reset = randlora_reset,
    .forward = randlora_forward,
    .backward = randlora_backward,
    .delta_weight = randlora_delta_weight,
};
