/* protocol.h -- the fine-tuning protocol that every adaptation sweep calls
 * (`sweep finetune`, `sweep vit`, `sweep teacher`): one place decides how a
 * method is tuned, trained, compared and counted, so every method gets the
 * same care.
 *
 *  1. Validation split. Each task's training data is split once, stratified
 *     by class and seeded (rl_dataset_split_stratified), into a fit part and
 *     a validation part. Hyper-parameters are chosen on validation only; the
 *     test set is evaluated once per final run, for the chosen setting.
 *  2. Selection. Per configuration (task, method, bases, r) the learning
 *     rate is chosen from a log grid lr_k = 10^(k / per_decade). The initial
 *     grid is [k_lo, k_hi]; when the best point (highest mean validation
 *     accuracy over the selection seeds, ties to the lower mean validation
 *     loss) is at an edge, the grid grows by one point beyond that edge, up
 *     to [k_min, k_max]; a choice still on the outer limit is flagged.
 *     Alpha is not tuned: it is fixed per method (LoRA 2r, RandLora 20r,
 *     VeRA has none) because with Adam the update of a method whose factors
 *     start at zero scales as s·(lr·t)^p, so a change of s is a change of lr
 *     that the (extended) grid covers; the sweeps' headers say so.
 *  3. Training to convergence (pr_fit). Warm-up and cosine decay over at
 *     most max_epochs; the validation metric is measured before training
 *     and every eval_every steps; training stops when it has not improved
 *     for `patience` evaluations, and the best-validation state is restored.
 *     Steps taken and whether patience (not max_epochs) ended the run are
 *     reported. A run whose loss turns non-finite stops there, keeps its
 *     best state so far and is marked diverged.
 *  4. Randomness a reader would vary. Seed s changes the shared bases key
 *     (projection_prng_key = s: seed 0 is PEFT's default key), the adapter
 *     init, the new head and the data order (pr_seeds_of).
 *  5. Budgets. A comparison "at equal budget" pairs configurations whose
 *     trainable parameters (adapters + head) differ by at most PR_BUDGET_TOL
 *     (5%) relative to the RandLora side (pr_match_budget).
 *  6. Statistics. rl_stats: Welch intervals of differences with Holm's
 *     correction across the pairs of one claim; TOST for "does not hurt".
 *
 * The runner (pr_run) executes an experiment as rounds: the plan -- which
 * (config, lr, seed) points still have to be trained -- is a pure function
 * of the points already written, so an interrupted sweep resumes, shards
 * (--shard i/n, by a hash of the point key) and MPI ranks cooperate through
 * the results directory, and --jobs N forks N worker processes per round.
 */
#ifndef RL_PROTOCOL_H
#define RL_PROTOCOL_H

#include <stdbool.h>
#include <stdint.h>

#include "analysis/rl_stats.h"
#include "datasets/rl_data.h"
#include "models/rl_model.h"
#include "sweep.h"

#define PR_BUDGET_TOL 0.05

/* ---- seeds ---- */
typedef struct {
    uint64_t bases_key, init, head, data;
} pr_seeds;
pr_seeds pr_seeds_of(int seed);

/* A method's adapter config as every sweep uses it: rank r, LoRA alpha = 2r
 * (the paper's LLM and GLUE scripts), RandLora alpha = 20r (PEFT's default
 * ratio, 640 at r = 32), VeRA's d_initial default, init from pr_seeds_of. */
rl_adapter_config pr_adapter_config(rl_method method, int r, int seed);

/* ---- training with early stopping ---- */
typedef struct {
    double lr;
    int batch;            /* examples per step (classification) */
    int max_epochs;
    long steps_per_epoch; /* 0: fit->n / batch */
    int eval_every;       /* steps between validation measurements (0: once per epoch) */
    int patience;         /* evaluations without improvement before stopping */
    double clip, weight_decay, warmup_frac;
} pr_train_cfg;

#define PR_MAX_CURVE 256
typedef struct {
    double val_acc, val_loss; /* of the restored best state (val_acc: -val MSE for regression) */
    long steps, best_step;    /* steps taken; step of the best state */
    int evals;
    bool stopped_early;       /* patience ended it before max_epochs */
    bool diverged;            /* a non-finite loss ended it */
    double step_ms;           /* median wall time of a step */
    int n_curve;              /* training loss every ~steps/PR_MAX_CURVE steps */
    long curve_step[PR_MAX_CURVE];
    double curve_loss[PR_MAX_CURVE];
} pr_fit_out;

