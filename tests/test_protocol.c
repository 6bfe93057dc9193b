/* test_protocol.c -- the fine-tuning protocol (experiments/protocol.h) and
 * its statistics (lib/analysis/rl_stats.h): textbook values, the stratified
 * split, the learning-rate grid, early stopping, the budget matcher, and the
 * sweep itself: selection never reads test data, and shards, workers and a
 * rerun give the rows one process gives. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/rl_stats.h"
#include "datasets/rl_data.h"
#include "protocol.h"
#include "rl_test.h"

TestSuite(stats, .init = rl_test_mark);
TestSuite(protocol, .init = rl_test_mark);

/* Reference values below were computed independently with mpmath (30
 * digits: Student's t CDF from the regularised incomplete beta function,
 * quantiles by root finding), not with this code. The Welch example is
 * Wikipedia's "Welch's t-test" example 1 (t = -2.46, df = 24.99, p = 0.021).
 * Tolerances: GSL's t CDF and quantile are accurate to ~1e-10 relative
 * here; 1e-8 leaves room and still pins every digit a report prints. */
static const double A1[15] = {27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4};
static const double A2[15] = {27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4};

#define NEAR(x, ref) cr_assert(fabs((x) - (ref)) <= 1e-8 * fmax(1.0, fabs(ref)), "%s = %.12g, expected %.12g", #x, (x), (ref))

RL_TEST(stats, welch_textbook_example)
{
    rl_welch_result w;
    cr_assert_eq(rl_welch(A1, 15, A2, 15, 0.05, &w), RL_OK);
    NEAR(w.diff, -2.16666666667);
    NEAR(w.se, 0.882424510014);
    NEAR(w.df, 24.9885292902);
    NEAR(w.t, -2.45535639829);
    NEAR(w.p, 0.0213780014629);
    NEAR(w.lo, -3.98409626714);
    NEAR(w.hi, -0.349237066192);
    /* swapping the samples mirrors everything */
    rl_welch_result v;
    cr_assert_eq(rl_welch(A2, 15, A1, 15, 0.05, &v), RL_OK);
    NEAR(v.diff, 2.16666666667);
    NEAR(v.p, w.p);
    NEAR(v.lo, -w.hi);
    cr_assert_eq(rl_welch(A1, 1, A2, 15, 0.05, &v), RL_EINVAL, "one sample has no variance estimate");
}

RL_TEST(stats, t_quantiles)
{
    NEAR(rl_t_quantile(4, 0.975), 2.77644510519779);
    NEAR(rl_t_quantile(10.5, 0.975), 2.21384029291879);
}

RL_TEST(stats, holm_textbook)
{
    /* sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04
     * then monotone: 0.02, 0.03, 0.06, 0.06 */
    double p[4] = {0.01, 0.04, 0.03, 0.005}, q[4];
    rl_holm(p, 4, q);
    double want[4] = {0.03, 0.06, 0.06, 0.02};
    for (int i = 0; i < 4; i++) cr_assert(fabs(q[i] - want[i]) < 1e-15, "q[%d] = %g, want %g", i, q[i], want[i]);
    double big[3] = {0.5, 0.4, 0.9};
    rl_holm(big, 3, big); /* in place; capped at 1 */
    cr_assert(fabs(big[0] - 1.0) < 1e-15 && fabs(big[1] - 1.0) < 1e-15 && fabs(big[2] - 1.0) < 1e-15);
}

RL_TEST(stats, tost_equivalent_and_worse)
{
    const double a[5] = {0.912, 0.918, 0.915, 0.921, 0.910}, b[5] = {0.915, 0.917, 0.913, 0.919, 0.916};
    rl_tost_result t;
    cr_assert_eq(rl_tost(a, 5, b, 5, 0.01, 0.05, &t), RL_OK);
    NEAR(t.w.diff, -0.0008);
    NEAR(t.w.df, 5.90757462054);
    NEAR(t.p_lower, 0.00314568544858);
    NEAR(t.p_upper, 0.00147443872293);
    NEAR(t.w.lo, -0.00513106544483); /* the 90% interval */
    NEAR(t.w.hi, 0.00353106544483);
    cr_assert_eq(t.verdict, RL_EQUIVALENT);
    const double c[5] = {0.890, 0.893, 0.888, 0.891, 0.895};
    cr_assert_eq(rl_tost(c, 5, b, 5, 0.01, 0.05, &t), RL_OK);
    NEAR(t.p_lower, 0.999990933186);
    NEAR(t.w.lo, -0.0275298630211);
    NEAR(t.w.hi, -0.0216701369789);
    cr_assert_eq(t.verdict, RL_WORSE);
    /* a tighter margin than the noise: inconclusive */
    cr_assert_eq(rl_tost(a, 5, b, 5, 0.001, 0.05, &t), RL_OK);
    cr_assert_eq(t.verdict, RL_INCONCLUSIVE);
    cr_assert_eq(rl_tost(a, 5, b, 5, 0.0, 0.05, &t), RL_EINVAL);
}

