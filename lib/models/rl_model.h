/* rl_model.h -- an MLP and a small vision transformer whose linear layers can
 * each carry an adapter.
 *
 * MLP  (x: B x in_dim):  h_0 = x,  h_{l+1} = GELU(fc_{l+1}(h_l)),  logits = head(h_depth)
 *      linears "fc1" (in_dim -> hidden), "fc2".."fc<depth>" (hidden -> hidden)
 * ViT  (x: B images of image x image pixels, one channel; T = (image/patch)^2
 *      tokens of patch·patch pixels; model dim d, `heads` heads, MLP dim m):
 *      e = patch(x_p) + pos;  per block:  x += o(attn(q(a), k(a), v(a))), a = LN1(x)
 *                                         x += fc2(GELU(fc1(LN2(x))))
 *      logits = head(mean_T(LNf(x)))
 *      linears "patch", and per block "q", "k", "v", "o", "fc1", "fc2"
 *      (module paths patch_embed.proj, blocks.<i>.attn.{q,k,v,o}, blocks.<i>.mlp.{fc1,fc2})
 *
 * Parameters live in three kinds of block, each contiguous with a gradient
 * block of the same layout: the base (every linear's W and b, LayerNorms,
 * position embedding), the classification head, and one block per adapter.
 * Two modes decide what trains:
 *   RL_MODE_BASE   base + head (pretraining, and full fine-tuning)
 *   RL_MODE_ADAPT  the adapters on the target linears + the head (LoRA, VeRA,
 *                  RandLora: the base is frozen, as in PEFT; the head is a new
 *                  task's classifier, trained by every method alike)
 * rl_model_new allocates everything for up to max_batch inputs; forward and
 * backward allocate nothing. Backward must follow forward on the same batch.
 */
#ifndef RL_MODEL_H
#define RL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "../adapters/rl_layer.h"

typedef enum { RL_MODEL_MLP = 0, RL_MODEL_VIT = 1 } rl_model_kind;
typedef enum { RL_MODE_BASE = 0, RL_MODE_ADAPT = 1 } rl_model_mode;

typedef struct {
    rl_model_kind kind;
    int n_classes;
    int max_batch;
    /* MLP */
    int in_dim, hidden, depth;
    /* ViT */
    int image, patch, dim, heads, mlp_dim, blocks;
} rl_model_config;

typedef struct rl_model rl_model;

/* Build and initialise (nn.Linear-style uniform weights, zero biases,
 * LayerNorm γ = 1, β = 0, position embedding N(0, 0.02²)) from seed. */
rl_status rl_model_new(rl_model **out, const rl_model_config *cfg, uint64_t seed);
void rl_model_free(rl_model *m);

/* Input features per example (MLP in_dim; ViT image·image). */
int rl_model_input_dim(const rl_model *m);
int rl_model_n_classes(const rl_model *m);
int rl_model_max_batch(const rl_model *m);

/* Put adapters of `cfg` on the linears named in `targets` (comma list of
 * target names, or "all" for every linear but the head) and switch to
 * RL_MODE_ADAPT; RL_METHOD_FULL instead switches to RL_MODE_BASE with no
 * adapters. VeRA / RandLora bases are shared, sized for the largest target
 * (generated from key). Replaces any adapters already attached. Unknown
 * target names are RL_EINVAL naming them. */
rl_status rl_model_attach(rl_model *m, const rl_adapter_config *cfg, const char *targets,
                          rl_bases_kind kind, uint64_t key, rl_path path);
/* Does `targets` (a comma list of target names, or "all") name target `t`? */
bool rl_model_target_listed(const char *targets, const char *t);
/* Remove the adapters; back to RL_MODE_BASE. */
void rl_model_detach(rl_model *m);
rl_model_mode rl_model_get_mode(const rl_model *m);

/* Merge every adapter into its base weight (then detach): the model then
 * computes the same function without adapters. */
rl_status rl_model_merge_adapters(rl_model *m);

/* Re-initialise the head (new task) from seed, with n_classes outputs
 * (<= the configured n_classes: rows beyond are kept at zero and masked). */
void rl_model_reset_head(rl_model *m, uint64_t seed);

/* logits (B, n_classes) := model(x (B, input_dim)); caches activations. */
rl_status rl_model_forward(rl_model *m, const float *x, int B, float *logits);
/* Gradients of the trainable blocks from dlogits (B, n_classes). */
rl_status rl_model_backward(rl_model *m, const float *dlogits, int B);

void rl_model_zero_grad(rl_model *m);
/* The trainable spans of the current mode into spans[0..max); returns count. */
int rl_model_spans(rl_model *m, rl_span *spans, int max);
size_t rl_model_trainable_count(rl_model *m);
/* Parameters of the adapters alone (0 in RL_MODE_BASE). */
size_t rl_model_adapter_count(const rl_model *m);

/* Representations after each block (ViT: token-mean of each block's output,
 * B x dim; MLP: each hidden layer's output, B x hidden) from the last
 * forward, for similarity analysis. Returns the number of layers; *dim
 * gets the width. */
int rl_model_n_repr(const rl_model *m, int *dim);
/* Copy representation `layer` of the last forward into out (B x dim). */
void rl_model_repr(const rl_model *m, int layer, float *out);

/* Linears, by index: name (module path), target name, shape. */
int rl_model_n_linears(const rl_model *m);
const char *rl_model_linear_name(const rl_model *m, int i);
const char *rl_model_linear_target(const rl_model *m, int i);
rl_adapter *rl_model_linear_adapter(rl_model *m, int i); /* NULL if none */
/* The shared VeRA / RandLora bases of the attached adapters (one object per
 * model, sliced per layer); NULL without them. */
const rl_shared_bases *rl_model_shared_bases(const rl_model *m);
/* Linear i's own weight (d_out, d_in), row-major: frozen under adapters,
 * trained in RL_MODE_BASE. */
const float *rl_model_linear_weight(const rl_model *m, int i, int *d_out, int *d_in);

/* Base weights (all but the adapters, head included) as safetensors F32
 * keyed by module path (<path>.weight / .bias, blocks.<i>.ln1.weight, ...,
 * pos_embed, head.weight, head.bias). Load checks every key and shape. */
rl_status rl_model_save_base(const rl_model *m, const char *path);
rl_status rl_model_load_base(rl_model *m, const char *path);
/* The same without the head: a pretrained backbone under a new task's head
 * (any n_classes; the head keeps its values). */
rl_status rl_model_load_backbone(rl_model *m, const char *path);
/* Adapters with PEFT key names base_model.model.<path>.<param>, shared bases
 * as base_model.randlora_A/B or base_model.vera_A/B, the head as
 * base_model.model.head.weight/bias. */
rl_status rl_model_save_adapters(const rl_model *m, const char *path);
/* Load what rl_model_save_adapters wrote into the adapters attached now
 * (same method, r and targets): every key and shape is checked, and stored
 * shared bases must equal the ones this model generated from its key
 * (RL_EFORMAT naming the key otherwise). */
rl_status rl_model_load_adapters(rl_model *m, const char *path);

#endif
