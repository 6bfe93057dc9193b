/* rl_lora.c -- LoRA (Hu et al. 2021) as PEFT's lora.Linear computes it.
 *
 *   ΔW = s · B A       A: (r, d_in)  kaiming_uniform(a=√5) at init
 *                      B: (d_out, r) zero at init  =>  ΔW = 0 at step 0
 *   s = alpha / r, or alpha / √r with use_rslora.
 *
 * PEFT draws A from torch's global generator after two nn.Linear
 * constructors (peft-semantics.md §4); here A is drawn from a generator
 * seeded with cfg.init_seed -- the same distribution, not PEFT's stream.
 *
 * forward:  h   = x Aᵀ            (n, r)      workspace, kept for backward under rl_layer
 *           y  += s · h Bᵀ        (n, d_out)
 * backward: Aᵀ  (d_in, r)   a copy, so that h is a plain product (below)
 *           per block of rows:
 *           dh  = s · dy B        (n, r)      workspace
 *           h   = x Aᵀ            (n, r)      unless kept
 *           dB += s · dyᵀ h       (d_out, r)
 *           dA += dhᵀ x           (r, d_in)
 *           dx += dh A            (n, d_in)
 * every product in row parts on the BLAS threads (rl_adapter_impl.h).
 */
#include "rl_adapter_impl.h"

#include <math.h>
#include <string.h>

#include "../core/rl_blas.h"
#include "../core/rl_rng.h"
#include "../core/rl_tensor.h"

/* h, dh (n, r), Aᵀ (d_in, r), then dA (r, d_in) and dB (d_out, r) of each
 * row part after the first (the first sums into the gradients) */
static size_t lora_work_size(const rl_adapter *a, int n_max)
{
    return 2 * (size_t)n_max * a->cfg.r + (size_t)a->cfg.r * a->d_in +
           (size_t)(a->parts_cap - 1) * a->cfg.r * (a->d_in + a->d_out);
}

static float *lora_at(const rl_adapter *a) { return a->work + 2 * (size_t)a->max_tokens * a->cfg.r; }

static float *lora_partial(const rl_adapter *a, int part)
{
    return lora_at(a) + (size_t)a->cfg.r * a->d_in + (size_t)(part - 1) * a->cfg.r * (a->d_in + a->d_out);
}

static void lora_reset(rl_adapter *a)
{
    int r = a->cfg.r;
    rl_mt g;
    rl_mt_seed(&g, a->cfg.init_seed);
    rl_kaiming_uniform(&g, a->params, (size_t)r * a->d_in, sqrt(5.0), a->d_in, RL_F32, RL_FMA);
    memset(a->params + (size_t)r * a->d_in, 0, (size_t)a->d_out * r * sizeof(float));
}

typedef struct {
    rl_adapter *a;
    const float *x, *dy;
    float *y, *dx;
    int n;
    bool kept;
} lora_job;

static void lora_forward_part(void *ctx, int part, int parts)
{
    const lora_job *j = ctx;
    rl_adapter *a = j->a;
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out;
    const float *A = a->params, *B = a->params + (size_t)r * di;
    int lo, hi;
    rl_part_rows(j->n, part, parts, &lo, &hi);
    if (hi <= lo) return;
    float *h = a->work + (size_t)lo * r;
    rl_skinny_xat(a, j->x, lo, hi, A, di, h); /* h = x Aᵀ */
    rl_gemm(RL_NOTRANS, RL_TRANS, hi - lo, dout, r, a->scaling, h, r, B, r, 1.0f, j->y + (size_t)lo * dout,
            dout); /* y += s h Bᵀ */
}

static void lora_forward(rl_adapter *a, const float *x, int n, float *y)
{
    lora_job j = {.a = a, .x = x, .y = y, .n = n};
    rl_blas_run_parts(rl_parts(a, n), lora_forward_part, &j);
    rl_fwd_keep(a, n);
}

