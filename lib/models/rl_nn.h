/* rl_nn.h -- neural-network blocks as explicit forward / backward pairs.
 *
 * Conventions (llm.c style): outputs first, then caches, then inputs, then
 * parameters, then sizes. Backward *accumulates* into parameter gradients
 * (the caller zeroes them) and *overwrites* dx unless said otherwise.
 * Nothing here allocates.
 *
 *   layernorm   y = (x - mean) · rstd · γ + β  over the last dim d,
 *               rstd = 1 / sqrt(var + eps), var biased (torch.nn.LayerNorm)
 *   gelu        y = x · Φ(x) = 0.5 x (1 + erf(x / √2))   (torch.nn.GELU())
 *   softmax cross-entropy over classes, mean over rows:
 *               L = -1/n Σ_i log softmax(z_i)[y_i],  dz = (softmax(z) - onehot) / n
 *   attention   per sequence and head: S = q kᵀ / √dh, P = softmax(S), o = P v
 */
#ifndef RL_NN_H
#define RL_NN_H

#include <stddef.h>

#define RL_LN_EPS 1e-5f

void rl_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                          const float *beta, int n, int d);
/* dx (overwrite when dx_accumulate == 0, else +=), dgamma/dbeta += (may be NULL). */
void rl_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *gamma, int n, int d,
                           int dx_accumulate);

void rl_gelu_forward(float *y, const float *x, size_t n);
/* dx = dy · gelu'(x) (overwrite); dx may alias dy. */
void rl_gelu_backward(float *dx, const float *dy, const float *x, size_t n);

/* Mean cross-entropy of logits z (n, c) against labels y; dz (may be NULL)
 * gets its gradient (overwrite). Returns the loss; *correct (may be NULL)
 * counts argmax hits. */
double rl_xent_forward_backward(float *dz, const float *z, const int *y, int n, int c, int *correct);

/* Mean squared error 0.5/n Σ ||z_i - t_i||²; dz (may be NULL) = (z - t)/n. */
double rl_mse_forward_backward(float *dz, const float *z, const float *t, int n, int c);

/* Multi-head self-attention core for B sequences of T tokens, model dim d,
 * h heads (d = h · dh). q, k, v, o are (B·T, d) with head j in columns
 * [j·dh, (j+1)·dh). P caches the attention probabilities (B, h, T, T).
 * The (sequence, head) pairs run on the loop threads (rl_par.h). */
void rl_attention_forward(float *o, float *P, const float *q, const float *k, const float *v, int B,
                          int T, int d, int h);
/* dq, dk, dv (B·T, d) overwrite; dP_scratch needs B·h·T·T floats (one
 * T·T block per pair, as P). */
void rl_attention_backward(float *dq, float *dk, float *dv, float *dP_scratch, const float *dout,
                           const float *P, const float *q, const float *k, const float *v, int B, int T,
                           int d, int h);

#endif
