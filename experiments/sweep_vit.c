/* sweep_vit.c -- `randlora sweep vit`: the paper's setting at CPU scale. A
 * small ViT pretrained here on a source task (backbone.h, cached under
 * results/backbones/) is adapted to target tasks with a distribution shift by
 * full fine-tuning, LoRA, VeRA and RandLora (dense, sparse, very_sparse),
 * with adapters where the paper and PEFT put them: q, k, v, o of attention
 * and fc1, fc2 of the MLP in every block. Every configuration is tuned and
 * compared by the protocol (protocol.h, adapt.h).
 *
 * Backbone: image 28x28, patch 7 (16 tokens), dim 64, 4 heads, MLP 256, 4
 * pre-LN blocks, mean-pooled head; pretrained on the first 20,000 training
 * examples of Fashion-MNIST classes 0-4 (2,000 of them for early stopping).
 * Target tasks (the head is new for each; the backbone is loaded without it):
 *   fmnist59  Fashion-MNIST classes 5-9: new classes, the same domain
 *             (3,600 training examples: 600 validation, 3,000 fit; test 5,000)
 *   digits    sklearn's 8x8 handwritten digits resampled to 28x28 (bilinear),
 *             10 classes: a new domain (1,797 images: 597 test, 240
 *             validation, 960 fit)
 *   rotated   Fashion-MNIST classes 0-4, examples the backbone never saw,
 *             rotated by 90 degrees
 *   permuted  the same with the 16 patches shuffled and the 49 pixels inside
 *             every patch shuffled (one fixed permutation each): the patch
 *             embedding (not adapted) no longer sees the features it learnt,
 *             a deliberately high-rank shift
 * Which tasks need a high-rank update is measured, not assumed: the report
 * gives k90 of full fine-tuning's ΔW per layer (movement.csv).
 * Configurations (budgets include the head): RandLora dense r = 32, 8, 2
 * (4,608, 13,824 and 50,688 adapter parameters) and the LoRA rank of the
 * same budget (1, 3, 11: exactly equal on this model), VeRA r = 1024
 * (26,880) beside RandLora r = 4 (26,112: within 5%, so the two are
 * compared; no LoRA rank lies within 5% of it), sparse and very_sparse
 * RandLora at r = 8, full fine-tuning (the quick run drops r = 4, 2 and
 * VeRA). A ViT step costs ~50x an MLP step here, which is
 * what sizes the grid: this is the largest grid that fits the 2-hour
 * budget of `make run FULL=1` on two cores.
 *
 * Writes results/vit/ like `sweep finetune` (selection, runs, summary,
 * pairs, claims, movement, spectrum, curves, manifest) and memory.csv: the
 * peak tensor bytes of one whole fine-tuning step (batch 128) per method,
 * the shared bases counted once per model.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapt.h"
#include "backbone.h"
#include "commands.h"
#include "core/rl_blas.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "datasets/rl_data.h"
#include "protocol.h"
#include "flags.h"
#include "sweep.h"
#include "train/rl_train.h"

enum { VT_FMNIST59, VT_DIGITS, VT_ROTATED, VT_PERMUTED, VT_TASKS };
static const char *const vt_names[VT_TASKS] = {"fmnist59", "digits", "rotated", "permuted"};
enum { VT_SMOKE, VT_QUICK, VT_FULL };
static const char *const vt_size_names[3] = {"smoke", "quick", "full"};

#define VT_TARGETS "q,k,v,o,fc1,fc2"
#define VT_BATCH 128

static rl_model_config vit_config(int n_classes)
{
    return (rl_model_config){.kind = RL_MODEL_VIT, .n_classes = n_classes, .max_batch = 256, .image = 28, .patch = 7,
                             .dim = 64, .heads = 4, .mlp_dim = 256, .blocks = 4};
}

static bb_spec backbone_spec(int size)
{
    bb_spec s = {.name = "vit64_fmnist04", .model = vit_config(5), .source = {0, 1, 2, 3, 4}, .n_source = 5,
                 .n_train = 20000, .n_val = 2000, .n_test = 5000, .max_epochs = 15, .patience = 3, .batch = VT_BATCH,
                 .lr = 1e-3, .seed = 1};
    if (size == VT_SMOKE) { /* the tests' backbone: seconds */
        s.name = "vit16_smoke";
        s.model.dim = 16;
        s.model.mlp_dim = 32;
        s.model.heads = 2;
        s.model.blocks = 1;
        s.n_train = 600;
        s.n_val = 100;
        s.n_test = 200;
        s.max_epochs = 1;
    }
    return s;
}

