/* rl_probe.c -- timers, GSL summaries, memory readings, SGEMM anchor. */
#include "rl_probe.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_fit.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include "../core/rl_blas.h"
#include "../core/rl_clock.h"
#include "../core/rl_parse.h"
#include "../core/rl_rng.h"
#include "../core/rl_tensor.h"

rl_status rl_stats_summarise(const double *x, int n, rl_summary *out)
{
    memset(out, 0, sizeof *out);
    if (n < 1 || !x) return rl_fail(RL_EINVAL, "summarise: need at least one sample (got %d)", n);
    double *s = malloc((size_t)n * sizeof *s);
    if (!s) return rl_fail(RL_ENOMEM, "summarise: no memory");
    memcpy(s, x, (size_t)n * sizeof *s);
    gsl_sort(s, 1, (size_t)n);
    out->n = n;
    out->min = s[0];
    out->max = s[n - 1];
    out->median = gsl_stats_median_from_sorted_data(s, 1, (size_t)n);
    out->p25 = gsl_stats_quantile_from_sorted_data(s, 1, (size_t)n, 0.25);
    out->p75 = gsl_stats_quantile_from_sorted_data(s, 1, (size_t)n, 0.75);
    out->mean = gsl_stats_mean(s, 1, (size_t)n);
    out->sd = n > 1 ? gsl_stats_sd_m(s, 1, (size_t)n, out->mean) : 0.0;
    /* largest l with P(B <= l-1) <= 0.025, B ~ Bin(n, 1/2); interval = ranks l, n+1-l */
    int l = 0;
    for (int k = 1; k <= n / 2; k++)
        if (gsl_cdf_binomial_P((unsigned)(k - 1), 0.5, (unsigned)n) <= 0.025) l = k;
    if (l >= 1) {
        out->ci_lo = s[l - 1];
        out->ci_hi = s[n - l];
        out->ci_coverage = 1.0 - 2.0 * gsl_cdf_binomial_P((unsigned)(l - 1), 0.5, (unsigned)n);
    } else {
        out->ci_lo = s[0];
        out->ci_hi = s[n - 1];
        out->ci_coverage = n > 1 ? 1.0 - 2.0 * pow(0.5, n) : 0.0;
    }
    free(s);
    return RL_OK;
}

rl_bench_opts rl_bench_defaults(void)
{
    return (rl_bench_opts){.warmup = 2, .min_reps = 7, .max_reps = 50, .min_seconds = 0.5, .turn_calls = 1};
}

int rl_bench_max_calls(const rl_bench_opts *o)
{
    int n = o->warmup + o->max_reps;
    if (o->turn && o->turn_calls > 0) n += o->turn_warmup * ((o->max_reps + o->turn_calls - 1) / o->turn_calls);
    return n;
}

bool rl_bench_call_timed(const rl_bench_opts *o, int c)
{
    if (c < o->warmup) return false;
    if (!o->turn) return true;
    return (c - o->warmup) % (o->turn_warmup + o->turn_calls) >= o->turn_warmup;
}

rl_status rl_bench_run(void (*fn)(void *ctx), void *ctx, const rl_bench_opts *opts,
                       rl_bench_result *out)
{
    rl_bench_opts o = opts ? *opts : rl_bench_defaults();
    if (o.min_reps < 1 || o.max_reps < o.min_reps || o.warmup < 0)
        return rl_fail(RL_EINVAL, "bench: bad repetition counts (warmup %d, min %d, max %d)", o.warmup,
                       o.min_reps, o.max_reps);
    const rl_turn *turn = o.turn;
    if (turn && (!turn->wait || !turn->pass || o.turn_calls < 1 || o.turn_warmup < 0))
        return rl_fail(RL_EINVAL, "bench: a turn needs both hooks, >= 1 timed and >= 0 untimed calls (%d, %d)",
                       o.turn_calls, o.turn_warmup);
    double *t = malloc((size_t)o.max_reps * sizeof *t);
    if (!t) return rl_fail(RL_ENOMEM, "bench: no memory");
    rl_status st = RL_OK;
    double pcpu = 0.0, pcpu0 = 0.0; /* the partner's CPU readings (taking turns) */
    if (turn && o.warmup > 0) st = turn->wait(turn->ctx, &pcpu);
    for (int i = 0; i < o.warmup && st == RL_OK; i++) fn(ctx);
    if (turn && o.warmup > 0 && st == RL_OK) st = turn->pass(turn->ctx, false);
    /* Each call is timed on its own. The window for foreign_cpu runs from the
       start of the first timed call to the end of the last; taking turns, the
       partner's turns in between are taken off by its CPU readings (those
       that came before the first and before the last turn). */
    int n = 0, in_turn = 0;
    double start = 0, cpu0 = 0, busy0 = 0, end = 0, cpu1 = 0, busy1 = 0;
    bool last = false;
    while (st == RL_OK && !last) {
        if (turn && in_turn == 0) {
            st = turn->wait(turn->ctx, &pcpu);
            for (int i = 0; i < o.turn_warmup && st == RL_OK; i++) fn(ctx);
            if (st != RL_OK) break;
        }
        if (n == 0) {
            start = rl_now(), cpu0 = rl_cpu_now(), busy0 = rl_machine_busy_seconds();
            pcpu0 = pcpu;
        }
        double t0 = rl_now();
        fn(ctx);
        double t1 = rl_now();
        t[n++] = t1 - t0;
        last = n >= o.max_reps || (n >= o.min_reps && t1 - start >= o.min_seconds);
        if (last) /* the window ends here: passing the last turn waits for the partner's last */
            end = t1, cpu1 = rl_cpu_now(), busy1 = rl_machine_busy_seconds();
        if (turn && (++in_turn == o.turn_calls || last)) {
            st = turn->pass(turn->ctx, last);
            in_turn = 0;
        }
    }
    if (st != RL_OK) {
        free(t);
        return st;
    }
    double cpu = cpu1 - cpu0, wall = end - start;
    const double partner = pcpu - pcpu0; /* NAN when the partner gives no readings */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    st = rl_stats_summarise(t, n, &out->wall);
    out->cpu_per_call = cpu / n;
    out->foreign_cpu = busy0 >= 0 && busy1 >= 0 && ncpu > 0 && wall > 0 && !isnan(partner)
                           ? fmax(0.0, (busy1 - busy0 - cpu - partner) / (wall * (double)ncpu))
                           : NAN;
    free(t);
    return st;
}

