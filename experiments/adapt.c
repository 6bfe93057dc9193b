/* adapt.c -- one adaptation experiment under the protocol (adapt.h). */
#include "adapt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/rl_probe.h"
#include "analysis/rl_stats.h"
#include "commands.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "io/rl_results.h"

void ad_model_path(char *out, size_t n, const char *dir, const char *task, const char *method, const char *bases, int r,
                   int seed)
{
    snprintf(out, n, "%s/models/%s_%s_%s_r%d_s%d.safetensors", dir, task, method, bases, r, seed);
}

static const char *bases_col(const ad_cfg *c) { return c->method == RL_METHOD_RANDLORA ? rl_bases_kind_name(c->bases) : "-"; }

/* ---- configurations and budgets ---- */

long ad_params(ad_exp *e, int task, rl_method method, int r)
{
    rl_model *m = e->m[task];
    RL_ASSERT(m, "ad_params: task %d has no model yet", task);
    int nl = rl_model_n_linears(m);
    long p = 0;
    for (int i = 0; i < nl; i++) {
        int o, in;
        rl_model_linear_weight(m, i, &o, &in);
        bool head = i == nl - 1;
        if (head) p += (long)o * in + o;
        else if (method != RL_METHOD_FULL && rl_model_target_listed(e->targets, rl_model_linear_target(m, i)))
            p += (long)rl_param_count_formula(method, r, o, in);
    }
    if (method == RL_METHOD_FULL) { /* every base weight: the model counts them */
        rl_model_detach(m);
        p = (long)rl_model_trainable_count(m);
    }
    return p;
}

int ad_add(ad_exp *e, int task, rl_method method, rl_bases_kind bases, int r)
{
    for (int i = 0; i < e->n_cfg; i++)
        if (e->cfg[i].task == task && e->cfg[i].method == method && e->cfg[i].bases == bases && e->cfg[i].r == r)
            return i;
    RL_ASSERT(e->n_cfg < AD_MAX_CFG, "%s: more than %d configurations", e->name, AD_MAX_CFG);
    e->cfg[e->n_cfg] = (ad_cfg){task, method, bases, r, ad_params(e, task, method, r)};
    return e->n_cfg++;
}

void ad_add_matched(ad_exp *e, int task, const int *rr, int n, int lora_max, bool always)
{
    long lora[512];
    if (lora_max > 512) lora_max = 512;
    for (int r = 1; r <= lora_max; r++) lora[r - 1] = ad_params(e, task, RL_METHOD_LORA, r);
    for (int i = 0; i < n; i++) {
        int c = ad_add(e, task, RL_METHOD_RANDLORA, RL_BASES_DENSE, rr[i]);
        double rel;
        int j = pr_match_budget(e->cfg[c].params, lora, lora_max, &rel);
        if (j >= 0 && (fabs(rel) <= PR_BUDGET_TOL || always)) ad_add(e, task, RL_METHOD_LORA, RL_BASES_DENSE, j + 1);
    }
}

rl_status ad_adapt(rl_model *m, const char *targets, rl_method method, rl_bases_kind bases, int r, int seed)
{
    pr_seeds sd = pr_seeds_of(seed);
    rl_adapter_config ac = pr_adapter_config(method, r, seed);
    rl_model_reset_head(m, sd.head);
    return rl_model_attach(m, &ac, targets, bases, sd.bases_key, RL_PATH_AUTO);
}

/* ---- the protocol's callbacks ---- */

static void config_id(void *vctx, int ci, char *key, size_t kl, char *cols, size_t cl)
{
    const ad_exp *e = vctx;
    const ad_cfg *f = &e->cfg[ci];
    snprintf(key, kl, "size=%s;task=%s;method=%s;bases=%s;r=%d", e->size_name, e->task_names[f->task],
             rl_method_name(f->method), bases_col(f), f->r);
    snprintf(cols, cl, "%s,%s,%s,%d,%ld", e->task_names[f->task], rl_method_name(f->method), bases_col(f), f->r,
             f->params);
}

/* Pretrained weights, then the configuration's head and adapters for `seed`. */
static rl_status prepare(ad_exp *e, const ad_cfg *f, int seed)
{
    rl_model *m = e->m[f->task];
    RL_TRY(e->backbone_only ? rl_model_load_backbone(m, e->base_path) : rl_model_load_base(m, e->base_path));
    return ad_adapt(m, e->targets, f->method, f->bases, f->r, seed);
}

