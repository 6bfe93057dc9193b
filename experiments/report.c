/* report.c -- `randlora report`: results/REPORT.md and the plots, from
 * whatever CSVs are in results/ (a partial or sharded run can be reported).
 *
 * Every figure in the report is read from a CSV named beside it; every
 * verdict is computed here by the rule written in its row. The reference
 * figures and their sources come from ../shared/reference/paper-results.md
 * (the paper's project-page tables, PEFT's benchmark JSONs and docs) and are
 * fixed text in REFS below: they are the reference column, never measured.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "io/rl_results.h"
#include "sweep.h"

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 1024;
        char *q = realloc(b->buf, nc);
        RL_ASSERT(q, "report: out of memory");
        b->buf = q;
        b->cap = nc;
    }
}

static bool exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Open results/<rel> as a table; false (and t zeroed) if absent or unreadable. */
static bool table(const char *dir, const char *rel, csv_table *t)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    memset(t, 0, sizeof *t);
    return exists(p) && csv_read(p, t) == RL_OK;
}

static const char *cell(const csv_table *t, int r, const char *col)
{
    int c = csv_col(t, col);
    return c >= 0 && r >= 0 && r < t->nrow ? t->rows[r][c] : "";
}

static double num(const csv_table *t, int r, const char *col) { return atof(cell(t, r, col)); }

/* First row whose columns equal the given values (NULL-terminated pairs). */
static int find(const csv_table *t, ...)
{
    for (int r = 0; r < t->nrow; r++) {
        va_list ap;
        va_start(ap, t);
        bool ok = true;
        const char *col;
        while (ok && (col = va_arg(ap, const char *))) {
            const char *v = va_arg(ap, const char *);
            ok = strcmp(cell(t, r, col), v) == 0;
        }
        va_end(ap);
        if (ok) return r;
    }
    return -1;
}

static void claim_row(sbuf *b, const char *claim, const char *ref, const char *measured, const char *verdict,
                      const char *rule)
{
    put(b, "| %s | %s | %s | **%s** | %s |\n", claim, ref, measured, verdict, rule);
}

/* ---- machine ---- */

static void machine(sbuf *b, const char *dir)
{
    static const char *const exps[] = {"cost", "finetune", "rank", "expressivity"};
    char p[700];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s/manifest.json", dir, exps[i]);
        FILE *fp = fopen(p, "r");
        if (!fp) continue;
        put(b, "From `results/%s/manifest.json` (each experiment records its own):\n\n```\n", exps[i]);
        char line[512];
        while (fgets(line, sizeof line, fp))
            if (strstr(line, "\"cpu\"") || strstr(line, "openblas") || strstr(line, "threads") ||
                strstr(line, "compiler") || strstr(line, "online_cpus") || strstr(line, "written_utc"))
                put(b, "%s", line);
        fclose(fp);
        put(b, "```\n\n");
        return;
    }
    put(b, "No manifest found in results/: run an experiment first.\n\n");
}

/* ---- claims ---- */

