/* protocol.c -- the shared fine-tuning protocol (protocol.h). */
#include "protocol.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analysis/rl_probe.h"
#include "analysis/rl_rank.h"
#include "core/rl_clock.h"
#include "core/rl_tensor.h"
#include "flags.h"
#include "io/rl_results.h"
#include "train/rl_train.h"

#define MAX_SPANS 80

pr_seeds pr_seeds_of(int seed)
{
    uint64_t s = (uint64_t)seed;
    return (pr_seeds){.bases_key = s, .init = 100u + s, .head = 500u + s, .data = 1000u + s};
}

rl_adapter_config pr_adapter_config(rl_method method, int r, int seed)
{
    rl_adapter_config ac = rl_adapter_config_default(method);
    ac.r = r;
    if (method == RL_METHOD_LORA) ac.alpha = 2.0 * r;
    if (method == RL_METHOD_RANDLORA) ac.alpha = 20.0 * r;
    ac.init_seed = pr_seeds_of(seed).init;
    return ac;
}

/* ---- training with early stopping ---- */

static size_t spans_total(const rl_span *sp, int n)
{
    size_t t = 0;
    for (int i = 0; i < n; i++) t += sp[i].n;
    return t;
}

static void spans_copy_out(const rl_span *sp, int n, float *dst)
{
    for (int i = 0; i < n; i++) {
        memcpy(dst, sp[i].p, sp[i].n * sizeof(float));
        dst += sp[i].n;
    }
}

static void spans_copy_in(rl_span *sp, int n, const float *src)
{
    for (int i = 0; i < n; i++) {
        memcpy(sp[i].p, src, sp[i].n * sizeof(float));
        src += sp[i].n;
    }
}

static bool better(double score, double loss, double best_score, double best_loss)
{
    return score > best_score || (score == best_score && loss < best_loss);
}

rl_status pr_fit_loop(rl_span *sp, int ns, const pr_train_cfg *c, long total, const pr_loop *L, pr_fit_out *o)
{
    memset(o, 0, sizeof *o);
    if (total < 1 || c->patience < 1)
        return rl_fail(RL_EINVAL, "fit: %ld steps and patience %d must be >= 1", total, c->patience);
    float *best = rl_alloc_floats(spans_total(sp, ns) + 1);
    double *times = malloc((size_t)total * sizeof *times);
    if (!best || !times) {
        rl_dealloc(best);
        free(times);
        return rl_fail(RL_ENOMEM, "fit: no memory for the best-state snapshot");
    }
    long every = c->eval_every > 0 ? c->eval_every : (c->steps_per_epoch > 0 ? c->steps_per_epoch : total);
    long curve_every = total / PR_MAX_CURVE + 1;
    double best_score, best_loss;
    rl_status st = L->eval(L->ctx, &best_score, &best_loss);
    o->evals = 1;
    if (st == RL_OK) spans_copy_out(sp, ns, best);
    int since = 0;
    long s = 0;
    while (st == RL_OK && s < total) {
        double loss, t0 = rl_now();
        st = L->step(L->ctx, s, &loss);
        if (st == RL_ENONFINITE) { /* a diverged run keeps its best state so far */
            rl_errclear();
            st = RL_OK;
            o->diverged = true;
            break;
        }
        if (st != RL_OK) break;
        times[s] = rl_now() - t0;
        if (s % curve_every == 0 && o->n_curve < PR_MAX_CURVE) {
            o->curve_step[o->n_curve] = s;
            o->curve_loss[o->n_curve++] = loss;
        }
        s++;
        if (s % every == 0 || s == total) {
            double sc, lo;
            if ((st = L->eval(L->ctx, &sc, &lo)) != RL_OK) break;
            o->evals++;
            if (better(sc, lo, best_score, best_loss)) {
                best_score = sc;
                best_loss = lo;
                o->best_step = s;
                spans_copy_out(sp, ns, best);
                since = 0;
            } else if (++since >= c->patience) {
                o->stopped_early = s < total;
                break;
            }
        }
    }
    if (st == RL_OK) {
        spans_copy_in(sp, ns, best);
        o->steps = s;
        o->val_acc = best_score;
        o->val_loss = best_loss;
        rl_summary sm;
        if (s > 0 && rl_stats_summarise(times, (int)s, &sm) == RL_OK) o->step_ms = 1e3 * sm.median;
    }
    rl_dealloc(best);
    free(times);
    return st;
}

