/* rl_nn.c -- LayerNorm, GELU, cross-entropy, attention: forward and backward. */
#include "rl_nn.h"

#include <math.h>
#include <string.h>

#include "../core/rl_blas.h"

/* ---- layernorm ---- */

void rl_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                          const float *beta, int n, int d)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        double m = 0, v = 0;
        for (int j = 0; j < d; j++) m += xi[j];
        m /= d;
        for (int j = 0; j < d; j++) v += (xi[j] - m) * (xi[j] - m);
        v /= d;
        float rs = (float)(1.0 / sqrt(v + RL_LN_EPS));
        mean[i] = (float)m;
        rstd[i] = rs;
        float *yi = y + (size_t)i * d;
        for (int j = 0; j < d; j++) yi[j] = (xi[j] - (float)m) * rs * gamma[j] + beta[j];
    }
}

/* With x̂ = (x - mean)·rstd and g = dy ⊙ γ:
 *   dx = rstd · (g - mean(g) - x̂ · mean(g ⊙ x̂))
 *   dγ += Σ_rows dy ⊙ x̂,   dβ += Σ_rows dy                                  */
void rl_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *gamma, int n, int d,
                           int dx_accumulate)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d, *dyi = dy + (size_t)i * d;
        float *dxi = dx + (size_t)i * d;
        double sg = 0, sgx = 0;
        for (int j = 0; j < d; j++) {
            float xh = (xi[j] - mean[i]) * rstd[i];
            float g = dyi[j] * gamma[j];
            sg += g;
            sgx += g * xh;
            if (dgamma) dgamma[j] += dyi[j] * xh;
            if (dbeta) dbeta[j] += dyi[j];
        }
        float mg = (float)(sg / d), mgx = (float)(sgx / d);
        for (int j = 0; j < d; j++) {
            float xh = (xi[j] - mean[i]) * rstd[i];
            float v = rstd[i] * (dyi[j] * gamma[j] - mg - xh * mgx);
            dxi[j] = dx_accumulate ? dxi[j] + v : v;
        }
    }
}

/* ---- gelu ---- */

void rl_gelu_forward(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

/* gelu'(x) = Φ(x) + x φ(x) */
void rl_gelu_backward(float *dx, const float *dy, const float *x, size_t n)
{
    const float inv_sqrt_2pi = 0.3989422804014327f;
    for (size_t i = 0; i < n; i++) {
        float cdf = 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f));
        float pdf = inv_sqrt_2pi * expf(-0.5f * x[i] * x[i]);
        dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
}

/* ---- losses ---- */

double rl_xent_forward_backward(float *dz, const float *z, const int *y, int n, int c, int *correct)
{
    double loss = 0;
    int hits = 0;
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * c;
        int am = 0;
        float mx = zi[0];
        for (int j = 1; j < c; j++)
            if (zi[j] > mx) {
                mx = zi[j];
                am = j;
            }
        hits += am == y[i];
        double s = 0;
        for (int j = 0; j < c; j++) s += exp((double)zi[j] - mx);
        double lse = mx + log(s);
        loss += lse - zi[y[i]];
        if (dz) {
            float *dzi = dz + (size_t)i * c;
            for (int j = 0; j < c; j++)
                dzi[j] = (float)((exp((double)zi[j] - lse) - (j == y[i])) / n);
        }
    }
    if (correct) *correct = hits;
    return loss / n;
}

double rl_mse_forward_backward(float *dz, const float *z, const float *t, int n, int c)
{
    double loss = 0;
    for (size_t i = 0; i < (size_t)n * c; i++) {
        double e = (double)z[i] - t[i];
        loss += 0.5 * e * e;
        if (dz) dz[i] = (float)(e / n);
    }
    return loss / n;
}

/* ---- attention ---- */

void rl_attention_forward(float *o, float *P, const float *q, const float *k, const float *v, int B,
                          int T, int d, int h)
{
    const int dh = d / h;
    const float scale = 1.0f / sqrtf((float)dh);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < h; j++) {
            const size_t off = (size_t)b * T * d + (size_t)j * dh;
            float *Pb = P + ((size_t)b * h + j) * T * T;
            /* S = q kᵀ / √dh  (T, T) */
            rl_gemm(RL_NOTRANS, RL_TRANS, T, T, dh, scale, q + off, d, k + off, d, 0.0f, Pb, T);
            for (int r = 0; r < T; r++) {
                float *row = Pb + (size_t)r * T, mx = row[0];
                for (int c = 1; c < T; c++) mx = row[c] > mx ? row[c] : mx;
                float s = 0;
                for (int c = 0; c < T; c++) s += row[c] = expf(row[c] - mx);
                for (int c = 0; c < T; c++) row[c] /= s;
            }
            /* o = P v  (T, dh) */
            rl_gemm(RL_NOTRANS, RL_NOTRANS, T, dh, T, 1.0f, Pb, T, v + off, d, 0.0f, o + off, d);
        }
}

/* dv = Pᵀ do;  dP = do vᵀ;  dS = P ⊙ (dP - rowsum(dP ⊙ P));
 * dq = dS k / √dh;  dk = dSᵀ q / √dh                                        */
void rl_attention_backward(float *dq, float *dk, float *dv, float *dP, const float *dout,
                           const float *P, const float *q, const float *k, const float *v, int B, int T,
                           int d, int h)
{
    const int dh = d / h;
    const float scale = 1.0f / sqrtf((float)dh);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < h; j++) {
            const size_t off = (size_t)b * T * d + (size_t)j * dh;
            const float *Pb = P + ((size_t)b * h + j) * T * T;
            rl_gemm(RL_TRANS, RL_NOTRANS, T, dh, T, 1.0f, Pb, T, dout + off, d, 0.0f, dv + off, d);
            rl_gemm(RL_NOTRANS, RL_TRANS, T, T, dh, 1.0f, dout + off, d, v + off, d, 0.0f, dP, T);
            for (int r = 0; r < T; r++) {
                float *dr = dP + (size_t)r * T;
                const float *pr = Pb + (size_t)r * T;
                float s = 0;
                for (int c = 0; c < T; c++) s += dr[c] * pr[c];
                for (int c = 0; c < T; c++) dr[c] = pr[c] * (dr[c] - s);
            }
            rl_gemm(RL_NOTRANS, RL_NOTRANS, T, dh, T, scale, dP, T, k + off, d, 0.0f, dq + off, d);
            rl_gemm(RL_TRANS, RL_NOTRANS, T, dh, T, scale, dP, T, q + off, d, 0.0f, dk + off, d);
        }
}
