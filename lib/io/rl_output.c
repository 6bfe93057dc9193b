/* rl_output.c -- outputs never over inputs; directories written as a unit
 * (see the header). Linux: renameat2(RENAME_EXCHANGE) swaps a replaced
 * directory in one step; where the file system refuses it, the old
 * directory is first renamed aside (a reader may then see no directory for
 * an instant, never a mixed one). */
#define _GNU_SOURCE /* renameat2, RENAME_EXCHANGE */
#include "rl_output.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rl_results.h"

/* ---- outputs never over inputs ---- */

rl_status rl_output_check(const char *out, const char *const *inputs, size_t n)
{
    if (!out || !*out) return rl_fail(RL_EINVAL, "empty output path");
    struct stat so;
    bool have_out = stat(out, &so) == 0;
    if (have_out && S_ISDIR(so.st_mode)) return rl_fail(RL_EINVAL, "%s: the output is a directory", out);
    for (size_t i = 0; i < n; i++) {
        const char *in = inputs[i];
        if (!in) continue;
        struct stat si;
        if (strcmp(out, in) == 0 ||
            (have_out && stat(in, &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino))
            return rl_fail(RL_EINVAL, "refusing to overwrite %s: it is the input %s (the same file%s)", out, in,
                           strcmp(out, in) == 0 ? "" : ": a hard or symbolic link to it");
    }
    return RL_OK;
}

/* Is the real path of `in` inside the directory whose real path is dir? */
static bool inside(const char *dir_real, const char *in)
{
    char *r = realpath(in, NULL);
    if (!r) return false;
    size_t n = strlen(dir_real);
    bool yes = strncmp(r, dir_real, n) == 0 && (r[n] == '/' || r[n] == '\0' || strcmp(dir_real, "/") == 0);
    free(r);
    return yes;
}

rl_status rl_output_dir_check(const char *out, const char *const *inputs, size_t n)
{
    if (!out || !*out) return rl_fail(RL_EINVAL, "empty output directory");
    struct stat so;
    if (stat(out, &so) != 0) return RL_OK; /* a new directory holds no input */
    char *real = realpath(out, NULL);
    rl_status st = RL_OK;
    for (size_t i = 0; i < n && st == RL_OK; i++) {
        const char *in = inputs[i];
        struct stat si;
        if (!in) continue;
        if (stat(in, &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
            st = rl_fail(RL_EINVAL, "refusing to write %s: it is the input %s", out, in);
        else if (real && inside(real, in))
            st = rl_fail(RL_EINVAL, "refusing to replace %s: the input %s is inside it", out, in);
    }
    free(real);
    return st;
}

/* ---- removing a directory tree (no symbolic link is followed) ---- */

static int rm_tree_at(int dfd, const char *name, int depth)
{
    struct stat sb;
    if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(sb.st_mode)) return unlinkat(dfd, name, 0);
    if (depth > 64) return -1;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (fd < 0) return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && rm_tree_at(fd, e->d_name, depth + 1) != 0)
            rc = -1;
    closedir(d);
    if (unlinkat(dfd, name, AT_REMOVEDIR) != 0) rc = -1;
    return rc;
}

static int rm_tree(const char *path) { return rm_tree_at(AT_FDCWD, path, 0); }

static void fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd); /* best effort: some file systems refuse fsync on directories */
        close(fd);
    }
}

/* ---- atomic directories ---- */

static void ad_release(rl_atomic_dir *ad)
{
    free(ad->path);
    free(ad->tmp);
    memset(ad, 0, sizeof *ad);
}

/* The parent directory of path ("." if none), malloc'd. */
static char *parent_of(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    while (n > 0 && path[n - 1] != '/') n--;
    while (n > 1 && path[n - 1] == '/') n--;
    if (n == 0) return strdup(".");
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, path, n);
        p[n] = '\0';
    }
    return p;
}

/* The last component of path (without trailing slashes), malloc'd. */
static char *base_of(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/') b--;
    char *p = malloc(n - b + 1);
    if (p) {
        memcpy(p, path + b, n - b);
        p[n - b] = '\0';
    }
    return p;
}

static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return false;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)) != NULL) empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

