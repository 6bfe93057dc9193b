/* sweep_teacher.c -- `randlora sweep teacher`: a teacher-student test of the
 * mechanism the paper proposes. The student starts from exactly the
 * teacher's base weights W0, so the update it must learn is exactly a chosen
 * ΔW* (datasets/rl_teacher: ΔW* = U diag(s) Vᵀ, 256 x 128), and it learns it
 * through data, as fine-tuning does: every step draws fresh inputs x with
 * i.i.d. ±1 entries (128 of them; no example is seen twice, so nothing can
 * be memorised; their covariance is I, as N(0, I)'s, and only second
 * moments enter the expected loss, at a sixth of a Gaussian's cost),
 * the teacher answers y = x W0ᵀ + x ΔW*ᵀ and the student minimises the mean
 * squared error of x W0ᵀ + adapter(x). The frozen x W0ᵀ is the same on both
 * sides and is left out of the computation (it cancels in exact arithmetic;
 * computing it would only add float32 rounding), so the adapter regresses
 * x ΔW*ᵀ. Spectra of ΔW*: flat (s = 1: every direction matters), power
 * (s_k = 1/(k+1)) and spiked (8 directions at 4 over a flat tail of 1).
 *
 * Every method is tuned and trained by the protocol (protocol.h): the
 * learning rate on a fixed validation sample (4,096 inputs, seeded apart
 * from the training stream), early stopping on its MSE, and the error
 * reported once at the end is the exact population error
 * ||ΔW - ΔW*||_F / ||ΔW*||_F (for inputs of covariance I the expected MSE is
 * ||ΔW - ΔW*||_F² / d_out). LoRA's error is put beside its Eckart-Young
 * floor, the best any rank-r update can do. Budgets: on 256 x 128, RandLora
 * r = 64, 16, 4, 2, 1 has 384, 1,152, 4,224, 8,320, 16,512 parameters and
 * LoRA r = 1, 3, 11, 22, 43 has 384, 1,152, 4,224, 8,448, 16,512 (within
 * 1.5%); VeRA r = 128 has 384. Full fine-tuning (ΔW trained directly) is
 * the reference that can reach 0.
 *
 * Writes results/teacher/: select.csv, selection.csv, runs.csv (one row per
 * final run), summary.csv (mean and 95% interval over seeds), pairs.csv and
 * claims.csv (RandLora against LoRA at each matched budget, Welch/Holm),
 * manifest.json, plots/out/teacher.png.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/rl_probe.h"
#include "commands.h"
#include "core/rl_blas.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "datasets/rl_data.h"
#include "protocol.h"
#include "sweep.h"
#include "target_fit.h"
#include "teacher.h"
#include "train/rl_optim.h"
#include "train/rl_train.h"

#define TS_BATCH 256
#define TS_VAL 4096
#define TS_MARGIN 0.01 /* equivalence margin on the relative error */

static const char *const ts_spec_names[TS_SPECS] = {"flat", "power", "spiked"};

typedef struct {
    int spec;
    rl_method method;
    rl_bases_kind bases;
    int r;
    long params;
} ts_cfg;

typedef struct {
    const sweep_opts *o;
    const char *size_name;
    int steps, eval_every, patience;
    ts_cfg cfg[64];
    int n;
    rl_teacher t[TS_SPECS];
    float *val_x, *val_y[TS_SPECS]; /* validation inputs and x ΔW*ᵀ per spectrum */
    rl_sweep *runs;
} ts_ctx;

rl_status ts_teacher_new(rl_teacher *t, int spec)
{
    rl_teacher_opts o = {.d_in = TS_IN, .d_out = TS_OUT, .seed = 2025u + (uint64_t)spec};
    if (spec == TS_FLAT) o.spectrum = RL_SPEC_FLAT;
    else if (spec == TS_POWER) o.spectrum = RL_SPEC_POWER, o.alpha = 1.0;
    else o.spectrum = RL_SPEC_SPIKED, o.alpha = 4.0, o.rank_k = 8;
    return rl_teacher_new(t, &o);
}

void ts_target(const rl_teacher *t, const float *x, int n, float *y)
{
    rl_gemm(RL_NOTRANS, RL_TRANS, n, t->d_out, t->d_in, 1.0f, x, t->d_in, t->dw, t->d_in, 0.0f, y, t->d_out);
}

