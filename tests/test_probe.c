/* test_probe.c -- timing statistics, memory readings and the bench harness. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "analysis/rl_probe.h"
#include "bench.h"
#include "rl_test.h"

TestSuite(probe, .init = rl_test_mark);

RL_TEST(probe, summary_of_known_samples)
{
    double x[9] = {9, 1, 8, 2, 7, 3, 6, 4, 5}, keep[9];
    memcpy(keep, x, sizeof x);
    rl_summary s;
    cr_assert_eq(rl_stats_summarise(x, 9, &s), RL_OK);
    cr_assert_eq(memcmp(x, keep, sizeof x), 0, "input left as it was");
    cr_assert_float_eq(s.median, 5.0, 1e-12);
    cr_assert_float_eq(s.p25, 3.0, 1e-12);
    cr_assert_float_eq(s.p75, 7.0, 1e-12);
    cr_assert_float_eq(s.mean, 5.0, 1e-12);
    cr_assert_float_eq(s.sd, sqrt(7.5), 1e-12);
    cr_assert_eq(s.min, 1.0);
    cr_assert_eq(s.max, 9.0);
    /* Bin(9, 1/2): P(B <= 1) = 10/512 <= 0.025 < P(B <= 2) = 46/512 -> ranks 2 and 8 */
    cr_assert_eq(s.ci_lo, 2.0);
    cr_assert_eq(s.ci_hi, 8.0);
    cr_assert_float_eq(s.ci_coverage, 1.0 - 2.0 * 10.0 / 512.0, 1e-12);
}

RL_TEST(probe, summary_edge_cases)
{
    rl_summary s;
    double one = 4.0;
    cr_assert_eq(rl_stats_summarise(&one, 1, &s), RL_OK);
    cr_assert_eq(s.median, 4.0);
    cr_assert_eq(s.sd, 0.0);
    double five[5] = {5, 1, 4, 2, 3};
    cr_assert_eq(rl_stats_summarise(five, 5, &s), RL_OK);
    cr_assert_eq(s.median, 3.0);
    /* no order-statistic interval reaches 95% with 5 samples: [min, max], 93.75% */
    cr_assert_eq(s.ci_lo, 1.0);
    cr_assert_eq(s.ci_hi, 5.0);
    cr_assert_float_eq(s.ci_coverage, 0.9375, 1e-12);
    cr_assert_eq(rl_stats_summarise(five, 0, &s), RL_EINVAL);
    double even[4] = {1, 2, 3, 10};
    cr_assert_eq(rl_stats_summarise(even, 4, &s), RL_OK);
    cr_assert_float_eq(s.median, 2.5, 1e-12);
}

RL_TEST(probe, loglog_fit)
{
    double x[5] = {1, 2, 4, 8, 16}, y[5];
    for (int i = 0; i < 5; i++) y[i] = 3.0 * pow(x[i], 1.5);
    double slope, icpt, r2;
    cr_assert_eq(rl_fit_loglog(x, y, 5, &slope, &icpt, &r2), RL_OK);
    cr_assert_float_eq(slope, 1.5, 1e-12);
    cr_assert_float_eq(icpt, log(3.0), 1e-12);
    cr_assert_float_eq(r2, 1.0, 1e-12);
    y[2] = -1;
    cr_assert_eq(rl_fit_loglog(x, y, 5, &slope, &icpt, &r2), RL_EINVAL);
    cr_assert_eq(rl_fit_loglog(x, y, 1, &slope, &icpt, &r2), RL_EINVAL);
}

static int calls;
static void count_call(void *p)
{
    (void)p;
    calls++;
}

RL_TEST(probe, bench_repetitions)
{
    rl_bench_opts o = {.warmup = 3, .min_reps = 9, .max_reps = 12, .min_seconds = 0.0};
    rl_bench_result r;
    calls = 0;
    cr_assert_eq(rl_bench_run(count_call, NULL, &o, &r), RL_OK);
    cr_assert_eq(calls, 3 + 9, "warm-up calls are untimed, then min_reps timed");
    cr_assert_eq(r.wall.n, 9);
    o.min_seconds = 10.0; /* the cap wins */
    calls = 0;
    cr_assert_eq(rl_bench_run(count_call, NULL, &o, &r), RL_OK);
    cr_assert_eq(r.wall.n, 12);
    o.max_reps = 2;
    cr_assert_eq(rl_bench_run(count_call, NULL, &o, &r), RL_EINVAL);
}

