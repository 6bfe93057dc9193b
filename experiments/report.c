/* report.c -- `randlora report`: results/REPORT.md, its tables as LaTeX
 * (results/tables/<section>.tex, latex.h) and the plots, from whatever CSVs are in
 * results/ (a partial or sharded run can be reported).
 *
 * Every figure in the report is read from a CSV named beside it; every
 * verdict is computed here by the rule written in its row. The reference
 * figures and their sources are rows of experiments/reference/paper.csv
 * (paper_ref.h: the paper's tables and figures, PEFT's benchmark results and
 * docs), cited by id through rp_ref: they are the reference column, never
 * measured.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "core/rl_parse.h"
#include "flags.h"
#include "io/rl_results.h"
#include "latex.h"
#include "paper_ref.h"
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

bool rp_exp_table(const char *dir, const char *exp, const char *file, csv_table *t, char *rel, size_t n)
{
    snprintf(rel, n, "%s/%s", exp, file);
    return rp_table(dir, rel, t);
}

const char *rp_cell(const csv_table *t, int r, const char *col)
{
    int c = csv_col(t, col);
    return c >= 0 && r >= 0 && r < t->nrow ? t->rows[r][c] : "";
}

/* Strict (lib/core/rl_parse.h): "inf" and "-inf" as printf writes them; a
 * cell that is empty, "nan" or not a number is NaN, never a silent 0. */
double rp_num(const csv_table *t, int r, const char *col)
{
    const char *s = rp_cell(t, r, col);
    double v;
    if (rl_parse_double(s, -DBL_MAX, DBL_MAX, NULL, &v) == RL_OK) return v;
    if (strcmp(s, "inf") == 0) return INFINITY;
    if (strcmp(s, "-inf") == 0) return -INFINITY;
    return NAN;
}

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

/* Every claim row also goes into results/claims.csv (claim, reference,
 * measured, verdict, rule; commas inside a field become semicolons), the
 * table the README's findings block quotes. */
static sbuf claims_csv;

static void csv_field(sbuf *b, const char *s, bool last)
{
    for (; *s; s++) rp_put(b, "%c", rl_csv_plain_char(*s));
    rp_put(b, last ? "\n" : ",");
}

void rp_claim_row(sbuf *b, const char *claim, const char *ref, const char *measured, const char *verdict,
                      const char *rule)
{
    /* a '|' inside a field would end a Markdown table cell: escaped */
    const char *f[5] = {claim, ref, measured, verdict, rule};
    for (int k = 0; k < 5; k++) {
        rp_put(b, k == 3 ? "| **" : "| ");
        for (const char *c = f[k]; *c; c++) rp_put(b, "%s%c", *c == '|' ? "\\" : "", *c);
        rp_put(b, k == 3 ? "** " : " ");
    }
    rp_put(b, "|\n");
    if (claims_csv.buf) {
        csv_field(&claims_csv, claim, false);
        csv_field(&claims_csv, ref, false);
        csv_field(&claims_csv, measured, false);
        csv_field(&claims_csv, verdict, false);
        csv_field(&claims_csv, rule, true);
    }
}

/* ---- reference figures ---- */

/* The table of paper.csv for the report being written, and the first id a
 * section asked for that it lacks (report_write then fails). */
static paper_refs *refs;
static char ref_missing[128];

void rp_ref(char *buf, size_t len, const char *ids)
{
    if (paper_ref_cell(refs, ids, buf, len) != RL_OK && !ref_missing[0])
        snprintf(ref_missing, sizeof ref_missing, "%s", ids);
}

double rp_ref_num(const char *id)
{
    if (!paper_ref_find(refs, id) && !ref_missing[0]) snprintf(ref_missing, sizeof ref_missing, "%s", id);
    return paper_ref_value(refs, id);
}

void rp_ref_or_text(char *buf, size_t len, const char *field)
{
    bool ids = *field != '\0';
    char one[96];
    for (const char *p = field; *p && ids;) {
        size_t k = strcspn(p, " ");
        snprintf(one, sizeof one, "%.*s", (int)(k < sizeof one ? k : sizeof one - 1), p);
        ids = k > 0 && k < sizeof one && paper_ref_find(refs, one) != NULL;
        p += k;
        while (*p == ' ') p++;
    }
    if (ids) rp_ref(buf, len, field);
    else snprintf(buf, len, "%s", field);
}

