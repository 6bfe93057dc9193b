/* test_lockstep.c -- two processes timed by turns (experiments/lockstep.h,
 * rl_bench_run's turn hooks). */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <criterion/criterion.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/rl_probe.h"
#include "core/rl_clock.h"
#include "bench.h"
#include "lockstep.h"
#include "report.h"
#include "rl_test.h"

TestSuite(lockstep, .init = rl_test_mark);

/* A log both processes append to (shared memory, mapped before fork). */
enum { LOG_MAX = 256 };
typedef struct {
    atomic_int n;
    int who[LOG_MAX];
    double t0[LOG_MAX], t1[LOG_MAX];
} call_log;

typedef struct {
    call_log *log;
    int who;
} caller;

static void logged_call(void *p)
{
    caller *c = p;
    double t0 = rl_now();
    for (volatile int i = 0; i < 200000; i++) {
    } /* some work, so that overlapping calls would show */
    int k = atomic_fetch_add(&c->log->n, 1);
    if (k < LOG_MAX) {
        c->log->who[k] = c->who;
        c->log->t0[k] = t0;
        c->log->t1[k] = rl_now();
    }
}

static void fifos(char dir[64], char ab[96], char ba[96])
{
    rl_test_tmpdir(dir, "rl_lockstep_");
    snprintf(ab, 96, "%s/ab", dir);
    snprintf(ba, 96, "%s/ba", dir);
    cr_assert_eq(mkfifo(ab, 0600), 0);
    cr_assert_eq(mkfifo(ba, 0600), 0);
}

/* One side of a pair: the first reads ba and writes ab, the second the other way round. */
static void side(lockstep *l, bool first, const char *ab, const char *ba)
{
    lockstep_init(l, first, first ? ba : ab, first ? ab : ba, 0.0);
    l->timeout = 20;
}

/* Two runs with the same counts take turns: the warm-up, then turns of one
 * untimed and two timed calls, first and second alternating, no call of one
 * overlapping a call of the other, and each side times its own calls. */
RL_TEST(lockstep, turns_alternate_without_overlap)
{
    char dir[64], ab[96], ba[96];
    fifos(dir, ab, ba);
    call_log *log = mmap(NULL, sizeof *log, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(log, MAP_FAILED);
    atomic_init(&log->n, 0);
    rl_bench_opts o = {.warmup = 1, .min_reps = 6, .max_reps = 6, .min_seconds = 0.0, .turn_calls = 2,
                       .turn_warmup = 1};
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) { /* the second */
        lockstep l;
        side(&l, false, ab, ba);
        o.turn = &l.turn;
        caller c = {log, 2};
        rl_bench_result r;
        rl_status st = rl_bench_run(logged_call, &c, &o, &r);
        lockstep_close(&l);
        _exit(st == RL_OK && r.wall.n == 6 ? 0 : 1);
    }
    lockstep l;
    side(&l, true, ab, ba);
    o.turn = &l.turn;
    caller c = {log, 1};
    rl_bench_result r;
    cr_assert_eq(rl_bench_run(logged_call, &c, &o, &r), RL_OK, "%s", rl_errmsg());
    lockstep_close(&l);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the second side failed");
    cr_assert_eq(r.wall.n, 6);
    cr_assert(r.foreign_cpu >= 0 || isnan(r.foreign_cpu));
    /* turns: warm-up 1 call each, then 3 turns of 1 + 2 calls each */
    static const int expect_len[8] = {1, 1, 3, 3, 3, 3, 3, 3};
    int n = atomic_load(&log->n), k = 0;
    cr_assert_eq(n, 2 * (1 + 3 * 3), "calls logged: %d", n);
    cr_assert_eq(rl_bench_max_calls(&o), 1 + 3 * 3, "rl_bench_max_calls agrees with the calls made");
    int timed = 0;
    for (int q = 0; q < 1 + 3 * 3; q++) timed += rl_bench_call_timed(&o, q);
    cr_assert_eq(timed, 6, "rl_bench_call_timed marks the timed calls: %d", timed);
    cr_assert(!rl_bench_call_timed(&o, 0) && !rl_bench_call_timed(&o, 1) && rl_bench_call_timed(&o, 2),
              "warm-up and a turn's opening call are untimed");
    for (int t = 0; t < 8; t++) {
        const int who = t % 2 == 0 ? 1 : 2;
        for (int i = 0; i < expect_len[t]; i++, k++) {
            cr_assert_eq(log->who[k], who, "call %d: side %d, expected %d (turn %d)", k, log->who[k], who, t);
            if (k > 0) cr_assert(log->t0[k] >= log->t1[k - 1], "call %d began before call %d ended", k, k - 1);
        }
    }
    munmap(log, sizeof *log);
    rl_test_rmdir(dir);
}