static rl_status ad_select(void *vctx, int ci, double lr, int seed, pr_fit_out *out)
{
    ad_exp *e = vctx;
    const ad_cfg *f = &e->cfg[ci];
    RL_TRY(prepare(e, f, seed));
    pr_train_cfg tc = e->train[f->task];
    tc.lr = lr;
    return pr_fit(e->m[f->task], &e->fit[f->task], &e->val[f->task], &tc, pr_seeds_of(seed).data, out);
}

static rl_status ad_final(void *vctx, int ci, double lr, int seed, const pr_fit_out *sel, const char *key)
{
    ad_exp *e = vctx;
    const ad_cfg *f = &e->cfg[ci];
    const int t = f->task;
    rl_model *m = e->m[t];
    RL_TRY(prepare(e, f, seed));
    pr_w0 w0;
    RL_TRY(pr_w0_take(&w0, m, e->targets));
    size_t mem0 = rl_mem_current();
    rl_mem_reset_peak();
    pr_train_cfg tc = e->train[t];
    tc.lr = lr;
    pr_fit_out fo;
    double tr = 0, te = 0;
    rl_status st = pr_fit(m, &e->fit[t], &e->val[t], &tc, pr_seeds_of(seed).data, &fo);
    size_t peak = rl_mem_peak() - mem0;
    long params = (long)rl_model_trainable_count(m);
    if (st == RL_OK && params != f->params)
        st = rl_fail(RL_EINVAL, "%s: %s has %ld trainable parameters, the budget formula says %ld", e->name, key, params,
                     f->params);
    if (st == RL_OK) st = pr_eval(m, &e->fit[t], &tr, NULL);
    if (st == RL_OK) st = pr_eval(m, &e->test[t], &te, NULL); /* the test set, once, for the chosen setting */
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s,%s,%s,%d,%d", e->task_names[t], rl_method_name(f->method), bases_col(f), f->r,
             seed);
    pr_text mv = {0}, sp = {0}, cv = {0};
    if (st == RL_OK) st = pr_movement(m, &w0, prefix, &mv, seed == 0 ? &sp : NULL);
    for (int k = 0; st == RL_OK && k < fo.n_curve; k++)
        st = pr_text_add(&cv, "%s,%ld,%.5f\n", prefix, fo.curve_step[k], fo.curve_loss[k]);
    if (st == RL_OK) { /* the merged model, for `sweep similarity` */
        char mp[800];
        ad_model_path(mp, sizeof mp, e->o->dir, e->task_names[t], rl_method_name(f->method), bases_col(f), f->r, seed);
        st = rl_model_merge_adapters(m);
        if (st == RL_OK) st = rl_model_save_base(m, mp);
    }
    /* a selection seed's final run repeats its selection run exactly */
    char va[2][32];
    snprintf(va[0], sizeof va[0], "%.6f", sel ? sel->val_acc : 0.0); /* the precision select.csv keeps */
    snprintf(va[1], sizeof va[1], "%.6f", fo.val_acc);
    const char *repeat = !sel ? "-" : (!strcmp(va[0], va[1]) && sel->steps == fo.steps) ? "same" : "DIFFERS";
    char row[1024];
    snprintf(row, sizeof row, "%s,%ld,%.4g,%.4f,%.4f,%.4f,%.5f,%ld,%ld,%d,%d,%.3f,%zu,%d,%d,%d,%s\n", prefix, params, lr,
             tr, fo.val_acc, te, fo.val_loss, fo.steps, fo.best_step, fo.stopped_early, fo.diverged, fo.step_ms, peak,
             e->fit[t].n, e->val[t].n, e->test[t].n, repeat);
    if (st == RL_OK && cv.len) st = rl_sweep_put(e->curves, key, cv.buf);
    if (st == RL_OK) st = rl_sweep_put(e->movement, key, mv.buf ? mv.buf : "");
    if (st == RL_OK && sp.len) st = rl_sweep_put(e->spectrum, key, sp.buf);
    if (st == RL_OK) st = rl_sweep_put(e->runs, key, row); /* last: marks the run done */
    pr_text_free(&mv);
    pr_text_free(&sp);
    pr_text_free(&cv);
    pr_w0_free(&w0);
    return st;
}

/* ---- summaries and verdicts (from runs.csv) ---- */

typedef struct {
    char task[16], method[16], bases[16];
    int r;
    long params;
    double lr;
    int n;
    double test[64], train[64], gap[64], steps[64];
    int stopped, diverged;
} ad_group;

