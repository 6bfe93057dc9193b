/* rl_teacher.c -- a synthetic linear teacher with a chosen update spectrum.
 *
 *   y = x (W0 + ΔW*)ᵀ,   ΔW* = U diag(s) Vᵀ,   x ~ N(0, I_{d_in})
 *
 * W0 (d_out, d_in) plays the pretrained weight: an experiment fits W0 first
 * (or copies it) and then adapts toward W* = W0 + ΔW*, whose update has
 * exactly the singular values s -- flat (full rank, the case where a
 * low-rank adapter must fall short), decaying, or rank k (where LoRA with
 * r >= k can be exact). The classification variant labels each x by the
 * argmax of its teacher logits, so the same code can report accuracy.
 *
 * U and V come from Gaussian draws orthonormalised by modified Gram-Schmidt
 * in double, each column projected against the earlier ones twice
 * (Giraud et al. 2005, "twice is enough"), which leaves UᵀU = I to about
 * 1e-15. No LAPACK: only lib/analysis may call it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rl_blas.h"
#include "core/rl_tensor.h"
#include "rl_data.h"

/* ---- orthonormal columns ---- */

/* q (m, r) row-major with orthonormal columns, r <= m, from Gaussian draws
 * taken in row-major order. col is (r, m) scratch (column j contiguous). */
static void orthonormal_columns(rl_mt *g, double *q, int m, int r, double *col)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < r; j++) col[(size_t)j * m + i] = (double)rl_mt_normal(g);

    for (int j = 0; j < r; j++) {
        double *c = col + (size_t)j * m;
        for (;;) {
            double norm0 = 0;
            for (int i = 0; i < m; i++) norm0 += c[i] * c[i];
            norm0 = sqrt(norm0);
            for (int pass = 0; pass < 2; pass++) {
                for (int k = 0; k < j; k++) {
                    const double *qk = col + (size_t)k * m;
                    double dot = 0;
                    for (int i = 0; i < m; i++) dot += qk[i] * c[i];
                    for (int i = 0; i < m; i++) c[i] -= dot * qk[i];
                }
            }
            double norm = 0;
            for (int i = 0; i < m; i++) norm += c[i] * c[i];
            norm = sqrt(norm);
            /* A Gaussian column lies in the span of the others with
             * probability 0; should float draws still nearly do so, draw
             * that column again (deterministically, from the same stream). */
            if (norm > 1e-6 * norm0 && norm > 0) {
                for (int i = 0; i < m; i++) c[i] /= norm;
                break;
            }
            for (int i = 0; i < m; i++) c[i] = (double)rl_mt_normal(g);
        }
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < r; j++) q[(size_t)i * r + j] = col[(size_t)j * m + i];
}

/* ---- spectrum ---- */

static rl_status check_opts(const rl_teacher_opts *o)
{
    int r = o ? (o->d_in < o->d_out ? o->d_in : o->d_out) : 0;
    if (!o) return rl_fail(RL_EINVAL, "teacher: NULL options");
    else if (o->d_in < 1 || o->d_out < 1)
        return rl_fail(RL_EINVAL, "teacher: bad shape d_out=%d d_in=%d", o->d_out, o->d_in);
    else if ((size_t)o->d_in * (size_t)o->d_out > ((size_t)1 << 30))
        return rl_fail(RL_EINVAL, "teacher: %d x %d weight is too large", o->d_out, o->d_in);
    else if (!isfinite(o->scale) || o->scale < 0)
        return rl_fail(RL_EINVAL, "teacher: scale = %g must be finite and >= 0", o->scale);
    else if (!isfinite(o->w0_std) || o->w0_std < 0)
        return rl_fail(RL_EINVAL, "teacher: w0_std = %g must be finite and >= 0", o->w0_std);
    switch (o->spectrum) {
    case RL_SPEC_FLAT: return RL_OK;
    case RL_SPEC_POWER:
        if (!isfinite(o->alpha) || o->alpha <= 0)
            return rl_fail(RL_EINVAL, "teacher: power spectrum needs alpha > 0, got %g", o->alpha);
        return RL_OK;
    case RL_SPEC_GEOMETRIC:
        if (!(o->alpha > 0 && o->alpha <= 1))
            return rl_fail(RL_EINVAL, "teacher: geometric spectrum needs 0 < alpha <= 1, got %g",
                           o->alpha);
        return RL_OK;
    case RL_SPEC_RANK_K:
        if (o->rank_k < 1 || o->rank_k > r)
            return rl_fail(RL_EINVAL, "teacher: rank_k = %d outside 1..%d (min(d_in, d_out))",
                           o->rank_k, r);
        return RL_OK;
    case RL_SPEC_SPIKED:
        if (o->rank_k < 1 || o->rank_k > r || !isfinite(o->alpha) || o->alpha < 1)
            return rl_fail(RL_EINVAL, "teacher: spiked spectrum needs rank_k in 1..%d and alpha >= 1, got %d and %g",
                           r, o->rank_k, o->alpha);
        return RL_OK;
    }
    return rl_fail(RL_EINVAL, "teacher: unknown spectrum %d", (int)o->spectrum);
}