/* VmHWM sees a 64 MiB mapping that was touched, and the reset forgets it once
 * it has been unmapped. */
RL_TEST(probe, rss_peak_and_reset)
{
    size_t base = rl_rss_peak_bytes();
    cr_assert(base > 0, "VmHWM readable");
    size_t big = 64u << 20;
    /* mmap, not malloc: a sanitizer's allocator would keep a freed block */
    char *p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(p != MAP_FAILED);
    memset(p, 1, big);
    size_t peak = rl_rss_peak_bytes();
    cr_assert(peak >= base + big / 2, "peak %zu did not grow past %zu", peak, base);
    munmap(p, big);
    cr_assert_eq(rl_rss_reset_peak(), RL_OK, "%s", rl_errmsg());
    size_t after = rl_rss_peak_bytes();
    cr_assert(after + big / 2 <= peak, "reset: %zu -> %zu", peak, after);
    cr_assert(rl_rss_bytes() <= after + (1u << 20));
}

/* A tiny bench point: the FLOP model and the CSV row agree with the layer,
 * and every tracked byte is returned. */
RL_TEST(probe, bench_point_is_consistent)
{
    bench_config c = bench_defaults();
    c.d_out = 40;
    c.d_in = 24;
    c.r = 4;
    c.tokens = 16;
    c.opts = (rl_bench_opts){.warmup = 1, .min_reps = 3, .max_reps = 3, .min_seconds = 0};
    static const rl_method ms[4] = {RL_METHOD_FULL, RL_METHOD_LORA, RL_METHOD_VERA, RL_METHOD_RANDLORA};
    for (int m = 0; m < 4; m++) {
        c.method = ms[m];
        bench_result r;
        cr_assert_eq(bench_run(&c, &r), RL_OK, "%s", rl_errmsg());
        cr_assert(r.time.wall.median > 0);
        cr_assert(r.peak_tensor_bytes > 0);
        cr_assert(r.sgemm_gflops > 0);
        cr_assert_eq(r.params, rl_param_count_formula(ms[m], 4, 40, 24));
        char row[1024];
        bench_csv_row(&r, row, sizeof row);
        int commas_row = 0, commas_head = 0;
        for (const char *q = row; *q; q++) commas_row += *q == ',';
        for (const char *q = bench_csv_header(); *q; q++) commas_head += *q == ',';
        cr_assert_eq(commas_row, commas_head, "row: %s", row);
        cr_assert(strlen(row) > 5 && !strcmp(row + strlen(row) - 5, ",0,0\n"), "alone: no turns in the row: %s", row);
    }
    c.method = RL_METHOD_LORA;
    c.path = RL_PATH_MATERIALISED;
    bench_result r;
    cr_assert_eq(bench_run(&c, &r), RL_EINVAL);
    c.path = RL_PATH_AUTO;
    c.layers = 3; /* a stack needs square layers */
    cr_assert_eq(bench_run(&c, &r), RL_EINVAL);
    c.d_in = 40;
    cr_assert_eq(bench_run(&c, &r), RL_OK, "%s", rl_errmsg());
}

RL_TEST(probe, mean_ci95_known_values)
{
    double x[4] = {1, 2, 3, 4}, m, h;
    cr_assert_eq(rl_mean_ci95(x, 4, &m, &h), RL_OK);
    cr_assert_float_eq(m, 2.5, 1e-12);
    /* t_{0.975, 3} = 3.182446305; sd = sqrt(5/3) */
    cr_assert_float_eq(h, 3.182446305284263 * sqrt(5.0 / 3.0) / 2.0, 1e-9);
    cr_assert_eq(rl_mean_ci95(x, 1, &m, &h), RL_OK);
    cr_assert_eq(h, 0.0);
    cr_assert_eq(rl_mean_ci95(x, 0, &m, &h), RL_EINVAL);
}

/* The stack's thread scaling is reported beside this machine's own SGEMM
 * 2T/1T, round by round from machine.csv (here 324/180 = 1.80 and
 * 361/190 = 1.90: geometric mean √3.42 = 1.849), and judged on the geometric mean of the
 * stack's own per-round ratios (190/100 and 180/100: √(1.9 · 1.8) = 1.8493,
 * not met, though the ratio of the medians over rounds is 185/100 = 1.85),
 * and beside the two runs' own SGEMM 2T/1T (342/180 = 1.90, 323/190 = 1.70):
 * the stack's scaling over it 1.90/1.90 = 1.00 and 1.80/1.70 = 1.059,
 * geometric mean √1.0588 = 1.029. */
