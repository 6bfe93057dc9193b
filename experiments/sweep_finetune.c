/* sweep_finetune.c -- `randlora sweep finetune`: pretrain an MLP on task A,
 * adapt it to task B with full fine-tuning, LoRA, VeRA and RandLora (dense,
 * sparse, very_sparse), every method tuned and trained by the protocol of
 * protocol.h, and compare them at matched budgets.
 *
 * Tasks (B after A = Fashion-MNIST classes 0-4):
 *   classes    classes 5-9 (relabelled 0-4)
 *   permuted   classes 0-4, examples A did not see, under a fixed pixel
 *              permutation (the first layer must be rebuilt)
 * Model: MLP 784 -> 256 -> 256 -> 5 (GELU), adapters on fc1 and fc2; every
 * method trains a new head. Validation: carved out of B's training data,
 * stratified by class, seed 7 (sizes in the usage and the manifest).
 * Configurations: RandLora dense at several r; LoRA at the rank whose
 * trainable parameters (adapters + head) are nearest each RandLora budget,
 * kept when within 5%; VeRA (r = 256: 2,309 parameters = RandLora r = 256;
 * r = 1024: 3,845 = RandLora r = 64); sparse and very_sparse RandLora at the
 * dense r they are compared with; full fine-tuning.
 *
 * Writes results/finetune/: select.csv (every selection run), selection.csv
 * (the learning-rate grid per configuration, validation accuracy of every
 * point, the chosen one), runs.csv (final runs: test accuracy once per run),
 * curves.csv, movement.csv and spectrum.csv (how far each method moves each
 * layer), summary.csv, pairs.csv (matched comparisons with Welch/Holm and
 * TOST), claims.csv (verdicts with their rules), base.csv (the pretrained
 * model's source accuracy), manifest.json (with the chosen learning rates);
 * merged models under results/finetune/models/ for `sweep similarity`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis/rl_probe.h"
#include "analysis/rl_stats.h"
#include "commands.h"
#include "core/rl_blas.h"
#include "core/rl_tensor.h"
#include "datasets/rl_data.h"
#include "finetune.h"
#include "protocol.h"
#include "sweep.h"
#include "train/rl_train.h"

const char *const ft_task_names[FT_TASKS] = {"classes", "permuted"};
const char *const ft_size_names[3] = {"smoke", "quick", "full"};

typedef struct {
    int n_pre, n_ft, n_val, n_test, n_a_test, pre_epochs;
    int max_epochs, patience;
    pr_grid grid;
    int sel_seeds, seeds;
} ft_sizes;

static ft_sizes sizes_of(ft_size s)
{
    switch (s) {
    case FT_SMOKE:
        return (ft_sizes){.n_pre = 1000, .n_ft = 600, .n_val = 150, .n_test = 300, .n_a_test = 300, .pre_epochs = 1,
                          .max_epochs = 2, .patience = 1,
                          .grid = {.per_decade = 2, .k_lo = -6, .k_hi = -5, .k_min = -7, .k_max = -4},
                          .sel_seeds = 1, .seeds = 2};
    case FT_QUICK:
        return (ft_sizes){.n_pre = 12000, .n_ft = 5000, .n_val = 1000, .n_test = 2000, .n_a_test = 2000,
                          .pre_epochs = 4, .max_epochs = 10, .patience = 3,
                          .grid = {.per_decade = 2, .k_lo = -6, .k_hi = -3, .k_min = -10, .k_max = 0},
                          .sel_seeds = 1, .seeds = 3};
    default:
        return (ft_sizes){.n_pre = 20000, .n_ft = 10000, .n_val = 2000, .n_test = 5000, .n_a_test = 5000,
                          .pre_epochs = 8, .max_epochs = 30, .patience = 5,
                          .grid = {.per_decade = 2, .k_lo = -8, .k_hi = -2, .k_min = -10, .k_max = 0},
                          .sel_seeds = 2, .seeds = 5};
    }
}

#define FT_SPLIT_SEED 7
#define FT_BATCH 128

rl_model_config ft_model_config(void)
{
    return (rl_model_config){.kind = RL_MODEL_MLP, .n_classes = 5, .max_batch = 256, .in_dim = 784,
                             .hidden = 256, .depth = 2};
}

void ft_model_path(char *out, size_t n, const char *dir, const char *task, const char *method, const char *bases,
                   int r, int seed)
{
    snprintf(out, n, "%s/models/%s_%s_%s_r%d_s%d.safetensors", dir, task, method, bases, r, seed);
}

/* ---- data ---- */

void ft_data_free(ft_data *d)
{
    rl_dataset_free(&d->a_train);
    rl_dataset_free(&d->a_test);
    rl_dataset_free(&d->fit);
    rl_dataset_free(&d->val);
    rl_dataset_free(&d->test);
}

