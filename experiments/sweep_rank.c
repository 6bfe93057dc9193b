/* sweep_rank.c -- `randlora sweep rank`: is the update full rank?
 *
 * Grid: method {randlora x bases {dense, sparse, very_sparse}, lora, vera}
 *       x r {1, 2, 4, 8, 16, 32, 64} x layer shape {256x256, 768x768,
 *       768x3072}  (--full adds 1024x1024 and 4096x4096 at r = 32, PEFT's
 *       default), one point per (method, bases, shape, r).
 * For each point the adapter is put in four states and ΔW's spectrum taken
 * (rl_rank.h, float32 tolerance):
 *   init          PEFT's init (ΔW = 0 for all three methods)
 *   equal_gamma   RandLora only: λ random, Γ at its init constant 1/mn, so
 *                 ΔW = s·UB·UA with every Γ_b equal: rank <= r   [claim c]
 *   perturbed     every trainable parameter randomised (RandLora:
 *                 λ ~ 0.05·N(0,1), Γ = Γ0·(1 + 0.5·N(0,1)), as the parity
 *                 fixtures; LoRA: B ~ 0.1·N(0,1); VeRA: λ_b ~ N(0,1),
 *                 λ_d = d_initial·(1 + 0.5·N(0,1)))
 *   trained       after --steps AdamW steps (lr --lr, no weight decay) from
 *                 init on a synthetic regression task: y = x Tᵀ with a fixed
 *                 random full-rank teacher T (out, in) ~ N(0, 1/in), fresh
 *                 x ~ N(0, 1) (--tokens rows) each step, loss 0.5·|ŷ - y|²/n.
 *                 The rank is also recorded along the way (steps 0, 1, 2, 4,
 *                 8, ...) for `training.csv`.
 * Tables (results/rank/, resumable, one atomic point file per point):
 *   rank.csv      one row per point and state
 *   training.csv  rank and loss vs step
 *   spectrum.csv  singular values (r = 8 and 32 only)
 *   sparse.csv    sparse bases: measured rank beside the predicted
 *                 mn·(1 - (1 - p)^r) and the exact bound mn - Z   [claim d]
 *   params.csv    trainable parameters vs r (closed form)          [claim b]
 *   claims.txt    the verdicts on claims (a)-(d), from the tables
 * and manifest.json; plots/rank_*.gp draw plots/out/rank_*.png. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/rl_adapter.h"
#include "analysis/rl_rank.h"
#include "commands.h"
#include "core/rl_blas.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "flags.h"
#include "io/rl_results.h"
#include "sweep.h"
#include "train/rl_optim.h"

#define MAX_LIST 16

typedef struct {
    sweep_opts so;
    uint64_t seed;
    int steps, tokens;
    float lr;
    int r[MAX_LIST], n_r;
    int shape[MAX_LIST][2], n_shape;       /* (out, in) */
    int large[MAX_LIST][2], n_large;       /* only at r = 32 */
    bool plots;
} rank_cfg;

typedef struct {
    rl_method method;
    rl_bases_kind kind;      /* randlora only */
    int out, in, r;
} rank_point;

static const char *bases_name(const rank_point *p)
{
    return p->method == RL_METHOD_RANDLORA ? rl_bases_kind_name(p->kind) : "none";
}

/* ---- tables ---- */

#define RANK_HEADER "method,bases,out,in,min_dim,r,num_bases,params,state,step,rank,full_rank,rank_bound," \
                    "predicted_rank,zero_cols_A,effective_rank,stable_rank,energy_top_r,sigma_max," \
                    "sigma_min,tol,rank_f64,rank_tol_x0.1,rank_tol_x10"
#define TRAIN_HEADER "method,bases,out,in,min_dim,r,step,loss,rank,effective_rank"
#define SPEC_HEADER "method,bases,out,in,r,state,i,sigma,sigma_rel"
#define SPARSE_HEADER "bases,out,in,min_dim,r,density,zero_cols_A,predicted_rank,bound_rank," \
                      "rank_perturbed,rank_trained"
enum { T_RANK, T_TRAIN, T_SPEC, T_SPARSE, N_TABLES };
static const char *const table_names[N_TABLES] = {"rank", "training", "spectrum", "sparse"};
static const char *const table_headers[N_TABLES] = {RANK_HEADER, TRAIN_HEADER, SPEC_HEADER, SPARSE_HEADER};