static int read_groups(const char *dir, ad_group **out)
{
    char path[700];
    snprintf(path, sizeof path, "%s/runs.csv", dir);
    csv_table t;
    *out = NULL;
    if (csv_read(path, &t) != RL_OK) return -1;
    ad_group *g = calloc((size_t)t.nrow + 1, sizeof *g);
    int ng = 0;
    int ct = csv_col(&t, "task"), cm = csv_col(&t, "method"), cb = csv_col(&t, "bases"), cr = csv_col(&t, "r"),
        cp = csv_col(&t, "params"), cl = csv_col(&t, "lr"), ctr = csv_col(&t, "train_acc"),
        cte = csv_col(&t, "test_acc"), cs = csv_col(&t, "steps"), ce = csv_col(&t, "stopped_early"),
        cd = csv_col(&t, "diverged");
    for (int i = 0; g && i < t.nrow; i++) {
        char **row = t.rows[i];
        int j = 0;
        while (j < ng && !(strcmp(g[j].task, row[ct]) == 0 && strcmp(g[j].method, row[cm]) == 0 &&
                           strcmp(g[j].bases, row[cb]) == 0 && g[j].r == atoi(row[cr])))
            j++;
        if (j == ng) {
            ng++;
            snprintf(g[j].task, sizeof g[j].task, "%s", row[ct]);
            snprintf(g[j].method, sizeof g[j].method, "%s", row[cm]);
            snprintf(g[j].bases, sizeof g[j].bases, "%s", row[cb]);
            g[j].r = atoi(row[cr]);
            g[j].params = atol(row[cp]);
            g[j].lr = atof(row[cl]);
        }
        if (g[j].n < 64) {
            int k = g[j].n++;
            g[j].train[k] = atof(row[ctr]);
            g[j].test[k] = atof(row[cte]);
            g[j].gap[k] = g[j].train[k] - g[j].test[k];
            g[j].steps[k] = atof(row[cs]);
            g[j].stopped += atoi(row[ce]);
            g[j].diverged += atoi(row[cd]);
        }
    }
    csv_free(&t);
    *out = g;
    return g ? ng : -1;
}

static void write_summary(const char *dir, const ad_group *g, int ng)
{
    pr_text o = {0};
    pr_text_add(&o, "task,method,bases,r,params,lr,seeds,test_acc_mean,test_acc_ci95,train_acc_mean,gap_mean,gap_ci95,"
                    "steps_mean,stopped_early,diverged\n");
    for (int i = 0; i < ng; i++) {
        double mt, ht, mr, hr, mg, hg, ms, hs;
        rl_mean_ci95(g[i].test, g[i].n, &mt, &ht);
        rl_mean_ci95(g[i].train, g[i].n, &mr, &hr);
        rl_mean_ci95(g[i].gap, g[i].n, &mg, &hg);
        rl_mean_ci95(g[i].steps, g[i].n, &ms, &hs);
        pr_text_add(&o, "%s,%s,%s,%d,%ld,%.4g,%d,%.4f,%.4f,%.4f,%.4f,%.4f,%.0f,%d,%d\n", g[i].task, g[i].method,
                    g[i].bases, g[i].r, g[i].params, g[i].lr, g[i].n, mt, ht, mr, mg, hg, ms, g[i].stopped,
                    g[i].diverged);
    }
    char path[700];
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    if (o.buf && rl_write_file_atomic(path, o.buf, o.len) != RL_OK) fprintf(stderr, "finetune: %s\n", rl_errmsg());
    pr_text_free(&o);
}

#define AD_MARGIN 0.01 /* equivalence margin: one accuracy point */

/* A comparison of two groups' per-seed values (protocol.h: pr_cmp). */
typedef struct {
    const ad_group *a, *b;
    double rel; /* budget difference b/a - 1 */
    bool matched;
    pr_cmp s;
} ad_cmp;

static bool compare(ad_cmp *c, const double *va, const double *vb)
{
    return pr_compare(&c->s, va, c->a->n, vb, c->b->n, AD_MARGIN);
}

static void decide(ad_cmp *c, int n)
{
    pr_cmp *p[64];
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) p[i] = &c[i].s;
    pr_decide(p, n);
}

static const char *family_verdict(ad_cmp *c, int n, char *counts, size_t cl)
{
    pr_cmp *p[64];
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) p[i] = &c[i].s;
    return pr_family_verdict(p, n, counts, cl);
}

