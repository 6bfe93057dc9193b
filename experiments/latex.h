/* latex.h -- the report's tables as LaTeX, for a paper.
 *
 * `randlora report` builds REPORT.md; latex_tables_write converts every
 * Markdown table in it into DIR/<section>.tex (the slug of the "## " heading
 * above it; "-2", "-3" for further tables of a section), so each report
 * section keeps writing Markdown only and the LaTeX follows in one place.
 * Each file is a plain `tabular` with booktabs rules (\toprule, \midrule,
 * \bottomrule): it compiles in a stock TeX Live `article` with
 * \usepackage{booktabs} and nothing else (no siunitx, no array), and is
 * meant to be \input inside the user's own table environment.
 *
 * Cell text: "a ± b" between numbers becomes $a \pm b$ (numbers with their
 * intervals stay together); **bold** becomes \textbf, `code` \texttt,
 * *emphasis* \emph; LaTeX's special characters are escaped (\ { } $ & # % _
 * ~ ^ < > |, and straight double quotes become `` and ''); the Unicode
 * symbols the report uses (Δ σ λ γ Γ ≥ ≤ ≈ · × ± ⌈ ⌉ √ ² → … — – ...) become
 * their LaTeX commands, and any other non-ASCII character becomes [U+XXXX]
 * so the file always compiles. Columns whose cells are all numbers are
 * right-aligned; long text columns get p{} widths that share the line.
 *
 * Files are written atomically; a generated .tex in DIR whose section no
 * longer has a table is removed (only files whose first line is this
 * generator's comment are ever touched).
 */
#ifndef RL_LATEX_H
#define RL_LATEX_H

#include <stddef.h>

#include "core/rl_err.h"

/* Convert inline Markdown text s[0..n) (one cell) to LaTeX, appended to
 * out (NUL-terminated, truncated to out_len). */
void latex_cell(const char *s, size_t n, char *out, size_t out_len);

/* Convert one Markdown table (its lines, header first, then the |---|
 * line, then rows) to a tabular; *out is malloc'd (caller frees). */
rl_status latex_table(const char *md, size_t len, char **out);

/* Write every table of `markdown` into dir (created if needed); *n_written
 * gets the number of files (may be NULL). */
rl_status latex_tables_write(const char *markdown, const char *dir, int *n_written);

#endif