static void claims(sbuf *b, const char *dir)
{
    csv_table t;
    char m[600];
    put(b, "| claim | reference (source) | measured (source) | verdict | rule |\n|---|---|---|---|---|\n");

    /* (1) full rank */
    if (table(dir, "rank/rank.csv", &t)) {
        int n = 0, f32 = 0, f64 = 0, n64 = 0;
        for (int r = 0; r < t.nrow; r++)
            if (!strcmp(cell(&t, r, "method"), "randlora") && !strcmp(cell(&t, r, "bases"), "dense") &&
                (!strcmp(cell(&t, r, "state"), "perturbed") || !strcmp(cell(&t, r, "state"), "trained"))) {
                n++;
                f32 += atoi(cell(&t, r, "full_rank")) == 1;
                if (num(&t, r, "rank_f64") >= 0) {
                    n64++;
                    f64 += num(&t, r, "rank_f64") >= num(&t, r, "min_dim");
                }
            }
        snprintf(m, sizeof m, "dense RandLora with moved gammas: full rank at the float32 tolerance in %d / %d; "
                              "in float64 in %d / %d (`rank/rank.csv`)", f32, n, f64, n64);
        claim_row(b, "ΔW is full rank once num_bases·r ≥ min_dim",
                  "paper §3 / PEFT docs: n = ⌈min(d,k)/r⌉ bases reach rank min(d,k) (paper-results.md §1)", m,
                  n == 0 ? "not measured" : f32 == n ? "holds" : (n64 && f64 == n64) ? "holds in float64 only" : "does not hold",
                  "all points full rank at σ_max·max(m,n)·FLT_EPSILON; else whether the float64 rank is min_dim");
        csv_free(&t);
    } else {
        claim_row(b, "ΔW is full rank once num_bases·r ≥ min_dim", "paper §3", "—", "not measured", "needs rank/rank.csv");
    }
    /* (2) params grow as r shrinks */
    if (table(dir, "rank/params.csv", &t)) {
        bool mono = true;
        double p1 = 0, p64 = 0;
        for (int r = 0; r < t.nrow; r++)
            for (int s = 0; s < t.nrow; s++)
                if (!strcmp(cell(&t, r, "method"), "randlora") && !strcmp(cell(&t, s, "method"), "randlora") &&
                    !strcmp(cell(&t, r, "out"), cell(&t, s, "out")) && !strcmp(cell(&t, r, "in"), cell(&t, s, "in")) &&
                    num(&t, r, "r") < num(&t, s, "r") && num(&t, r, "params") < num(&t, s, "params"))
                    mono = false;
        int a = find(&t, "method", "randlora", "out", "768", "in", "768", "r", "1", NULL);
        int z = find(&t, "method", "randlora", "out", "768", "in", "768", "r", "64", NULL);
        if (a >= 0) p1 = num(&t, a, "params");
        if (z >= 0) p64 = num(&t, z, "params");
        snprintf(m, sizeof m, "768x768: %.0f params at r=1, %.0f at r=64 (`rank/params.csv`)", p1, p64);
        claim_row(b, "RandLora's trainable parameters grow as r shrinks",
                  "PEFT: nb·(r + min_dim), nb = ⌈min_dim/r⌉ (paper-results.md §3, \"Small rank\")", m,
                  mono ? "holds" : "does not hold", "params non-increasing in r for every shape");
        csv_free(&t);
    }
    /* (3) PEFT anchors */
    if (table(dir, "params/anchors.csv", &t)) {
        static const struct { const char *method, *r; long ref; } anc[4] = {
            {"randlora", "32", 9289728}, {"lora", "32", 9175040}, {"lora", "64", 18350080}, {"vera", "256", 129024}};
        int ok = 0, seen = 0;
        char meas[400] = "";
        for (int i = 0; i < 4; i++) {
            int r = find(&t, "method", anc[i].method, "r", anc[i].r, NULL);
            if (r < 0) continue;
            seen++;
            ok += atol(cell(&t, r, "params")) == anc[i].ref;
            char one[96];
            snprintf(one, sizeof one, "%s%s r=%s %s", seen > 1 ? "; " : "", anc[i].method, anc[i].r, cell(&t, r, "params"));
            strncat(meas, one, sizeof meas - strlen(meas) - 1);
        }
        snprintf(m, sizeof m, "%s (`params/anchors.csv`)", meas);
        claim_row(b, "Llama-3.2-3B q,v trainable parameters",
                  "PEFT MetaMathQA JSONs: RandLora r=32 9,289,728; LoRA r=32 9,175,040; r=64 18,350,080; VeRA r=256 "
                  "129,024 (paper-results.md §2.5)",
                  m, seen == 4 && ok == 4 ? "holds" : seen ? "does not hold" : "not measured", "all four equal exactly");
        csv_free(&t);
    }
    /* (4) time vs r */
    if (table(dir, "cost/time_vs_r.csv", &t)) {
        double rl[3] = {0}, lo[3] = {0};
        static const char *const rs[3] = {"1", "2", "32"};
        for (int i = 0; i < 3; i++) {
            int a = find(&t, "method", "randlora", "bases", "dense", "path", "auto", "r", rs[i], "tokens", "1024", "threads", "1", NULL);
            int l = find(&t, "method", "lora", "r", rs[i], "tokens", "1024", "threads", "1", NULL);
            if (a >= 0) rl[i] = num(&t, a, "median_ms");
            if (l >= 0) lo[i] = num(&t, l, "median_ms");
        }
        if (rl[0] > 0 && lo[0] > 0 && rl[2] > 0) {
            snprintf(m, sizeof m, "768x768, 1024 tokens, 1 thread: RandLora/LoRA %.2f at r=1, %.2f at r=2, %.2f at r=32; "
                                  "RandLora r=1 / r=32 = %.2f (`cost/time_vs_r.csv`)",
                     rl[0] / lo[0], rl[1] / lo[1], rl[2] / lo[2], rl[0] / rl[2]);
            claim_row(b, "RandLora slows down sharply for r < 4",
                      "PEFT docs (PR #2524): \"ranks below 4 … large training time increase\" (paper-results.md §3)", m,
                      rl[0] / rl[2] > 1.5 ? "holds" : "does not hold",
                      "RandLora's r=1 step > 1.5 x its r=32 step (its own slowdown, not LoRA's speed)");
            snprintf(m, sizeof m, "RandLora/LoRA step time at r=32: %.2f (`cost/time_vs_r.csv`)", rl[2] / lo[2]);
            claim_row(b, "RandLora trains slower than LoRA at the same r",
                      "PEFT MetaMathQA r=32: 1422.6 s vs 942.0 s = x1.51 (paper-results.md §2.5)", m,
                      rl[2] / lo[2] > 1.0 ? "holds" : "does not hold", "ratio > 1");
        }
        csv_free(&t);
    }
    /* (5) memory */
    if (table(dir, "cost/time_vs_size.csv", &t)) {
        int a = find(&t, "method", "randlora", "bases", "dense", "out", "768", "in", "768", NULL);
        int l = find(&t, "method", "lora", "out", "768", "in", "768", NULL);
        if (a >= 0 && l >= 0) {
            double ra = num(&t, a, "peak_tensor_bytes") / num(&t, l, "peak_tensor_bytes");
            double rr = num(&t, a, "peak_rss_bytes") / num(&t, l, "peak_rss_bytes");
            snprintf(m, sizeof m, "768x768, r=32, 1024 tokens: peak tensor bytes x%.2f, peak RSS x%.2f of LoRA's "
                                  "(`cost/time_vs_size.csv`)", ra, rr);
            claim_row(b, "RandLora's memory is close to LoRA's",
                      "PEFT MetaMathQA: 22.79 vs 22.29 GB = x1.02; paper Fig. 3: RandLora below LoRA (paper-results.md §3)", m,
                      ra <= 1.25 ? "holds" : "does not hold", "peak tensor bytes within 1.25 x LoRA's");
        }
        csv_free(&t);
    }
    /* sparse bases do not hurt accuracy: sparse / very_sparse vs dense at r = 16, per task */
    if (table(dir, "finetune/summary.csv", &t)) {
        static const char *const tasks[3] = {"classes", "permuted", "teacher"};
        for (int k = 0; k < 2; k++) {
            const char *kind = k ? "very_sparse" : "sparse";
            int ok = 0, n = 0;
            char meas[400] = "";
            for (int i = 0; i < 3; i++) {
                int d = find(&t, "task", tasks[i], "method", "randlora", "bases", "dense", "r", "16", NULL);
                int sp = find(&t, "task", tasks[i], "method", "randlora", "bases", kind, "r", "16", NULL);
                if (d < 0 || sp < 0) continue;
                n++;
                double ad = num(&t, d, "test_acc_mean"), as = num(&t, sp, "test_acc_mean");
                ok += as + num(&t, sp, "test_acc_ci95") + num(&t, d, "test_acc_ci95") >= ad;
                char one[120];
                snprintf(one, sizeof one, "%s%s %.4f vs dense %.4f", n > 1 ? "; " : "", tasks[i], as, ad);
                strncat(meas, one, sizeof meas - strlen(meas) - 1);
            }
            snprintf(m, sizeof m, "%s r=16 test accuracy: %s (`finetune/summary.csv`)", kind, meas);
            claim_row(b, k ? "very_sparse bases cost accuracy" : "sparse bases do not reduce accuracy",
                      k ? "PEFT docs: very sparse bases \"will most likely decrease performance\" (paper-results.md §3)"
                        : "PEFT docs: sparse bases \"typically do[] not reduce performance\" (paper-results.md §3)",
                      m,
                      n == 0 ? "not measured"
                             : k ? (ok < n ? "holds" : "does not hold") : (ok == n ? "holds" : "does not hold"),
                      k ? "some task where very_sparse mean + both CIs < dense mean"
                        : "every task: sparse mean + both CIs >= dense mean");
        }
        csv_free(&t);
    }
    /* (6)-(8) fine-tuning verdicts, (9) similarity: the experiments' own claims.csv */
    static const char *const files[2] = {"finetune/claims.csv", "similarity/claims.csv"};
    for (int f = 0; f < 2; f++)
        if (table(dir, files[f], &t)) {
            for (int r = 0; r < t.nrow; r++) {
                char c[300], me[400];
                snprintf(c, sizeof c, "%s (task %s)", cell(&t, r, "claim"), cell(&t, r, "task"));
                snprintf(me, sizeof me, "%s (`%s`)", cell(&t, r, "measured"), files[f]);
                claim_row(b, c, cell(&t, r, "reference"), me, cell(&t, r, "verdict"), cell(&t, r, "rule"));
            }
            csv_free(&t);
        }
    /* (10) expressivity: flat spectrum, RandLora vs LoRA at matched budgets */
    if (table(dir, "expressivity/summary.csv", &t)) {
        for (int sp = 0; sp < 2; sp++) {
            const char *spec = sp ? "power" : "flat";
            int wins = 0, tot = 0;
            for (int r = 0; r < t.nrow; r++) {
                if (strcmp(cell(&t, r, "spectrum"), spec) || strcmp(cell(&t, r, "method"), "randlora") ||
                    strcmp(cell(&t, r, "bases"), "dense"))
                    continue;
                double pr = num(&t, r, "params"), best = 1e30;
                int bl = -1;
                for (int s = 0; s < t.nrow; s++)
                    if (!strcmp(cell(&t, s, "spectrum"), spec) && !strcmp(cell(&t, s, "method"), "lora")) {
                        double d = fabs(log(num(&t, s, "params") / pr));
                        if (d < best) best = d, bl = s;
                    }
                if (bl < 0 || best > log(2.0)) continue;
                tot++;
                wins += num(&t, r, "rel_error_mean") < num(&t, bl, "rel_error_mean");
            }
            snprintf(m, sizeof m, "%s spectrum: RandLora's error lower than LoRA's in %d of %d matched budgets "
                                  "(`expressivity/summary.csv`)", spec, wins, tot);
            claim_row(b, sp ? "…but not when the required update's spectrum decays" : "Rank, not parameter count, limits LoRA",
                      sp ? "paper Fig. 1: LoRA wins at the smallest budgets (paper-results.md §3, \"Small rank\")"
                         : "paper title and Fig. 1 (paper-results.md §2.2)",
                      m, tot == 0 ? "not measured" : sp ? (wins * 2 < tot ? "holds" : "does not hold")
                                                         : (wins * 2 > tot ? "holds" : "does not hold"),
                      sp ? "LoRA better in most matched budgets (nearest within 2x)"
                         : "RandLora better in most matched budgets (nearest within 2x)");
        }
        csv_free(&t);
    }
    put(b, "\n");
}