/* One training run: state of a method on one spectrum, fed by a seeded stream. */
typedef struct {
    const ts_ctx *c;
    const rl_teacher *t;
    const float *val_y;
    tf_adapter ta;
    rl_adamw *opt;
    rl_mt stream;
    float *x, *y, *d; /* batch, target, prediction / gradient */
    float *vy;        /* validation predictions */
    double lr;
    long total;
} ts_run;

/* x (n, TS_IN) := i.i.d. ±1 entries, 32 from each 32-bit draw */
static void fill_signs(rl_mt *g, float *x, size_t n)
{
    for (size_t i = 0; i < n; i += 32) {
        uint32_t u = rl_mt_next(g);
        for (size_t b = 0; b < 32 && i + b < n; b++) x[i + b] = (u >> b) & 1u ? 1.0f : -1.0f;
    }
}

static rl_status ts_step(void *ctx, long step, double *loss)
{
    ts_run *r = ctx;
    const int n = TS_BATCH, O = TS_OUT;
    fill_signs(&r->stream, r->x, (size_t)n * TS_IN);
    ts_target(r->t, r->x, n, r->y);
    memset(r->d, 0, (size_t)n * O * sizeof(float));
    RL_TRY(rl_adapter_forward(r->ta.a, r->x, n, r->d));
    double l = 0;
    for (size_t i = 0; i < (size_t)n * O; i++) { /* loss = ½ Σ e² / n;  dL/dŷ = e / n */
        float e = r->d[i] - r->y[i];
        l += 0.5 * (double)e * e;
        r->d[i] = e / (float)n;
    }
    *loss = l / n;
    if (!isfinite(*loss)) return rl_fail(RL_ENONFINITE, "teacher: loss %g at step %ld", *loss, step);
    rl_adapter_zero_grad(r->ta.a);
    RL_TRY(rl_adapter_backward(r->ta.a, r->x, r->d, n, NULL));
    rl_span sp = rl_adapter_span(r->ta.a);
    rl_clip_grad_norm(&sp, 1, 1.0);
    r->opt->lr = (float)rl_lr_schedule(step, r->total, r->total / 20, r->lr, 0.0);
    rl_adamw_step(r->opt, sp);
    return RL_OK;
}

/* validation: mean squared error per example on the fixed sample (score = -MSE) */
static rl_status ts_eval(void *ctx, double *score, double *loss)
{
    ts_run *r = ctx;
    const int O = TS_OUT;
    double l = 0;
    for (int s = 0; s < TS_VAL; s += TS_BATCH) {
        memset(r->vy, 0, (size_t)TS_BATCH * O * sizeof(float));
        RL_TRY(rl_adapter_forward(r->ta.a, r->c->val_x + (size_t)s * TS_IN, TS_BATCH, r->vy));
        for (size_t i = 0; i < (size_t)TS_BATCH * O; i++) {
            double e = (double)r->vy[i] - r->val_y[(size_t)s * O + i];
            l += e * e;
        }
    }
    *loss = l / TS_VAL;
    *score = -*loss;
    return RL_OK;
}

static void ts_run_free(ts_run *r)
{
    rl_adamw_free(r->opt);
    tf_adapter_free(&r->ta);
    rl_dealloc(r->x);
    rl_dealloc(r->y);
    rl_dealloc(r->d);
    rl_dealloc(r->vy);
}

/* Train config ci at lr with seed; *err gets the population error. */
static rl_status ts_train(ts_ctx *c, int ci, double lr, int seed, pr_fit_out *out, double *err)
{
    const ts_cfg *f = &c->cfg[ci];
    ts_run r = {.c = c, .t = &c->t[f->spec], .val_y = c->val_y[f->spec], .lr = lr, .total = c->steps};
    rl_status st = tf_adapter_new(&r.ta, f->method, f->bases, f->r, TS_OUT, TS_IN, seed, TS_BATCH);
    if (st == RL_OK) st = rl_adamw_new(&r.opt, rl_adapter_param_count(r.ta.a), (float)lr, 0.0f);
    r.x = rl_alloc_floats((size_t)TS_BATCH * TS_IN);
    r.y = rl_alloc_floats((size_t)TS_BATCH * TS_OUT);
    r.d = rl_alloc_floats((size_t)TS_BATCH * TS_OUT);
    r.vy = rl_alloc_floats((size_t)TS_BATCH * TS_OUT);
    if (st == RL_OK && (!r.x || !r.y || !r.d || !r.vy)) st = rl_fail(RL_ENOMEM, "teacher: no memory");
    rl_mt_seed(&r.stream, pr_seeds_of(seed).data);
    if (st == RL_OK && (long)rl_adapter_param_count(r.ta.a) != f->params)
        st = rl_fail(RL_EINVAL, "teacher: %s r=%d has %zu parameters, the budget says %ld", rl_method_name(f->method),
                     f->r, rl_adapter_param_count(r.ta.a), f->params);
    if (st == RL_OK) {
        pr_train_cfg tc = {.lr = lr, .eval_every = c->eval_every, .patience = c->patience};
        pr_loop loop = {ts_step, ts_eval, &r};
        rl_span sp = rl_adapter_span(r.ta.a);
        st = pr_fit_loop(&sp, 1, &tc, c->steps, &loop, out);
    }
    if (st == RL_OK && err) { /* the exact population error of the restored state */
        float *dw = rl_alloc_floats((size_t)TS_OUT * TS_IN);
        if (!dw) st = rl_fail(RL_ENOMEM, "teacher: no memory");
        if (st == RL_OK) st = rl_adapter_delta_weight(r.ta.a, dw);
        if (st == RL_OK) *err = tf_rel_error(dw, c->t[f->spec].dw, (size_t)TS_OUT * TS_IN);
        rl_dealloc(dw);
    }
    ts_run_free(&r);
    return st;
}

