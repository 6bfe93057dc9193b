/* rl_digits.c -- the UCI optical-recognition digits as sklearn ships them.
 *
 * sklearn.datasets.load_digits() reads data/digits.csv.gz: no header, 1797
 * lines of 65 comma-separated integers -- an 8x8 image (row-major, values
 * 0..16: counts of set pixels in 4x4 blocks of a 32x32 bitmap) then the
 * label 0..9. The file is decompressed into memory (about 270 kB), parsed
 * strictly into integers, checked, then the kept rows are scaled (v / 16)
 * and, if asked, resampled to side x side with rl_image_resize.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/rl_budget.h"
#include "core/rl_tensor.h"
#include "rl_data.h"
#include "rl_data_impl.h"

#define DIGITS_SIDE 8
#define DIGITS_PIXELS 64
#define DIGITS_FIELDS 65
#define DIGITS_MAX_VALUE 16
#define DIGITS_MAX_BYTES (64u << 20) /* refuse a "CSV" that inflates past 64 MiB */

static const char DIGITS_HINT[] =
    "it is installed by the Debian package python3-sklearn (or extract digits.csv.gz from its "
    ".deb with dpkg-deb -x) and can be pointed at with " RL_DIGITS_ENV "=/path/to/digits.csv.gz";

/* Decompress the whole file into a NUL-terminated malloc'ed buffer. */
static rl_status read_all(const char *path, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    RL_TRY(rl_data_check_file(path, "digits CSV", DIGITS_HINT));
    gzFile f = gzopen(path, "rb");
    if (!f) return rl_fail(RL_EIO, "%s: cannot open digits CSV file", path);

    size_t cap = 1u << 16, n = 0;
    char *buf = malloc(cap + 1);
    rl_status st = buf ? RL_OK : rl_fail(RL_ENOMEM, "%s: no memory to read the file", path);
    while (st == RL_OK) {
        if (n == cap) {
            char *nb = cap < DIGITS_MAX_BYTES ? realloc(buf, 2 * cap + 1) : NULL;
            if (!nb) {
                st = cap < DIGITS_MAX_BYTES
                         ? rl_fail(RL_ENOMEM, "%s: no memory to read the file", path)
                         : rl_fail(RL_EFORMAT, "%s: more than %u bytes, not the digits CSV", path,
                                   DIGITS_MAX_BYTES);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        int r = gzread(f, buf + n, (unsigned)(cap - n));
        if (r < 0) {
            int errnum;
            st = rl_fail(RL_EFORMAT, "%s: corrupt gzip data after %zu bytes (zlib: %s)", path, n,
                         rl_data_gzerror(f, path, &errnum));
        } else if (r == 0) {
            int errnum;
            const char *msg = rl_data_gzerror(f, path, &errnum);
            if (errnum != Z_OK)
                st = rl_fail(RL_EFORMAT, "%s: truncated gzip data after %zu bytes (zlib: %s)", path,
                             n, msg);
            break;
        } else {
            n += (size_t)r;
        }
    }
    gzclose(f);
    if (st != RL_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return RL_OK;
}

/* Parse one line [p, end) of exactly 65 non-negative decimal integers into
 * v. lineno names the line in messages. */
static rl_status parse_line(const char *path, int lineno, const char *p, const char *end, int *v)
{
    int nf = 0;
    for (;;) {
        const char *f = p;
        while (p < end && *p != ',') p++;
        /* field [f, p) */
        long val = 0;
        bool ok = p > f && p - f <= 9;
        for (const char *q = f; ok && q < p; q++) {
            if (*q < '0' || *q > '9') ok = false;
            else val = val * 10 + (*q - '0');
        }
        if (!ok)
            return rl_fail(RL_EFORMAT, "%s:%d: field %d (\"%.*s\") is not a non-negative integer",
                           path, lineno, nf + 1, (int)(p - f > 20 ? 20 : p - f), f);
        if (nf < DIGITS_FIELDS) v[nf] = (int)val;
        nf++;
        if (p == end) break;
        p++; /* skip the comma */
    }
    if (nf != DIGITS_FIELDS)
        return rl_fail(RL_EFORMAT, "%s:%d: %d fields, expected %d (64 pixels and a label)", path,
                       lineno, nf, DIGITS_FIELDS);
    for (int j = 0; j < DIGITS_PIXELS; j++)
        if (v[j] > DIGITS_MAX_VALUE)
            return rl_fail(RL_EFORMAT, "%s:%d: pixel %d = %d is outside 0..%d", path, lineno, j + 1,
                           v[j], DIGITS_MAX_VALUE);
    if (v[DIGITS_PIXELS] > 9)
        return rl_fail(RL_EFORMAT, "%s:%d: label %d is outside 0..9", path, lineno, v[DIGITS_PIXELS]);
    return RL_OK;
}

/* Parse every line into rows (malloc'ed, n_rows x 65). The rows array grows
 * with the lines parsed, never sized from a count of newlines: 31 kB of
 * gzip can hold 30 million empty lines, which fail at line 1. */
static rl_status parse_all(const char *path, const char *buf, size_t len, int **rows, int *n_rows)
{
    *rows = NULL;
    *n_rows = 0;
    int *v = NULL;
    size_t cap = 0;
    const char *p = buf, *end = buf + len;
    int n = 0;
    while (p < end) {
        if ((size_t)n == cap) {
            if (cap >= (size_t)INT_MAX / DIGITS_FIELDS / 2) {
                free(v);
                return rl_fail(RL_EFORMAT, "%s: too many lines (more than %zu)", path, cap);
            }
            size_t nc = cap ? 2 * cap : 2048;
            int *nv = realloc(v, nc * DIGITS_FIELDS * sizeof *v);
            if (!nv) {
                free(v);
                return rl_fail(RL_ENOMEM, "%s: no memory for %zu rows", path, nc);
            }
            v = nv;
            cap = nc;
        }
        const char *e = memchr(p, '\n', (size_t)(end - p));
        const char *next = e ? e + 1 : end;
        if (!e) e = end;
        if (e > p && e[-1] == '\r') e--;
        if (e == p) {
            free(v);
            return rl_fail(RL_EFORMAT, "%s:%d: empty line", path, n + 1);
        }
        rl_status st = parse_line(path, n + 1, p, e, v + (size_t)n * DIGITS_FIELDS);
        if (st != RL_OK) {
            free(v);
            return st;
        }
        n++;
        p = next;
    }
    *rows = v;
    *n_rows = n;
    return RL_OK;
}

static rl_status digits_fill(rl_dataset *d, const char *path, const int *rows, int n_rows,
                             const rl_digits_opts *o)
{
    const rl_label_opts *lo = o ? &o->label : NULL;
    int map[10], n_classes;
    RL_TRY(rl_data_label_map(lo, path, map, &n_classes));
    int side = (o && o->side > 0) ? o->side : DIGITS_SIDE;
    int max = (lo && lo->max_count > 0) ? lo->max_count : INT_MAX;

    int n_sel = 0;
    for (int i = 0; i < n_rows && n_sel < max; i++) n_sel += map[rows[i * DIGITS_FIELDS + DIGITS_PIXELS]] >= 0;
    RL_TRY(rl_budget_check(rl_size_mul((size_t)n_sel, rl_size_add(rl_size_mul((size_t)side * (size_t)side, sizeof(float)),
                                                                   sizeof(int))),
                           "%s: %d examples of %dx%d pixels", path, n_sel, side, side));
    RL_TRY(rl_dataset_new(d, n_sel, side * side, n_classes, 0));
    d->height = d->width = side;

    const float div = (lo && lo->unscaled) ? 1.0f : (float)DIGITS_MAX_VALUE;
    float img[DIGITS_PIXELS];
    int k = 0;
    for (int i = 0; i < n_rows && k < n_sel; i++) {
        const int *r = rows + (size_t)i * DIGITS_FIELDS;
        int c = map[r[DIGITS_PIXELS]];
        if (c < 0) continue;
        for (int j = 0; j < DIGITS_PIXELS; j++) img[j] = (float)r[j] / div;
        float *x = d->x + (size_t)k * (size_t)d->dim;
        if (side == DIGITS_SIDE) memcpy(x, img, sizeof img);
        else rl_image_resize(x, side, side, img, DIGITS_SIDE, DIGITS_SIDE, o->resize);
        d->y[k++] = c;
    }
    return RL_OK;
}

rl_status rl_digits_load(rl_dataset *d, const char *path, const rl_digits_opts *opts)
{
    RL_ASSERT(d != NULL, "rl_digits_load: NULL dataset");
    memset(d, 0, sizeof *d);
    path = rl_data_pick(path, RL_DIGITS_ENV, RL_DIGITS_CSV);
    /* without python3-sklearn installed, .ci/install-deps extracts the file
     * from the package into the project's data cache */
    if (strcmp(path, RL_DIGITS_CSV) == 0 && access(path, R_OK) != 0 && access(RL_DIGITS_CACHE, R_OK) == 0)
        path = RL_DIGITS_CACHE;
    int expect = (opts && opts->expect_rows != 0) ? opts->expect_rows : RL_DIGITS_ROWS;
    if (opts && opts->side < 0)
        return rl_fail(RL_EINVAL, "%s: side = %d < 0", path, opts->side);
    else if (opts && opts->side > 4096)
        return rl_fail(RL_EINVAL, "%s: side = %d is too large", path, opts->side);
    else if (opts && opts->resize != RL_RESIZE_NEAREST && opts->resize != RL_RESIZE_BILINEAR)
        return rl_fail(RL_EINVAL, "%s: unknown resize mode %d", path, (int)opts->resize);
    int map[10], n_classes;
    RL_TRY(rl_data_label_map(opts ? &opts->label : NULL, path, map, &n_classes));

    char *buf;
    size_t len;
    RL_TRY(read_all(path, &buf, &len));
    int *rows;
    int n_rows;
    rl_status st = parse_all(path, buf, len, &rows, &n_rows);
    free(buf);
    if (st != RL_OK) return st;

    if (n_rows == 0) st = rl_fail(RL_EFORMAT, "%s: no rows", path);
    else if (expect > 0 && n_rows != expect)
        st = rl_fail(RL_EFORMAT, "%s: %d rows, expected %d", path, n_rows, expect);
    else st = digits_fill(d, path, rows, n_rows, opts);
    free(rows);
    if (st != RL_OK) rl_dataset_free(d);
    return st;
}
