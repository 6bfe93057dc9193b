/* rl_st_header.c -- safetensors headers without the data (rl_st_header.h).
 *
 * The full reader (rl_safetensors.c) loads a file whole and knows only the
 * three float dtypes it converts; this module reads 8 + N bytes, knows every
 * dtype of the format, and checks byte ranges against the file's size from
 * fstat. Entries keep header order (jansson >= 2.8 iterates objects in
 * insertion order; rl_safetensors.c checks that version).
 */
#include "rl_st_header.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#define STH_MAX_HEADER ((uint64_t)100 * 1024 * 1024) /* as rl_safetensors.c */

typedef struct {
    char *key, *value;
} sth_meta;

struct rl_st_header {
    char *path;
    uint64_t file_bytes, header_len;
    rl_st_entry *e;
    size_t n;
    sth_meta *meta;
    size_t n_meta;
};

/* The dtypes of the safetensors format with whole-byte elements. */
static int dtype_bytes(const char *s)
{
    static const struct { const char *name; int bytes; } tab[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2},   {"I64", 8},     {"I32", 4},
        {"I16", 2}, {"I8", 1},  {"U64", 8},  {"U32", 4},    {"U16", 2},     {"U8", 1},
        {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(s, tab[i].name) == 0) return tab[i].bytes;
    return 0;
}

void rl_st_header_free(rl_st_header *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->n; i++) free((char *)h->e[i].name);
    for (size_t i = 0; i < h->n_meta; i++) {
        free(h->meta[i].key);
        free(h->meta[i].value);
    }
    free(h->e);
    free(h->meta);
    free(h->path);
    free(h);
}

/* Fill e from the JSON entry v of tensor `name`; data_len bounds the offsets. */
static rl_status parse_entry(const char *path, const char *name, json_t *v, uint64_t data_len, rl_st_entry *e)
{
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_object(v))
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": entry is not a JSON object", path, name);
    else if (!json_is_string(jd))
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": \"dtype\" is missing or not a string", path, name);
    else if ((e->elem_bytes = dtype_bytes(json_string_value(jd))) == 0)
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": unknown dtype \"%.20s\"", path, name,
                       json_string_value(jd));
    else if (!json_is_array(js))
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": \"shape\" is missing or not an array", path, name);
    else if (json_array_size(js) > RL_STH_MAX_DIMS)
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": %zu dims, more than %d", path, name, json_array_size(js),
                       RL_STH_MAX_DIMS);
    else if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
             !json_is_integer(json_array_get(jo, 1)))
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": \"data_offsets\" is missing or not two integers", path,
                       name);
    snprintf(e->dtype, sizeof e->dtype, "%s", json_string_value(jd));
    e->ndim = (int)json_array_size(js);
    uint64_t numel = 1;
    for (int i = 0; i < e->ndim; i++) {
        json_t *d = json_array_get(js, (size_t)i);
        json_int_t k = json_is_integer(d) ? json_integer_value(d) : -1;
        if (k < 0)
            return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": shape[%d] is not a non-negative integer", path, name, i);
        if (k != 0 && numel > UINT64_MAX / 16 / (uint64_t)k)
            return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": element count overflows", path, name);
        numel *= (uint64_t)k;
        e->shape[i] = (int64_t)k;
    }
    e->numel = numel;
    json_int_t b = json_integer_value(json_array_get(jo, 0)), end = json_integer_value(json_array_get(jo, 1));
    uint64_t need = numel * (uint64_t)e->elem_bytes;
    if (b < 0 || end < b)
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": bad data_offsets [%lld, %lld]", path, name, (long long)b,
                       (long long)end);
    else if ((uint64_t)end > data_len)
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": data_offsets end %lld is beyond the %llu-byte data region "
                       "(file truncated?)", path, name, (long long)end, (unsigned long long)data_len);
    else if ((uint64_t)(end - b) != need)
        return rl_fail(RL_EFORMAT, "%s: tensor \"%s\": data_offsets [%lld, %lld] hold %lld bytes but %s with "
                       "%llu elements needs %llu (the header lies about the size)", path, name, (long long)b,
                       (long long)end, (long long)(end - b), e->dtype, (unsigned long long)numel,
                       (unsigned long long)need);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)end;
    return RL_OK;
}