static const char *bases_col(const ts_cfg *f) { return f->method == RL_METHOD_RANDLORA ? rl_bases_kind_name(f->bases) : "-"; }

static void ts_config_id(void *vctx, int ci, char *key, size_t kl, char *cols, size_t cl)
{
    const ts_ctx *c = vctx;
    const ts_cfg *f = &c->cfg[ci];
    snprintf(key, kl, "size=%s;spectrum=%s;method=%s;bases=%s;r=%d", c->size_name, ts_spec_names[f->spec],
             rl_method_name(f->method), bases_col(f), f->r);
    snprintf(cols, cl, "%s,%s,%s,%d,%ld", ts_spec_names[f->spec], rl_method_name(f->method), bases_col(f), f->r,
             f->params);
}

static rl_status ts_select(void *vctx, int ci, double lr, int seed, pr_fit_out *out)
{
    return ts_train(vctx, ci, lr, seed, out, NULL);
}

static rl_status ts_final(void *vctx, int ci, double lr, int seed, const pr_fit_out *sel, const char *key)
{
    ts_ctx *c = vctx;
    const ts_cfg *f = &c->cfg[ci];
    pr_fit_out fo;
    double err = NAN;
    RL_TRY(ts_train(c, ci, lr, seed, &fo, &err));
    const rl_teacher *t = &c->t[f->spec];
    double floor_ = f->method == RL_METHOD_LORA ? tf_eckart_young(t->s, t->r, f->r) : NAN;
    char va[2][32];
    snprintf(va[0], sizeof va[0], "%.6f", sel ? sel->val_acc : 0.0);
    snprintf(va[1], sizeof va[1], "%.6f", fo.val_acc);
    char row[600];
    snprintf(row, sizeof row, "%s,%s,%s,%d,%d,%ld,%.4g,%.6f,%.6g,%.6g,%ld,%ld,%d,%d,%s\n", ts_spec_names[f->spec],
             rl_method_name(f->method), bases_col(f), f->r, seed, f->params, lr, err, floor_, fo.val_loss, fo.steps,
             fo.best_step, fo.stopped_early, fo.diverged,
             !sel ? "-" : (!strcmp(va[0], va[1]) && sel->steps == fo.steps) ? "same" : "DIFFERS");
    return rl_sweep_put(c->runs, key, row);
}

/* ---- summary and claims ---- */

typedef struct {
    char spec[16], method[16], bases[16];
    int r;
    long params;
    double lr, floor_;
    int n;
    double err[64];
} ts_group;

static int ts_groups(const char *dir, ts_group *g, int max)
{
    char path[700];
    snprintf(path, sizeof path, "%s/runs.csv", dir);
    csv_table t;
    if (csv_read(path, &t) != RL_OK) return -1;
    int ng = 0;
    for (int i = 0; i < t.nrow; i++) {
        char **row = t.rows[i];
        const char *sp = row[csv_col(&t, "spectrum")], *m = row[csv_col(&t, "method")], *b = row[csv_col(&t, "bases")];
        int r = atoi(row[csv_col(&t, "r")]), j = 0;
        while (j < ng && !(!strcmp(g[j].spec, sp) && !strcmp(g[j].method, m) && !strcmp(g[j].bases, b) && g[j].r == r)) j++;
        if (j == ng) {
            if (ng == max) continue;
            memset(&g[j], 0, sizeof g[j]);
            snprintf(g[j].spec, sizeof g[j].spec, "%s", sp);
            snprintf(g[j].method, sizeof g[j].method, "%s", m);
            snprintf(g[j].bases, sizeof g[j].bases, "%s", b);
            g[j].r = r;
            g[j].params = atol(row[csv_col(&t, "params")]);
            g[j].lr = atof(row[csv_col(&t, "lr")]);
            g[j].floor_ = atof(row[csv_col(&t, "eckart_young")]);
            ng++;
        }
        if (g[j].n < 64) g[j].err[g[j].n++] = atof(row[csv_col(&t, "rel_error")]);
    }
    csv_free(&t);
    return ng;
}

