/* paper_ref.h -- the reference figures of experiments/reference/paper.csv:
 * what the paper and PEFT report, kept in the repository as data so that a
 * report stands on the repository alone. Nothing in that file is measured
 * here; `randlora report` puts its rows beside what a run measured.
 *
 * The file is RFC 4180 CSV ('#' lines are comments) with the header
 *     id,label,figure,unit,claim,source,where,url,note
 *   id      stable key, [a-z0-9_] ("peft_mmqa_randlora_r32_params")
 *   label   short name of the figure in a table cell ("RandLoRA r=32 (alpha 640)"),
 *           empty for a quote or a statement
 *   figure  the number as published ("9289728", "85.6", "5e5"), or the
 *           quoted text when unit is "quote" / "text"
 *   unit    "params", "%", "GB", "s", "quote", "text", ...
 *   claim   one sentence: what the figure is
 *   source, where, url   who reports it, the table / figure / file, a link
 *   note    how exact (exact as printed; read off a plot with its error)
 * Loading checks the header, the field count of every row, that ids are
 * unique and well-formed, and that id, figure, unit, claim, source and where
 * are not empty; errors name the file and the line.
 *
 * Look-ups mark a row used, so a report can list exactly the rows it cited
 * (paper_refs_at + ->used).
 */
#ifndef RL_PAPER_REF_H
#define RL_PAPER_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/rl_err.h"

/* Where `randlora report` reads it, relative to the repository root. */
#define PAPER_REF_CSV "experiments/reference/paper.csv"

typedef struct {
    const char *id, *label, *figure, *unit, *claim, *source, *where, *url, *note;
    int line;        /* line number in the file */
    bool used;       /* looked up since loading */
} paper_ref;

typedef struct paper_refs paper_refs;

rl_status paper_refs_load(paper_refs **out, const char *path);
void paper_refs_free(paper_refs *t);
const char *paper_refs_path(const paper_refs *t);
int paper_refs_count(const paper_refs *t);
const paper_ref *paper_refs_at(const paper_refs *t, int i);

/* The row `id` (marked used), or NULL. */
const paper_ref *paper_ref_find(paper_refs *t, const char *id);
/* Its figure as a number, or NaN when the id is absent or the figure is
 * not a number. */
double paper_ref_value(paper_refs *t, const char *id);
/* A table cell citing the space-separated ids:
 *     "RandLoRA r=32 (alpha 640): 9,289,728 params; LoRA r=32: 9,175,040 params
 *      -- PEFT MetaMathQA results [paper.csv: peft_mmqa_randlora_r32_params, ...]"
 * (label: figure unit for numbers, integers with thousands separators; the
 * quoted figure for quotes and statements; each distinct `where` once; '|'
 * escaped for Markdown). RL_ENOTFOUND naming the first unknown id, and the
 * cell then says "MISSING reference '<id>'". */
rl_status paper_ref_cell(paper_refs *t, const char *ids, char *buf, size_t len);

#endif