static int cmp_begin(const void *a, const void *b)
{
    const rl_st_entry *x = *(rl_st_entry *const *)a, *y = *(rl_st_entry *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

/* No byte belongs to two tensors (empty tensors hold none). */
static rl_status check_overlap(rl_st_header *h)
{
    if (h->n < 2) return RL_OK;
    rl_st_entry **o = malloc(h->n * sizeof *o);
    if (!o) return rl_fail(RL_ENOMEM, "%s: no memory", h->path);
    size_t k = 0;
    for (size_t i = 0; i < h->n; i++)
        if (h->e[i].end > h->e[i].begin) o[k++] = &h->e[i];
    qsort(o, k, sizeof *o, cmp_begin);
    rl_status st = RL_OK;
    for (size_t i = 1; i < k && st == RL_OK; i++)
        if (o[i]->begin < o[i - 1]->end)
            st = rl_fail(RL_EFORMAT, "%s: tensors \"%s\" and \"%s\" overlap in the data region", h->path,
                         o[i - 1]->name, o[i]->name);
    free(o);
    return st;
}

static rl_status parse_header(rl_st_header *h, const char *json, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return rl_fail(RL_EFORMAT, "%s: header is not valid JSON: %s (line %d, column %d)", h->path, jerr.text,
                       jerr.line, jerr.column);
    rl_status st = RL_OK;
    uint64_t data_len = h->file_bytes - 8 - h->header_len;
    json_t *meta = json_object_get(root, "__metadata__");
    size_t cap = json_object_size(root);
    const char *k;
    json_t *v;
    if (!json_is_object(root)) {
        st = rl_fail(RL_EFORMAT, "%s: header is not a JSON object", h->path);
        goto done;
    } else if (meta && !json_is_object(meta)) {
        st = rl_fail(RL_EFORMAT, "%s: \"__metadata__\" is not a JSON object", h->path);
        goto done;
    }
    h->e = calloc(cap ? cap : 1, sizeof *h->e);
    h->meta = calloc(meta && json_object_size(meta) ? json_object_size(meta) : 1, sizeof *h->meta);
    if (!h->e || !h->meta) {
        st = rl_fail(RL_ENOMEM, "%s: no memory for %zu header entries", h->path, cap);
        goto done;
    }
    if (meta) json_object_foreach(meta, k, v) {
        if (!json_is_string(v)) {
            st = rl_fail(RL_EFORMAT, "%s: __metadata__ \"%s\" is not a string", h->path, k);
            goto done;
        }
        sth_meta *m = &h->meta[h->n_meta];
        m->key = strdup(k);
        m->value = m->key ? strdup(json_string_value(v)) : NULL;
        if (!m->value) {
            free(m->key);
            st = rl_fail(RL_ENOMEM, "%s: no memory", h->path);
            goto done;
        }
        h->n_meta++;
    }
    json_object_foreach(root, k, v) {
        if (strcmp(k, "__metadata__") == 0) continue;
        rl_st_entry *e = &h->e[h->n];
        if ((st = parse_entry(h->path, k, v, data_len, e)) != RL_OK) goto done;
        if (!(e->name = strdup(k))) {
            st = rl_fail(RL_ENOMEM, "%s: no memory", h->path);
            goto done;
        }
        h->n++;
    }
    st = check_overlap(h);
done:
    json_decref(root);
    return st;
}

rl_status rl_st_header_read(rl_st_header **out, const char *path)
{
    if (!out || !path) return rl_fail(RL_EINVAL, "rl_st_header_read: NULL argument");
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return rl_fail(RL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    unsigned char le[8];
    rl_status st = RL_OK;
    rl_st_header *h = calloc(1, sizeof *h);
    char *json = NULL;
    if (!h || !(h->path = strdup(path))) {
        st = rl_fail(RL_ENOMEM, "%s: no memory", path);
    } else if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = rl_fail(RL_EIO, "%s: not a regular file", path);
    } else if ((h->file_bytes = (uint64_t)sb.st_size) < 8 || fread(le, 1, 8, fp) != 8) {
        st = rl_fail(RL_EFORMAT, "%s: %llu bytes, shorter than the 8-byte header length", path,
                     (unsigned long long)h->file_bytes);
    } else {
        for (int i = 7; i >= 0; i--) h->header_len = (h->header_len << 8) | le[i];
        if (h->header_len > STH_MAX_HEADER)
            st = rl_fail(RL_EFORMAT, "%s: header length %llu is absurd (more than 100 MB)", path,
                         (unsigned long long)h->header_len);
        else if (h->header_len > h->file_bytes - 8)
            st = rl_fail(RL_EFORMAT, "%s: header length %llu exceeds the %llu bytes after the length field "
                         "(file truncated?)", path, (unsigned long long)h->header_len,
                         (unsigned long long)(h->file_bytes - 8));
        else if (!(json = malloc(h->header_len ? h->header_len : 1)))
            st = rl_fail(RL_ENOMEM, "%s: no memory for a %llu-byte header", path, (unsigned long long)h->header_len);
        else if (fread(json, 1, h->header_len, fp) != h->header_len)
            st = rl_fail(RL_EIO, "%s: cannot read the %llu-byte header", path, (unsigned long long)h->header_len);
        else
            st = parse_header(h, json, h->header_len);
    }
    fclose(fp);
    free(json);
    if (st != RL_OK) {
        rl_st_header_free(h);
        return st;
    }
    *out = h;
    return RL_OK;
}

const char *rl_st_header_path(const rl_st_header *h) { return h->path; }
size_t rl_st_header_count(const rl_st_header *h) { return h->n; }
uint64_t rl_st_header_file_bytes(const rl_st_header *h) { return h->file_bytes; }
uint64_t rl_st_header_read_bytes(const rl_st_header *h) { return 8 + h->header_len; }

const rl_st_entry *rl_st_header_at(const rl_st_header *h, size_t i)
{
    RL_ASSERT(i < h->n, "%s: entry %zu of %zu", h->path, i, h->n);
    return &h->e[i];
}

const rl_st_entry *rl_st_header_find(const rl_st_header *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->e[i].name, name) == 0) return &h->e[i];
    return NULL;
}

