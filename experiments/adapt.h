/* adapt.h -- one adaptation experiment, shared by `sweep finetune` (MLP)
 * and `sweep vit` (pretrained ViT): a pretrained model adapted to several
 * classification tasks by full fine-tuning, LoRA, VeRA and RandLora (dense,
 * sparse, very_sparse), every configuration tuned, trained and compared by
 * the protocol of protocol.h.
 *
 * A driver fills an ad_exp (tasks with their data and model config, the
 * pretrained weights, the targets, the configurations, the plan) and calls
 * ad_run, which owns the rest: the selection and final runs, the tables
 * (runs, curves, movement, spectrum under <dir>/), and from runs.csv the
 * summary (mean and 95% interval over seeds), the budget-matched pairs and
 * the claims:
 *   - RandLora beats LoRA / VeRA at equal parameters (pairs within 5%)
 *   - LoRA (its largest rank) plateaus below full fine-tuning
 *   - RandLora (its largest budget) reaches full fine-tuning
 *   - RandLora reaches full fine-tuning at a budget where LoRA does not
 *   - at the smallest matched budget LoRA is better (the crossover)
 *   - sparse / very_sparse bases against dense at the same r: accuracy
 *     (TOST, margin 1 point) and the train-test gap (Welch, Holm)
 * Each claim row states its rule, its test, and whether the run was quick
 * (provisional) or full.
 */
#ifndef RL_ADAPT_H
#define RL_ADAPT_H

#include "protocol.h"
#include "sweep.h"

#define AD_MAX_TASKS 8
#define AD_MAX_CFG 192

typedef struct {
    int task;
    rl_method method;
    rl_bases_kind bases;
    int r;
    long params; /* trainable: adapters + head (full fine-tuning: every weight) */
} ad_cfg;

typedef struct {
    /* ---- set by the driver ---- */
    const char *name;       /* the sweep: "finetune", "vit" */
    const char *size_name;  /* "smoke", "quick", "full": part of every point key */
    const char *model_desc; /* e.g. "mlp 784-256-256" for the manifest */
    int n_tasks;
    const char *task_names[AD_MAX_TASKS];
    rl_model_config model[AD_MAX_TASKS];        /* per task (n_classes differs) */
    rl_dataset fit[AD_MAX_TASKS], val[AD_MAX_TASKS], test[AD_MAX_TASKS];
    pr_train_cfg train[AD_MAX_TASKS];           /* everything but lr */
    const char *targets;    /* rl_model_attach's list, e.g. "fc1,fc2" */
    char base_path[700];    /* the pretrained weights */
    bool backbone_only;     /* load all but the head (the task has its own) */
    ad_cfg cfg[AD_MAX_CFG];
    int n_cfg;
    pr_plan plan;
    bool poison_test;       /* replace test labels by random ones (the protocol's test) */
    /* ---- owned by ad_run ---- */
    const sweep_opts *o;
    rl_model *m[AD_MAX_TASKS];
    rl_sweep *runs, *curves, *movement, *spectrum;
} ad_exp;

/* Trainable parameters of (method, r) on task's model: PEFT's formulas over
 * the target linears plus the head; full fine-tuning counts every weight. */
long ad_params(ad_exp *e, int task, rl_method method, int r);

/* Add a configuration (once); returns its index. */
int ad_add(ad_exp *e, int task, rl_method method, rl_bases_kind bases, int r);

/* RandLora dense at each rank of rr[0..n), and for each the LoRA rank in
 * 1..lora_max whose budget is nearest, kept when within PR_BUDGET_TOL
 * (always, with `always`: the smoke grid). */
void ad_add_matched(ad_exp *e, int task, const int *rr, int n, int lora_max, bool always);

/* A new head and the method's adapters on e->targets for `seed`
 * (pr_seeds_of: bases key, init, head); LoRA alpha = 2r, RandLora 20r. */
rl_status ad_adapt(rl_model *m, const char *targets, rl_method method, rl_bases_kind bases, int r, int seed);

/* Run the plan, then write summary.csv, pairs.csv and claims.csv from
 * runs.csv (root only). `manifest_extra` is JSON members (without braces)
 * added to the manifest's config. Returns the exit code: 0, 1 (a run
 * failed), 2 (bad setup). *complete tells whether every run is written. */
int ad_run(ad_exp *e, const sweep_opts *o, int argc, char **argv, const char *manifest_extra, bool *complete);

/* Free the datasets, models and tables of e. */
void ad_free(ad_exp *e);

/* Where a final run's merged model is kept: <dir>/models/<task>_<method>_<bases>_r<r>_s<seed>.safetensors */
void ad_model_path(char *out, size_t n, const char *dir, const char *task, const char *method, const char *bases, int r,
                   int seed);

#endif