/* bench --targets on hand-made rounds in a fresh dir: one C layer row, the
 * stack pairs and machine.csv given; returns targets.csv (free it, then
 * rl_test_rmdir(dir)). */
static char *targets_of(char dir[64], const char *scaling, const char *machine)
{
    rl_test_tmpdir(dir, "rl_targets_");
    rl_test_write(dir, "compare_c.csv", "round,kind,method,tokens,dx,threads,median_ms\n1,layer,lora,64,0,1,1.0\n");
    rl_test_write(dir, "compare_scaling.csv", scaling);
    rl_test_write(dir, "machine.csv", machine);
    fflush(stdout);
    cr_assert_eq(bench_targets(dir), 0);
    char p[128];
    snprintf(p, sizeof p, "%s/targets.csv", dir);
    char *t = rl_test_slurp(p, NULL);
    cr_assert(t, "%s", p);
    return t;
}

RL_TEST(probe, targets_put_stack_scaling_beside_sgemm)
{
    char dir[64];
    char *t = targets_of(dir,
                         "round,kind,method,tokens,dx,threads,median_ms,first_ms,inner_ms,sgemm_gflops\n"
                         "1,scale,lora,4096,1,1,190,40,50,180\n1,scale,lora,4096,1,2,100,20,27,342\n"
                         "2,scale,lora,4096,1,1,180,40,50,190\n2,scale,lora,4096,1,2,100,20,27,323\n",
                         "round,threads,sgemm_gflops,fma_gflops,sgemm_fraction_of_fma,core\n"
                         "1,1,180,200,0.9,Cooperlake\n1,2,324,400,0.81,Cooperlake\n"
                         "2,1,190,200,0.95,Cooperlake\n2,2,361,400,0.9025,Cooperlake\n");
    const char *row = strstr(t, "stack_thread_scaling,stack lora 1T/2T,1.8493,>=1.85,not met,2,");
    cr_assert(row, "%s", t);
    cr_assert(strstr(row, "this machine's SGEMM 1024^3 2T/1T 1.85 (geometric mean of rounds 1.80-1.90)") &&
                  strstr(row, "round by round 1T/2T 1.80-1.90") &&
                  strstr(row, "the two runs' own SGEMM 1024^3 2T/1T 1.70-1.90 by round; the stack's scaling over it "
                              "1.00-1.06 (geometric mean 1.029)"),
              "%.400s", row);
    free(t);
    rl_test_rmdir(dir);
}

/* The stack's scaling over the runs' own SGEMM pairs the two by round: a
 * round whose 1T run has no SGEMM rate (round 2 here, 0) drops out of that
 * comparison only. The stack's figure keeps its 3 rounds (1.90, 1.85,
 * 1.80: geometric mean 1.8495); the own-SGEMM comparison has rounds 1 and
 * 3, as in the test above (1.00 and 1.059, geometric mean 1.029). */
RL_TEST(probe, targets_pair_stack_and_sgemm_by_round)
{
    char dir[64];
    char *t = targets_of(dir,
                         "round,kind,method,tokens,dx,threads,median_ms,first_ms,inner_ms,sgemm_gflops\n"
                         "1,scale,lora,4096,1,1,190,40,50,180\n1,scale,lora,4096,1,2,100,20,27,342\n"
                         "2,scale,lora,4096,1,1,185,40,50,0\n2,scale,lora,4096,1,2,100,20,27,330\n"
                         "3,scale,lora,4096,1,1,180,40,50,190\n3,scale,lora,4096,1,2,100,20,27,323\n",
                         "round,threads,sgemm_gflops,fma_gflops,sgemm_fraction_of_fma,core\n"
                         "1,1,180,200,0.9,Cooperlake\n1,2,324,400,0.81,Cooperlake\n");
    const char *row = strstr(t, "stack_thread_scaling,stack lora 1T/2T,1.8495,>=1.85,not met,3,");
    cr_assert(row, "%s", t);
    cr_assert(strstr(row, "the two runs' own SGEMM 1024^3 2T/1T 1.70-1.90 by round; the stack's scaling over it "
                          "1.00-1.06 (geometric mean 1.029)"),
              "%.600s", row);
    free(t);
    rl_test_rmdir(dir);
}