const char *rl_st_header_meta(const rl_st_header *h, const char *key)
{
    for (size_t i = 0; i < h->n_meta; i++)
        if (strcmp(h->meta[i].key, key) == 0) return h->meta[i].value;
    return NULL;
}

/* ---- checkpoints: one file or an index of shards ---- */

struct rl_st_checkpoint {
    rl_st_header **files;
    size_t n_files;
    size_t n;                    /* tensors over all files */
    const rl_st_entry **e;       /* n entries, pointing into files[] */
    size_t *file_of;             /* n */
};

void rl_st_checkpoint_free(rl_st_checkpoint *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n_files; i++) rl_st_header_free(c->files[i]);
    free(c->files);
    free(c->e);
    free(c->file_of);
    free(c);
}

/* Index every tensor of every file, in file then header order. */
static rl_status checkpoint_collect(rl_st_checkpoint *c)
{
    size_t n = 0;
    for (size_t f = 0; f < c->n_files; f++) n += rl_st_header_count(c->files[f]);
    c->e = malloc((n ? n : 1) * sizeof *c->e);
    c->file_of = malloc((n ? n : 1) * sizeof *c->file_of);
    if (!c->e || !c->file_of) return rl_fail(RL_ENOMEM, "checkpoint: no memory for %zu tensors", n);
    for (size_t f = 0; f < c->n_files; f++)
        for (size_t i = 0; i < rl_st_header_count(c->files[f]); i++) {
            c->e[c->n] = rl_st_header_at(c->files[f], i);
            c->file_of[c->n++] = f;
        }
    return RL_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Read an index: every distinct shard of weight_map (first-seen order), then
 * every mapped tensor checked against its shard's header. */
static rl_status scan_index(rl_st_checkpoint *c, const char *path)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return rl_fail(strstr(jerr.text, "unable to open") ? RL_EIO : RL_EFORMAT, "%s: %s (line %d)", path,
                       jerr.text, jerr.line);
    rl_status st = RL_OK;
    json_t *map = json_object_get(root, "weight_map");
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path + 1) : 0;
    const char *k;
    json_t *v;
    if (!json_is_object(map) || json_object_size(map) == 0) {
        st = rl_fail(RL_EFORMAT, "%s: \"weight_map\" is missing or not a non-empty object", path);
        goto done;
    }
    c->files = calloc(json_object_size(map), sizeof *c->files);
    if (!c->files) {
        st = rl_fail(RL_ENOMEM, "%s: no memory", path);
        goto done;
    }
    json_object_foreach(map, k, v) {
        if (!json_is_string(v) || !*json_string_value(v) || strchr(json_string_value(v), '/')) {
            st = rl_fail(RL_EFORMAT, "%s: weight_map[\"%s\"] is not a shard file name", path, k);
            goto done;
        }
        char shard[4096];
        if (dir_len + strlen(json_string_value(v)) + 1 > sizeof shard) {
            st = rl_fail(RL_EINVAL, "%s: shard path too long", path);
            goto done;
        }
        snprintf(shard, sizeof shard, "%.*s%s", (int)dir_len, path, json_string_value(v));
        size_t f = 0;
        while (f < c->n_files && strcmp(rl_st_header_path(c->files[f]), shard) != 0) f++;
        if (f == c->n_files) {
            if ((st = rl_st_header_read(&c->files[f], shard)) != RL_OK) {
                char inner[700];
                snprintf(inner, sizeof inner, "%s", rl_errmsg());
                st = rl_fail(st, "%s (shard \"%s\" of %s, which maps tensor \"%s\" to it)", inner,
                             json_string_value(v), path, k);
                goto done;
            }
            c->n_files++;
        }
        if (!rl_st_header_find(c->files[f], k)) {
            st = rl_fail(RL_EFORMAT, "%s: weight_map puts tensor \"%s\" in %s, whose header lacks it", path, k,
                         shard);
            goto done;
        }
    }
