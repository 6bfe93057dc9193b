/* report.h -- what the sections of `randlora report` share: a growing
 * text buffer, CSV look-ups by column name, claim rows and plot links.
 * report.c assembles REPORT.md; each report_<area>.c writes its sections
 * from the CSVs of results/<area>/. */
#ifndef RL_REPORT_H
#define RL_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/rl_err.h"
#include "sweep.h"

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;

/* Append printf-style (grows the buffer; out of memory aborts via RL_ASSERT). */
void rp_put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool rp_exists(const char *path);
/* Open DIR/rel as a table; false (and t zeroed) if absent or unreadable. */
bool rp_table(const char *dir, const char *rel, csv_table *t);
/* The same for DIR/<exp>/<file>; the relative path goes into rel[n]. */
bool rp_exp_table(const char *dir, const char *exp, const char *file, csv_table *t, char *rel, size_t n);
/* Field of row r in column col ("" when either is absent), and as a number
 * (parsed strictly: NaN when the field is empty or not a number). */
const char *rp_cell(const csv_table *t, int r, const char *col);
double rp_num(const csv_table *t, int r, const char *col);
/* First row whose columns equal the given values (NULL-terminated pairs
 * column, value), or -1. */
int rp_find(const csv_table *t, ...);
/* One row of a claims table: | claim | reference | measured | **verdict** | rule | */
void rp_claim_row(sbuf *b, const char *claim, const char *ref, const char *measured, const char *verdict,
                  const char *rule);
/* A link to plots/out/<name>.png with its caption, if the PNG exists. */
void rp_plot(sbuf *b, const char *name, const char *caption);

/* Reference figures: experiments/reference/paper.csv (paper_ref.h), loaded
 * by report_write for the length of one report.
 *   rp_ref(buf, len, "id1 id2")  the reference cell citing those rows, e.g.
 *       "RandLoRA r=32 (alpha 640): 9,289,728 params; LoRA r=32: 9,175,040 params
 *        -- PEFT MetaMathQA results [paper.csv: peft_mmqa_randlora_r32_params, ...]"
 *   rp_ref_num("id")             a row's figure as a number (NaN if absent or text)
 *   rp_ref_or_text(buf, len, f)  a claims.csv `reference` field: the cell of its
 *       ids when every word of f is an id of paper.csv, else f as written
 * An unknown id puts "MISSING reference '<id>'" in the cell and makes
 * report_write fail naming it (REPORT.md is then not written). The report
 * ends with a "Reference figures" table: every row cited, with its claim,
 * source, where, URL and note. */
void rp_ref(char *buf, size_t len, const char *ids);
double rp_ref_num(const char *id);
void rp_ref_or_text(char *buf, size_t len, const char *field);

/* Write DIR/REPORT.md (and the LaTeX tables DIR/tables/<section>.tex), rendering the plots first when
 * `render`. */
rl_status report_write(const char *dir, bool render, bool quiet);

/* Sections, each reading its own CSVs under dir. */
void report_machine(sbuf *b, const char *dir);   /* report.c */
void report_claims(sbuf *b, const char *dir);    /* report_claims.c */
void report_parity(sbuf *b, const char *dir);    /* report_parity.c */
void report_rank(sbuf *b, const char *dir);      /* report_claims.c */
void report_cost(sbuf *b, const char *dir);      /* report_perf.c */
void report_bench(sbuf *b, const char *dir);     /* report_perf.c */
void report_finetune(sbuf *b, const char *dir);  /* report_finetune.c */
void report_similarity(sbuf *b, const char *dir); /* report_finetune.c */
void report_vit(sbuf *b, const char *dir);        /* report_finetune.c */
void report_teacher(sbuf *b, const char *dir);    /* report_finetune.c */

#endif