/* Sizes of the target tasks: fit + validation from the training data, test. */
typedef struct {
    int n_ft, n_val, n_test;
} vt_sizes;

static vt_sizes task_sizes(int size, int task)
{
    if (task == VT_DIGITS) return size == VT_SMOKE ? (vt_sizes){400, 100, 300} : (vt_sizes){1200, 240, 597};
    if (size == VT_SMOKE) return (vt_sizes){400, 100, 200};
    return (vt_sizes){3600, 600, size == VT_QUICK ? 2000 : 5000};
}

/* pixel permutation of an image that shuffles its patches and, with the
 * same within-patch shuffle for every patch, the pixels inside them:
 * new x[j] = old x[perm[j]] (rl_dataset_permute) */
static void patch_perm(int *perm, int S, int p, uint64_t seed)
{
    int side = S / p, np = side * side, across[64], within[64 * 64];
    rl_perm_make(across, np, seed);
    rl_perm_make(within, p * p, seed + 1);
    for (int t = 0; t < np; t++) {
        int src_t = across[t], pr = t / side, pc = t % side, sr = src_t / side, sc = src_t % side;
        for (int i = 0; i < p * p; i++) {
            int wi = within[i];
            perm[(pr * p + i / p) * S + pc * p + i % p] = (sr * p + wi / p) * S + sc * p + wi % p;
        }
    }
}

/* rotation by 90 degrees (counter-clockwise) as a pixel permutation */
static void rot90_perm(int *perm, int S)
{
    for (int r = 0; r < S; r++)
        for (int c = 0; c < S; c++) perm[r * S + c] = c * S + (S - 1 - r);
}

static rl_status load_task(int task, int size, const bb_spec *bb, rl_dataset *fit, rl_dataset *val, rl_dataset *test)
{
    vt_sizes z = task_sizes(size, task);
    rl_dataset train = {0};
    rl_status st = RL_OK;
    if (task == VT_DIGITS) {
        rl_digits_opts o = {.side = 28, .resize = RL_RESIZE_BILINEAR};
        rl_dataset all = {0};
        RL_TRY(rl_digits_load(&all, NULL, &o));
        int n = size == VT_SMOKE ? z.n_ft + z.n_test : all.n;
        rl_dataset sub = {0};
        if (n < all.n) {
            int *idx = malloc((size_t)n * sizeof *idx);
            if (!idx) st = rl_fail(RL_ENOMEM, "vit: no memory");
            for (int i = 0; st == RL_OK && i < n; i++) idx[i] = i;
            if (st == RL_OK) st = rl_dataset_take(&sub, &all, idx, n);
            free(idx);
        }
        if (st == RL_OK) st = rl_dataset_split_stratified(&train, test, n < all.n ? &sub : &all, z.n_test, 11);
        rl_dataset_free(&sub);
        rl_dataset_free(&all);
    } else {
        rl_label_opts lo = {.n_keep = 5, .keep = {0, 1, 2, 3, 4}};
        if (task == VT_FMNIST59)
            for (int k = 0; k < 5; k++) lo.keep[k] = 5 + k;
        /* classes 0-4: the examples after the backbone's n_train, never seen in pretraining */
        int off = task == VT_FMNIST59 ? 0 : bb->n_train;
        lo.max_count = off + z.n_ft;
        rl_dataset all = {0};
        RL_TRY(rl_fmnist_load(&all, RL_SPLIT_TRAIN, NULL, &lo));
        if (all.n < off + z.n_ft)
            st = rl_fail(RL_EFORMAT, "vit: task %s needs %d training examples after %d, %d found", vt_names[task], z.n_ft,
                         off, all.n - off);
        int *idx = st == RL_OK ? malloc((size_t)z.n_ft * sizeof *idx) : NULL;
        if (st == RL_OK && !idx) st = rl_fail(RL_ENOMEM, "vit: no memory");
        for (int i = 0; st == RL_OK && i < z.n_ft; i++) idx[i] = off + i;
        if (st == RL_OK) st = rl_dataset_take(&train, &all, idx, z.n_ft);
        free(idx);
        rl_dataset_free(&all);
        lo.max_count = z.n_test;
        if (st == RL_OK) st = rl_fmnist_load(test, RL_SPLIT_TEST, NULL, &lo);
        if (st == RL_OK && (task == VT_ROTATED || task == VT_PERMUTED)) {
            int perm[784];
            if (task == VT_ROTATED) rot90_perm(perm, 28);
            else patch_perm(perm, 28, 7, 4243);
            st = rl_dataset_permute(&train, perm);
            if (st == RL_OK) st = rl_dataset_permute(test, perm);
        }
    }
    if (st == RL_OK) st = rl_dataset_split_stratified(fit, val, &train, z.n_val, 7);
    rl_dataset_free(&train);
    if (st != RL_OK) {
        rl_dataset_free(fit);
        rl_dataset_free(val);
        rl_dataset_free(test);
    }
    return st;
}