RL_TEST(protocol, holm_verdicts_and_family)
{
    /* three comparisons: a clear win, a clear loss, and a tie */
    const double hi[4] = {0.95, 0.951, 0.949, 0.952}, lo[4] = {0.90, 0.901, 0.899, 0.902}, mid[4] = {0.95, 0.9505, 0.9495, 0.9515};
    pr_cmp c[3], *p[3] = {&c[0], &c[1], &c[2]};
    cr_assert(pr_compare(&c[0], hi, 4, lo, 4, 0.01));
    cr_assert(pr_compare(&c[1], lo, 4, hi, 4, 0.01));
    cr_assert(pr_compare(&c[2], hi, 4, mid, 4, 0.01));
    pr_decide(p, 3);
    cr_assert_str_eq(c[0].verdict, "better");
    cr_assert_str_eq(c[1].verdict, "worse");
    cr_assert_str_eq(c[2].verdict, "equivalent");
    char counts[200];
    cr_assert_str_eq(pr_family_verdict(p, 3, counts, sizeof counts), "mixed");
    cr_assert_str_eq(counts, "better in 1 / worse in 1 / equivalent in 1 / inconclusive in 0 of 3");
    cr_assert_str_eq(pr_family_verdict(p, 1, counts, sizeof counts), "holds");
    cr_assert_str_eq(pr_family_verdict(p + 2, 1, counts, sizeof counts), "does not hold (equivalent)");
}

RL_TEST(protocol, stratified_split_keeps_class_shares)
{
    rl_dataset d = {0}, fit = {0}, val = {0};
    /* 100 examples: class 0 x50, class 1 x30, class 2 x20; x[i] = i */
    cr_assert_eq(rl_dataset_new(&d, 100, 1, 3, 0), RL_OK);
    for (int i = 0; i < 100; i++) {
        d.x[i] = (float)i;
        d.y[i] = i < 50 ? 0 : i < 80 ? 1 : 2;
    }
    /* 25 of 100: quotas 12.5, 7.5, 5 -> floors 12, 7, 5 (24); the one left goes
     * to the largest remainder, a tie between classes 0 and 1: class 0 */
    cr_assert_eq(rl_dataset_split_stratified(&fit, &val, &d, 25, 7), RL_OK);
    cr_assert_eq(val.n, 25);
    cr_assert_eq(fit.n, 75);
    int cnt[3] = {0};
    for (int i = 0; i < val.n; i++) cnt[val.y[i]]++;
    cr_assert(cnt[0] == 13 && cnt[1] == 7 && cnt[2] == 5, "val classes %d %d %d", cnt[0], cnt[1], cnt[2]);
    /* disjoint, complete, each part in source order */
    int seen[100] = {0};
    for (int i = 0; i < val.n; i++) seen[(int)val.x[i]]++;
    for (int i = 0; i < fit.n; i++) seen[(int)fit.x[i]]++;
    for (int i = 0; i < 100; i++) cr_assert_eq(seen[i], 1, "example %d appears %d times", i, seen[i]);
    for (int i = 1; i < val.n; i++) cr_assert(val.x[i] > val.x[i - 1]);
    /* the same seed gives the same split; another seed another one */
    rl_dataset f2 = {0}, v2 = {0};
    cr_assert_eq(rl_dataset_split_stratified(&f2, &v2, &d, 25, 7), RL_OK);
    cr_assert_eq(memcmp(val.x, v2.x, 25 * sizeof(float)), 0);
    rl_dataset_free(&f2);
    rl_dataset_free(&v2);
    cr_assert_eq(rl_dataset_split_stratified(&f2, &v2, &d, 25, 8), RL_OK);
    cr_assert_neq(memcmp(val.x, v2.x, 25 * sizeof(float)), 0);
    rl_dataset_free(&f2);
    rl_dataset_free(&v2);
    cr_assert_eq(rl_dataset_split_stratified(&f2, &v2, &d, 101, 7), RL_EINVAL);
    rl_dataset_free(&fit);
    rl_dataset_free(&val);
    rl_dataset_free(&d);
}