rl_status ft_data_load(ft_data *d, int task, ft_size size)
{
    memset(d, 0, sizeof *d);
    const ft_sizes z = sizes_of(size);
    rl_label_opts lo = {.n_keep = 5, .keep = {0, 1, 2, 3, 4}, .max_count = z.n_pre};
    rl_status st = rl_fmnist_load(&d->a_train, RL_SPLIT_TRAIN, NULL, &lo);
    rl_label_opts lt = lo;
    lt.max_count = z.n_a_test;
    if (st == RL_OK) st = rl_fmnist_load(&d->a_test, RL_SPLIT_TEST, NULL, &lt);
    rl_label_opts lb = lo;
    if (task == FT_CLASSES)
        for (int k = 0; k < 5; k++) lb.keep[k] = 5 + k;
    /* B's training examples: after A's in file order for the permuted task
     * (same classes, examples A never saw), the first ones of 5-9 otherwise */
    lb.max_count = task == FT_PERMUTED ? z.n_pre + z.n_ft : z.n_ft;
    rl_dataset tmp = {0}, btrain = {0};
    if (st == RL_OK) st = rl_fmnist_load(&tmp, RL_SPLIT_TRAIN, NULL, &lb);
    if (st == RL_OK) {
        int off = task == FT_PERMUTED ? z.n_pre : 0, m = tmp.n - off;
        if (m < z.n_ft) st = rl_fail(RL_EFORMAT, "fashion-mnist: %d training examples left for task B of '%s', need %d",
                                     m < 0 ? 0 : m, ft_task_names[task], z.n_ft);
        int *idx = st == RL_OK ? malloc((size_t)m * sizeof *idx) : NULL;
        if (st == RL_OK && !idx) st = rl_fail(RL_ENOMEM, "finetune: no memory");
        for (int i = 0; st == RL_OK && i < m; i++) idx[i] = off + i;
        if (st == RL_OK) st = rl_dataset_take(&btrain, &tmp, idx, m);
        free(idx);
    }
    rl_dataset_free(&tmp);
    lb.max_count = z.n_test;
    if (st == RL_OK) st = rl_fmnist_load(&d->test, RL_SPLIT_TEST, NULL, &lb);
    if (st == RL_OK && task == FT_PERMUTED) {
        int perm[784];
        rl_perm_make(perm, 784, 4242);
        st = rl_dataset_permute(&btrain, perm);
        if (st == RL_OK) st = rl_dataset_permute(&d->test, perm);
    }
    if (st == RL_OK) st = rl_dataset_split_stratified(&d->fit, &d->val, &btrain, z.n_val, FT_SPLIT_SEED);
    rl_dataset_free(&btrain);
    if (st != RL_OK) ft_data_free(d);
    return st;
}

/* ---- the pretrained base ---- */

rl_status ft_base(rl_model **out, const ft_data *d, const char *dir, ft_size size, bool quiet, double *a_acc)
{
    char path[700];
    snprintf(path, sizeof path, "%s/models/base_%s.safetensors", dir, ft_size_names[size]);
    rl_model_config mc = ft_model_config();
    RL_TRY(rl_model_new(out, &mc, 1));
    struct stat sb;
    rl_status st = RL_OK;
    if (stat(path, &sb) == 0) {
        st = rl_model_load_base(*out, path);
    } else {
        const ft_sizes z = sizes_of(size);
        if (!quiet) fprintf(stderr, "finetune: pretraining the MLP on task A (%d examples, %d epochs)...\n",
                            d->a_train.n, z.pre_epochs);
        const long steps = (long)z.pre_epochs * (d->a_train.n / FT_BATCH);
        rl_train_config tc = {.opt = RL_OPT_ADAMW, .lr = 1e-3, .clip = 1.0, .total_steps = steps, .warmup = steps / 20};
        rl_trainer *t = NULL;
        rl_batcher bt;
        st = rl_trainer_new(&t, *out, &tc);
        if (st == RL_OK) st = rl_batcher_init(&bt, &d->a_train, FT_BATCH, true, true, 1);
        float *x = st == RL_OK ? rl_alloc_floats((size_t)FT_BATCH * d->a_train.dim) : NULL;
        int y[FT_BATCH];
        if (st == RL_OK && !x) st = rl_fail(RL_ENOMEM, "finetune: no memory");
        for (long s = 0; st == RL_OK && s < steps;) {
            int got = rl_batcher_next(&bt, x, y, NULL, NULL);
            if (!got) continue;
            double loss;
            int hits;
            st = rl_trainer_step(t, x, y, got, &loss, &hits);
            s++;
        }
        if (t) rl_batcher_free(&bt);
        rl_dealloc(x);
        rl_trainer_free(t);
        if (st == RL_OK) st = rl_model_save_base(*out, path);
    }
    if (st == RL_OK) st = pr_eval(*out, &d->a_test, a_acc, NULL);
    if (st != RL_OK) {
        rl_model_free(*out);
        *out = NULL;
    }
    return st;
}

