/* sweep_finetune.c -- `randlora sweep finetune`: the paper's central claim at
 * CPU scale. Pretrain once on task A, then adapt to task B with full
 * fine-tuning, LoRA, VeRA and RandLora (dense / sparse / very_sparse) at
 * budgets that span the same range, over several seeds.
 *
 * Tasks (B after A), of rising difficulty for a low-rank update:
 *   classes    Fashion-MNIST classes 0-4 -> classes 5-9 (relabelled 0-4)
 *   permuted   Fashion-MNIST classes 0-4 -> the same classes with a fixed
 *              pixel permutation (the first layer must be rebuilt)
 *   teacher    synthetic: labels = argmax(GELU(x W*ᵀ) Vᵀ) for x ~ N(0, I_784),
 *              A with W* = W0, B with W* = W0 + ΔW*, ΔW* of flat spectrum
 *              (datasets/rl_teacher): a required update of full rank
 * Model: MLP 784 -> 256 -> 256 -> 5 (targets fc1, fc2); the head is retrained
 * by every method alike. Optimiser AdamW, warm-up + cosine, clip 1.0.
 * Learning rates: full 1e-3, LoRA 3e-3 (alpha = 2r), VeRA 1e-2,
 * RandLora 3e-3 (alpha = 20r, PEFT's default ratio 640/32).
 *
 * Writes results/finetune/runs.csv (one row per run), curves.csv (training
 * loss every 10 steps), summary.csv (mean and 95% t-interval over seeds),
 * claims.csv (the verdicts, with their rules), manifest.json, and the
 * merged seed-0 models under results/finetune/models/ for `sweep similarity`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis/rl_probe.h"
#include "commands.h"
#include "core/rl_blas.h"
#include "core/rl_clock.h"
#include "core/rl_tensor.h"
#include "datasets/rl_data.h"
#include "finetune.h"
#include "flags.h"
#include "models/rl_nn.h"
#include "sweep.h"
#include "train/rl_train.h"

const char *const ft_task_names[FT_TASKS] = {"classes", "permuted", "teacher"};

rl_model_config ft_model_config(void)
{
    return (rl_model_config){.kind = RL_MODEL_MLP, .n_classes = 5, .max_batch = 256, .in_dim = 784,
                             .hidden = 256, .depth = 2};
}

/* ---- data ---- */

void ft_data_free(ft_data *d)
{
    rl_dataset_free(&d->a_train);
    rl_dataset_free(&d->b_train);
    rl_dataset_free(&d->b_test);
}

/* labels of the teacher task: argmax over 5 of GELU(t) Vᵀ, t = x W*ᵀ (n, 256) */
static rl_status teacher_labels(rl_dataset *d, const float *V)
{
    float *g = rl_alloc_floats((size_t)d->n_out), z[5];
    if (!g) return rl_fail(RL_ENOMEM, "teacher: no memory");
    for (int i = 0; i < d->n; i++) {
        rl_gelu_forward(g, d->t + (size_t)i * d->n_out, (size_t)d->n_out);
        int best = 0;
        for (int c = 0; c < 5; c++) {
            double s = 0;
            for (int j = 0; j < d->n_out; j++) s += (double)g[j] * V[(size_t)c * d->n_out + j];
            z[c] = (float)s;
            if (z[c] > z[best]) best = c;
        }
        d->y[i] = best;
    }
    rl_dealloc(g);
    return RL_OK;
}

static rl_status teacher_set(rl_dataset *d, const rl_teacher *t, const float *w, int n, uint64_t seed,
                             const float *V)
{
    /* sample with W* = w by swapping the teacher's base: x W*ᵀ */
    rl_teacher tt = *t;
    float *zero = rl_alloc_floats((size_t)t->d_out * t->d_in);
    if (!zero) return rl_fail(RL_ENOMEM, "teacher: no memory");
    tt.w0 = (float *)w;
    tt.dw = zero;
    rl_dataset raw = {0};
    rl_status st = rl_teacher_sample(&raw, &tt, n, false, seed);
    rl_dealloc(zero);
    if (st != RL_OK) return st;
    st = rl_dataset_new(d, n, raw.dim, 5, raw.n_out);
    if (st == RL_OK) {
        memcpy(d->x, raw.x, (size_t)n * raw.dim * sizeof(float));
        memcpy(d->t, raw.t, (size_t)n * raw.n_out * sizeof(float));
        st = teacher_labels(d, V);
    }
    rl_dataset_free(&raw);
    return st;
}

