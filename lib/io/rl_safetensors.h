/* rl_safetensors.h -- read and write the safetensors format.
 *
 * File layout: 8-byte little-endian header length N, then N bytes of JSON
 *   {"__metadata__": {"k": "v", ...},
 *    "<name>": {"dtype": "F32"|"F16"|"BF16", "shape": [..],
 *               "data_offsets": [begin, end]}, ...}
 * then the raw little-endian row-major tensor bytes; offsets are relative to
 * the first byte after the header.
 *
 * The reader loads the whole file and validates the header before returning:
 * the length fits in the file, the JSON is an object, every dtype is known
 * (F32, F16, BF16; anything else is refused with its name), every shape is a
 * list of non-negative integers, data_offsets lie inside the data region,
 * end - begin equals numel * dtype size, no two tensors overlap, and
 * __metadata__ (if present) maps strings to strings. Every error names the
 * file and the key at fault (rl_errmsg()). The file's size is checked against
 * the memory budget (lib/core/rl_budget.h, RL_EBUDGET) before it is read.
 *
 * The writer collects tensors (float32 data converted to the requested dtype
 * with round-to-nearest-even) and writes them atomically: to "<path>.tmp.<pid>"
 * first, fsync, then rename over <path>, so a reader never sees half a file.
 */
#ifndef RL_SAFETENSORS_H
#define RL_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/rl_err.h"

typedef enum { RL_DT_F32 = 0, RL_DT_F16 = 1, RL_DT_BF16 = 2 } rl_dtype;

const char *rl_dtype_name(rl_dtype dt); /* "F32", "F16", "BF16" */
size_t rl_dtype_size(rl_dtype dt);      /* 4, 2, 2 */

#define RL_ST_MAX_DIMS 8

typedef struct {
    const char *name;            /* points into the file object            */
    rl_dtype dtype;
    int ndim;
    int64_t shape[RL_ST_MAX_DIMS];
    size_t numel;
    const unsigned char *data;   /* raw bytes inside the loaded file       */
    size_t nbytes;
} rl_st_tensor;

typedef struct rl_st_file rl_st_file;

/* Load and validate `path`. On success *out owns the file contents; release
 * with rl_st_close. On failure *out is NULL and nothing is leaked. */
rl_status rl_st_open(rl_st_file **out, const char *path);
/* The same from a memory buffer (copied); `label` names it in messages. */
rl_status rl_st_open_buffer(rl_st_file **out, const void *buf, size_t len, const char *label);
void rl_st_close(rl_st_file *f);

const char *rl_st_path(const rl_st_file *f);
size_t rl_st_count(const rl_st_file *f);                 /* number of tensors */
const rl_st_tensor *rl_st_at(const rl_st_file *f, size_t i); /* in header order */
const rl_st_tensor *rl_st_find(const rl_st_file *f, const char *name); /* NULL if absent */
/* Metadata value for key, or NULL if absent. */
const char *rl_st_meta(const rl_st_file *f, const char *key);

/* Metadata values read as numbers, strictly (lib/core/rl_parse.h: the whole
 * string, 64-bit, within [lo, hi]; "4294967304" is never 8, "3abc" never
 * 3). RL_EFORMAT naming the file, the key, the value and the range when
 * the key is missing or the value is not one; *out is untouched then. */
rl_status rl_st_meta_i64(const rl_st_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out);
rl_status rl_st_meta_int(const rl_st_file *f, const char *key, int lo, int hi, int *out);
rl_status rl_st_meta_double(const rl_st_file *f, const char *key, double lo, double hi, double *out);
rl_status rl_st_meta_bool(const rl_st_file *f, const char *key, bool *out);
/* A 64-bit seed as torch's manual_seed takes it: 0..2^64-1, or a negative
 * value down to -2^63 taken as two's complement (-1 == 2^64 - 1). */
rl_status rl_st_meta_seed(const rl_st_file *f, const char *key, uint64_t *out);

/* Convert a tensor to float32 into dst (numel floats): F32 copied, F16/BF16
 * widened exactly. */
void rl_st_to_f32(const rl_st_tensor *t, float *dst);

/* Find `name`, check that its shape is exactly shape[0..ndim) (else
 * RL_ESHAPE naming the file, key, expected and actual shapes), and convert
 * it into dst. RL_ENOTFOUND if the key is absent. */
rl_status rl_st_read_f32(const rl_st_file *f, const char *name, int ndim,
                         const int *shape, float *dst);

/* ---- writer ---- */
typedef struct rl_st_writer rl_st_writer;

rl_status rl_st_writer_new(rl_st_writer **out);
void rl_st_writer_free(rl_st_writer *w);
/* Add a metadata string pair (copied). */
rl_status rl_st_writer_meta(rl_st_writer *w, const char *key, const char *value);
/* Add a tensor; data (numel floats) is converted to dtype and copied now.
 * A duplicate name is RL_EINVAL. */
rl_status rl_st_writer_add(rl_st_writer *w, const char *name, rl_dtype dtype,
                           int ndim, const int *shape, const float *data);
/* Add a tensor from bytes already in dtype (little-endian, nbytes long,
 * copied now) with a 64-bit shape: what a reader returned (rl_st_tensor) is
 * written back unchanged, including empty tensors whose other dimensions
 * exceed INT_MAX. nbytes must equal numel * dtype size (RL_EINVAL). */
rl_status rl_st_writer_add_raw(rl_st_writer *w, const char *name, rl_dtype dtype, int ndim,
                               const int64_t *shape, const void *bytes, size_t nbytes);
/* Write atomically to path (temp file + fsync + rename). */
rl_status rl_st_writer_save(rl_st_writer *w, const char *path);

#endif