typedef struct {
    rl_trainer *t;
    rl_batcher bt;
    float *x;
    int *y;
    const rl_dataset *val;
} cls_ctx;

static rl_status cls_step(void *ctx, long step, double *loss)
{
    (void)step;
    cls_ctx *c = ctx;
    int got;
    while ((got = rl_batcher_next(&c->bt, c->x, c->y, NULL, NULL)) == 0) {
    } /* 0 ends an epoch; the next call starts the next one */
    int hits;
    return rl_trainer_step(c->t, c->x, c->y, got, loss, &hits);
}

static rl_status cls_eval(void *ctx, double *score, double *loss)
{
    cls_ctx *c = ctx;
    return rl_evaluate(c->t, c->val->x, c->val->y, c->val->n, loss, score);
}

rl_status pr_fit(rl_model *m, const rl_dataset *fit, const rl_dataset *val, const pr_train_cfg *c,
                 uint64_t data_seed, pr_fit_out *out)
{
    memset(out, 0, sizeof *out);
    long per_epoch = c->steps_per_epoch > 0 ? c->steps_per_epoch : fit->n / c->batch;
    if (per_epoch < 1 || c->max_epochs < 1)
        return rl_fail(RL_EINVAL, "fit: %d examples, batch %d and %d epochs give no step", fit->n, c->batch,
                       c->max_epochs);
    long total = per_epoch * c->max_epochs;
    rl_train_config tc = {.opt = RL_OPT_ADAMW, .lr = c->lr, .weight_decay = c->weight_decay, .clip = c->clip,
                          .total_steps = total, .warmup = (long)(c->warmup_frac * (double)total), .lr_floor = 0.0};
    cls_ctx x = {.val = val};
    RL_TRY(rl_trainer_new(&x.t, m, &tc));
    rl_status st = rl_batcher_init(&x.bt, fit, c->batch, true, true, data_seed);
    x.x = rl_alloc_floats((size_t)c->batch * fit->dim);
    x.y = malloc((size_t)c->batch * sizeof *x.y);
    if (st == RL_OK && (!x.x || !x.y)) st = rl_fail(RL_ENOMEM, "fit: no memory for a batch");
    if (st == RL_OK) {
        pr_train_cfg cc = *c;
        cc.steps_per_epoch = per_epoch;
        pr_loop loop = {cls_step, cls_eval, &x};
        rl_span sp[MAX_SPANS];
        int ns = rl_model_spans(m, sp, MAX_SPANS);
        st = pr_fit_loop(sp, ns, &cc, total, &loop, out);
    }
    free(x.y);
    rl_dealloc(x.x);
    rl_batcher_free(&x.bt);
    rl_trainer_free(x.t);
    return st;
}

rl_status pr_eval(rl_model *m, const rl_dataset *d, double *acc, double *loss)
{
    rl_train_config tc = {.lr = 1e-3, .total_steps = 1};
    rl_trainer *t = NULL;
    RL_TRY(rl_trainer_new(&t, m, &tc));
    double l;
    rl_status st = rl_evaluate(t, d->x, d->y, d->n, &l, acc);
    if (loss) *loss = l;
    rl_trainer_free(t);
    return st;
}

/* ---- movement ---- */