rl_status ft_data_load(ft_data *d, int task, bool full)
{
    memset(d, 0, sizeof *d);
    const int n_pre = full ? 30000 : 12000, n_ft = full ? 15000 : 5000, n_test = full ? 5000 : 2000;
    rl_status st = RL_OK;
    if (task == FT_TEACHER) {
        rl_teacher_opts o = {.d_in = 784, .d_out = 256, .spectrum = RL_SPEC_FLAT, .seed = 2025};
        rl_teacher t = {0};
        RL_TRY(rl_teacher_new(&t, &o));
        float *V = rl_alloc_floats(5 * 256), *wb = rl_alloc_floats((size_t)256 * 784);
        if (!V || !wb) st = rl_fail(RL_ENOMEM, "teacher: no memory");
        if (st == RL_OK) {
            rl_mt g;
            rl_mt_seed(&g, 77);
            rl_mt_fill_normal(&g, V, 5 * 256, 1.0f / 16.0f);
            for (size_t e = 0; e < (size_t)256 * 784; e++) wb[e] = t.w0[e] + t.dw[e];
            st = teacher_set(&d->a_train, &t, t.w0, n_pre, 11, V);
            if (st == RL_OK) st = teacher_set(&d->b_train, &t, wb, n_ft, 12, V);
            if (st == RL_OK) st = teacher_set(&d->b_test, &t, wb, n_test, 13, V);
        }
        rl_dealloc(V);
        rl_dealloc(wb);
        rl_teacher_free(&t);
    } else {
        rl_label_opts lo = {.n_keep = 5, .keep = {0, 1, 2, 3, 4}, .max_count = n_pre};
        st = rl_fmnist_load(&d->a_train, RL_SPLIT_TRAIN, NULL, &lo);
        rl_label_opts lb = lo;
        if (task == FT_CLASSES)
            for (int k = 0; k < 5; k++) lb.keep[k] = 5 + k;
        /* B's training examples: the ones after A's in file order for the
         * permuted task (same classes), the first ones of 5-9 otherwise */
        lb.max_count = task == FT_PERMUTED ? n_pre + n_ft : n_ft;
        rl_dataset tmp = {0};
        if (st == RL_OK) st = rl_fmnist_load(&tmp, RL_SPLIT_TRAIN, NULL, &lb);
        if (st == RL_OK) {
            int m = task == FT_PERMUTED ? tmp.n - n_pre : tmp.n, off = task == FT_PERMUTED ? n_pre : 0;
            int *idx = malloc((size_t)(m > 0 ? m : 1) * sizeof *idx);
            if (!idx || m <= 0) st = rl_fail(RL_EFORMAT, "fashion-mnist: not enough training examples for task B");
            else {
                for (int i = 0; i < m; i++) idx[i] = off + i;
                st = rl_dataset_take(&d->b_train, &tmp, idx, m);
            }
            free(idx);
        }
        rl_dataset_free(&tmp);
        lb.max_count = n_test;
        if (st == RL_OK) st = rl_fmnist_load(&d->b_test, RL_SPLIT_TEST, NULL, &lb);
        if (st == RL_OK && task == FT_PERMUTED) {
            int perm[784];
            rl_perm_make(perm, 784, 4242);
            st = rl_dataset_permute(&d->b_train, perm);
            if (st == RL_OK) st = rl_dataset_permute(&d->b_test, perm);
        }
    }
    if (st != RL_OK) ft_data_free(d);
    return st;
}

/* ---- training ---- */