/* A partner that goes away in the middle: the run fails with a message
 * naming the FIFO, it does not hang or crash. */
RL_TEST(lockstep, partner_gone_fails_cleanly)
{
    char dir[64], ab[96], ba[96];
    fifos(dir, ab, ba);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) { /* the second: says ready, takes one turn's token, then leaves */
        lockstep l;
        side(&l, false, ab, ba);
        double pc;
        rl_status st = lockstep_wait(&l, &pc);
        _exit(st == RL_OK ? 0 : 1);
    }
    lockstep l;
    side(&l, true, ab, ba);
    rl_bench_opts o = {.warmup = 1, .min_reps = 4, .max_reps = 4, .turn = &l.turn, .turn_calls = 1};
    call_log *log = calloc(1, sizeof *log);
    caller c = {log, 1};
    rl_bench_result r;
    cr_assert_eq(rl_bench_run(logged_call, &c, &o, &r), RL_EIO);
    cr_assert(strstr(rl_errmsg(), ba) != NULL, "the message names the FIFO: %s", rl_errmsg());
    lockstep_close(&l);
    free(log);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    rl_test_rmdir(dir);
}

RL_TEST(lockstep, bad_turn_options_refused)
{
    lockstep l;
    lockstep_init(&l, true, "/nonexistent/in", "/nonexistent/out", 0.0);
    rl_bench_opts o = {.warmup = 0, .min_reps = 1, .max_reps = 1, .turn = &l.turn, .turn_calls = 0};
    rl_bench_result r;
    cr_assert_eq(rl_bench_run(logged_call, NULL, &o, &r), RL_EINVAL);
    o.turn_calls = 1;
    cr_assert_eq(rl_bench_run(logged_call, NULL, &o, &r), RL_EIO, "a FIFO that is not there");
    cr_assert(strstr(rl_errmsg(), "/nonexistent/in") != NULL, "%s", rl_errmsg());
}

/* A stack timed by turns still splits its step per layer: the per-layer
 * times come from the timed calls only (each turn opens with an untimed one). */
RL_TEST(lockstep, stack_split_per_layer)
{
    char dir[64], ab[96], ba[96];
    fifos(dir, ab, ba);
    bench_config c = bench_defaults();
    c.method = RL_METHOD_LORA;
    c.r = 4, c.d_out = c.d_in = 32, c.tokens = 16, c.layers = 3;
    c.opts.min_reps = c.opts.max_reps = 5;
    c.opts.min_seconds = 0.001;
    c.opts.turn_calls = 2;
    c.opts.turn_warmup = 1;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        lockstep l;
        side(&l, false, ab, ba);
        c.opts.turn = &l.turn;
        bench_result r;
        rl_status st = bench_run(&c, &r);
        lockstep_close(&l);
        _exit(st == RL_OK && isfinite(r.first_ms) && isfinite(r.inner_ms) ? 0 : 1);
    }
    lockstep l;
    side(&l, true, ab, ba);
    c.opts.turn = &l.turn;
    bench_result r;
    cr_assert_eq(bench_run(&c, &r), RL_OK, "%s", rl_errmsg());
    lockstep_close(&l);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the second side failed");
    cr_assert_eq(r.time.wall.n, 5);
    cr_assert(isfinite(r.first_ms) && isfinite(r.inner_ms) && r.first_ms > 0 && r.inner_ms > 0,
              "per-layer split: first %g, inner %g ms", r.first_ms, r.inner_ms);
    char row[1024];
    bench_csv_row(&r, row, sizeof row);
    cr_assert(strlen(row) > 5 && !strcmp(row + strlen(row) - 5, ",2,1\n"), "the row records the turn: %s", row);
    rl_test_rmdir(dir);
}

/* The report says how the pairs took turns from the C rows' turn_calls and
 * turn_warmup: the figures when every row agrees, that they differ when they
 * do, nothing about their lengths when the columns are not there (an earlier
 * harness). */
