/* report_perf.c -- the cost and performance-target sections of REPORT.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "report.h"

void report_cost(sbuf *b, const char *dir)
{
    csv_table t;
    if (!rp_table(dir, "cost/threads.csv", &t)) {
        rp_put(b, "Not run.\n\n");
        return;
    }
    int l = rp_find(&t, "method", "lora", "threads", "1", NULL);
    double lora = l >= 0 ? rp_num(&t, l, "median_ms") : NAN;
    rp_put(b, "One training step (forward, backward, AdamW) of a 768x768 layer, 4096 tokens, r = 32, 1 thread "
           "(`cost/threads.csv`):\n\n| method | bases | path taken | median ms | IQR ms | GFLOP (model) | GFLOP/s | "
           "fraction of SGEMM | step / LoRA's |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int r = 0; r < t.nrow; r++) {
        if (strcmp(rp_cell(&t, r, "threads"), "1")) continue;
        rp_put(b, "| %s | %s | %s | %.2f | %.2f-%.2f | %.3f | %.1f | %.0f%% | %.2f |\n", rp_cell(&t, r, "method"),
            rp_cell(&t, r, "bases"), rp_cell(&t, r, "chosen"), rp_num(&t, r, "median_ms"), rp_num(&t, r, "p25_ms"), rp_num(&t, r, "p75_ms"),
            rp_num(&t, r, "gflop"), rp_num(&t, r, "gflops"), 100 * rp_num(&t, r, "sgemm_fraction"), rp_num(&t, r, "median_ms") / lora);
    }
    int s = rp_find(&t, "threads", "1", NULL);
    if (s >= 0) rp_put(b, "\nSGEMM anchor measured in the same run: %.1f GFLOP/s (1 thread, OpenBLAS core %s).\n\n",
                    rp_num(&t, s, "sgemm_gflops"), rp_cell(&t, s, "core"));
    csv_free(&t);
    if (rp_table(dir, "cost/slopes.csv", &t)) {
        rp_put(b, "Scaling of step time with layer size (log-log least squares, `cost/slopes.csv`): ");
        for (int r = 0; r < t.nrow; r++)
            rp_put(b, "%s%s %s slope %.2f", r ? "; " : "", rp_cell(&t, r, "method"), rp_cell(&t, r, "bases"), rp_num(&t, r, "slope"));
        rp_put(b, ".\n\n");
        csv_free(&t);
    }
}

/* The machine figures of make bench (bench/machine.csv). */
static void bench_machine(sbuf *b, const char *dir)
{
    csv_table mc;
    if (!rp_table(dir, "bench/machine.csv", &mc)) return;
    rp_put(b, "Machine (`bench/machine.csv`): %s; OpenBLAS core %s, %s threads", rp_cell(&mc, 0, "cpu"),
           rp_cell(&mc, 0, "selection"), rp_cell(&mc, 0, "blas_threading"));
    /* the source of the binary that ran (earlier runs lack the column) */
    if (csv_col(&mc, "source") >= 0) rp_put(b, "; the tool built from `%s`", rp_cell(&mc, 0, "source"));
    rp_put(b, ".\n\n");
    /* one row per round and thread count (a run before rounds were recorded: per thread count) */
    const bool rounds = csv_col(&mc, "round") >= 0;
    rp_put(b, "%s| threads | SGEMM 1024³ GFLOP/s | register-only FMA peak GFLOP/s | SGEMM / peak |\n%s|---|---|---|---|\n",
           rounds ? "| round " : "", rounds ? "|---" : "");
    bool over = false; /* a fraction above 1 */
    for (int r = 0; r < mc.nrow; r++) {
        const double fr = rp_num(&mc, r, "sgemm_fraction_of_fma");
        over |= fr > 1.0;
        if (rounds) rp_put(b, "| %s ", rp_cell(&mc, r, "round"));
        rp_put(b, "| %s | %.1f | %.1f | %.1f%% |\n", rp_cell(&mc, r, "threads"), rp_num(&mc, r, "sgemm_gflops"),
               rp_num(&mc, r, "fma_gflops"), 100 * fr);
    }
    if (rounds) rp_put(b, "\nThe SGEMM target takes, per thread count, the geometric mean of these rounds' fractions.\n");
    if (over)
        rp_put(b, "A fraction above 100%% cannot be the machine's: the FMA loop (5 timings of about 60 ms, their median kept) "
                  "was slowed by something else in that round.\n");
    rp_put(b, "\n");
    csv_free(&mc);
}

