/* rl_data.c -- the dataset type, seeded shuffling, splits, the pixel
 * permutation, minibatches and image resampling (see rl_data.h).
 *
 * Nothing here reads files; the loaders live in rl_idx.c (Fashion-MNIST),
 * rl_digits.c (sklearn digits) and rl_teacher.c (synthetic teacher).
 */
#include "rl_data.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/rl_tensor.h"
#include "rl_data_impl.h"

/* ---- dataset basics ---- */

rl_status rl_dataset_new(rl_dataset *d, int n, int dim, int n_classes, int n_out)
{
    RL_ASSERT(d != NULL, "rl_dataset_new: NULL dataset");
    memset(d, 0, sizeof *d);
    if (n < 0 || dim < 1)
        return rl_fail(RL_EINVAL, "dataset: bad size n=%d dim=%d", n, dim);
    else if (n_classes < 0 || n_out < 0)
        return rl_fail(RL_EINVAL, "dataset: bad n_classes=%d n_out=%d", n_classes, n_out);

    size_t nx = (size_t)n * (size_t)dim, nt = (size_t)n * (size_t)n_out;
    d->x = rl_alloc_floats(nx);
    if (n_classes > 0) d->y = rl_alloc((size_t)n * sizeof *d->y);
    if (n_out > 0) d->t = rl_alloc_floats(nt);
    if (!d->x || (n_classes > 0 && !d->y) || (n_out > 0 && !d->t)) {
        rl_dataset_free(d);
        return rl_fail(RL_ENOMEM, "dataset: no memory for %d examples of dim %d", n, dim);
    }
    d->n = n;
    d->dim = dim;
    d->n_classes = n_classes;
    d->n_out = n_out;
    return RL_OK;
}

void rl_dataset_free(rl_dataset *d)
{
    if (!d) return;
    rl_dealloc(d->x);
    rl_dealloc(d->y);
    rl_dealloc(d->t);
    memset(d, 0, sizeof *d);
}

void rl_dataset_gather(const rl_dataset *src, const int *idx, int m, float *x, int *y, float *t)
{
    size_t dim = (size_t)src->dim, n_out = (size_t)src->n_out;
    for (int k = 0; k < m; k++) {
        int i = idx[k];
        RL_ASSERT(i >= 0 && i < src->n, "gather: index %d outside [0, %d)", i, src->n);
        memcpy(x + (size_t)k * dim, src->x + (size_t)i * dim, dim * sizeof *x);
        if (y && src->y) y[k] = src->y[i];
        if (t && src->t) memcpy(t + (size_t)k * n_out, src->t + (size_t)i * n_out, n_out * sizeof *t);
    }
}

static void copy_geometry(rl_dataset *out, const rl_dataset *src)
{
    out->height = src->height;
    out->width = src->width;
}

rl_status rl_dataset_take(rl_dataset *out, const rl_dataset *src, const int *idx, int m)
{
    memset(out, 0, sizeof *out);
    if (m < 0) return rl_fail(RL_EINVAL, "dataset take: negative count %d", m);
    for (int k = 0; k < m; k++)
        if (idx[k] < 0 || idx[k] >= src->n)
            return rl_fail(RL_EINVAL, "dataset take: idx[%d] = %d outside [0, %d)", k, idx[k],
                           src->n);
    RL_TRY(rl_dataset_new(out, m, src->dim, src->n_classes, src->n_out));
    copy_geometry(out, src);
    rl_dataset_gather(src, idx, m, out->x, out->y, out->t);
    return RL_OK;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

rl_status rl_dataset_split(rl_dataset *train, rl_dataset *test, const rl_dataset *src,
                           int n_test, uint64_t seed)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (n_test < 0 || n_test > src->n)
        return rl_fail(RL_EINVAL, "dataset split: n_test=%d outside [0, %d]", n_test, src->n);

    int *idx = rl_alloc((size_t)src->n * sizeof *idx);
    if (!idx) return rl_fail(RL_ENOMEM, "dataset split: no memory for %d indices", src->n);
    for (int i = 0; i < src->n; i++) idx[i] = i;
    rl_mt g;
    rl_mt_seed(&g, seed);
    rl_shuffle(idx, src->n, &g);
    /* the shuffle picks the members; each part keeps the source order */
    qsort(idx, (size_t)n_test, sizeof *idx, cmp_int);
    qsort(idx + n_test, (size_t)(src->n - n_test), sizeof *idx, cmp_int);

    rl_status st = rl_dataset_take(test, src, idx, n_test);
    if (st == RL_OK) st = rl_dataset_take(train, src, idx + n_test, src->n - n_test);
    rl_dealloc(idx);
    if (st != RL_OK) {
        rl_dataset_free(train);
        rl_dataset_free(test);
    }
    return st;
}