/* A verdict is decided when the rounds' 95% interval (a t interval on the
 * logs of the per-round figures) lies wholly on its side of the threshold.
 * SGEMM over the FMA peak, 3 rounds a thread count:
 *   1T 0.90, 0.91, 0.92: interval about [0.885, 0.935], met and decided;
 *   2T 0.70, 0.76, 0.82: geometric mean 0.7584 >= 0.75, met, but the
 *   interval [0.59, 0.96] holds 0.75: at threshold.
 * The stack, 2 rounds: 1T/2T 1.70 and 1.72 (not met), interval on logs
 * 0.5398 ± 12.706 · 0.00827 / √2, about [1.60, 1.82], below 1.85: decided. */
RL_TEST(probe, targets_decide_by_the_rounds_interval)
{
    char dir[64];
    char *t = targets_of(dir,
                         "round,kind,method,tokens,dx,threads,median_ms,first_ms,inner_ms\n"
                         "1,scale,lora,4096,1,1,170,40,50\n1,scale,lora,4096,1,2,100,20,27\n"
                         "2,scale,lora,4096,1,1,172,40,50\n2,scale,lora,4096,1,2,100,20,27\n",
                         "round,threads,sgemm_gflops,fma_gflops,sgemm_fraction_of_fma,core\n"
                         "1,1,180,200,0.90,Cooperlake\n1,2,280,400,0.70,Cooperlake\n"
                         "2,1,182,200,0.91,Cooperlake\n2,2,304,400,0.76,Cooperlake\n"
                         "3,1,184,200,0.92,Cooperlake\n3,2,328,400,0.82,Cooperlake\n");
    cr_assert(strstr(t, "target,condition,figure,threshold,verdict,rounds,ci95_lo,ci95_hi,decided,detail\n"), "%.200s", t);
    /* expected intervals from the formula, t quantiles from tables:
     * t_{0.975,2} = 4.302653, t_{0.975,1} = 12.706205 */
    double l1[3] = {log(0.90), log(0.91), log(0.92)}, l2[3] = {log(0.70), log(0.76), log(0.82)};
    double l3[2] = {log(1.70), log(1.72)};
    struct {
        const char *head;
        const double *lg;
        int n;
        double tq;
        const char *tail;
    } want[3] = {{"sgemm_of_fma_peak,SGEMM 1024^3 1T,0.9100,>=0.75,met,3,", l1, 3, 4.302653, "yes"},
                 {"sgemm_of_fma_peak,SGEMM 1024^3 2T,0.7584,>=0.75,met,3,", l2, 3, 4.302653, "no"},
                 {"stack_thread_scaling,stack lora 1T/2T,1.7100,>=1.85,not met,2,", l3, 2, 12.706205, "yes"}};
    for (int k = 0; k < 3; k++) {
        const char *row = strstr(t, want[k].head);
        cr_assert(row, "%s\n%s", want[k].head, t);
        double m = 0, ss = 0;
        for (int i = 0; i < want[k].n; i++) m += want[k].lg[i] / want[k].n;
        for (int i = 0; i < want[k].n; i++) ss += (want[k].lg[i] - m) * (want[k].lg[i] - m);
        double h = want[k].tq * sqrt(ss / (want[k].n - 1)) / sqrt(want[k].n), lo, hi;
        char dec[8];
        cr_assert_eq(sscanf(row + strlen(want[k].head), "%lf,%lf,%7[a-z],", &lo, &hi, dec), 3, "%.200s", row);
        /* the CSV keeps 4 decimals */
        cr_assert(fabs(lo - exp(m - h)) < 1e-4 && fabs(hi - exp(m + h)) < 1e-4, "%.200s: want %.4f %.4f", row,
                  exp(m - h), exp(m + h));
        cr_assert_str_eq(dec, want[k].tail, "%.200s", row);
    }
    free(t);
    rl_test_rmdir(dir);
}

/* RandLora over LoRA is judged on the pairs in which the two took turns
 * (compare_ratio.csv) when a run has them: 150/100 and 156/100 by round,
 * geometric mean √2.34 = 1.5297, against a floor of 20/13 = 1.5385 and a
 * threshold of 1.5385 · 1.50/1.47 = 1.570 (met, 2 rounds). compare_c.csv's
 * layer rows of the same round (160/100 = 1.60, not met) are what a run
 * without the file (an earlier harness) is judged on. */
