/* rl_layer.h -- an adapted linear layer: frozen W, bias, and one adapter.
 *
 *   y = x (W + ΔW)ᵀ + b        x (n, d_in), y (n, d_out), W (d_out, d_in)
 *
 * W and b are borrowed and frozen (b may be NULL). For full fine-tuning the
 * adapter's D *is* the weight: W is ignored (pass NULL) and y = x Dᵀ + b, so a
 * full fine-tuning step costs what training W itself costs.
 *
 * A step has three terms, and each can take one of two routes (shown for
 * RandLora; LoRA and VeRA have the same forward and dx routes with their own
 * ΔW, VeRA the G route for its gradients too; LoRA's gradients always take
 * the factors; full fine-tuning has one route):
 *   forward  F  (PEFT's way) y = x Wᵀ + s·(x UAᵀ) UBᵀ through the factors
 *            M  build M = W + s·UB·UA once, y = x Mᵀ
 *   dx       F  dx = dy W + s·(dy UB) UA through the factors
 *            M  dx = dy M (M from the forward, or built here)
 *   grads    F  dUA = s·(dy UB)ᵀ x through the factors
 *            M  G = dyᵀ x (d_out, d_in), then dUA = s·UBᵀ·G (or Gᵀ)
 * then dλ, dΓ from dUA (PEFT's UniqueBaseGrad). A materialised ΔW, once
 * built, serves the forward and dx. RL_PATH_AUTO picks, for each call's n
 * and whether dx is wanted, the plan (route per term) with the fewest FLOPs
 * in the model below; RL_PATH_FACTORISED / RL_PATH_MATERIALISED force every
 * term. The materialised routes keep M from forward for backward, so
 * backward must follow forward with the same x, n and parameters (the
 * training-step contract); they need one extra (d_out, d_in) buffer,
 * allocated by rl_layer_new only when a plan can use it.
 *
 * FLOP model (matrix products, 2 flops per multiply-add, plus the O(K·mn)
 * element-wise work of building UA and of the factor gradients), with
 * K = r·nb, mn = min(o, i), U = 2·K·mn (one UA build), Fg = 4·K·mn. The
 * layer lets an adapter keep its forward's intermediates for backward
 * (LoRA's and VeRA's h, RandLora's UA and H), so none is recomputed:
 *   base         fwd 2·n·o·i            dx 2·n·o·i
 *   full         fwd 2·n·o·i   dD 2·n·o·i   dx 2·n·o·i   (no separate base)
 *   lora, vera (h = x·Aᵀ (n, r); ΔW = s·B·A, or Bd·A_s with Bd = λ_b·B_s·λ_d):
 *     forward  F  2·n·r·(i+o) (h, y += h·Bᵀ)   M  2·o·i·r (ΔW)
 *     grads    F  lora 2·n·r·(i + 2o) (dB, dh, dA); vera 2·n·r·o (T = dyᵀ·h)
 *                 + 2·n·r·i for h unless the forward was F
 *              M  (vera) 2·n·o·i + 2·o·i·r (G, T = G·A_sᵀ)
 *                 vera + 4·o·r (dλ_b, dλ_d from T)
 *     dx       F  2·n·r·i (dx += dh·A), + 2·n·r·o for dh unless LoRA's
 *                 factorised gradients made it
 *              M  0 when the forward built M, else 2·o·i·r
 *   randlora (dense kernels): base, plus per term
 *     forward  F  2·n·K·(i+o) + U          M  2·o·i·K + U (ΔW, chunks of UA)
 *     grads    F  2·n·K·(i+o) (d_in <= d_out), else 2·n·K·o, + 2·n·K·i for
 *                 H = x·UB unless the forward was F;  + Fg
 *              M  2·n·o·i + 2·K·o·i + Fg
 *     dx       F  2·n·K·i, + U unless the forward was F (it keeps UA),
 *                 + 2·n·K·o unless grads F share dy·UB (d_in <= d_out)
 *              M  0 when the forward built M, else 2·o·i·K + U
 *   randlora with very_sparse bases runs ternary kernels (rl_randlora_ternary.c)
 *     and its plans are uniform (all F or all M): every product with UA or UB
 *     costs 2·n per nonzero, nnz(UA) ≈ K·mn·d, nnz(UB) ≈ mx·K·d,
 *     d ≈ 1/sqrt(mn); the factorised step is the base GEMMs plus O(n·nnz).
 */