rl_status rl_dataset_split_stratified(rl_dataset *fit, rl_dataset *val, const rl_dataset *src, int n_val,
                                      uint64_t seed)
{
    if (!src->y || src->n_classes < 1) return rl_dataset_split(fit, val, src, n_val, seed);
    memset(fit, 0, sizeof *fit);
    memset(val, 0, sizeof *val);
    const int n = src->n, C = src->n_classes;
    if (n_val < 0 || n_val > n) return rl_fail(RL_EINVAL, "stratified split: n_val=%d outside [0, %d]", n_val, n);
    int *idx = rl_alloc((size_t)(n > 0 ? n : 1) * sizeof *idx);
    int *cnt = rl_alloc((size_t)(3 * C + 1) * sizeof *cnt);
    char *in_val = rl_alloc((size_t)(n > 0 ? n : 1));
    rl_status st = RL_OK;
    if (!idx || !cnt || !in_val) st = rl_fail(RL_ENOMEM, "stratified split: no memory for %d examples", n);
    if (st == RL_OK) {
        int *take = cnt + C, *start = cnt + 2 * C;
        memset(cnt, 0, (size_t)(3 * C + 1) * sizeof *cnt);
        memset(in_val, 0, (size_t)n);
        for (int i = 0; i < n; i++) {
            if (src->y[i] < 0 || src->y[i] >= C) {
                st = rl_fail(RL_EINVAL, "stratified split: label %d of example %d outside [0, %d)", src->y[i], i, C);
                break;
            }
            cnt[src->y[i]]++;
        }
        if (st == RL_OK) {
            /* quotas: floors, then the largest remainders */
            long given = 0;
            for (int c = 0; c < C; c++) {
                take[c] = n ? (int)((long)cnt[c] * n_val / n) : 0;
                given += take[c];
            }
            /* Σ remainders / n = n_val - given < C, and every class with a
             * positive remainder has take < cnt: one extra each to the
             * largest remainders (ties: lower class) never exceeds a count */
            while (given < n_val) {
                int best = -1;
                long best_rem = 0;
                for (int c = 0; c < C; c++) {
                    long rem = (long)cnt[c] * n_val % n;
                    bool extra = take[c] > (int)((long)cnt[c] * n_val / n);
                    if (!extra && rem > best_rem) best = c, best_rem = rem;
                }
                RL_ASSERT(best >= 0, "stratified split: no class left for the remainders");
                take[best]++;
                given++;
            }
            /* group indices by class, in file order, then shuffle each group */
            start[0] = 0;
            for (int c = 1; c < C; c++) start[c] = start[c - 1] + cnt[c - 1];
            int *pos = rl_alloc((size_t)C * sizeof *pos);
            if (!pos) st = rl_fail(RL_ENOMEM, "stratified split: no memory");
            else {
                memcpy(pos, start, (size_t)C * sizeof *pos);
                for (int i = 0; i < n; i++) idx[pos[src->y[i]]++] = i;
                rl_dealloc(pos);
                rl_mt g;
                rl_mt_seed(&g, seed);
                for (int c = 0; c < C; c++) {
                    rl_shuffle(idx + start[c], cnt[c], &g);
                    for (int k = 0; k < take[c]; k++) in_val[idx[start[c] + k]] = 1;
                }
                int nv = 0, nf = 0;
                for (int i = 0; i < n; i++) { /* each part in src order */
                    if (in_val[i]) idx[nv++] = i;
                }
                int *fidx = rl_alloc((size_t)(n - nv > 0 ? n - nv : 1) * sizeof *fidx);
                if (!fidx) st = rl_fail(RL_ENOMEM, "stratified split: no memory");
                else {
                    for (int i = 0; i < n; i++)
                        if (!in_val[i]) fidx[nf++] = i;
                    st = rl_dataset_take(val, src, idx, nv);
                    if (st == RL_OK) st = rl_dataset_take(fit, src, fidx, nf);
                    rl_dealloc(fidx);
                }
            }
        }
    }
    rl_dealloc(idx);
    rl_dealloc(cnt);
    rl_dealloc(in_val);
    if (st != RL_OK) {
        rl_dataset_free(fit);
        rl_dataset_free(val);
    }
    return st;
}

