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

/* Sections, each reading its own CSVs under dir. */
void report_machine(sbuf *b, const char *dir);   /* report.c */
void report_claims(sbuf *b, const char *dir);    /* report_claims.c */
void report_parity(sbuf *b, const char *dir);    /* report_parity.c */
void report_rank(sbuf *b, const char *dir);      /* report_claims.c */
void report_cost(sbuf *b, const char *dir);      /* report_perf.c */
void report_bench(sbuf *b, const char *dir);     /* report_perf.c */
void report_finetune(sbuf *b, const char *dir);  /* report_claims.c */

#endif
