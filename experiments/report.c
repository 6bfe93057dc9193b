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
#include "report.h"

void rp_put(sbuf *b, const char *fmt, ...)
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

bool rp_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Open results/<rel> as a table; false (and t zeroed) if absent or unreadable. */
bool rp_table(const char *dir, const char *rel, csv_table *t)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    memset(t, 0, sizeof *t);
    return rp_exists(p) && csv_read(p, t) == RL_OK;
}

const char *rp_cell(const csv_table *t, int r, const char *col)
{
    int c = csv_col(t, col);
    return c >= 0 && r >= 0 && r < t->nrow ? t->rows[r][c] : "";
}

double rp_num(const csv_table *t, int r, const char *col) { return atof(rp_cell(t, r, col)); }

/* First row whose columns equal the given values (NULL-terminated pairs). */
int rp_find(const csv_table *t, ...)
{
    for (int r = 0; r < t->nrow; r++) {
        va_list ap;
        va_start(ap, t);
        bool ok = true;
        const char *col;
        while (ok && (col = va_arg(ap, const char *))) {
            const char *v = va_arg(ap, const char *);
            ok = strcmp(rp_cell(t, r, col), v) == 0;
        }
        va_end(ap);
        if (ok) return r;
    }
    return -1;
}

void rp_claim_row(sbuf *b, const char *claim, const char *ref, const char *measured, const char *verdict,
                      const char *rule)
{
    rp_put(b, "| %s | %s | %s | **%s** | %s |\n", claim, ref, measured, verdict, rule);
}

/* ---- machine ---- */

void report_machine(sbuf *b, const char *dir)
{
    static const char *const exps[] = {"cost", "finetune", "rank", "expressivity"};
    char p[700];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s/manifest.json", dir, exps[i]);
        FILE *fp = fopen(p, "r");
        if (!fp) continue;
        rp_put(b, "From `results/%s/manifest.json` (each experiment records its own):\n\n```\n", exps[i]);
        char line[512];
        while (fgets(line, sizeof line, fp))
            if (strstr(line, "\"cpu\"") || strstr(line, "openblas") || strstr(line, "threads") ||
                strstr(line, "compiler") || strstr(line, "online_cpus") || strstr(line, "written_utc") ||
                strstr(line, "cpu_features") || strstr(line, "gflops") || strstr(line, "fma_peak"))
                rp_put(b, "%s", line);
        fclose(fp);
        rp_put(b, "```\n\n");
        return;
    }
    rp_put(b, "No manifest found in results/: run an experiment first.\n\n");
}

/* ---- claims ---- */

void rp_plot(sbuf *b, const char *name, const char *caption)
{
    char p[300];
    snprintf(p, sizeof p, "plots/out/%s.png", name);
    if (rp_exists(p)) rp_put(b, "![%s](../plots/out/%s.png)\n\n*%s*\n\n", caption, name, caption);
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
            if (rp_exists(p) && rp_exists(plots[i].script)) todo[n++] = plots[i].script;
        }
        sweep_render(todo, n, quiet);
    }
    sbuf b = {malloc(1 << 16), 0, 1 << 16};
    RL_ASSERT(b.buf, "report: out of memory");
    char ts[64];
    time_t now = time(NULL);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    rp_put(&b, "# RandLora, LoRA and VeRA: measured report\n\n"
            "Generated by `build/randlora report` at %s from the CSVs under `results/` (do not edit by hand: "
            "`make run` or `build/randlora report` rewrite it). Every measured figure names the CSV it comes from; "
            "every verdict is computed by the rule in its row. Reference figures come from "
            "`../shared/reference/paper-results.md` (the paper's project-page figures and tables, PEFT's benchmark "
            "results and docs), with the section they are quoted from.\n\n",
        ts);
    rp_put(&b, "## Machine, versions, threads\n\n");
    report_machine(&b, dir);
    rp_put(&b, "## Claims\n\n");
    report_claims(&b, dir);
    rp_put(&b, "## PEFT parity\n\nEvery reference file checked by `randlora parity` (bases regenerated from the key, init "
            "values, outputs, delta weights and gradients):\n\n");
    report_parity(&b, dir);
    rp_put(&b, "## Rank\n\n");
    report_rank(&b, dir);
    rp_plot(&b, "rank_vs_r", "Numerical rank of ΔW vs r");
    rp_plot(&b, "rank_spectra", "Singular-value spectra per method");
    rp_plot(&b, "rank_vs_step", "Rank vs training step");
    rp_plot(&b, "rank_sparse", "Sparse bases: measured vs predicted rank");
    rp_put(&b, "## Cost\n\n");
    report_cost(&b, dir);
    rp_plot(&b, "cost_time_vs_r", "Step time vs r");
    rp_plot(&b, "cost_time_vs_size", "Step time vs layer size (log-log, fitted slopes)");
    rp_plot(&b, "cost_crossover", "Factorised vs materialised RandLora step");
    rp_plot(&b, "cost_memory", "Peak memory per method");
    rp_put(&b, "## Performance targets (`make bench`)\n\n");
    report_bench(&b, dir);
    rp_plot(&b, "bench", "make bench: median times beside the FLOP-model bound");
    rp_put(&b, "## Expressivity\n\n");
    rp_plot(&b, "expressivity", "Fitting an update of known spectrum at matched budgets (`expressivity/summary.csv`)");
    rp_put(&b, "## Fine-tuning\n\n");
    report_finetune(&b, dir);
    rp_plot(&b, "finetune_accuracy", "Test accuracy vs trainable parameters");
    rp_plot(&b, "finetune_loss", "Training loss on task B");
    rp_put(&b, "## Similarity to full fine-tuning\n\n");
    rp_plot(&b, "similarity", "Linear CKA with the fully fine-tuned model (`similarity/cka.csv`)");
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

