/* rl_vera.c -- VeRA (Kopiczko et al. 2024) as PEFT's vera.Linear computes it.
 *
 *   ΔW = (λ_b ⊙ B_s)(λ_d ⊙ A_s)      A_s = vera_A[:, :d_in]   (r, d_in)
 *                                     B_s = vera_B[:d_out, :]  (d_out, r)
 *   λ_b (d_out) = 0 and λ_d (r) = d_initial at init; no scaling.
 * A_s is a column slice of the shared A: a view with row stride I (= max_in).
 * Both scalings fold into one (d_out, r) matrix,
 *   Bd = λ_b[:, None] ⊙ B_s ⊙ λ_d[None, :],   ΔW = Bd A_s,
 * so the factorised step is LoRA's with B = Bd:
 *
 * forward:  h    = x A_sᵀ                  (n, r)      kept for backward under rl_layer
 *           y   += h Bdᵀ                   (n, d_out)
 * backward: T    = dyᵀ h                   (d_out, r)  = ∂L/∂ΔW · A_sᵀ
 *           dλ_b[o] += Σ_k B_s[o, k] λ_d[k] T[o, k]
 *           dλ_d[k] += Σ_o λ_b[o] B_s[o, k] T[o, k]
 *           dh   = dy Bd                   (n, r)      only for dx
 *           dx  += dh A_s                  (n, d_in)
 * PEFT reaches the same sums as dλ_d[k] = Σ_n (dy λ_b B_s)[n, k] h[n, k];
 * summed over d_out instead of n, the parameter gradients need one product
 * with dy instead of two.
 *
 * The materialised route (rl_layer) has the same reductions with
 * T = G A_sᵀ, G = dyᵀ x (d_out, d_in). Every product with n rows runs in
 * row parts on the BLAS threads (rl_adapter_impl.h).
 */
#include "rl_adapter_impl.h"

#include <string.h>

#include "../core/rl_blas.h"
#include "../core/rl_par.h"

/* Workspace: h, dh (n, r each), then Bd and T (d_out, r each), then T of
 * each row part after the first (rl_adapter_impl.h). */
static float *bd_slot(const rl_adapter *a) { return a->work + 2 * (size_t)a->max_tokens * a->cfg.r; }
static float *t_slot(const rl_adapter *a) { return bd_slot(a) + (size_t)a->d_out * a->cfg.r; }
static float *t_partial(const rl_adapter *a, int part)
{
    return t_slot(a) + (size_t)part * a->d_out * a->cfg.r;
}

static size_t vera_work_size(const rl_adapter *a, int n_max)
{
    return 2 * (size_t)n_max * a->cfg.r + (size_t)(a->parts_cap + 1) * a->d_out * a->cfg.r;
}

static void vera_reset(rl_adapter *a)
{
    memset(a->params, 0, (size_t)a->d_out * sizeof(float));
    for (int k = 0; k < a->cfg.r; k++) a->params[a->d_out + k] = (float)a->cfg.d_initial;
}

/* Bd = λ_b[:, None] ⊙ B_s ⊙ λ_d[None, :] (d_out, r), in the Bd slot */
static float *vera_bd(rl_adapter *a)
{
    const int r = a->cfg.r;
    const float *lb = a->params, *ld = a->params + a->d_out, *B = a->bases->B;
    float *Bd = bd_slot(a);
    RL_PAR_FOR_W(a->d_out, r)
    for (int o = 0; o < a->d_out; o++)
        for (int k = 0; k < r; k++) Bd[(size_t)o * r + k] = (lb[o] * B[(size_t)o * r + k]) * ld[k];
    return Bd;
}

/* dλ_b, dλ_d from T = ∂L/∂ΔW · A_sᵀ, stored T[o·so + k·sk]; each entry sums
 * its terms in a fixed order (in double), whatever the thread count. */
static void grads_from_T(rl_adapter *a, const float *T, size_t so, size_t sk)
{
    const int r = a->cfg.r, dout = a->d_out;
    const float *lb = a->params, *ld = a->params + dout, *B = a->bases->B;
    float *dlb = a->grads, *dld = a->grads + dout;
    RL_PAR_FOR_W(dout, r)
    for (int o = 0; o < dout; o++) {
        double acc = 0.0;
        for (int k = 0; k < r; k++) acc += (double)B[(size_t)o * r + k] * (ld[k] * T[o * so + k * sk]);
        dlb[o] += (float)acc;
    }
    RL_PAR_FOR_W(r, dout)
    for (int k = 0; k < r; k++) {
        double acc = 0.0;
        for (int o = 0; o < dout; o++) acc += (double)(lb[o] * B[(size_t)o * r + k]) * T[o * so + k * sk];
        dld[k] += (float)acc;
    }
}

typedef struct {
    rl_adapter *a;
    const float *x, *dy, *Bd;
    float *y, *dx;
    int n;
    bool kept, grads;
} vera_job;