/* What one point produces: the rows of each table (open_memstream). */
typedef struct {
    char *buf[N_TABLES];
    size_t len[N_TABLES];
    FILE *fp[N_TABLES];
} rows;

static bool rows_open(rows *w)
{
    memset(w, 0, sizeof *w);
    for (int t = 0; t < N_TABLES; t++)
        if (!(w->fp[t] = open_memstream(&w->buf[t], &w->len[t]))) return false;
    return true;
}

static void rows_close(rows *w)
{
    for (int t = 0; t < N_TABLES; t++) {
        if (w->fp[t]) fclose(w->fp[t]);
        free(w->buf[t]);
    }
}

/* ---- one point ---- */

typedef struct {
    const rank_cfg *c;
    const rank_point *p;
    rl_adapter *a;
    const rl_shared_bases *bases;
    int mn, zero_cols;
    bool large;              /* a --full shape: fewer SVDs along training */
    float *dw;
    rows *w;
    int rank_perturbed, rank_trained;
    double predicted, bound;
} point_ctx;

/* RandLora only: the same update formed in float64 from the same bases and
 * parameters (exact products of the stored float32 / bf16 values, summed in
 * double), and its rank at the float64 tolerance σ_max·max(m,n)·DBL_EPSILON.
 * It separates structural rank loss (zero columns of A: rank_f64 < min_dim
 * too) from float32 resolution (rank_f64 = min_dim, rank < min_dim). The
 * scaling s = alpha/r does not change the rank and is left out. */
static rl_status randlora_rank_f64(point_ctx *x, int *rank64)
{
    const rl_shared_bases *b = x->bases;
    rl_adapter *a = x->a;
    const int mn = x->mn, mx = x->p->out > x->p->in ? x->p->out : x->p->in, nb = rl_adapter_n_bases(a), r = x->p->r;
    const int R = r * nb, ldA = b->min_dim;
    const float *lam = rl_adapter_span(a).p + rl_adapter_find_param(a, "randlora_lambda")->offset;
    const float *gam = rl_adapter_span(a).p + rl_adapter_find_param(a, "randlora_gamma")->offset;
    double *UA = rl_alloc((size_t)R * mn * sizeof(double)), *UB = rl_alloc((size_t)mx * R * sizeof(double));
    double *M = rl_alloc((size_t)mx * mn * sizeof(double)), *W = rl_alloc((size_t)mx * mn * sizeof(double));
    double *sv = rl_alloc((size_t)mn * sizeof(double));
    rl_status st = RL_OK;
    if (!UA || !UB || !M || !W || !sv) {
        st = rl_fail(RL_ENOMEM, "sweep rank: out of memory for the float64 check");
        goto done;
    }
    /* UA[c, q] = λ[c/nb, c%nb] · A[c/nb, q] · Γ[c%nb, q]   (R, mn)  [PEFT pairing] */
    for (int c = 0; c < R; c++)
        for (int q = 0; q < mn; q++)
            UA[(size_t)c * mn + q] = (double)lam[c] * b->A[(size_t)(c / nb) * ldA + q] * gam[(size_t)(c % nb) * mn + q];
    /* UB[p, c] = B[p, c/r, c%r]   (mx, R) */
    for (int p = 0; p < mx; p++)
        for (int c = 0; c < R; c++) UB[(size_t)p * R + c] = b->B[((size_t)p * b->n_bases + c / r) * r + c % r];
    /* M = UB · UA   (mx, mn), naive i-k-j loops in double */
    for (int p = 0; p < mx; p++) {
        double *m = M + (size_t)p * mn;
        for (int c = 0; c < R; c++) {
            double u = UB[(size_t)p * R + c];
            const double *ua = UA + (size_t)c * mn;
            for (int q = 0; q < mn; q++) m[q] += u * ua[q];
        }
    }
    if ((st = rl_sv_values_f64(M, mx, mn, sv, W)) != RL_OK) goto done;
    *rank64 = rl_rank_count(sv, mn, rl_rank_tol(sv[0], mx, mn, DBL_EPSILON));
done:
    rl_dealloc(UA);
    rl_dealloc(UB);
    rl_dealloc(M);
    rl_dealloc(W);
    rl_dealloc(sv);
    return st;
}