rl_status pr_w0_take(pr_w0 *s, const rl_model *m, const char *targets)
{
    memset(s, 0, sizeof *s);
    int nl = rl_model_n_linears(m);
    for (int i = 0; i < nl - 1; i++) { /* the last linear is the head */
        if (!rl_model_target_listed(targets, rl_model_linear_target(m, i))) continue;
        if (s->n == 64) {
            pr_w0_free(s);
            return rl_fail(RL_EINVAL, "movement: more than 64 target linears");
        }
        int o, in;
        const float *w = rl_model_linear_weight(m, i, &o, &in);
        float *c = rl_alloc_floats((size_t)o * in);
        if (!c) {
            pr_w0_free(s);
            return rl_fail(RL_ENOMEM, "movement: no memory for a (%d, %d) copy", o, in);
        }
        memcpy(c, w, (size_t)o * in * sizeof(float));
        s->idx[s->n] = i;
        s->w0[s->n++] = c;
    }
    return RL_OK;
}

void pr_w0_free(pr_w0 *s)
{
    for (int i = 0; i < s->n; i++) rl_dealloc(s->w0[i]);
    s->n = 0;
}

rl_status pr_text_add(pr_text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return rl_fail(RL_EINVAL, "text: format error");
        if (t->buf && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return RL_OK;
        }
        size_t nc = (t->cap ? t->cap * 2 : 4096) + (size_t)n + 1;
        char *b = realloc(t->buf, nc);
        if (!b) return rl_fail(RL_ENOMEM, "text: no memory");
        if (!t->buf) b[0] = '\0';
        t->buf = b;
        t->cap = nc;
    }
}

void pr_text_free(pr_text *t)
{
    free(t->buf);
    memset(t, 0, sizeof *t);
}

rl_status pr_claim_row(pr_text *t, const char *task, const char *claim, const char *reference, const char *measured,
                       const char *verdict, const char *rule, const char *run)
{
    const char *f[7] = {task, claim, reference, measured, verdict, rule, run};
    for (int i = 0; i < 7; i++) {
        for (const char *p = f[i]; *p; p++) RL_TRY(pr_text_add(t, "%c", rl_csv_plain_char(*p)));
        RL_TRY(pr_text_add(t, i < 6 ? "," : "\n"));
    }
    return RL_OK;
}

rl_status pr_movement(rl_model *m, const pr_w0 *s, const char *prefix, pr_text *rows, pr_text *spectrum)
{
    rl_status st = RL_OK;
    for (int j = 0; j < s->n && st == RL_OK; j++) {
        int i = s->idx[j], o, in;
        const float *w = rl_model_linear_weight(m, i, &o, &in);
        size_t n = (size_t)o * in;
        float *dw = rl_alloc_floats(n);
        if (!dw) return rl_fail(RL_ENOMEM, "movement: no memory");
        rl_adapter *a = rl_model_linear_adapter(m, i);
        if (a) st = rl_adapter_delta_weight(a, dw);
        else
            for (size_t e = 0; e < n; e++) dw[e] = w[e] - s->w0[j][e];
        double f0 = 0;
        for (size_t e = 0; e < n; e++) f0 += (double)s->w0[j][e] * s->w0[j][e];
        rl_spectrum *sp = NULL;
        if (st == RL_OK) st = rl_spectrum_new(&sp, dw, o, in, 0.0);
        if (st == RL_OK) {
            double tot = sp->fro * sp->fro, acc = 0;
            int k90 = 0;
            while (tot > 0 && k90 < sp->k && acc < 0.9 * tot) acc += sp->s[k90] * sp->s[k90], k90++;
            st = pr_text_add(rows, "%s,%s,%d,%d,%.6g,%d,%d,%.4f\n", prefix, rl_model_linear_name(m, i), o, in,
                             f0 > 0 ? sp->fro / sqrt(f0) : 0.0, sp->rank, k90, tot > 0 ? sp->effective_rank : 0.0);
            acc = 0;
            for (int k = 0; spectrum && st == RL_OK && tot > 0 && k < sp->k; k++) {
                acc += sp->s[k] * sp->s[k];
                st = pr_text_add(spectrum, "%s,%s,%d,%.6f\n", prefix, rl_model_linear_name(m, i), k + 1, acc / tot);
            }
        }
        rl_spectrum_free(sp);
        rl_dealloc(dw);
    }
    return st;
}

/* ---- learning-rate grid ---- */