rl_status ft_train(rl_model *m, const rl_dataset *train, int epochs, double lr, uint64_t seed, ft_log *log)
{
    const int B = 128, in = train->dim;
    const long steps = (long)epochs * (train->n / B);
    rl_train_config tc = {.opt = RL_OPT_ADAMW, .lr = lr, .weight_decay = 0.0, .clip = 1.0, .total_steps = steps,
                          .warmup = steps / 20, .lr_floor = 0.0};
    rl_trainer *t = NULL;
    RL_TRY(rl_trainer_new(&t, m, &tc));
    rl_batcher bt;
    rl_status st = rl_batcher_init(&bt, train, B, true, true, seed);
    float *x = rl_alloc_floats((size_t)B * in);
    int *y = malloc(B * sizeof *y);
    double *times = malloc((size_t)(steps > 0 ? steps : 1) * sizeof *times);
    if (st == RL_OK && (!x || !y || !times)) st = rl_fail(RL_ENOMEM, "finetune: no memory");
    long s = 0;
    while (st == RL_OK && s < steps) {
        int got = rl_batcher_next(&bt, x, y, NULL, NULL);
        if (got == 0) continue; /* next epoch */
        double loss, t0 = rl_now();
        int hits;
        st = rl_trainer_step(t, x, y, got, &loss, &hits);
        times[s] = rl_now() - t0;
        if (log && s % 10 == 0 && log->n < FT_MAX_CURVE) {
            log->step[log->n] = s;
            log->loss[log->n++] = loss;
        }
        s++;
    }
    if (st == RL_OK && log) {
        rl_summary sm;
        if (rl_stats_summarise(times, (int)s, &sm) == RL_OK) log->step_ms = 1e3 * sm.median;
        log->steps = s;
    }
    free(times);
    free(y);
    rl_dealloc(x);
    rl_batcher_free(&bt);
    rl_trainer_free(t);
    return st;
}

rl_status ft_eval(rl_model *m, const rl_dataset *d, double *acc)
{
    rl_train_config tc = {.lr = 1e-3, .total_steps = 1};
    rl_trainer *t = NULL;
    RL_TRY(rl_trainer_new(&t, m, &tc));
    double loss;
    rl_status st = rl_evaluate(t, d->x, d->y, d->n, &loss, acc);
    rl_trainer_free(t);
    return st;
}

/* Pretrained base for a task family (classes and permuted share it). */
rl_status ft_base(rl_model **out, int task, const ft_data *d, const char *dir, bool full, bool quiet)
{
    char path[700];
    snprintf(path, sizeof path, "%s/models/base_%s.safetensors", dir, task == FT_TEACHER ? "teacher" : "fmnist");
    rl_model_config mc = ft_model_config();
    RL_TRY(rl_model_new(out, &mc, 1));
    struct stat sb;
    if (stat(path, &sb) == 0) return rl_model_load_base(*out, path); /* resume: pretrained already */
    if (!quiet) fprintf(stderr, "pretraining the base on task A of '%s' (%d examples)...\n", ft_task_names[task],
                        d->a_train.n);
    rl_status st = ft_train(*out, &d->a_train, full ? 4 : 2, 1e-3, 1, NULL);
    if (st == RL_OK) st = rl_model_save_base(*out, path);
    if (st != RL_OK) {
        rl_model_free(*out);
        *out = NULL;
    }
    return st;
}

/* ---- the sweep ---- */

typedef struct {
    int task;
    rl_method method;
    rl_bases_kind bases;
    int r, seed;
} ft_point;

static double method_lr(rl_method m)
{
    switch (m) {
    case RL_METHOD_FULL: return 1e-3;
    case RL_METHOD_VERA: return 1e-2;
    default: return 3e-3;
    }
}

rl_status ft_adapt(rl_model *m, rl_method method, rl_bases_kind bases, int r, uint64_t seed)
{
    rl_adapter_config ac = rl_adapter_config_default(method);
    ac.r = r;
    if (method == RL_METHOD_LORA) ac.alpha = 2.0 * r;
    if (method == RL_METHOD_RANDLORA) ac.alpha = 20.0 * r;
    ac.init_seed = 100u + seed;
    rl_model_reset_head(m, 500u + seed);
    return rl_model_attach(m, &ac, "fc1,fc2", bases, 0, RL_PATH_AUTO);
}

static const char *bases_col(rl_method m, rl_bases_kind b)
{
    return m == RL_METHOD_RANDLORA ? rl_bases_kind_name(b) : "-";
}