/* Spectrum of the adapter's current ΔW; one rank.csv row for `state`. */
static rl_status measure(point_ctx *x, const char *state, int step, rl_spectrum **out)
{
    const rank_point *p = x->p;
    RL_TRY(rl_adapter_delta_weight(x->a, x->dw));
    RL_TRY(rl_spectrum_new(out, x->dw, p->out, p->in, 0.0));
    rl_spectrum *sp = *out;
    bool equal = strcmp(state, "equal_gamma") == 0;
    int r_cap = p->r < x->mn ? p->r : x->mn;
    double bound = p->method == RL_METHOD_RANDLORA && !equal ? x->mn - x->zero_cols : r_cap;
    if (strcmp(state, "init") == 0) bound = 0;
    double pred = p->method == RL_METHOD_RANDLORA && !equal ? x->predicted : bound;
    int rank64 = -1;   /* not computed */
    if (p->method == RL_METHOD_RANDLORA && (strcmp(state, "perturbed") == 0 || strcmp(state, "trained") == 0) &&
        x->mn <= 1024)
        RL_TRY(randlora_rank_f64(x, &rank64));
    /* the rank at a tenth of and at ten times the float32 tolerance: how
     * much of the count depends on where the line is drawn */
    int r01 = rl_rank_count(sp->s, sp->k, 0.1 * sp->tol), r10 = rl_rank_count(sp->s, sp->k, 10.0 * sp->tol);
    fprintf(x->w->fp[T_RANK], "%s,%s,%d,%d,%d,%d,%d,%zu,%s,%d,%d,%d,%.0f,%.2f,%d,%.6g,%.6g,%.6g,%.9g,%.9g,%.3g,%d,%d,%d\n",
            rl_method_name(p->method), bases_name(p), p->out, p->in, x->mn, p->r, rl_adapter_n_bases(x->a),
            rl_adapter_param_count(x->a), state, step, sp->rank, sp->rank == x->mn, bound, pred,
            x->zero_cols, sp->effective_rank, sp->stable_rank, rl_rank_energy_top(sp->s, sp->k, p->r),
            sp->sigma_max, sp->sigma_min, sp->tol, rank64, r01, r10);
    if ((p->r == 8 || p->r == 32) && !(strcmp(state, "init") == 0))
        for (int i = 0; i < sp->k; i++)
            fprintf(x->w->fp[T_SPEC], "%s,%s,%d,%d,%d,%s,%d,%.9g,%.6g\n", rl_method_name(p->method), bases_name(p),
                    p->out, p->in, p->r, state, i + 1, sp->s[i], sp->sigma_max > 0 ? sp->s[i] / sp->sigma_max : 0.0);
    return RL_OK;
}

static rl_status measure_rank(point_ctx *x, const char *state, int step, int *rank)
{
    rl_spectrum *sp = NULL;
    rl_status st = measure(x, state, step, &sp);
    if (st == RL_OK && rank) *rank = sp->rank;
    rl_spectrum_free(sp);
    return st;
}

static void randomise(point_ctx *x, rl_mt *g, bool gamma_too)
{
    rl_adapter *a = x->a;
    rl_adapter_reset(a);
    float *P = rl_adapter_span(a).p;
    for (int i = 0; i < rl_adapter_n_params_info(a); i++) {
        const rl_param_info *pi = rl_adapter_param_info(a, i);
        size_t n = (size_t)pi->shape[0] * (pi->ndim == 2 ? pi->shape[1] : 1);
        float *v = P + pi->offset;
        if (strcmp(pi->name, "randlora_lambda") == 0) rl_mt_fill_normal(g, v, n, 0.05f);
        else if (strcmp(pi->name, "randlora_gamma") == 0 && gamma_too)
            for (size_t j = 0; j < n; j++) v[j] *= 1.0f + 0.5f * rl_mt_normal(g);
        else if (strcmp(pi->name, "lora_B.weight") == 0) rl_mt_fill_normal(g, v, n, 0.1f);
        else if (strcmp(pi->name, "vera_lambda_b") == 0) rl_mt_fill_normal(g, v, n, 1.0f);
        else if (strcmp(pi->name, "vera_lambda_d") == 0)
            for (size_t j = 0; j < n; j++) v[j] *= 1.0f + 0.5f * rl_mt_normal(g);
    }
}

/* AdamW on the synthetic regression task, recording the rank at steps
 * 0, 1, 2, 4, ... and at the last step. */
