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
 * (h and dh are held transposed, (r, n), when BLAS runs on more than one
 * thread: rl_skinny_transposed)
 * forward:  h   = x Aᵀ            (n, r)      workspace
 *           y  += s · h Bᵀ        (n, d_out)
 * backward: h   = x Aᵀ            (n, r)      recomputed unless kept (rl_layer)
 *           dB += s · dyᵀ h       (d_out, r)
 *           dh  = s · dy B        (n, r)      workspace
 *           dA += dhᵀ x           (r, d_in)
 *           dx += dh A            (n, d_in)
 */
#include "rl_adapter_impl.h"

#include <math.h>
#include <string.h>

#include "../core/rl_blas.h"
#include "../core/rl_par.h"
#include "../core/rl_rng.h"

/* h and dh (n, r) -- or hᵀ and dhᵀ (r, n) -- then dBᵀ (r, d_out) */
static size_t lora_work_size(const rl_adapter *a, int n_max)
{
    return 2 * (size_t)n_max * a->cfg.r + (size_t)a->cfg.r * a->d_out;
}

static void lora_reset(rl_adapter *a)
{
    int r = a->cfg.r;
    rl_mt g;
    rl_mt_seed(&g, a->cfg.init_seed);
    rl_kaiming_uniform(&g, a->params, (size_t)r * a->d_in, sqrt(5.0), a->d_in, RL_F32, RL_FMA);
    memset(a->params + (size_t)r * a->d_in, 0, (size_t)a->d_out * r * sizeof(float));
}

static void lora_forward(rl_adapter *a, const float *x, int n, float *y)
{
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out;
    const float *A = a->params, *B = a->params + (size_t)r * di;
    float *h = a->work;
    const bool tl = rl_skinny_transposed();
    if (tl) {
        rl_gemm(RL_NOTRANS, RL_TRANS, r, n, di, 1.0f, A, di, x, di, 0.0f, h, n);         /* hᵀ = A xᵀ   (r, n) */
        rl_gemm(RL_TRANS, RL_TRANS, n, dout, r, a->scaling, h, n, B, r, 1.0f, y, dout); /* y += s h Bᵀ */
    } else {
        rl_gemm(RL_NOTRANS, RL_TRANS, n, r, di, 1.0f, x, di, A, di, 0.0f, h, r);
        rl_gemm(RL_NOTRANS, RL_TRANS, n, dout, r, a->scaling, h, r, B, r, 1.0f, y, dout);
    }
    a->fwd_tl = tl;
    rl_fwd_keep(a, n);
}

static void lora_backward(rl_adapter *a, const float *x, const float *dy, int n, float *dx)
{
    const int r = a->cfg.r, di = a->d_in, dout = a->d_out;
    const float *A = a->params, *B = a->params + (size_t)r * di;
    float *dA = a->grads, *dB = a->grads + (size_t)r * di;
    float *h = a->work, *dh = a->work + (size_t)n * r;
    const float s = a->scaling;
    const bool tl = rl_skinny_transposed(), kept = rl_fwd_cached(a, n) && a->fwd_tl == tl;
    if (tl) { /* hᵀ, dhᵀ (r, n) */
        float *dBT = a->work + 2 * (size_t)a->max_tokens * r;
        if (!kept) rl_gemm(RL_NOTRANS, RL_TRANS, r, n, di, 1.0f, A, di, x, di, 0.0f, h, n); /* hᵀ = A xᵀ */
        rl_gemm(RL_NOTRANS, RL_NOTRANS, r, dout, n, s, h, n, dy, dout, 0.0f, dBT, dout);    /* dBᵀ = s hᵀ dy */
        RL_PAR_FOR_W(dout, r)
        for (int o = 0; o < dout; o++)
            for (int k = 0; k < r; k++) dB[(size_t)o * r + k] += dBT[(size_t)k * dout + o];
        rl_gemm(RL_TRANS, RL_TRANS, r, n, dout, s, B, r, dy, dout, 0.0f, dh, n);          /* dhᵀ = s Bᵀ dyᵀ */
        rl_gemm(RL_NOTRANS, RL_NOTRANS, r, di, n, 1.0f, dh, n, x, di, 1.0f, dA, di);      /* dA += dhᵀ x */
        if (dx) rl_gemm(RL_TRANS, RL_NOTRANS, n, di, r, 1.0f, dh, n, A, di, 1.0f, dx, di); /* dx += dh A */
        return;
    }
    /* one thread: RL_SKINNY_BLOCK rows at a time (rl_adapter_impl.h) */
    for (int b0 = 0; b0 < n; b0 += RL_SKINNY_BLOCK) {
        const int m = n - b0 < RL_SKINNY_BLOCK ? n - b0 : RL_SKINNY_BLOCK;
        const float *xb = x + (size_t)b0 * di, *dyb = dy + (size_t)b0 * dout;
        float *hb = h + (size_t)b0 * r, *dhb = dh + (size_t)b0 * r;
        if (!kept) rl_gemm(RL_NOTRANS, RL_TRANS, m, r, di, 1.0f, xb, di, A, di, 0.0f, hb, r); /* h = x Aᵀ */
        rl_gemm(RL_TRANS, RL_NOTRANS, dout, r, m, s, dyb, dout, hb, r, 1.0f, dB, r);  /* dB += s dyᵀ h */
        rl_gemm(RL_NOTRANS, RL_NOTRANS, m, r, dout, s, dyb, dout, B, r, 0.0f, dhb, r); /* dh = s dy B */
        rl_gemm(RL_TRANS, RL_NOTRANS, r, di, m, 1.0f, dhb, r, xb, di, 1.0f, dA, di);   /* dA += dhᵀ x */
        if (dx) rl_gemm(RL_NOTRANS, RL_NOTRANS, m, di, r, 1.0f, dhb, r, A, di, 1.0f, dx + (size_t)b0 * di, di); /* dx += dh A */
    }
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
