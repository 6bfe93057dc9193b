/* report_perf.c -- the cost and performance-target sections of REPORT.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void report_bench(sbuf *b, const char *dir)
{
    csv_table t, py;
    if (!rp_table(dir, "bench/bench.csv", &t)) {
        rp_put(b, "Not run (`make bench`).\n\n");
        return;
    }
    bool have_py = rp_table(dir, "bench/pytorch.csv", &py);
#define ROW(name) rp_find(&t, "target", name, NULL)
    int r1 = ROW("step_t1_randlora"), l1 = ROW("step_t1_lora"), r2 = ROW("step_t2_randlora"), l2 = ROW("step_t2_lora");
    int f1 = ROW("step_t1_randlora_factorised");
    int sd = ROW("sparse_dense"), sv = ROW("sparse_very_sparse"), md = ROW("merge_dense"), mv = ROW("merge_very_sparse");
#undef ROW
    char m[400];
    rp_put(b, "| target | measured (`bench/bench.csv`%s) | verdict |\n|---|---|---|\n", have_py ? ", `bench/pytorch.csv`" : "");
    if (r1 >= 0) {
        double ratio = rp_num(&t, r1, "median_ms") / rp_num(&t, r1, "bound_ms");
        snprintf(m, sizeof m, "%.2f ms vs bound %.2f ms (%.3f GFLOP at %.1f GFLOP/s): %.2f x", rp_num(&t, r1, "median_ms"),
                 rp_num(&t, r1, "bound_ms"), rp_num(&t, r1, "gflop"), rp_num(&t, r1, "sgemm_gflops"), ratio);
        rp_put(b, "| RandLora step <= 1.2 x FLOP-model bound (768², 4096 tokens, r=32, 1 thread) | %s | **%s** |\n", m,
            ratio <= 1.2 ? "met" : "not met");
    }
    double q1 = NAN, q2 = NAN;
    if (r1 >= 0 && l1 >= 0) {
        q1 = rp_num(&t, r1, "median_ms") / rp_num(&t, l1, "median_ms");
        double fb = rp_num(&t, r1, "gflop") / rp_num(&t, l1, "gflop");
        snprintf(m, sizeof m, "%.2f / %.2f ms = %.2f (FLOP-model ratio %.2f: the floor at equal efficiency)",
                 rp_num(&t, r1, "median_ms"), rp_num(&t, l1, "median_ms"), q1, fb);
        rp_put(b, "| RandLora / LoRA step time <= 1.6 (1 thread) | %s | **%s** |\n", m, q1 <= 1.6 ? "met" : "not met");
    }
    if (r2 >= 0 && l2 >= 0 && !isnan(q1)) {
        q2 = rp_num(&t, r2, "median_ms") / rp_num(&t, l2, "median_ms");
        double bnd = rp_num(&t, r2, "median_ms") / rp_num(&t, r2, "bound_ms");
        snprintf(m, sizeof m, "2 threads: RandLora / LoRA %.2f / %.2f ms = %.2f (1 thread: %.2f); RandLora %.2f x its bound",
                 rp_num(&t, r2, "median_ms"), rp_num(&t, l2, "median_ms"), q2, q1, bnd);
        rp_put(b, "| with 2 threads the same targets hold within 10%% (ratio <= 1.76, step <= 1.32 x bound) | %s | **%s** |\n",
            m, q2 <= 1.6 * 1.1 && bnd <= 1.2 * 1.1 ? "met" : "not met");
    }
    if (have_py && r1 >= 0) {
        for (int th = 1; th <= 2; th++) {
            char ths[16];
            snprintf(ths, sizeof ths, "%d", th);
            int p = rp_find(&py, "method", "randlora", "threads", ths, NULL);
            int c = th == 1 ? r1 : r2;
            if (p < 0 || c < 0) continue;
            double sp = rp_num(&py, p, "median_ms") / rp_num(&t, c, "median_ms");
            snprintf(m, sizeof m, "PyTorch %s %.2f ms vs C %.2f ms: %.2f x faster", rp_cell(&py, p, "torch_version"),
                     rp_num(&py, p, "median_ms"), rp_num(&t, c, "median_ms"), sp);
            rp_put(b, "| >= 1.7 x faster than PyTorch running PEFT's formulation (%d thread%s) | %s | **%s** |\n", th,
                th > 1 ? "s" : "", m, sp >= 1.7 ? "met" : "not met");
        }
    } else {
        rp_put(b, "| >= 1.7 x faster than PyTorch running PEFT's formulation | python3-torch not installed: not measured | "
               "**not measured** |\n");
    }
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
    if (r1 >= 0 && l1 >= 0) {
        /* the largest adapted weight and the shared bases, in bytes (r = 32, 768x768: A r·768, B 768·24·32) */
        double w = 4.0 * rp_num(&t, r1, "out") * rp_num(&t, r1, "in");
        double mn = fmin(rp_num(&t, r1, "out"), rp_num(&t, r1, "in")), mx = fmax(rp_num(&t, r1, "out"), rp_num(&t, r1, "in"));
        double r = rp_num(&t, r1, "r"), nb = ceil(mn / r), bases = 4.0 * (r * mn + mx * nb * r);
        double pr = rp_num(&t, r1, "peak_tensor_bytes"), pl = rp_num(&t, l1, "peak_tensor_bytes");
        snprintf(m, sizeof m, "RandLora %.2f MB, LoRA %.2f MB, weight %.2f MB, shared bases %.2f MB: RandLora - LoRA = "
                              "%.2f MB (%.2f MB without the bases, which every layer of a model shares)",
                 pr / 1e6, pl / 1e6, w / 1e6, bases / 1e6, (pr - pl) / 1e6, (pr - pl - bases) / 1e6);
        rp_put(b, "| peak tensor memory of a step <= LoRA's + one weight-sized buffer | %s | **%s** |\n", m,
            pr <= pl + w ? "met" : pr - bases <= pl + w ? "met without counting the shared bases" : "not met");
    }
    /* the automatic path choice against the faster explicit path, on every
     * crossover configuration of the cost sweep */
    csv_table cx;
    if (rp_table(dir, "cost/crossover.csv", &cx)) {
        int n = 0, ok = 0;
        double worst = 0;
        char where[96] = "";
        for (int i = 0; i < cx.nrow; i++) {
            if (strcmp(rp_cell(&cx, i, "method"), "randlora") || strcmp(rp_cell(&cx, i, "path"), "auto")) continue;
            int f = rp_find(&cx, "method", "randlora", "path", "factorised", "out", rp_cell(&cx, i, "out"), "tokens",
                         rp_cell(&cx, i, "tokens"), NULL);
            int mm = rp_find(&cx, "method", "randlora", "path", "materialised", "out", rp_cell(&cx, i, "out"), "tokens",
                          rp_cell(&cx, i, "tokens"), NULL);
            if (f < 0 || mm < 0) continue;
            double tf = rp_num(&cx, f, "median_ms"), tm = rp_num(&cx, mm, "median_ms");
            double chosen = !strcmp(rp_cell(&cx, i, "chosen"), "factorised") ? tf : tm, q = chosen / fmin(tf, tm);
            n++;
            ok += q <= 1.1;
            if (q > worst) {
                worst = q;
                snprintf(where, sizeof where, "%sx%s, %s tokens", rp_cell(&cx, i, "out"), rp_cell(&cx, i, "in"), rp_cell(&cx, i, "tokens"));
            }
        }
        snprintf(m, sizeof m, "the chosen path within 10%% of the faster in %d of %d configurations; worst %.2f x (%s) "
                              "(`cost/crossover.csv`, explicit-path timings)", ok, n, worst, where);
        rp_put(b, "| the automatic path choice picks the faster path (or within 10%%) | %s | **%s** |\n", m,
            n && ok == n ? "met" : n ? "not met" : "not measured");
        csv_free(&cx);
    }
    if (f1 >= 0 && r1 >= 0)
        rp_put(b, "\nPEFT's way (factorised path) on the same layer: %.2f ms; the automatic choice took the %s path: %.2f ms.\n",
            rp_num(&t, f1, "median_ms"), rp_cell(&t, r1, "chosen"), rp_num(&t, r1, "median_ms"));
    rp_put(b, "\n");
    csv_free(&t);
    if (have_py) csv_free(&py);
}

