/* truth64.c -- the float64 reference of one adapted layer: PEFT's formulas
 * written out as plain loops in double (fixture.h, truth64_layer). It
 * produces the truth.* tensors of `randlora fixture` and is checked against
 * the truth.* of every PEFT-made reference file (fixture_check_truth). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

/* RandLora: UA[c,q] and UB[p,c] of PEFT's flattened factors (fixture.h). */
typedef struct {
    const float *A, *B, *lam, *gam;
    int r, nb, mn, mx, MN, NB; /* MN, NB: the shared tensors' min_dim and n_bases */
} factors;

static inline double ua(const factors *f, int c, int q)
{
    int i = c / f->nb, j = c % f->nb;
    return (double)f->lam[i * f->nb + j] * (double)f->A[(size_t)i * f->MN + q] * (double)f->gam[(size_t)j * f->mn + q];
}

static inline double ub(const factors *f, int p, int c)
{
    return (double)f->B[((size_t)p * f->NB + c / f->r) * f->r + c % f->r];
}

/* y += s·adapter(x) and dx, dλ, dΓ for L = Σ y ⊙ dy (fixture.h). */
static rl_status truth_randlora(const rl_adapter_config *cfg, const rl_shared_bases *sb, int d_out, int d_in, int T,
                                const float *params, const float *x, const float *dy, double *y, double *dx,
                                double *dp)
{
    factors f = {.A = sb->A, .B = sb->B, .r = cfg->r, .mn = d_in < d_out ? d_in : d_out,
                    .mx = d_in < d_out ? d_out : d_in, .MN = sb->min_dim, .NB = sb->n_bases};
    f.nb = rl_randlora_n_bases(f.mn, f.r);
    f.lam = params;
    f.gam = params + (size_t)f.r * f.nb;
    const int K = f.r * f.nb;
    const double s = cfg->alpha / cfg->r;
    const bool in_small = d_in <= d_out; /* UA acts on x, UB makes y */
    double *h = calloc((size_t)T * K, sizeof *h), *g = calloc((size_t)T * K, sizeof *g);
    if (!h || !g) {
        free(h);
        free(g);
        return rl_fail(RL_ENOMEM, "truth64: no memory for %d x %d", T, K);
    }
    double *dlam = dp, *dgam = dp + (size_t)f.r * f.nb;
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * d_in, *dyt = dy + (size_t)t * d_out;
        for (int c = 0; c < K; c++) {
            double hv = 0, gv = 0;
            if (in_small) { /* h = x UAᵀ, g = s dy UB */
                for (int q = 0; q < d_in; q++) hv += ua(&f, c, q) * xt[q];
                for (int o = 0; o < d_out; o++) gv += dyt[o] * ub(&f, o, c);
            } else { /* h = x UB, g = s dy UAᵀ */
                for (int p = 0; p < d_in; p++) hv += xt[p] * ub(&f, p, c);
                for (int o = 0; o < d_out; o++) gv += dyt[o] * ua(&f, c, o);
            }
            h[(size_t)t * K + c] = hv;
            g[(size_t)t * K + c] = s * gv;
        }
        for (int c = 0; c < K; c++) {
            double hv = h[(size_t)t * K + c], gv = g[(size_t)t * K + c];
            if (in_small) {
                for (int o = 0; o < d_out; o++) y[(size_t)t * d_out + o] += s * hv * ub(&f, o, c);
                for (int q = 0; q < d_in; q++) dx[(size_t)t * d_in + q] += gv * ua(&f, c, q);
            } else {
                for (int o = 0; o < d_out; o++) y[(size_t)t * d_out + o] += s * hv * ua(&f, c, o);
                for (int p = 0; p < d_in; p++) dx[(size_t)t * d_in + p] += gv * ub(&f, p, c);
            }
        }
    }
    /* dUA[c,q] = Σ_t g[t,c] x[t,q] (in_small) or s Σ_t h[t,c] dy[t,q]; then
     * dλ[i,j] = Σ_q dUA[c,q] A[i,q] Γ[j,q], dΓ[j,q] = Σ_i dUA[c,q] λ[i,j] A[i,q], c = i·nb + j */
    for (int c = 0; c < K; c++) {
        int i = c / f.nb, j = c % f.nb;
        for (int q = 0; q < f.mn; q++) {
            double d = 0;
            for (int t = 0; t < T; t++)
                d += in_small ? g[(size_t)t * K + c] * x[(size_t)t * d_in + q] : s * h[(size_t)t * K + c] * dy[(size_t)t * d_out + q];
            double a = f.A[(size_t)i * f.MN + q];
            dlam[i * f.nb + j] += d * a * f.gam[(size_t)j * f.mn + q];
            dgam[(size_t)j * f.mn + q] += d * f.lam[i * f.nb + j] * a;
        }
    }
    free(h);
    free(g);
    return RL_OK;
}

