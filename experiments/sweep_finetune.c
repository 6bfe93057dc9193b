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
#include "adapt.h"
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

/* ---- the command ---- */

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

int sweep_finetune(int argc, char **argv)
{
    sweep_opts o;
    sweep_opts_init(&o, "finetune");
    pr_flags fl = {.cmd = "randlora sweep finetune", .accept = PR_ACCEPT_SEEDS | PR_ACCEPT_POISON, .jobs = 1};
    int pa = sweep_parse_args(&o, argc, argv, fl.cmd, usage, pr_parse_flag, &fl);
    if (pa <= 0) return pa < 0 ? 2 : 0;
    int sz = pr_flags_size(&fl, &o);
    if (sz < 0) return 2;
    const ft_size size = (ft_size)sz;
    ft_sizes z = sizes_of(size);
    if (fl.seeds) {
        if (fl.seeds < z.sel_seeds) {
            fprintf(stderr, "randlora sweep finetune: --seeds %d is below the %d selection seeds\n", fl.seeds, z.sel_seeds);
            return 2;
        }
        z.seeds = fl.seeds;
    }
    rl_blas_set_threads(1);
    static ad_exp e; /* large: static, one sweep per process */
    memset(&e, 0, sizeof e);
    e.name = "finetune";
    e.size_name = ft_size_names[size];
    e.model_desc = "mlp 784-256-256 (GELU)";
    e.targets = FT_TARGETS;
    e.poison_test = fl.poison;
    e.plan = (pr_plan){.grid = z.grid, .sel_seeds = z.sel_seeds, .seeds = z.seeds, .jobs = fl.jobs};
    e.n_tasks = size == FT_SMOKE ? 1 : FT_TASKS;
    int rc = 0;
    ft_data a0 = {0};
    for (int t = 0; t < e.n_tasks && rc == 0; t++) {
        ft_data d;
        rl_status st = ft_data_load(&d, t, size);
        if (st != RL_OK) {
            fprintf(stderr, "randlora sweep finetune: task %s: %s\n", ft_task_names[t], rl_errmsg());
            rc = sweep_rc(rc, st);
            break;
        }
        e.task_names[t] = ft_task_names[t];
        e.model[t] = ft_model_config();
        e.fit[t] = d.fit;
        e.val[t] = d.val;
        e.test[t] = d.test;
        e.train[t] = (pr_train_cfg){.batch = FT_BATCH, .max_epochs = z.max_epochs, .patience = z.patience, .clip = 1.0,
                                    .weight_decay = 0.0, .warmup_frac = 0.05};
        if (t == 0) {
            a0.a_train = d.a_train;
            a0.a_test = d.a_test;
        } else {
            rl_dataset_free(&d.a_train);
            rl_dataset_free(&d.a_test);
        }
    }
    double a_acc = 0;
    if (rc == 0) {
        rl_status st = ft_base(&e.m[0], &a0, o.dir, size, o.quiet, &a_acc);
        snprintf(e.base_path, sizeof e.base_path, "%s/models/base_%s.safetensors", o.dir, ft_size_names[size]);
        for (int t = 1; st == RL_OK && t < e.n_tasks; t++) st = rl_model_new(&e.m[t], &e.model[t], 1);
        if (st != RL_OK) {
            fprintf(stderr, "randlora sweep finetune: pretraining: %s\n", rl_errmsg());
            rc = st == RL_ENOTFOUND || st == RL_ENOMEM || st == RL_EWRITE ? sweep_rc(rc, st) : 1;
        }
    }
    if (rc == 0) {
        /* the grid: RandLora dense at several r with LoRA matched to each,
         * VeRA (r = 256: the budget of RandLora r = 256; 1024: of r = 64),
         * sparse and very_sparse at the r they are compared at, full */
        static const int rr[3][8] = {{64}, {128, 64, 32, 8}, {256, 128, 64, 32, 8, 4, 2, 1}};
        static const int nrr[3] = {1, 4, 8};
        static const int vr[3][2] = {{0}, {1024}, {256, 1024}}, nvr[3] = {0, 1, 2};
        static const int sr[3][2] = {{0}, {32}, {32, 8}}, nsr[3] = {0, 1, 2};
        for (int t = 0; t < e.n_tasks; t++) {
            ad_add(&e, t, RL_METHOD_FULL, RL_BASES_DENSE, 0);
            ad_add_matched(&e, t, rr[size], nrr[size], 256, size == FT_SMOKE);
            for (int i = 0; i < nvr[size]; i++) ad_add(&e, t, RL_METHOD_VERA, RL_BASES_DENSE, vr[size][i]);
            for (int i = 0; i < nsr[size]; i++) {
                ad_add(&e, t, RL_METHOD_RANDLORA, RL_BASES_SPARSE, sr[size][i]);
                ad_add(&e, t, RL_METHOD_RANDLORA, RL_BASES_VERY_SPARSE, sr[size][i]);
            }
        }
    }
    if (rc == 0 && sweep_is_root()) {
        char path[700], row[300];
        snprintf(path, sizeof path, "%s/base.csv", o.dir);
        int len = snprintf(row, sizeof row, "model,size,task_a_examples,epochs,task_a_test_examples,task_a_test_acc\n"
                                            "mlp 784-256-256-5,%s,%d,%d,%d,%.4f\n",
                           ft_size_names[size], a0.a_train.n, z.pre_epochs, a0.a_test.n, a_acc);
        rl_status ws = rl_write_file_atomic(path, row, (size_t)len);
        if (ws != RL_OK) rc = sweep_rc(rc, ws);
    }
    bool complete = false;
    if (rc == 0) {
        char extra[300];
        snprintf(extra, sizeof extra, "\"task_a\": {\"classes\": \"0-4\", \"n\": %d, \"epochs\": %d, \"lr\": 0.001, "
                                      "\"test_acc\": %.4f}, \"split_seed\": %d",
                 a0.a_train.n, z.pre_epochs, a_acc, FT_SPLIT_SEED);
        rc = ad_run(&e, &o, argc, argv, extra, &complete);
    }
    if (rc == 0 && complete && sweep_is_root() && strcmp(o.dir, "results/finetune") == 0) {
        static const char *const scripts[] = {"plots/finetune_accuracy.gp", "plots/finetune_loss.gp",
                                              "plots/finetune_movement.gp"};
        if (sweep_render(scripts, 3, o.quiet)) rc = sweep_rc(rc, RL_EWRITE);
    }
    ad_free(&e);
    rl_dataset_free(&a0.a_train);
    rl_dataset_free(&a0.a_test);
    return rc;
}
