/* rl_adapter.h -- one interface for full fine-tuning, LoRA, VeRA and RandLora.
 *
 * An adapter sits beside a frozen nn.Linear (W: (d_out, d_in), y = x Wᵀ + b)
 * and adds its own update:  y += x ΔWᵀ.  Every experiment, test and benchmark
 * drives the four methods through this table of operations:
 *
 *   rl_adapter_new       init(config, layer shape, shared bases, max tokens)
 *   rl_adapter_forward   y (n, d_out) += adapter(x (n, d_in))
 *   rl_adapter_backward  grads += ∂L/∂params, dx (n, d_in) += ∂L/∂x through
 *                        the adapter, given dy = ∂L/∂y
 *   rl_adapter_delta_weight   dw (d_out, d_in) := ΔW       (overwrite)
 *   rl_adapter_merge / _unmerge    W += ΔW / W -= ΔW; safe merge refuses a
 *                        non-finite result and leaves W untouched
 *   param / grad spans   one contiguous block each, same layout, for optimisers
 *
 * Semantics follow HuggingFace PEFT exactly (peft-semantics.md):
 *   full      ΔW = D, D (d_out, d_in) trainable, zero at init: fine-tuning
 *             W = W0 + D with every entry trainable (identical gradients to
 *             training W itself).
 *   lora      ΔW = s · B A, A (r, d_in) kaiming_uniform(a=√5), B (d_out, r) = 0,
 *             s = alpha / r  (alpha / √r with use_rslora).
 *   vera      ΔW = (λ_b ⊙ B_s)(λ_d ⊙ A_s), A_s = vera_A[:, :d_in],
 *             B_s = vera_B[:d_out, :]; λ_b (d_out) = 0, λ_d (r) = d_initial;
 *             no scaling.
 *   randlora  ΔW = s · UB · UA (d_in <= d_out) or s · (UB · UA)ᵀ (d_in > d_out),
 *             s = alpha / r, mn = min(d_in, d_out), mx = max, nb = ceil(mn / r),
 *             UB[p, c] = B[p, c / r, c % r]            (mx, r·nb)
 *             UA[c, q] = (λ[c / nb, c % nb] · A[c / nb, q]) · Γ[c % nb, q]
 *                                                       (r·nb, mn)
 *             -- PEFT's pairing of the flattened factors, not the paper's
 *             Σ_b B_b Λ_b A Γ_b (offered as RL_PAIRING_PAPER);
 *             λ (r, nb) = 0 and Γ (nb, mn) = 1/mn at init; the trainable side
 *             is always the smaller dimension.
 *
 * Parameter block layouts (PEFT names in brackets):
 *   full      [D (d_out·d_in)]
 *   lora      [A "lora_A.weight" (r·d_in), B "lora_B.weight" (d_out·r)]
 *   vera      [λ_b "vera_lambda_b" (d_out), λ_d "vera_lambda_d" (r)]
 *   randlora  [λ "randlora_lambda" (r·nb), Γ "randlora_gamma" (nb·mn)]
 *
 * Memory: rl_adapter_new allocates the parameter, gradient and workspace
 * blocks once, sized for at most max_tokens rows; forward, backward and
 * delta_weight allocate nothing (calling them with n > max_tokens is
 * RL_EINVAL). merge allocates one (d_out, d_in) buffer for its duration.
 * A RandLora adapter made with max_tokens = 0 has no per-row workspace: it
 * serves delta_weight, merge and rl_layer's materialised path only (its
 * workspace is then a chunk of 256 rows of UA, not K·min_dim).
 * Backward recomputes the small forward intermediates it needs from x, so it
 * does not depend on a preceding forward call.
 */
#ifndef RL_ADAPTER_H
#define RL_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/rl_err.h"
#include "rl_bases.h"

typedef enum { RL_PAIRING_PEFT = 0, RL_PAIRING_PAPER = 1 } rl_pairing;

