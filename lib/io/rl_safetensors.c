/* rl_safetensors.c -- safetensors reader and atomic writer (see the header).
 *
 * Reader: the whole file is loaded into one malloc'd buffer; the JSON header
 * is parsed with jansson, validated entry by entry, and turned into an array
 * of rl_st_tensor whose `data` point into that buffer. Names and metadata
 * strings are copied, so nothing refers to the jansson tree after
 * rl_st_open returns. Tensors are kept in header order: jansson (>= 2.8)
 * iterates an object's keys in the order they were inserted, i.e. the order
 * they appear in the file, so rl_st_at(f, i) is the i-th tensor of the
 * header (the version check below makes that assumption explicit).
 *
 * Writer: tensors are converted to their dtype when added and kept in
 * insertion order; rl_st_writer_save writes the header (metadata first, then
 * the tensors in insertion order, padded with spaces so that 8 + N is a
 * multiple of 8) and the packed data through rl_atomic_open/commit
 * (rl_results.h): "<path>.tmp.<pid>", fsync, rename over <path>; missing
 * parent directories are created.
 *
 * Byte order: safetensors is little-endian. The header length is encoded
 * byte by byte; tensor bytes are copied as they are in memory, which is why
 * a big-endian build is refused at compile time.
 */
#include "rl_safetensors.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "../core/rl_budget.h"
#include "../core/rl_half.h"
#include "../core/rl_parse.h"
#include "rl_results.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rl_safetensors.c copies tensor bytes as-is and needs a little-endian target"
#endif
#if JANSSON_VERSION_HEX < 0x020800
#error "jansson >= 2.8 is needed: older versions do not iterate objects in insertion order"
#endif

#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024) /* refuse headers above 100 MB */

typedef struct {
    char *key;
    char *value;
} st_meta;

struct rl_st_file {
    char *path;             /* the path or label, for messages            */
    unsigned char *buf;     /* the whole file                             */
    size_t len;
    rl_st_tensor *tensors;  /* count entries, header order                */
    size_t count;
    st_meta *meta;
    size_t n_meta;
};

const char *rl_dtype_name(rl_dtype dt)
{
    switch (dt) {
    case RL_DT_F32:  return "F32";
    case RL_DT_F16:  return "F16";
    case RL_DT_BF16: return "BF16";
    }
    RL_ASSERT(0, "bad dtype %d", (int)dt);
    return "?";
}

size_t rl_dtype_size(rl_dtype dt)
{
    switch (dt) {
    case RL_DT_F32:  return 4;
    case RL_DT_F16:  return 2;
    case RL_DT_BF16: return 2;
    }
    RL_ASSERT(0, "bad dtype %d", (int)dt);
    return 0;
}

/* Parse a dtype name; false for anything but the three supported ones. */
static bool dtype_parse(const char *s, rl_dtype *dt)
{
    if (strcmp(s, "F32") == 0)       *dt = RL_DT_F32;
    else if (strcmp(s, "F16") == 0)  *dt = RL_DT_F16;
    else if (strcmp(s, "BF16") == 0) *dt = RL_DT_BF16;
    else return false;
    return true;
}

/* Write "[d0, d1, ...]" into buf (always NUL-terminated). */
static void shape_str(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t at = 0;
    at += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%lld", i ? ", " : "",
                               (long long)shape[i]);
    if (at < size) snprintf(buf + at, size - at, "]");
}

/* ---- reader: validation of one header entry ---- */

/* Fill t (all but name and data) from the JSON entry `v` named `name`, and
 * set *begin to its data offset; data_len is the size of the data region.
 * The offsets are checked against that region here, overlaps later. */