#ifndef RL_LAYER_H
#define RL_LAYER_H

#include <stdbool.h>
#include <stddef.h>

#include "rl_adapter.h"

typedef enum { RL_PATH_AUTO = 0, RL_PATH_FACTORISED, RL_PATH_MATERIALISED } rl_path;

const char *rl_path_name(rl_path p); /* "auto", "factorised", "materialised" */
rl_status rl_path_parse(const char *s, rl_path *out);

/* The route of each term of a step: RL_PATH_FACTORISED or _MATERIALISED. */
typedef struct {
    rl_path fwd, grads, dx;
} rl_plan;

rl_plan rl_plan_uniform(rl_path p);
/* "factorised", "materialised" when every term (dx only if need_dx) takes
 * that route, else "mixed(fwd=M grads=F dx=M)"; written into buf. */
const char *rl_plan_name(rl_plan p, bool need_dx, char *buf, size_t len);

typedef struct rl_layer rl_layer;

/* W (d_out, d_in) and b (d_out) borrowed; `a` borrowed (its d_out, d_in
 * define the layer). The layer expects backward to want dx; say otherwise with
 * rl_layer_expect_dx (a network's first layer). RL_PATH_MATERIALISED for a
 * method other than RandLora and VeRA is RL_EINVAL. */
rl_status rl_layer_new(rl_layer **out, const float *W, const float *b, rl_adapter *a,
                       int max_tokens, rl_path path);
void rl_layer_free(rl_layer *l);
/* Whether backward will be asked for dx: the plan of the forward depends on it. */
void rl_layer_expect_dx(rl_layer *l, bool need_dx);

/* y (n, d_out) := x Wᵀ + b + adapter(x)  (overwrite). */
rl_status rl_layer_forward(rl_layer *l, const float *x, int n, float *y);
/* Accumulate the adapter's gradients; dx (n, d_in) := ∂L/∂x if dx != NULL
 * (overwrite). Must follow rl_layer_forward on the same x and n. */
rl_status rl_layer_backward(rl_layer *l, const float *x, const float *dy, int n, float *dx);

/* The FLOP model of one forward + backward on a plan, for any layer shape,
 * and the plan AUTO picks (fewest FLOPs; ties go to the factorised route;
 * only_materialised: an adapter without per-row workspace). */
double rl_plan_flops(rl_method method, rl_bases_kind kind, rl_plan p, int d_out, int d_in, int r, int n,
                     bool need_dx);
rl_plan rl_plan_for(rl_method method, rl_bases_kind kind, int d_out, int d_in, int r, int n, bool need_dx,
                    bool only_materialised);

/* Fix the plan of every step (a layer made with RL_PATH_AUTO or
 * _MATERIALISED): for comparisons and tests. A LoRA layer whose own plans
 * never needed the (d_out, d_in) buffer allocates it here. RL_EINVAL for a
 * plan the layer cannot run (a materialised route on a layer made with
 * RL_PATH_FACTORISED or for full fine-tuning, LoRA's gradients from G, a
 * factorised one without the adapter's per-row workspace, a mixed plan on
 * the ternary kernels). */
rl_status rl_layer_fix_plan(rl_layer *l, rl_plan p);

/* The plan this layer takes for n rows (AUTO resolved, or the fixed path). */
rl_plan rl_layer_choose_plan(const rl_layer *l, int n, bool need_dx);
/* The model's FLOPs of one forward + backward for n rows on plan p. */
double rl_layer_plan_flops(const rl_layer *l, rl_plan p, int n, bool need_dx);
rl_adapter *rl_layer_adapter(rl_layer *l);

#endif
