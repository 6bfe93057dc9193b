/* rl_idx.c -- Fashion-MNIST from its IDX files (LeCun's MNIST format).
 *
 * IDX layout (all integers big-endian 32-bit):
 *   images: magic 0x00000803 (0x08 = unsigned byte, 3 dims), count, rows,
 *           cols, then count · rows · cols pixel bytes, row-major per image;
 *   labels: magic 0x00000801 (unsigned byte, 1 dim), count, then count
 *           label bytes.
 * Files are read through zlib's gzread, which also reads uncompressed files
 * as they are. The labels are read and checked first (they are small; the
 * buffer grows as they arrive, never sized from the header's count alone),
 * the selected examples counted, the dataset checked against the memory
 * budget and allocated once, and the images are then streamed in chunks,
 * so memory holds only the kept examples.
 *
 * Pixel scaling (default): x = byte / 255, exactly as torchvision's
 * ToTensor(), so x lies in [0, 1].
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/rl_budget.h"
#include "core/rl_tensor.h"
#include "rl_data.h"
#include "rl_data_impl.h"

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_SIDE 28
#define IDX_CHUNK 1024 /* images per gzread while streaming */

static const char FMNIST_HINT[] =
    "install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), "
    "or point " RL_FMNIST_ENV " at a directory holding the IDX files";

/* ---- reading ---- */

/* Read exactly len bytes or fail: a zlib error or a short read is
 * RL_EFORMAT naming the file and what was being read. */
static rl_status gz_read_exact(gzFile f, void *buf, size_t len, const char *path, const char *what)
{
    unsigned char *p = buf;
    size_t got = 0;
    while (got < len) {
        size_t want = len - got;
        if (want > (size_t)INT_MAX) want = (size_t)INT_MAX;
        int r = gzread(f, p + got, (unsigned)want);
        if (r < 0) {
            int errnum;
            const char *msg = rl_data_gzerror(f, path, &errnum);
            return rl_fail(RL_EFORMAT, "%s: corrupt data while reading %s (zlib: %s)", path, what,
                           msg);
        }
        if (r == 0) {
            int errnum;
            const char *msg = rl_data_gzerror(f, path, &errnum);
            return rl_fail(RL_EFORMAT, "%s: truncated: %s ends after %zu of %zu bytes%s%s%s", path,
                           what, got, len, errnum != Z_OK ? " (zlib: " : "",
                           errnum != Z_OK ? msg : "", errnum != Z_OK ? ")" : "");
        }
        got += (size_t)r;
    }
    return RL_OK;
}

/* Read `total` bytes into a buffer that grows as they arrive (chunks of
 * IDX_GROW), so that a header claiming 2^31 labels in a 1 kB file costs a
 * truncation error, not a 2 GiB reservation. *out is malloc'd (total + 1
 * bytes at the end), NULL on failure. */
#define IDX_GROW ((size_t)1 << 20)
static rl_status gz_read_grow(gzFile f, unsigned char **out, size_t total, const char *path, const char *what)
{
    *out = NULL;
    unsigned char *buf = NULL;
    size_t got = 0, cap = 0;
    while (got < total || !buf) {
        size_t want = total - got < IDX_GROW ? total - got : IDX_GROW;
        if (got + want + 1 > cap) {
            size_t nc = cap ? 2 * cap : IDX_GROW;
            if (nc > total + 1) nc = total + 1;
            if (nc < got + want + 1) nc = got + want + 1;
            unsigned char *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                return rl_fail(RL_ENOMEM, "%s: no memory for %s after %zu bytes", path, what, got);
            }
            buf = nb;
            cap = nc;
        }
        if (want == 0) break;
        int r = gzread(f, buf + got, (unsigned)want);
        if (r <= 0) {
            int errnum;
            const char *msg = rl_data_gzerror(f, path, &errnum);
            rl_status st = r < 0 ? rl_fail(RL_EFORMAT, "%s: corrupt data while reading %s (zlib: %s)", path, what, msg)
                                 : rl_fail(RL_EFORMAT, "%s: truncated: %s end after %zu of the %zu bytes the header "
                                           "announces%s%s%s", path, what, got, total, errnum != Z_OK ? " (zlib: " : "",
                                           errnum != Z_OK ? msg : "", errnum != Z_OK ? ")" : "");
            free(buf);
            return st;
        }
        got += (size_t)r;
    }
    *out = buf;
    return RL_OK;
}