static rl_status parse_entry(rl_st_tensor *t, size_t *begin, const char *label,
                             const char *name, json_t *v, size_t data_len)
{
    if (!json_is_object(v))
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": entry is not a JSON object", label, name);

    json_t *jd = json_object_get(v, "dtype");
    if (!jd)
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": missing \"dtype\"", label, name);
    else if (!json_is_string(jd))
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": \"dtype\" is not a string", label, name);
    else if (!dtype_parse(json_string_value(jd), &t->dtype))
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": unsupported dtype \"%s\" "
                       "(only F32, F16, BF16)", label, name, json_string_value(jd));

    json_t *js = json_object_get(v, "shape");
    if (!js)
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": missing \"shape\"", label, name);
    else if (!json_is_array(js))
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": \"shape\" is not an array", label, name);
    else if (json_array_size(js) > RL_ST_MAX_DIMS)
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": shape has %zu dims, more than %d",
                       label, name, json_array_size(js), RL_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    size_t numel = 1;
    bool empty = false; /* a zero dimension: no element, whatever the others are */
    for (int i = 0; i < t->ndim; i++) {
        json_t *d = json_array_get(js, (size_t)i);
        if (!json_is_integer(d))
            return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": shape[%d] is not an integer",
                           label, name, i);
        json_int_t n = json_integer_value(d);
        if (n < 0)
            return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": shape[%d] = %lld is negative",
                           label, name, i, (long long)n);
        t->shape[i] = (int64_t)n;
        empty |= n == 0;
    }
    for (int i = 0; i < t->ndim && !empty; i++) {
        uint64_t n = (uint64_t)t->shape[i];
        if (numel > SIZE_MAX / n)
            return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": element count overflows",
                           label, name);
        numel *= (size_t)n;
    }
    if (empty) numel = 0;
    size_t esize = rl_dtype_size(t->dtype);
    if (numel > SIZE_MAX / esize)
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": byte count overflows", label, name);
    t->numel = numel;
    t->nbytes = numel * esize;

    json_t *jo = json_object_get(v, "data_offsets");
    if (!jo)
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": missing \"data_offsets\"", label, name);
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(jb) ||
        !json_is_integer(je))
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": \"data_offsets\" is not two integers",
                       label, name);
    json_int_t b = json_integer_value(jb), e = json_integer_value(je);
    if (b < 0 || e < 0)
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": negative data_offsets [%lld, %lld]",
                       label, name, (long long)b, (long long)e);
    else if (b > e)
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": data_offsets begin %lld > end %lld",
                       label, name, (long long)b, (long long)e);
    else if ((uint64_t)e > data_len)
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": data_offsets end %lld is beyond the "
                       "%zu-byte data region (file truncated?)", label, name, (long long)e,
                       data_len);
    else if ((uint64_t)(e - b) != t->nbytes) {
        char sh[160];
        shape_str(sh, sizeof sh, t->ndim, t->shape);
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": data_offsets [%lld, %lld] hold %lld "
                       "bytes but %s %s needs %zu", label, name, (long long)b, (long long)e,
                       (long long)(e - b), rl_dtype_name(t->dtype), sh, t->nbytes);
    }
    *begin = (size_t)b;
    return RL_OK;
}

/* Copy the string pairs of "__metadata__" into f. */
static rl_status parse_meta(rl_st_file *f, json_t *m)
{
    if (!json_is_object(m))
        return rl_fail(RL_EFORMAT, "%s: \"__metadata__\" is not a JSON object", f->path);
    size_t n = json_object_size(m);
    f->meta = calloc(n ? n : 1, sizeof *f->meta);
    if (!f->meta) return rl_fail(RL_ENOMEM, "%s: no memory for metadata", f->path);
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (!json_is_string(v))
            return rl_fail(RL_EFORMAT, "%s: __metadata__ \"%s\" is not a string", f->path, k);
        st_meta *e = &f->meta[f->n_meta];
        e->key = strdup(k);
        e->value = e->key ? strdup(json_string_value(v)) : NULL;
        if (!e->value) {
            free(e->key);
            return rl_fail(RL_ENOMEM, "%s: no memory for metadata", f->path);
        }
        f->n_meta++;
    }
    return RL_OK;
}

