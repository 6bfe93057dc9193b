/* bench.h -- one timed training step of an adapted linear layer (or a small
 * stack of them): forward, backward, AdamW update, with a frozen base.
 *
 * Loss: L = Σ y ⊙ G for a fixed random G, so ∂L/∂y = G costs nothing and the
 * step times only the layer. A stack is `layers` square (out x out) layers
 * with ReLU between them; dx flows through every layer but the first.
 * Full fine-tuning trains the whole weight (no separate frozen base).
 * With `merge`, what is timed is merging the adapter into one weight
 * (ΔW built and added: the cost of deploying it); tokens are unused.
 */
#ifndef RL_BENCH_H
#define RL_BENCH_H

#include <stdbool.h>
#include <stddef.h>

#include "adapters/rl_layer.h"
#include "analysis/rl_probe.h"

typedef struct {
    rl_method method;
    rl_bases_kind bases;
    rl_path path;
    int r, d_out, d_in, tokens, layers, threads;
    bool merge;             /* time rl_adapter_merge of one (d_out, d_in) weight instead of a step */
    double alpha;           /* <= 0: the method's PEFT default (2r for lora) */
    rl_bench_opts opts;
} bench_config;

typedef struct {
    bench_config cfg;
    const char *chosen;     /* the path the step took */
    size_t params;          /* trainable parameters */
    rl_bench_result time;   /* seconds per step */
    double gflop;           /* FLOP model (rl_layer_step_flops), 1e9 */
    double gflops;          /* gflop / median time */
    double sgemm_gflops;    /* this machine's SGEMM rate, same run and threads */
    double bound_ms;        /* gflop / sgemm rate */
    size_t peak_tensor_bytes, peak_rss_bytes;
} bench_result;

bench_config bench_defaults(void);

/* Measure the SGEMM anchor (1024^3, at the current thread count) once per
 * thread count and remember it. */
rl_status bench_sgemm_rate(int threads, double *gflops);

rl_status bench_run(const bench_config *c, bench_result *out);

/* CSV header (no newline) and one row (with newline) into buf. */
const char *bench_csv_header(void);
void bench_csv_row(const bench_result *r, char *buf, size_t len);

#endif
