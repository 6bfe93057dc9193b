/* rl_cka.h -- linear centred kernel alignment (Kornblith et al. 2019, eq. 5):
 *
 *   CKA(X, Y) = ||Yᵀ X||_F² / (||Xᵀ X||_F · ||Yᵀ Y||_F)
 *
 * for X (n, p) and Y (n, q) whose columns are first centred (mean over the n
 * examples removed). 1 for representations equal up to an orthogonal
 * transform and isotropic scaling, 0 for orthogonal ones. The Gram
 * products are float32 GEMMs, their squares summed in double.
 * `work` must hold n·(p + q) + max(p, q)² floats (the centred copies and one
 * Gram matrix); nothing is allocated. RL_EINVAL for n < 2 or a constant representation. */
#ifndef RL_CKA_H
#define RL_CKA_H

#include "../core/rl_err.h"

rl_status rl_cka_linear(const float *X, int p, const float *Y, int q, int n, float *work, double *cka);

#endif