static const ad_group *find_group(const ad_group *g, int ng, const char *task, const char *method, const char *bases,
                                  int r)
{
    for (int i = 0; i < ng; i++)
        if (!strcmp(g[i].task, task) && !strcmp(g[i].method, method) && (!bases || !strcmp(g[i].bases, bases)) &&
            (r < 0 || g[i].r == r))
            return &g[i];
    return NULL;
}

static void pair_row(pr_text *o, const char *claim, const ad_cmp *c)
{
    pr_text_add(o, "%s,%s,%s,%s,%d,%ld,%s,%s,%d,%ld,%.4f,%d,%d,%d,%.4f,%.4f,%.4f,%.4g,%.4g,%.4f,%.4f,%s\n",
                c->a->task, claim, c->a->method, c->a->bases, c->a->r, c->a->params, c->b->method, c->b->bases, c->b->r,
                c->b->params, c->rel, c->matched, c->a->n, c->b->n, c->s.w.diff, c->s.w.lo, c->s.w.hi, c->s.w.p, c->s.p_holm,
                c->s.t.w.lo, c->s.t.w.hi, c->matched ? c->s.verdict : "not matched");
}

/* Pairs of one claim for a task: every RandLora dense config against the
 * nearest-budget config of `other` (method), matched within 5%. */
static int matched_pairs(const ad_group *g, int ng, const char *task, const char *other, ad_cmp *out, pr_text *rows,
                         const char *claim)
{
    int n = 0;
    ad_cmp unmatched[64];
    int nu = 0;
    for (int i = 0; i < ng; i++) {
        if (strcmp(g[i].task, task) || strcmp(g[i].method, "randlora") || strcmp(g[i].bases, "dense")) continue;
        const ad_group *best = NULL;
        double bd = 0;
        for (int j = 0; j < ng; j++) {
            if (strcmp(g[j].task, task) || strcmp(g[j].method, other)) continue;
            double d = fabs((double)g[j].params / (double)g[i].params - 1.0);
            if (!best || d < bd) best = &g[j], bd = d;
        }
        if (!best) continue;
        ad_cmp c = {.a = &g[i], .b = best, .rel = (double)best->params / (double)g[i].params - 1.0};
        c.matched = fabs(c.rel) <= PR_BUDGET_TOL && compare(&c, g[i].test, best->test);
        if (c.matched && n < 64) out[n++] = c;
        else if (!c.matched && nu < 64) unmatched[nu++] = c;
    }
    decide(out, n);
    for (int i = 0; i < n; i++) pair_row(rows, claim, &out[i]);
    for (int i = 0; i < nu; i++) pair_row(rows, claim, &unmatched[i]);
    return n;
}