static const char *impl_label(const char *impl)
{
    return !strcmp(impl, "peft") ? "PEFT" : !strcmp(impl, "transcription") ? "transcription (not PEFT)" : "-";
}


/* The verdicts of the runs kept in bench/runs/ side by side
 * (bench/targets_runs.csv, every run analysed again by this code): the
 * targets whose verdict differs between runs, and how many agree. Nothing
 * with fewer than 2 runs. */
/* a row of the table: a target whose verdict differs between runs */
static void runs_row(void *ctx, const csv_table *t, int r, const int *at, int n)
{
    sbuf *b = ctx;
    rp_put(b, "| %s | %s | %s |", rp_cell(t, r, "target"), rp_cell(t, r, "condition"), rp_cell(t, r, "threshold"));
    for (int k = 0; k < n; k++) {
        char c[64] = "-";
        if (at[k] >= 0) bench_runs_cell(t, at[k], c, sizeof c);
        rp_put(b, " %s |", c);
    }
    rp_put(b, "\n");
}

static void bench_runs(sbuf *b, const char *dir)
{
    csv_table t;
    if (!rp_table(dir, "bench/targets_runs.csv", &t)) return;
    const char *runs[64];
    const int n = bench_runs_names(&t, runs);
    if (n < 2) {
        csv_free(&t);
        return;
    }
    rp_put(b, "Every `make bench` keeps its rounds in `bench/runs/<UTC start>-<source>/`, and `bench --targets` "
              "analyses each again (`bench/targets_runs.csv`). %d runs are kept:", n);
    for (int k = 0; k < n; k++) rp_put(b, "%s `%s`", k ? "," : "", runs[k]);
    rp_put(b, ". A run's intervals speak for its own machine; a verdict that differs between runs is one that "
              "the machine decides. The targets whose verdict differs (figure, verdict; at threshold: the run's own "
              "95%% interval holds the threshold):\n\n| target | condition | threshold |");
    for (int k = 0; k < n; k++) rp_put(b, " %s |", runs[k]);
    rp_put(b, "\n|---|---|---|");
    for (int k = 0; k < n; k++) rp_put(b, "---|");
    rp_put(b, "\n");
    int same, all;
    bench_runs_differ(&t, runs, n, runs_row, b, &same, &all);
    rp_put(b, "\n%d of the %d targets measured in the newest run have the same verdict in every kept run.\n\n", same, all);
    csv_free(&t);
}