double pr_grid_lr(const pr_grid *g, int k) { return pow(10.0, (double)k / g->per_decade); }

pr_pick pr_grid_pick(const pr_grid *g, const int *k, const double *score, const double *loss, int n)
{
    pr_pick p = {0};
    for (int i = 1; i < n; i++)
        if (better(score[i], loss[i], score[p.best], loss[p.best])) p.best = i;
    int kb = k[p.best];
    if (p.best == 0 && kb > g->k_min) {
        p.need_more = true;
        p.next_k = kb - 1;
    } else if (p.best == n - 1 && kb < g->k_max) {
        p.need_more = true;
        p.next_k = kb + 1;
    }
    p.on_limit = !p.need_more && (kb == g->k_min || kb == g->k_max) && (p.best == 0 || p.best == n - 1);
    return p;
}

/* ---- budgets ---- */

int pr_match_budget(long target, const long *cand, int n, double *rel)
{
    int best = -1;
    double bd = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)cand[i] / (double)target - 1.0);
        if (best < 0 || d < bd || (d == bd && cand[i] < cand[best])) best = i, bd = d;
    }
    if (best >= 0 && rel) *rel = (double)cand[best] / (double)target - 1.0;
    return best;
}

/* ---- comparisons ---- */

bool pr_compare(pr_cmp *c, const double *a, int na, const double *b, int nb, double margin)
{
    memset(c, 0, sizeof *c);
    return rl_welch(a, na, b, nb, PR_ALPHA, &c->w) == RL_OK && rl_tost(a, na, b, nb, margin, PR_ALPHA, &c->t) == RL_OK;
}

void pr_decide(pr_cmp *const *c, int n)
{
    double p[64] = {0}, q[64] = {0};
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) p[i] = c[i]->w.p;
    rl_holm(p, n, q);
    for (int i = 0; i < n; i++) {
        c[i]->p_holm = q[i];
        if (q[i] < PR_ALPHA) c[i]->verdict = c[i]->w.diff > 0 ? "better" : "worse";
        else c[i]->verdict = c[i]->t.verdict == RL_EQUIVALENT ? "equivalent" : "inconclusive";
    }
}

const char *pr_family_verdict(pr_cmp *const *c, int n, char *counts, size_t cl)
{
    int b = 0, w = 0, e = 0, u = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(c[i]->verdict, "better")) b++;
        else if (!strcmp(c[i]->verdict, "worse")) w++;
        else if (!strcmp(c[i]->verdict, "equivalent")) e++;
        else u++;
    }
    snprintf(counts, cl, "better in %d / worse in %d / equivalent in %d / inconclusive in %d of %d", b, w, e, u, n);
    if (n == 0) return "not measured";
    if (b == n) return "holds";
    if (b > 0 && w == 0) return "holds in part";
    if (b > 0 && w > 0) return "mixed";
    if (w > 0) return "does not hold";
    if (e == n) return "does not hold (equivalent)";
    return "inconclusive";
}

/* ---- the runner ---- */

/* the integer value of flag argv[*i] in lo..hi (experiments/flags.h), advancing *i */
static int int_flag(const char *cmd, int argc, char **argv, int *i, int lo, int hi, int *out)
{
    const char *flag = argv[*i], *v = flag_value(cmd, argc, argv, i);
    return v && flag_int(cmd, flag, v, lo, hi, out) ? 1 : -1;
}

int pr_parse_flag(void *ctx, int argc, char **argv, int *i)
{
    pr_flags *f = ctx;
    const char *a = argv[*i];
    if (!strcmp(a, "--smoke")) return f->smoke = true, 1;
    if (!strcmp(a, "--jobs")) return int_flag(f->cmd, argc, argv, i, 1, 64, &f->jobs);
    if ((f->accept & PR_ACCEPT_SEEDS) && !strcmp(a, "--seeds")) return int_flag(f->cmd, argc, argv, i, 2, 64, &f->seeds);
    if ((f->accept & PR_ACCEPT_POISON) && !strcmp(a, "--poison-test-labels")) return f->poison = true, 1;
    return 0;
}