static void write_claims(const ad_exp *e, const char *dir, const ad_group *g, int ng)
{
    pr_text cl = {0}, pr = {0};
    pr_text_add(&cl, PR_CLAIM_HEADER);
    pr_text_add(&pr, "task,claim,a_method,a_bases,a_r,a_params,b_method,b_bases,b_r,b_params,budget_rel,matched,"
                     "a_seeds,b_seeds,diff,ci_lo,ci_hi,p,p_holm,ci90_lo,ci90_hi,verdict\n");
    const char *run = e->size_name;
    const char *rule_pairs = "pairs within 5% of the RandLora budget; Welch 95% interval of the test-accuracy "
                             "difference, Holm across the claim's pairs (alpha 0.05); non-significant pairs: "
                             "TOST with margin 1 point (90% interval inside +-0.01)";
    for (int task = 0; task < e->n_tasks; task++) {
        const char *tn = e->task_names[task];
        char m[700], counts[200];
        /* RandLora vs LoRA / VeRA at matched budgets */
        static const char *const others[2] = {"lora", "vera"};
        ad_cmp lp[64]; /* the LoRA pairs, for the crossover and the budget claims below */
        int nlp = 0;
        for (int k = 0; k < 2; k++) {
            ad_cmp c[64];
            char claim[80];
            snprintf(claim, sizeof claim, "RandLora beats %s at equal parameters", k ? "VeRA" : "LoRA");
            int n = matched_pairs(g, ng, tn, others[k], c, &pr, claim);
            const char *v = family_verdict(c, n, counts, sizeof counts);
            if (k == 0) {
                memcpy(lp, c, (size_t)n * sizeof *c);
                nlp = n;
            }
            if (n == 0 && !find_group(g, ng, tn, others[k], NULL, -1)) continue;
            char list[400] = "";
            for (int i = 0; i < n && strlen(list) < 300; i++) {
                char one[100];
                snprintf(one, sizeof one, "%sr=%d vs r=%d: %+.4f [%+.4f; %+.4f] %s", i ? "; " : "", c[i].a->r, c[i].b->r,
                         c[i].s.w.diff, c[i].s.w.lo, c[i].s.w.hi, c[i].s.verdict);
                strncat(list, one, sizeof list - strlen(list) - 1);
            }
            snprintf(m, sizeof m, "%s (%s)", counts, list);
            pr_claim_row(&cl, tn, claim, k ? "table1_llama3_8b_170k_vera table1_llama3_8b_170k_randlora_efficient fig3_b32_full_vera256 fig3_b32_full_randlora6"
                           : "table1_llama3_8b_170k_randlora_performant table1_llama3_8b_170k_lora_performant "
                             "fig1c_llama3_8b_randlora_0p559e8 fig1c_llama3_8b_lora_0p563e8",
                         m, v, rule_pairs, run);
        }
        /* LoRA plateaus below full fine-tuning: the largest LoRA rank vs full */
        const ad_group *full = find_group(g, ng, tn, "full", NULL, -1), *lo = NULL, *rl = NULL;
        for (int i = 0; i < ng; i++) {
            if (strcmp(g[i].task, tn)) continue;
            if (!strcmp(g[i].method, "lora") && (!lo || g[i].r > lo->r)) lo = &g[i];
            if (!strcmp(g[i].method, "randlora") && !strcmp(g[i].bases, "dense") && (!rl || g[i].params > rl->params))
                rl = &g[i];
        }
        for (int k = 0; k < 2 && full; k++) {
            const ad_group *x = k ? rl : lo;
            if (!x) continue;
            ad_cmp c = {.a = full, .b = x, .matched = true};
            if (!compare(&c, full->test, x->test)) continue;
            decide(&c, 1);
            /* plateau holds when full is significantly better; reaching full
             * holds when RandLora is not worse beyond the margin */
            const char *v = k ? (!strcmp(c.s.verdict, "better") ? "does not hold" : !strcmp(c.s.verdict, "inconclusive") ? "inconclusive" : "holds")
                              : (!strcmp(c.s.verdict, "better") ? "holds" : !strcmp(c.s.verdict, "inconclusive") ? "inconclusive" : "does not hold");
            snprintf(m, sizeof m, "full %.4f (%ld params) - %s r=%d %.4f (%ld params) = %+.4f [%+.4f; %+.4f]; TOST 90%% "
                     "[%+.4f; %+.4f]: %s", c.s.w.mean_a, full->params, x->method, x->r, c.s.w.mean_b,
                     x->params, c.s.w.diff, c.s.w.lo, c.s.w.hi, c.s.t.w.lo, c.s.t.w.hi, c.s.verdict);
            pr_claim_row(&cl, tn,
                        k ? "RandLora (largest budget) reaches full fine-tuning" : "LoRA (largest rank) plateaus below full fine-tuning",
                        k ? "fig3_b32_full_randlora6 fig3_b32_full_ft"
                          : "fig1b_clip_lora_3p61e6 fig1b_clip_lora_1p44e7 fig3_b32_full_lora32 fig3_b32_full_ft",
                        m, v,
                        k ? "holds unless full is better (Welch 95%); equivalent = TOST margin 1 point"
                          : "holds when full is better (Welch 95%); TOST margin 1 point otherwise",
                        run);
        }
        /* The figure the paper is known for, read at matched budgets: does
         * RandLora reach full fine-tuning where LoRA at the same budget does
         * not, and is LoRA better at the smallest budget (the crossover)? */
        if (full && nlp > 0) {
            ad_cmp vs[128];
            int nv = 0;
            for (int i = 0; i < nlp; i++)
                for (int k = 0; k < 2; k++) {
                    const ad_group *x = k ? lp[i].b : lp[i].a;
                    vs[nv] = (ad_cmp){.a = x, .b = full, .matched = true};
                    if (!compare(&vs[nv], x->test, full->test)) break;
                    nv++;
                }
            if (nv == 2 * nlp) {
                decide(vs, nv); /* Holm across every method-vs-full comparison of the task */
                char list[600] = "";
                int hits = 0;
                for (int i = 0; i < nlp; i++) {
                    const char *vr = vs[2 * i].s.verdict, *vl = vs[2 * i + 1].s.verdict;
                    bool reach = !strcmp(vr, "equivalent") || !strcmp(vr, "better");
                    hits += reach && !strcmp(vl, "worse");
                    char one[200];
                    snprintf(one, sizeof one, "%s%ld params: RandLora r=%d - full %+.4f (%s); LoRA r=%d - full %+.4f (%s)",
                             i ? "; " : "", lp[i].a->params, lp[i].a->r, vs[2 * i].s.w.diff, vr, lp[i].b->r,
                             vs[2 * i + 1].s.w.diff, vl);
                    if (strlen(list) + strlen(one) < sizeof list) strcat(list, one);
                }
                snprintf(m, sizeof m, "%d of %d matched budgets (%s)", hits, nlp, list);
                pr_claim_row(&cl, tn, "RandLora reaches full fine-tuning at a budget where LoRA does not",
                             "fig1b_clip_lora_1p44e7 fig1b_clip_randlora_9p64e6 fig3_b32_full_ft", m,
                             hits ? "holds" : "does not hold",
                             "some matched budget where RandLora - full is equivalent (TOST margin 1 point) or better and "
                             "LoRA - full is worse (Welch; Holm across the task's method-vs-full comparisons)",
                             run);
            }
            /* the crossover: the smallest matched budget */
            int s = 0;
            for (int i = 1; i < nlp; i++)
                if (lp[i].a->params < lp[s].a->params) s = i;
            const char *vx = lp[s].s.verdict;
            snprintf(m, sizeof m, "smallest matched budget %ld: RandLora r=%d - LoRA r=%d = %+.4f [%+.4f; %+.4f] (%s)",
                     lp[s].a->params, lp[s].a->r, lp[s].b->r, lp[s].s.w.diff, lp[s].s.w.lo, lp[s].s.w.hi, vx);
            pr_claim_row(&cl, tn, "At the smallest budgets LoRA is better than RandLora (the crossover)",
                         "fig1a_dinov2_crossover peft_docs_small_budget",
                         m, !strcmp(vx, "worse") ? "holds" : !strcmp(vx, "better") ? "does not hold" : vx,
                         "the RandLora-vs-LoRA pair of the smallest budget (as in the equal-parameters claim: Holm; TOST)",
                         run);
        }
        /* sparse / very_sparse against dense at the same r: accuracy (TOST)
         * and the train-test gap (Welch), each kind separately */
        static const char *const kinds[2] = {"sparse", "very_sparse"};
        for (int k = 0; k < 2; k++) {
            ad_cmp acc[16], gap[16];
            int n = 0;
            for (int i = 0; i < ng && n < 16; i++) {
                if (strcmp(g[i].task, tn) || strcmp(g[i].method, "randlora") || strcmp(g[i].bases, kinds[k])) continue;
                const ad_group *d = find_group(g, ng, tn, "randlora", "dense", g[i].r);
                if (!d) continue;
                acc[n] = (ad_cmp){.a = &g[i], .b = d, .matched = true};
                gap[n] = acc[n];
                if (compare(&acc[n], g[i].test, d->test) && compare(&gap[n], d->gap, g[i].gap)) n++;
            }
            if (!n) continue;
            decide(acc, n);
            decide(gap, n);
            char la[400] = "", lg[400] = "";
            int worse = 0, equiv = 0, gbetter = 0, gworse = 0;
            for (int i = 0; i < n; i++) {
                char one[160];
                /* accuracy: TOST verdict decides "does not hurt" */
                const char *tv = rl_equiv_name(acc[i].s.t.verdict);
                worse += acc[i].s.t.verdict == RL_WORSE || !strcmp(acc[i].s.verdict, "worse");
                equiv += acc[i].s.t.verdict == RL_EQUIVALENT;
                snprintf(one, sizeof one, "%sr=%d: %+.4f, 90%% [%+.4f; %+.4f] %s", i ? "; " : "", acc[i].a->r,
                         acc[i].s.w.diff, acc[i].s.t.w.lo, acc[i].s.t.w.hi, tv);
                strncat(la, one, sizeof la - strlen(la) - 1);
                gbetter += !strcmp(gap[i].s.verdict, "better");
                gworse += !strcmp(gap[i].s.verdict, "worse");
                snprintf(one, sizeof one, "%sr=%d: dense gap - %s gap %+.4f [%+.4f; %+.4f] p_holm %.3g", i ? "; " : "",
                         acc[i].a->r, kinds[k], gap[i].s.w.diff, gap[i].s.w.lo, gap[i].s.w.hi, gap[i].s.p_holm);
                strncat(lg, one, sizeof lg - strlen(lg) - 1);
            }
            const char *va = k ? (worse > 0 ? "holds" : equiv == n ? "does not hold (equivalent)" : "inconclusive")
                               : (worse > 0 ? "does not hold" : equiv == n ? "holds" : "inconclusive");
            char mm[600];
            snprintf(mm, sizeof mm, "%s - dense test accuracy: %s", kinds[k], la);
            pr_claim_row(&cl, tn, k ? "very_sparse bases cost accuracy" : "sparse bases do not reduce accuracy",
                        k ? "peft_docs_very_sparse" : "peft_docs_sparse",
                        mm, va,
                        "TOST of the test-accuracy difference with margin 1 point (90% interval; alpha 0.05); "
                        "worse = interval below 0 outside the margin or Welch-Holm significant",
                        run);
            const char *vg = gbetter == n ? "holds" : gbetter > 0 && gworse == 0 ? "holds in part"
                           : gworse > 0 ? "does not hold" : "inconclusive";
            char gc[80];
            snprintf(gc, sizeof gc, "%s bases reduce the train-test gap", kinds[k]);
            pr_claim_row(&cl, tn, gc, "peft_docs_sparse sparse_ablation", lg, vg,
                        "Welch 95% interval of dense gap - sparse gap (gap = train - test accuracy), Holm across r",
                        run);
        }
    }
    char path[700];
    snprintf(path, sizeof path, "%s/claims.csv", dir);
    if (rl_write_file_atomic(path, cl.buf, cl.len) != RL_OK) fprintf(stderr, "finetune: %s\n", rl_errmsg());
    snprintf(path, sizeof path, "%s/pairs.csv", dir);
    if (rl_write_file_atomic(path, pr.buf, pr.len) != RL_OK) fprintf(stderr, "finetune: %s\n", rl_errmsg());
    pr_text_free(&cl);
    pr_text_free(&pr);
}