/* ---- memory of one whole fine-tuning step ---- */

/* Peak tracked bytes from before the model exists to the end of one step
 * (batch 128): weights, activation caches, adapters and their workspace,
 * the shared bases (one copy per model), gradients, AdamW state. */
static rl_status step_memory(const ad_exp *e, int task, const ad_cfg *f, size_t *peak, size_t *bases)
{
    size_t m0 = rl_mem_current();
    rl_mem_reset_peak();
    rl_model *m = NULL;
    rl_trainer *t = NULL;
    rl_model_config mc = e->model[task];
    RL_TRY(rl_model_new(&m, &mc, 1));
    rl_status st = rl_model_load_backbone(m, e->base_path);
    size_t before_attach = rl_mem_current();
    if (st == RL_OK) st = ad_adapt(m, e->targets, f->method, f->bases, f->r, 0);
    const rl_shared_bases *sb = rl_model_shared_bases(m);
    *bases = sb ? (sb->a_len + sb->b_len) * sizeof(float) : 0;
    (void)before_attach;
    rl_train_config tc = {.opt = RL_OPT_ADAMW, .lr = 1e-4, .clip = 1.0, .total_steps = 1};
    if (st == RL_OK) st = rl_trainer_new(&t, m, &tc);
    const rl_dataset *d = &e->fit[task];
    if (st == RL_OK && d->n < VT_BATCH) st = rl_fail(RL_EINVAL, "vit: %d examples for a step of %d", d->n, VT_BATCH);
    double loss;
    int hits;
    if (st == RL_OK) st = rl_trainer_step(t, d->x, d->y, VT_BATCH, &loss, &hits);
    *peak = rl_mem_peak() - m0;
    rl_trainer_free(t);
    rl_model_free(m);
    return st;
}

static rl_status write_memory(const ad_exp *e, const char *dir)
{
    pr_text o = {0};
    RL_TRY(pr_text_add(&o, "task,method,bases,r,params,peak_tensor_bytes,shared_bases_bytes\n"));
    rl_status st = RL_OK;
    for (int i = 0; i < e->n_cfg && st == RL_OK; i++) {
        const ad_cfg *f = &e->cfg[i];
        if (f->task != 0) continue; /* one task: the memory does not depend on the data */
        size_t peak = 0, bases = 0;
        st = step_memory(e, 0, f, &peak, &bases);
        if (st == RL_OK)
            st = pr_text_add(&o, "%s,%s,%s,%d,%ld,%zu,%zu\n", e->task_names[0], rl_method_name(f->method),
                             f->method == RL_METHOD_RANDLORA ? rl_bases_kind_name(f->bases) : "-", f->r, f->params, peak,
                             bases);
    }
    char path[700];
    snprintf(path, sizeof path, "%s/memory.csv", dir);
    if (st == RL_OK) st = rl_write_file_atomic(path, o.buf, o.len);
    pr_text_free(&o);
    return st;
}

/* ---- the command ---- */

typedef struct {
    pr_flags pr;
    const char *backbones;
} vt_flags;

