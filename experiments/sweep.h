/* sweep.h -- what every `randlora sweep <name>` shares: the common flags,
 * CSV tables read back for summaries, and gnuplot rendering.
 *
 * Common flags: --results DIR (default results/<name>), --force (recompute
 * points already written), --shard i/n (run every n-th point), --quiet (no
 * progress on stderr), --full (the long grid), --limit N (the first N points
 * only), --max-memory BYTES (the memory budget, lib/core/rl_budget.h). Every
 * value goes through flags.h. Unknown flags are left to the caller
 * (sweep_parse_common returns 0).
 */
#ifndef RL_SWEEP_H
#define RL_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "io/rl_results.h"

typedef struct {
    char dir[512];
    bool force, quiet, full;
    rl_shard shard;
    long limit;     /* --limit N: only the first N grid points (0: all) -- smoke runs */
} sweep_opts;

/* Is grid point i this process's to run (shard / MPI rank, and --limit)? */
bool sweep_mine(const sweep_opts *o, long i);

/* MPI (make MPI=1): every rank shares the results directory and, unless
 * --shard says otherwise, runs the points i with i % size == rank; then
 * sweep_barrier() and only the root (rank 0) assembles the tables, writes
 * the manifest and renders the plots. Without MPI: one process, the root. */
void sweep_mpi_init(int *argc, char ***argv);
void sweep_mpi_finalize(void);
bool sweep_is_root(void);
int sweep_mpi_size(void); /* 1 without MPI */
void sweep_barrier(void);

void sweep_opts_init(sweep_opts *o, const char *name);
/* Consume argv[*i] (and its value) if it is a common flag: returns 1 if
 * consumed, 0 if not a common flag, -1 on a bad value (message printed). */
int sweep_parse_common(sweep_opts *o, int argc, char **argv, int *i, const char *cmd);
void sweep_usage_common(FILE *out);

/* The exit code after a failed status st, given the code rc so far: the
 * larger of rc and cmd_exit_code(st) (commands.h: 2 bad input, 3 out of
 * memory or an output that could not be written). A plot gnuplot could not
 * write counts as RL_EWRITE. */
int sweep_rc(int rc, rl_status st);

/* The whole argument loop of a sweep: -h/--help prints usage and returns 0
 * (the caller exits 0); the common flags; then `extra` (may be NULL) for the
 * sweep's own flags, which returns 1 if it consumed argv[*i] (and its
 * value), 0 if it does not know it, -1 on a bad value (message printed).
 * Returns 1 to go on, -1 on bad usage (message and usage printed). */
int sweep_parse_args(sweep_opts *o, int argc, char **argv, const char *cmd, void (*usage)(FILE *),
                     int (*extra)(void *ctx, int argc, char **argv, int *i), void *ctx);

/* A CSV table read whole: header names and rows of fields (strings). */
typedef struct {
    int ncol, nrow;
    char **head;     /* ncol names */
    char ***rows;    /* nrow x ncol fields */
} csv_table;

rl_status csv_read(const char *path, csv_table *t);
void csv_free(csv_table *t);
/* Column index of `name`, or -1. */
int csv_col(const csv_table *t, const char *name);

/* Run gnuplot on each script (paths relative to the project root) if
 * gnuplot is on PATH; output lands in plots/out/: the PNG the script names,
 * then the same figure as vector graphics beside it (sweep_render_vector).
 * Returns the number of renderings that failed (0 when gnuplot is absent:
 * it says so on stderr). */
int sweep_render(const char *const *scripts, int n, bool quiet);

/* Vector graphics of a plot script written for `set terminal pngcairo ...
 * size W,H` and `set output ".../NAME.png"`: the script is rewritten to
 * `set terminal pdfcairo <its options> fontscale 0.75 linewidth 1.5 size
 * W/96in,H/96in` (close to the PNG's proportions of text, lines and page)
 * and `set output "DIR/NAME.pdf"`, or to `svg
 * size W,H` and NAME.svg when this gnuplot has no pdfcairo (`vector_ext`
 * "pdf" or "svg"), and fed to gnuplot on its standard input; nothing else
 * changes, so the PNG stays as it was.
 *
 * sweep_vector_script does the rewrite: a malloc'd script (NULL with a
 * message when the text has no pngcairo terminal line or not exactly one
 * output line) writing to out_dir/out_file (out_file NULL: NAME.<ext>);
 * name gets NAME. sweep_render_vector renders `script` into
 * out_dir (written to a temporary name, renamed when gnuplot succeeds) and
 * returns 0, or 1 after saying why on stderr. */
char *sweep_vector_script(const char *text, const char *vector_ext, const char *out_dir, const char *out_file,
                          char *name, size_t name_len);
const char *sweep_vector_ext(void);   /* "pdf" if gnuplot has pdfcairo, else "svg" (asked once) */
int sweep_render_vector(const char *script, const char *out_dir, bool quiet);

#endif