int pr_flags_size(const pr_flags *f, const sweep_opts *o)
{
    if (f->smoke && o->full) {
        fprintf(stderr, "%s: --smoke and --full exclude each other\n", f->cmd);
        return -1;
    }
    return f->smoke ? 0 : o->full ? 2 : 1;
}

enum { TASK_SELECT = 0, TASK_FINAL = 1 };
typedef struct {
    int kind, ci, k, seed;
    char key[640];
} pr_task;

typedef struct {
    const pr_experiment *e;
    const pr_plan *p;
    const sweep_opts *o;
    rl_sweep *sel;
    int ncols;
    pr_task *tasks;
    int n_tasks, cap;
} runner;

#define SEL_FIELDS "lr,k,seed,val_acc,val_loss,steps,best_step,evals,stopped_early,diverged,step_ms"

static void config_of(const runner *R, int ci, char *key, size_t kl, char *cols, size_t cl)
{
    R->e->config_id(R->e->ctx, ci, key, kl, cols, cl);
}

static void point_key(const runner *R, int ci, int k, int seed, char *out, size_t n)
{
    char key[400], cols[400];
    config_of(R, ci, key, sizeof key, cols, sizeof cols);
    snprintf(out, n, "%s;lr=%.4g;seed=%d", key, pr_grid_lr(&R->p->grid, k), seed);
}

static bool is_mine(const runner *R, const char *key)
{
    if (R->o->shard.count <= 1) return true;
    char h[17];
    rl_hash_hex(key, h);
    return strtoull(h + 8, NULL, 16) % (unsigned long long)R->o->shard.count == (unsigned long long)R->o->shard.index;
}

static rl_status add_task(runner *R, int kind, int ci, int k, int seed, const char *key)
{
    if (R->n_tasks == R->cap) {
        int nc = R->cap ? 2 * R->cap : 64;
        pr_task *t = realloc(R->tasks, (size_t)nc * sizeof *t);
        if (!t) return rl_fail(RL_ENOMEM, "sweep: no memory for the plan");
        R->tasks = t;
        R->cap = nc;
    }
    pr_task *t = &R->tasks[R->n_tasks++];
    t->kind = kind;
    t->ci = ci;
    t->k = k;
    t->seed = seed;
    snprintf(t->key, sizeof t->key, "%s", key);
    return RL_OK;
}

/* Read back a selection point's record (fields after the config columns). */
static rl_status read_sel(const runner *R, const char *key, pr_fit_out *f)
{
    char *rows = NULL;
    RL_TRY(rl_sweep_get(R->sel, key, &rows));
    memset(f, 0, sizeof *f);
    char *p = rows;
    for (int i = 0; i < R->ncols + 3 && p; i++) { /* skip config columns, lr, k, seed */
        p = strchr(p, ',');
        if (p) p++;
    }
    int stopped = 0, diverged = 0;
    int got = p ? sscanf(p, "%lf,%lf,%ld,%ld,%d,%d,%d,%lf", &f->val_acc, &f->val_loss, &f->steps, &f->best_step,
                         &f->evals, &stopped, &diverged, &f->step_ms)
                : 0;
    free(rows);
    if (got != 8) return rl_fail(RL_EFORMAT, "%s: selection point '%s' has a malformed row", R->o->dir, key);
    f->stopped_early = stopped;
    f->diverged = diverged;
    return RL_OK;
}

typedef struct {
    int a, b;            /* evaluated grid [a, b] */
    bool decided, on_limit;
    int chosen;
    double mean_acc[64], mean_loss[64], mean_steps[64];
    int n_stopped[64], n_diverged[64];
} cfg_state;

/* Walk config ci's selection: add what is missing (or the final runs once
 * decided) to the task list. */