/* Order tensors by (begin, end) for the overlap check. */
static int cmp_range(const void *a, const void *b)
{
    const rl_st_tensor *x = *(rl_st_tensor *const *)a, *y = *(rl_st_tensor *const *)b;
    if (x->data != y->data) return x->data < y->data ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* Refuse two tensors sharing a byte. Empty tensors occupy no bytes and are
 * skipped; after sorting by begin, an overlap exists iff some pair of
 * neighbours overlaps. */
static rl_status check_overlap(rl_st_file *f, const unsigned char *data0)
{
    if (f->count < 2) return RL_OK;
    rl_st_tensor **order = malloc(f->count * sizeof *order);
    if (!order) return rl_fail(RL_ENOMEM, "%s: no memory", f->path);
    size_t n = 0;
    for (size_t i = 0; i < f->count; i++)
        if (f->tensors[i].nbytes > 0) order[n++] = &f->tensors[i];
    qsort(order, n, sizeof *order, cmp_range);
    rl_status s = RL_OK;
    for (size_t i = 1; i < n; i++) {
        const rl_st_tensor *p = order[i - 1], *q = order[i];
        if (q->data < p->data + p->nbytes) {
            s = rl_fail(RL_EFORMAT, "%s: tensors \"%s\" [%td, %td) and \"%s\" [%td, %td) overlap",
                        f->path, p->name, p->data - data0, p->data + p->nbytes - data0,
                        q->name, q->data - data0, q->data + q->nbytes - data0);
            break;
        }
    }
    free(order);
    return s;
}

/* Validate f->buf and fill the tensor and metadata tables. On failure the
 * caller releases f with rl_st_close, which frees whatever was filled. */
static rl_status st_parse(rl_st_file *f)
{
    const char *label = f->path;
    if (f->len < 8)
        return rl_fail(RL_EFORMAT, "%s: file is %zu bytes, shorter than the 8-byte header "
                       "length field", label, f->len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->buf[i];
    if (n > ST_MAX_HEADER)
        return rl_fail(RL_EFORMAT, "%s: header length %llu is absurd (more than 100 MB)",
                       label, (unsigned long long)n);
    else if (n > f->len - 8)
        return rl_fail(RL_EFORMAT, "%s: header length %llu exceeds the %zu bytes after the "
                       "length field", label, (unsigned long long)n, f->len - 8);
    const unsigned char *data0 = f->buf + 8 + n;
    size_t data_len = f->len - 8 - (size_t)n;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)f->buf + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return rl_fail(RL_EFORMAT, "%s: header is not valid JSON: %s (line %d, column %d)",
                       label, jerr.text, jerr.line, jerr.column);
    rl_status s = RL_OK;
    if (!json_is_object(root)) {
        s = rl_fail(RL_EFORMAT, "%s: header is not a JSON object", label);
        goto done;
    }
    json_t *meta = json_object_get(root, "__metadata__");
    if (meta && (s = parse_meta(f, meta)) != RL_OK) goto done;

    size_t cap = json_object_size(root) - (meta ? 1 : 0);
    f->tensors = calloc(cap ? cap : 1, sizeof *f->tensors);
    if (!f->tensors) {
        s = rl_fail(RL_ENOMEM, "%s: no memory for %zu tensors", label, cap);
        goto done;
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (strcmp(k, "__metadata__") == 0) continue;
        rl_st_tensor *t = &f->tensors[f->count];
        size_t begin = 0;
        if ((s = parse_entry(t, &begin, label, k, v, data_len)) != RL_OK) goto done;
        t->data = data0 + begin;
        t->name = strdup(k);
        if (!t->name) { s = rl_fail(RL_ENOMEM, "%s: no memory", label); goto done; }
        f->count++;
    }
    s = check_overlap(f, data0);
done:
    json_decref(root);
    return s;
}

/* ---- reader: public functions ---- */

/* Take ownership of buf (len bytes), validate it, and return the file. */
static rl_status st_open_owned(rl_st_file **out, unsigned char *buf, size_t len,
                               const char *label)
{
    rl_st_file *f = calloc(1, sizeof *f);
    char *path = strdup(label);
    if (!f || !path) {
        free(f); free(path); free(buf);
        return rl_fail(RL_ENOMEM, "%s: no memory", label);
    }
    f->path = path;
    f->buf = buf;
    f->len = len;
    rl_status s = st_parse(f);
    if (s != RL_OK) { rl_st_close(f); return s; }
    *out = f;
    return RL_OK;
}

rl_status rl_st_open(rl_st_file **out, const char *path)
{
    if (!out || !path) return rl_fail(RL_EINVAL, "rl_st_open: NULL argument");
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return rl_fail(RL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0) {
        int e = errno;
        fclose(fp);
        return rl_fail(RL_EIO, "%s: cannot stat: %s", path, strerror(e));
    } else if (!S_ISREG(st.st_mode)) {
        fclose(fp);
        return rl_fail(RL_EIO, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    rl_status bs = rl_budget_check(len, "%s: reading the file", path);
    if (bs != RL_OK) {
        fclose(fp);
        return bs;
    }
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) {
        fclose(fp);
        return rl_fail(RL_ENOMEM, "%s: no memory for %zu bytes", path, len);
    }
    size_t got = fread(buf, 1, len, fp);
    int e = ferror(fp) ? errno : 0;
    fclose(fp);
    if (got != len) {
        free(buf);
        return rl_fail(RL_EIO, "%s: read %zu of %zu bytes: %s", path, got, len,
                       e ? strerror(e) : "file changed size");
    }
    return st_open_owned(out, buf, len, path);
}

rl_status rl_st_open_buffer(rl_st_file **out, const void *buf, size_t len, const char *label)
{
    if (!out || (!buf && len > 0)) return rl_fail(RL_EINVAL, "rl_st_open_buffer: NULL argument");
    *out = NULL;
    if (!label) label = "<buffer>";
    RL_TRY(rl_budget_check(len, "%s: copying the buffer", label));
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy) return rl_fail(RL_ENOMEM, "%s: no memory for %zu bytes", label, len);
    if (len) memcpy(copy, buf, len);
    return st_open_owned(out, copy, len, label);
}

void rl_st_close(rl_st_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->count; i++) free((char *)f->tensors[i].name);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->tensors);
    free(f->meta);
    free(f->buf);
    free(f->path);
    free(f);
}