/* claims.csv: per task, the verdicts with their rules, from summary rows. */
static void write_claims(const char *dir, const csv_table *s)
{
    int ct = csv_col(s, "task"), cm = csv_col(s, "method"), cb = csv_col(s, "bases"), cp = csv_col(s, "params"),
        ca = csv_col(s, "test_acc_mean"), ch = csv_col(s, "test_acc_ci95"), cg = csv_col(s, "gap_mean"),
        cr = csv_col(s, "r");
    char out[8192];
    int len = snprintf(out, sizeof out,
                       "task,claim,reference,measured,verdict,rule\n");
    for (int task = 0; task < FT_TASKS; task++) {
        double full = NAN, fh = 0, best_l = -1, best_lh = 0, second_l = -1;
        long best_lp = 0;
        for (int i = 0; i < s->nrow; i++) {
            if (strcmp(s->rows[i][ct], ft_task_names[task])) continue;
            double a = atof(s->rows[i][ca]), h = atof(s->rows[i][ch]);
            if (!strcmp(s->rows[i][cm], "full")) {
                full = a;
                fh = h;
            }
            if (!strcmp(s->rows[i][cm], "lora")) {
                if (a > best_l) {
                    second_l = best_l;
                    best_l = a;
                    best_lh = h;
                    best_lp = atol(s->rows[i][cp]);
                } else if (a > second_l) {
                    second_l = a;
                }
            }
        }
        if (isnan(full) || best_l < 0) continue;
        const char *v1 = best_l + best_lh < full - fh ? "holds" : "does not hold";
        len += snprintf(out + len, sizeof out - (size_t)len,
                        "%s,LoRA plateaus below full fine-tuning,paper Fig. 1 / Table 1 (LoRA gap on hard tasks),"
                        "best LoRA %.4f (%ld params) vs full %.4f,%s,best LoRA mean + CI < full mean - CI\n",
                        ft_task_names[task], best_l, best_lp, full, v1);
        /* RandLora vs LoRA at matched budgets: every RandLora config against
         * the LoRA config with the nearest parameter count (within 2x) */
        int wins = 0, losses = 0, ties = 0;
        for (int i = 0; i < s->nrow; i++) {
            if (strcmp(s->rows[i][ct], ft_task_names[task]) || strcmp(s->rows[i][cm], "randlora") ||
                strcmp(s->rows[i][cb], "dense"))
                continue;
            double pr = atof(s->rows[i][cp]), ar = atof(s->rows[i][ca]), hr = atof(s->rows[i][ch]);
            int best = -1;
            double bd = 1e30;
            for (int j = 0; j < s->nrow; j++)
                if (!strcmp(s->rows[j][ct], ft_task_names[task]) && !strcmp(s->rows[j][cm], "lora")) {
                    double dlog = fabs(log(atof(s->rows[j][cp]) / pr));
                    if (dlog < bd) {
                        bd = dlog;
                        best = j;
                    }
                }
            if (best < 0 || bd > log(2.0)) continue;
            double al = atof(s->rows[best][ca]), hl = atof(s->rows[best][ch]);
            if (ar - hr > al + hl) wins++;
            else if (al - hl > ar + hr) losses++;
            else ties++;
        }
        const char *v2 = wins > 0 && losses == 0 ? "holds" : losses > 0 && wins == 0 ? "does not hold" : "mixed";
        len += snprintf(out + len, sizeof out - (size_t)len,
                        "%s,RandLora beats LoRA at equal parameters,paper abstract / Table 1,"
                        "RandLora dense better in %d / worse in %d / within CI in %d matched budgets,%s,"
                        "matched = nearest LoRA budget within 2x; better = mean - CI > other's mean + CI\n",
                        ft_task_names[task], wins, losses, ties, v2);
        /* sparse bases: train-test gap vs dense at the same r */
        double gd = 0, gs = 0;
        int nd = 0, ns = 0;
        for (int i = 0; i < s->nrow; i++) {
            if (strcmp(s->rows[i][ct], ft_task_names[task]) || strcmp(s->rows[i][cm], "randlora") ||
                atoi(s->rows[i][cr]) != 16)
                continue;
            if (!strcmp(s->rows[i][cb], "dense")) gd += atof(s->rows[i][cg]), nd++;
            else gs += atof(s->rows[i][cg]), ns++;
        }
        if (nd && ns)
            len += snprintf(out + len, sizeof out - (size_t)len,
                            "%s,sparse bases reduce the train-test gap,paper (sparse ablation; not recovered),"
                            "gap dense %.4f vs sparse/very_sparse mean %.4f (r=16),%s,sparse gap < dense gap\n",
                            ft_task_names[task], gd / nd, gs / ns, gs / ns < gd / nd ? "holds" : "does not hold");
    }
    char path[700];
    snprintf(path, sizeof path, "%s/claims.csv", dir);
    if (rl_write_file_atomic(path, out, (size_t)len) != RL_OK) fprintf(stderr, "finetune: %s\n", rl_errmsg());
}