double rl_machine_busy_seconds(void)
{
    FILE *fp = fopen("/proc/stat", "r");
    if (!fp) return -1;
    unsigned long long v[8] = {0};
    int got = fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                     &v[6], &v[7]);
    fclose(fp);
    long hz = sysconf(_SC_CLK_TCK);
    if (got < 8 || hz <= 0) return -1;
    /* user nice system idle iowait irq softirq steal: all but idle and iowait */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)hz;
}

static size_t status_kb(const char *field)
{
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp) return 0;
    char line[256];
    size_t kb = 0, len = strlen(field);
    while (fgets(line, sizeof line, fp))
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            /* "VmHWM:\t   1234 kB\n": the number between the blanks and " kB" */
            char *v = line + len + 1, *end;
            while (*v == ' ' || *v == '\t') v++;
            end = strstr(v, " kB");
            uint64_t x = 0;
            if (end) {
                *end = '\0';
                if (rl_parse_u64(v, 0, SIZE_MAX / 1024, field, &x) == RL_OK) kb = (size_t)x;
            }
            break;
        }
    fclose(fp);
    return kb * 1024;
}

size_t rl_rss_peak_bytes(void) { return status_kb("VmHWM"); }
size_t rl_rss_bytes(void) { return status_kb("VmRSS"); }

rl_status rl_rss_reset_peak(void)
{
    FILE *fp = fopen("/proc/self/clear_refs", "w");
    if (!fp) return rl_fail(RL_EIO, "/proc/self/clear_refs: %s", strerror(errno));
    int ok = fputs("5", fp) >= 0;
    if (fclose(fp) != 0) ok = 0;
    return ok ? RL_OK : rl_fail(RL_EIO, "/proc/self/clear_refs: the kernel refused a peak reset");
}

rl_status rl_fit_loglog(const double *x, const double *y, int n, double *slope, double *intercept,
                        double *r2)
{
    if (n < 2) return rl_fail(RL_EINVAL, "fit: need at least 2 points (got %d)", n);
    double *lx = malloc(2 * (size_t)n * sizeof *lx);
    if (!lx) return rl_fail(RL_ENOMEM, "fit: no memory");
    double *ly = lx + n;
    for (int i = 0; i < n; i++) {
        if (!(x[i] > 0) || !(y[i] > 0)) {
            free(lx);
            return rl_fail(RL_EINVAL, "fit: point %d (%g, %g) is not positive", i, x[i], y[i]);
        }
        lx[i] = log(x[i]);
        ly[i] = log(y[i]);
    }
    double c0, c1, cov00, cov01, cov11, sumsq;
    gsl_fit_linear(lx, 1, ly, 1, (size_t)n, &c0, &c1, &cov00, &cov01, &cov11, &sumsq);
    double tss = gsl_stats_tss(ly, 1, (size_t)n);
    *slope = c1;
    *intercept = c0;
    *r2 = tss > 0 ? 1.0 - sumsq / tss : 1.0;
    free(lx);
    return RL_OK;
}

rl_status rl_mean_ci95(const double *x, int n, double *mean, double *half)
{
    if (n < 1) return rl_fail(RL_EINVAL, "mean_ci95: no samples");
    *mean = gsl_stats_mean(x, 1, (size_t)n);
    *half = n > 1 ? gsl_cdf_tdist_Pinv(0.975, n - 1) * gsl_stats_sd_m(x, 1, (size_t)n, *mean) / sqrt((double)n) : 0.0;
    return RL_OK;
}