done:
    json_decref(root);
    return st;
}

rl_status rl_st_checkpoint_scan(rl_st_checkpoint **out, const char *path)
{
    if (!out || !path) return rl_fail(RL_EINVAL, "rl_st_checkpoint_scan: NULL argument");
    *out = NULL;
    rl_st_checkpoint *c = calloc(1, sizeof *c);
    if (!c) return rl_fail(RL_ENOMEM, "%s: no memory", path);
    rl_status st;
    if (ends_with(path, ".json")) {
        st = scan_index(c, path);
    } else {
        c->files = calloc(1, sizeof *c->files);
        st = c->files ? rl_st_header_read(&c->files[0], path) : rl_fail(RL_ENOMEM, "%s: no memory", path);
        if (st == RL_OK) c->n_files = 1;
    }
    if (st == RL_OK) st = checkpoint_collect(c);
    if (st != RL_OK) {
        rl_st_checkpoint_free(c);
        return st;
    }
    *out = c;
    return RL_OK;
}

size_t rl_st_checkpoint_count(const rl_st_checkpoint *c) { return c->n; }
size_t rl_st_checkpoint_n_files(const rl_st_checkpoint *c) { return c->n_files; }

const rl_st_entry *rl_st_checkpoint_at(const rl_st_checkpoint *c, size_t i)
{
    RL_ASSERT(i < c->n, "tensor %zu of %zu", i, c->n);
    return c->e[i];
}

const char *rl_st_checkpoint_file_of(const rl_st_checkpoint *c, size_t i)
{
    RL_ASSERT(i < c->n, "tensor %zu of %zu", i, c->n);
    return rl_st_header_path(c->files[c->file_of[i]]);
}

uint64_t rl_st_checkpoint_data_bytes(const rl_st_checkpoint *c)
{
    uint64_t b = 0;
    for (size_t i = 0; i < c->n; i++) b += c->e[i]->end - c->e[i]->begin;
    return b;
}

uint64_t rl_st_checkpoint_read_bytes(const rl_st_checkpoint *c)
{
    uint64_t b = 0;
    for (size_t f = 0; f < c->n_files; f++) b += rl_st_header_read_bytes(c->files[f]);
    return b;
}
