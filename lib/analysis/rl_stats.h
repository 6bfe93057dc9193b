/* rl_stats.h -- the statistics behind every fine-tuning verdict (GSL).
 *
 * Two independent samples a (n_a) and b (n_b), e.g. test accuracies of two
 * methods over seeds. Everything is about the difference of means
 * d = mean(a) - mean(b), with Welch's unequal-variance standard error
 *
 *   se = sqrt(s_a²/n_a + s_b²/n_b)
 *   df = se⁴ / ((s_a²/n_a)²/(n_a-1) + (s_b²/n_b)²/(n_b-1))   (Welch-Satterthwaite)
 *
 * "A beats B" (rl_welch): two-sided Welch t-test, t = d / se, p = 2·P(T_df > |t|),
 *   and the (1 - alpha) interval d ± t_{1-alpha/2, df}·se. With several pairs
 *   in one claim, rl_holm gives Holm's step-down adjusted p-values
 *   (p_(i) · (m - i + 1), made monotone, capped at 1): a pair counts as
 *   "better"/"worse" only when its adjusted p < alpha, so the family-wise
 *   error of the claim is at most alpha.
 * "X does not hurt" (rl_tost): two one-sided Welch tests against an
 *   equivalence margin m > 0 (Schuirmann 1987):
 *     p_lower = P(T_df > (d + m) / se),  p_upper = P(T_df < (d - m) / se),
 *     p_tost = max(p_lower, p_upper); equivalent iff p_tost < alpha, which
 *   is the same as the (1 - 2·alpha) interval of d lying inside (-m, m).
 *   Verdicts, from that (1 - 2·alpha) interval [lo, hi]:
 *     RL_EQUIVALENT    -m < lo and hi < m
 *     RL_WORSE         not equivalent and hi < 0  (a lower than b)
 *     RL_BETTER        not equivalent and lo > 0
 *     RL_INCONCLUSIVE  otherwise (the data allow both a difference beyond
 *                      the margin and no difference)
 * A zero-variance pair (both samples constant) has se = 0: then d is exact,
 * p = 0 if d != 0 else 1, and the intervals collapse to d.
 */
#ifndef RL_STATS_H
#define RL_STATS_H

#include <stdbool.h>

#include "../core/rl_err.h"

typedef struct {
    int n_a, n_b;
    double mean_a, mean_b, sd_a, sd_b;
    double diff;        /* mean_a - mean_b */
    double se, df, t;
    double p;           /* two-sided */
    double lo, hi;      /* (1 - alpha) interval of diff */
} rl_welch_result;

/* Welch's test of a against b. Needs n_a, n_b >= 2 (RL_EINVAL otherwise). */
rl_status rl_welch(const double *a, int n_a, const double *b, int n_b, double alpha, rl_welch_result *out);

/* Holm-adjusted p-values of p[0..n) into p_adj (may alias p). */
void rl_holm(const double *p, int n, double *p_adj);

typedef enum { RL_EQUIVALENT = 0, RL_WORSE = 1, RL_BETTER = 2, RL_INCONCLUSIVE = 3 } rl_equiv_verdict;
const char *rl_equiv_name(rl_equiv_verdict v);

typedef struct {
    rl_welch_result w;          /* the Welch quantities (interval at 1 - 2·alpha) */
    double margin, p_lower, p_upper, p_tost;
    rl_equiv_verdict verdict;
} rl_tost_result;

/* TOST of a against b with margin m > 0 at level alpha. n_a, n_b >= 2. */
rl_status rl_tost(const double *a, int n_a, const double *b, int n_b, double margin, double alpha,
                  rl_tost_result *out);

/* Student's t quantile P(T_df <= q) = p (df > 0, 0 < p < 1). */
double rl_t_quantile(double df, double p);

#endif