rl_status ft_adapt(rl_model *m, rl_method method, rl_bases_kind bases, int r, int seed)
{
    pr_seeds sd = pr_seeds_of(seed);
    rl_adapter_config ac = rl_adapter_config_default(method);
    ac.r = r;
    if (method == RL_METHOD_LORA) ac.alpha = 2.0 * r;
    if (method == RL_METHOD_RANDLORA) ac.alpha = 20.0 * r;
    ac.init_seed = sd.init;
    rl_model_reset_head(m, sd.head);
    return rl_model_attach(m, &ac, FT_TARGETS, bases, sd.bases_key, RL_PATH_AUTO);
}

/* ---- configurations and budgets ---- */

typedef struct {
    int task;
    rl_method method;
    rl_bases_kind bases;
    int r;
    long params; /* adapters + head (full: every weight) */
} ft_cfg;

/* Trainable parameters of a configuration on the MLP (PEFT's formulas per
 * target linear, plus the head; full fine-tuning: every base weight too). */
static long ft_params(rl_method method, int r)
{
    const rl_model_config c = ft_model_config();
    long head = (long)c.n_classes * c.hidden + c.n_classes, p = head;
    for (int l = 0; l < c.depth; l++) {
        int in = l ? c.hidden : c.in_dim;
        p += method == RL_METHOD_FULL ? (long)c.hidden * in + c.hidden : (long)rl_param_count_formula(method, r, c.hidden, in);
    }
    return p;
}

static const char *bases_col(const ft_cfg *c) { return c->method == RL_METHOD_RANDLORA ? rl_bases_kind_name(c->bases) : "-"; }

typedef struct {
    ft_size size;
    ft_sizes z;
    sweep_opts *o;
    ft_cfg cfg[128];
    int n;
    ft_data data[FT_TASKS];
    rl_model *m;
    char base_path[700];
    rl_sweep *runs, *curves, *movement, *spectrum;
} ft_ctx;

static int add_cfg(ft_ctx *c, int task, rl_method m, rl_bases_kind b, int r)
{
    for (int i = 0; i < c->n; i++)
        if (c->cfg[i].task == task && c->cfg[i].method == m && c->cfg[i].bases == b && c->cfg[i].r == r) return i;
    RL_ASSERT(c->n < 128, "finetune: too many configurations");
    c->cfg[c->n] = (ft_cfg){task, m, b, r, ft_params(m, r)};
    return c->n++;
}

/* The grid: RandLora dense at ranks rr; for each, the LoRA rank (1..256)
 * nearest in budget, kept within PR_BUDGET_TOL; VeRA, sparse, very_sparse. */
static void build_grid(ft_ctx *c)
{
    static const int rr[3][8] = {{64}, {128, 64, 32, 8}, {256, 128, 64, 32, 8, 4, 2, 1}};
    static const int nrr[3] = {1, 4, 8};
    static const int vr[3][2] = {{0}, {1024}, {256, 1024}}, nvr[3] = {0, 1, 2};
    static const int sr[3][2] = {{0}, {32}, {32, 8}}, nsr[3] = {0, 1, 2};
    long lora[256];
    for (int r = 1; r <= 256; r++) lora[r - 1] = ft_params(RL_METHOD_LORA, r);
    for (int task = 0; task < FT_TASKS; task++) {
        if (c->size == FT_SMOKE && task) break; /* smoke: one task */
        add_cfg(c, task, RL_METHOD_FULL, RL_BASES_DENSE, 0);
        for (int i = 0; i < nrr[c->size]; i++) {
            int r = rr[c->size][i];
            add_cfg(c, task, RL_METHOD_RANDLORA, RL_BASES_DENSE, r);
            double rel;
            int j = pr_match_budget(ft_params(RL_METHOD_RANDLORA, r), lora, 256, &rel);
            if (fabs(rel) <= PR_BUDGET_TOL || c->size == FT_SMOKE) add_cfg(c, task, RL_METHOD_LORA, RL_BASES_DENSE, j + 1);
        }
        for (int i = 0; i < nvr[c->size]; i++) add_cfg(c, task, RL_METHOD_VERA, RL_BASES_DENSE, vr[c->size][i]);
        for (int i = 0; i < nsr[c->size]; i++) {
            add_cfg(c, task, RL_METHOD_RANDLORA, RL_BASES_SPARSE, sr[c->size][i]);
            add_cfg(c, task, RL_METHOD_RANDLORA, RL_BASES_VERY_SPARSE, sr[c->size][i]);
        }
    }
}

static void config_id(void *vctx, int ci, char *key, size_t kl, char *cols, size_t cl)
{
    const ft_ctx *c = vctx;
    const ft_cfg *f = &c->cfg[ci];
    snprintf(key, kl, "size=%s;task=%s;method=%s;bases=%s;r=%d", ft_size_names[c->size], ft_task_names[f->task],
             rl_method_name(f->method), bases_col(f), f->r);
    snprintf(cols, cl, "%s,%s,%s,%d,%ld", ft_task_names[f->task], rl_method_name(f->method), bases_col(f), f->r,
             f->params);
}

static pr_train_cfg train_cfg(const ft_ctx *c, double lr)
{
    return (pr_train_cfg){.lr = lr, .batch = FT_BATCH, .max_epochs = c->z.max_epochs, .patience = c->z.patience,
                          .clip = 1.0, .weight_decay = 0.0, .warmup_frac = 0.05};
}