const char *rl_st_path(const rl_st_file *f) { return f->path; }

size_t rl_st_count(const rl_st_file *f) { return f->count; }

const rl_st_tensor *rl_st_at(const rl_st_file *f, size_t i)
{
    RL_ASSERT(i < f->count, "%s: tensor index %zu out of range (%zu tensors)", f->path, i,
              f->count);
    return &f->tensors[i];
}

const rl_st_tensor *rl_st_find(const rl_st_file *f, const char *name)
{
    for (size_t i = 0; i < f->count; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *rl_st_meta(const rl_st_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

/* ---- metadata as numbers ---- */

/* The value of key, or RL_EFORMAT if absent; *what gets "<file>: metadata 'key'". */
static rl_status meta_text(const rl_st_file *f, const char *key, const char **v, char *what, size_t n)
{
    snprintf(what, n, "%s: metadata '%s'", f->path, key);
    *v = rl_st_meta(f, key);
    if (!*v) return rl_fail(RL_EFORMAT, "%s: metadata key '%s' is missing", f->path, key);
    return RL_OK;
}

/* rl_parse_* fail with RL_EINVAL: a malformed file is RL_EFORMAT (message kept). */
static rl_status as_format(rl_status st) { return st == RL_OK ? RL_OK : RL_EFORMAT; }

rl_status rl_st_meta_i64(const rl_st_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const char *v;
    char what[600];
    RL_TRY(meta_text(f, key, &v, what, sizeof what));
    return as_format(rl_parse_i64(v, lo, hi, what, out));
}

rl_status rl_st_meta_int(const rl_st_file *f, const char *key, int lo, int hi, int *out)
{
    const char *v;
    char what[600];
    RL_TRY(meta_text(f, key, &v, what, sizeof what));
    return as_format(rl_parse_int(v, lo, hi, what, out));
}

rl_status rl_st_meta_double(const rl_st_file *f, const char *key, double lo, double hi, double *out)
{
    const char *v;
    char what[600];
    RL_TRY(meta_text(f, key, &v, what, sizeof what));
    return as_format(rl_parse_double(v, lo, hi, what, out));
}

rl_status rl_st_meta_bool(const rl_st_file *f, const char *key, bool *out)
{
    const char *v;
    char what[600];
    RL_TRY(meta_text(f, key, &v, what, sizeof what));
    return as_format(rl_parse_bool(v, what, out));
}

rl_status rl_st_meta_seed(const rl_st_file *f, const char *key, uint64_t *out)
{
    const char *v;
    char what[600];
    RL_TRY(meta_text(f, key, &v, what, sizeof what));
    if (v[0] == '-') {
        int64_t x;
        RL_TRY(as_format(rl_parse_i64(v, INT64_MIN, -1, what, &x)));
        *out = (uint64_t)x;
        return RL_OK;
    }
    return as_format(rl_parse_u64(v, 0, UINT64_MAX, what, out));
}

/* The data may sit at any byte offset, so elements are read with memcpy. */
void rl_st_to_f32(const rl_st_tensor *t, float *dst)
{
    switch (t->dtype) {
    case RL_DT_F32:
        if (t->nbytes) memcpy(dst, t->data, t->nbytes);
        break;
    case RL_DT_F16:
    case RL_DT_BF16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h = (uint16_t)(t->data[2 * i] | (t->data[2 * i + 1] << 8));
            dst[i] = t->dtype == RL_DT_F16 ? rl_f16_to_f32(h) : rl_bf16_to_f32(h);
        }
        break;
    }
}

rl_status rl_st_read_f32(const rl_st_file *f, const char *name, int ndim,
                         const int *shape, float *dst)
{
    if (!f || !name || !dst || (!shape && ndim > 0))
        return rl_fail(RL_EINVAL, "rl_st_read_f32: NULL argument");
    else if (ndim < 0 || ndim > RL_ST_MAX_DIMS)
        return rl_fail(RL_EINVAL, "%s: \"%s\": bad expected ndim %d", f->path, name, ndim);

    const rl_st_tensor *t = rl_st_find(f, name);
    if (!t) return rl_fail(RL_ENOTFOUND, "%s: no tensor \"%s\"", f->path, name);
    bool same = t->ndim == ndim;
    int64_t want[RL_ST_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        want[i] = shape[i];
        if (same && t->shape[i] != want[i]) same = false;
    }
    if (!same) {
        char a[160], b[160];
        shape_str(a, sizeof a, ndim, want);
        shape_str(b, sizeof b, t->ndim, t->shape);
        return rl_fail(RL_ESHAPE, "%s: tensor \"%s\": expected shape %s, file has %s",
                       f->path, name, a, b);
    }
    rl_st_to_f32(t, dst);
    return RL_OK;
}

/* ---- writer ---- */

typedef struct {
    char *name;
    rl_dtype dtype;
    int ndim;
    int64_t shape[RL_ST_MAX_DIMS];
    unsigned char *bytes;   /* converted little-endian data, nbytes long   */
    size_t nbytes;
} st_entry;

struct rl_st_writer {
    st_entry *entries;      /* insertion order                            */
    size_t count, cap;
    st_meta *meta;
    size_t n_meta, meta_cap;
};

rl_status rl_st_writer_new(rl_st_writer **out)
{
    if (!out) return rl_fail(RL_EINVAL, "rl_st_writer_new: NULL argument");
    *out = calloc(1, sizeof **out);
    if (!*out) return rl_fail(RL_ENOMEM, "rl_st_writer_new: no memory");
    return RL_OK;
}

void rl_st_writer_free(rl_st_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->count; i++) {
        free(w->entries[i].name);
        free(w->entries[i].bytes);
    }
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->entries);
    free(w->meta);
    free(w);
}

