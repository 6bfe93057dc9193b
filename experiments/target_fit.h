/* target_fit.h -- what `sweep expressivity` (fitting a required update ΔW*
 * directly, x = I) and `sweep teacher` (learning it through data, as
 * fine-tuning does) share: one adapter of a method on a (d_out, d_in) layer
 * with the project's conventions (LoRA alpha = 2r, RandLora alpha = 20r,
 * VeRA none; bases key and init from pr_seeds_of), and the references its
 * error is read against. */
#ifndef RL_TARGET_FIT_H
#define RL_TARGET_FIT_H

#include "adapters/rl_adapter.h"
#include "adapters/rl_bases.h"

typedef struct {
    rl_shared_bases *bases; /* VeRA / RandLora; NULL otherwise */
    rl_adapter *a;
} tf_adapter;

/* A fresh adapter of `method` (rank r, RandLora bases `kind`) for seed s,
 * with workspace for max_tokens rows. */
rl_status tf_adapter_new(tf_adapter *t, rl_method method, rl_bases_kind kind, int r, int d_out, int d_in, int seed,
                         int max_tokens);
void tf_adapter_free(tf_adapter *t);

/* Eckart-Young: the smallest ||ΔW - ΔW*||_F / ||ΔW*||_F any rank-r ΔW can
 * reach, from ΔW*'s singular values s[0..k): sqrt(Σ_{i>=r} s_i²) / ||s||. */
double tf_eckart_young(const double *s, int k, int r);

/* ||a - b||_F / ||b||_F over n entries (accumulated in double). */
double tf_rel_error(const float *a, const float *b, size_t n);

#endif