static rl_status train(point_ctx *x, rl_mt *g)
{
    const rank_point *p = x->p;
    const int n = x->c->tokens, steps = x->c->steps;
    rl_adapter *a = x->a;
    rl_adapter_reset(a);
    rl_span sp = rl_adapter_span(a);
    rl_adamw *opt = NULL;
    float *T = rl_alloc_floats((size_t)p->out * p->in), *X = rl_alloc_floats((size_t)n * p->in);
    float *Y = rl_alloc_floats((size_t)n * p->out), *D = rl_alloc_floats((size_t)n * p->out);
    float *dX = rl_alloc_floats((size_t)n * p->in);
    rl_status st = RL_OK;
    if (!T || !X || !Y || !D || !dX) {
        st = rl_fail(RL_ENOMEM, "sweep rank: out of memory for training %dx%d", p->out, p->in);
        goto done;
    }
    if ((st = rl_adamw_new(&opt, sp.n, x->c->lr, 0.0f)) != RL_OK) goto done;
    rl_mt_fill_normal(g, T, (size_t)p->out * p->in, 1.0f / sqrtf((float)p->in));
    double loss = NAN;
    int next_record = 0;
    for (int step = 0; step <= steps; step++) {
        /* batch, target y = x Tᵀ (n, out), prediction ŷ = adapter(x) */
        rl_mt_fill_normal(g, X, (size_t)n * p->in, 1.0f);
        rl_gemm(RL_NOTRANS, RL_TRANS, n, p->out, p->in, 1.0f, X, p->in, T, p->in, 0.0f, Y, p->out);
        memset(D, 0, (size_t)n * p->out * sizeof *D);
        if ((st = rl_adapter_forward(a, X, n, D)) != RL_OK) goto done;
        /* dŷ = (ŷ - y) / n ;  loss = 0.5 |ŷ - y|² / n */
        double l = 0.0;
        for (size_t i = 0; i < (size_t)n * p->out; i++) {
            float e = D[i] - Y[i];
            l += 0.5 * (double)e * e;
            D[i] = e / (float)n;
        }
        loss = l / n;
        if ((step == next_record && !x->large) || step == 0 || step == steps) {
            rl_spectrum *s = NULL;
            if ((st = rl_adapter_delta_weight(a, x->dw)) != RL_OK) goto done;
            if ((st = rl_spectrum_new(&s, x->dw, p->out, p->in, 0.0)) != RL_OK) goto done;
            fprintf(x->w->fp[T_TRAIN], "%s,%s,%d,%d,%d,%d,%d,%.6g,%d,%.6g\n", rl_method_name(p->method),
                    bases_name(p), p->out, p->in, x->mn, p->r, step, loss, s->rank, s->effective_rank);
            rl_spectrum_free(s);
            next_record = next_record ? 2 * next_record : 1;
        }
        if (step == steps) break;
        if (!isfinite(loss)) {
            st = rl_fail(RL_ENONFINITE, "sweep rank: %s r=%d %dx%d: loss is %g at step %d (lower --lr)",
                         rl_method_name(p->method), p->r, p->out, p->in, loss, step);
            goto done;
        }
        rl_adapter_zero_grad(a);
        memset(dX, 0, (size_t)n * p->in * sizeof *dX);
        if ((st = rl_adapter_backward(a, X, D, n, dX)) != RL_OK) goto done;
        rl_adamw_step(opt, sp);
    }
    st = measure_rank(x, "trained", steps, &x->rank_trained);
done:
    rl_adamw_free(opt);
    rl_dealloc(T);
    rl_dealloc(X);
    rl_dealloc(Y);
    rl_dealloc(D);
    rl_dealloc(dX);
    return st;
}