/* ---- sections with tables ---- */

static void parity(sbuf *b, const char *dir)
{
    csv_table t;
    if (!table(dir, "parity/parity.csv", &t)) {
        put(b, "Not run (results/parity/parity.csv is missing).\n\n");
        return;
    }
    int pass = 0;
    put(b, "| file | method | layers | verdict | max rel. error vs PEFT | worst gradient vs PEFT | bases vs stored | "
           "ours vs float64: output / dx / param. grads | PEFT float32 vs float64: output / param. grads | failed on |\n"
           "|---|---|---|---|---|---|---|---|---|---|\n");
    double worst_grad = 0, worst_truth = -1;
    for (int r = 0; r < t.nrow; r++) {
        pass += !strcmp(cell(&t, r, "pass"), "PASS");
        const char *f = cell(&t, r, "file"), *base = strrchr(f, '/');
        char bases[64];
        if (!strcmp(cell(&t, r, "method"), "lora")) snprintf(bases, sizeof bases, "none");
        else if (atol(cell(&t, r, "bases_mismatch")) == 0) snprintf(bases, sizeof bases, "bit-exact");
        else snprintf(bases, sizeof bases, "%s differ (max %s ulp)", cell(&t, r, "bases_mismatch"), cell(&t, r, "bases_max_ulp"));
        /* -1 in the CSV: the file has no truth.grad.<param> (LoRA files, older PEFT-made extras) */
        char tg[32] = "—", ptg[32] = "—";
        if (num(&t, r, "truth_grad_rel") >= 0) snprintf(tg, sizeof tg, "%s", cell(&t, r, "truth_grad_rel"));
        if (num(&t, r, "peft_truth_grad_rel") >= 0) snprintf(ptg, sizeof ptg, "%s", cell(&t, r, "peft_truth_grad_rel"));
        if (num(&t, r, "grad_rel") > worst_grad) worst_grad = num(&t, r, "grad_rel");
        if (num(&t, r, "truth_grad_rel") > worst_truth) worst_truth = num(&t, r, "truth_grad_rel");
        bool ok = !strcmp(cell(&t, r, "pass"), "PASS");
        put(b, "| %s | %s | %s | %s | %s | %s | %s | %s / %s / %s | %s / %s | %s |\n", base ? base + 1 : f,
            cell(&t, r, "method"), cell(&t, r, "layers"), cell(&t, r, "pass"), cell(&t, r, "max_rel"),
            cell(&t, r, "grad_rel"), bases, cell(&t, r, "truth_out_rel"), cell(&t, r, "truth_dx_rel"), tg,
            cell(&t, r, "peft_truth_out_rel"), ptg, ok ? "" : cell(&t, r, "max_rel_tensor"));
    }
    put(b, "\nWorst gradient error against PEFT (dx and every parameter gradient): %.2e", worst_grad);
    if (worst_truth >= 0) put(b, "; parameter gradients against the float64 truth: %.2e", worst_truth);
    put(b, ".");
    put(b, " %d of %d files pass at max|err|/max|ref| <= 1e-5 (`parity/parity.csv`).\n\n", pass, t.nrow);
    csv_free(&t);
}

