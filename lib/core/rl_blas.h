/* rl_blas.h -- the only gateway to cblas (OpenBLAS).
 *
 * rl_gemm computes, for row-major matrices,
 *     C (m, n) = alpha · op(A) · op(B) + beta · C
 * with op(X) = X or Xᵀ as named by ta / tb. op(A) is (m, k), op(B) is (k, n).
 * lda / ldb / ldc are row strides (elements), so a column slice of a wider
 * matrix is a view with a larger leading dimension. beta = 0 overwrites C
 * (NaN in C is not propagated); beta = 1 accumulates.
 *
 * rl_gemm_ref is the naive triple loop with a double accumulator, kept for
 * tests (llm.c's naive-vs-fast pair).
 */
#ifndef RL_BLAS_H
#define RL_BLAS_H

#include <stdbool.h>

typedef enum { RL_NOTRANS = 0, RL_TRANS = 1 } rl_trans;

void rl_gemm(rl_trans ta, rl_trans tb, int m, int n, int k,
             float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);

void rl_gemm_ref(rl_trans ta, rl_trans tb, int m, int n, int k,
                 float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

/* OpenBLAS threads: set (n >= 1) / get, and the core name in use ("Zen"). */
void rl_blas_set_threads(int n);
int rl_blas_threads(void);
const char *rl_blas_corename(void);
const char *rl_blas_config(void);

#endif