static void ts_summarise(const ts_ctx *c)
{
    static ts_group g[128];
    int ng = ts_groups(c->o->dir, g, 128);
    if (ng <= 0) return;
    pr_text s = {0}, cl = {0}, pr = {0};
    pr_text_add(&s, "spectrum,method,bases,r,params,lr,seeds,rel_error_mean,rel_error_ci95,eckart_young,above_floor\n");
    for (int i = 0; i < ng; i++) {
        double m, h;
        rl_mean_ci95(g[i].err, g[i].n, &m, &h);
        pr_text_add(&s, "%s,%s,%s,%d,%ld,%.4g,%d,%.6f,%.6f,%.6g,%.6g\n", g[i].spec, g[i].method, g[i].bases, g[i].r,
                    g[i].params, g[i].lr, g[i].n, m, h, g[i].floor_, isnan(g[i].floor_) ? NAN : m - g[i].floor_);
    }
    pr_text_add(&cl, PR_CLAIM_HEADER);
    pr_text_add(&pr, "spectrum,randlora_r,params,lora_r,lora_params,randlora_err,lora_err,lora_floor,diff,ci_lo,ci_hi,"
                     "p_holm,verdict\n");
    for (int sp = 0; sp < TS_SPECS; sp++) {
        pr_cmp cmp[16], *cp[16];
        const ts_group *A[16], *B[16];
        int n = 0;
        for (int i = 0; i < ng && n < 16; i++) {
            if (strcmp(g[i].spec, ts_spec_names[sp]) || strcmp(g[i].method, "randlora") || strcmp(g[i].bases, "dense"))
                continue;
            for (int j = 0; j < ng; j++)
                if (!strcmp(g[j].spec, g[i].spec) && !strcmp(g[j].method, "lora") &&
                    fabs((double)g[j].params / g[i].params - 1.0) <= PR_BUDGET_TOL &&
                    /* lower error is better: compare LoRA's error to RandLora's */
                    pr_compare(&cmp[n], g[j].err, g[j].n, g[i].err, g[i].n, TS_MARGIN)) {
                    A[n] = &g[i];
                    B[n] = &g[j];
                    cp[n] = &cmp[n];
                    n++;
                    break;
                }
        }
        if (!n) continue;
        pr_decide(cp, n);
        char counts[200], list[900] = "";
        for (int i = 0; i < n; i++) {
            double ma, mb, h;
            rl_mean_ci95(A[i]->err, A[i]->n, &ma, &h);
            rl_mean_ci95(B[i]->err, B[i]->n, &mb, &h);
            pr_text_add(&pr, "%s,%d,%ld,%d,%ld,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.4g,%s\n", ts_spec_names[sp], A[i]->r,
                        A[i]->params, B[i]->r, B[i]->params, ma, mb, B[i]->floor_, cmp[i].w.diff, cmp[i].w.lo,
                        cmp[i].w.hi, cmp[i].p_holm, cmp[i].verdict);
            char one[200];
            snprintf(one, sizeof one, "%s%ld params: RandLora r=%d %.4f vs LoRA r=%d %.4f (floor %.4f)", i ? "; " : "",
                     A[i]->params, A[i]->r, ma, B[i]->r, mb, B[i]->floor_);
            if (strlen(list) + strlen(one) < sizeof list) strcat(list, one);
        }
        const char *v = pr_family_verdict(cp, n, counts, sizeof counts);
        char m[1200], claim[120], ref[200];
        snprintf(m, sizeof m, "relative error ‖ΔW - ΔW*‖_F / ‖ΔW*‖_F; RandLora lower in: %s (%s)", counts, list);
        snprintf(claim, sizeof claim, "RandLora learns a %s-spectrum update better than LoRA at equal parameters",
                 ts_spec_names[sp]);
        snprintf(ref, sizeof ref, "%s", sp == TS_FLAT ? "title_claim full_rank_condition" : "fig1a_dinov2_crossover");
        pr_claim_row(&cl, ts_spec_names[sp], claim, ref, m, v,
                     "budget pairs within 5%; Welch 95% interval of LoRA error - RandLora error over seeds; Holm across "
                     "the budgets; TOST margin 0.01 otherwise",
                     c->size_name);
    }
    static const char *names[3] = {"summary.csv", "claims.csv", "pairs.csv"};
    pr_text *texts[3] = {&s, &cl, &pr};
    for (int k = 0; k < 3; k++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", c->o->dir, names[k]);
        if (rl_write_file_atomic(path, texts[k]->buf, texts[k]->len) != RL_OK)
            fprintf(stderr, "randlora sweep teacher: %s\n", rl_errmsg());
        pr_text_free(texts[k]);
    }
}