static void cost(sbuf *b, const char *dir)
{
    csv_table t;
    if (!table(dir, "cost/threads.csv", &t)) {
        put(b, "Not run.\n\n");
        return;
    }
    int l = find(&t, "method", "lora", "threads", "1", NULL);
    double lora = l >= 0 ? num(&t, l, "median_ms") : NAN;
    put(b, "One training step (forward, backward, AdamW) of a 768x768 layer, 4096 tokens, r = 32, 1 thread "
           "(`cost/threads.csv`):\n\n| method | bases | path taken | median ms | IQR ms | GFLOP (model) | GFLOP/s | "
           "fraction of SGEMM | step / LoRA's |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int r = 0; r < t.nrow; r++) {
        if (strcmp(cell(&t, r, "threads"), "1")) continue;
        put(b, "| %s | %s | %s | %.2f | %.2f-%.2f | %.3f | %.1f | %.0f%% | %.2f |\n", cell(&t, r, "method"),
            cell(&t, r, "bases"), cell(&t, r, "chosen"), num(&t, r, "median_ms"), num(&t, r, "p25_ms"), num(&t, r, "p75_ms"),
            num(&t, r, "gflop"), num(&t, r, "gflops"), 100 * num(&t, r, "sgemm_fraction"), num(&t, r, "median_ms") / lora);
    }
    int s = find(&t, "threads", "1", NULL);
    if (s >= 0) put(b, "\nSGEMM anchor measured in the same run: %.1f GFLOP/s (1 thread, OpenBLAS core %s).\n\n",
                    num(&t, s, "sgemm_gflops"), cell(&t, s, "core"));
    csv_free(&t);
    if (table(dir, "cost/slopes.csv", &t)) {
        put(b, "Scaling of step time with layer size (log-log least squares, `cost/slopes.csv`): ");
        for (int r = 0; r < t.nrow; r++)
            put(b, "%s%s %s slope %.2f", r ? "; " : "", cell(&t, r, "method"), cell(&t, r, "bases"), num(&t, r, "slope"));
        put(b, ".\n\n");
        csv_free(&t);
    }
}