static rl_status run_point(const rank_cfg *c, const rank_point *p, rows *w, bool large)
{
    rl_shared_bases *bases = NULL;
    rl_adapter_config cfg = rl_adapter_config_default(p->method);
    cfg.r = p->r;
    cfg.init_seed = c->seed;
    point_ctx x = {.c = c, .p = p, .w = w, .mn = p->out < p->in ? p->out : p->in, .large = large};
    rl_status st = RL_OK;
    if (p->method != RL_METHOD_LORA)
        RL_TRY(rl_shared_bases_new(&bases, p->method, p->r, p->out, p->in, p->kind, RL_BASES_FMT_DEFAULT,
                                   RL_BASES_FMA_DEFAULT, c->seed));
    x.bases = bases;
    if ((st = rl_adapter_new(&x.a, &cfg, p->out, p->in, bases, c->tokens)) != RL_OK) goto done;
    if (!(x.dw = rl_alloc_floats((size_t)p->out * p->in))) {
        st = rl_fail(RL_ENOMEM, "out of memory");
        goto done;
    }
    double density = 1.0;
    if (p->method == RL_METHOD_RANDLORA) {
        x.zero_cols = rl_rank_zero_columns_A(bases, x.mn);
        density = rl_rank_basis_density(p->kind, bases->min_dim);
        x.predicted = rl_rank_predicted_sparse(x.mn, p->r, density);
    }
    rl_mt g;
    rl_mt_seed(&g, c->seed * 1000003u + (uint64_t)p->out * 7919u + (uint64_t)p->in * 104729u +
                       (uint64_t)p->r * 31u + (uint64_t)p->method * 5u + (uint64_t)p->kind);
    rl_adapter_reset(x.a);
    if ((st = measure_rank(&x, "init", 0, NULL)) != RL_OK) goto done;
    if (p->method == RL_METHOD_RANDLORA) {
        randomise(&x, &g, false);
        if ((st = measure_rank(&x, "equal_gamma", 0, NULL)) != RL_OK) goto done;
    }
    randomise(&x, &g, true);
    if ((st = measure_rank(&x, "perturbed", 0, &x.rank_perturbed)) != RL_OK) goto done;
    if ((st = train(&x, &g)) != RL_OK) goto done;
    if (p->method == RL_METHOD_RANDLORA && p->kind != RL_BASES_DENSE)
        fprintf(w->fp[T_SPARSE], "%s,%d,%d,%d,%d,%.6g,%d,%.2f,%d,%d,%d\n", bases_name(p), p->out, p->in, x.mn,
                p->r, density, x.zero_cols, x.predicted, x.mn - x.zero_cols, x.rank_perturbed, x.rank_trained);
done:
    rl_dealloc(x.dw);
    rl_adapter_free(x.a);
    rl_shared_bases_free(bases);
    return st;
}

/* ---- claim (b): parameter counts, closed form ---- */

