/* rl_nn.c -- LayerNorm, GELU, cross-entropy, attention: forward and backward. */
#include "rl_nn.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "../core/rl_par.h"

/* ---- layernorm ---- */

void rl_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                          const float *beta, int n, int d)
{
    RL_PAR_FOR_W(n, d)
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
 *   dγ += Σ_rows dy ⊙ x̂,   dβ += Σ_rows dy
 * dx row by row; dγ, dβ column by column (each column sums its rows in
 * order), so that threads never share an output (rl_par.h). */
void rl_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *gamma, int n, int d,
                           int dx_accumulate)
{
    RL_PAR_FOR_W(n, d)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d, *dyi = dy + (size_t)i * d;
        float *dxi = dx + (size_t)i * d;
        double sg = 0, sgx = 0;
        for (int j = 0; j < d; j++) {
            float xh = (xi[j] - mean[i]) * rstd[i];
            float g = dyi[j] * gamma[j];
            sg += g;
            sgx += g * xh;
        }
        float mg = (float)(sg / d), mgx = (float)(sgx / d);
        for (int j = 0; j < d; j++) {
            float xh = (xi[j] - mean[i]) * rstd[i];
            float v = rstd[i] * (dyi[j] * gamma[j] - mg - xh * mgx);
            dxi[j] = dx_accumulate ? dxi[j] + v : v;
        }
    }
    if (!dgamma && !dbeta) return;
    RL_PAR_FOR_W(d, n)
    for (int j = 0; j < d; j++) {
        float sgam = dgamma ? dgamma[j] : 0.0f, sbet = dbeta ? dbeta[j] : 0.0f;
        for (int i = 0; i < n; i++) {
            const float dyij = dy[(size_t)i * d + j];
            sgam += dyij * ((x[(size_t)i * d + j] - mean[i]) * rstd[i]);
            sbet += dyij;
        }
        if (dgamma) dgamma[j] = sgam;
        if (dbeta) dbeta[j] = sbet;
    }
}

/* ---- gelu ---- */

void rl_gelu_forward(float *y, const float *x, size_t n)
{
    RL_PAR_FOR_W(n, 8)
    for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

/* gelu'(x) = Φ(x) + x φ(x) */
void rl_gelu_backward(float *dx, const float *dy, const float *x, size_t n)
{
    const float inv_sqrt_2pi = 0.3989422804014327f;
    RL_PAR_FOR_W(n, 8)
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

/* ---- attention ----
 *
 * One (sequence, head) pair per iteration of a loop on the loop threads
 * (rl_par.h); each pair writes only its own rows of o, P, dq, dk, dv and its
 * own T·T block of the scratch, so threads share no output. The products are
 * small (T·T·dh per head: 16·16·16 in the ViT of rl_model.h), written as
 * plain loops with float accumulators in a fixed order. */

/* out (T, dh) row stride d := alpha · op(A) · X, A (T, T), op(A) = A or Aᵀ,
 * X (T, dh) row stride d */
static void small_mm(float *out, float alpha, const float *A, bool trans, const float *X, int T, int dh, int d)
{
    for (int r = 0; r < T; r++) {
        float *o = out + (size_t)r * d;
        for (int e = 0; e < dh; e++) o[e] = 0.0f;
        for (int c = 0; c < T; c++) {
            const float a = alpha * (trans ? A[(size_t)c * T + r] : A[(size_t)r * T + c]), *x = X + (size_t)c * d;
            for (int e = 0; e < dh; e++) o[e] += a * x[e];
        }
    }
}

/* S (T, T) := alpha · X Yᵀ for X, Y (T, dh) row stride d */
static void small_abt(float *S, float alpha, const float *X, const float *Y, int T, int dh, int d)
{
    for (int r = 0; r < T; r++)
        for (int c = 0; c < T; c++) {
            const float *x = X + (size_t)r * d, *y = Y + (size_t)c * d;
            float acc = 0.0f;
            for (int e = 0; e < dh; e++) acc += x[e] * y[e];
            S[(size_t)r * T + c] = alpha * acc;
        }
}

void rl_attention_forward(float *o, float *P, const float *q, const float *k, const float *v, int B,
                          int T, int d, int h)
{
    const int dh = d / h;
    const float scale = 1.0f / sqrtf((float)dh);
    RL_PAR_FOR_W(B * h, (size_t)T * T * dh)
    for (int bj = 0; bj < B * h; bj++) {
        const int b = bj / h, j = bj % h;
        const size_t off = (size_t)b * T * d + (size_t)j * dh;
        float *Pb = P + (size_t)bj * T * T;
        small_abt(Pb, scale, q + off, k + off, T, dh, d); /* S = q kᵀ / √dh  (T, T) */
        for (int r = 0; r < T; r++) {
            float *row = Pb + (size_t)r * T, mx = row[0];
            for (int c = 1; c < T; c++) mx = row[c] > mx ? row[c] : mx;
            float s = 0;
            for (int c = 0; c < T; c++) s += row[c] = expf(row[c] - mx);
            for (int c = 0; c < T; c++) row[c] /= s;
        }
        small_mm(o + off, 1.0f, Pb, false, v + off, T, dh, d); /* o = P v  (T, dh) */
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
    RL_PAR_FOR_W(B * h, (size_t)T * T * dh)
    for (int bj = 0; bj < B * h; bj++) {
        const int b = bj / h, j = bj % h;
        const size_t off = (size_t)b * T * d + (size_t)j * dh;
        const float *Pb = P + (size_t)bj * T * T;
        float *dPb = dP + (size_t)bj * T * T;
        small_mm(dv + off, 1.0f, Pb, true, dout + off, T, dh, d);
        small_abt(dPb, 1.0f, dout + off, v + off, T, dh, d);
        for (int r = 0; r < T; r++) {
            float *dr = dPb + (size_t)r * T;
            const float *pr = Pb + (size_t)r * T;
            float s = 0;
            for (int c = 0; c < T; c++) s += dr[c] * pr[c];
            for (int c = 0; c < T; c++) dr[c] = pr[c] * (dr[c] - s);
        }
        small_mm(dq + off, scale, dPb, false, k + off, T, dh, d);
        small_mm(dk + off, scale, dPb, true, q + off, T, dh, d);
    }
}