static void finetune(sbuf *b, const char *dir)
{
    csv_table t;
    if (!table(dir, "finetune/summary.csv", &t)) {
        put(b, "Not run.\n\n");
        return;
    }
    put(b, "Test accuracy on task B, mean ± 95%% t-interval over seeds (`finetune/summary.csv`):\n\n| task | method | bases | r "
           "| trainable params | seeds | test acc. | train acc. | train-test gap |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int r = 0; r < t.nrow; r++)
        put(b, "| %s | %s | %s | %s | %s | %s | %.4f ± %.4f | %.4f | %.4f |\n", cell(&t, r, "task"), cell(&t, r, "method"),
            cell(&t, r, "bases"), cell(&t, r, "r"), cell(&t, r, "params"), cell(&t, r, "seeds"), num(&t, r, "test_acc_mean"),
            num(&t, r, "test_acc_ci95"), num(&t, r, "train_acc_mean"), num(&t, r, "gap_mean"));
    put(b, "\n");
    csv_free(&t);
}

static void rank_section(sbuf *b, const char *dir)
{
    char p[700];
    snprintf(p, sizeof p, "%s/rank/claims.txt", dir);
    FILE *fp = fopen(p, "r");
    if (!fp) {
        put(b, "Not run.\n\n");
        return;
    }
    put(b, "The rank sweep's own verdicts (`rank/claims.txt`, computed from `rank/rank.csv` and `rank/sparse.csv`):\n\n```\n");
    char line[600];
    int n = 0;
    while (fgets(line, sizeof line, fp))
        if (strncmp(line, "  (a) fails", 11) != 0 || n++ < 4) put(b, "%s", line);
    if (n > 4) put(b, "  ... (%d more failing points in rank/rank.csv)\n", n - 4);
    fclose(fp);
    put(b, "```\n\n");
}

/* make bench: issue 7's targets, each measured figure from results/bench/. */
static void bench_section(sbuf *b, const char *dir)
{
    csv_table t, py;
    if (!table(dir, "bench/bench.csv", &t)) {
        put(b, "Not run (`make bench`).\n\n");
        return;
    }
    bool have_py = table(dir, "bench/pytorch.csv", &py);
#define ROW(name) find(&t, "target", name, NULL)
    int r1 = ROW("step_t1_randlora"), l1 = ROW("step_t1_lora"), r2 = ROW("step_t2_randlora"), l2 = ROW("step_t2_lora");
    int f1 = ROW("step_t1_randlora_factorised");
    int sd = ROW("sparse_dense"), sv = ROW("sparse_very_sparse"), md = ROW("merge_dense"), mv = ROW("merge_very_sparse");
#undef ROW
    char m[400];
    put(b, "| target | measured (`bench/bench.csv`%s) | verdict |\n|---|---|---|\n", have_py ? ", `bench/pytorch.csv`" : "");
    if (r1 >= 0) {
        double ratio = num(&t, r1, "median_ms") / num(&t, r1, "bound_ms");
        snprintf(m, sizeof m, "%.2f ms vs bound %.2f ms (%.3f GFLOP at %.1f GFLOP/s): %.2f x", num(&t, r1, "median_ms"),
                 num(&t, r1, "bound_ms"), num(&t, r1, "gflop"), num(&t, r1, "sgemm_gflops"), ratio);
        put(b, "| RandLora step <= 1.2 x FLOP-model bound (768², 4096 tokens, r=32, 1 thread) | %s | **%s** |\n", m,
            ratio <= 1.2 ? "met" : "not met");
    }
    double q1 = NAN, q2 = NAN;
    if (r1 >= 0 && l1 >= 0) {
        q1 = num(&t, r1, "median_ms") / num(&t, l1, "median_ms");
        double fb = num(&t, r1, "gflop") / num(&t, l1, "gflop");
        snprintf(m, sizeof m, "%.2f / %.2f ms = %.2f (FLOP-model ratio %.2f: the floor at equal efficiency)",
                 num(&t, r1, "median_ms"), num(&t, l1, "median_ms"), q1, fb);
        put(b, "| RandLora / LoRA step time <= 1.6 (1 thread) | %s | **%s** |\n", m, q1 <= 1.6 ? "met" : "not met");
    }
    if (r2 >= 0 && l2 >= 0 && !isnan(q1)) {
        q2 = num(&t, r2, "median_ms") / num(&t, l2, "median_ms");
        double bnd = num(&t, r2, "median_ms") / num(&t, r2, "bound_ms");
        snprintf(m, sizeof m, "2 threads: RandLora / LoRA %.2f / %.2f ms = %.2f (1 thread: %.2f); RandLora %.2f x its bound",
                 num(&t, r2, "median_ms"), num(&t, l2, "median_ms"), q2, q1, bnd);
        put(b, "| with 2 threads the same targets hold within 10%% (ratio <= 1.76, step <= 1.32 x bound) | %s | **%s** |\n",
            m, q2 <= 1.6 * 1.1 && bnd <= 1.2 * 1.1 ? "met" : "not met");
    }
    if (have_py && r1 >= 0) {
        for (int th = 1; th <= 2; th++) {
            char ths[16];
            snprintf(ths, sizeof ths, "%d", th);
            int p = find(&py, "method", "randlora", "threads", ths, NULL);
            int c = th == 1 ? r1 : r2;
            if (p < 0 || c < 0) continue;
            double sp = num(&py, p, "median_ms") / num(&t, c, "median_ms");
            snprintf(m, sizeof m, "PyTorch %s %.2f ms vs C %.2f ms: %.2f x faster", cell(&py, p, "torch_version"),
                     num(&py, p, "median_ms"), num(&t, c, "median_ms"), sp);
            put(b, "| >= 1.7 x faster than PyTorch running PEFT's formulation (%d thread%s) | %s | **%s** |\n", th,
                th > 1 ? "s" : "", m, sp >= 1.7 ? "met" : "not met");
        }
    } else {
        put(b, "| >= 1.7 x faster than PyTorch running PEFT's formulation | python3-torch not installed: not measured | "
               "**not measured** |\n");
    }
    if (sd >= 0 && sv >= 0) {
        double sp = num(&t, sd, "median_ms") / num(&t, sv, "median_ms");
        snprintf(m, sizeof m, "1024², r=32, 256 tokens: dense %.2f ms, very_sparse %.2f ms: %.2f x", num(&t, sd, "median_ms"),
                 num(&t, sv, "median_ms"), sp);
        put(b, "| very_sparse step >= 2 x faster than dense | %s | **%s** |\n", m, sp >= 2 ? "met" : "not met");
    }
    if (md >= 0 && mv >= 0) {
        double sp = num(&t, md, "median_ms") / num(&t, mv, "median_ms");
        snprintf(m, sizeof m, "merge 4096x4096: dense %.1f ms, very_sparse %.1f ms: %.1f x", num(&t, md, "median_ms"),
                 num(&t, mv, "median_ms"), sp);
        put(b, "| very_sparse merge >= 3 x faster than dense | %s | **%s** |\n", m, sp >= 3 ? "met" : "not met");
    }
    if (r1 >= 0 && l1 >= 0) {
        /* the largest adapted weight and the shared bases, in bytes (r = 32, 768x768: A r·768, B 768·24·32) */
        double w = 4.0 * num(&t, r1, "out") * num(&t, r1, "in");
        double mn = fmin(num(&t, r1, "out"), num(&t, r1, "in")), mx = fmax(num(&t, r1, "out"), num(&t, r1, "in"));
        double r = num(&t, r1, "r"), nb = ceil(mn / r), bases = 4.0 * (r * mn + mx * nb * r);
        double pr = num(&t, r1, "peak_tensor_bytes"), pl = num(&t, l1, "peak_tensor_bytes");
        snprintf(m, sizeof m, "RandLora %.2f MB, LoRA %.2f MB, weight %.2f MB, shared bases %.2f MB: RandLora - LoRA = "
                              "%.2f MB (%.2f MB without the bases, which every layer of a model shares)",
                 pr / 1e6, pl / 1e6, w / 1e6, bases / 1e6, (pr - pl) / 1e6, (pr - pl - bases) / 1e6);
        put(b, "| peak tensor memory of a step <= LoRA's + one weight-sized buffer | %s | **%s** |\n", m,
            pr <= pl + w ? "met" : pr - bases <= pl + w ? "met without counting the shared bases" : "not met");
    }
    /* the automatic path choice against the faster explicit path, on every
     * crossover configuration of the cost sweep */
    csv_table cx;
    if (table(dir, "cost/crossover.csv", &cx)) {
        int n = 0, ok = 0;
        double worst = 0;
        char where[96] = "";
        for (int i = 0; i < cx.nrow; i++) {
            if (strcmp(cell(&cx, i, "method"), "randlora") || strcmp(cell(&cx, i, "path"), "auto")) continue;
            int f = find(&cx, "method", "randlora", "path", "factorised", "out", cell(&cx, i, "out"), "tokens",
                         cell(&cx, i, "tokens"), NULL);
            int mm = find(&cx, "method", "randlora", "path", "materialised", "out", cell(&cx, i, "out"), "tokens",
                          cell(&cx, i, "tokens"), NULL);
            if (f < 0 || mm < 0) continue;
            double tf = num(&cx, f, "median_ms"), tm = num(&cx, mm, "median_ms");
            double chosen = !strcmp(cell(&cx, i, "chosen"), "factorised") ? tf : tm, q = chosen / fmin(tf, tm);
            n++;
            ok += q <= 1.1;
            if (q > worst) {
                worst = q;
                snprintf(where, sizeof where, "%sx%s, %s tokens", cell(&cx, i, "out"), cell(&cx, i, "in"), cell(&cx, i, "tokens"));
            }
        }
        snprintf(m, sizeof m, "the chosen path within 10%% of the faster in %d of %d configurations; worst %.2f x (%s) "
                              "(`cost/crossover.csv`, explicit-path timings)", ok, n, worst, where);
        put(b, "| the automatic path choice picks the faster path (or within 10%%) | %s | **%s** |\n", m,
            n && ok == n ? "met" : n ? "not met" : "not measured");
        csv_free(&cx);
    }
    if (f1 >= 0 && r1 >= 0)
        put(b, "\nPEFT's way (factorised path) on the same layer: %.2f ms; the automatic choice took the %s path: %.2f ms.\n",
            num(&t, f1, "median_ms"), cell(&t, r1, "chosen"), num(&t, r1, "median_ms"));
    put(b, "\n");
    csv_free(&t);
    if (have_py) csv_free(&py);
}

static void plot(sbuf *b, const char *name, const char *caption)
{
    char p[300];
    snprintf(p, sizeof p, "plots/out/%s.png", name);
    if (exists(p)) put(b, "![%s](../plots/out/%s.png)\n\n*%s*\n\n", caption, name, caption);
}

rl_status report_write(const char *dir, bool render, bool quiet)
{
    if (render) {
        static const struct { const char *csv, *script; } plots[] = {
            {"cost/time_vs_r.csv", "plots/cost_time_vs_r.gp"},      {"cost/time_vs_size.csv", "plots/cost_time_vs_size.gp"},
            {"cost/crossover.csv", "plots/cost_crossover.gp"},      {"cost/time_vs_size.csv", "plots/cost_memory.gp"},
            {"expressivity/summary.csv", "plots/expressivity.gp"},  {"finetune/summary.csv", "plots/finetune_accuracy.gp"},
            {"finetune/curves.csv", "plots/finetune_loss.gp"},      {"similarity/cka.csv", "plots/similarity.gp"},
            {"rank/rank.csv", "plots/rank_vs_r.gp"},                {"rank/spectrum.csv", "plots/rank_spectra.gp"},
            {"rank/training.csv", "plots/rank_vs_step.gp"},         {"rank/sparse.csv", "plots/rank_sparse.gp"},
            {"bench/bench.csv", "plots/bench.gp"},
        };
        const char *todo[16];
        int n = 0;
        for (size_t i = 0; i < sizeof plots / sizeof plots[0]; i++) {
            char p[700];
            snprintf(p, sizeof p, "%s/%s", dir, plots[i].csv);
            if (exists(p) && exists(plots[i].script)) todo[n++] = plots[i].script;
        }
        sweep_render(todo, n, quiet);
    }
    sbuf b = {malloc(1 << 16), 0, 1 << 16};
    RL_ASSERT(b.buf, "report: out of memory");
    char ts[64];
    time_t now = time(NULL);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    put(&b, "# RandLora, LoRA and VeRA: measured report\n\n"
            "Generated by `build/randlora report` at %s from the CSVs under `results/` (do not edit by hand: "
            "`make run` or `build/randlora report` rewrite it). Every measured figure names the CSV it comes from; "
            "every verdict is computed by the rule in its row. Reference figures come from "
            "`../shared/reference/paper-results.md` (the paper's project-page figures and tables, PEFT's benchmark "
            "results and docs), with the section they are quoted from.\n\n",
        ts);
    put(&b, "## Machine, versions, threads\n\n");
    machine(&b, dir);
    put(&b, "## Claims\n\n");
    claims(&b, dir);
    put(&b, "## PEFT parity\n\nEvery reference file checked by `randlora parity` (bases regenerated from the key, init "
            "values, outputs, delta weights and gradients):\n\n");
    parity(&b, dir);
    put(&b, "## Rank\n\n");
    rank_section(&b, dir);
    plot(&b, "rank_vs_r", "Numerical rank of ΔW vs r");
    plot(&b, "rank_spectra", "Singular-value spectra per method");
    plot(&b, "rank_vs_step", "Rank vs training step");
    plot(&b, "rank_sparse", "Sparse bases: measured vs predicted rank");
    put(&b, "## Cost\n\n");
    cost(&b, dir);
    plot(&b, "cost_time_vs_r", "Step time vs r");
    plot(&b, "cost_time_vs_size", "Step time vs layer size (log-log, fitted slopes)");
    plot(&b, "cost_crossover", "Factorised vs materialised RandLora step");
    plot(&b, "cost_memory", "Peak memory per method");
    put(&b, "## Performance targets (`make bench`)\n\n");
    bench_section(&b, dir);
    plot(&b, "bench", "make bench: median times beside the FLOP-model bound");
    put(&b, "## Expressivity\n\n");
    plot(&b, "expressivity", "Fitting an update of known spectrum at matched budgets (`expressivity/summary.csv`)");
    put(&b, "## Fine-tuning\n\n");
    finetune(&b, dir);
    plot(&b, "finetune_accuracy", "Test accuracy vs trainable parameters");
    plot(&b, "finetune_loss", "Training loss on task B");
    put(&b, "## Similarity to full fine-tuning\n\n");
    plot(&b, "similarity", "Linear CKA with the fully fine-tuned model (`similarity/cka.csv`)");
    char path[700];
    snprintf(path, sizeof path, "%s/REPORT.md", dir);
    rl_status st = rl_write_file_atomic(path, b.buf, b.len);
    free(b.buf);
    if (st == RL_OK && !quiet) fprintf(stderr, "wrote %s\n", path);
    return st;
}

int cmd_report(int argc, char **argv)
{
    const char *dir = "results";
    bool render = true, quiet = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--results") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--no-plots")) render = false;
        else if (!strcmp(argv[i], "--quiet")) quiet = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: randlora report [--results DIR] [--no-plots] [--quiet]\n"
                   "  Renders the plots (gnuplot) into plots/out/ and writes DIR/REPORT.md from the CSVs in DIR\n"
                   "  (default results/), whatever subset of the experiments has run.\n");
            return 0;
        } else {
            fprintf(stderr, "randlora report: unknown flag '%s'\n", argv[i]);
            return 2;
        }
    }
    if (report_write(dir, render, quiet) != RL_OK) {
        fprintf(stderr, "randlora report: %s\n", rl_errmsg());
        return 1;
    }
    return 0;
}