/* jansson refuses strings that are not UTF-8; find that out when the string
 * is added, not when the file is saved. */
static bool utf8_ok(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

/* Return arr (*cap elements of `size` bytes) grown to hold at least `need`
 * elements, updating *cap; NULL on failure, with arr left as it was. */
static void *grow(void *arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return arr;
    size_t n = *cap ? 2 * *cap : 8;
    void *p = realloc(arr, n * size);
    if (p) *cap = n;
    return p;
}

rl_status rl_st_writer_meta(rl_st_writer *w, const char *key, const char *value)
{
    if (!w || !key || !value) return rl_fail(RL_EINVAL, "rl_st_writer_meta: NULL argument");
    else if (!utf8_ok(key) || !utf8_ok(value))
        return rl_fail(RL_EINVAL, "safetensors metadata \"%s\": not valid UTF-8", key);
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[i].key, key) == 0)
            return rl_fail(RL_EINVAL, "safetensors metadata \"%s\" added twice", key);
    st_meta *m = grow(w->meta, &w->meta_cap, w->n_meta + 1, sizeof *m);
    if (!m) return rl_fail(RL_ENOMEM, "safetensors metadata \"%s\": no memory", key);
    w->meta = m;
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k); free(v);
        return rl_fail(RL_ENOMEM, "safetensors metadata \"%s\": no memory", key);
    }
    w->meta[w->n_meta++] = (st_meta){ k, v };
    return RL_OK;
}

/* What both ways of adding a tensor check first: a new, valid name, a
 * known dtype, ndim in range. */