/* Every row of paper.csv the report cited. */
static void report_references(sbuf *b)
{
    int used = 0;
    for (int i = 0; i < paper_refs_count(refs); i++) used += paper_refs_at(refs, i)->used;
    rp_put(b, "## Reference figures\n\n");
    if (!used) {
        rp_put(b, "No claim row was written, so no reference figure is cited.\n\n");
        return;
    }
    rp_put(b, "The %d rows of `experiments/reference/paper.csv` cited above (figures as published; nothing here was "
              "measured by this repository):\n\n| id | figure | claim | source | where | url | note |\n"
              "|---|---|---|---|---|---|---|\n", used);
    for (int i = 0; i < paper_refs_count(refs); i++) {
        const paper_ref *r = paper_refs_at(refs, i);
        if (!r->used) continue;
        const char *f[7] = {r->id, r->figure, r->claim, r->source, r->where, r->url, r->note};
        rp_put(b, "|");
        for (int k = 0; k < 7; k++) {
            rp_put(b, " %s", k == 0 || k == 5 ? "`" : "");
            for (const char *c = f[k]; *c; c++) rp_put(b, "%s%c", *c == '|' ? "\\" : "", *c);
            rp_put(b, "%s |", k == 0 || k == 5 ? "`" : "");
        }
        rp_put(b, "\n");
    }
    rp_put(b, "\n");
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

/* ---- the README's findings block ----
 * Between the markers below, README.md gets lines written here from the
 * CSVs of results/, each naming the CSV its numbers are copied from
 * (verbatim: tests/test_readme.c checks that every number of the block
 * appears in the CSV its line cites). Nothing outside the markers changes. */
#define FINDINGS_BEGIN "<!-- findings:begin (written by `build/randlora report` from results/; do not edit) -->"
#define FINDINGS_END "<!-- findings:end -->"

static void findings(sbuf *o, const char *dir)
{
    csv_table t;
    if (rp_table(dir, "parity/parity.csv", &t)) {
        int worst = 0, wg = 0, pass = 0;
        for (int r = 0; r < t.nrow; r++) {
            pass += !strcmp(rp_cell(&t, r, "pass"), "PASS");
            if (rp_num(&t, r, "max_rel") > rp_num(&t, worst, "max_rel")) worst = r;
            if (rp_num(&t, r, "grad_rel") > rp_num(&t, wg, "grad_rel")) wg = r;
        }
        rp_put(o, "- **Parity with PEFT** (`results/parity/parity.csv`): %s; worst relative error %s (%s), worst "
                  "gradient error %s.\n",
               pass == t.nrow ? "every reference file passes" : "SOME FILES FAIL", rp_cell(&t, worst, "max_rel"),
               rp_cell(&t, worst, "max_rel_tensor"), rp_cell(&t, wg, "grad_rel"));
        csv_free(&t);
    }
    if (rp_table(dir, "claims.csv", &t)) {
        rp_put(o, "- **Verdicts** (`results/claims.csv`; measured figures and rules in results/REPORT.md):\n");
        for (int r = 0; r < t.nrow; r++)
            rp_put(o, "  - %s: **%s** (`results/claims.csv`)\n", rp_cell(&t, r, "claim"), rp_cell(&t, r, "verdict"));
        csv_free(&t);
    }
    if (rp_table(dir, "bench/targets.csv", &t)) {
        int met = 0, at = 0;
        for (int r = 0; r < t.nrow; r++) {
            met += !strcmp(rp_cell(&t, r, "verdict"), "met");
            at += !strcmp(rp_cell(&t, r, "decided"), "no");
        }
        rp_put(o, "- **Performance targets** of the last `make bench` (`results/bench/targets.csv`; conditions and "
                  "the C and PyTorch figures in results/REPORT.md): %d of %d met", met, t.nrow);
        if (at) rp_put(o, "; %d verdicts sit at their threshold (\"at threshold\": the 95%% interval over rounds holds it)", at);
        rp_put(o, ".\n");
        for (int r = 0; r < t.nrow; r++) { /* a target not met shows its detail: how far, and why */
            const bool missed = !strcmp(rp_cell(&t, r, "verdict"), "not met"), close = !strcmp(rp_cell(&t, r, "decided"), "no");
            char iv[96] = "";
            if (close)
                snprintf(iv, sizeof iv, ", at threshold (95%% interval %s-%s over %s rounds)", rp_cell(&t, r, "ci95_lo"),
                         rp_cell(&t, r, "ci95_hi"), rp_cell(&t, r, "rounds"));
            rp_put(o, "  - %s, %s: %s against %s: **%s**%s%s%s (`results/bench/targets.csv`)\n", rp_cell(&t, r, "target"),
                   rp_cell(&t, r, "condition"), rp_cell(&t, r, "figure"), rp_cell(&t, r, "threshold"),
                   rp_cell(&t, r, "verdict"), iv, missed ? ": " : "", missed ? rp_cell(&t, r, "detail") : "");
        }
        csv_free(&t);
    }
    static const char *const acc[2] = {"vit", "finetune"};
    for (int k = 0; k < 2; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "%s/summary.csv", acc[k]);
        if (!rp_table(dir, rel, &t)) continue;
        rp_put(o, "\n%s: test accuracy over seeds, mean ± the half-width of its confidence interval (`results/%s`):\n\n"
                  "| task | method | bases | r | params | seeds | test accuracy |\n|---|---|---|---|---|---|---|\n",
               k ? "The pretrained MLP" : "The pretrained ViT", rel);
        for (int r = 0; r < t.nrow; r++)
            rp_put(o, "| %s | %s | %s | %s | %s | %s | %s ± %s |\n", rp_cell(&t, r, "task"), rp_cell(&t, r, "method"),
                   rp_cell(&t, r, "bases"), rp_cell(&t, r, "r"), rp_cell(&t, r, "params"), rp_cell(&t, r, "seeds"),
                   rp_cell(&t, r, "test_acc_mean"), rp_cell(&t, r, "test_acc_ci95"));
        csv_free(&t);
    }
}

