/* rl_data_impl.h -- helpers shared by the dataset loaders (not public API).
 *
 * Included only by the loaders in datasets/ (rl_data.c, rl_idx.c, ...).
 */
#ifndef RL_DATA_IMPL_H
#define RL_DATA_IMPL_H

#include <string.h>
#include <zlib.h>

#include "rl_data.h"

/* Check that `path` names a readable regular file before zlib opens it, so
 * that a missing file is RL_ENOTFOUND ("<path>: no such file; <hint>") and
 * anything else (a directory, no permission) RL_EIO with strerror. `what`
 * says what the file is ("Fashion-MNIST images"). */
rl_status rl_data_check_file(const char *path, const char *what, const char *hint);

/* Validate label options (who = path named in messages) and build
 * map[label] = new label, or -1 for a dropped class; *n_classes = number of
 * kept classes. opts may be NULL (all ten classes, identity map). */
rl_status rl_data_label_map(const rl_label_opts *opts, const char *who, int map[10],
                            int *n_classes);

/* The directory or file to use: arg if not NULL, else $env if set and not
 * empty, else fallback. */
const char *rl_data_pick(const char *arg, const char *env, const char *fallback);

/* zlib's last message for f without the "<path>: " prefix gzerror puts in
 * front (our messages name the file already); *errnum = zlib's code. */
static inline const char *rl_data_gzerror(gzFile f, const char *path, int *errnum)
{
    const char *msg = gzerror(f, errnum);
    size_t n = strlen(path);
    if (strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
    return msg;
}

#endif