static rl_status plan_config(runner *R, int ci, cfg_state *cs)
{
    const pr_grid *g = &R->p->grid;
    memset(cs, 0, sizeof *cs);
    cs->a = g->k_lo;
    cs->b = g->k_hi;
    char key[640];
    for (;;) {
        if (cs->b - cs->a + 1 > 64) return rl_fail(RL_EINVAL, "sweep: learning-rate grid wider than 64 points");
        bool missing = false;
        for (int k = cs->a; k <= cs->b; k++)
            for (int s = 0; s < R->p->sel_seeds; s++) {
                point_key(R, ci, k, s, key, sizeof key);
                if (!rl_sweep_done(R->sel, key)) {
                    missing = true;
                    RL_TRY(add_task(R, TASK_SELECT, ci, k, s, key));
                }
            }
        if (missing) return RL_OK;
        int ks[64];
        for (int k = cs->a; k <= cs->b; k++) {
            int i = k - cs->a;
            ks[i] = k;
            double sa = 0, sl = 0, st = 0;
            cs->n_stopped[i] = cs->n_diverged[i] = 0;
            for (int s = 0; s < R->p->sel_seeds; s++) {
                pr_fit_out f;
                point_key(R, ci, k, s, key, sizeof key);
                RL_TRY(read_sel(R, key, &f));
                sa += f.val_acc;
                sl += f.val_loss;
                st += (double)f.steps;
                cs->n_stopped[i] += f.stopped_early;
                cs->n_diverged[i] += f.diverged;
            }
            cs->mean_acc[i] = sa / R->p->sel_seeds;
            cs->mean_loss[i] = isfinite(sl) ? sl / R->p->sel_seeds : INFINITY;
            cs->mean_steps[i] = st / R->p->sel_seeds;
        }
        pr_pick pk = pr_grid_pick(g, ks, cs->mean_acc, cs->mean_loss, cs->b - cs->a + 1);
        if (pk.need_more) {
            if (pk.next_k < cs->a) cs->a = pk.next_k;
            else cs->b = pk.next_k;
            continue;
        }
        cs->decided = true;
        cs->chosen = cs->a + pk.best;
        cs->on_limit = pk.on_limit;
        break;
    }
    for (int s = 0; s < R->p->seeds; s++) {
        point_key(R, ci, cs->chosen, s, key, sizeof key);
        if (!rl_sweep_done(R->e->done_table, key)) RL_TRY(add_task(R, TASK_FINAL, ci, cs->chosen, s, key));
    }
    return RL_OK;
}

static rl_status run_task(runner *R, const pr_task *t)
{
    const pr_experiment *e = R->e;
    double lr = pr_grid_lr(&R->p->grid, t->k);
    if (t->kind == TASK_SELECT) {
        pr_fit_out f;
        RL_TRY(e->select(e->ctx, t->ci, lr, t->seed, &f));
        char key[400], cols[400], row[1200];
        config_of(R, t->ci, key, sizeof key, cols, sizeof cols);
        snprintf(row, sizeof row, "%s,%.4g,%d,%d,%.6f,%.6f,%ld,%ld,%d,%d,%d,%.4f\n", cols, lr, t->k, t->seed, f.val_acc,
                 f.val_loss, f.steps, f.best_step, f.evals, f.stopped_early, f.diverged, f.step_ms);
        return rl_sweep_put(R->sel, t->key, row);
    }
    pr_fit_out sf, *sel = NULL;
    if (t->seed < R->p->sel_seeds) {
        char key[640];
        point_key(R, t->ci, t->k, t->seed, key, sizeof key);
        RL_TRY(read_sel(R, key, &sf));
        sel = &sf;
    }
    return e->final(e->ctx, t->ci, lr, t->seed, sel, t->key);
}

/* Run the tasks idx with idx % jobs == w; the progress line names the worker. */
static rl_status run_share(runner *R, const int *mine, int n_mine, int w, int jobs, const char *what)
{
    long cnt = 0;
    for (int i = w; i < n_mine; i += jobs) cnt++;
    rl_progress pg;
    char label[160];
    snprintf(label, sizeof label, jobs > 1 ? "%s [job %d/%d]" : "%s", what, w + 1, jobs);
    rl_progress_start(&pg, label, cnt, R->o->quiet);
    rl_status st = RL_OK;
    for (int i = w; i < n_mine && st == RL_OK; i += jobs) {
        const pr_task *t = &R->tasks[mine[i]];
        st = run_task(R, t);
        if (st != RL_OK) fprintf(stderr, "\n%s: %s: %s\n", what, t->key, rl_errmsg());
        rl_progress_step(&pg, t->key, false);
    }
    rl_progress_end(&pg);
    return st;
}