rl_status rl_atomic_dir_open(rl_atomic_dir *ad, const char *path, bool replace)
{
    memset(ad, 0, sizeof *ad);
    if (!path || !*path) return rl_fail(RL_EINVAL, "empty output directory");
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (S_ISLNK(sb.st_mode))
            return rl_fail(RL_EINVAL, "%s is a symbolic link: give the directory itself", path);
        else if (!S_ISDIR(sb.st_mode))
            return rl_fail(RL_EINVAL, "%s exists and is not a directory", path);
        else if (!replace && !dir_empty(path))
            return rl_fail(RL_EINVAL, "%s exists and is not empty: refusing to write into it (--force replaces it "
                           "whole)", path);
    }
    char *parent = parent_of(path), *base = base_of(path);
    rl_status st = RL_OK;
    if (!parent || !base) st = rl_fail(RL_ENOMEM, "%s: no memory", path);
    else if (strcmp(base, "/") == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        st = rl_fail(RL_EINVAL, "%s: name a directory to write (not '%s')", path, base);
    else if ((st = rl_mkdir_p(parent)) == RL_OK) {
        size_t n = strlen(parent) + strlen(base) + 16;
        ad->path = strdup(path);
        ad->tmp = malloc(n);
        ad->replace = replace;
        if (!ad->path || !ad->tmp) st = rl_fail(RL_ENOMEM, "%s: no memory", path);
        else {
            snprintf(ad->tmp, n, "%s/.%s.tmp.XXXXXX", parent, base);
            if (!mkdtemp(ad->tmp)) {
                st = rl_fail(RL_EWRITE, "%s: cannot create a temporary directory beside it: %s", path, strerror(errno));
            } else { /* mkdtemp makes it 0700; the directory it becomes gets mkdir's usual mode */
                mode_t um = umask(0);
                umask(um);
                chmod(ad->tmp, 0777 & ~um);
            }
        }
    }
    free(parent);
    free(base);
    if (st != RL_OK) ad_release(ad);
    return st;
}

char *rl_atomic_dir_file(const rl_atomic_dir *ad, const char *name)
{
    size_t n = strlen(ad->tmp) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", ad->tmp, name);
    return p;
}

void rl_atomic_dir_abort(rl_atomic_dir *ad)
{
    if (ad->tmp) rm_tree(ad->tmp);
    ad_release(ad);
}

rl_status rl_atomic_dir_commit(rl_atomic_dir *ad)
{
    fsync_dir(ad->tmp);
    rl_status st = RL_OK;
    if (rename(ad->tmp, ad->path) == 0) {
        /* the target was missing or empty: done */
    } else if (errno != ENOTEMPTY && errno != EEXIST) {
        st = rl_fail(RL_EWRITE, "%s: cannot move the new directory into place: %s", ad->path, strerror(errno));
    } else if (!ad->replace) {
        st = rl_fail(RL_EINVAL, "%s is no longer empty (written by another process meanwhile?): refusing to write "
                     "into it (--force replaces it whole)", ad->path);
    } else {
        /* swap the new directory in; the old one ends at ad->tmp */
        bool swapped = false;
#ifdef RENAME_EXCHANGE
        swapped = renameat2(AT_FDCWD, ad->tmp, AT_FDCWD, ad->path, RENAME_EXCHANGE) == 0;
#endif
        if (!swapped) {
            size_t n = strlen(ad->tmp) + 8;
            char *old = malloc(n);
            if (!old) st = rl_fail(RL_ENOMEM, "%s: no memory", ad->path);
            else {
                snprintf(old, n, "%s.old", ad->tmp);
                if (rename(ad->path, old) != 0)
                    st = rl_fail(RL_EWRITE, "%s: cannot move the old directory aside: %s", ad->path, strerror(errno));
                else if (rename(ad->tmp, ad->path) != 0) {
                    st = rl_fail(RL_EWRITE, "%s: cannot move the new directory into place: %s", ad->path,
                                 strerror(errno));
                    rename(old, ad->path); /* put the old one back */
                } else {
                    rm_tree(old);
                }
                free(old);
            }
        }
    }
    if (st == RL_OK) {
        char *parent = parent_of(ad->path);
        if (parent) fsync_dir(parent);
        free(parent);
    }
    rl_atomic_dir_abort(ad); /* removes the temp (after a swap: the old directory) */
    return st;
}
