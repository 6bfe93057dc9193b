/* rl_rank.h -- singular values, numerical rank and spectral summaries (LAPACK).
 *
 * The question this module answers: is an update ΔW (m, n) really full rank?
 * It computes the singular values σ_1 >= ... >= σ_k >= 0 (k = min(m, n)) of a
 * row-major float32 matrix with LAPACK's divide-and-conquer SVD (?gesdd,
 * jobz = 'N': values only) and derives:
 *
 *   numerical rank   #{ i : σ_i > tol }
 *   tolerance rule   the precision the matrix was COMPUTED in decides:
 *                      float32 data:  tol = σ_max · max(m, n) · FLT_EPSILON
 *                      float64 data:  tol = σ_max · max(m, n) · DBL_EPSILON
 *                    (numpy.linalg.matrix_rank's rule with the data's own
 *                    epsilon). A float32 ΔW = B·A of exact rank r carries
 *                    rounding noise of about σ_max · FLT_EPSILON per entry,
 *                    which shows up as k - r tiny but nonzero singular values;
 *                    a float64 tolerance would count them (rank > r), the
 *                    float32 one does not. Callers may pass their own tol.
 *   effective rank   exp(H(p)),  p_i = σ_i / Σ_j σ_j,  H = -Σ p_i ln p_i
 *                    (Roy & Vetterli 2007; terms with p_i = 0 contribute 0);
 *                    1 for a rank-1 matrix, k for a flat spectrum.
 *   stable rank      ||A||_F² / σ_max²  =  Σ σ_i² / σ_1²   (<= rank)
 *   energy top-k     Σ_{i<k'} σ_i² / Σ_i σ_i²  (fraction of ||A||_F² in the
 *                    k' largest singular values)
 *
 * Precision of the computation: the float32 matrix is widened to double
 * (exactly) and factored with dgesdd. LAPACK's own backward error is then
 * ~ DBL_EPSILON · σ_max, nine orders below the float32 tolerance, so the
 * spectrum shows the float32 data's own structure and rounding noise and not
 * the SVD's: with sgesdd the algorithm's error (~ k · FLT_EPSILON · σ_max) is
 * of the same order as the float32 tolerance itself and could move singular
 * values across it. The cost is twice sgesdd's time and 8·m·n bytes of
 * scratch.
 *
 * LAPACK destroys its input: every function here copies it first (into a
 * caller workspace for rl_sv_values, into internal scratch for
 * rl_spectrum_new). LAPACK failures (info != 0) come back as RL_ELAPACK.
 */
#ifndef RL_RANK_H
#define RL_RANK_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/rl_err.h"

/* Singular values of the row-major (m, n) float32 matrix a into s (min(m, n)
 * doubles, descending, overwritten). work: m·n doubles of caller scratch
 * (a is copied there, LAPACK overwrites it); a is not modified. Errors:
 * RL_EINVAL for m, n <= 0 or NULL pointers, RL_ENONFINITE if a holds NaN or
 * Inf (LAPACK would loop or return garbage), RL_ELAPACK for info != 0. */
rl_status rl_sv_values(const float *a, int m, int n, double *s, double *work);
/* The same for a row-major float64 matrix (for tests and float64 data). */
rl_status rl_sv_values_f64(const double *a, int m, int n, double *s, double *work);

/* The rank tolerance rule above: σ_max · max(m, n) · eps, with eps =
 * FLT_EPSILON for float32 data or DBL_EPSILON for float64 data. */
double rl_rank_tol(double sigma_max, int m, int n, double eps);

/* #{i < k : s[i] > tol} for a descending spectrum s of length k. */
int rl_rank_count(const double *s, int k, double tol);
double rl_rank_effective(const double *s, int k);   /* exp(entropy)      */
double rl_rank_stable(const double *s, int k);      /* Σσ² / σ_max² (0 for a zero matrix) */
double rl_rank_energy_top(const double *s, int k, int top); /* Σ_{i<top}σ² / Σσ² */

/* A matrix's spectrum and its summaries, computed once. */
typedef struct {
    int m, n, k;            /* shape, k = min(m, n) */
    double *s;              /* k singular values, descending (owned) */
    double tol;             /* tolerance used for `rank` */
    int rank;               /* numerical rank at tol */
    double effective_rank, stable_rank;
    double fro;             /* ||A||_F = sqrt(Σ σ²) */
    double sigma_max, sigma_min;   /* s[0], s[k-1] */
} rl_spectrum;

/* Allocate *out and compute the spectrum of the float32 (m, n) matrix a
 * (not modified; temporary scratch of m·n doubles is allocated and freed
 * here). tol <= 0 selects the float32 rule σ_max·max(m,n)·FLT_EPSILON; a
 * positive tol is used as given. Errors as rl_sv_values, plus RL_ENOMEM. */
rl_status rl_spectrum_new(rl_spectrum **out, const float *a, int m, int n, double tol);
void rl_spectrum_free(rl_spectrum *sp);
/* Re-count the rank at another tolerance (updates sp->tol and sp->rank). */
void rl_spectrum_set_tol(rl_spectrum *sp, double tol);

/* ---- RandLora with sparse bases: the predicted rank (claim d) ----
 *
 * With ternary bases every entry of the shared A (r, 1, min_dim) is nonzero
 * with probability p = 2 · 1/(2s) = 1/s (s = 3 sparse, s = sqrt(min_dim)
 * very_sparse). If column q of A is zero in all r rows -- probability
 * (1 - p)^r, independently per column -- then column q of
 * UA[c, q] = λ[c/nb, c%nb] · A[c/nb, q] · Γ[c%nb, q] is zero for every c,
 * and ΔW (in its (max, min) orientation, ΔW = s·UB·UA) has a zero column q
 * whatever λ, Γ and B are. Hence
 *   rank ΔW <= mn - Z,   Z = #{q < mn : A[:, 0, q] = 0}          (exact bound)
 *   E[Z] = mn · (1 - p)^r  =>  E[rank] <= mn · (1 - (1 - p)^r)    (predicted)
 * Other deficiencies (zero rows of B, nb·r < mn) are possible but rarer;
 * measurements put the rank beside both numbers. */
#include "../adapters/rl_bases.h"

/* Z above: columns q < mn of the RandLora bases' A that are zero in every
 * row. RL_ASSERTs a RandLora bases object and mn <= min_dim. */
int rl_rank_zero_columns_A(const rl_shared_bases *b, int mn);
/* Density of nonzeros in a ternary basis of the kind: 1/3 (sparse),
 * 1/sqrt(min_dim) (very_sparse, min_dim of the shared bases), 1 (dense). */
double rl_rank_basis_density(rl_bases_kind kind, int min_dim);
/* mn · (1 - (1 - p)^r): expected number of nonzero columns of A. */
double rl_rank_predicted_sparse(int mn, int r, double p);

#endif