/* Base weights, then the configuration's head and adapters for `seed`. */
static rl_status prepare(ft_ctx *c, const ft_cfg *f, int seed)
{
    RL_TRY(rl_model_load_base(c->m, c->base_path));
    return ft_adapt(c->m, f->method, f->bases, f->r, seed);
}

static rl_status ft_select(void *vctx, int ci, double lr, int seed, pr_fit_out *out)
{
    ft_ctx *c = vctx;
    const ft_cfg *f = &c->cfg[ci];
    const ft_data *d = &c->data[f->task];
    RL_TRY(prepare(c, f, seed));
    pr_train_cfg tc = train_cfg(c, lr);
    return pr_fit(c->m, &d->fit, &d->val, &tc, pr_seeds_of(seed).data, out);
}

static rl_status ft_final(void *vctx, int ci, double lr, int seed, const pr_fit_out *sel, const char *key)
{
    ft_ctx *c = vctx;
    const ft_cfg *f = &c->cfg[ci];
    const ft_data *d = &c->data[f->task];
    RL_TRY(prepare(c, f, seed));
    pr_w0 w0;
    RL_TRY(pr_w0_take(&w0, c->m, FT_TARGETS));
    size_t mem0 = rl_mem_current();
    rl_mem_reset_peak();
    pr_train_cfg tc = train_cfg(c, lr);
    pr_fit_out fo;
    double tr = 0, te = 0;
    rl_status st = pr_fit(c->m, &d->fit, &d->val, &tc, pr_seeds_of(seed).data, &fo);
    size_t peak = rl_mem_peak() - mem0;
    long params = (long)rl_model_trainable_count(c->m);
    if (st == RL_OK && params != f->params)
        st = rl_fail(RL_EINVAL, "finetune: %s has %ld trainable parameters, the budget formula says %ld", key, params,
                     f->params);
    if (st == RL_OK) st = pr_eval(c->m, &d->fit, &tr, NULL);
    if (st == RL_OK) st = pr_eval(c->m, &d->test, &te, NULL); /* the test set, once, for the chosen setting */
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s,%s,%s,%d,%d", ft_task_names[f->task], rl_method_name(f->method), bases_col(f),
             f->r, seed);
    pr_text mv = {0}, sp = {0}, cv = {0};
    if (st == RL_OK) st = pr_movement(c->m, &w0, prefix, &mv, seed == 0 ? &sp : NULL);
    for (int k = 0; st == RL_OK && k < fo.n_curve; k++)
        st = pr_text_add(&cv, "%s,%ld,%.5f\n", prefix, fo.curve_step[k], fo.curve_loss[k]);
    if (st == RL_OK) { /* merged model for `sweep similarity` */
        char mp[800];
        ft_model_path(mp, sizeof mp, c->o->dir, ft_task_names[f->task], rl_method_name(f->method), bases_col(f), f->r,
                      seed);
        st = rl_model_merge_adapters(c->m);
        if (st == RL_OK) st = rl_model_save_base(c->m, mp);
    }
    /* a selection seed's final run repeats its selection run exactly */
    char va[2][32];
    snprintf(va[0], sizeof va[0], "%.6f", sel ? sel->val_acc : 0.0); /* the precision select.csv keeps */
    snprintf(va[1], sizeof va[1], "%.6f", fo.val_acc);
    const char *repeat = !sel ? "-" : (!strcmp(va[0], va[1]) && sel->steps == fo.steps) ? "same" : "DIFFERS";
    char row[1024];
    snprintf(row, sizeof row, "%s,%ld,%.4g,%.4f,%.4f,%.4f,%.5f,%ld,%ld,%d,%d,%.3f,%zu,%d,%d,%d,%s\n", prefix, params, lr,
             tr, fo.val_acc, te, fo.val_loss, fo.steps, fo.best_step, fo.stopped_early, fo.diverged, fo.step_ms, peak,
             d->fit.n, d->val.n, d->test.n, repeat);
    if (st == RL_OK && cv.len) st = rl_sweep_put(c->curves, key, cv.buf);
    if (st == RL_OK) st = rl_sweep_put(c->movement, key, mv.buf ? mv.buf : "");
    if (st == RL_OK && sp.len) st = rl_sweep_put(c->spectrum, key, sp.buf);
    if (st == RL_OK) st = rl_sweep_put(c->runs, key, row); /* last: marks the run done */
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
} ft_group;

static int read_groups(const char *dir, ft_group **out)
{
    char path[700];
    snprintf(path, sizeof path, "%s/runs.csv", dir);
    csv_table t;
    *out = NULL;
    if (csv_read(path, &t) != RL_OK) return -1;
    ft_group *g = calloc((size_t)t.nrow + 1, sizeof *g);
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

static void write_summary(const char *dir, const ft_group *g, int ng)
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

#define FT_MARGIN 0.01 /* equivalence margin: one accuracy point */

/* A comparison of two groups' per-seed values (protocol.h: pr_cmp). */
typedef struct {
    const ft_group *a, *b;
    double rel; /* budget difference b/a - 1 */
    bool matched;
    pr_cmp s;
} ft_cmp;

static bool compare(ft_cmp *c, const double *va, const double *vb)
{
    return pr_compare(&c->s, va, c->a->n, vb, c->b->n, FT_MARGIN);
}

static void decide(ft_cmp *c, int n)
{
    pr_cmp *p[64];
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) p[i] = &c[i].s;
    pr_decide(p, n);
}