/* What one training run needs from its experiment: one optimiser step (its
 * loss) and a validation measurement (score: higher is better; loss). */
typedef struct {
    rl_status (*step)(void *ctx, long step, double *loss);
    rl_status (*eval)(void *ctx, double *score, double *loss);
    void *ctx;
} pr_loop;

/* The early-stopping loop over the trainable spans sp[0..ns) (the best
 * state is a copy of those spans, allocated here once; c->eval_every or
 * c->steps_per_epoch sets the evaluation period, c->patience the stop). */
rl_status pr_fit_loop(rl_span *sp, int ns, const pr_train_cfg *c, long total_steps, const pr_loop *loop,
                      pr_fit_out *out);

/* Classification: AdamW on m's trainable spans (rl_trainer), batches of
 * c->batch from `fit` shuffled with data_seed, validation accuracy on `val`. */
rl_status pr_fit(rl_model *m, const rl_dataset *fit, const rl_dataset *val, const pr_train_cfg *c,
                 uint64_t data_seed, pr_fit_out *out);
/* Accuracy and mean cross-entropy of m on d. */
rl_status pr_eval(rl_model *m, const rl_dataset *d, double *acc, double *loss);

/* ---- how far a method moves the model ----
 * Before training, pr_w0_take copies the weights of the linears named in
 * `targets` (rl_model_attach's list; "all" for every linear but the head).
 * After training, pr_movement appends one CSV row per such linear to *buf:
 *   <prefix>,<linear name>,d_out,d_in,rel_fro,rank,k90,effective_rank
 * with ΔW the adapter's delta weight (or W - W0 when the model trains its
 * base), rel_fro = ||ΔW||_F / ||W0||_F, rank at the float32 tolerance
 * σ_max·max(m,n)·FLT_EPSILON, k90 the fewest singular directions holding
 * 90% of ||ΔW||_F², effective rank exp(H(σ/Σσ)). A zero ΔW gives rank 0
 * and k90 0. With spectrum (may be NULL) the cumulative energy
 * Σ_{i<=k} σ_i² / Σ σ² of each linear is appended to *spectrum as rows
 *   <prefix>,<linear name>,k,energy */
#define PR_MOVE_HEADER "layer,d_out,d_in,rel_fro,rank,k90,effective_rank"
#define PR_SPEC_HEADER "layer,k,energy"
typedef struct {
    int n;
    int idx[64];
    float *w0[64];
} pr_w0;
rl_status pr_w0_take(pr_w0 *s, const rl_model *m, const char *targets);
void pr_w0_free(pr_w0 *s);