static rl_status check_new(const rl_st_writer *w, const char *name, rl_dtype dtype, int ndim)
{
    if (name[0] == '\0' || strcmp(name, "__metadata__") == 0 || !utf8_ok(name))
        return rl_fail(RL_EINVAL, "safetensors: bad tensor name \"%s\"", name);
    else if (dtype != RL_DT_F32 && dtype != RL_DT_F16 && dtype != RL_DT_BF16)
        return rl_fail(RL_EINVAL, "safetensors: tensor \"%s\": bad dtype %d", name, (int)dtype);
    else if (ndim < 0 || ndim > RL_ST_MAX_DIMS)
        return rl_fail(RL_EINVAL, "safetensors: tensor \"%s\": ndim %d not in 0..%d", name,
                       ndim, RL_ST_MAX_DIMS);
    for (size_t i = 0; i < w->count; i++)
        if (strcmp(w->entries[i].name, name) == 0)
            return rl_fail(RL_EINVAL, "safetensors: tensor \"%s\" added twice", name);
    return RL_OK;
}

rl_status rl_st_writer_add(rl_st_writer *w, const char *name, rl_dtype dtype,
                           int ndim, const int *shape, const float *data)
{
    if (!w || !name || (!shape && ndim > 0))
        return rl_fail(RL_EINVAL, "rl_st_writer_add: NULL argument");
    RL_TRY(check_new(w, name, dtype, ndim));

    st_entry e = { .dtype = dtype, .ndim = ndim };
    size_t numel = 1, esize = rl_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return rl_fail(RL_EINVAL, "safetensors: tensor \"%s\": shape[%d] = %d is negative",
                           name, i, shape[i]);
        if (shape[i] != 0 && numel > SIZE_MAX / esize / (size_t)shape[i])
            return rl_fail(RL_EINVAL, "safetensors: tensor \"%s\": size overflows", name);
        numel *= (size_t)shape[i];
        e.shape[i] = shape[i];
    }
    if (numel > 0 && !data)
        return rl_fail(RL_EINVAL, "safetensors: tensor \"%s\": NULL data", name);
    e.nbytes = numel * esize;
    st_entry *grown = grow(w->entries, &w->cap, w->count + 1, sizeof *grown);
    if (!grown) return rl_fail(RL_ENOMEM, "safetensors: tensor \"%s\": no memory", name);
    w->entries = grown;
    e.name = strdup(name);
    e.bytes = malloc(e.nbytes ? e.nbytes : 1);
    if (!e.name || !e.bytes) {
        free(e.name); free(e.bytes);
        return rl_fail(RL_ENOMEM, "safetensors: tensor \"%s\": no memory for %zu bytes",
                       name, e.nbytes);
    }
    if (dtype == RL_DT_F32) {
        if (e.nbytes) memcpy(e.bytes, data, e.nbytes);
    } else {
        for (size_t i = 0; i < numel; i++) {
            uint16_t h = dtype == RL_DT_F16 ? rl_f32_to_f16(data[i]) : rl_f32_to_bf16(data[i]);
            e.bytes[2 * i] = (unsigned char)(h & 0xff);
            e.bytes[2 * i + 1] = (unsigned char)(h >> 8);
        }
    }
    w->entries[w->count++] = e;
    return RL_OK;
}