/* ---- the run ---- */

static void write_manifest(const ad_exp *e, int argc, char **argv, const char *extra, const pr_result *res)
{
    pr_text j = {0};
    pr_text_add(&j, "{\"model\": \"%s\", \"targets\": \"%s\", \"size\": \"%s\", \"pretrained\": \"%s\", %s%s"
                    "\"grid\": {\"lr\": \"10^(k/%d)\", \"initial_k\": [%d, %d], \"limits_k\": [%d, %d]}, "
                    "\"selection_seeds\": %d, \"seeds\": %d, \"alpha\": {\"lora\": \"2r\", \"randlora\": \"20r\"}, "
                    "\"budget_tolerance\": %.2f, \"tasks\": {",
                e->model_desc, e->targets, e->size_name, e->base_path, extra ? extra : "", extra && *extra ? ", " : "",
                e->plan.grid.per_decade, e->plan.grid.k_lo, e->plan.grid.k_hi, e->plan.grid.k_min, e->plan.grid.k_max,
                e->plan.sel_seeds, e->plan.seeds, PR_BUDGET_TOL);
    for (int t = 0; t < e->n_tasks; t++) {
        const pr_train_cfg *c = &e->train[t];
        pr_text_add(&j, "%s\"%s\": {\"fit\": %d, \"validation\": %d, \"test\": %d, \"classes\": %d, "
                        "\"batch\": %d, \"max_epochs\": %d, \"patience\": %d, \"clip\": %g, \"weight_decay\": %g, "
                        "\"warmup\": %g, \"optimizer\": \"adamw\", \"schedule\": \"cosine\"}",
                    t ? ", " : "", e->task_names[t], e->fit[t].n, e->val[t].n, e->test[t].n, e->model[t].n_classes,
                    c->batch, c->max_epochs, c->patience, c->clip, c->weight_decay, c->warmup_frac);
    }
    pr_text_add(&j, "}, \"chosen_lr\": {");
    int first = 1;
    for (int ci = 0; res && res->decided && ci < e->n_cfg; ci++) {
        if (!res->decided[ci]) continue;
        char key[400], cols[400];
        config_id((void *)e, ci, key, sizeof key, cols, sizeof cols);
        pr_text_add(&j, "%s\"%s\": %.4g", first ? "" : ", ", key, pr_grid_lr(&e->plan.grid, res->chosen_k[ci]));
        first = 0;
    }
    pr_text_add(&j, "}}");
    if (rl_manifest_write(e->o->dir, e->name, argc, argv, j.buf, 1) != RL_OK)
        fprintf(stderr, "randlora sweep %s: %s\n", e->name, rl_errmsg());
    pr_text_free(&j);
}