static rl_status write_params(const rank_cfg *c)
{
    static const int shapes[][2] = {{256, 256}, {768, 768}, {768, 3072}, {1024, 1024}, {4096, 4096}, {4096, 1024}};
    static const int rs[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
    char path[600];
    snprintf(path, sizeof path, "%s/params.csv", c->so.dir);
    rl_atomic_file af;
    RL_TRY(rl_atomic_open(&af, path));
    fprintf(af.fp, "method,out,in,min_dim,r,num_bases,params,params_fraction_of_full\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int m = RL_METHOD_LORA; m <= RL_METHOD_RANDLORA; m++)
            for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
                int o = shapes[s][0], in = shapes[s][1], mn = o < in ? o : in;
                size_t np = rl_param_count_formula((rl_method)m, rs[i], o, in);
                fprintf(af.fp, "%s,%d,%d,%d,%d,%d,%zu,%.6g\n", rl_method_name((rl_method)m), o, in, mn, rs[i],
                        m == RL_METHOD_RANDLORA ? rl_randlora_n_bases(mn, rs[i]) : 0, np,
                        (double)np / ((double)o * in));
            }
    return rl_atomic_commit(&af);
}

/* ---- verdicts on the claims, read back from the tables ---- */

static int col(const csv_table *t, const char *name)
{
    int c = csv_col(t, name);
    RL_ASSERT(c >= 0, "column %s missing in a table this file wrote", name);
    return c;
}

static rl_status write_claims(const rank_cfg *c, FILE *echo)
{
    char path[600];
    csv_table t;
    snprintf(path, sizeof path, "%s/rank.csv", c->so.dir);
    RL_TRY(csv_read(path, &t));
    int cm = col(&t, "method"), cb = col(&t, "bases"), cs = col(&t, "state"), cr = col(&t, "rank"),
        cmn = col(&t, "min_dim"), crr = col(&t, "r"), co = col(&t, "out"), ci = col(&t, "in"),
        cbd = col(&t, "rank_bound"), cpr = col(&t, "predicted_rank"), cz = col(&t, "zero_cols_A"),
        c64 = col(&t, "rank_f64");
    long a64_n = 0, a64_full = 0;
    long a_n = 0, a_full = 0, c_n = 0, c_le = 0, c_tn = 0, c_tfull = 0, d_n = 0, d_eq = 0, d_bound = 0, l_n = 0,
         l_ok = 0, v_n = 0, v_ok = 0;
    double d_err = 0.0;
    char fails[4096] = "";
    size_t fl = 0;
    for (int i = 0; i < t.nrow; i++) {
        char **f = t.rows[i];
        int rank = atoi(f[cr]), mn = atoi(f[cmn]), r = atoi(f[crr]);
        bool rl = strcmp(f[cm], "randlora") == 0, dense = strcmp(f[cb], "dense") == 0;
        bool pert = strcmp(f[cs], "perturbed") == 0, trained = strcmp(f[cs], "trained") == 0;
        if (rl && dense && (pert || trained)) {
            a_n++;
            a_full += rank == mn;
            if (rank != mn && fl < sizeof fails - 100)
                fl += (size_t)snprintf(fails + fl, sizeof fails - fl, "  (a) fails: dense %sx%s r=%d %s: rank %d < %d\n",
                                       f[co], f[ci], r, f[cs], rank, mn);
        }
        if (rl && dense && pert && atoi(f[c64]) >= 0) {
            a64_n++;
            a64_full += atoi(f[c64]) == mn;
        }
        if (rl && strcmp(f[cs], "equal_gamma") == 0) {
            c_n++;
            c_le += rank <= r;
        }
        if (rl && dense && trained) {
            c_tn++;
            c_tfull += rank == mn;
        }
        if (rl && !dense && (pert || trained)) {
            d_n++;
            d_bound += rank <= atoi(f[cbd]);
            d_eq += rank == mn - atoi(f[cz]);
            d_err += fabs(rank - atof(f[cpr])) / mn;
        }
        if (strcmp(f[cm], "lora") == 0 && (pert || trained)) {
            l_n++;
            l_ok += rank == (r < mn ? r : mn);
        }
        if (strcmp(f[cm], "vera") == 0 && (pert || trained)) {
            v_n++;
            v_ok += rank <= (r < mn ? r : mn);
        }
    }
    csv_free(&t);
    snprintf(path, sizeof path, "%s/claims.txt", c->so.dir);
    rl_atomic_file af;
    RL_TRY(rl_atomic_open(&af, path));
    for (int k = 0; k < 2; k++) {
        FILE *o = k ? echo : af.fp;
        if (!o) continue;
        fprintf(o, "(a) dense RandLora (num_bases*r >= min_dim always): full rank in %ld of %ld perturbed/trained points\n%s",
                a_full, a_n, fails);
        fprintf(o, "    the same perturbed updates formed in float64 (rank at the float64 tolerance): full rank in %ld of %ld\n",
                a64_full, a64_n);
        fprintf(o, "(b) trainable parameters vs r: see params.csv (RandLora's nb*(r+mn) grows as r shrinks; LoRA's r*(in+out) shrinks)\n");
        fprintf(o, "(c) equal gammas (init constant): rank <= r in %ld of %ld points; after %d training steps dense RandLora is full rank in %ld of %ld\n",
                c_le, c_n, c->steps, c_tfull, c_tn);
        fprintf(o, "(d) sparse/very_sparse: rank <= min_dim - Z (Z = zero columns of A) in %ld of %ld, equal to it in %ld; "
                   "mean |rank - min_dim*(1-(1-p)^r)| / min_dim = %.4f\n",
                d_bound, d_n, d_eq, d_n ? d_err / d_n : 0.0);
        fprintf(o, "    LoRA rank == min(r, min_dim) in %ld of %ld; VeRA rank <= min(r, min_dim) in %ld of %ld\n", l_ok, l_n,
                v_ok, v_n);
    }
    return rl_atomic_commit(&af);
}

/* ---- command line ---- */

#define RANK_CMD "randlora sweep rank"

typedef struct {
    rank_cfg *c;
    bool large;
} rank_flags;

/* The flags of sweep rank beyond the common ones (sweep_parse_args). */
static int rank_flag(void *ctx, int argc, char **argv, int *i)
{
    rank_flags *rf = ctx;
    rank_cfg *c = rf->c;
    const char *a = argv[*i], *v;
    int n;
    double lr;
    if (strcmp(a, "--large") == 0) rf->large = true;
    else if (strcmp(a, "--no-plots") == 0) c->plots = false;
    else if (strcmp(a, "--r") != 0 && strcmp(a, "--shapes") != 0 && strcmp(a, "--steps") != 0 &&
             strcmp(a, "--tokens") != 0 && strcmp(a, "--seed") != 0 && strcmp(a, "--lr") != 0)
        return 0;
    else if (!(v = flag_value(RANK_CMD, argc, argv, i))) return -1;
    else if (strcmp(a, "--r") == 0) {
        if ((c->n_r = flag_int_list(RANK_CMD, a, v, 1, 1 << 16, c->r, MAX_LIST)) < 0) return -1;
    } else if (strcmp(a, "--shapes") == 0) {
        if ((c->n_shape = flag_pair_list(RANK_CMD, a, v, 1, 1 << 16, c->shape, MAX_LIST)) < 0) return -1;
    } else if (strcmp(a, "--steps") == 0) {
        if (!flag_int(RANK_CMD, a, v, 1, 1 << 20, &c->steps)) return -1;
    } else if (strcmp(a, "--tokens") == 0) {
        if (!flag_int(RANK_CMD, a, v, 1, 1 << 20, &c->tokens)) return -1;
    } else if (strcmp(a, "--seed") == 0) {
        if (!flag_int(RANK_CMD, a, v, 0, 1 << 20, &n)) return -1;
        c->seed = (uint64_t)n;
    } else {
        if (!flag_positive(RANK_CMD, a, v, FLT_MAX, &lr)) return -1;
        c->lr = (float)lr;
    }
    return 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: randlora sweep rank [options]\n"
            "  Rank of ΔW for RandLora (dense, sparse, very_sparse bases), LoRA and VeRA over r,\n"
            "  layer shapes and adapter states (init, equal_gamma, perturbed, trained); writes\n"
            "  results/rank/{rank,training,spectrum,sparse,params}.csv, claims.txt, manifest.json,\n"
            "  then plots/out/rank_*.png (gnuplot).\n"
            "  --r LIST        ranks (default 1,2,4,8,16,32,64)\n"
            "  --shapes LIST   OUTxIN,... (default 256x256,768x768,768x3072)\n"
            "  --full, --large also 1024x1024 and 4096x4096 at r = 32 (PEFT's default; slow: the\n"
            "                  4096^2 SVDs take ~1 min each)\n"
            "  --steps N       training steps (default 32)   --tokens N  rows per batch (default 64)\n"
            "  --lr X          AdamW learning rate (default 1e-3)   --seed N (default 0: bases key,\n"
            "                  LoRA init, perturbations, data)\n"
            "  --no-plots      do not run gnuplot\n");
    sweep_usage_common(out);
}