static const char *family_verdict(ft_cmp *c, int n, char *counts, size_t cl)
{
    pr_cmp *p[64];
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) p[i] = &c[i].s;
    return pr_family_verdict(p, n, counts, cl);
}

static const ft_group *find_group(const ft_group *g, int ng, const char *task, const char *method, const char *bases,
                                  int r)
{
    for (int i = 0; i < ng; i++)
        if (!strcmp(g[i].task, task) && !strcmp(g[i].method, method) && (!bases || !strcmp(g[i].bases, bases)) &&
            (r < 0 || g[i].r == r))
            return &g[i];
    return NULL;
}

static void pair_row(pr_text *o, const char *claim, const ft_cmp *c)
{
    pr_text_add(o, "%s,%s,%s,%s,%d,%ld,%s,%s,%d,%ld,%+.4f,%d,%d,%d,%.4f,%.4f,%.4f,%.4g,%.4g,%.4f,%.4f,%s\n",
                c->a->task, claim, c->a->method, c->a->bases, c->a->r, c->a->params, c->b->method, c->b->bases, c->b->r,
                c->b->params, c->rel, c->matched, c->a->n, c->b->n, c->s.w.diff, c->s.w.lo, c->s.w.hi, c->s.w.p, c->s.p_holm,
                c->s.t.w.lo, c->s.t.w.hi, c->matched ? c->s.verdict : "not matched");
}

/* Pairs of one claim for a task: every RandLora dense config against the
 * nearest-budget config of `other` (method), matched within 5%. */
static int matched_pairs(const ft_group *g, int ng, const char *task, const char *other, ft_cmp *out, pr_text *rows,
                         const char *claim)
{
    int n = 0;
    ft_cmp unmatched[64];
    int nu = 0;
    for (int i = 0; i < ng; i++) {
        if (strcmp(g[i].task, task) || strcmp(g[i].method, "randlora") || strcmp(g[i].bases, "dense")) continue;
        const ft_group *best = NULL;
        double bd = 0;
        for (int j = 0; j < ng; j++) {
            if (strcmp(g[j].task, task) || strcmp(g[j].method, other)) continue;
            double d = fabs((double)g[j].params / (double)g[i].params - 1.0);
            if (!best || d < bd) best = &g[j], bd = d;
        }
        if (!best) continue;
        ft_cmp c = {.a = &g[i], .b = best, .rel = (double)best->params / (double)g[i].params - 1.0};
        c.matched = fabs(c.rel) <= PR_BUDGET_TOL && compare(&c, g[i].test, best->test);
        if (c.matched && n < 64) out[n++] = c;
        else if (!c.matched && nu < 64) unmatched[nu++] = c;
    }
    decide(out, n);
    for (int i = 0; i < n; i++) pair_row(rows, claim, &out[i]);
    for (int i = 0; i < nu; i++) pair_row(rows, claim, &unmatched[i]);
    return n;
}