typedef struct {
    rl_method method;
    int r;                  /* rank (ignored by full) */
    double alpha;           /* lora_alpha / randlora_alpha */
    bool use_rslora;        /* lora: s = alpha / sqrt(r) */
    double d_initial;       /* vera: λ_d at init (PEFT default 0.1) */
    rl_pairing pairing;     /* randlora: PEFT's flattened pairing (default) or the paper's */
    uint64_t init_seed;     /* lora: seed of the generator that draws A */
    bool dense_kernels;     /* randlora very_sparse: use BLAS on the dense bases instead of
                               the ternary add/subtract kernels (for comparisons) */
} rl_adapter_config;

/* PEFT defaults for a method: lora r=8 alpha=8; vera r=256 d_initial=0.1;
 * randlora r=32 alpha=640. */
rl_adapter_config rl_adapter_config_default(rl_method m);

typedef struct rl_adapter rl_adapter;

typedef struct {
    float *p;       /* parameters */
    float *g;       /* gradients, same layout */
    size_t n;
} rl_span;

/* Named slice of the parameter block, for state load/save by PEFT key. */
typedef struct {
    const char *name;       /* PEFT key suffix, e.g. "randlora_lambda" */
    size_t offset;          /* into the parameter block */
    int ndim;
    int shape[2];
} rl_param_info;

/* Create an adapter for a (d_out, d_in) linear layer. `bases` (borrowed,
 * must outlive the adapter) is required for vera and randlora and must have
 * been generated for that method with the same r and be large enough for
 * this layer (RL_ERANGE otherwise, with the sizes in the message). */
rl_status rl_adapter_new(rl_adapter **out, const rl_adapter_config *cfg, int d_out, int d_in,
                         const rl_shared_bases *bases, int max_tokens);
void rl_adapter_free(rl_adapter *a);
/* An upper bound of the bytes rl_adapter_new allocates (tracked) for these
 * arguments: parameters and gradients, and the workspace (the work_size
 * functions of rl_lora.c, rl_vera.c, rl_randlora.c, rl_randlora_ternary.c;
 * tested against the real count). `bases` may be NULL (not drawn yet): then
 * RandLora's bound covers both its dense and its ternary kernels at their
 * largest. Saturates at SIZE_MAX. For the memory budget (rl_budget.h). */
size_t rl_adapter_bytes_bound(const rl_adapter_config *cfg, int d_out, int d_in, const rl_shared_bases *bases,
                              int max_tokens);

rl_status rl_adapter_forward(rl_adapter *a, const float *x, int n, float *y);
rl_status rl_adapter_backward(rl_adapter *a, const float *x, const float *dy, int n, float *dx);
rl_status rl_adapter_delta_weight(rl_adapter *a, float *dw);
/* W (d_out, d_in) += ΔW. With safe, the sum is formed in a scratch copy and
 * W is written only if every element is finite; otherwise RL_ENONFINITE
 * ("NaNs detected in the merged weights") and W is unchanged. */
rl_status rl_adapter_merge(rl_adapter *a, float *W, bool safe);
rl_status rl_adapter_unmerge(rl_adapter *a, float *W);

/* Reset the parameters to the method's initial values (what new does). */
void rl_adapter_reset(rl_adapter *a);
void rl_adapter_zero_grad(rl_adapter *a);

size_t rl_adapter_param_count(const rl_adapter *a);
rl_span rl_adapter_span(rl_adapter *a);
int rl_adapter_n_params_info(const rl_adapter *a);
const rl_param_info *rl_adapter_param_info(const rl_adapter *a, int i);
/* Find a named parameter; NULL if the method has none by that name. */
const rl_param_info *rl_adapter_find_param(const rl_adapter *a, const char *name);

rl_method rl_adapter_method(const rl_adapter *a);
int rl_adapter_d_out(const rl_adapter *a);
int rl_adapter_d_in(const rl_adapter *a);
float rl_adapter_scaling(const rl_adapter *a);
/* RandLora: number of bases of this layer (nb); 0 for the others. */
int rl_adapter_n_bases(const rl_adapter *a);

/* Closed-form trainable-parameter counts (PEFT's formulas). */
size_t rl_param_count_formula(rl_method m, int r, int d_out, int d_in);

#endif