RL_TEST(probe, targets_take_randlora_over_lora_from_the_ratio_pairs)
{
    static const char *const layer =
        "round,kind,method,tokens,dx,threads,median_ms,gflop\n"
        "1,layer,randlora,4096,1,1,160,20\n1,layer,lora,4096,1,1,100,13\n";
    static const char *const ratio =
        "round,kind,method,tokens,dx,threads,median_ms,gflop\n"
        "1,ratio,randlora,4096,1,1,150,20\n1,ratio,lora,4096,1,1,100,13\n"
        "2,ratio,randlora,4096,1,1,156,20\n2,ratio,lora,4096,1,1,100,13\n";
    for (int with = 0; with < 2; with++) {
        char dir[64], p[128];
        rl_test_tmpdir(dir, "rl_ratio_");
        rl_test_write(dir, "compare_c.csv", layer);
        if (with) rl_test_write(dir, "compare_ratio.csv", ratio);
        fflush(stdout);
        cr_assert_eq(bench_targets(dir), 0);
        snprintf(p, sizeof p, "%s/targets.csv", dir);
        char *t = rl_test_slurp(p, NULL);
        cr_assert(t, "%s", p);
        const char *want = with ? "randlora_over_lora,layer 4096 tokens dx=1 1T,1.5297,<=1.570,met,2,"
                                : "randlora_over_lora,layer 4096 tokens dx=1 1T,1.6000,<=1.570,not met,1,";
        const char *row = strstr(t, want);
        cr_assert(row, "%s\n%s", want, t);
        const char *how = with ? "153.00 / 100.00 ms (taking turns); FLOP floor 1.538" /* medians over the rounds */
                               : "160.00 / 100.00 ms (separate pairs of a round); FLOP floor 1.538";
        cr_assert(strstr(row, how), "%.300s", row);
        if (with) cr_assert(strstr(row, "round by round 1.500-1.560 (2 rounds)"), "%.300s", row);
        free(t);
        rl_test_rmdir(dir);
    }
}

/* Each run kept in DIR/runs/ is analysed again, and targets_runs.csv puts
 * their verdicts side by side, runs in name (time) order: the earlier run
 * without RandLora/LoRA pairs (1.60, not met, 1 round), the later with them
 * (1.5297, met; 2 rounds whose interval holds the threshold). */
RL_TEST(probe, targets_of_kept_runs_side_by_side)
{
    static const char *const layer =
        "round,kind,method,tokens,dx,threads,median_ms,gflop\n"
        "1,layer,randlora,4096,1,1,160,20\n1,layer,lora,4096,1,1,100,13\n";
    char dir[64], runs[96], run[2][128];
    rl_test_tmpdir(dir, "rl_runs_");
    rl_test_write(dir, "compare_c.csv", layer);
    snprintf(runs, sizeof runs, "%s/runs", dir);
    cr_assert_eq(mkdir(runs, 0700), 0);
    for (int k = 0; k < 2; k++) {
        snprintf(run[k], sizeof run[k], "%s/2026120%c-0000-src%c", runs, (char)('1' + k), (char)('0' + k));
        cr_assert_eq(mkdir(run[k], 0700), 0);
        rl_test_write(run[k], "compare_c.csv", layer);
    }
    rl_test_write(run[1], "compare_ratio.csv",
                  "round,kind,method,tokens,dx,threads,median_ms,gflop\n"
                  "1,ratio,randlora,4096,1,1,150,20\n1,ratio,lora,4096,1,1,100,13\n"
                  "2,ratio,randlora,4096,1,1,156,20\n2,ratio,lora,4096,1,1,100,13\n");
    fflush(stdout);
    cr_assert_eq(bench_targets(dir), 0);
    char p[128];
    snprintf(p, sizeof p, "%s/targets_runs.csv", dir);
    char *t = rl_test_slurp(p, NULL);
    cr_assert(t, "%s", p);
    cr_assert(!strncmp(t, "run,target,condition,figure,threshold,verdict,rounds,decided\n", 61), "%.100s", t);
    const char *a = strstr(t, "20261201-0000-src0,randlora_over_lora,layer 4096 tokens dx=1 1T,1.6000,<=1.570,not met,1,-\n"),
               *b = strstr(t, "20261202-0000-src1,randlora_over_lora,layer 4096 tokens dx=1 1T,1.5297,<=1.570,met,2,no\n");
    cr_assert(a && b && a < b, "%s", t);
    free(t);
    for (int k = 0; k < 2; k++) rl_test_rmdir(run[k]);
    rl_test_rmdir(runs);
    rl_test_rmdir(dir);
}