static void write_claims(const char *dir, const ft_group *g, int ng, ft_size size)
{
    pr_text cl = {0}, pr = {0};
    pr_text_add(&cl, PR_CLAIM_HEADER);
    pr_text_add(&pr, "task,claim,a_method,a_bases,a_r,a_params,b_method,b_bases,b_r,b_params,budget_rel,matched,"
                     "a_seeds,b_seeds,diff,ci_lo,ci_hi,p,p_holm,ci90_lo,ci90_hi,verdict\n");
    const char *run = ft_size_names[size];
    const char *rule_pairs = "pairs within 5% of the RandLora budget; Welch 95% interval of the test-accuracy "
                             "difference, Holm across the claim's pairs (alpha 0.05); non-significant pairs: "
                             "TOST with margin 1 point (90% interval inside +-0.01)";
    for (int task = 0; task < FT_TASKS; task++) {
        const char *tn = ft_task_names[task];
        char m[700], counts[200];
        /* RandLora vs LoRA / VeRA at matched budgets */
        static const char *const others[2] = {"lora", "vera"};
        for (int k = 0; k < 2; k++) {
            ft_cmp c[64];
            char claim[80];
            snprintf(claim, sizeof claim, "RandLora beats %s at equal parameters", k ? "VeRA" : "LoRA");
            int n = matched_pairs(g, ng, tn, others[k], c, &pr, claim);
            const char *v = family_verdict(c, n, counts, sizeof counts);
            if (n == 0 && !find_group(g, ng, tn, others[k], NULL, -1)) continue;
            char list[400] = "";
            for (int i = 0; i < n && strlen(list) < 300; i++) {
                char one[100];
                snprintf(one, sizeof one, "%sr=%d vs r=%d: %+.4f [%+.4f; %+.4f] %s", i ? "; " : "", c[i].a->r, c[i].b->r,
                         c[i].s.w.diff, c[i].s.w.lo, c[i].s.w.hi, c[i].s.verdict);
                strncat(list, one, sizeof list - strlen(list) - 1);
            }
            snprintf(m, sizeof m, "%s (%s)", counts, list);
            pr_claim_row(&cl, tn, claim, k ? "paper Table 1 / Fig. 1 (VeRA column)" : "paper abstract / Table 1 / Fig. 1",
                         m, v, rule_pairs, run);
        }
        /* LoRA plateaus below full fine-tuning: the largest LoRA rank vs full */
        const ft_group *full = find_group(g, ng, tn, "full", NULL, -1), *lo = NULL, *rl = NULL;
        for (int i = 0; i < ng; i++) {
            if (strcmp(g[i].task, tn)) continue;
            if (!strcmp(g[i].method, "lora") && (!lo || g[i].r > lo->r)) lo = &g[i];
            if (!strcmp(g[i].method, "randlora") && !strcmp(g[i].bases, "dense") && (!rl || g[i].params > rl->params))
                rl = &g[i];
        }
        for (int k = 0; k < 2 && full; k++) {
            const ft_group *x = k ? rl : lo;
            if (!x) continue;
            ft_cmp c = {.a = full, .b = x, .matched = true};
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
                        k ? "paper Fig. 1 / Table 1: RandLora closes the gap to full fine-tuning"
                          : "paper Fig. 1 / Table 1: LoRA's accuracy plateaus below full fine-tuning",
                        m, v,
                        k ? "holds unless full is better (Welch 95%); equivalent = TOST margin 1 point"
                          : "holds when full is better (Welch 95%); TOST margin 1 point otherwise",
                        run);
        }
        /* sparse / very_sparse against dense at the same r: accuracy (TOST)
         * and the train-test gap (Welch), each kind separately */
        static const char *const kinds[2] = {"sparse", "very_sparse"};
        for (int k = 0; k < 2; k++) {
            ft_cmp acc[16], gap[16];
            int n = 0;
            for (int i = 0; i < ng && n < 16; i++) {
                if (strcmp(g[i].task, tn) || strcmp(g[i].method, "randlora") || strcmp(g[i].bases, kinds[k])) continue;
                const ft_group *d = find_group(g, ng, tn, "randlora", "dense", g[i].r);
                if (!d) continue;
                acc[n] = (ft_cmp){.a = &g[i], .b = d, .matched = true};
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
                        k ? "PEFT docs: very sparse bases \"will most likely decrease performance\""
                          : "PEFT docs: sparse bases \"typically do[] not reduce performance\"",
                        mm, va,
                        "TOST of the test-accuracy difference with margin 1 point (90% interval; alpha 0.05); "
                        "worse = interval below 0 outside the margin or Welch-Holm significant",
                        run);
            const char *vg = gbetter == n ? "holds" : gbetter > 0 && gworse == 0 ? "holds in part"
                           : gworse > 0 ? "does not hold" : "inconclusive";
            char gc[80];
            snprintf(gc, sizeof gc, "%s bases reduce the train-test gap", kinds[k]);
            pr_claim_row(&cl, tn, gc, "PEFT docs: sparse bases \"can even help reduce overfitting\"", lg, vg,
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

/* ---- the command ---- */

typedef struct {
    int seeds, jobs;
    bool smoke, poison;
} ft_flags;

static int ft_flag(void *ctx, int argc, char **argv, int *i)
{
    ft_flags *f = ctx;
    const char *a = argv[*i];
    if (!strcmp(a, "--smoke")) return f->smoke = true, 1;
    if (!strcmp(a, "--poison-test-labels")) return f->poison = true, 1;
    if (!strcmp(a, "--seeds")) {
        char *end = NULL;
        long v = *i + 1 < argc ? strtol(argv[*i + 1], &end, 10) : 0;
        if (*i + 1 >= argc || !end || *end || v < 2 || v > 64) {
            fprintf(stderr, "randlora sweep finetune: --seeds '%s' is not an integer in 2..64\n",
                    *i + 1 < argc ? argv[*i + 1] : "");
            return -1;
        }
        f->seeds = (int)v;
        ++*i;
        return 1;
    }
    return pr_parse_jobs(&f->jobs, argc, argv, i, "randlora sweep finetune");
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: randlora sweep finetune [--full | --smoke] [--seeds N] [--jobs N] [common flags]\n"
            "  Pretrain an MLP 784-256-256-5 on Fashion-MNIST classes 0-4 (task A), adapt it to task B (classes:\n"
            "  classes 5-9; permuted: unseen examples of 0-4 under a pixel permutation) with full fine-tuning,\n"
            "  LoRA, VeRA and RandLora (dense, sparse, very_sparse), under the protocol of experiments/protocol.h:\n"
            "  validation split (stratified, from B's training data), a learning-rate grid per configuration\n"
            "  (half-decade steps, extended past an edge that wins), early stopping with the best state restored,\n"
            "  LoRA ranks matched to RandLora budgets within 5%%, Welch/Holm and TOST verdicts.\n"
            "    quick: A 12000, B fit 4000 + validation 1000, test 2000; grid 1e-3..3.2e-2; <= 10 epochs,\n"
            "           patience 3; lr chosen on seed 0; 3 seeds\n"
            "    --full: A 20000, B fit 8000 + validation 2000, test 5000; grid 1e-4..1e-1; <= 30 epochs,\n"
            "           patience 5; lr chosen on the mean of seeds 0-1; 5 seeds; more ranks\n"
            "    --smoke: a few hundred examples, one task, three configurations (the protocol's tests)\n"
            "  --seeds N       final seeds (default 3 quick, 5 full)\n"
            "  --jobs N        worker processes per round (default 1)\n"
            "  --poison-test-labels  replace the test labels by random ones (for the test that selection\n"
            "                  never reads test data)\n"
            "  Needs the Debian package dataset-fashion-mnist.\n");
    sweep_usage_common(out);
}

static void write_manifest(const ft_ctx *c, int argc, char **argv, const pr_result *res)
{
    pr_text j = {0};
    pr_text_add(&j, "{\"model\": \"mlp 784-256-256-5 (GELU)\", \"targets\": \"%s\", \"size\": \"%s\", "
                    "\"task_a\": {\"classes\": \"0-4\", \"n\": %d, \"epochs\": %d, \"lr\": 0.001}, "
                    "\"split\": {\"fit\": %d, \"validation\": %d, \"test\": %d, \"stratified\": true, \"seed\": %d}, "
                    "\"train\": {\"batch\": %d, \"optimizer\": \"adamw\", \"weight_decay\": 0, \"clip\": 1.0, "
                    "\"warmup\": 0.05, \"schedule\": \"cosine\", \"max_epochs\": %d, \"patience\": %d, "
                    "\"eval\": \"every epoch\"}, "
                    "\"grid\": {\"lr\": \"10^(k/%d)\", \"initial_k\": [%d, %d], \"limits_k\": [%d, %d]}, "
                    "\"selection_seeds\": %d, \"seeds\": %d, \"alpha\": {\"lora\": \"2r\", \"randlora\": \"20r\"}, "
                    "\"budget_tolerance\": %.2f, \"chosen_lr\": {",
                FT_TARGETS, ft_size_names[c->size], c->z.n_pre, c->z.pre_epochs, c->z.n_ft - c->z.n_val, c->z.n_val,
                c->z.n_test, FT_SPLIT_SEED, FT_BATCH, c->z.max_epochs, c->z.patience, c->z.grid.per_decade,
                c->z.grid.k_lo, c->z.grid.k_hi, c->z.grid.k_min, c->z.grid.k_max, c->z.sel_seeds, c->z.seeds,
                PR_BUDGET_TOL);
    int first = 1;
    for (int ci = 0; res && res->decided && ci < c->n; ci++) {
        if (!res->decided[ci]) continue;
        char key[400], cols[400];
        config_id((void *)c, ci, key, sizeof key, cols, sizeof cols);
        pr_text_add(&j, "%s\"%s\": %.4g", first ? "" : ", ", key, pr_grid_lr(&c->z.grid, res->chosen_k[ci]));
        first = 0;
    }
    pr_text_add(&j, "}}");
    if (rl_manifest_write(c->o->dir, "finetune", argc, argv, j.buf, 1) != RL_OK)
        fprintf(stderr, "randlora sweep finetune: %s\n", rl_errmsg());
    pr_text_free(&j);
}

int sweep_finetune(int argc, char **argv)
{
    sweep_opts o;
    sweep_opts_init(&o, "finetune");
    ft_flags fl = {.jobs = 1};
    int pa = sweep_parse_args(&o, argc, argv, "randlora sweep finetune", usage, ft_flag, &fl);
    if (pa <= 0) return pa < 0 ? 2 : 0;
    if (fl.smoke && o.full) {
        fprintf(stderr, "randlora sweep finetune: --smoke and --full exclude each other\n");
        return 2;
    }
    static ft_ctx c; /* large: static, one sweep per process */
    memset(&c, 0, sizeof c);
    c.size = fl.smoke ? FT_SMOKE : o.full ? FT_FULL : FT_QUICK;
    c.z = sizes_of(c.size);
    if (fl.seeds) {
        if (fl.seeds < c.z.sel_seeds) {
            fprintf(stderr, "randlora sweep finetune: --seeds %d is below the %d selection seeds\n", fl.seeds,
                    c.z.sel_seeds);
            return 2;
        }
        c.z.seeds = fl.seeds;
    }
    c.o = &o;
    rl_blas_set_threads(1);
    build_grid(&c);
    int rc = 0;
    for (int t = 0; t < FT_TASKS && rc == 0; t++) {
        if (c.size == FT_SMOKE && t) break;
        rl_status st = ft_data_load(&c.data[t], t, c.size);
        if (st == RL_OK && fl.poison) { /* random labels: selection must not move */
            rl_mt g;
            rl_mt_seed(&g, 99 + (uint64_t)t);
            for (int i = 0; i < c.data[t].test.n; i++) c.data[t].test.y[i] = (int)rl_mt_below(&g, 5);
        }
        if (st != RL_OK) {
            fprintf(stderr, "randlora sweep finetune: task %s: %s\n", ft_task_names[t], rl_errmsg());
            rc = st == RL_ENOTFOUND ? 2 : 1;
        }
    }
    double a_acc = 0;
    if (rc == 0) {
        rl_status st = ft_base(&c.m, &c.data[0], o.dir, c.size, o.quiet, &a_acc);
        snprintf(c.base_path, sizeof c.base_path, "%s/models/base_%s.safetensors", o.dir, ft_size_names[c.size]);
        if (st != RL_OK) {
            fprintf(stderr, "randlora sweep finetune: pretraining: %s\n", rl_errmsg());
            rc = 1;
        }
    }
    static const char *hdr = "task,method,bases,r,seed,params,lr,train_acc,val_acc,test_acc,val_loss,steps,best_step,"
                             "stopped_early,diverged,step_ms,peak_tensor_bytes,n_fit,n_val,n_test,repeat_of_selection";
    if (rc == 0 && (rl_sweep_open(&c.runs, o.dir, "runs", hdr) != RL_OK ||
                    rl_sweep_open(&c.curves, o.dir, "curves", "task,method,bases,r,seed,step,loss") != RL_OK ||
                    rl_sweep_open(&c.movement, o.dir, "movement", "task,method,bases,r,seed," PR_MOVE_HEADER) != RL_OK ||
                    rl_sweep_open(&c.spectrum, o.dir, "spectrum", "task,method,bases,r,seed," PR_SPEC_HEADER) != RL_OK)) {
        fprintf(stderr, "randlora sweep finetune: %s\n", rl_errmsg());
        rc = 2;
    }
    if (rc == 0 && sweep_is_root()) {
        write_manifest(&c, argc, argv, NULL);
        char path[700], row[300];
        snprintf(path, sizeof path, "%s/base.csv", o.dir);
        int len = snprintf(row, sizeof row, "model,size,task_a_examples,epochs,task_a_test_examples,task_a_test_acc\n"
                                            "mlp 784-256-256-5,%s,%d,%d,%d,%.4f\n",
                           ft_size_names[c.size], c.data[0].a_train.n, c.z.pre_epochs, c.data[0].a_test.n, a_acc);
        if (rl_write_file_atomic(path, row, (size_t)len) != RL_OK) rc = 1;
    }
    pr_result res = {0};
    if (rc == 0) {
        pr_experiment e = {.n_configs = c.n, .cols_header = "task,method,bases,r,params", .config_id = config_id,
                           .select = ft_select, .final = ft_final, .done_table = c.runs, .ctx = &c};
        pr_plan plan = {.grid = c.z.grid, .sel_seeds = c.z.sel_seeds, .seeds = c.z.seeds, .jobs = fl.jobs};
        if (pr_run(&e, &plan, &o, &res) != RL_OK) {
            fprintf(stderr, "randlora sweep finetune: %s\n", rl_errmsg());
            rc = 1;
        }
    }
    if (rc == 0 && sweep_is_root()) {
        long n = 0;
        rl_sweep *tabs[4] = {c.runs, c.curves, c.movement, c.spectrum};
        for (int k = 0; k < 4 && rc == 0; k++)
            if (rl_sweep_finish(tabs[k], k ? NULL : &n) != RL_OK) {
                fprintf(stderr, "randlora sweep finetune: %s\n", rl_errmsg());
                rc = 1;
            }
        ft_group *g = NULL;
        int ng = rc == 0 ? read_groups(o.dir, &g) : -1;
        if (ng > 0) {
            write_summary(o.dir, g, ng);
            write_claims(o.dir, g, ng, c.size);
        }
        free(g);
        write_manifest(&c, argc, argv, &res);
        if (!o.quiet)
            fprintf(stderr, "finetune: %s; wrote %s/{selection,runs,summary,pairs,claims,movement}.csv (%ld final runs)\n",
                    res.complete ? "complete" : "INCOMPLETE (see above)", o.dir, n);
        if (rc == 0 && res.complete && strcmp(o.dir, "results/finetune") == 0) {
            static const char *const scripts[] = {"plots/finetune_accuracy.gp", "plots/finetune_loss.gp",
                                                  "plots/finetune_movement.gp"};
            if (sweep_render(scripts, 3, o.quiet)) rc = 1;
        }
    }
    pr_result_free(&res);
    rl_sweep_free(c.runs);
    rl_sweep_free(c.curves);
    rl_sweep_free(c.movement);
    rl_sweep_free(c.spectrum);
    rl_model_free(c.m);
    for (int t = 0; t < FT_TASKS; t++) ft_data_free(&c.data[t]);
    return rc;
}
