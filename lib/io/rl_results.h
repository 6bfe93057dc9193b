/* rl_results.h -- atomic files, result tables that resume, run manifests.
 *
 * Atomic files: rl_atomic_open writes to "<path>.tmp.<pid>"; rl_atomic_commit
 * flushes, fsyncs and renames it over <path>, so a reader (or a rerun after a
 * crash) sees either the old file or the whole new one, never half of it.
 *
 * Sweeps: an experiment is a grid of independent points. Each point's rows
 * are written atomically to their own file,
 *     <dir>/points/<table>/<hash>.csv        (hash = FNV-1a of the point key)
 * so an interrupted sweep loses nothing that finished, a rerun skips points
 * whose file exists (unless forced), and shards (--shard i/n, or MPI ranks)
 * that share <dir> never write the same file. rl_sweep_finish assembles
 * <dir>/<table>.csv (header + every point's rows, ordered by point key)
 * atomically from whatever points exist, so a partial or sharded run can be
 * tabulated at any time.
 *
 * The point key is a canonical "k=v;k=v" string of the point's whole
 * configuration; its first line in the point file is "# key: <key>" so the
 * table can be rebuilt and audited.
 */
#ifndef RL_RESULTS_H
#define RL_RESULTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/rl_clock.h"
#include "../core/rl_err.h"

/* ---- atomic files ---- */
typedef struct {
    FILE *fp;           /* write here */
    char *path, *tmp;
} rl_atomic_file;

/* Create the parent directories of path as needed, then open the temp file.
 * Failures to create or write an output are RL_EWRITE (exit 3), never
 * RL_EIO, which is kept for inputs that cannot be read (exit 2). */
rl_status rl_atomic_open(rl_atomic_file *af, const char *path);
/* Flush, fsync, close and rename; on any failure the temp file is removed
 * and RL_EWRITE names the path. Always releases af. */
rl_status rl_atomic_commit(rl_atomic_file *af);
/* Close and remove the temp file; the target is untouched. */
void rl_atomic_abort(rl_atomic_file *af);

/* ---- free text in a CSV field ----
 * The tool's CSVs are unquoted: a comma or newline inside a text field
 * becomes a semicolon, so every row keeps its header's fields. */
static inline char rl_csv_plain_char(char c) { return c == ',' || c == '\n' ? ';' : c; }
static inline char *rl_csv_plain(char *s)
{
    for (char *p = s; *p; p++) *p = rl_csv_plain_char(*p);
    return s;
}
/* Write a whole buffer atomically. */
rl_status rl_write_file_atomic(const char *path, const void *data, size_t len);

/* mkdir -p */
rl_status rl_mkdir_p(const char *dir);

/* 64-bit FNV-1a of a string, as 16 hex digits in out[17]. */
void rl_hash_hex(const char *s, char out[17]);

/* ---- sweeps ---- */
typedef struct {
    int index, count;   /* this process runs points p with p % count == index */
} rl_shard;

/* Parse "i/n" (0 <= i < n); RL_EINVAL naming the flag value otherwise. */
rl_status rl_shard_parse(const char *s, rl_shard *out);
static inline bool rl_shard_mine(rl_shard s, long point)
{
    return s.count <= 1 || point % s.count == s.index;
}

typedef struct rl_sweep rl_sweep;

/* A table `table` under `dir` with CSV header line `header` (no newline). */
rl_status rl_sweep_open(rl_sweep **out, const char *dir, const char *table, const char *header);
void rl_sweep_free(rl_sweep *s);
/* Has this point been written already? */
bool rl_sweep_done(const rl_sweep *s, const char *key);
/* The rows a finished point wrote (malloc'd, caller frees); RL_ENOTFOUND
 * when the point is not written yet, RL_EFORMAT when its file holds
 * another key. */
rl_status rl_sweep_get(const rl_sweep *s, const char *key, char **rows);
/* Write the point's rows (CSV lines, each ending in '\n', no header). */
rl_status rl_sweep_put(rl_sweep *s, const char *key, const char *rows);
/* Assemble <dir>/<table>.csv from every point file present; *n_points gets
 * their count (may be NULL). A point file whose rows have another number of
 * fields than the header (written by an older version of the sweep) is left
 * out, not counted, and named on stderr. */
rl_status rl_sweep_finish(rl_sweep *s, long *n_points);
const char *rl_sweep_table_path(const rl_sweep *s);

/* ---- progress ---- */
typedef struct {
    long total, done, skipped;
    double t0, last;
    bool quiet, tty;
    const char *what;
} rl_progress;

void rl_progress_start(rl_progress *p, const char *what, long total, bool quiet);
/* Print "what: done/total (skipped) rate ETA point" to stderr: rewritten in
 * place on a terminal, a line every 5 s otherwise. */
void rl_progress_step(rl_progress *p, const char *point, bool skipped);
void rl_progress_end(rl_progress *p);


/* ---- manifest ---- */
/* The source this build came from: the commit ("0b774ec1d2a3"), with
 * "+changes" when the code differed from it at build time; "unknown" when
 * built outside a git checkout (the Makefile writes it). */
const char *rl_source_id(void);
/* Write <dir>/manifest.json atomically: experiment name, the command line,
 * `config_json` (a JSON object text, may be NULL), seed, the source
 * (rl_source_id), library versions (OpenBLAS config and core, threads,
 * compiler), CPU model, time. */
rl_status rl_manifest_write(const char *dir, const char *experiment, int argc, char **argv,
                            const char *config_json, uint64_t seed);
/* The member `name` of <dir>/manifest.json's "config" object as canonical
 * JSON text (compact, keys sorted; malloc'd): RL_ENOTFOUND when the file or
 * the member is missing, RL_EFORMAT when the file is not JSON. */
rl_status rl_manifest_config_member(const char *dir, const char *name, char **canonical);
/* JSON text in the same canonical form (RL_EINVAL if not JSON). */
rl_status rl_json_canonical(const char *json, char **canonical);

#endif