static void write_summary(const char *dir)
{
    char path[700];
    snprintf(path, sizeof path, "%s/runs.csv", dir);
    csv_table t;
    if (csv_read(path, &t) != RL_OK) {
        fprintf(stderr, "finetune: %s\n", rl_errmsg());
        return;
    }
    int ct = csv_col(&t, "task"), cm = csv_col(&t, "method"), cb = csv_col(&t, "bases"), cr = csv_col(&t, "r"),
        cp = csv_col(&t, "params"), ca = csv_col(&t, "test_acc"), ctr = csv_col(&t, "train_acc"),
        cs = csv_col(&t, "step_ms");
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    len += (size_t)snprintf(out, cap, "task,method,bases,r,params,seeds,test_acc_mean,test_acc_ci95,train_acc_mean,"
                                      "gap_mean,step_ms_mean\n");
    char *seen = calloc((size_t)t.nrow + 1, 1);
    for (int i = 0; i < t.nrow; i++) {
        if (seen[i]) continue;
        double te[32], tr[32], ms[32];
        int k = 0;
        for (int j = i; j < t.nrow; j++)
            if (!strcmp(t.rows[j][ct], t.rows[i][ct]) && !strcmp(t.rows[j][cm], t.rows[i][cm]) &&
                !strcmp(t.rows[j][cb], t.rows[i][cb]) && !strcmp(t.rows[j][cr], t.rows[i][cr]) && k < 32) {
                seen[j] = 1;
                te[k] = atof(t.rows[j][ca]);
                tr[k] = atof(t.rows[j][ctr]);
                ms[k++] = atof(t.rows[j][cs]);
            }
        double mte, hte, mtr, htr, mms, hms;
        rl_mean_ci95(te, k, &mte, &hte);
        rl_mean_ci95(tr, k, &mtr, &htr);
        rl_mean_ci95(ms, k, &mms, &hms);
        if (len + 300 < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s,%s,%s,%s,%s,%d,%.4f,%.4f,%.4f,%.4f,%.3f\n", t.rows[i][ct],
                                    t.rows[i][cm], t.rows[i][cb], t.rows[i][cr], t.rows[i][cp], k, mte, hte, mtr,
                                    mtr - mte, mms);
    }
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    if (rl_write_file_atomic(path, out, len) != RL_OK) fprintf(stderr, "finetune: %s\n", rl_errmsg());
    free(seen);
    free(out);
    csv_free(&t);
    csv_table s;
    if (csv_read(path, &s) == RL_OK) {
        write_claims(dir, &s);
        csv_free(&s);
    }
}

/* --seeds N (1..32) */
static int seeds_flag(void *ctx, int argc, char **argv, int *i)
{
    if (strcmp(argv[*i], "--seeds") != 0) return 0;
    const char *cmd = "randlora sweep finetune", *v = flag_value(cmd, argc, argv, i);
    return v && flag_int(cmd, "--seeds", v, 1, 32, ctx) ? 1 : -1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: randlora sweep finetune [--full] [--seeds N] [--force] [--shard i/n] [--quiet] [--results DIR]\n"
                 "  Pretrain an MLP on task A, adapt to task B with full fine-tuning, LoRA, VeRA and RandLora\n"
                 "  (tasks: classes, permuted, teacher). Quick: 12k/5k/2k examples (pretrain/adapt/test),\n"
                 "  3 epochs, 3 seeds. --full: 30k/15k/5k, 6 epochs, 5 seeds, more ranks.\n"
                 "  Needs the Debian package dataset-fashion-mnist.\n");
    sweep_usage_common(out);
}