/* RL_EFORMAT if any byte follows the expected data. */
static rl_status gz_expect_end(gzFile f, const char *path)
{
    unsigned char extra;
    int r = gzread(f, &extra, 1);
    if (r < 0) {
        int errnum;
        return rl_fail(RL_EFORMAT, "%s: corrupt gzip stream, found at the end of the data (zlib: %s)", path,
                       rl_data_gzerror(f, path, &errnum));
    }
    if (r > 0) return rl_fail(RL_EFORMAT, "%s: unexpected bytes after the last example", path);
    return RL_OK;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static rl_status gz_open(gzFile *f, const char *path, const char *what, const char *hint)
{
    *f = NULL;
    RL_TRY(rl_data_check_file(path, what, hint));
    *f = gzopen(path, "rb");
    if (!*f) return rl_fail(RL_EIO, "%s: cannot open %s file", path, what);
    gzbuffer(*f, 1u << 17);
    return RL_OK;
}

/* ---- the loader ---- */

typedef struct {
    gzFile fi, fl;
    unsigned char *labels; /* (count) raw labels, malloc */
    unsigned char *chunk;  /* IDX_CHUNK images, malloc   */
} idx_state;

static void idx_state_close(idx_state *s)
{
    if (s->fi) gzclose(s->fi);
    if (s->fl) gzclose(s->fl);
    free(s->labels);
    free(s->chunk);
}

/* Read and check both headers and all labels; *count = examples. */
static rl_status idx_read_headers(idx_state *s, const char *ip, const char *lp, uint32_t *count)
{
    unsigned char h[16];
    RL_TRY(gz_read_exact(s->fi, h, 16, ip, "the IDX images header"));
    uint32_t magic = be32(h), n_img = be32(h + 4), rows = be32(h + 8), cols = be32(h + 12);
    if (magic != IDX_MAGIC_IMAGES)
        return rl_fail(RL_EFORMAT,
                       "%s: bad magic 0x%08x, expected 0x%08x (IDX unsigned-byte images, 3 dims)",
                       ip, magic, IDX_MAGIC_IMAGES);
    if (rows != IDX_SIDE || cols != IDX_SIDE)
        return rl_fail(RL_EFORMAT, "%s: images are %ux%u, expected %dx%d", ip, rows, cols, IDX_SIDE,
                       IDX_SIDE);

    RL_TRY(gz_read_exact(s->fl, h, 8, lp, "the IDX labels header"));
    magic = be32(h);
    uint32_t n_lab = be32(h + 4);
    if (magic != IDX_MAGIC_LABELS)
        return rl_fail(RL_EFORMAT,
                       "%s: bad magic 0x%08x, expected 0x%08x (IDX unsigned-byte labels, 1 dim)", lp,
                       magic, IDX_MAGIC_LABELS);
    if (n_img != n_lab)
        return rl_fail(RL_EFORMAT, "%s holds %u images but %s holds %u labels", ip, n_img, lp, n_lab);
    if (n_img > (uint32_t)INT_MAX)
        return rl_fail(RL_EFORMAT, "%s: %u images is more than this loader handles", ip, n_img);

    RL_TRY(gz_read_grow(s->fl, &s->labels, n_lab, lp, "the labels"));
    RL_TRY(gz_expect_end(s->fl, lp));
    for (uint32_t i = 0; i < n_lab; i++)
        if (s->labels[i] > 9)
            return rl_fail(RL_EFORMAT, "%s: label %u of example %u is outside 0..9", lp,
                           s->labels[i], i);
    *count = n_img;
    return RL_OK;
}

static rl_status idx_load(rl_dataset *d, idx_state *s, const char *ip, const char *lp,
                          const rl_label_opts *opts, const char *hint)
{
    int map[10], n_classes;
    RL_TRY(rl_data_label_map(opts, ip, map, &n_classes));
    RL_TRY(gz_open(&s->fi, ip, "IDX images", hint));
    RL_TRY(gz_open(&s->fl, lp, "IDX labels", hint));
    uint32_t count = 0;
    RL_TRY(idx_read_headers(s, ip, lp, &count));

    /* the kept examples: the first max_count (if set) whose class is kept */
    int max = (opts && opts->max_count > 0) ? opts->max_count : INT_MAX;
    int n_sel = 0;
    uint32_t last = 0; /* one past the last image needed */
    for (uint32_t i = 0; i < count && n_sel < max; i++)
        if (map[s->labels[i]] >= 0) {
            n_sel++;
            last = i + 1;
        }
    if (max == INT_MAX) last = count; /* no max_count: read (and check) every image */

    /* n_sel is backed by labels that were read; its images are checked
     * against the budget before the dataset is allocated */
    RL_TRY(rl_budget_check(rl_size_mul((size_t)n_sel, IDX_SIDE * IDX_SIDE * sizeof(float) + sizeof(int)),
                           "%s: %d examples of %dx%d pixels (the count in %s)", ip, n_sel, IDX_SIDE, IDX_SIDE, lp));
    RL_TRY(rl_dataset_new(d, n_sel, IDX_SIDE * IDX_SIDE, n_classes, 0));
    d->height = d->width = IDX_SIDE;

    const size_t px = (size_t)IDX_SIDE * IDX_SIDE;
    s->chunk = malloc(IDX_CHUNK * px);
    if (!s->chunk) return rl_fail(RL_ENOMEM, "%s: no memory for the read buffer", ip);
    const bool scale = !(opts && opts->unscaled);
    int k = 0;
    char what[64];
    for (uint32_t i0 = 0; i0 < last; i0 += IDX_CHUNK) {
        uint32_t m = last - i0 < IDX_CHUNK ? last - i0 : IDX_CHUNK;
        snprintf(what, sizeof what, "the data of images %u..%u", i0, i0 + m - 1);
        RL_TRY(gz_read_exact(s->fi, s->chunk, m * px, ip, what));
        for (uint32_t j = 0; j < m; j++) {
            int c = map[s->labels[i0 + j]];
            if (c < 0) continue;
            const unsigned char *img = s->chunk + j * px;
            float *x = d->x + (size_t)k * px;
            for (size_t p = 0; p < px; p++) x[p] = scale ? (float)img[p] / 255.0f : (float)img[p];
            d->y[k++] = c;
        }
    }
    RL_ASSERT(k == n_sel, "idx: kept %d examples, counted %d", k, n_sel);

    /* without max_count every image was read: nothing may follow them */
    if (last == count) RL_TRY(gz_expect_end(s->fi, ip));
    return RL_OK;
}

rl_status rl_idx_load(rl_dataset *d, const char *images_path, const char *labels_path,
                      const rl_label_opts *opts, const char *hint)
{
    RL_ASSERT(d && images_path && labels_path, "rl_idx_load: NULL argument");
    memset(d, 0, sizeof *d);
    idx_state s = {0};
    rl_status st = idx_load(d, &s, images_path, labels_path, opts, hint);
    idx_state_close(&s);
    if (st != RL_OK) rl_dataset_free(d);
    return st;
}

rl_status rl_fmnist_load(rl_dataset *d, rl_split split, const char *dir, const rl_label_opts *opts)
{
    RL_ASSERT(d != NULL, "rl_fmnist_load: NULL dataset");
    memset(d, 0, sizeof *d);
    if (split != RL_SPLIT_TRAIN && split != RL_SPLIT_TEST)
        return rl_fail(RL_EINVAL, "fashion-mnist: unknown split %d", (int)split);
    const char *root = rl_data_pick(dir, RL_FMNIST_ENV, RL_FMNIST_DIR);
    const char *pre = split == RL_SPLIT_TRAIN ? "train" : "t10k";
    char ip[4096], lp[4096];
    int a = snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", root, pre);
    int b = snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", root, pre);
    if (a < 0 || (size_t)a >= sizeof ip || b < 0 || (size_t)b >= sizeof lp)
        return rl_fail(RL_EINVAL, "fashion-mnist: directory name too long: %s", root);
    return rl_idx_load(d, ip, lp, opts, FMNIST_HINT);
}
