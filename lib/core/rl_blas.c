/* rl_blas.c -- cblas wrappers (the only file that includes cblas.h). */
#include "rl_blas.h"

#include <cblas.h>

#include "rl_err.h"

void rl_gemm(rl_trans ta, rl_trans tb, int m, int n, int k,
             float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc)
{
    RL_ASSERT(m >= 0 && n >= 0 && k >= 0, "gemm: m=%d n=%d k=%d", m, n, k);
    if (m == 0 || n == 0) return;
    if (k == 0) {
        /* cblas would scale C by beta; do the same without reading A/B */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, ta == RL_TRANS ? CblasTrans : CblasNoTrans,
                tb == RL_TRANS ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

void rl_gemm_ref(rl_trans ta, rl_trans tb, int m, int n, int k,
                 float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0.0;
            for (int p = 0; p < k; p++) {
                float a = ta == RL_TRANS ? A[(long)p * lda + i] : A[(long)i * lda + p];
                float b = tb == RL_TRANS ? B[(long)j * ldb + p] : B[(long)p * ldb + j];
                acc += (double)a * (double)b;
            }
            float *c = &C[(long)i * ldc + j];
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}

void rl_blas_set_threads(int n)
{
    if (n >= 1) openblas_set_num_threads(n);
}

int rl_blas_threads(void) { return openblas_get_num_threads(); }
const char *rl_blas_corename(void) { return openblas_get_corename(); }
const char *rl_blas_config(void) { return openblas_get_config(); }