static rl_status readme_write(const char *dir, const char *path, bool quiet)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return RL_OK; /* not in the project root: nothing to update */
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    size_t got = text ? fread(text, 1, (size_t)n, fp) : 0;
    fclose(fp);
    if (!text) return rl_fail(RL_ENOMEM, "report: no memory for %s", path);
    text[got] = '\0';
    char *a = strstr(text, FINDINGS_BEGIN), *z = a ? strstr(a, FINDINGS_END) : NULL;
    rl_status st = RL_OK;
    if (a && z) {
        sbuf o = {malloc(1 << 14), 0, 1 << 14};
        RL_ASSERT(o.buf, "report: out of memory");
        rp_put(&o, "%.*s%s\n", (int)(a - text), text, FINDINGS_BEGIN);
        findings(&o, dir);
        rp_put(&o, "%s", z);
        st = rl_write_file_atomic(path, o.buf, o.len);
        if (st == RL_OK && !quiet) fprintf(stderr, "wrote the findings block of %s\n", path);
        free(o.buf);
    }
    free(text);
    return st;
}

rl_status report_write(const char *dir, bool render, bool quiet)
{
    if (render) {
        static const struct { const char *csv, *script; } plots[] = {
            {"cost/time_vs_r.csv", "plots/cost_time_vs_r.gp"},      {"cost/time_vs_size.csv", "plots/cost_time_vs_size.gp"},
            {"cost/crossover.csv", "plots/cost_crossover.gp"},      {"cost/time_vs_size.csv", "plots/cost_memory.gp"},
            {"expressivity/summary.csv", "plots/expressivity.gp"},  {"finetune/summary.csv", "plots/finetune_accuracy.gp"},
            {"finetune/curves.csv", "plots/finetune_loss.gp"},      {"finetune/movement.csv", "plots/finetune_movement.gp"},
            {"vit/summary.csv", "plots/vit_accuracy.gp"},           {"vit/spectrum.csv", "plots/vit_movement.gp"},
            {"teacher/summary.csv", "plots/teacher.gp"},      {"similarity/cka.csv", "plots/similarity.gp"},
            {"rank/rank.csv", "plots/rank_vs_r.gp"},                {"rank/spectrum.csv", "plots/rank_spectra.gp"},
            {"rank/training.csv", "plots/rank_vs_step.gp"},         {"rank/sparse.csv", "plots/rank_sparse.gp"},
            {"bench/bench.csv", "plots/bench.gp"},
        };
        const char *todo[32];
        int n = 0;
        for (size_t i = 0; i < sizeof plots / sizeof plots[0]; i++) {
            char p[700];
            snprintf(p, sizeof p, "%s/%s", dir, plots[i].csv);
            if (rp_exists(p) && rp_exists(plots[i].script)) todo[n++] = plots[i].script;
        }
        sweep_render(todo, n, quiet);
    }
    rl_status st = paper_refs_load(&refs, PAPER_REF_CSV);
    if (st != RL_OK) return st;
    ref_missing[0] = '\0';
    sbuf b = {malloc(1 << 16), 0, 1 << 16};
    RL_ASSERT(b.buf, "report: out of memory");
    char ts[64];
    time_t now = time(NULL);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    rp_put(&b, "# RandLora, LoRA and VeRA: measured report\n\n"
            "Generated by `build/randlora report` at %s from the CSVs under `results/` (do not edit by hand: "
            "`make run` or `build/randlora report` rewrite it). Every measured figure names the CSV it comes from; "
            "every verdict is computed by the rule in its row. Reference figures are rows of "
            "`experiments/reference/paper.csv` (the paper's tables and figures, PEFT's benchmark results and docs), "
            "cited by id; the last section lists each with its source and URL. The tables are also in "
            "`tables/*.tex` (LaTeX, booktabs).\n\n",
        ts);
    rp_put(&b, "## Machine, versions, threads\n\n");
    report_machine(&b, dir);
    rp_put(&b, "## Claims\n\n");
    claims_csv = (sbuf){malloc(1 << 14), 0, 1 << 14};
    RL_ASSERT(claims_csv.buf, "report: out of memory");
    rp_put(&claims_csv, "claim,reference,measured,verdict,rule\n");
    report_claims(&b, dir);
    sbuf cc = claims_csv;
    claims_csv = (sbuf){0};
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
    rp_plot(&b, "finetune_movement", "How far each method moves the model: relative change and full fine-tuning's energy spectrum");
    rp_put(&b, "## Similarity to full fine-tuning\n\n");
    report_similarity(&b, dir);
    rp_plot(&b, "similarity", "Linear CKA with the fully fine-tuned model (`similarity/summary.csv`)");
    rp_put(&b, "## A pretrained transformer adapted to shifted tasks\n\n");
    report_vit(&b, dir);
    rp_plot(&b, "vit_accuracy", "Accuracy vs trainable parameters per task (`vit/summary.csv`)");
    rp_plot(&b, "vit_movement", "Energy spectrum of full fine-tuning's update per layer (`vit/spectrum.csv`)");
    rp_put(&b, "## Teacher-student: learning a known update through data\n\n");
    report_teacher(&b, dir);
    rp_plot(&b, "teacher", "Error reached vs trainable parameters, with LoRA's Eckart-Young floor (`teacher/summary.csv`)");
    report_references(&b);
    if (ref_missing[0])
        st = rl_fail(RL_ENOTFOUND, "%s: no reference row for '%s' (a report section cites it)", PAPER_REF_CSV,
                     ref_missing);
    paper_refs_free(refs);
    refs = NULL;
    char path[700];
    snprintf(path, sizeof path, "%s/REPORT.md", dir);
    if (st == RL_OK) st = rl_write_file_atomic(path, b.buf, b.len);
    snprintf(path, sizeof path, "%s/claims.csv", dir);
    if (st == RL_OK) st = rl_write_file_atomic(path, cc.buf, cc.len);
    free(cc.buf);
    if (st == RL_OK && !quiet) fprintf(stderr, "wrote %s/REPORT.md and %s\n", dir, path);
    int ntex = 0;
    snprintf(path, sizeof path, "%s/tables", dir);
    if (st == RL_OK) st = latex_tables_write(b.buf, path, &ntex);
    if (st == RL_OK && !quiet) fprintf(stderr, "wrote %d LaTeX tables to %s/\n", ntex, path);
    free(b.buf);
    /* the README's block only from the default results (a test's or a
     * user's other directory must not rewrite it) */
    if (st == RL_OK && !strcmp(dir, "results")) st = readme_write(dir, "README.md", quiet);
    return st;
}

int cmd_report(int argc, char **argv)
{
    const char *dir = "results";
    bool render = true, quiet = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--results")) {
            if (!(dir = flag_value("randlora report", argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--no-plots")) render = false;
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
    /* DIR is the input: it must exist as a directory (a missing one is not
     * created, and a file is not written beside) */
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "randlora report: --results '%s' %s\n", dir,
                stat(dir, &sb) != 0 ? "does not exist (run an experiment first, or name the results directory)"
                                    : "is not a directory");
        return 2;
    }
    rl_status st = report_write(dir, render, quiet);
    if (st != RL_OK) {
        fprintf(stderr, "randlora report: %s\n", rl_errmsg());
        return cmd_exit_code(st); /* 3: REPORT.md could not be written */
    }
    return 0;
}