static void fill_spectrum(double *s, int r, const rl_teacher_opts *o)
{
    double scale = o->scale > 0 ? o->scale : 1.0;
    for (int k = 0; k < r; k++) {
        double v = 1.0;
        switch (o->spectrum) {
        case RL_SPEC_FLAT: v = 1.0; break;
        case RL_SPEC_POWER: v = pow((double)(k + 1), -o->alpha); break;
        case RL_SPEC_GEOMETRIC: v = pow(o->alpha, (double)k); break;
        case RL_SPEC_RANK_K: v = k < o->rank_k ? 1.0 : 0.0; break;
        case RL_SPEC_SPIKED: v = k < o->rank_k ? o->alpha : 1.0; break;
        }
        s[k] = scale * v;
    }
}

/* ---- teacher ---- */

void rl_teacher_free(rl_teacher *t)
{
    if (!t) return;
    rl_dealloc(t->w0);
    rl_dealloc(t->dw);
    rl_dealloc(t->u);
    rl_dealloc(t->v);
    rl_dealloc(t->s);
    memset(t, 0, sizeof *t);
}

rl_status rl_teacher_new(rl_teacher *t, const rl_teacher_opts *o)
{
    RL_ASSERT(t != NULL, "rl_teacher_new: NULL teacher");
    memset(t, 0, sizeof *t);
    RL_TRY(check_opts(o));

    const int d_in = o->d_in, d_out = o->d_out, r = d_in < d_out ? d_in : d_out;
    const size_t nw = (size_t)d_out * (size_t)d_in;
    const int m_max = d_in > d_out ? d_in : d_out;
    t->w0 = rl_alloc_floats(nw);
    t->dw = rl_alloc_floats(nw);
    t->u = rl_alloc((size_t)d_out * (size_t)r * sizeof(double));
    t->v = rl_alloc((size_t)d_in * (size_t)r * sizeof(double));
    t->s = rl_alloc((size_t)r * sizeof(double));
    double *col = rl_alloc((size_t)m_max * (size_t)r * sizeof(double));
    if (!t->w0 || !t->dw || !t->u || !t->v || !t->s || !col) {
        rl_dealloc(col);
        rl_teacher_free(t);
        return rl_fail(RL_ENOMEM, "teacher: no memory for a %d x %d teacher", d_out, d_in);
    }
    t->d_in = d_in;
    t->d_out = d_out;
    t->r = r;

    rl_mt g;
    rl_mt_seed(&g, o->seed);
    /* W0 ~ N(0, w0_std² / d_in): unit-variance outputs for unit inputs */
    double w0_std = o->w0_std > 0 ? o->w0_std : 1.0;
    rl_mt_fill_normal(&g, t->w0, nw, (float)(w0_std / sqrt((double)d_in)));
    orthonormal_columns(&g, t->u, d_out, r, col);
    orthonormal_columns(&g, t->v, d_in, r, col);
    rl_dealloc(col);
    fill_spectrum(t->s, r, o);

    /* ΔW*[i][j] = Σ_k U[i][k] s[k] V[j][k]   (d_out, d_in), in double */
    for (int i = 0; i < d_out; i++) {
        const double *ui = t->u + (size_t)i * r;
        for (int j = 0; j < d_in; j++) {
            const double *vj = t->v + (size_t)j * r;
            double acc = 0;
            for (int k = 0; k < r; k++) acc += ui[k] * t->s[k] * vj[k];
            t->dw[(size_t)i * d_in + j] = (float)acc;
        }
    }
    return RL_OK;
}

rl_status rl_teacher_sample(rl_dataset *d, const rl_teacher *t, int n, bool classify, uint64_t seed)
{
    RL_ASSERT(d && t && t->w0, "rl_teacher_sample: NULL or empty teacher");
    memset(d, 0, sizeof *d);
    if (n < 0) return rl_fail(RL_EINVAL, "teacher sample: n = %d < 0", n);

    const size_t nw = (size_t)t->d_out * (size_t)t->d_in;
    float *w = rl_alloc_floats(nw);
    if (!w) return rl_fail(RL_ENOMEM, "teacher sample: no memory for W*");
    rl_status st = rl_dataset_new(d, n, t->d_in, classify ? t->d_out : 0, t->d_out);
    if (st != RL_OK) {
        rl_dealloc(w);
        return st;
    }
    for (size_t i = 0; i < nw; i++) w[i] = t->w0[i] + t->dw[i];

    rl_mt g;
    rl_mt_seed(&g, seed);
    rl_mt_fill_normal(&g, d->x, (size_t)n * (size_t)t->d_in, 1.0f);
    /* T (n, d_out) = X (n, d_in) · W*ᵀ */
    if (n > 0)
        rl_gemm(RL_NOTRANS, RL_TRANS, n, t->d_out, t->d_in, 1.0f, d->x, t->d_in, w, t->d_in, 0.0f,
                d->t, t->d_out);
    rl_dealloc(w);

    if (classify) {
        for (int i = 0; i < n; i++) {
            const float *ti = d->t + (size_t)i * t->d_out;
            int best = 0;
            for (int j = 1; j < t->d_out; j++)
                if (ti[j] > ti[best]) best = j;
            d->y[i] = best;
        }
    }
    return RL_OK;
}
