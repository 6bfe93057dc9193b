/* rl_stats.c -- Welch, Holm and TOST (rl_stats.h), quantiles from GSL. */
#include "rl_stats.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double rl_t_quantile(double df, double p) { return gsl_cdf_tdist_Pinv(p, df); }

/* Fill the Welch quantities; the interval is at level `level` (two-sided). */
static rl_status welch_core(const double *a, int na, const double *b, int nb, double level, rl_welch_result *o)
{
    memset(o, 0, sizeof *o);
    if (na < 2 || nb < 2) return rl_fail(RL_EINVAL, "welch: needs at least 2 samples each (got %d and %d)", na, nb);
    o->n_a = na;
    o->n_b = nb;
    o->mean_a = gsl_stats_mean(a, 1, (size_t)na);
    o->mean_b = gsl_stats_mean(b, 1, (size_t)nb);
    o->sd_a = gsl_stats_sd_m(a, 1, (size_t)na, o->mean_a);
    o->sd_b = gsl_stats_sd_m(b, 1, (size_t)nb, o->mean_b);
    o->diff = o->mean_a - o->mean_b;
    double va = o->sd_a * o->sd_a / na, vb = o->sd_b * o->sd_b / nb;
    o->se = sqrt(va + vb);
    if (o->se > 0) {
        o->df = (va + vb) * (va + vb) / (va * va / (na - 1) + vb * vb / (nb - 1));
        o->t = o->diff / o->se;
        o->p = 2.0 * gsl_cdf_tdist_Q(fabs(o->t), o->df);
        double q = gsl_cdf_tdist_Pinv(1.0 - (1.0 - level) / 2.0, o->df);
        o->lo = o->diff - q * o->se;
        o->hi = o->diff + q * o->se;
    } else { /* both samples constant: the difference is exact */
        o->df = na + nb - 2;
        o->t = o->diff > 0 ? INFINITY : o->diff < 0 ? -INFINITY : 0.0;
        o->p = o->diff != 0 ? 0.0 : 1.0;
        o->lo = o->hi = o->diff;
    }
    return RL_OK;
}

rl_status rl_welch(const double *a, int n_a, const double *b, int n_b, double alpha, rl_welch_result *out)
{
    if (!(alpha > 0 && alpha < 1)) return rl_fail(RL_EINVAL, "welch: alpha %g outside (0, 1)", alpha);
    return welch_core(a, n_a, b, n_b, 1.0 - alpha, out);
}

void rl_holm(const double *p, int n, double *p_adj)
{
    if (n <= 0) return;
    int *ord = malloc((size_t)n * sizeof *ord);
    double *q = malloc((size_t)n * sizeof *q);
    RL_ASSERT(ord && q, "holm: out of memory for %d p-values", n);
    for (int i = 0; i < n; i++) ord[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort by p, stable: n is a handful */
        for (int j = i; j > 0 && p[ord[j]] < p[ord[j - 1]]; j--) {
            int t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
        }
    double run = 0.0;
    for (int i = 0; i < n; i++) {
        double v = p[ord[i]] * (double)(n - i);
        if (v > 1.0) v = 1.0;
        if (v < run) v = run; /* step-down: adjusted p never decreases */
        run = v;
        q[ord[i]] = v;
    }
    memcpy(p_adj, q, (size_t)n * sizeof *q);
    free(q);
    free(ord);
}

const char *rl_equiv_name(rl_equiv_verdict v)
{
    static const char *const names[] = {"equivalent", "worse", "better", "inconclusive"};
    return (unsigned)v < 4 ? names[v] : "?";
}

rl_status rl_tost(const double *a, int n_a, const double *b, int n_b, double margin, double alpha,
                  rl_tost_result *out)
{
    memset(out, 0, sizeof *out);
    if (!(margin > 0)) return rl_fail(RL_EINVAL, "tost: margin %g must be positive", margin);
    if (!(alpha > 0 && alpha < 0.5)) return rl_fail(RL_EINVAL, "tost: alpha %g outside (0, 0.5)", alpha);
    RL_TRY(welch_core(a, n_a, b, n_b, 1.0 - 2.0 * alpha, &out->w));
    const rl_welch_result *w = &out->w;
    out->margin = margin;
    if (w->se > 0) {
        out->p_lower = gsl_cdf_tdist_Q((w->diff + margin) / w->se, w->df);
        out->p_upper = gsl_cdf_tdist_P((w->diff - margin) / w->se, w->df);
    } else {
        out->p_lower = w->diff > -margin ? 0.0 : 1.0;
        out->p_upper = w->diff < margin ? 0.0 : 1.0;
    }
    out->p_tost = fmax(out->p_lower, out->p_upper);
    if (w->lo > -margin && w->hi < margin) out->verdict = RL_EQUIVALENT;
    else if (w->hi < 0) out->verdict = RL_WORSE;
    else if (w->lo > 0) out->verdict = RL_BETTER;
    else out->verdict = RL_INCONCLUSIVE;
    return RL_OK;
}
