/* rl_optim.h -- optimisers over flat (parameter, gradient) spans.
 *
 * AdamW as torch.optim.AdamW (decoupled weight decay, bias correction):
 *   p  -= lr · wd · p
 *   m   = β1 m + (1 - β1) g          v = β2 v + (1 - β2) g²
 *   p  -= lr · (m / (1 - β1^t)) / (sqrt(v / (1 - β2^t)) + eps)
 * SGD with optional momentum: b = μ b + g;  p -= lr · b.
 * State (m, v / b) is allocated once by *_new; step allocates nothing.
 */
#ifndef RL_OPTIM_H
#define RL_OPTIM_H

#include <stddef.h>

#include "../adapters/rl_adapter.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    long t;
    size_t n;
    float *m, *v;
} rl_adamw;

/* torch defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0.01. */
rl_status rl_adamw_new(rl_adamw **out, size_t n, float lr, float weight_decay);
void rl_adamw_free(rl_adamw *o);
/* One update of s.p from s.g (s.n must equal the size given to new). */
void rl_adamw_step(rl_adamw *o, rl_span s);

typedef struct {
    float lr, momentum;
    size_t n;
    float *buf;
} rl_sgd;

rl_status rl_sgd_new(rl_sgd **out, size_t n, float lr, float momentum);
void rl_sgd_free(rl_sgd *o);
void rl_sgd_step(rl_sgd *o, rl_span s);

#endif