rl_status rl_st_writer_add_raw(rl_st_writer *w, const char *name, rl_dtype dtype, int ndim,
                               const int64_t *shape, const void *bytes, size_t nbytes)
{
    if (!w || !name || (!shape && ndim > 0) || (!bytes && nbytes > 0))
        return rl_fail(RL_EINVAL, "rl_st_writer_add_raw: NULL argument");
    RL_TRY(check_new(w, name, dtype, ndim));
    st_entry e = { .dtype = dtype, .ndim = ndim };
    size_t numel = 1;
    bool zero = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return rl_fail(RL_EINVAL, "safetensors: tensor \"%s\": shape[%d] = %lld is negative", name, i,
                           (long long)shape[i]);
        e.shape[i] = shape[i];
        if (shape[i] == 0) zero = true;
        else if (!zero && numel > SIZE_MAX / (uint64_t)shape[i])
            return rl_fail(RL_EINVAL, "safetensors: tensor \"%s\": size overflows", name);
        else if (!zero) numel *= (size_t)shape[i];
    }
    if (zero) numel = 0;
    if (numel > SIZE_MAX / rl_dtype_size(dtype) || numel * rl_dtype_size(dtype) != nbytes)
        return rl_fail(RL_EINVAL, "safetensors: tensor \"%s\": %zu bytes given for %zu elements of %s", name,
                       nbytes, numel, rl_dtype_name(dtype));
    e.nbytes = nbytes;
    st_entry *grown = grow(w->entries, &w->cap, w->count + 1, sizeof *grown);
    if (!grown) return rl_fail(RL_ENOMEM, "safetensors: tensor \"%s\": no memory", name);
    w->entries = grown;
    e.name = strdup(name);
    e.bytes = malloc(nbytes ? nbytes : 1);
    if (!e.name || !e.bytes) {
        free(e.name); free(e.bytes);
        return rl_fail(RL_ENOMEM, "safetensors: tensor \"%s\": no memory for %zu bytes", name, nbytes);
    }
    if (nbytes) memcpy(e.bytes, bytes, nbytes);
    w->entries[w->count++] = e;
    return RL_OK;
}

/* Build the header JSON (metadata first, then tensors in insertion order)
 * as a malloc'd string, or NULL when jansson runs out of memory. */
static char *header_json(const rl_st_writer *w)
{
    json_t *root = json_object();
    bool ok = root != NULL;
    if (ok && w->n_meta > 0) {
        json_t *m = json_object();
        ok = m && json_object_set_new(root, "__metadata__", m) == 0;
        for (size_t i = 0; ok && i < w->n_meta; i++)
            ok = json_object_set_new(m, w->meta[i].key, json_string(w->meta[i].value)) == 0;
    }
    size_t off = 0;
    for (size_t i = 0; ok && i < w->count; i++) {
        const st_entry *e = &w->entries[i];
        json_t *t = json_object(), *sh = json_array(), *of = json_array();
        ok = t && sh && of
             && json_object_set_new(t, "dtype", json_string(rl_dtype_name(e->dtype))) == 0
             && json_object_set(t, "shape", sh) == 0
             && json_object_set(t, "data_offsets", of) == 0
             && json_object_set(root, e->name, t) == 0;
        for (int d = 0; ok && d < e->ndim; d++)
            ok = json_array_append_new(sh, json_integer((json_int_t)e->shape[d])) == 0;
        ok = ok && json_array_append_new(of, json_integer((json_int_t)off)) == 0
                && json_array_append_new(of, json_integer((json_int_t)(off + e->nbytes))) == 0;
        off += e->nbytes;
        json_decref(t); json_decref(sh); json_decref(of); /* NULL is accepted */
    }
    char *s = ok ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return s;
}

/* Write everything to the open temp file; false with errno set on failure. */
static bool write_all(FILE *fp, const rl_st_writer *w, const char *json)
{
    size_t n = strlen(json);
    size_t pad = (8 - (8 + n) % 8) % 8;   /* spaces so that 8 + N is a multiple of 8 */
    uint64_t hlen = (uint64_t)(n + pad);
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(hlen >> (8 * i));
    errno = 0;
    if (fwrite(le, 1, 8, fp) != 8 || fwrite(json, 1, n, fp) != n) return false;
    for (size_t i = 0; i < pad; i++)
        if (fputc(' ', fp) == EOF) return false;
    for (size_t i = 0; i < w->count; i++)
        if (fwrite(w->entries[i].bytes, 1, w->entries[i].nbytes, fp) != w->entries[i].nbytes)
            return false;
    return true; /* rl_atomic_commit flushes and fsyncs */
}

rl_status rl_st_writer_save(rl_st_writer *w, const char *path)
{
    if (!w || !path) return rl_fail(RL_EINVAL, "rl_st_writer_save: NULL argument");
    char *json = header_json(w);
    if (!json) return rl_fail(RL_ENOMEM, "%s: could not build the safetensors header", path);
    rl_atomic_file af;
    rl_status s = rl_atomic_open(&af, path);
    if (s == RL_OK) {
        if (write_all(af.fp, w, json)) {
            s = rl_atomic_commit(&af);
        } else {
            s = rl_fail(RL_EWRITE, "%s: cannot write: %s", path, strerror(errno ? errno : EIO));
            rl_atomic_abort(&af);
        }
    }
    free(json);
    return s;
}
