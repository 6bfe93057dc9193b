/* rl_full.c -- full fine-tuning as the fourth "method".
 *
 *   W = W0 + D,  D (d_out, d_in) trainable, zero at init, so ΔW = D.
 * Training D with W0 frozen is full fine-tuning: ∂L/∂D = ∂L/∂W, and merging
 * writes W0 + D back. Parameters: d_out·d_in.
 *
 * forward:  y  += x Dᵀ          (n, d_out)
 * backward: dD += dyᵀ x         (d_out, d_in)
 *           dx += dy D          (n, d_in)
 */
#include "rl_adapter_impl.h"

#include <string.h>

#include "../core/rl_blas.h"

static size_t full_work_size(const rl_adapter *a, int n_max)
{
    (void)a;
    (void)n_max;
    return 0;
}

static void full_reset(rl_adapter *a) { memset(a->params, 0, a->n_params * sizeof(float)); }

static void full_forward(rl_adapter *a, const float *x, int n, float *y)
{
    rl_gemm(RL_NOTRANS, RL_TRANS, n, a->d_out, a->d_in, 1.0f, x, a->d_in, a->params, a->d_in,
            1.0f, y, a->d_out);
}

static void full_backward(rl_adapter *a, const float *x, const float *dy, int n, float *dx)
{
    /* dD += dyᵀ x  (d_out, d_in) */
    rl_gemm(RL_TRANS, RL_NOTRANS, a->d_out, a->d_in, n, 1.0f, dy, a->d_out, x, a->d_in, 1.0f,
            a->grads, a->d_in);
    /* dx += dy D  (n, d_in) */
    if (dx)
        rl_gemm(RL_NOTRANS, RL_NOTRANS, n, a->d_in, a->d_out, 1.0f, dy, a->d_out, a->params,
                a->d_in, 1.0f, dx, a->d_in);
}

static void full_delta_weight(rl_adapter *a, float *dw)
{
    memcpy(dw, a->params, a->n_params * sizeof(float));
}

const rl_adapter_ops rl_full_ops = {
    .name = "full",
    .work_size = full_work_size,
    .reset = full_reset,
    .forward = full_forward,
    .backward = full_backward,
    .delta_weight = full_delta_weight,
};
