/* test_report_tex.c -- the report's reference figures (experiments/
 * reference/paper.csv through paper_ref.h), its tables as LaTeX, its plots
 * as vector graphics, and a real pdflatex run over one generated table and
 * one generated plot (skipped, saying why, when TeX is not installed). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "latex.h"
#include "paper_ref.h"
#include "params.h"
#include "report.h"
#include "rl_test.h"
#include "sweep.h"

TestSuite(report_tex, .init = rl_test_mark);

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* The whole file into a malloc'd string. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    cr_assert(s);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* ---- paper.csv ---- */

RL_TEST(report_tex, paper_csv_parses_quotes_comments_and_crlf)
{
    char dir[64], p[128];
    rl_test_tmpdir(dir, "rl_ref_");
    snprintf(p, sizeof p, "%s/refs.csv", dir);
    write_text(p, "# a comment, with a comma\r\n"
                  "id,label,figure,unit,claim,source,where,url,note\r\n"
                  "\r\n"
                  "a_1,\"LoRA, r=32\",9175040,params,\"says \"\"hi\"\", twice\",src,Table 1,http://x,\r\n"
                  "b_2,,\"multi\nline\",quote,c,s,w,,\n");
    paper_refs *t;
    cr_assert_eq(paper_refs_load(&t, p), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(paper_refs_count(t), 2);
    const paper_ref *a = paper_ref_find(t, "a_1");
    cr_assert_not_null(a);
    cr_expect_str_eq(a->label, "LoRA, r=32");
    cr_expect_str_eq(a->claim, "says \"hi\", twice");
    cr_expect_str_eq(a->note, "");
    cr_expect_eq(a->line, 4);
    cr_expect(a->used);
    cr_expect_eq(paper_ref_value(t, "a_1"), 9175040.0);
    cr_expect(isnan(paper_ref_value(t, "b_2")), "a quote is not a number");
    cr_expect(isnan(paper_ref_value(t, "nope")));
    cr_expect_str_eq(paper_ref_find(t, "b_2")->figure, "multi\nline");
    char cell[512];
    cr_expect_eq(paper_ref_cell(t, "a_1 b_2", cell, sizeof cell), RL_OK);
    cr_expect_str_eq(cell, "LoRA, r=32: 9,175,040 params; \"multi\nline\" -- Table 1; w [paper.csv: a_1, b_2]");
    cr_expect_eq(paper_ref_cell(t, "a_1 zz_9", cell, sizeof cell), RL_ENOTFOUND);
    cr_expect(strstr(cell, "MISSING reference 'zz_9'") && strstr(rl_errmsg(), "zz_9"), "%s", cell);
    paper_refs_free(t);
    rl_test_rmdir(dir);
}

RL_TEST(report_tex, paper_csv_errors_name_the_line)
{
    char dir[64], p[128];
    rl_test_tmpdir(dir, "rl_ref_");
    snprintf(p, sizeof p, "%s/refs.csv", dir);
    static const struct { const char *text, *want; } cases[] = {
        {"id,label,figure,unit,claim,source,where,url\n", ":1: 8 fields"},
        {"id,label,value,unit,claim,source,where,url,note\n", "header field 3 is 'value'"},
        {"id,label,figure,unit,claim,source,where,url,note\na,,1,s,c,s,w,u,n\na,,2,s,c,s,w,u,n\n", "already defined on line 2"},
        {"id,label,figure,unit,claim,source,where,url,note\nBad-Id,,1,s,c,s,w,u,n\n", "'Bad-Id' is not"},
        {"id,label,figure,unit,claim,source,where,url,note\na,,,s,c,s,w,u,n\n", "empty figure"},
        {"id,label,figure,unit,claim,source,where,url,note\na,\"open,1,s,c,s,w,u,n\n", ":2: unterminated"},
        {"# only a comment\n", "no header"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(p, cases[i].text);
        paper_refs *t;
        cr_expect_eq(paper_refs_load(&t, p), RL_EFORMAT, "case %zu", i);
        cr_expect(strstr(rl_errmsg(), cases[i].want) && strstr(rl_errmsg(), p), "case %zu: %s", i, rl_errmsg());
    }
    rl_test_rmdir(dir);
}

/* The repository's own file: loads, and every row whose unit is not a
 * quote or a statement holds a number. */
RL_TEST(report_tex, repository_paper_csv_is_complete)
{
    paper_refs *t;
    cr_assert_eq(paper_refs_load(&t, PAPER_REF_CSV), RL_OK, "%s", rl_errmsg());
    cr_expect_gt(paper_refs_count(t), 100);
    for (int i = 0; i < paper_refs_count(t); i++) {
        const paper_ref *r = paper_refs_at(t, i);
        if (strcmp(r->unit, "quote") && strcmp(r->unit, "text"))
            cr_expect(isfinite(paper_ref_value(t, r->id)), "%s:%d: '%s' is not a number", PAPER_REF_CSV, r->line,
                      r->figure);
        cr_expect(strncmp(r->url, "https://", 8) == 0, "%s: url '%s'", r->id, r->url);
    }
    paper_refs_free(t);
}

/* ---- the report over a results directory made here ---- */

/* results/params/anchors.csv as `make run` writes it, from params_count. */
static void write_anchors(const char *dir, long long nudge)
{
    char p[256];
    snprintf(p, sizeof p, "%s/params", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/params/anchors.csv", dir);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fprintf(f, "%s\n", PARAMS_CSV_HEADER);
    static const struct { rl_method m; int r; } a[4] = {
        {RL_METHOD_RANDLORA, 32}, {RL_METHOD_LORA, 32}, {RL_METHOD_LORA, 64}, {RL_METHOD_VERA, 256}};
    params_selection sel;
    cr_assert_eq(params_select(params_arch_find("llama-3.2-3b"), "q_proj,v_proj", &sel), RL_OK);
    for (int i = 0; i < 4; i++) {
        params_result res;
        cr_assert_eq(params_count(a[i].m, a[i].r, sel.m, sel.n, &res), RL_OK);
        fprintf(f, "llama-3.2-3b,%s,%d,q_proj+v_proj,%llu,%llu,%llu\n", rl_method_name(a[i].m), a[i].r,
                (unsigned long long)res.layers, (unsigned long long)res.params + (i == 0 ? nudge : 0),
                (unsigned long long)res.bases_floats);
    }
    fclose(f);
}

static void write_finetune(const char *dir)
{
    char p[256];
    snprintf(p, sizeof p, "%s/finetune", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/finetune/summary.csv", dir);
    write_text(p, "task,method,bases,r,params,seeds,test_acc_mean,test_acc_ci95,train_acc_mean,gap_mean,step_ms_mean\n"
                  "classes,lora,-,4,7493,3,0.899,0.007,0.91,0.011,1.0\n"
                  "classes,randlora,dense,16,9989,3,0.940,0.008,0.95,0.010,2.0\n");
    snprintf(p, sizeof p, "%s/finetune/claims.csv", dir);
    write_text(p, "task,claim,reference,measured,verdict,rule\n"
                  "classes,RandLora beats LoRA at equal parameters,table1_llama3_8b_170k_randlora_performant "
                  "table1_llama3_8b_170k_lora_performant,m,holds,r\n"
                  "classes,an old row,paper (free text; kept as written),m,holds,r\n");
}

/* Does `needle` occur in the line that starts at `line`? */
static bool in_line(const char *line, const char *needle)
{
    const char *hit = strstr(line, needle), *end = strchr(line, '\n');
    return hit && (!end || hit < end);
}

static char *tmp_report(char dir[64], long long nudge)
{
    rl_test_tmpdir(dir, "rl_rep_");
    write_anchors(dir, nudge);
    write_finetune(dir);
    cr_assert_eq(report_write(dir, false, true), RL_OK, "%s", rl_errmsg());
    char p[256];
    snprintf(p, sizeof p, "%s/REPORT.md", dir);
    return slurp(p);
}

static void rm_report(const char *dir)
{
    static const char *const sub[3] = {"params", "finetune", "tables"};
    for (int i = 0; i < 3; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", dir, sub[i]);
        rl_test_rmdir(p);
    }
    rl_test_rmdir(dir);
}

RL_TEST(report_tex, claims_cite_paper_csv_and_verdicts_use_its_figures)
{
    char dir[64];
    char *md = tmp_report(dir, 0);
    const char *row = strstr(md, "| Llama-3.2-3B q and v: trainable parameters |");
    cr_assert_not_null(row, "%s", md);
    cr_expect(strstr(row, "RandLoRA r=32 (alpha 640): 9,289,728 params") && strstr(row, "[paper.csv: peft_mmqa_randlora_r32_params"),
              "%.600s", row);
    cr_expect(in_line(row, "| **holds** | all four equal exactly |"), "%.800s", row);
    cr_expect(strstr(md, "LLama3-8b 170k RandLoRA Performant: 85.6%"), "claims.csv ids become cited figures");
    cr_expect(strstr(md, "| paper (free text; kept as written) |"), "a free-text reference stays as written");
    cr_expect(strstr(md, "## Reference figures") && strstr(md, "| `peft_mmqa_lora_r64_params` | 18350080 |"), "%s", md);
    cr_expect(strstr(md, "https://github.com/huggingface/peft/tree/main/method_comparison/MetaMathQA/results"));
    cr_expect_null(strstr(md, "paper-results.md"), "the report must not cite a file outside the repository");
    free(md);
    rm_report(dir);
    /* a count one off: the verdict follows paper.csv's figure */
    md = tmp_report(dir, 1);
    row = strstr(md, "| Llama-3.2-3B q and v: trainable parameters |");
    cr_assert_not_null(row);
    cr_expect(in_line(row, "| **does not hold** |"), "%.800s", row);
    free(md);
    rm_report(dir);
}

RL_TEST(report_tex, every_report_table_has_a_tex_file)
{
    char dir[64], p[256];
    char *md = tmp_report(dir, 0);
    free(md);
    snprintf(p, sizeof p, "%s/tables/fine-tuning.tex", dir);
    char *tex = slurp(p);
    cr_expect(strstr(tex, "\\begin{tabular}{lllrrr") && strstr(tex, "\\toprule") && strstr(tex, "\\bottomrule"), "%s", tex);
    cr_expect(strstr(tex, "& $0.8990 \\pm 0.0070$ &"), "mean with its interval in math mode: %s", tex);
    free(tex);
    snprintf(p, sizeof p, "%s/tables/claims.tex", dir);
    tex = slurp(p);
    cr_expect(strstr(tex, "\\textbf{holds}") && strstr(tex, "9,289,728"), "%.2000s", tex);
    free(tex);
    snprintf(p, sizeof p, "%s/tables/reference-figures.tex", dir);
    cr_expect(access(p, R_OK) == 0, "%s", p);
    /* a stale generated table goes; a file of the user's stays */
    snprintf(p, sizeof p, "%s/tables/old-section.tex", dir);
    write_text(p, "% Generated by `randlora report` from REPORT.md, section \"Old\"\n");
    char mine[256];
    snprintf(mine, sizeof mine, "%s/tables/mine.tex", dir);
    write_text(mine, "\\begin{tabular}{l}x\\end{tabular}\n");
    cr_assert_eq(report_write(dir, false, true), RL_OK, "%s", rl_errmsg());
    cr_expect(access(p, F_OK) != 0, "stale generated table removed");
    cr_expect(access(mine, F_OK) == 0, "the user's file kept");
    unlink(mine);
    rm_report(dir);
}

/* ---- Markdown to LaTeX ---- */

static void expect_cell(const char *md, const char *want)
{
    char out[1024] = "";
    latex_cell(md, strlen(md), out, sizeof out);
    cr_expect_str_eq(out, want, "cell '%s'", md);
}

RL_TEST(report_tex, cells_escape_specials_and_keep_intervals_together)
{
    expect_cell("0.9233 ± 0.0019", "$0.9233 \\pm 0.0019$");
    expect_cell("acc 9,289,728 ± 12 (n=3)", "acc $9{,}289{,}728 \\pm 12$ (n=3)");
    expect_cell("1e-05 ± 2e-06", "$1\\mathrm{e}-05 \\pm 2\\mathrm{e}-06$");
    expect_cell("x1.51 ± ", "x1.51 $\\pm$ ");
    expect_cell("**holds**", "\\textbf{holds}");
    expect_cell("`rank/rank.csv` and *it*", "\\texttt{rank/rank.csv} and \\emph{it}");
    expect_cell("PEFT<=0.20*", "PEFT\\textless{}=0.20$*$");
    expect_cell("a_b & 50% #1 {x} ~ ^ $ \\ \\| \"q\"", "a\\_b \\& 50\\% \\#1 \\{x\\} \\textasciitilde{} \\textasciicircum{} \\$ "
                                                    "\\textbackslash{} \\textbar{} ``q''");
    expect_cell("ΔW ≥ σ·⌈x⌉ → …", "$\\Delta$W $\\geq$ $\\sigma$$\\cdot$$\\lceil$x$\\rceil$ $\\rightarrow$ \\ldots{}");
    expect_cell("漢", "[U+6F22]");
    expect_cell("`a_b` **c", "\\texttt{a\\_b} $**$c");
}

RL_TEST(report_tex, markdown_table_becomes_booktabs)
{
    const char *md = "| name | value |\n|---|---|\n| a | 1 |\n| b_c | 2.5 ± 0.1 |\n";
    char *tex;
    cr_assert_eq(latex_table(md, strlen(md), &tex), RL_OK, "%s", rl_errmsg());
    cr_expect_str_eq(tex, "\\begin{tabular}{lr}\n\\toprule\nname & value \\\\\n\\midrule\na & 1 \\\\\n"
                          "b\\_c & $2.5 \\pm 0.1$ \\\\\n\\bottomrule\n\\end{tabular}\n");
    free(tex);
}

/* ---- vector plots ---- */

RL_TEST(report_tex, every_plot_script_has_a_vector_twin)
{
    DIR *d = opendir("plots");
    cr_assert_not_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t k = strlen(e->d_name);
        if (k < 4 || strcmp(e->d_name + k - 3, ".gp") || strstr(e->d_name, "_common")) continue;
        char p[512], name[128];
        snprintf(p, sizeof p, "plots/%s", e->d_name);
        char *text = slurp(p);
        char *v = sweep_vector_script(text, "pdf", "/tmp/vec", NULL, name, sizeof name);
        cr_assert_not_null(v, "%s: %s", p, rl_errmsg());
        char want[300];
        snprintf(want, sizeof want, "set output \"/tmp/vec/%s.pdf\"\n", name);
        cr_expect(strstr(v, want), "%s:\n%s", p, v);
        cr_expect(strstr(v, "set terminal pdfcairo") && strstr(v, "in\n"), "%s", p);
        cr_expect_null(strstr(v, "pngcairo"), "%s", p);
        cr_expect_null(strstr(v, ".png\""), "%s", p);
        free(v);
        v = sweep_vector_script(text, "svg", "/tmp/vec", NULL, name, sizeof name);
        cr_assert_not_null(v);
        cr_expect(strstr(v, "set terminal svg") && !strstr(v, "in,"), "%s: svg keeps pixel sizes", p);
        free(v);
        free(text);
        n++;
    }
    closedir(d);
    cr_expect_geq(n, 13);
    char name[64];
    cr_expect_null(sweep_vector_script("plot sin(x)\n", "pdf", "/tmp", NULL, name, sizeof name));
}

static bool on_path(const char *prog)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

/* Fraction of dark pixels in a binary PGM (P5, 8-bit) file. */
static double dark_fraction(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    int w, h, maxv;
    cr_assert_eq(fscanf(f, "P5 %d %d %d", &w, &h, &maxv), 3, "%s is not a PGM", path);
    fgetc(f);
    long dark = 0, n = (long)w * h;
    for (long i = 0; i < n; i++) {
        int c = fgetc(f);
        cr_assert(c != EOF, "%s: short", path);
        dark += c < maxv / 2;
    }
    fclose(f);
    return (double)dark / (double)n;
}

/* One generated table and one generated plot through pdflatex, the page
 * rendered by pdftoppm. TeX is optional (Debian texlive-latex-base,
 * texlive-latex-recommended; poppler-utils for pdftoppm): without it the
 * test is skipped and says so. */
Test(report_tex, pdflatex_compiles_a_table_and_a_plot)
{
    const char *need[3] = {"pdflatex", "pdftoppm", "gnuplot"};
    for (int i = 0; i < 3; i++)
        if (!on_path(need[i]))
            cr_skip_test("%s is not installed (apt-get install texlive-latex-base texlive-latex-recommended "
                         "poppler-utils gnuplot-nox): LaTeX/PDF output not compiled", need[i]);
    if (strcmp(sweep_vector_ext(), "pdf") != 0)
        cr_skip_test("this gnuplot has no pdfcairo terminal (plots are written as SVG, which pdflatex cannot include)");
    rl_test_mark();
    char dir[64], p[512], cmd[1024];
    char *md = tmp_report(dir, 0);
    free(md);
    snprintf(p, sizeof p, "%s/sine.gp", dir);
    write_text(p, "set terminal pngcairo noenhanced size 640,400\nset output \"plots/out/sine.png\"\n"
                  "set title \"a generated plot\"\nplot sin(x) title \"sin\" lw 3\n");
    cr_assert_eq(sweep_render_vector(p, dir, true), 0, "vector rendering of %s", p);
    snprintf(p, sizeof p, "%s/doc.tex", dir);
    write_text(p, "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n\\begin{document}\n"
                  "\\begin{table}[h]\\centering\\input{tables/fine-tuning}\\caption{generated}\\end{table}\n"
                  "\\includegraphics[width=\\linewidth]{sine.pdf}\n\\end{document}\n");
    snprintf(cmd, sizeof cmd, "cd %s && pdflatex -interaction=nonstopmode -halt-on-error doc.tex > latex.log 2>&1 && "
                              "pdftoppm -r 40 -gray -singlefile doc.pdf page && mv page.pgm page.pgm.keep", dir);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(p, sizeof p, "%s/latex.log", dir);
        char *log = slurp(p);
        cr_assert_fail("pdflatex or pdftoppm failed (%d):\n%.3000s", rc, log);
    }
    snprintf(p, sizeof p, "%s/page.pgm.keep", dir);
    double f = dark_fraction(p);
    cr_expect(f > 0.002 && f < 0.5, "the rendered page is %.4f dark: blank or black", f);
    static const char *const junk[] = {"doc.aux", "doc.log", "doc.pdf", "doc.tex", "latex.log", "page.pgm.keep",
                                       "sine.gp", "sine.pdf"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, junk[i]);
        unlink(p);
    }
    rm_report(dir);
    rl_test_check_leak();
}