static rl_status truth_lora(const rl_adapter_config *cfg, int d_out, int d_in, int T, const float *params,
                            const float *x, const float *dy, double *y, double *dx, double *dp)
{
    const int r = cfg->r;
    const double s = cfg->use_rslora ? cfg->alpha / sqrt((double)r) : cfg->alpha / r;
    const float *A = params, *B = params + (size_t)r * d_in;
    double *dA = dp, *dB = dp + (size_t)r * d_in;
    double *h = calloc((size_t)r, sizeof *h), *u = calloc((size_t)r, sizeof *u);
    if (!h || !u) {
        free(h);
        free(u);
        return rl_fail(RL_ENOMEM, "truth64: no memory");
    }
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * d_in, *dyt = dy + (size_t)t * d_out;
        for (int k = 0; k < r; k++) { /* h = x Aᵀ, u = s dy B */
            h[k] = u[k] = 0;
            for (int q = 0; q < d_in; q++) h[k] += (double)A[(size_t)k * d_in + q] * xt[q];
            for (int o = 0; o < d_out; o++) u[k] += s * dyt[o] * (double)B[(size_t)o * r + k];
        }
        for (int o = 0; o < d_out; o++)
            for (int k = 0; k < r; k++) {
                y[(size_t)t * d_out + o] += s * h[k] * B[(size_t)o * r + k];
                dB[(size_t)o * r + k] += s * dyt[o] * h[k];
            }
        for (int k = 0; k < r; k++)
            for (int q = 0; q < d_in; q++) {
                dA[(size_t)k * d_in + q] += u[k] * xt[q];
                dx[(size_t)t * d_in + q] += u[k] * A[(size_t)k * d_in + q];
            }
    }
    free(h);
    free(u);
    return RL_OK;
}

static rl_status truth_vera(const rl_adapter_config *cfg, const rl_shared_bases *sb, int d_out, int d_in, int T,
                            const float *params, const float *x, const float *dy, double *y, double *dx, double *dp)
{
    const int r = cfg->r, I = sb->max_in;
    const float *lb = params, *ld = params + d_out, *A = sb->A, *B = sb->B; /* A (r, I), B (O, r) */
    double *dlb = dp, *dld = dp + d_out;
    double *h = calloc((size_t)r, sizeof *h), *u = calloc((size_t)d_out, sizeof *u), *dh = calloc((size_t)r, sizeof *dh);
    if (!h || !u || !dh) {
        free(h);
        free(u);
        free(dh);
        return rl_fail(RL_ENOMEM, "truth64: no memory");
    }
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * d_in, *dyt = dy + (size_t)t * d_out;
        for (int k = 0; k < r; k++) { /* h = x A_sᵀ */
            h[k] = 0;
            for (int q = 0; q < d_in; q++) h[k] += (double)A[(size_t)k * I + q] * xt[q];
        }
        for (int o = 0; o < d_out; o++) { /* u = (λ_d ⊙ h) B_sᵀ; y += λ_b ⊙ u */
            u[o] = 0;
            for (int k = 0; k < r; k++) u[o] += (double)ld[k] * h[k] * B[(size_t)o * r + k];
            y[(size_t)t * d_out + o] += (double)lb[o] * u[o];
            dlb[o] += dyt[o] * u[o];
        }
        for (int k = 0; k < r; k++) { /* dh2 = (dy ⊙ λ_b) B_s; dλ_d += dh2 ⊙ h; dx += (dh2 ⊙ λ_d) A_s */
            double d = 0;
            for (int o = 0; o < d_out; o++) d += (double)dyt[o] * lb[o] * B[(size_t)o * r + k];
            dld[k] += d * h[k];
            dh[k] = d * ld[k];
        }
        for (int k = 0; k < r; k++)
            for (int q = 0; q < d_in; q++) dx[(size_t)t * d_in + q] += dh[k] * A[(size_t)k * I + q];
    }
    free(h);
    free(u);
    free(dh);
    return RL_OK;
}

rl_status truth64_layer(const rl_adapter_config *cfg, const rl_shared_bases *bases, int d_out, int d_in, int T,
                        const float *W, const float *bias, const float *params, const float *x, const float *dy,
                        double *y, double *dx, double *dparams)
{
    if (cfg->pairing != RL_PAIRING_PEFT) return rl_fail(RL_EINVAL, "truth64: only PEFT's pairing");
    else if ((cfg->method == RL_METHOD_RANDLORA || cfg->method == RL_METHOD_VERA) && !bases)
        return rl_fail(RL_EINVAL, "truth64: %s needs the shared bases", rl_method_name(cfg->method));
    else if (cfg->method == RL_METHOD_FULL)
        return rl_fail(RL_EINVAL, "truth64: full fine-tuning has no adapter");
    /* base layer: y = x Wᵀ + b, dx = dy W */
    for (int t = 0; t < T; t++) {
        for (int o = 0; o < d_out; o++) {
            double v = bias[o];
            for (int q = 0; q < d_in; q++) v += (double)x[(size_t)t * d_in + q] * W[(size_t)o * d_in + q];
            y[(size_t)t * d_out + o] = v;
        }
        for (int q = 0; q < d_in; q++) {
            double v = 0;
            for (int o = 0; o < d_out; o++) v += (double)dy[(size_t)t * d_out + o] * W[(size_t)o * d_in + q];
            dx[(size_t)t * d_in + q] = v;
        }
    }
    size_t np = rl_param_count_formula(cfg->method, cfg->r, d_out, d_in);
    memset(dparams, 0, np * sizeof *dparams);
    switch (cfg->method) {
    case RL_METHOD_RANDLORA: return truth_randlora(cfg, bases, d_out, d_in, T, params, x, dy, y, dx, dparams);
    case RL_METHOD_LORA: return truth_lora(cfg, d_out, d_in, T, params, x, dy, y, dx, dparams);
    case RL_METHOD_VERA: return truth_vera(cfg, bases, d_out, d_in, T, params, x, dy, y, dx, dparams);
    default: return RL_OK;
    }
}