/* ---- seeded shuffling and the pixel permutation ---- */

uint32_t rl_mt_below(rl_mt *g, uint32_t n)
{
    RL_ASSERT(n >= 1, "rl_mt_below: n = 0");
    /* accept u < limit, the largest multiple of n that fits in 2^32 */
    uint32_t limit = (uint32_t)(0x100000000ull - 0x100000000ull % n);
    for (;;) {
        uint32_t u = rl_mt_next(g);
        if (limit == 0 || u < limit) return u % n; /* limit == 0: n divides 2^32 */
    }
}

void rl_shuffle(int *idx, int n, rl_mt *g)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rl_mt_below(g, (uint32_t)i + 1);
        int tmp = idx[i];
        idx[i] = idx[j];
        idx[j] = tmp;
    }
}

void rl_perm_make(int *perm, int dim, uint64_t seed)
{
    rl_mt g;
    rl_mt_seed(&g, seed);
    for (int j = 0; j < dim; j++) perm[j] = j;
    rl_shuffle(perm, dim, &g);
}

bool rl_perm_is_bijection(const int *perm, int n)
{
    if (n < 0) return false;
    unsigned char *seen = calloc((size_t)n + 1, 1);
    if (!seen) return false;
    bool ok = true;
    for (int j = 0; j < n && ok; j++) {
        if (perm[j] < 0 || perm[j] >= n || seen[perm[j]]) ok = false;
        else seen[perm[j]] = 1;
    }
    free(seen);
    return ok;
}

rl_status rl_dataset_permute(rl_dataset *d, const int *perm)
{
    if (!perm) return rl_fail(RL_EINVAL, "dataset permute: NULL permutation");
    else if (!rl_perm_is_bijection(perm, d->dim))
        return rl_fail(RL_EINVAL, "dataset permute: perm is not a bijection of 0..%d", d->dim - 1);

    float *row = rl_alloc_floats((size_t)d->dim);
    if (!row) return rl_fail(RL_ENOMEM, "dataset permute: no memory for a row of %d", d->dim);
    for (int i = 0; i < d->n; i++) {
        float *xi = d->x + (size_t)i * (size_t)d->dim;
        memcpy(row, xi, (size_t)d->dim * sizeof *row);
        for (int j = 0; j < d->dim; j++) xi[j] = row[perm[j]];
    }
    rl_dealloc(row);
    return RL_OK;
}

/* ---- minibatches ---- */

static void batcher_new_epoch(rl_batcher *b)
{
    for (int i = 0; i < b->d->n; i++) b->order[i] = i;
    if (b->shuffle) rl_shuffle(b->order, b->d->n, &b->rng);
    b->pos = 0;
}

rl_status rl_batcher_init(rl_batcher *b, const rl_dataset *d, int batch, bool shuffle,
                          bool drop_last, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    if (!d || d->n < 1) return rl_fail(RL_EINVAL, "batcher: empty dataset");
    else if (batch < 1) return rl_fail(RL_EINVAL, "batcher: batch size %d < 1", batch);
    else if (drop_last && batch > d->n)
        return rl_fail(RL_EINVAL, "batcher: batch size %d > %d examples with drop_last", batch,
                       d->n);

    b->order = rl_alloc((size_t)d->n * sizeof *b->order);
    if (!b->order) return rl_fail(RL_ENOMEM, "batcher: no memory for %d indices", d->n);
    b->d = d;
    b->batch = batch;
    b->shuffle = shuffle;
    b->drop_last = drop_last;
    rl_mt_seed(&b->rng, seed);
    batcher_new_epoch(b);
    return RL_OK;
}

void rl_batcher_free(rl_batcher *b)
{
    if (!b) return;
    rl_dealloc(b->order);
    memset(b, 0, sizeof *b);
}

int rl_batcher_next(rl_batcher *b, float *x, int *y, float *t, int *idx)
{
    RL_ASSERT(b->order != NULL, "rl_batcher_next: batcher not initialised");
    int left = b->d->n - b->pos;
    int m = left < b->batch ? left : b->batch;
    if (m == 0 || (b->drop_last && m < b->batch)) {
        b->epoch++;
        batcher_new_epoch(b);
        return 0;
    }
    const int *rows = b->order + b->pos;
    rl_dataset_gather(b->d, rows, m, x, y, t);
    if (idx) memcpy(idx, rows, (size_t)m * sizeof *idx);
    b->pos += m;
    return m;
}