static int vt_flag(void *ctx, int argc, char **argv, int *i)
{
    vt_flags *f = ctx;
    if (!strcmp(argv[*i], "--backbones")) {
        const char *v = flag_value("randlora sweep vit", argc, argv, i);
        if (!v) return -1;
        f->backbones = v;
        return 1;
    }
    return pr_parse_flag(&f->pr, argc, argv, i);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: randlora sweep vit [--full | --smoke] [--seeds N] [--jobs N] [--backbones DIR] [common flags]\n"
            "  Adapt a small ViT (28x28, patch 7, dim 64, 4 heads, MLP 256, 4 blocks), pretrained here on\n"
            "  Fashion-MNIST classes 0-4 and cached in DIR (default results/backbones), to target tasks with a\n"
            "  distribution shift: fmnist59 (classes 5-9), digits (sklearn digits at 28x28), rotated (90 degrees),\n"
            "  permuted (patches and pixels within patches shuffled). Adapters on q, k, v, o, fc1, fc2 of every\n"
            "  block; full fine-tuning, LoRA, VeRA, RandLora dense / sparse / very_sparse, each tuned by the\n"
            "  protocol of experiments/protocol.h; LoRA ranks matched to RandLora budgets within 5%%.\n"
            "    quick: task digits (960 fit, 240 validation, 597 test); RandLora r = 32, 8 and their LoRA\n"
            "           ranks, sparse / very_sparse r = 8, full; grid 1e-3..1e-2; <= 15 epochs, patience 3;\n"
            "           lr on seed 0; 3 seeds\n"
            "    --full: the four tasks (3000 fit, 600 validation, 5000 test; digits as above); RandLora\n"
            "           r = 32, 8, 2 and their LoRA ranks 1, 3, 11, VeRA r = 1024 beside RandLora r = 4 (its\n"
            "           budget within 5%%), sparse / very_sparse r = 8,\n"
            "           full; grid 3.2e-4..1e-2 (extended past a winning edge); <= 12 epochs (digits 30),\n"
            "           patience 5; lr on seed 0; 5 seeds\n"
            "    --smoke: a tiny backbone and task (the tests)\n"
            "  --seeds N, --jobs N, --poison-test-labels: as in `sweep finetune`.\n"
            "  Needs dataset-fashion-mnist and sklearn's digits (`.ci/install-deps` extracts them).\n");
    sweep_usage_common(out);
}