RL_TEST(lockstep, report_says_how_pairs_took_turns)
{
    char dir[64], sub[96];
    rl_test_tmpdir(dir, "rl_turns_");
    snprintf(sub, sizeof sub, "%s/bench", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    rl_test_write(sub, "compare.csv", "kind,method,tokens,dx,threads,c_rounds,c_ms,ref_impl,ref_version,speedup,foreign_cpu_max\n"
                                   "layer,lora,64,0,1,2,1.0,peft,torch,1.5,0.01\n");
    rl_test_write(sub, "compare_scaling.csv", "round,kind\n1,scale\n");
    static const struct {
        const char *rows, *says, *not_says;
    } cases[3] = {
        {"round,kind,turn_calls,turn_warmup\n1,layer,7,2\n2,layer,7,2\n", "2 untimed and 7 timed steps a turn", "different"},
        {"round,kind,turn_calls,turn_warmup\n1,layer,7,2\n2,layer,5,1\n", "in turns of different lengths", "timed steps a turn"},
        {"round,kind\n1,layer\n", "took turns (`bench --lockstep`)", "timed steps a turn"},
    };
    for (int k = 0; k < 3; k++) {
        rl_test_write(sub, "compare_c.csv", cases[k].rows);
        sbuf b = {0};
        report_bench(&b, dir);
        cr_assert(b.buf && strstr(b.buf, cases[k].says), "case %d: %s", k, b.buf ? b.buf : "(empty)");
        cr_assert(!strstr(b.buf, cases[k].not_says), "case %d: %s", k, b.buf);
        cr_assert(!strstr(b.buf, "compare_ratio.csv"), "case %d: no RandLora/LoRA pairs in this run: %s", k, b.buf);
        free(b.buf);
    }
    /* a run whose RandLora and LoRA layers took turns says so */
    rl_test_write(sub, "compare_ratio.csv", "round,kind\n1,ratio\n");
    sbuf b = {0};
    report_bench(&b, dir);
    cr_assert(b.buf && strstr(b.buf, "RandLora's layer taking turns with LoRA's (`bench/compare_ratio.csv`)"), "%s",
              b.buf ? b.buf : "(empty)");
    free(b.buf);
    rl_test_rmdir(sub);
    rl_test_rmdir(dir);
}

/* The report puts the kept runs' verdicts side by side: the targets whose
 * verdict differs between runs (here one of two measured), how many agree,
 * and nothing of it with one run. */
RL_TEST(lockstep, report_puts_kept_runs_side_by_side)
{
    char dir[64], sub[96];
    rl_test_tmpdir(dir, "rl_runs_rep_");
    snprintf(sub, sizeof sub, "%s/bench", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    rl_test_write(sub, "targets.csv", "target,condition,figure,threshold,verdict,rounds,ci95_lo,ci95_hi,decided,detail\n"
                                      "x,c1,1.1,>=1.20,not met,8,1.0,1.15,yes,d\n");
    static const char *const head = "run,target,condition,figure,threshold,verdict,rounds,decided\n";
    static const char *const rows = "r1,x,c1,1.213,>=1.20,met,8,no\nr1,y,c2,2.0,>=1.20,met,8,yes\nr1,z,c3,nan,>=1.20,not measured,0,-\n"
                                    "r2,x,c1,1.185,>=1.20,not met,8,yes\nr2,y,c2,2.1,>=1.20,met,8,yes\nr2,z,c3,nan,>=1.20,not measured,0,-\n";
    char all[512];
    snprintf(all, sizeof all, "%s%s", head, rows);
    rl_test_write(sub, "targets_runs.csv", all);
    sbuf b = {0};
    report_bench(&b, dir);
    cr_assert(b.buf && strstr(b.buf, "2 runs are kept: `r1`, `r2`") &&
                  strstr(b.buf, "| x | c1 | >=1.20 | 1.213 met (at threshold) | 1.185 not met |\n") &&
                  !strstr(b.buf, "| y | c2 |") &&
                  strstr(b.buf, "1 of the 2 targets measured in the newest run have the same verdict in every kept run"),
              "%s", b.buf ? b.buf : "(empty)");
    free(b.buf);
    snprintf(all, sizeof all, "%sr1,x,c1,1.213,>=1.20,met,8,no\n", head); /* one run: nothing side by side */
    rl_test_write(sub, "targets_runs.csv", all);
    sbuf c = {0};
    report_bench(&c, dir);
    cr_assert(c.buf && !strstr(c.buf, "runs are kept"), "%s", c.buf);
    free(c.buf);
    rl_test_rmdir(sub);
    rl_test_rmdir(dir);
}