RL_TEST(protocol, grid_extends_past_a_winning_edge)
{
    pr_grid g = {.per_decade = 2, .k_lo = -6, .k_hi = -3, .k_min = -8, .k_max = -2};
    cr_assert(fabs(pr_grid_lr(&g, -6) - 1e-3) < 1e-15 && fabs(pr_grid_lr(&g, -5) - 3.1622776601683795e-3) < 1e-15);
    int k[6] = {-6, -5, -4, -3};
    double acc[6] = {0.5, 0.7, 0.8, 0.9}, loss[6] = {1, 1, 1, 1};
    pr_pick p = pr_grid_pick(&g, k, acc, loss, 4); /* best on the upper edge: extend */
    cr_assert(p.need_more && p.next_k == -2 && p.best == 3);
    int k2[5] = {-6, -5, -4, -3, -2};
    double acc2[5] = {0.5, 0.7, 0.8, 0.9, 0.95}, loss2[5] = {1, 1, 1, 1, 1};
    p = pr_grid_pick(&g, k2, acc2, loss2, 5); /* on the limit: flagged, not extended */
    cr_assert(!p.need_more && p.on_limit && p.best == 4);
    double acc3[4] = {0.9, 0.8, 0.7, 0.6};
    p = pr_grid_pick(&g, k, acc3, loss, 4); /* lower edge */
    cr_assert(p.need_more && p.next_k == -7 && p.best == 0);
    double acc4[4] = {0.5, 0.9, 0.9, 0.6}, loss4[4] = {1, 0.5, 0.4, 1};
    p = pr_grid_pick(&g, k, acc4, loss4, 4); /* interior; tie on accuracy goes to the lower loss */
    cr_assert(!p.need_more && !p.on_limit && p.best == 2);
}

/* A fake training run: each step adds 1 to the model's head parameters; the
 * validation score follows a fixed script. */
typedef struct {
    rl_model *m;
    const double *scores;
    int evals, n_scores;
    long steps;
} fake;

static rl_status fake_step(void *ctx, long step, double *loss)
{
    fake *f = ctx;
    rl_span sp[8];
    int n = rl_model_spans(f->m, sp, 8);
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < sp[i].n; j++) sp[i].p[j] += 1.0f;
    *loss = 1.0 / (double)(step + 1);
    f->steps++;
    return RL_OK;
}

static rl_status fake_eval(void *ctx, double *score, double *loss)
{
    fake *f = ctx;
    *score = f->scores[f->evals < f->n_scores ? f->evals : f->n_scores - 1];
    *loss = 1.0;
    f->evals++;
    return RL_OK;
}