int ad_run(ad_exp *e, const sweep_opts *o, int argc, char **argv, const char *manifest_extra, bool *complete)
{
    *complete = false;
    e->o = o;
    for (int t = 0; t < e->n_tasks; t++) {
        if (!e->m[t]) return fprintf(stderr, "randlora sweep %s: task %s has no model\n", e->name, e->task_names[t]), 2;
        if (e->poison_test) { /* random labels: selection must not move */
            rl_mt g;
            rl_mt_seed(&g, 99 + (uint64_t)t);
            for (int i = 0; i < e->test[t].n; i++)
                e->test[t].y[i] = (int)rl_mt_below(&g, (uint32_t)e->model[t].n_classes);
        }
    }
    static const char *hdr = "task,method,bases,r,seed,params,lr,train_acc,val_acc,test_acc,val_loss,steps,best_step,"
                             "stopped_early,diverged,step_ms,peak_tensor_bytes,n_fit,n_val,n_test,repeat_of_selection";
    rl_status st;
    if ((st = rl_sweep_open(&e->runs, o->dir, "runs", hdr)) != RL_OK ||
        (st = rl_sweep_open(&e->curves, o->dir, "curves", "task,method,bases,r,seed,step,loss")) != RL_OK ||
        (st = rl_sweep_open(&e->movement, o->dir, "movement", "task,method,bases,r,seed," PR_MOVE_HEADER)) != RL_OK ||
        (st = rl_sweep_open(&e->spectrum, o->dir, "spectrum", "task,method,bases,r,seed," PR_SPEC_HEADER)) != RL_OK) {
        fprintf(stderr, "randlora sweep %s: %s\n", e->name, rl_errmsg());
        return cmd_exit_code(st);
    }
    if (sweep_is_root()) write_manifest(e, argc, argv, manifest_extra, NULL);
    pr_result res = {0};
    pr_experiment px = {.n_configs = e->n_cfg, .cols_header = "task,method,bases,r,params", .config_id = config_id,
                        .select = ad_select, .final = ad_final, .done_table = e->runs, .ctx = e};
    int rc = 0;
    if ((st = pr_run(&px, &e->plan, o, &res)) != RL_OK) {
        fprintf(stderr, "randlora sweep %s: %s\n", e->name, rl_errmsg());
        rc = st == RL_ENOMEM || st == RL_EWRITE ? 3 : 1; /* a run that failed; out of memory / a lost write */
    }
    if (rc == 0 && sweep_is_root()) {
        long n = 0;
        rl_sweep *tabs[4] = {e->runs, e->curves, e->movement, e->spectrum};
        for (int k = 0; k < 4 && rc == 0; k++)
            if ((st = rl_sweep_finish(tabs[k], k ? NULL : &n)) != RL_OK) {
                fprintf(stderr, "randlora sweep %s: %s\n", e->name, rl_errmsg());
                rc = sweep_rc(rc, st);
            }
        ad_group *g = NULL;
        int ng = rc == 0 ? read_groups(o->dir, &g) : -1;
        if (ng > 0) {
            write_summary(o->dir, g, ng);
            write_claims(e, o->dir, g, ng);
        }
        free(g);
        write_manifest(e, argc, argv, manifest_extra, &res);
        if (!o->quiet)
            fprintf(stderr, "%s: %s; wrote %s/{selection,runs,summary,pairs,claims,movement}.csv (%ld final runs)\n",
                    e->name, res.complete ? "complete" : "INCOMPLETE (see above)", o->dir, n);
    }
    *complete = res.complete;
    pr_result_free(&res);
    return rc;
}

void ad_free(ad_exp *e)
{
    rl_sweep_free(e->runs);
    rl_sweep_free(e->curves);
    rl_sweep_free(e->movement);
    rl_sweep_free(e->spectrum);
    e->runs = e->curves = e->movement = e->spectrum = NULL;
    for (int t = 0; t < AD_MAX_TASKS; t++) {
        rl_model_free(e->m[t]);
        e->m[t] = NULL;
        rl_dataset_free(&e->fit[t]);
        rl_dataset_free(&e->val[t]);
        rl_dataset_free(&e->test[t]);
    }
}