static void vera_forward_part(void *ctx, int part, int parts)
{
    const vera_job *j = ctx;
    rl_adapter *a = j->a;
    const int r = a->cfg.r, dout = a->d_out, I = a->bases->max_in;
    int lo, hi;
    rl_part_rows(j->n, part, parts, &lo, &hi);
    if (hi <= lo) return;
    float *h = a->work + (size_t)lo * r;
    rl_skinny_xat(a, j->x, lo, hi, a->bases->A, I, h); /* h = x A_sᵀ */
    rl_gemm(RL_NOTRANS, RL_TRANS, hi - lo, dout, r, 1.0f, h, r, j->Bd, r, 1.0f, j->y + (size_t)lo * dout, dout); /* y += h Bdᵀ */
}

static void vera_forward(rl_adapter *a, const float *x, int n, float *y)
{
    vera_job j = {.a = a, .x = x, .y = y, .n = n, .Bd = vera_bd(a)};
    rl_blas_run_parts(rl_parts(a, n), vera_forward_part, &j);
    rl_fwd_keep(a, n);
}

/* Rows [lo, hi), skinny_rows at a time: T (the part's own) = dyᵀ h when
 * grads, and dx += dy Bd A_s when dx. */
static void vera_backward_part(void *ctx, int part, int parts)
{
    const vera_job *j = ctx;
    rl_adapter *a = j->a;
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out, I = a->bases->max_in;
    float *T = t_partial(a, part);
    int lo, hi;
    rl_part_rows(j->n, part, parts, &lo, &hi);
    if (hi <= lo && j->grads) memset(T, 0, (size_t)dout * r * sizeof(float));
    for (int b0 = lo; b0 < hi; b0 += a->skinny_rows) {
        const int m = hi - b0 < a->skinny_rows ? hi - b0 : a->skinny_rows;
        const float *xb = j->x + (size_t)b0 * di, *dyb = j->dy + (size_t)b0 * dout;
        float *hb = a->work + (size_t)b0 * r, *dhb = a->work + ((size_t)a->max_tokens + b0) * r;
        if (j->grads) {
            if (!j->kept) rl_gemm(RL_NOTRANS, RL_TRANS, m, r, di, 1.0f, xb, di, a->bases->A, I, 0.0f, hb, r); /* h */
            rl_gemm(RL_TRANS, RL_NOTRANS, dout, r, m, 1.0f, dyb, dout, hb, r, b0 > lo ? 1.0f : 0.0f, T, r); /* T = dyᵀ h */
        }
        if (j->dx) {
            rl_gemm(RL_NOTRANS, RL_NOTRANS, m, r, dout, 1.0f, dyb, dout, j->Bd, r, 0.0f, dhb, r); /* dh = dy Bd */
            rl_gemm(RL_NOTRANS, RL_NOTRANS, m, di, r, 1.0f, dhb, r, a->bases->A, I, 1.0f, j->dx + (size_t)b0 * di,
                    di); /* dx += dh A_s */
        }
    }
}

static void vera_backward(rl_adapter *a, const float *x, const float *dy, int n, float *dx)
{
    vera_job j = {.a = a, .x = x, .dy = dy, .dx = dx, .n = n, .kept = rl_fwd_cached(a, n), .grads = true,
                  .Bd = dx ? vera_bd(a) : NULL};
    const int parts = rl_parts(a, n);
    const size_t dr = (size_t)a->d_out * a->cfg.r;
    rl_blas_run_parts(parts, vera_backward_part, &j);
    float *T = t_slot(a);
    if (parts > 1) rl_parts_add(T, t_partial(a, 1), dr, dr, parts);
    grads_from_T(a, T, (size_t)a->cfg.r, 1);
}

/* ---- the materialised routes (rl_layer) ---- */
void rl_vera_delta_weight_acc(rl_adapter *a, float *dw, float beta)
{
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out, I = a->bases->max_in;
    const float *Bd = vera_bd(a);
    rl_gemm(RL_NOTRANS, RL_NOTRANS, dout, di, r, 1.0f, Bd, r, a->bases->A, I, beta, dw, di); /* ΔW = Bd A_s */
}

void rl_vera_grads_from_G(rl_adapter *a, const float *G)
{
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out, I = a->bases->max_in;
    float *T = t_slot(a);
    rl_gemm(RL_NOTRANS, RL_TRANS, dout, r, di, 1.0f, G, di, a->bases->A, I, 0.0f, T, r); /* T = G A_sᵀ */
    grads_from_T(a, T, (size_t)r, 1);
}

void rl_vera_dx_acc(rl_adapter *a, const float *dy, int n, float *dx)
{
    vera_job j = {.a = a, .dy = dy, .dx = dx, .n = n, .Bd = vera_bd(a)};
    rl_blas_run_parts(rl_parts(a, n), vera_backward_part, &j);
}

static void vera_delta_weight(rl_adapter *a, float *dw) { rl_vera_delta_weight_acc(a, dw, 0.0f); }

const rl_adapter_ops rl_vera_ops = {
    .name = "vera",
    .work_size = vera_work_size,
    .reset = vera_reset,
    .forward = vera_forward,
    .backward = vera_backward,
    .delta_weight = vera_delta_weight,
};
