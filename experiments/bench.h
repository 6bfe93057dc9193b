/* bench.h -- one timed training step of an adapted linear layer, a small
 * stack of them, or a whole ViT: forward, backward, AdamW update, with a
 * frozen base.
 *
 * Layer and stack: loss L = Σ y ⊙ G for a fixed random G, so ∂L/∂y = G costs
 * nothing and the step times only the layers. A stack is `layers` square
 * (out x out) layers with ReLU between them; dx flows through every layer
 * but the first, which computes dx too with `dx` (a single layer with dx is
 * an inner layer of a network). Each layer's share of a step (its forward,
 * ReLU, backward, AdamW and mask) is timed on its own as well: first_ms is
 * the first layer's median, inner_ms the median over steps of the mean of
 * the other layers. Full fine-tuning trains the whole weight (no separate
 * frozen base).
 *
 * ViT (model): lib/models' ViT (image 28, patch 7: 16 tokens, dim 64, 4
 * heads, MLP 256, 4 blocks, 5 classes), adapters on q, k, v, o, fc1, fc2,
 * the head trained too; `tokens` images per batch, mean cross-entropy,
 * AdamW (no clipping), as experiments/reference/peft_bench.py --kind vit.
 *
 * With `merge`, what is timed is merging the adapter into one weight
 * (ΔW built and added: the cost of deploying it); tokens are unused.
 */
#ifndef RL_BENCH_H
#define RL_BENCH_H

#include <stdbool.h>
#include <stddef.h>

#include "adapters/rl_layer.h"
#include "analysis/rl_probe.h"
#include "sweep.h"

typedef enum { BENCH_LAYER = 0, BENCH_VIT = 1 } bench_model;

typedef struct {
    rl_method method;
    rl_bases_kind bases;
    rl_path path;
    bench_model model;
    int r, d_out, d_in, tokens, layers, threads;
    bool dx;                /* the first layer computes dx as well */
    bool merge;             /* time rl_adapter_merge of one (d_out, d_in) weight instead of a step */
    double alpha;           /* <= 0: the method's PEFT default (2r for lora) */
    rl_bench_opts opts;
} bench_config;

typedef struct {
    bench_config cfg;
    char chosen[64];        /* the plan the step took (rl_plan_name) */
    size_t params;          /* trainable parameters */
    rl_bench_result time;   /* seconds per step */
    double first_ms, inner_ms; /* per-layer split of a stack (NAN for one layer / ViT) */
    double gflop;           /* FLOP model (rl_layer_plan_flops; 0 for the ViT), 1e9 */
    double gflops;          /* gflop / median time */
    double sgemm_gflops;    /* this machine's SGEMM rate, same run and threads */
    double fma_gflops;      /* this machine's FMA peak, same threads */
    double bound_ms;        /* gflop / sgemm rate */
    size_t peak_tensor_bytes, peak_rss_bytes;
} bench_result;

bench_config bench_defaults(void);

/* The SGEMM anchor (1024^3) and the register-only FMA peak (rl_cpu.h), at
 * `threads` threads: measured once per thread count and remembered. */
rl_status bench_sgemm_rate(int threads, double *gflops);
rl_status bench_fma_peak(int threads, double *gflops);

rl_status bench_run(const bench_config *c, bench_result *out);

/* `randlora bench --targets DIR` (bench_targets.c): issue 13's targets from
 * the rounds `make bench` wrote into DIR; writes DIR/compare.csv and
 * DIR/targets.csv and prints them; with DIR/runs/, analyses each kept run
 * there again and writes DIR/targets_runs.csv (their verdicts side by side).
 * Returns the exit code. */
int bench_targets(const char *dir);

/* The kept runs' verdicts side by side, from a table of targets_runs.csv's
 * columns (run, target, condition, figure, threshold, verdict, rounds,
 * decided), for `bench --targets` and the report alike.
 * bench_runs_names: the runs in the table's order, at most 64 (names point
 * into t), their count. bench_runs_differ: for each target measured in the
 * newest run (the last name) whose verdict not every run shares, row(ctx, t,
 * r, at, n) with r its row in the newest run and at[k] run k's row (-1: the
 * run lacks it); *same and *all count the targets measured in the newest run
 * and those every run agrees on. bench_runs_cell: how a run's verdict shows,
 * "1.185 not met", " (at threshold)" appended where that run's interval holds
 * the threshold, or "not measured". */
typedef void (*bench_runs_row)(void *ctx, const csv_table *t, int r, const int *at, int n);
int bench_runs_names(const csv_table *t, const char *runs[64]);
void bench_runs_differ(const csv_table *t, const char *const *runs, int n, bench_runs_row row, void *ctx, int *same,
                       int *all);
void bench_runs_cell(const csv_table *t, int r, char *buf, size_t len);

/* CSV header (no newline) and one row (with newline) into buf. */
const char *bench_csv_header(void);
void bench_csv_row(const bench_result *r, char *buf, size_t len);

#endif