void report_bench(sbuf *b, const char *dir)
{
    csv_table tg, cp, t;
    bool have_tg = rp_table(dir, "bench/targets.csv", &tg), have_cp = rp_table(dir, "bench/compare.csv", &cp);
    bool have_t = rp_table(dir, "bench/bench.csv", &t);
    if (!have_tg && !have_cp && !have_t) {
        rp_put(b, "Not run (`make bench`).\n\n");
        return;
    }
    bench_machine(b, dir);
    if (!have_tg && !have_cp)
        rp_put(b, "`bench/bench.csv` only: these rows come from an earlier `make bench` (no `bench/targets.csv` or "
                  "`bench/compare.csv` yet: the like-for-like run against PyTorch, `make bench PEFT_SRC=...`, has not "
                  "been made on this code, so its targets are not reported).\n\n");
    if (have_cp) {
        /* who the reference was, and how quiet the machine was */
        const char *impl = "-", *ver = "";
        double foreign = 0;
        int rounds = 0;
        for (int r = 0; r < cp.nrow; r++) {
            if (strcmp(rp_cell(&cp, r, "ref_impl"), "-")) impl = rp_cell(&cp, r, "ref_impl"), ver = rp_cell(&cp, r, "ref_version");
            foreign = fmax(foreign, rp_num(&cp, r, "foreign_cpu_max"));
            rounds = (int)fmax(rounds, rp_num(&cp, r, "c_rounds"));
        }
        /* how the pairs took turns: compare_scaling.csv comes only from the
         * harness whose pairs take turns; the C rows' turn_calls and
         * turn_warmup give the turn (earlier runs lack the two columns) */
        char sp[700], how[160] = "", turns[900] = "";
        snprintf(sp, sizeof sp, "%s/bench/compare_scaling.csv", dir);
        csv_table cc;
        if (rp_exists(sp)) {
            if (rp_table(dir, "bench/compare_c.csv", &cc)) {
                double k0 = rp_num(&cc, 0, "turn_calls"), w0 = rp_num(&cc, 0, "turn_warmup");
                bool same = k0 >= 1 && w0 >= 0;
                for (int r = 1; r < cc.nrow && same; r++)
                    same = rp_num(&cc, r, "turn_calls") == k0 && rp_num(&cc, r, "turn_warmup") == w0;
                if (same) snprintf(how, sizeof how, ", %.0f untimed and %.0f timed step%s a turn", w0, k0, k0 == 1 ? "" : "s");
                else if (!isnan(k0)) snprintf(how, sizeof how, ", in turns of different lengths (`turn_calls`, `turn_warmup`)");
                csv_free(&cc);
            }
            /* RandLora over LoRA from pairs of their own: runs from the harness that writes compare_ratio.csv */
            snprintf(sp, sizeof sp, "%s/bench/compare_ratio.csv", dir);
            const bool ratio = rp_exists(sp);
            snprintf(turns, sizeof turns,
                     ". In a round the two sides of a pair took turns%s (`bench --lockstep`), so that both were timed "
                     "on the same stretch of the machine, and a one-thread pair ran both sides on one CPU, the rounds "
                     "taking the CPUs in turn; the stack's thread scaling comes from the stack at 1 thread taking "
                     "turns with itself at 2 (`bench/compare_scaling.csv`)%s",
                     how, ratio ? ", and RandLora's step over LoRA's from RandLora's layer taking turns with LoRA's "
                                  "(`bench/compare_ratio.csv`)" : "");
        }
        rp_put(b, "C against PyTorch %s (%s; `experiments/reference/peft_bench.py`), like for like: the same shapes, "
                  "tokens, threads, optimizer (AdamW) and upstream gradient, the same OpenBLAS library file and core; "
                  "PyTorch runs with glibc's malloc keeping freed memory, so that its steps do not pay page faults "
                  "to map their tensors again (its best case here; the C tool allocates nothing in a step). "
                  "Times are medians over %d interleaved rounds of per-run medians (`bench/compare_c.csv`, "
                  "`bench/compare_pytorch.csv`)%s; other processes took at most %.1f%% of the machine while any of them "
                  "was timed (`foreign_cpu`).\n\n",
               impl_label(impl), ver[0] ? ver : "not run", rounds, turns, 100 * foreign);
    }
    if (have_tg) {
        int met = 0, nm = 0, unm = 0, dec = 0, at = 0;
        rp_put(b, "| target | condition | figure | threshold | verdict | 95%% interval over rounds | measured |\n"
                  "|---|---|---|---|---|---|---|\n");
        for (int r = 0; r < tg.nrow; r++) {
            const char *v = rp_cell(&tg, r, "verdict"), *d = rp_cell(&tg, r, "decided");
            met += !strcmp(v, "met");
            nm += !strcmp(v, "not met");
            unm += !strcmp(v, "not measured");
            dec += !strcmp(d, "yes");
            at += !strcmp(d, "no");
            char iv[64] = "-";
            if (!strcmp(d, "yes") || !strcmp(d, "no"))
                snprintf(iv, sizeof iv, "%.3f-%.3f (%s rounds)%s", rp_num(&tg, r, "ci95_lo"), rp_num(&tg, r, "ci95_hi"),
                         rp_cell(&tg, r, "rounds"), !strcmp(d, "no") ? ": at threshold" : "");
            rp_put(b, "| %s | %s | %.3f | %s | **%s** | %s | %s |\n", rp_cell(&tg, r, "target"), rp_cell(&tg, r, "condition"),
                   rp_num(&tg, r, "figure"), rp_cell(&tg, r, "threshold"), v, iv, rp_cell(&tg, r, "detail"));
        }
        rp_put(b, "\n%d met, %d not met, %d not measured (`bench/targets.csv`).", met, nm, unm);
        if (dec + at > 0)
            rp_put(b, " A figure is the geometric mean of the per-round figures (within a round the two sides of a "
                      "comparison took turns, so a round's own ratio is the like-for-like one), and its 95%% interval a t "
                      "interval on their logarithms (rounds - 1 degrees of freedom). %d verdicts are decided by their rounds: "
                      "the interval lies wholly on the verdict's side "
                      "of the threshold. %d sit at their threshold: the interval holds it, so the rounds cannot tell "
                      "the figure from the threshold, and another `make bench` may turn the verdict.",
                   dec, at);
        rp_put(b, "\n\n");
        csv_free(&tg);
        bench_runs(b, dir);
    }
    if (have_cp) {
        rp_put(b, "Single layer 768x768, r = 32, and the 4-layer stack (`bench/compare.csv`; dx = 1: the layer computes "
                  "dx, as an inner layer does; plan: the route of each term, `rl_layer.h`; C ms and PyTorch ms: medians over "
                  "rounds; C faster by: the geometric mean of the rounds' own ratios, so not always their quotient):\n\n"
                  "| kind | method | tokens | dx | threads | C ms | plan | C / FLOP bound | first layer ms | inner layer "
                  "ms | PyTorch ms | reference | C faster by |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (int r = 0; r < cp.nrow; r++) {
            if (!strcmp(rp_cell(&cp, r, "kind"), "vit")) continue;
            bool st = !strcmp(rp_cell(&cp, r, "kind"), "stack");
            char fl[32] = "-", il[32] = "-";
            if (st) {
                snprintf(fl, sizeof fl, "%.2f", rp_num(&cp, r, "first_ms"));
                snprintf(il, sizeof il, "%.2f", rp_num(&cp, r, "inner_ms"));
            }
            rp_put(b, "| %s | %s | %s | %s | %s | %.2f | %s | %.2f | %s | %s | %.2f | %s | %.2fx |\n", rp_cell(&cp, r, "kind"),
                   rp_cell(&cp, r, "method"), rp_cell(&cp, r, "tokens"), rp_cell(&cp, r, "dx"), rp_cell(&cp, r, "threads"),
                   rp_num(&cp, r, "c_ms"), rp_cell(&cp, r, "chosen"), rp_num(&cp, r, "c_over_bound"), fl, il,
                   rp_num(&cp, r, "ref_ms"), impl_label(rp_cell(&cp, r, "ref_impl")), rp_num(&cp, r, "speedup"));
        }
        rp_put(b, "\nA whole ViT fine-tuning step (batch 128 images of 28x28, patch 7: 16 tokens, dim 64, 4 heads, MLP 256, "
                  "4 blocks, 5 classes; adapters on q, k, v, o, fc1, fc2, the head trained too; each method at PEFT's "
                  "default r). Each row ran in its own process, so peak RSS (VmHWM) is per method; PyTorch's includes "
                  "its own libraries:\n\n| method | threads | C ms | PyTorch + PEFT ms | C faster by | C peak RSS MB | "
                  "C tensors MB | PyTorch peak RSS MB |\n|---|---|---|---|---|---|---|---|\n");
        for (int r = 0; r < cp.nrow; r++) {
            if (strcmp(rp_cell(&cp, r, "kind"), "vit")) continue;
            rp_put(b, "| %s | %s | %.2f | %.2f | %.2fx | %.1f | %.1f | %.1f |\n", rp_cell(&cp, r, "method"),
                   rp_cell(&cp, r, "threads"), rp_num(&cp, r, "c_ms"), rp_num(&cp, r, "ref_ms"), rp_num(&cp, r, "speedup"),
                   rp_num(&cp, r, "c_peak_rss_bytes") / 1e6, rp_num(&cp, r, "c_peak_tensor_bytes") / 1e6,
                   rp_num(&cp, r, "ref_peak_rss_bytes") / 1e6);
        }
        rp_put(b, "\n");
    }
    /* issue 7's targets that stay: sparse kernels, merges, memory, the automatic plan */
    char m[400];
    rp_put(b, "| target | measured (`bench/bench.csv`, `bench/compare.csv`, `cost/`) | verdict |\n|---|---|---|\n");
    if (have_t) {
#define ROW(name) rp_find(&t, "target", name, NULL)
        int sd = ROW("sparse_dense"), sv = ROW("sparse_very_sparse"), md = ROW("merge_dense"), mv = ROW("merge_very_sparse");
#undef ROW
        if (sd >= 0 && sv >= 0) {
            double sp = rp_num(&t, sd, "median_ms") / rp_num(&t, sv, "median_ms");
            snprintf(m, sizeof m, "1024², r=32, 256 tokens: dense %.2f ms, very_sparse %.2f ms: %.2f x", rp_num(&t, sd, "median_ms"),
                     rp_num(&t, sv, "median_ms"), sp);
            rp_put(b, "| very_sparse step >= 2 x faster than dense | %s | **%s** |\n", m, sp >= 2 ? "met" : "not met");
        }
        if (md >= 0 && mv >= 0) {
            double sp = rp_num(&t, md, "median_ms") / rp_num(&t, mv, "median_ms");
            snprintf(m, sizeof m, "merge 4096x4096: dense %.1f ms, very_sparse %.1f ms: %.1f x", rp_num(&t, md, "median_ms"),
                     rp_num(&t, mv, "median_ms"), sp);
            rp_put(b, "| very_sparse merge >= 3 x faster than dense | %s | **%s** |\n", m, sp >= 3 ? "met" : "not met");
        }
    }
    if (have_cp) {
        int r1 = rp_find(&cp, "kind", "layer", "method", "randlora", "tokens", "4096", "dx", "0", "threads", "1", NULL);
        int l1 = rp_find(&cp, "kind", "layer", "method", "lora", "tokens", "4096", "dx", "0", "threads", "1", NULL);
        if (r1 >= 0 && l1 >= 0) {
            /* the largest adapted weight and the shared bases, in bytes (r = 32, 768x768: A r·768, B 768·24·32) */
            double w = 4.0 * 768 * 768, r = 32, mn = 768, nb = ceil(mn / r), bases = 4.0 * (r * mn + mn * nb * r);
            double pr = rp_num(&cp, r1, "c_peak_tensor_bytes"), pl = rp_num(&cp, l1, "c_peak_tensor_bytes");
            snprintf(m, sizeof m, "RandLora %.2f MB, LoRA %.2f MB, weight %.2f MB, shared bases %.2f MB: RandLora - LoRA = "
                                  "%.2f MB (%.2f MB without the bases, which every layer of a model shares)",
                     pr / 1e6, pl / 1e6, w / 1e6, bases / 1e6, (pr - pl) / 1e6, (pr - pl - bases) / 1e6);
            rp_put(b, "| peak tensor memory of a step <= LoRA's + one weight-sized buffer (768², 4096 tokens) | %s | **%s** |\n",
                   m, pr <= pl + w ? "met" : pr - bases <= pl + w ? "met without counting the shared bases" : "not met");
        }
    }
    /* the automatic plan against the faster explicit path, on every crossover
     * configuration of the cost sweep (auto's own timing: a mixed plan may
     * beat both uniform ones) */
    static const char *const xtabs[2] = {"cost/crossover.csv", "cost/crossover_dx.csv"};
    int n = 0, ok = 0, mixed = 0;
    double worst = 0;
    char where[96] = "";
    bool any = false;
    for (int xt = 0; xt < 2; xt++) {
        csv_table cx;
        if (!rp_table(dir, xtabs[xt], &cx)) continue;
        any = true;
        for (int i = 0; i < cx.nrow; i++) {
            if (strcmp(rp_cell(&cx, i, "method"), "randlora") || strcmp(rp_cell(&cx, i, "path"), "auto")) continue;
            int f = rp_find(&cx, "method", "randlora", "path", "factorised", "out", rp_cell(&cx, i, "out"), "tokens",
                         rp_cell(&cx, i, "tokens"), NULL);
            int mm = rp_find(&cx, "method", "randlora", "path", "materialised", "out", rp_cell(&cx, i, "out"), "tokens",
                          rp_cell(&cx, i, "tokens"), NULL);
            if (f < 0 || mm < 0) continue;
            double tf = rp_num(&cx, f, "median_ms"), tm = rp_num(&cx, mm, "median_ms");
            double q = rp_num(&cx, i, "median_ms") / fmin(tf, tm);
            n++;
            ok += q <= 1.1;
            mixed += strncmp(rp_cell(&cx, i, "chosen"), "mixed", 5) == 0;
            if (q > worst) {
                worst = q;
                snprintf(where, sizeof where, "%sx%s, %s tokens%s", rp_cell(&cx, i, "out"), rp_cell(&cx, i, "in"),
                         rp_cell(&cx, i, "tokens"), xt ? ", with dx" : "");
            }
        }
        csv_free(&cx);
    }
    if (any) {
        snprintf(m, sizeof m, "auto within 10%% of the faster uniform path in %d of %d configurations (%d on a mixed "
                              "plan); worst %.2f x (%s) (`cost/crossover.csv`, `cost/crossover_dx.csv`)", ok, n, mixed,
                 worst, where);
        rp_put(b, "| the automatic plan (route per term, FLOP model) is the faster path or within 10%% | %s | **%s** |\n", m,
            n && ok == n ? "met" : n ? "not met" : "not measured");
    }
    if (have_t) {
        int f1 = rp_find(&t, "target", "step_t1_randlora_factorised", NULL), f2 = rp_find(&t, "target", "step_t1_randlora_factorised_dx", NULL);
        if (f1 >= 0 && f2 >= 0)
            rp_put(b, "\nPEFT's route (every term factorised) on the C side, 768², 4096 tokens, 1 thread: %.2f ms without dx, "
                      "%.2f ms with dx (`bench/bench.csv`).\n", rp_num(&t, f1, "median_ms"), rp_num(&t, f2, "median_ms"));
        csv_free(&t);
    }
    rp_put(b, "\n");
    if (have_cp) csv_free(&cp);
}
