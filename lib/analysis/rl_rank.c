/* rl_rank.c -- singular values and rank summaries on LAPACKE dgesdd.
 * See rl_rank.h for the tolerance rule and why the SVD runs in double. */
#include "rl_rank.h"

#include <float.h>
#include <stdbool.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "../core/rl_tensor.h"

static rl_status sv_run(double *work, int m, int n, double *s)
{
    /* A row-major (m, n) array is the column-major (n, m) matrix Aᵀ, which
     * has the same singular values: factor that, so LAPACKE need not make a
     * transposed copy. jobz 'N': values only; u and vt are not referenced
     * (ldu = ldvt = 1 is valid in column-major). work is destroyed. */
    lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', n, m, work, n, s, NULL, 1, NULL, 1);
    if (info < 0) return rl_fail(RL_ELAPACK, "dgesdd (%dx%d): argument %d had an illegal value",
                                 m, n, (int)-info);
    if (info > 0) return rl_fail(RL_ELAPACK, "dgesdd (%dx%d): the SVD did not converge (info=%d)",
                                 m, n, (int)info);
    return RL_OK;
}

rl_status rl_sv_values(const float *a, int m, int n, double *s, double *work)
{
    if (m <= 0 || n <= 0) return rl_fail(RL_EINVAL, "sv_values: bad shape %dx%d", m, n);
    else if (!a || !s || !work) return rl_fail(RL_EINVAL, "sv_values: NULL matrix, output or workspace");
    size_t mn = (size_t)m * n;
    bool zero = true;
    for (size_t i = 0; i < mn; i++) {
        if (!isfinite(a[i]))
            return rl_fail(RL_ENONFINITE, "sv_values: %dx%d matrix has a non-finite entry at (%zu, %zu)",
                           m, n, i / (size_t)n, i % (size_t)n);
        work[i] = a[i];   /* widening float -> double is exact */
        zero = zero && a[i] == 0.0f;
    }
    if (zero) {           /* every σ is 0; skip the O(mn·min(m,n)) factorisation */
        memset(s, 0, (size_t)(m < n ? m : n) * sizeof *s);
        return RL_OK;
    }
    return sv_run(work, m, n, s);
}

rl_status rl_sv_values_f64(const double *a, int m, int n, double *s, double *work)
{
    if (m <= 0 || n <= 0) return rl_fail(RL_EINVAL, "sv_values_f64: bad shape %dx%d", m, n);
    else if (!a || !s || !work) return rl_fail(RL_EINVAL, "sv_values_f64: NULL matrix, output or workspace");
    size_t mn = (size_t)m * n;
    for (size_t i = 0; i < mn; i++)
        if (!isfinite(a[i]))
            return rl_fail(RL_ENONFINITE, "sv_values_f64: %dx%d matrix has a non-finite entry at (%zu, %zu)",
                           m, n, i / (size_t)n, i % (size_t)n);
    memcpy(work, a, mn * sizeof *work);   /* dgesdd destroys its input */
    return sv_run(work, m, n, s);
}

double rl_rank_tol(double sigma_max, int m, int n, double eps)
{
    return sigma_max * (double)(m > n ? m : n) * eps;
}

int rl_rank_count(const double *s, int k, double tol)
{
    int r = 0;
    for (int i = 0; i < k; i++)
        if (s[i] > tol) r++;
    return r;
}

double rl_rank_effective(const double *s, int k)
{
    double sum = 0.0;
    for (int i = 0; i < k; i++) sum += s[i];
    if (!(sum > 0.0)) return 0.0;
    double h = 0.0;
    for (int i = 0; i < k; i++) {
        double p = s[i] / sum;
        if (p > 0.0) h -= p * log(p);   /* lim p->0 of p ln p is 0 */
    }
    return exp(h);
}