static rl_status run_round(runner *R, const int *mine, int n_mine, const char *what)
{
    int jobs = R->p->jobs > 1 && sweep_mpi_size() == 1 ? R->p->jobs : 1;
    if (jobs > n_mine) jobs = n_mine;
    if (jobs <= 1) return run_share(R, mine, n_mine, 0, 1, what);
    fflush(NULL);
    pid_t pids[64];
    int started = 0;
    rl_status st = RL_OK;
    for (int w = 0; w < jobs; w++) {
        pid_t pid = fork();
        if (pid < 0) {
            st = rl_fail(RL_EIO, "%s: fork: %s", what, strerror(errno));
            break;
        }
        if (pid == 0) { /* worker: its share, then leave without the parent's atexit work */
            rl_status ws = run_share(R, mine, n_mine, w, jobs, what);
            fflush(NULL);
            _exit(ws == RL_OK ? 0 : 1);
        }
        pids[started++] = pid;
    }
    int failed = 0;
    for (int w = 0; w < started; w++) {
        int status = 0;
        while (waitpid(pids[w], &status, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
    }
    if (st == RL_OK && failed) st = rl_fail(RL_EIO, "%s: %d of %d worker processes failed (messages above)", what, failed, started);
    return st;
}

static rl_status write_selection(runner *R, cfg_state *cs, int n_cfg)
{
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    if (!out) return rl_fail(RL_ENOMEM, "sweep: no memory");
    len += (size_t)snprintf(out, cap,
                            "%s,lr,k,seeds,val_acc_mean,val_loss_mean,steps_mean,stopped_early,diverged,chosen,note\n",
                            R->e->cols_header);
    for (int ci = 0; ci < n_cfg; ci++) {
        if (!cs[ci].decided) continue;
        char key[400], cols[400];
        config_of(R, ci, key, sizeof key, cols, sizeof cols);
        for (int k = cs[ci].a; k <= cs[ci].b; k++) {
            int i = k - cs[ci].a;
            bool ch = k == cs[ci].chosen;
            if (len + 1024 > cap) {
                char *o2 = realloc(out, cap *= 2);
                if (!o2) {
                    free(out);
                    return rl_fail(RL_ENOMEM, "sweep: no memory");
                }
                out = o2;
            }
            len += (size_t)snprintf(out + len, cap - len, "%s,%.4g,%d,%d,%.6f,%.6f,%.1f,%d,%d,%d,%s\n", cols,
                                    pr_grid_lr(&R->p->grid, k), k, R->p->sel_seeds, cs[ci].mean_acc[i],
                                    cs[ci].mean_loss[i], cs[ci].mean_steps[i], cs[ci].n_stopped[i],
                                    cs[ci].n_diverged[i], ch,
                                    ch && cs[ci].on_limit ? "best on the grid's outer limit: not bracketed" : "");
        }
    }
    char path[700];
    snprintf(path, sizeof path, "%s/selection.csv", R->o->dir);
    rl_status st = rl_write_file_atomic(path, out, len);
    free(out);
    return st;
}

static int count_fields(const char *s)
{
    int n = 1;
    for (; *s; s++) n += *s == ',';
    return n;
}

rl_status pr_run(const pr_experiment *e, const pr_plan *p, const sweep_opts *o, pr_result *res)
{
    memset(res, 0, sizeof *res);
    if (p->sel_seeds < 1 || p->seeds < p->sel_seeds || p->grid.per_decade < 1 || p->grid.k_lo > p->grid.k_hi ||
        p->grid.k_min > p->grid.k_lo || p->grid.k_max < p->grid.k_hi)
        return rl_fail(RL_EINVAL, "sweep: bad plan (seeds %d/%d, grid %d..%d in %d..%d)", p->sel_seeds, p->seeds,
                       p->grid.k_lo, p->grid.k_hi, p->grid.k_min, p->grid.k_max);
    int n_cfg = e->n_configs;
    if (o->limit > 0 && o->limit < n_cfg) n_cfg = (int)o->limit;
    runner R = {.e = e, .p = p, .o = o, .ncols = count_fields(e->cols_header)};
    char hdr[600];
    snprintf(hdr, sizeof hdr, "%s,%s", e->cols_header, SEL_FIELDS);
    RL_TRY(rl_sweep_open(&R.sel, o->dir, "select", hdr));
    cfg_state *cs = calloc((size_t)(n_cfg > 0 ? n_cfg : 1), sizeof *cs);
    int *mine = malloc(sizeof(int) * 1);
    res->chosen_k = calloc((size_t)(n_cfg > 0 ? n_cfg : 1), sizeof *res->chosen_k);
    res->decided = calloc((size_t)(n_cfg > 0 ? n_cfg : 1), sizeof *res->decided);
    res->on_limit = calloc((size_t)(n_cfg > 0 ? n_cfg : 1), sizeof *res->on_limit);
    rl_status st = cs && mine && res->chosen_k && res->decided && res->on_limit ? RL_OK
                                                                                : rl_fail(RL_ENOMEM, "sweep: no memory");
    const char *what = strrchr(o->dir, '/') ? strrchr(o->dir, '/') + 1 : o->dir;
    while (st == RL_OK) {
        R.n_tasks = 0;
        for (int ci = 0; ci < n_cfg && st == RL_OK; ci++) st = plan_config(&R, ci, &cs[ci]);
        if (st != RL_OK) break;
        if (R.n_tasks == 0) {
            res->complete = true;
            break;
        }
        int *m2 = realloc(mine, (size_t)R.n_tasks * sizeof *mine);
        if (!m2) {
            st = rl_fail(RL_ENOMEM, "sweep: no memory");
            break;
        }
        mine = m2;
        int n_mine = 0, n_sel = 0;
        for (int i = 0; i < R.n_tasks; i++) {
            n_sel += R.tasks[i].kind == TASK_SELECT;
            if (is_mine(&R, R.tasks[i].key)) mine[n_mine++] = i;
        }
        res->rounds++;
        if (!o->quiet)
            fprintf(stderr, "%s: round %d: %d selection and %d final runs to do, %d of them here%s\n", what, res->rounds,
                    n_sel, R.n_tasks - n_sel, n_mine, p->jobs > 1 ? " (worker processes below)" : "");
        if (n_mine > 0) {
            st = run_round(&R, mine, n_mine, what);
            res->trained += n_mine;
        }
        sweep_barrier();
        if (st == RL_OK && n_mine == 0 && sweep_mpi_size() == 1) {
            if (!o->quiet)
                fprintf(stderr, "%s: the %d runs left belong to other shards; rerun this command when they are done "
                                "(the next round depends on them)\n", what, R.n_tasks);
            break;
        }
    }
    if (st == RL_OK) {
        bool all = true;
        for (int ci = 0; ci < n_cfg; ci++) {
            res->decided[ci] = cs[ci].decided;
            res->chosen_k[ci] = cs[ci].chosen;
            res->on_limit[ci] = cs[ci].on_limit;
            all &= cs[ci].decided;
        }
        if (all && sweep_is_root()) st = write_selection(&R, cs, n_cfg);
        long n;
        if (st == RL_OK && sweep_is_root()) st = rl_sweep_finish(R.sel, &n);
    }
    free(mine);
    free(cs);
    free(R.tasks);
    rl_sweep_free(R.sel);
    if (st != RL_OK) pr_result_free(res);
    return st;
}

void pr_result_free(pr_result *r)
{
    free(r->chosen_k);
    free(r->decided);
    free(r->on_limit);
    r->chosen_k = NULL;
    r->decided = r->on_limit = NULL;
}