/* Rows [lo, hi) of backward, skinny_rows at a time; the first part sums
 * into the gradients, the others into their own dA, dB. dh first: it reads
 * the block of dy from memory and h, with Aᵀ, is then a plain (not
 * transposed) product, which OpenBLAS's small-matrix kernels take faster
 * (4.9 against 5.2 ms for the four products at 4096 rows, Cooperlake). */
static void lora_backward_part(void *ctx, int part, int parts)
{
    const lora_job *j = ctx;
    rl_adapter *a = j->a;
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out, rows = a->skinny_rows;
    const float *A = a->params, *B = a->params + (size_t)r * di, *At = lora_at(a);
    const float s = a->scaling;
    float *dA = part == 0 ? a->grads : lora_partial(a, part), *dB = dA + (size_t)r * di;
    float beta = part == 0 ? 1.0f : 0.0f; /* a partial starts from its first block */
    int lo, hi;
    rl_part_rows(j->n, part, parts, &lo, &hi);
    if (hi <= lo && part > 0) memset(dA, 0, (size_t)r * (di + dout) * sizeof(float));
    for (int b0 = lo; b0 < hi; b0 += rows, beta = 1.0f) {
        const int m = hi - b0 < rows ? hi - b0 : rows;
        const float *xb = j->x + (size_t)b0 * di, *dyb = j->dy + (size_t)b0 * dout;
        float *hb = a->work + (size_t)b0 * r, *dhb = a->work + ((size_t)a->max_tokens + b0) * r;
        rl_gemm(RL_NOTRANS, RL_NOTRANS, m, r, dout, s, dyb, dout, B, r, 0.0f, dhb, r); /* dh = s dy B */
        if (!j->kept) rl_gemm(RL_NOTRANS, RL_NOTRANS, m, r, di, 1.0f, xb, di, At, r, 0.0f, hb, r); /* h = x Aᵀ */
        rl_gemm(RL_TRANS, RL_NOTRANS, dout, r, m, s, dyb, dout, hb, r, beta, dB, r);  /* dB += s dyᵀ h */
        rl_gemm(RL_TRANS, RL_NOTRANS, r, di, m, 1.0f, dhb, r, xb, di, beta, dA, di);   /* dA += dhᵀ x */
        if (j->dx)
            rl_gemm(RL_NOTRANS, RL_NOTRANS, m, di, r, 1.0f, dhb, r, A, di, 1.0f, j->dx + (size_t)b0 * di, di); /* dx += dh A */
    }
}

static void lora_backward(rl_adapter *a, const float *x, const float *dy, int n, float *dx)
{
    lora_job j = {.a = a, .x = x, .dy = dy, .dx = dx, .n = n, .kept = rl_fwd_cached(a, n)};
    const int parts = rl_parts(a, n);
    if (!j.kept) rl_transpose(lora_at(a), a->params, a->cfg.r, a->d_in); /* Aᵀ (d_in, r) */
    rl_blas_run_parts(parts, lora_backward_part, &j);
    if (parts > 1) rl_parts_add(a->grads, lora_partial(a, 1), (size_t)a->cfg.r * (a->d_in + a->d_out), a->n_params, parts);
}

void rl_lora_delta_weight_acc(rl_adapter *a, float *dw, float beta)
{
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out;
    const float *A = a->params, *B = a->params + (size_t)r * di;
    /* dw := s · B A + beta · dw  (d_out, d_in) */
    rl_gemm(RL_NOTRANS, RL_NOTRANS, dout, di, r, a->scaling, B, r, A, di, beta, dw, di);
}

static void lora_delta_weight(rl_adapter *a, float *dw) { rl_lora_delta_weight_acc(a, dw, 0.0f); }

const rl_adapter_ops rl_lora_ops = {
    .name = "lora",
    .work_size = lora_work_size,
    .reset = lora_reset,
    .forward = lora_forward,
    .backward = lora_backward,
    .delta_weight = lora_delta_weight,
};