double rl_rank_stable(const double *s, int k)
{
    if (k <= 0 || !(s[0] > 0.0)) return 0.0;
    double f = 0.0;
    for (int i = 0; i < k; i++) f += s[i] * s[i];
    return f / (s[0] * s[0]);
}

double rl_rank_energy_top(const double *s, int k, int top)
{
    double all = 0.0, head = 0.0;
    for (int i = 0; i < k; i++) {
        all += s[i] * s[i];
        if (i < top) head += s[i] * s[i];
    }
    return all > 0.0 ? head / all : 0.0;
}

void rl_spectrum_set_tol(rl_spectrum *sp, double tol)
{
    sp->tol = tol;
    sp->rank = rl_rank_count(sp->s, sp->k, tol);
}

rl_status rl_spectrum_new(rl_spectrum **out, const float *a, int m, int n, double tol)
{
    *out = NULL;
    if (m <= 0 || n <= 0) return rl_fail(RL_EINVAL, "spectrum: bad shape %dx%d", m, n);
    else if (!a) return rl_fail(RL_EINVAL, "spectrum: NULL matrix");
    else if (isnan(tol)) return rl_fail(RL_EINVAL, "spectrum: tolerance is NaN");
    rl_spectrum *sp = rl_alloc(sizeof *sp);
    double *work = rl_alloc((size_t)m * n * sizeof(double));
    int k = m < n ? m : n;
    if (sp) sp->s = rl_alloc((size_t)k * sizeof(double));
    if (!sp || !work || !sp->s) {
        if (sp) rl_dealloc(sp->s);
        rl_dealloc(sp);
        rl_dealloc(work);
        return rl_fail(RL_ENOMEM, "spectrum: cannot allocate %dx%d doubles of scratch", m, n);
    }
    rl_status st = rl_sv_values(a, m, n, sp->s, work);
    rl_dealloc(work);
    if (st != RL_OK) {
        rl_spectrum_free(sp);
        return st;
    }
    sp->m = m;
    sp->n = n;
    sp->k = k;
    sp->sigma_max = sp->s[0];
    sp->sigma_min = sp->s[k - 1];
    double f = 0.0;
    for (int i = 0; i < k; i++) f += sp->s[i] * sp->s[i];
    sp->fro = sqrt(f);
    sp->effective_rank = rl_rank_effective(sp->s, k);
    sp->stable_rank = rl_rank_stable(sp->s, k);
    rl_spectrum_set_tol(sp, tol > 0.0 ? tol : rl_rank_tol(sp->sigma_max, m, n, FLT_EPSILON));
    *out = sp;
    return RL_OK;
}

void rl_spectrum_free(rl_spectrum *sp)
{
    if (!sp) return;
    rl_dealloc(sp->s);
    rl_dealloc(sp);
}

/* ---- sparse-basis predictions ---- */

int rl_rank_zero_columns_A(const rl_shared_bases *b, int mn)
{
    RL_ASSERT(b && b->method == RL_METHOD_RANDLORA, "RandLora bases required");
    RL_ASSERT(mn > 0 && mn <= b->min_dim, "mn %d outside the bases' min_dim %d", mn, b->min_dim);
    int z = 0;
    for (int q = 0; q < mn; q++) {
        bool zero = true;
        for (int k = 0; k < b->r && zero; k++) zero = b->A[(size_t)k * b->min_dim + q] == 0.0f;
        z += zero;
    }
    return z;
}

double rl_rank_basis_density(rl_bases_kind kind, int min_dim)
{
    /* P(-1) = P(+1) = 1/(2s) (thresholds fl32(1/(2s)) and fl32(1 - 1/(2s))) */
    if (kind == RL_BASES_SPARSE) return 1.0 / 3.0;
    if (kind == RL_BASES_VERY_SPARSE) return 1.0 / sqrt((double)min_dim);
    return 1.0;
}

double rl_rank_predicted_sparse(int mn, int r, double p)
{
    return (double)mn * (1.0 - pow(1.0 - p, (double)r));
}