int sweep_rank(int argc, char **argv)
{
    rank_cfg c = {.seed = 0, .steps = 32, .tokens = 64, .lr = 1e-3f, .plots = true};
    sweep_opts_init(&c.so, "rank");
    static const int default_r[] = {1, 2, 4, 8, 16, 32, 64};
    static const int default_shapes[][2] = {{256, 256}, {768, 768}, {768, 3072}};
    c.n_r = (int)(sizeof default_r / sizeof default_r[0]);
    memcpy(c.r, default_r, sizeof default_r);
    c.n_shape = (int)(sizeof default_shapes / sizeof default_shapes[0]);
    memcpy(c.shape, default_shapes, sizeof default_shapes);
    rank_flags rf = {&c, false};
    int pa = sweep_parse_args(&c.so, argc, argv, RANK_CMD, usage, rank_flag, &rf);
    if (pa <= 0) return pa < 0 ? 2 : 0;
    bool large = rf.large;
    if (large || c.so.full) {
        c.large[0][0] = c.large[0][1] = 1024;
        c.large[1][0] = c.large[1][1] = 4096;
        c.n_large = 2;
    }

    /* the grid */
    rank_point pts[4096];
    long np = 0;
    for (int s = 0; s < c.n_shape + c.n_large; s++) {
        bool lg = s >= c.n_shape;
        const int *sh = lg ? c.large[s - c.n_shape] : c.shape[s];
        for (int m = 0; m < 5; m++) {
            rl_method meth = m < 3 ? RL_METHOD_RANDLORA : m == 3 ? RL_METHOD_LORA : RL_METHOD_VERA;
            for (int ri = 0; ri < (lg ? 1 : c.n_r); ri++) {
                RL_ASSERT(np < 4096, "grid too large");
                pts[np++] = (rank_point){meth, m < 3 ? (rl_bases_kind)m : RL_BASES_DENSE, sh[0], sh[1],
                                         lg ? 32 : c.r[ri]};
            }
        }
    }
    if (!c.so.quiet) {
        fprintf(stderr, "sweep rank: %ld points -> %s  (seed %llu, steps %d, tokens %d, lr %g, BLAS threads %d)\n", np,
                c.so.dir, (unsigned long long)c.seed, c.steps, c.tokens, (double)c.lr, rl_blas_threads());
    }
    rl_sweep *tab[N_TABLES] = {0};
    rl_status st = RL_OK;
    for (int t = 0; t < N_TABLES && st == RL_OK; t++)
        st = rl_sweep_open(&tab[t], c.so.dir, table_names[t], table_headers[t]);
    rl_progress prog;
    rl_progress_start(&prog, "sweep rank", np, c.so.quiet);
    int failed = 0;
    for (long i = 0; i < np && st == RL_OK; i++) {
        if (!sweep_mine(&c.so, i)) continue;
        const rank_point *p = &pts[i];
        char key[256], label[128];
        snprintf(key, sizeof key, "v=2;method=%s;bases=%s;out=%05d;in=%05d;r=%03d;steps=%d;tokens=%d;lr=%g;seed=%llu",
                 rl_method_name(p->method), bases_name(p), p->out, p->in, p->r, c.steps, c.tokens, (double)c.lr,
                 (unsigned long long)c.seed);
        snprintf(label, sizeof label, "%s/%s %dx%d r=%d", rl_method_name(p->method), bases_name(p), p->out, p->in, p->r);
        bool done = !c.so.force;
        for (int t = 0; t < N_TABLES && done; t++) done = rl_sweep_done(tab[t], key);
        if (done) {
            rl_progress_step(&prog, label, true);
            continue;
        }
        rows w;
        if (!rows_open(&w)) {
            st = rl_fail(RL_ENOMEM, "sweep rank: open_memstream failed");
            rows_close(&w);
            break;
        }
        rl_status ps = run_point(&c, p, &w, p->out * (long)p->in > 1024L * 1024L);
        if (ps != RL_OK) {
            fprintf(stderr, "sweep rank: point %s failed: %s\n", label, rl_errmsg());
            failed++;
        } else {
            for (int t = 0; t < N_TABLES; t++) fflush(w.fp[t]);
            /* the rank table last: it marks the point complete for a rerun */
            for (int t = N_TABLES - 1; t >= 0 && st == RL_OK; t--)
                st = rl_sweep_put(tab[t], key, w.buf[t] ? w.buf[t] : "");
        }
        rows_close(&w);
        rl_progress_step(&prog, label, false);
    }
    rl_progress_end(&prog);
    sweep_barrier();
    if (!sweep_is_root()) { /* rank 0 assembles the tables, manifest and plots */
        for (int t = 0; t < N_TABLES; t++) rl_sweep_free(tab[t]);
        return st != RL_OK ? cmd_exit_code(st) : failed ? 1 : 0;
    }
    for (int t = 0; t < N_TABLES && st == RL_OK; t++) st = rl_sweep_finish(tab[t], NULL);
    for (int t = 0; t < N_TABLES; t++) rl_sweep_free(tab[t]);
    if (st == RL_OK) st = write_params(&c);
    char cfgjson[512];
    snprintf(cfgjson, sizeof cfgjson,
             "{\"steps\": %d, \"tokens\": %d, \"lr\": %g, \"points\": %ld, \"large\": %s, \"shard\": \"%d/%d\", "
             "\"tolerance\": \"sigma_max*max(m,n)*FLT_EPSILON\", \"bases_fmt\": \"bf16\"}",
             c.steps, c.tokens, (double)c.lr, np, c.n_large ? "true" : "false", c.so.shard.index, c.so.shard.count);
    if (st == RL_OK) st = rl_manifest_write(c.so.dir, "rank", argc, argv, cfgjson, c.seed);
    if (st == RL_OK) st = write_claims(&c, c.so.quiet ? NULL : stdout);
    if (st != RL_OK) {
        fprintf(stderr, "randlora sweep rank: %s: %s\n", rl_strerror(st), rl_errmsg());
        return cmd_exit_code(st);
    }
    if (c.plots) {
        static const char *const scripts[] = {"plots/rank_spectra.gp", "plots/rank_vs_r.gp", "plots/rank_vs_step.gp",
                                              "plots/rank_sparse.gp"};
        if (sweep_render(scripts, 4, c.so.quiet)) return sweep_rc(failed ? 1 : 0, RL_EWRITE);
    }
    return failed ? 1 : 0;
}
