/* rl_layer.h -- an adapted linear layer: frozen W, bias, and one adapter.
 *
 *   y = x (W + ΔW)ᵀ + b        x (n, d_in), y (n, d_out), W (d_out, d_in)
 *
 * W and b are borrowed and frozen (b may be NULL). For full fine-tuning the
 * adapter's D *is* the weight: W is ignored (pass NULL) and y = x Dᵀ + b, so a
 * full fine-tuning step costs what training W itself costs.
 *
 * Two ways to compute a RandLora step (the others have one):
 *   factorised    (PEFT's way) x goes through the two flattened factors:
 *                 y = x Wᵀ + s·(x UAᵀ) UBᵀ, backward through the same factors.
 *   materialised  build ΔW once per step and run one GEMM with W + ΔW:
 *                 M = W + s·UB·UA,  y = x Mᵀ;  dx = dy M;
 *                 G = dyᵀ x, dUA = s·UBᵀ·G (or Gᵀ), then dλ, dΓ from dUA.
 * RL_PATH_AUTO picks, for each call's n, the path with fewer FLOPs in the
 * model below (rl_layer_step_flops). The materialised path keeps W + ΔW from
 * forward for backward, so backward must follow forward with the same x, n
 * and parameters (the training-step contract); it needs one extra
 * (d_out, d_in) buffer, allocated by rl_layer_new only when that path can
 * be taken.
 *
 * FLOP model (matrix products only, 2 flops per multiply-add; elementwise
 * work such as AdamW or building UA is counted where it is O(K·mn)):
 *   base         fwd 2·n·o·i            dx 2·n·o·i
 *   full         fwd 2·n·o·i   dD 2·n·o·i   dx 2·n·o·i   (no separate base)
 *   lora         base + fwd 2·n·r·(i+o) + bwd 2·n·r·(2i + 2o) [+ dx 2·n·r·i]
 *   vera         base + fwd 2·n·r·(i+o) + bwd 2·n·r·(i + 2o)  [+ dx 2·n·r·i]
 *   randlora factorised (K = r·nb, mn = min(o, i)):
 *                base + fwd 2·n·K·(i+o) + bwd 2·n·K·(i+o) [+ dx 2·n·K·i]
 *                (+ 2·n·K·o more when d_in > d_out)
 *                + UA twice 2·2·K·mn + factor gradients 4·K·mn
 *   randlora materialised:
 *                ΔW 2·o·i·K + fwd 2·n·o·i [+ dx 2·n·o·i] + G 2·n·o·i
 *                + dUA 2·K·o·i + UA 2·K·mn + factor gradients 4·K·mn
 *   randlora with very_sparse bases runs ternary kernels (rl_randlora_ternary.c):
 *                every product with UA or UB costs 2·n per nonzero, with
 *                nnz(UA) ≈ K·mn·d, nnz(UB) ≈ mx·K·d, d ≈ 1/sqrt(mn); the
 *                factorised step is then the base GEMMs plus O(n·(nnz))
 */
#ifndef RL_LAYER_H
#define RL_LAYER_H

#include <stdbool.h>

#include "rl_adapter.h"

typedef enum { RL_PATH_AUTO = 0, RL_PATH_FACTORISED, RL_PATH_MATERIALISED } rl_path;

const char *rl_path_name(rl_path p); /* "auto", "factorised", "materialised" */
rl_status rl_path_parse(const char *s, rl_path *out);

typedef struct rl_layer rl_layer;

/* W (d_out, d_in) and b (d_out) borrowed; `a` borrowed (its d_out, d_in
 * define the layer). RL_PATH_MATERIALISED for a method other than RandLora
 * is RL_EINVAL. */
rl_status rl_layer_new(rl_layer **out, const float *W, const float *b, rl_adapter *a,
                       int max_tokens, rl_path path);
void rl_layer_free(rl_layer *l);

/* y (n, d_out) := x Wᵀ + b + adapter(x)  (overwrite). */
rl_status rl_layer_forward(rl_layer *l, const float *x, int n, float *y);
/* Accumulate the adapter's gradients; dx (n, d_in) := ∂L/∂x if dx != NULL
 * (overwrite). Must follow rl_layer_forward on the same x and n. */
rl_status rl_layer_backward(rl_layer *l, const float *x, const float *dy, int n, float *dx);

/* The FLOP model for any layer shape, and the path AUTO picks for it (the
 * one with fewer FLOPs; always factorised for methods other than RandLora). */
double rl_step_flops(rl_method method, rl_bases_kind kind, rl_path path, int d_out, int d_in, int r, int n,
                     bool need_dx);
rl_path rl_path_for(rl_method method, rl_bases_kind kind, int d_out, int d_in, int r, int n, bool need_dx);

/* The path AUTO resolves to for n rows (or the fixed path). */
rl_path rl_layer_choose_path(const rl_layer *l, int n, bool need_dx);
/* The model's FLOPs of one forward + backward for n rows on `path`. */
double rl_layer_step_flops(const rl_layer *l, rl_path path, int n, bool need_dx);
rl_adapter *rl_layer_adapter(rl_layer *l);

#endif