/* ---- the command ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: randlora sweep teacher [--full | --smoke] [--jobs N] [common flags]\n"
            "  Teacher-student test of the mechanism: the student starts from the teacher's W0 (256 x 128) and\n"
            "  must learn exactly a chosen update dW* (flat, power or spiked spectrum) from fresh random inputs\n"
            "  every step (MSE), by each method under the protocol (lr grid on a fixed validation sample, early\n"
            "  stopping). Reports ||dW - dW*||_F / ||dW*||_F and, for LoRA, the Eckart-Young floor of its rank.\n"
            "    quick: RandLora r = 64, 16, 4 and LoRA 1, 3, 11, VeRA, full; <= 1500 steps, grid 1e-3..1e-2\n"
            "           (extended past a winning edge), lr on seed 0, 3 seeds\n"
            "    --full: also RandLora r = 2, 1 and LoRA 22, 43; <= 4000 steps, grid 3.2e-4..3.2e-2, 5 seeds\n");
    sweep_usage_common(out);
}

int sweep_teacher(int argc, char **argv)
{
    sweep_opts o;
    sweep_opts_init(&o, "teacher");
    pr_flags fl = {.cmd = "randlora sweep teacher", .jobs = 1};
    int pa = sweep_parse_args(&o, argc, argv, fl.cmd, usage, pr_parse_flag, &fl);
    if (pa <= 0) return pa < 0 ? 2 : 0;
    const int size = pr_flags_size(&fl, &o);
    if (size < 0) return 2;
    rl_blas_set_threads(1);
    static ts_ctx c;
    memset(&c, 0, sizeof c);
    c.o = &o;
    c.size_name = size == 0 ? "smoke" : size == 1 ? "quick" : "full";
    c.steps = size == 0 ? 200 : size == 1 ? 1500 : 4000;
    c.eval_every = size == 0 ? 50 : 100;
    c.patience = size == 2 ? 8 : 5;
    static const pr_grid grids[3] = {{.per_decade = 2, .k_lo = -5, .k_hi = -4, .k_min = -6, .k_max = -3},
                                     {.per_decade = 2, .k_lo = -6, .k_hi = -4, .k_min = -10, .k_max = 0},
                                     {.per_decade = 2, .k_lo = -7, .k_hi = -3, .k_min = -10, .k_max = 0}};
    pr_plan plan = {.grid = grids[size], .sel_seeds = 1, .seeds = size == 0 ? 2 : size == 1 ? 3 : 5,
                    .jobs = fl.jobs};
    /* the grid: RandLora r with the LoRA rank of the same budget (see the top) */
    static const int rr[5] = {64, 16, 4, 2, 1}, lr_[5] = {1, 3, 11, 22, 43};
    const int nr = size == 0 ? 1 : size == 1 ? 3 : 5, nspec = size == 0 ? 1 : TS_SPECS;
    for (int sp = 0; sp < nspec; sp++) {
        for (int i = 0; i < nr; i++) {
            c.cfg[c.n++] = (ts_cfg){sp, RL_METHOD_RANDLORA, RL_BASES_DENSE, rr[i],
                                    (long)rl_param_count_formula(RL_METHOD_RANDLORA, rr[i], TS_OUT, TS_IN)};
            c.cfg[c.n++] = (ts_cfg){sp, RL_METHOD_LORA, RL_BASES_DENSE, lr_[i],
                                    (long)rl_param_count_formula(RL_METHOD_LORA, lr_[i], TS_OUT, TS_IN)};
        }
        if (size) {
            c.cfg[c.n++] = (ts_cfg){sp, RL_METHOD_VERA, RL_BASES_DENSE, 128,
                                    (long)rl_param_count_formula(RL_METHOD_VERA, 128, TS_OUT, TS_IN)};
            c.cfg[c.n++] = (ts_cfg){sp, RL_METHOD_FULL, RL_BASES_DENSE, 0,
                                    (long)rl_param_count_formula(RL_METHOD_FULL, 0, TS_OUT, TS_IN)};
        }
    }
    int rc = 0;
    c.val_x = rl_alloc_floats((size_t)TS_VAL * TS_IN);
    if (!c.val_x) rc = 3;
    rl_mt g;
    rl_mt_seed(&g, 777); /* validation inputs: apart from every training stream (pr_seeds_of(s).data = 1000 + s) */
    if (rc == 0) fill_signs(&g, c.val_x, (size_t)TS_VAL * TS_IN);
    for (int sp = 0; sp < TS_SPECS && rc == 0; sp++) {
        c.val_y[sp] = rl_alloc_floats((size_t)TS_VAL * TS_OUT);
        if (!c.val_y[sp] || ts_teacher_new(&c.t[sp], sp) != RL_OK) {
            fprintf(stderr, "randlora sweep teacher: %s\n", c.val_y[sp] ? rl_errmsg() : "no memory");
            rc = 3;
        } else {
            ts_target(&c.t[sp], c.val_x, TS_VAL, c.val_y[sp]);
        }
    }
    static const char *hdr = "spectrum,method,bases,r,seed,params,lr,rel_error,eckart_young,val_mse,steps,best_step,"
                             "stopped_early,diverged,repeat_of_selection";
    rl_status ost = RL_OK;
    if (rc == 0 && (ost = rl_sweep_open(&c.runs, o.dir, "runs", hdr)) != RL_OK) {
        fprintf(stderr, "randlora sweep teacher: %s\n", rl_errmsg());
        rc = cmd_exit_code(ost);
    }
    pr_result res = {0};
    if (rc == 0) {
        char cfg[600];
        snprintf(cfg, sizeof cfg, "{\"shape\": [%d, %d], \"batch\": %d, \"steps\": %d, \"eval_every\": %d, \"patience\": %d, "
                                  "\"validation\": %d, \"spectra\": {\"flat\": \"s=1\", \"power\": \"s_k=1/(k+1)\", "
                                  "\"spiked\": \"s=4 for k<8 else 1\"}, \"size\": \"%s\", \"selection_seeds\": %d, \"seeds\": %d}",
                 TS_OUT, TS_IN, TS_BATCH, c.steps, c.eval_every, c.patience, TS_VAL, c.size_name, plan.sel_seeds, plan.seeds);
        if (sweep_is_root() && (ost = rl_manifest_write(o.dir, "teacher", argc, argv, cfg, 2025)) != RL_OK) {
            fprintf(stderr, "randlora sweep teacher: %s\n", rl_errmsg());
            rc = cmd_exit_code(ost);
        }
        pr_experiment e = {.n_configs = c.n, .cols_header = "spectrum,method,bases,r,params", .config_id = ts_config_id,
                           .select = ts_select, .final = ts_final, .done_table = c.runs, .ctx = &c};
        if (rc == 0 && (ost = pr_run(&e, &plan, &o, &res)) != RL_OK) {
            fprintf(stderr, "randlora sweep teacher: %s\n", rl_errmsg());
            rc = ost == RL_ENOMEM || ost == RL_EWRITE ? 3 : 1;
        }
    }
    if (rc == 0 && sweep_is_root()) {
        long n = 0;
        if ((ost = rl_sweep_finish(c.runs, &n)) != RL_OK) rc = sweep_rc(rc, ost);
        else ts_summarise(&c);
        if (!o.quiet) fprintf(stderr, "teacher: %s; %ld final runs in %s/runs.csv\n",
                              res.complete ? "complete" : "INCOMPLETE (see above)", n, o.dir);
        if (rc == 0 && res.complete && strcmp(o.dir, "results/teacher") == 0) {
            static const char *const scripts[] = {"plots/teacher.gp"};
            if (sweep_render(scripts, 1, o.quiet)) rc = sweep_rc(rc, RL_EWRITE);
        }
    }
    pr_result_free(&res);
    rl_sweep_free(c.runs);
    rl_dealloc(c.val_x);
    for (int sp = 0; sp < TS_SPECS; sp++) {
        rl_dealloc(c.val_y[sp]);
        rl_teacher_free(&c.t[sp]);
    }
    return rc;
}