/* A growing text buffer for CSV rows. */
typedef struct {
    char *buf;
    size_t len, cap;
} pr_text;
rl_status pr_text_add(pr_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pr_text_free(pr_text *t);

rl_status pr_movement(rl_model *m, const pr_w0 *s, const char *prefix, pr_text *rows, pr_text *spectrum);

/* One row of an experiment's claims.csv (header PR_CLAIM_HEADER); commas
 * inside a field become semicolons, so the row always has seven fields. */
#define PR_CLAIM_HEADER "task,claim,reference,measured,verdict,rule,run\n"
rl_status pr_claim_row(pr_text *t, const char *task, const char *claim, const char *reference, const char *measured,
                       const char *verdict, const char *rule, const char *run);

/* ---- learning-rate grid ---- */
typedef struct {
    int per_decade;   /* grid points per decade */
    int k_lo, k_hi;   /* initial grid, lr_k = 10^(k / per_decade) */
    int k_min, k_max; /* how far an edge may be extended */
} pr_grid;

double pr_grid_lr(const pr_grid *g, int k);

typedef struct {
    int best;         /* index into the evaluated points */
    bool need_more;   /* best is on an edge that can still be extended */
    int next_k;       /* the point to add when need_more */
    bool on_limit;    /* best is on k_min or k_max: the grid could not bracket it */
} pr_pick;

/* Choose among the evaluated points k[0..n) (ascending, contiguous) with
 * their mean validation scores (higher better) and losses (tie-break). */
pr_pick pr_grid_pick(const pr_grid *g, const int *k, const double *score, const double *loss, int n);

/* ---- budgets ---- */

/* Index of the candidate whose count is nearest `target` relatively (the
 * smaller |cand/target - 1|; ties: the smaller count); *rel = cand/target - 1.
 * -1 when n == 0. */
int pr_match_budget(long target, const long *cand, int n, double *rel);

/* ---- comparisons behind the verdicts ----
 * One comparison of samples a and b (over seeds): Welch's test at
 * PR_ALPHA and TOST with an equivalence margin; pr_decide applies Holm
 * across a claim's comparisons and names each: "better" / "worse" (a vs b,
 * Holm-adjusted p < PR_ALPHA), else "equivalent" (TOST) or "inconclusive". */
#define PR_ALPHA 0.05
typedef struct {
    rl_welch_result w;   /* 95% interval */
    rl_tost_result t;    /* 90% interval against +-margin */
    double p_holm;
    const char *verdict;
} pr_cmp;
bool pr_compare(pr_cmp *c, const double *a, int na, const double *b, int nb, double margin);
void pr_decide(pr_cmp *const *c, int n);
/* The claim's verdict from its comparisons ("holds" when a is better in
 * all, "holds in part", "mixed", "does not hold", "does not hold
 * (equivalent)", "inconclusive", "not measured"), and the counts as
 * "better in b / worse in w / equivalent in e / inconclusive in u of n". */
const char *pr_family_verdict(pr_cmp *const *c, int n, char *counts, size_t cl);

/* ---- the runner ---- */
typedef struct {
    int n_configs;
    /* canonical key "task=..;method=..;bases=..;r=.." and the same values as
     * CSV fields in the order of cols_header */
    const char *cols_header;
    void (*config_id)(void *ctx, int ci, char *key, size_t key_len, char *cols, size_t cols_len);
    /* One selection run: train config ci at lr with `seed` on the fit split,
     * early-stopped on validation. Must not read test data. */
    rl_status (*select)(void *ctx, int ci, double lr, int seed, pr_fit_out *out);
    /* One final run of config ci at its chosen lr: train again (runs are
     * deterministic for a seed and thread count, so a selection seed's final
     * run repeats its selection run: `sel` is that run's record, NULL for
     * the other seeds), evaluate the test set once, and write the
     * experiment's tables, the row of `done_table` under `key` last. */
    rl_status (*final)(void *ctx, int ci, double lr, int seed, const pr_fit_out *sel, const char *key);
    rl_sweep *done_table; /* a final point is done when this table has its key */
    void *ctx;
} pr_experiment;

typedef struct {
    pr_grid grid;
    int sel_seeds;    /* seeds 0 .. sel_seeds-1 select the learning rate */
    int seeds;        /* final runs for seeds 0 .. seeds-1 */
    int jobs;         /* worker processes per round (1: this process) */
} pr_plan;

typedef struct {
    bool complete;     /* every config selected and every final run written */
    int rounds;
    long trained;      /* points trained by this process and its workers */
    int *chosen_k;     /* per config: the chosen grid index (valid when decided[ci]) */
    bool *decided, *on_limit;
} pr_result;

/* Run the experiment's plan (see the top of this file). Writes
 * <dir>/selection.csv (config columns, lr, seeds, mean validation accuracy
 * and loss over the selection seeds, steps, chosen, note) whenever every
 * config is decided. Returns RL_OK also when incomplete (other shards'
 * points outstanding: res->complete is false and a message says so). */
rl_status pr_run(const pr_experiment *e, const pr_plan *plan, const sweep_opts *o, pr_result *res);
void pr_result_free(pr_result *r);

/* The flags the protocol's sweeps share, for sweep_parse_args' `extra`
 * (ctx: a pr_flags): --smoke (the tests' size), --jobs N (1..64 worker
 * processes per round), and where `accept` allows them --seeds N (final
 * seeds, 2..64) and --poison-test-labels. Returns 1 if consumed, 0 if not
 * one of these, -1 on a bad value (message printed). */
enum { PR_ACCEPT_SEEDS = 1, PR_ACCEPT_POISON = 2 };
typedef struct {
    const char *cmd; /* "randlora sweep vit": the prefix of messages */
    unsigned accept;
    bool smoke, poison;
    int seeds, jobs;
} pr_flags;
int pr_parse_flag(void *ctx, int argc, char **argv, int *i);
/* 0 smoke, 1 quick, 2 full (--full); -1 (message printed) for both --smoke and --full. */
int pr_flags_size(const pr_flags *f, const sweep_opts *o);

#endif
