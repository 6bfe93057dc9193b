/* rl_cka.c -- linear CKA. */
#include "rl_cka.h"

#include <math.h>
#include <string.h>

/* Frobenius norm squared of Aᵀ B for A (n, a), B (n, b), in double. */
static double gram_fro2(const float *A, int a, const float *B, int b, int n)
{
    double s = 0;
    for (int i = 0; i < a; i++)
        for (int j = 0; j < b; j++) {
            double d = 0;
            for (int k = 0; k < n; k++) d += (double)A[(size_t)k * a + i] * B[(size_t)k * b + j];
            s += d * d;
        }
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
    float *Xc = work, *Yc = work + (size_t)n * p;
    centre(Xc, X, n, p);
    centre(Yc, Y, n, q);
    double xy = gram_fro2(Yc, q, Xc, p, n), xx = gram_fro2(Xc, p, Xc, p, n), yy = gram_fro2(Yc, q, Yc, q, n);
    if (!(xx > 0) || !(yy > 0)) return rl_fail(RL_EINVAL, "cka: a representation is constant over the examples");
    *cka = xy / (sqrt(xx) * sqrt(yy));
    return RL_OK;
}