int sweep_finetune(int argc, char **argv)
{
    sweep_opts o;
    sweep_opts_init(&o, "finetune");
    int seeds = 0;
    int pa = sweep_parse_args(&o, argc, argv, "randlora sweep finetune", usage, seeds_flag, &seeds);
    if (pa <= 0) return pa < 0 ? 2 : 0;
    if (!seeds) seeds = o.full ? 5 : 3;
    const int epochs = o.full ? 6 : 3;
    rl_blas_set_threads(1);
    /* grid */
    ft_point g[1024];
    int n = 0;
    static const int lora_r[2][6] = {{1, 4, 16, 64, 0}, {1, 2, 4, 8, 16, 64}};
    static const int rand_r[2][5] = {{64, 16, 4, 0}, {256, 64, 16, 4, 1}};
    for (int task = 0; task < FT_TASKS; task++)
        for (int sd = 0; sd < seeds; sd++) {
            g[n++] = (ft_point){task, RL_METHOD_FULL, RL_BASES_DENSE, 0, sd};
            for (int i = 0; i < 6 && lora_r[o.full][i]; i++)
                g[n++] = (ft_point){task, RL_METHOD_LORA, RL_BASES_DENSE, lora_r[o.full][i], sd};
            g[n++] = (ft_point){task, RL_METHOD_VERA, RL_BASES_DENSE, 256, sd};
            g[n++] = (ft_point){task, RL_METHOD_VERA, RL_BASES_DENSE, 1024, sd};
            for (int i = 0; i < 5 && rand_r[o.full][i]; i++)
                g[n++] = (ft_point){task, RL_METHOD_RANDLORA, RL_BASES_DENSE, rand_r[o.full][i], sd};
            g[n++] = (ft_point){task, RL_METHOD_RANDLORA, RL_BASES_SPARSE, 16, sd};
            g[n++] = (ft_point){task, RL_METHOD_RANDLORA, RL_BASES_VERY_SPARSE, 16, sd};
        }
    static const char *hdr = "task,method,bases,r,seed,params,adapter_params,train_acc,test_acc,step_ms,steps,"
                             "peak_tensor_bytes,n_train,n_test,epochs";
    rl_sweep *runs = NULL, *curves = NULL;
    rl_status ost;
    if ((ost = rl_sweep_open(&runs, o.dir, "runs", hdr)) != RL_OK ||
        (ost = rl_sweep_open(&curves, o.dir, "curves", "task,method,bases,r,seed,step,loss")) != RL_OK) {
        fprintf(stderr, "randlora sweep finetune: %s\n", rl_errmsg());
        rl_sweep_free(runs);
        return cmd_exit_code(ost);
    }
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"model\": \"mlp 784-256-256-5\", \"targets\": \"fc1,fc2\", \"epochs\": %d, \"seeds\": %d, "
             "\"grid\": \"%s\", \"batch\": 128, \"lr\": {\"full\": 0.001, \"lora\": 0.003, \"vera\": 0.01, "
             "\"randlora\": 0.003}, \"alpha\": {\"lora\": \"2r\", \"randlora\": \"20r\"}}",
             epochs, seeds, o.full ? "full" : "quick");
    int rc = 0;
    if (sweep_is_root() && (ost = rl_manifest_write(o.dir, "finetune", argc, argv, cfg, 1)) != RL_OK) {
        fprintf(stderr, "randlora sweep finetune: %s\n", rl_errmsg());
        rc = sweep_rc(rc, ost);
    }
    long mine = 0;
    for (int i = 0; i < n; i++) mine += sweep_mine(&o, i);
    rl_progress pr;
    rl_progress_start(&pr, "sweep finetune", mine, o.quiet);
    int cur_task = -1;
    ft_data data = {0};
    rl_model *m = NULL;
    ft_log *log = malloc(sizeof *log);
    for (int i = 0; i < n && rc == 0; i++) {
        if (!sweep_mine(&o, i)) continue;
        const ft_point *p = &g[i];
        char key[256];
        snprintf(key, sizeof key, "task=%s;method=%s;bases=%s;r=%04d;seed=%d;epochs=%d;grid=%s", ft_task_names[p->task],
                 rl_method_name(p->method), bases_col(p->method, p->bases), p->r, p->seed, epochs,
                 o.full ? "full" : "quick");
        if (!o.force && rl_sweep_done(runs, key)) {
            rl_progress_step(&pr, key, true);
            continue;
        }
        if (p->task != cur_task) {
            ft_data_free(&data);
            rl_model_free(m);
            m = NULL;
            rl_status st = ft_data_load(&data, p->task, o.full);
            if (st == RL_OK) st = ft_base(&m, p->task, &data, o.dir, o.full, o.quiet);
            if (st != RL_OK) {
                fprintf(stderr, "\nrandlora sweep finetune: task %s: %s\n", ft_task_names[p->task], rl_errmsg());
                rc = st == RL_ENOTFOUND || st == RL_ENOMEM ? sweep_rc(rc, st) : 1;
                break;
            }
            cur_task = p->task;
        }
        char bpath[700];
        snprintf(bpath, sizeof bpath, "%s/models/base_%s.safetensors", o.dir, p->task == FT_TEACHER ? "teacher" : "fmnist");
        rl_status st = rl_model_load_base(m, bpath); /* every run starts from the same pretrained base */
        if (st == RL_OK) st = ft_adapt(m, p->method, p->bases, p->r, (uint64_t)p->seed);
        size_t mem0 = rl_mem_current();
        rl_mem_reset_peak();
        memset(log, 0, sizeof *log);
        double tr = 0, te = 0;
        size_t params = 0, aparams = 0;
        if (st == RL_OK) {
            params = rl_model_trainable_count(m);
            aparams = p->method == RL_METHOD_FULL ? params - (size_t)5 * 256 - 5 : rl_model_adapter_count(m);
            st = ft_train(m, &data.b_train, epochs, method_lr(p->method), 1000u + (uint64_t)p->seed, log);
        }
        size_t peak = rl_mem_peak() - mem0;
        if (st == RL_OK) st = ft_eval(m, &data.b_train, &tr);
        if (st == RL_OK) st = ft_eval(m, &data.b_test, &te);
        if (st == RL_OK && p->seed == 0) { /* merged model for `sweep similarity` */
            char mp[800];
            snprintf(mp, sizeof mp, "%s/models/%s_%s_%s_r%d.safetensors", o.dir, ft_task_names[p->task],
                     rl_method_name(p->method), bases_col(p->method, p->bases), p->r);
            st = rl_model_merge_adapters(m);
            if (st == RL_OK) st = rl_model_save_base(m, mp);
        }
        if (st != RL_OK) {
            fprintf(stderr, "\nrandlora sweep finetune: %s: %s\n", key, rl_errmsg());
            rc = 1;
            break;
        }
        char row[512];
        snprintf(row, sizeof row, "%s,%s,%s,%d,%d,%zu,%zu,%.4f,%.4f,%.3f,%ld,%zu,%d,%d,%d\n", ft_task_names[p->task],
                 rl_method_name(p->method), bases_col(p->method, p->bases), p->r, p->seed, params, aparams, tr, te,
                 log->step_ms, log->steps, peak, data.b_train.n, data.b_test.n, epochs);
        size_t cl = 0, ccap = (size_t)log->n * 96 + 1;
        char *crow = malloc(ccap);
        crow[0] = '\0';
        for (int k = 0; k < log->n; k++)
            cl += (size_t)snprintf(crow + cl, ccap - cl, "%s,%s,%s,%d,%d,%ld,%.5f\n", ft_task_names[p->task],
                                   rl_method_name(p->method), bases_col(p->method, p->bases), p->r, p->seed,
                                   log->step[k], log->loss[k]);
        /* curves first: a run counts as done only when its row in runs is written */
        if ((ost = rl_sweep_put(curves, key, crow)) != RL_OK || (ost = rl_sweep_put(runs, key, row)) != RL_OK) {
            fprintf(stderr, "\nrandlora sweep finetune: %s\n", rl_errmsg());
            rc = sweep_rc(rc, ost);
        }
        free(crow);
        rl_progress_step(&pr, key, false);
    }
    rl_progress_end(&pr);
    free(log);
    rl_model_free(m);
    ft_data_free(&data);
    sweep_barrier();
    long nr = 0, nc = 0;
    if (!sweep_is_root()) {
        /* only rank 0 assembles the tables and plots */
    } else if ((ost = rl_sweep_finish(runs, &nr)) != RL_OK || (ost = rl_sweep_finish(curves, &nc)) != RL_OK) {
        fprintf(stderr, "randlora sweep finetune: %s\n", rl_errmsg());
        rc = sweep_rc(rc, ost);
    } else {
        write_summary(o.dir);
        if (!o.quiet) fprintf(stderr, "wrote %s/{runs,curves,summary,claims}.csv (%ld runs)\n", o.dir, nr);
        if (strcmp(o.dir, "results/finetune") == 0) {
            static const char *const scripts[] = {"plots/finetune_accuracy.gp", "plots/finetune_loss.gp"};
            if (sweep_render(scripts, 2, o.quiet)) rc = sweep_rc(rc, RL_EWRITE);
        }
    }
    rl_sweep_free(runs);
    rl_sweep_free(curves);
    return rc;
}