/* ---- images ---- */

/* Source coordinate and weight along one axis (torch's align_corners=False
 * area_pixel_compute_source_index, then the upsample_bilinear2d neighbours). */
static void bilinear_axis(int i, int src, int dst, int *i0, int *i1, float *w1)
{
    double scale = (double)src / (double)dst;
    double s = ((double)i + 0.5) * scale - 0.5;
    if (s < 0) s = 0;
    int lo = (int)s;
    if (lo > src - 1) lo = src - 1;
    *i0 = lo;
    *i1 = lo + 1 < src ? lo + 1 : src - 1;
    *w1 = (float)(s - lo);
}

static int nearest_axis(int i, int src, int dst)
{
    int s = (int)floor((double)i * ((double)src / (double)dst));
    return s < src - 1 ? s : src - 1;
}

void rl_image_resize(float *dst, int dst_h, int dst_w, const float *src, int src_h, int src_w,
                     rl_resize mode)
{
    RL_ASSERT(dst_h > 0 && dst_w > 0 && src_h > 0 && src_w > 0, "resize: bad sizes %dx%d <- %dx%d",
              dst_h, dst_w, src_h, src_w);
    for (int i = 0; i < dst_h; i++) {
        for (int j = 0; j < dst_w; j++) {
            float v;
            if (mode == RL_RESIZE_NEAREST) {
                v = src[(size_t)nearest_axis(i, src_h, dst_h) * src_w + nearest_axis(j, src_w, dst_w)];
            } else {
                int r0, r1, c0, c1;
                float wr, wc;
                bilinear_axis(i, src_h, dst_h, &r0, &r1, &wr);
                bilinear_axis(j, src_w, dst_w, &c0, &c1, &wc);
                const float *a = src + (size_t)r0 * src_w, *b = src + (size_t)r1 * src_w;
                /* lerp form p + w (q - p): a constant image stays exact */
                float top = a[c0] + wc * (a[c1] - a[c0]);
                float bot = b[c0] + wc * (b[c1] - b[c0]);
                v = top + wr * (bot - top);
            }
            dst[(size_t)i * dst_w + j] = v;
        }
    }
}

/* ---- helpers shared by the loaders (rl_data_impl.h) ---- */

rl_status rl_data_check_file(const char *path, const char *what, const char *hint)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return rl_fail(RL_ENOTFOUND, "%s: %s file not found%s%s", path, what,
                           hint ? "; " : "", hint ? hint : "");
        return rl_fail(RL_EIO, "%s: cannot access %s file: %s", path, what, strerror(errno));
    }
    if (!S_ISREG(sb.st_mode)) return rl_fail(RL_EIO, "%s: %s file is not a regular file", path, what);
    return RL_OK;
}

rl_status rl_data_label_map(const rl_label_opts *opts, const char *who, int map[10],
                            int *n_classes)
{
    if (!opts || opts->n_keep == 0) {
        for (int c = 0; c < 10; c++) map[c] = c;
        *n_classes = 10;
    } else if (opts->n_keep < 0 || opts->n_keep > 10) {
        return rl_fail(RL_EINVAL, "%s: n_keep = %d outside 0..10", who, opts->n_keep);
    } else {
        for (int c = 0; c < 10; c++) map[c] = -1;
        for (int k = 0; k < opts->n_keep; k++) {
            int c = opts->keep[k];
            if (c < 0 || c > 9) return rl_fail(RL_EINVAL, "%s: keep[%d] = %d outside 0..9", who, k, c);
            if (map[c] >= 0) return rl_fail(RL_EINVAL, "%s: class %d kept twice", who, c);
            map[c] = k;
        }
        *n_classes = opts->n_keep;
    }
    if (opts && opts->max_count < 0)
        return rl_fail(RL_EINVAL, "%s: max_count = %d < 0", who, opts->max_count);
    return RL_OK;
}

const char *rl_data_pick(const char *arg, const char *env, const char *fallback)
{
    if (arg) return arg;
    const char *e = getenv(env);
    return (e && e[0]) ? e : fallback;
}