int sweep_vit(int argc, char **argv)
{
    sweep_opts o;
    sweep_opts_init(&o, "vit");
    vt_flags fl = {.pr = {.cmd = "randlora sweep vit", .accept = PR_ACCEPT_SEEDS | PR_ACCEPT_POISON, .jobs = 1},
                   .backbones = "results/backbones"};
    int pa = sweep_parse_args(&o, argc, argv, fl.pr.cmd, usage, vt_flag, &fl);
    if (pa <= 0) return pa < 0 ? 2 : 0;
    const int size = pr_flags_size(&fl.pr, &o);
    if (size < 0) return 2;
    rl_blas_set_threads(1);
    bb_spec bb = backbone_spec(size);
    bb_info bi;
    int rc = 0;
    if (sweep_is_root()) { /* one process pretrains; the others wait at the barrier */
        rl_status st = bb_get(fl.backbones, &bb, o.quiet, &bi);
        if (st != RL_OK) {
            fprintf(stderr, "randlora sweep vit: backbone: %s\n", rl_errmsg());
            rc = st == RL_ENOTFOUND || st == RL_ENOMEM || st == RL_EWRITE ? sweep_rc(rc, st) : 1;
        }
    }
    sweep_barrier();
    if (rc == 0 && !sweep_is_root() && bb_get(fl.backbones, &bb, true, &bi) != RL_OK) {
        fprintf(stderr, "randlora sweep vit: backbone: %s\n", rl_errmsg());
        rc = 2;
    }
    if (rc) return rc;
    static ad_exp e;
    memset(&e, 0, sizeof e);
    e.name = "vit";
    e.size_name = vt_size_names[size];
    e.model_desc = size == VT_SMOKE ? "vit 28/7 dim 16, 1 block" : "vit 28/7 dim 64, 4 heads, mlp 256, 4 blocks";
    e.targets = VT_TARGETS;
    e.backbone_only = true;
    e.poison_test = fl.pr.poison;
    snprintf(e.base_path, sizeof e.base_path, "%s", bi.path);
    static const pr_grid grids[3] = {{.per_decade = 2, .k_lo = -6, .k_hi = -5, .k_min = -7, .k_max = -4},
                                     {.per_decade = 2, .k_lo = -6, .k_hi = -4, .k_min = -10, .k_max = 0},
                                     {.per_decade = 2, .k_lo = -7, .k_hi = -4, .k_min = -10, .k_max = 0}};
    e.plan = (pr_plan){.grid = grids[size], .sel_seeds = 1,
                       .seeds = fl.pr.seeds ? fl.pr.seeds : size == VT_FULL ? 5 : size == VT_QUICK ? 3 : 2,
                       .jobs = fl.pr.jobs};
    static const int tasks[3][VT_TASKS] = {{VT_DIGITS}, {VT_DIGITS}, {VT_FMNIST59, VT_DIGITS, VT_ROTATED, VT_PERMUTED}};
    static const int ntasks[3] = {1, 1, 4};
    e.n_tasks = ntasks[size];
    for (int t = 0; t < e.n_tasks && rc == 0; t++) {
        int task = tasks[size][t];
        e.task_names[t] = vt_names[task];
        e.model[t] = bb.model;
        e.model[t].n_classes = task == VT_DIGITS ? 10 : 5;
        bool digits = task == VT_DIGITS;
        e.train[t] = (pr_train_cfg){.batch = VT_BATCH,
                                    .max_epochs = size == VT_SMOKE ? 2 : digits ? (size == VT_FULL ? 30 : 15) : 12,
                                    .patience = size == VT_SMOKE ? 1 : size == VT_FULL ? 5 : 3, .clip = 1.0,
                                    .weight_decay = 0.0, .warmup_frac = 0.05};
        rl_status st = load_task(task, size, &bb, &e.fit[t], &e.val[t], &e.test[t]);
        if (st == RL_OK) st = rl_model_new(&e.m[t], &e.model[t], 1);
        if (st != RL_OK) {
            fprintf(stderr, "randlora sweep vit: task %s: %s\n", vt_names[task], rl_errmsg());
            rc = sweep_rc(rc, st);
        }
    }
    if (rc == 0) {
        /* RandLora dense r with its nearest LoRA rank (within 5%), the LoRA
         * curve r = 1..32 for the figure, VeRA, sparse / very_sparse, full */
        static const int rr[3][8] = {{16}, {32, 8}, {32, 8, 4, 2}}; /* r = 4: VeRA r = 1024's budget */
        static const int nrr[3] = {1, 2, 4};
        static const int lr_[3][8] = {{0}, {0}, {0}}, nlr[3] = {0, 0, 0};
        static const int vr[3][2] = {{0}, {0}, {1024}}, nvr[3] = {0, 0, 1};
        static const int sr[3][2] = {{0}, {8}, {8}}, nsr[3] = {0, 1, 1};
        for (int t = 0; t < e.n_tasks; t++) {
            ad_add(&e, t, RL_METHOD_FULL, RL_BASES_DENSE, 0);
            ad_add_matched(&e, t, rr[size], nrr[size], 64, size == VT_SMOKE);
            for (int i = 0; i < nlr[size]; i++) ad_add(&e, t, RL_METHOD_LORA, RL_BASES_DENSE, lr_[size][i]);
            for (int i = 0; i < nvr[size]; i++) ad_add(&e, t, RL_METHOD_VERA, RL_BASES_DENSE, vr[size][i]);
            for (int i = 0; i < nsr[size]; i++) {
                ad_add(&e, t, RL_METHOD_RANDLORA, RL_BASES_SPARSE, sr[size][i]);
                ad_add(&e, t, RL_METHOD_RANDLORA, RL_BASES_VERY_SPARSE, sr[size][i]);
            }
        }
    }
    bool complete = false;
    if (rc == 0) {
        char extra[400];
        snprintf(extra, sizeof extra, "\"backbone\": {\"name\": \"%s\", \"source_val_acc\": %.4f, \"source_test_acc\": %.4f, "
                                      "\"steps\": %ld}",
                 bb.name, bi.val_acc, bi.test_acc, bi.steps);
        rc = ad_run(&e, &o, argc, argv, extra, &complete);
    }
    if (rc == 0 && complete && sweep_is_root()) {
        char path[700], row[400];
        snprintf(path, sizeof path, "%s/backbone.csv", o.dir);
        int len = snprintf(row, sizeof row, "name,source,n_train,n_val,steps,source_val_acc,source_test_acc,n_test\n"
                                            "%s,fashion-mnist 0-4,%d,%d,%ld,%.4f,%.4f,%d\n",
                           bb.name, bb.n_train, bb.n_val, bi.steps, bi.val_acc, bi.test_acc, bb.n_test);
        rl_status ws = rl_write_file_atomic(path, row, (size_t)len);
        if (ws == RL_OK) ws = write_memory(&e, o.dir);
        if (ws != RL_OK) {
            fprintf(stderr, "randlora sweep vit: %s\n", rl_errmsg());
            rc = sweep_rc(rc, ws);
        }
        if (rc == 0 && strcmp(o.dir, "results/vit") == 0) {
            static const char *const scripts[] = {"plots/vit_accuracy.gp", "plots/vit_movement.gp"};
            if (sweep_render(scripts, 2, o.quiet)) rc = sweep_rc(rc, RL_EWRITE);
        }
    }
    ad_free(&e);
    return rc;
}
