/* rl_output.h -- what every command that writes obeys: an output never
 * lands on one of its inputs, and a directory is written as a unit.
 *
 * Inputs: before writing a file, a command lists the files (and
 * directories) it reads and asks rl_output_check. The output is refused
 * (RL_EINVAL, exit 2) when it is the same path, the same file (same device
 * and inode: a hard link, or a symbolic link to an input), or an existing
 * directory. A directory that will be replaced whole is refused when it is
 * an input or contains one (rl_output_dir_check).
 *
 * Directories as a unit (rl_atomic_dir): the files are written into a fresh
 * temporary sibling "<parent>/.<name>.tmp.XXXXXX" (mkdtemp), which is
 * renamed onto <path> at commit. rename(2) onto a missing or empty
 * directory is atomic and fails on a non-empty one, so
 *   - a reader sees no directory, or the whole new one, never a mix;
 *   - a failure (full disk, a kill) leaves <path> as it was and the temp
 *     directory is removed (a kill -9 may leave the hidden temp behind);
 *   - of two concurrent writers into one new directory, one wins whole and
 *     the other fails (RL_EINVAL: the target is no longer empty);
 *   - a non-empty <path> is refused unless `replace` (--force): then the new
 *     directory is swapped in with renameat2(RENAME_EXCHANGE) and the old one
 *     removed, so nothing of the old directory (no stale file) survives.
 * Failures to create or write are RL_EWRITE (exit 3).
 */
#ifndef RL_OUTPUT_H
#define RL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/rl_err.h"

/* RL_EINVAL naming both paths if writing the file `out` would write over
 * one of inputs[0..n) (NULL entries are skipped), or if out is a directory. */
rl_status rl_output_check(const char *out, const char *const *inputs, size_t n);
/* RL_EINVAL if replacing the directory `out` whole would remove or write
 * over one of inputs[0..n): out is an input (same inode) or an input lies
 * inside out (by its real path). */
rl_status rl_output_dir_check(const char *out, const char *const *inputs, size_t n);

typedef struct {
    char *path;         /* the target directory */
    char *tmp;          /* where the files go until commit */
    bool replace;
} rl_atomic_dir;

/* Refuse a <path> that exists and is not a directory, is a symbolic link,
 * or is a non-empty directory (unless replace); create the parents and the
 * temp directory. On success write the files into ad->tmp. */
rl_status rl_atomic_dir_open(rl_atomic_dir *ad, const char *path, bool replace);
/* fsync the temp directory, move it onto <path> (see above) and fsync the
 * parent. On failure the temp is removed and <path> is as it was. Always
 * releases ad. */
rl_status rl_atomic_dir_commit(rl_atomic_dir *ad);
/* Remove the temp directory and everything in it; <path> is untouched. */
void rl_atomic_dir_abort(rl_atomic_dir *ad);
/* "<ad->tmp>/<name>" into a new malloc'd string (NULL on no memory). */
char *rl_atomic_dir_file(const rl_atomic_dir *ad, const char *name);

#endif