RL_TEST(protocol, early_stopping_restores_the_best_state)
{
    rl_model_config mc = {.kind = RL_MODEL_MLP, .n_classes = 2, .max_batch = 4, .in_dim = 3, .hidden = 4, .depth = 1};
    rl_model *m = NULL;
    cr_assert_eq(rl_model_new(&m, &mc, 1), RL_OK);
    rl_span sp[4];
    rl_model_spans(m, sp, 4);
    float first = sp[0].p[0];
    /* evaluations every 2 steps: 0.1 (before training), 0.5, 0.7, 0.6, 0.65, 0.6 -> best after step 4,
     * patience 3 runs out at step 10 */
    static const double script[] = {0.1, 0.5, 0.7, 0.6, 0.65, 0.6, 0.99};
    fake f = {.m = m, .scores = script, .n_scores = 7};
    pr_train_cfg c = {.eval_every = 2, .patience = 3};
    pr_loop loop = {fake_step, fake_eval, &f};
    pr_fit_out o;
    rl_span all[4];
    int ns = rl_model_spans(m, all, 4);
    cr_assert_eq(pr_fit_loop(all, ns, &c, 100, &loop, &o), RL_OK);
    cr_assert_eq(o.steps, 10);
    cr_assert_eq(o.best_step, 4);
    cr_assert(o.stopped_early && !o.diverged);
    cr_assert(fabs(o.val_acc - 0.7) < 1e-15);
    cr_assert_eq(o.evals, 6);
    cr_assert_eq(sp[0].p[0], first + 4.0f, "the state after step 4 is restored");
    /* a run that never stops improving uses every step */
    static const double up[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
    fake g = {.m = m, .scores = up, .n_scores = 6};
    pr_loop l2 = {fake_step, fake_eval, &g};
    cr_assert_eq(pr_fit_loop(all, ns, &c, 10, &l2, &o), RL_OK);
    cr_assert(o.steps == 10 && o.best_step == 10 && !o.stopped_early);
    rl_model_free(m);
}

/* Trainable parameters (adapters + head) of the 784-256-256-5 MLP that
 * `sweep finetune` adapts: the matcher pairs budgets as the sweep does. */
static long mlp_budget(rl_method method, int r)
{
    long p = 5 * 256 + 5;
    p += (long)rl_param_count_formula(method, r, 256, 784) + (long)rl_param_count_formula(method, r, 256, 256);
    return p;
}

RL_TEST(protocol, budget_matcher_on_the_mlp)
{
    long lora[256];
    for (int r = 1; r <= 256; r++) lora[r - 1] = mlp_budget(RL_METHOD_LORA, r);
    /* RandLora r=32: nb = 8 per layer, 2·8·(32 + 256) + 1285 = 5893; LoRA r=3: 3·1552 + 1285 = 5941 (+0.8%) */
    cr_assert_eq(mlp_budget(RL_METHOD_RANDLORA, 32), 5893);
    double rel;
    int j = pr_match_budget(5893, lora, 256, &rel);
    cr_assert_eq(j + 1, 3);
    cr_assert(fabs(rel - (5941.0 / 5893.0 - 1.0)) < 1e-12 && fabs(rel) <= PR_BUDGET_TOL);
    /* RandLora r=16 (9989): LoRA r=6 is +6.1%, r=5 -9.5%: nearest is 6, outside 5% */
    j = pr_match_budget(mlp_budget(RL_METHOD_RANDLORA, 16), lora, 256, &rel);
    cr_assert(j + 1 == 6 && rel > PR_BUDGET_TOL, "r=%d rel %g", j + 1, rel);
    /* VeRA r=1024 and RandLora r=64 have the same budget, 3,845 */
    cr_assert_eq(mlp_budget(RL_METHOD_VERA, 1024), 3845);
    cr_assert_eq(mlp_budget(RL_METHOD_RANDLORA, 64), 3845);
    /* ties go to the smaller count; no candidates: -1 */
    long two[2] = {110, 90};
    cr_assert_eq(pr_match_budget(100, two, 2, &rel), 1);
    cr_assert_eq(pr_match_budget(100, two, 0, &rel), -1);
    /* the formula is what the model trains */
    rl_model_config mc = {.kind = RL_MODEL_MLP, .n_classes = 5, .max_batch = 8, .in_dim = 784, .hidden = 256, .depth = 2};
    rl_model *m = NULL;
    cr_assert_eq(rl_model_new(&m, &mc, 1), RL_OK);
    const rl_method ms[3] = {RL_METHOD_LORA, RL_METHOD_VERA, RL_METHOD_RANDLORA};
    const int rs[3] = {3, 1024, 32};
    for (int i = 0; i < 3; i++) {
        rl_adapter_config ac = rl_adapter_config_default(ms[i]);
        ac.r = rs[i];
        cr_assert_eq(rl_model_attach(m, &ac, "fc1,fc2", RL_BASES_DENSE, 0, RL_PATH_AUTO), RL_OK, "%s", rl_errmsg());
        cr_assert_eq((long)rl_model_trainable_count(m), mlp_budget(ms[i], rs[i]));
    }
    rl_model_free(m);
}

/* ---- the sweep itself (build/randlora as a subprocess) ---- */


/* A copy of csv without the columns that measure time or memory (they
 * vary between runs). */
static char *drop_cols(const char *csv, const char *const *names, int n)
{
    char *out = calloc(strlen(csv) + 1, 1), *o = out;
    cr_assert_not_null(out);
    bool drop[64] = {0}, header = true;
    for (const char *line = csv; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        int c = 0;
        bool first = true;
        for (const char *f = line; f <= line + len; c++) {
            const char *e = memchr(f, ',', (size_t)(line + len - f));
            size_t fl = e ? (size_t)(e - f) : (size_t)(line + len - f);
            if (header && c < 64)
                for (int k = 0; k < n; k++) drop[c] |= strlen(names[k]) == fl && !strncmp(f, names[k], fl);
            if (c >= 64 || !drop[c]) {
                if (!first) *o++ = ',';
                memcpy(o, f, fl);
                o += fl;
                first = false;
            }
            if (!e) break;
            f = e + 1;
        }
        *o++ = '\n';
        header = false;
        line = end ? end + 1 : line + len;
    }
    *o = '\0';
    return out;
}

static void run(const char *cmd) { rl_test_sh_ok(cmd, 240); }

static const char *const timing[] = {"step_ms", "peak_tensor_bytes"};

static char *table(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *s = rl_test_slurp(p, NULL);
    cr_assert_not_null(s, "%s missing", p);
    char *t = drop_cols(s, timing, 2);
    free(s);
    return t;
}

Test(protocol, selection_never_reads_test_data)
{
    if (access("build/randlora", X_OK) != 0) cr_skip_test("build/randlora not built");
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("dataset-fashion-mnist not installed");
    int pid = (int)getpid();
    char cmd[600], a[64], b[64];
    snprintf(a, sizeof a, "/tmp/rl_ftclean_%d", pid);
    snprintf(b, sizeof b, "/tmp/rl_ftpois_%d", pid);
    snprintf(cmd, sizeof cmd, "rm -rf %s %s && build/randlora sweep finetune --smoke --quiet --results %s && "
                              "build/randlora sweep finetune --smoke --quiet --poison-test-labels --results %s",
             a, b, a, b);
    run(cmd);
    char *s1 = table(a, "selection.csv"), *s2 = table(b, "selection.csv");
    cr_assert_str_eq(s1, s2, "the chosen learning rates moved when the test labels were randomised");
    char *r1 = table(a, "runs.csv"), *r2 = table(b, "runs.csv");
    cr_assert_str_neq(r1, r2, "poisoned test labels must change test accuracy (else the test proves nothing)");
    /* every selection seed's final run repeated its selection run */
    cr_assert_null(strstr(r1, "DIFFERS"), "%s", r1);
    cr_assert_not_null(strstr(r1, "same"));
    free(s1);
    free(s2);
    free(r1);
    free(r2);
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", a, b);
    run(cmd);
}

Test(protocol, shards_workers_and_rerun_give_the_same_rows)
{
    if (access("build/randlora", X_OK) != 0) cr_skip_test("build/randlora not built");
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("dataset-fashion-mnist not installed");
    int pid = (int)getpid();
    char cmd[1200], one[64], sh[64], jb[64];
    snprintf(one, sizeof one, "/tmp/rl_ftone_%d", pid);
    snprintf(sh, sizeof sh, "/tmp/rl_ftsh_%d", pid);
    snprintf(jb, sizeof jb, "/tmp/rl_ftjb_%d", pid);
    const char *f = "build/randlora sweep finetune --smoke --quiet";
    /* shards: each invocation runs its share of the current round; repeat
     * until the plan is complete (three rounds here at most twice each) */
    snprintf(cmd, sizeof cmd,
             "rm -rf %s %s %s && %s --results %s && %s --jobs 2 --results %s && "
             "for i in 1 2 3 4; do %s --shard 0/2 --results %s && %s --shard 1/2 --results %s; done",
             one, sh, jb, f, one, f, jb, f, sh, f, sh);
    run(cmd);
    const char *names[3] = {"selection.csv", "runs.csv", "movement.csv"};
    for (int k = 0; k < 3; k++) {
        char *x = table(one, names[k]), *y = table(sh, names[k]), *z = table(jb, names[k]);
        cr_assert_str_eq(x, y, "%s: shards differ from one process", names[k]);
        cr_assert_str_eq(x, z, "%s: --jobs 2 differs from one process", names[k]);
        free(x);
        free(y);
        free(z);
    }
    /* a rerun trains nothing */
    snprintf(cmd, sizeof cmd, "build/randlora sweep finetune --smoke --results %s 2>%s/rerun.log", one, one);
    run(cmd);
    char p[128];
    snprintf(p, sizeof p, "%s/rerun.log", one);
    char *log = rl_test_slurp(p, NULL);
    cr_assert(log && !strstr(log, "round") && strstr(log, "complete"), "a rerun trained again: %s", log ? log : "");
    free(log);
    snprintf(cmd, sizeof cmd, "rm -rf %s %s %s", one, sh, jb);
    run(cmd);
}
