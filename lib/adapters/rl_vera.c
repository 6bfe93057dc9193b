/* rl_vera.c -- VeRA (Kopiczko et al. 2024) as PEFT's vera.Linear computes it.
 *
 *   ΔW = (λ_b ⊙ B_s)(λ_d ⊙ A_s)      A_s = vera_A[:, :d_in]   (r, d_in)
 *                                     B_s = vera_B[:d_out, :]  (d_out, r)
 *   λ_b (d_out) = 0 and λ_d (r) = d_initial at init; no scaling.
 * A_s is a column slice of the shared A: a view with row stride I (= max_in).
 *
 * forward:  h    = x A_sᵀ                  (n, r)
 *           Bl   = λ_b[:, None] ⊙ B_s      (d_out, r)
 *           y   += (h ⊙ λ_d) Blᵀ           (n, d_out)
 * backward: z    = h ⊙ λ_d                 (n, r)      kept from forward under rl_layer
 *           P    = dyᵀ z                   (d_out, r)
 *           dλ_b[o] += Σ_k B_s[o, k] P[o, k]
 *           dz   = dy Bl                   (n, r)
 *           dλ_d[k] += Σ_n dz[n, k] h[n, k]
 *           dx  += (dz ⊙ λ_d) A_s          (n, d_in)
 */
#include "rl_adapter_impl.h"

#include <string.h>

#include "../core/rl_blas.h"
#include "../core/rl_par.h"

/* Rows per partial sum of dλ_d: fixed, so the sum does not depend on the
 * thread count (rl_par.h). */
#define VERA_CHUNK 128

/* Where the partial sums (doubles) start in the workspace: after h, z, dz
 * and Bl, P, rounded up to a double's alignment. */
static size_t partials_offset(const rl_adapter *a)
{
    size_t off = 3 * (size_t)a->max_tokens * a->cfg.r + 2 * (size_t)a->d_out * a->cfg.r;
    return (off + 1) & ~(size_t)1;
}

static size_t vera_work_size(const rl_adapter *a, int n_max)
{
    size_t chunks = ((size_t)n_max + VERA_CHUNK - 1) / VERA_CHUNK;
    return partials_offset(a) + 2 * chunks * a->cfg.r;
}

static void vera_reset(rl_adapter *a)
{
    memset(a->params, 0, (size_t)a->d_out * sizeof(float));
    for (int k = 0; k < a->cfg.r; k++) a->params[a->d_out + k] = (float)a->cfg.d_initial;
}

/* Bl = λ_b[:, None] ⊙ B_s, optionally with columns also scaled by λ_d. */
static void vera_scaled_b(const rl_adapter *a, float *Bl, bool with_d)
{
    const int r = a->cfg.r;
    const float *lb = a->params, *ld = a->params + a->d_out, *B = a->bases->B;
    RL_PAR_FOR_W(a->d_out, r)
    for (int o = 0; o < a->d_out; o++)
        for (int k = 0; k < r; k++)
            Bl[(size_t)o * r + k] = with_d ? (lb[o] * B[(size_t)o * r + k]) * ld[k]
                                           : lb[o] * B[(size_t)o * r + k];
}

/* out (n, r) = in ⊙ λ_d, row by row */
static void scale_cols(float *out, const float *in, const float *ld, int n, int r)
{
    RL_PAR_FOR_W(n, r)
    for (int i = 0; i < n; i++)
#pragma omp simd
        for (int k = 0; k < r; k++) out[(size_t)i * r + k] = in[(size_t)i * r + k] * ld[k];
}

/* outᵀ (r, n) = inᵀ ⊙ λ_d[:, None]: the transposed layout's scale_cols */
static void scale_rows(float *out, const float *in, const float *ld, int n, int r)
{
    RL_PAR_FOR_W(r, n)
    for (int k = 0; k < r; k++)
#pragma omp simd
        for (int i = 0; i < n; i++) out[(size_t)k * n + i] = in[(size_t)k * n + i] * ld[k];
}

/* Workspace: h, z, dz (n, r each; (r, n) when rl_skinny_transposed), Bl, P
 * (d_out, r each), then the partial sums of dλ_d (doubles). */
