/* rl_probe.h -- timing and memory probes, summarised with GSL.
 *
 * Time: rl_bench_run calls fn(ctx) `warmup` times untimed, then times each
 * call separately (monotonic clock) until both min_reps calls and
 * min_seconds have passed, or max_reps calls; CPU time (all threads) is
 * taken over the timed calls. rl_stats_summarise gives median, quartiles
 * (GSL's quantile_from_sorted_data, linear interpolation), mean and standard
 * deviation, and a distribution-free confidence interval of the median from
 * order statistics: the ranks (l, n+1-l) with l the largest rank such that
 * P(Bin(n, 1/2) <= l-1) <= 0.025, so coverage >= 95% (reported exactly in
 * ci_coverage; with fewer than 6 samples no such l exists and the interval is
 * [min, max] with its smaller coverage 1 - 2^(1-n)).
 *
 * Memory, two figures that are never mixed up:
 *   peak tensor bytes   the library's own tracked allocations (rl_mem_peak)
 *   peak RSS            the process's resident-set high-water mark, VmHWM
 *                       in /proc/self/status, which counts everything the
 *                       process touched (code, OpenBLAS buffers, stacks).
 * rl_rss_reset_peak writes 5 to /proc/self/clear_refs (Linux >= 4.0) so the
 * next reading covers only what follows.
 */
#ifndef RL_PROBE_H
#define RL_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/rl_err.h"

typedef struct {
    int n;
    double median, p25, p75, mean, sd, min, max;
    double ci_lo, ci_hi, ci_coverage; /* confidence interval of the median */
} rl_summary;

/* Summarise x[0..n) (n >= 1; x is not modified). */
rl_status rl_stats_summarise(const double *x, int n, rl_summary *out);

/* Taking turns with another process (lockstep timing: two programs timed in
 * alternate bursts see the same machine; experiments/lockstep.h). A turn is
 * the warm-up calls, or `turn_warmup` untimed calls then up to `turn_calls`
 * timed ones. rl_bench_run calls wait before a turn, which returns when it
 * is this process's and gives the partner's CPU seconds so far (NAN if
 * unknown), and pass(ctx, last) after it, last true after the final call.
 * A failing hook ends the run with its status. */
typedef struct {
    void *ctx;
    rl_status (*wait)(void *ctx, double *partner_cpu);
    rl_status (*pass)(void *ctx, bool last);
} rl_turn;

typedef struct {
    int warmup;          /* untimed calls first (default 2) */
    int min_reps;        /* at least this many timed calls (default 7: a 98% median CI) */
    int max_reps;        /* at most (default 50) */
    double min_seconds;  /* keep timing until this much time has passed (default 0.5) */
    const rl_turn *turn; /* NULL (default): run alone */
    int turn_calls;      /* timed calls per turn (>= 1; taking turns only) */
    int turn_warmup;     /* untimed calls that open each turn of timed ones (taking turns only) */
} rl_bench_opts;

rl_bench_opts rl_bench_defaults(void);

/* rl_bench_run's schedule: the most calls it makes with these options, and
 * whether call c (from 0) is a timed one (not a warm-up call, nor one that
 * opens a turn), for callers that record something per call. */
int rl_bench_max_calls(const rl_bench_opts *o);
bool rl_bench_call_timed(const rl_bench_opts *o, int c);

typedef struct {
    rl_summary wall;       /* seconds per call */
    double cpu_per_call;   /* CPU seconds per timed call, all threads */
    double foreign_cpu;    /* CPU time other processes used during the timed calls, as a
                              fraction of the machine (all online CPUs x wall time), from
                              /proc/stat less this process's own (and, taking turns, less the
                              partner's); NAN if unreadable */
} rl_bench_result;

/* Time fn(ctx). fn must not fail (check its inputs before). */
rl_status rl_bench_run(void (*fn)(void *ctx), void *ctx, const rl_bench_opts *opts,
                       rl_bench_result *out);

/* Busy CPU seconds of the whole machine since boot (/proc/stat: user,
 * nice, system, irq, softirq, steal); a negative value if unreadable. */
double rl_machine_busy_seconds(void);

/* Peak resident set (VmHWM) and current RSS in bytes; 0 if unreadable. */
size_t rl_rss_peak_bytes(void);
size_t rl_rss_bytes(void);
/* Reset VmHWM to the current RSS; RL_EIO if the kernel refuses. */
rl_status rl_rss_reset_peak(void);




/* Mean of x[0..n) and its 95% confidence interval from Student's t with
 * n - 1 degrees of freedom (GSL): mean ± t_{0.975, n-1} · sd / √n. With one
 * sample the interval is [mean, mean] and *half = 0. */
rl_status rl_mean_ci95(const double *x, int n, double *mean, double *half);

/* Least-squares fit of log(y) = intercept + slope · log(x) (GSL), for the
 * scaling exponent of time against size. Needs n >= 2 positive pairs. */
rl_status rl_fit_loglog(const double *x, const double *y, int n, double *slope, double *intercept,
                        double *r2);

#endif
