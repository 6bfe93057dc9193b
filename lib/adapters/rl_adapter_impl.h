/* rl_adapter_impl.h -- the adapter struct and the per-method operation table.
 * Private to lib/adapters: callers use rl_adapter.h. */
#ifndef RL_ADAPTER_IMPL_H
#define RL_ADAPTER_IMPL_H

#include "rl_adapter.h"

#define RL_MAX_PARAM_INFO 2

typedef struct {
    const char *name;
    /* workspace floats needed for up to n_max rows */
    size_t (*work_size)(const rl_adapter *a, int n_max);
    void (*reset)(rl_adapter *a);
    void (*forward)(rl_adapter *a, const float *x, int n, float *y);
    void (*backward)(rl_adapter *a, const float *x, const float *dy, int n, float *dx);
    void (*delta_weight)(rl_adapter *a, float *dw);
} rl_adapter_ops;

struct rl_adapter {
    const rl_adapter_ops *ops;
    rl_adapter_config cfg;
    int d_out, d_in, max_tokens;
    float scaling;
    float *params, *grads;
    size_t n_params;
    int n_info;
    rl_param_info info[RL_MAX_PARAM_INFO];
    const rl_shared_bases *bases;   /* borrowed */
    float *work;
    size_t n_work;
    /* randlora: mn = min(d_in, d_out), mx = max, nb = ceil(mn / r), K = r·nb */
    int mn, mx, nb, K;
};

extern const rl_adapter_ops rl_full_ops, rl_lora_ops, rl_vera_ops, rl_randlora_ops;

/* RandLora's materialised path (rl_layer.c): given G = dyᵀ x (d_out, d_in),
 * accumulate dλ and dΓ through dUA = s · UBᵀ · dM, where dM = G (d_in <= d_out)
 * or Gᵀ (d_in > d_out). Uses the second K·mn block of the workspace. */
void rl_randlora_grads_from_G(rl_adapter *a, const float *G);

#endif