static void vera_forward(rl_adapter *a, const float *x, int n, float *y)
{
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out, I = a->bases->max_in;
    const float *ld = a->params + dout;
    float *h = a->work, *z = h + (size_t)n * r, *Bl = a->work + 3 * (size_t)a->max_tokens * r;
    const bool tl = rl_skinny_transposed();
    vera_scaled_b(a, Bl, false);
    if (tl) {
        rl_gemm(RL_NOTRANS, RL_TRANS, r, n, di, 1.0f, a->bases->A, I, x, di, 0.0f, h, n); /* hᵀ = A_s xᵀ */
        scale_rows(z, h, ld, n, r);                                                        /* zᵀ = hᵀ ⊙ λ_d */
        rl_gemm(RL_TRANS, RL_TRANS, n, dout, r, 1.0f, z, n, Bl, r, 1.0f, y, dout);         /* y += z Blᵀ */
    } else {
        rl_gemm(RL_NOTRANS, RL_TRANS, n, r, di, 1.0f, x, di, a->bases->A, I, 0.0f, h, r); /* h = x A_sᵀ */
        scale_cols(z, h, ld, n, r);                                                         /* z = h ⊙ λ_d */
        rl_gemm(RL_NOTRANS, RL_TRANS, n, dout, r, 1.0f, z, r, Bl, r, 1.0f, y, dout);
    }
    a->fwd_tl = tl;
    rl_fwd_keep(a, n);
}

/* The transposed layout's backward: hᵀ, zᵀ, dzᵀ (r, n); Pᵀ (r, d_out). */
static void vera_backward_t(rl_adapter *a, const float *x, const float *dy, int n, float *dx, bool kept)
{
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out, I = a->bases->max_in;
    const float *ld = a->params + dout, *B = a->bases->B;
    float *dlb = a->grads, *dld = a->grads + dout;
    float *h = a->work, *z = h + (size_t)n * r, *dz = z + (size_t)n * r;
    float *Bl = a->work + 3 * (size_t)a->max_tokens * r, *PT = Bl + (size_t)dout * r;
    if (!kept) {
        rl_gemm(RL_NOTRANS, RL_TRANS, r, n, di, 1.0f, a->bases->A, I, x, di, 0.0f, h, n); /* hᵀ = A_s xᵀ */
        scale_rows(z, h, ld, n, r);
    }
    rl_gemm(RL_NOTRANS, RL_NOTRANS, r, dout, n, 1.0f, z, n, dy, dout, 0.0f, PT, dout); /* Pᵀ = zᵀ dy */
    RL_PAR_FOR_W(dout, r)
    for (int o = 0; o < dout; o++) {
        double acc = 0.0;
        for (int k = 0; k < r; k++) acc += (double)B[(size_t)o * r + k] * PT[(size_t)k * dout + o];
        dlb[o] += (float)acc;
    }
    vera_scaled_b(a, Bl, false);
    rl_gemm(RL_TRANS, RL_TRANS, r, n, dout, 1.0f, Bl, r, dy, dout, 0.0f, dz, n); /* dzᵀ = Blᵀ dyᵀ */
    /* dλ_d[k] += Σ_n dz[n, k] h[n, k]: one row of dzᵀ and hᵀ per k, in order */
    RL_PAR_FOR_W(r, n)
    for (int k = 0; k < r; k++) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) acc += (double)dz[(size_t)k * n + i] * h[(size_t)k * n + i];
        dld[k] += (float)acc;
    }
    if (dx) {
        scale_rows(dz, dz, ld, n, r); /* dhᵀ = dzᵀ ⊙ λ_d */
        rl_gemm(RL_TRANS, RL_NOTRANS, n, di, r, 1.0f, dz, n, a->bases->A, I, 1.0f, dx, di);
    }
}

