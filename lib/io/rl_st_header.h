/* rl_st_header.h -- what a safetensors checkpoint holds, from its headers
 * alone: names, dtypes, shapes and byte ranges, never the tensor data.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON, then the data (rl_safetensors.h). rl_st_header_read reads exactly
 * 8 + N bytes and the file's size (fstat), so a 16 GB checkpoint is scanned
 * in a millisecond and its data pages are never touched. The header is
 * validated as thoroughly as the full reader does, against the file size
 * instead of the loaded bytes: every dtype is one the safetensors format
 * defines (F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL F8_E4M3
 * F8_E5M2 F8_E8M0; the full reader, which converts data, knows only F32, F16,
 * BF16), every shape is a list of non-negative integers, data_offsets
 * [begin, end] lie inside the data region of the file (a file shorter than
 * its header says is refused: "file truncated?"), end - begin equals numel x
 * dtype size (a header that lies about sizes is refused, naming the tensor),
 * and no two tensors share a byte. Errors name the file and the tensor.
 *
 * A sharded checkpoint is described by model.safetensors.index.json:
 *   {"metadata": {...}, "weight_map": {"<tensor>": "<shard file>", ...}}
 * with shard files relative to the index's folder. rl_st_checkpoint_scan
 * takes either a .safetensors file or such an index, reads every shard's
 * header, and checks the map against them: a shard that cannot be opened is
 * RL_EIO naming the shard and the index, a tensor the map puts in a shard
 * whose header lacks it is RL_EFORMAT naming both.
 */
#ifndef RL_ST_HEADER_H
#define RL_ST_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "../core/rl_err.h"

#define RL_STH_MAX_DIMS 8

typedef struct {
    const char *name;            /* owned by the header object */
    char dtype[12];              /* "BF16", "F32", "I64", ... as in the file */
    int elem_bytes;              /* bytes per element of dtype */
    int ndim;
    int64_t shape[RL_STH_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end;         /* byte range inside the data region */
} rl_st_entry;

typedef struct rl_st_header rl_st_header;

/* Read and validate the header of `path` (8 + N bytes; the data are not
 * read). On failure *out is NULL and nothing leaks. */
rl_status rl_st_header_read(rl_st_header **out, const char *path);
void rl_st_header_free(rl_st_header *h);

const char *rl_st_header_path(const rl_st_header *h);
size_t rl_st_header_count(const rl_st_header *h);
const rl_st_entry *rl_st_header_at(const rl_st_header *h, size_t i);   /* header order */
const rl_st_entry *rl_st_header_find(const rl_st_header *h, const char *name);
const char *rl_st_header_meta(const rl_st_header *h, const char *key); /* NULL if absent */
uint64_t rl_st_header_file_bytes(const rl_st_header *h);   /* size of the file */
uint64_t rl_st_header_read_bytes(const rl_st_header *h);   /* bytes read: 8 + N */

/* ---- one file or a sharded checkpoint ---- */
typedef struct rl_st_checkpoint rl_st_checkpoint;

/* `path` ending in ".json": a model.safetensors.index.json; anything else:
 * one safetensors file. */
rl_status rl_st_checkpoint_scan(rl_st_checkpoint **out, const char *path);
void rl_st_checkpoint_free(rl_st_checkpoint *c);

size_t rl_st_checkpoint_count(const rl_st_checkpoint *c);          /* tensors over all files */
const rl_st_entry *rl_st_checkpoint_at(const rl_st_checkpoint *c, size_t i);
/* The file (shard) that holds tensor i. */
const char *rl_st_checkpoint_file_of(const rl_st_checkpoint *c, size_t i);
size_t rl_st_checkpoint_n_files(const rl_st_checkpoint *c);
uint64_t rl_st_checkpoint_data_bytes(const rl_st_checkpoint *c);   /* sum of tensor bytes */
uint64_t rl_st_checkpoint_read_bytes(const rl_st_checkpoint *c);   /* header bytes read */

#endif
