/* rl_cka.c -- linear CKA. */
#include "rl_cka.h"

#include <math.h>
#include <string.h>

#include "../core/rl_blas.h"

/* ||Aᵀ B||_F² for A (n, a), B (n, b): one GEMM into g (a, b), squares
 * summed in double. The float32 GEMM sums n products per entry (relative
 * error ~ n·eps ~ 1e-4 for n = 2000), far below the differences CKA is
 * used to show. */
static double gram_fro2(const float *A, int a, const float *B, int b, int n, float *g)
{
    rl_gemm(RL_TRANS, RL_NOTRANS, a, b, n, 1.0f, A, a, B, b, 0.0f, g, b);
    double s = 0;
    for (size_t i = 0; i < (size_t)a * b; i++) s += (double)g[i] * g[i];
    return s;
}

static void centre(float *dst, const float *src, int n, int p)
{
    memcpy(dst, src, (size_t)n * p * sizeof(float));
    for (int j = 0; j < p; j++) {
        double m = 0;
        for (int k = 0; k < n; k++) m += dst[(size_t)k * p + j];
        m /= n;
        for (int k = 0; k < n; k++) dst[(size_t)k * p + j] -= (float)m;
    }
}

rl_status rl_cka_linear(const float *X, int p, const float *Y, int q, int n, float *work, double *cka)
{
    if (n < 2 || p < 1 || q < 1) return rl_fail(RL_EINVAL, "cka: need n >= 2 examples and widths >= 1 (n=%d p=%d q=%d)", n, p, q);
    float *Xc = work, *Yc = work + (size_t)n * p, *g = Yc + (size_t)n * q;
    centre(Xc, X, n, p);
    centre(Yc, Y, n, q);
    double xy = gram_fro2(Yc, q, Xc, p, n, g), xx = gram_fro2(Xc, p, Xc, p, n, g), yy = gram_fro2(Yc, q, Yc, q, n, g);
    if (!(xx > 0) || !(yy > 0)) return rl_fail(RL_EINVAL, "cka: a representation is constant over the examples");
    *cka = xy / (sqrt(xx) * sqrt(yy));
    return RL_OK;
}