static void vera_backward(rl_adapter *a, const float *x, const float *dy, int n, float *dx)
{
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out, I = a->bases->max_in;
    const float *ld = a->params + dout, *B = a->bases->B;
    float *dlb = a->grads, *dld = a->grads + dout;
    float *h = a->work, *z = h + (size_t)n * r, *dz = z + (size_t)n * r;
    float *Bl = a->work + 3 * (size_t)a->max_tokens * r, *P = Bl + (size_t)dout * r;
    double *part = (double *)(a->work + partials_offset(a));
    const bool tl = rl_skinny_transposed(), kept = rl_fwd_cached(a, n) && a->fwd_tl == tl;
    if (tl) {
        vera_backward_t(a, x, dy, n, dx, kept);
        return;
    }
    if (!kept) {
        rl_gemm(RL_NOTRANS, RL_TRANS, n, r, di, 1.0f, x, di, a->bases->A, I, 0.0f, h, r); /* h = x A_sᵀ */
        scale_cols(z, h, ld, n, r);
    }
    rl_gemm(RL_TRANS, RL_NOTRANS, dout, r, n, 1.0f, dy, dout, z, r, 0.0f, P, r);      /* P = dyᵀ z */
    RL_PAR_FOR_W(dout, r)
    for (int o = 0; o < dout; o++) {
        double acc = 0.0;
        for (int k = 0; k < r; k++) acc += (double)B[(size_t)o * r + k] * P[(size_t)o * r + k];
        dlb[o] += (float)acc;
    }
    vera_scaled_b(a, Bl, false);
    rl_gemm(RL_NOTRANS, RL_NOTRANS, n, r, dout, 1.0f, dy, dout, Bl, r, 0.0f, dz, r);  /* dz = dy Bl */
    /* dλ_d[k] += Σ_n dz[n, k] h[n, k]: partial sums over chunks of rows, then
     * the chunks in order */
    const int nch = (n + VERA_CHUNK - 1) / VERA_CHUNK;
    RL_PAR_FOR_W(nch, (size_t)VERA_CHUNK * r)
    for (int ch = 0; ch < nch; ch++) {
        double *pc = part + (size_t)ch * r;
        for (int k = 0; k < r; k++) pc[k] = 0.0;
        const int i1 = (ch + 1) * VERA_CHUNK < n ? (ch + 1) * VERA_CHUNK : n;
        for (int i = ch * VERA_CHUNK; i < i1; i++)
            for (int k = 0; k < r; k++) pc[k] += (double)dz[(size_t)i * r + k] * h[(size_t)i * r + k];
    }
    for (int k = 0; k < r; k++) {
        double acc = 0.0;
        for (int ch = 0; ch < nch; ch++) acc += part[(size_t)ch * r + k];
        dld[k] += (float)acc;
    }
    if (dx) {
        scale_cols(dz, dz, ld, n, r); /* dh = dz ⊙ λ_d */
        rl_gemm(RL_NOTRANS, RL_NOTRANS, n, di, r, 1.0f, dz, r, a->bases->A, I, 1.0f, dx, di);
    }
}

/* ---- the materialised route (rl_layer) ----
 *   ΔW = Bl · A_s with Bl = λ_b[:, None] ⊙ B_s ⊙ λ_d[None, :]     (d_out, d_in)
 *   from G = ∂L/∂ΔW = dyᵀ x (d_out, d_in), with T = G · A_sᵀ (d_out, r):
 *   dλ_b[o] += Σ_k B_s[o, k] · λ_d[k] · T[o, k]
 *   dλ_d[k] += Σ_o λ_b[o] · B_s[o, k] · T[o, k]
 * (the factorised route's P = dyᵀ z is λ_d ⊙ T: the same sums). */
void rl_vera_delta_weight_acc(rl_adapter *a, float *dw, float beta)
{
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out, I = a->bases->max_in;
    float *Bl = a->work; /* (d_out, r) */
    vera_scaled_b(a, Bl, true);
    rl_gemm(RL_NOTRANS, RL_NOTRANS, dout, di, r, 1.0f, Bl, r, a->bases->A, I, beta, dw, di); /* ΔW = Bl A_s */
}

void rl_vera_grads_from_G(rl_adapter *a, const float *G)
{
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out, I = a->bases->max_in;
    const float *lb = a->params, *ld = a->params + dout, *B = a->bases->B;
    float *dlb = a->grads, *dld = a->grads + dout, *T = a->work; /* (d_out, r) */
    rl_gemm(RL_NOTRANS, RL_TRANS, dout, r, di, 1.0f, G, di, a->bases->A, I, 0.0f, T, r); /* T = G A_sᵀ */
    RL_PAR_FOR_W(dout, r)
    for (int o = 0; o < dout; o++) {
        double acc = 0.0;
        for (int k = 0; k < r; k++) acc += (double)B[(size_t)o * r + k] * (ld[k] * T[(size_t)o * r + k]);
        dlb[o] += (float)acc;
    }
    RL_PAR_FOR_W(r, dout) /* each λ_d entry sums its rows in order */
    for (int k = 0; k < r; k++) {
        double acc = 0.0;
        for (int o = 0; o < dout; o++) acc += (double)(lb[o] * B[(size_t)o * r + k]) * T[(size_t)o * r + k];
        dld[k] += (float)acc;
    }
}

static void vera_delta_weight(rl_adapter *a, float *dw)
{
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out, I = a->bases->max_in;
    float *Bl = a->work; /* (d_out, r) fits: work >= 2 d_out r */
    vera_scaled_b(a, Bl, true);
    rl_gemm(RL_NOTRANS, RL_NOTRANS, dout, di, r, 1.0f, Bl, r, a->bases->A, I, 0.0f, dw, di);
}

const rl_adapter_ops rl_vera_ops = {
    .name = "vera",
    .work_size = vera_work_size,
    .reset = vera_reset,
    .forward = vera_forward,
    .backward = vera_backward,
    .delta_weight = vera_delta_weight,
};
