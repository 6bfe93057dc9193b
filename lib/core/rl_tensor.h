/* rl_tensor.h -- row-major float32 tensors, tracked allocation, views.
 *
 * Layout: contiguous, row-major, outermost dimension first (numpy / PyTorch
 * order, not ggml's innermost-first). A (rows, cols) matrix M has element
 * M[i][j] at data[i * cols + j]; torch.nn.Linear's weight W is (d_out, d_in)
 * and a linear layer computes y = x Wᵀ for x of shape (n, d_in).
 *
 * Dimension vocabulary used across the library:
 *   n        rows of an input (batch x tokens)
 *   d_in     input features,  d_out output features
 *   r        adapter rank
 *   n_bases  number of RandLora bases (ceil(min(d_in, d_out) / r))
 *
 * Ownership: only *_new / *_alloc / *_load allocate, and each has a *_free
 * that accepts NULL. A view (rl_tensor_view*) points into memory it does not
 * own, is made by value and never allocates.
 *
 * Allocation counter: every byte obtained through rl_alloc / rl_tensor_new is
 * counted (current and peak), so probes and tests can read the library's own
 * tensor memory. It is process-wide and thread-safe (atomics).
 */
#ifndef RL_TENSOR_H
#define RL_TENSOR_H

#include <stdbool.h>
#include <stddef.h>

#include "rl_err.h"

#define RL_MAX_DIMS 4

typedef struct {
    float *data;
    int ndim;
    int shape[RL_MAX_DIMS];
    bool owns;          /* true: rl_tensor_free releases data */
} rl_tensor;

/* ---- tracked allocation ---- */

/* Allocate `bytes` (64-byte aligned, zero-filled). NULL on failure or when
 * bytes == 0 would overflow the header. Counted in rl_mem_current/peak. */
void *rl_alloc(size_t bytes);
/* Allocate count floats, zero-filled; NULL on overflow or failure. */
float *rl_alloc_floats(size_t count);
/* Release memory from rl_alloc; NULL is accepted. */
void rl_dealloc(void *p);

size_t rl_mem_current(void);    /* bytes held now through rl_alloc       */
size_t rl_mem_peak(void);       /* largest rl_mem_current since reset    */
void   rl_mem_reset_peak(void); /* peak := current                       */

/* ---- tensors ---- */

/* New zero-filled tensor of the given shape (ndim 1..4, every dim >= 0).
 * Returns RL_EINVAL for a bad shape, RL_ENOMEM when allocation fails. */
rl_status rl_tensor_new(rl_tensor *t, int ndim, const int *shape);
/* Convenience for a 2-D (rows, cols) tensor. */
rl_status rl_tensor_new2(rl_tensor *t, int rows, int cols);
/* Release an owned tensor's data and reset *t; views are only reset. */
void rl_tensor_free(rl_tensor *t);

size_t rl_tensor_numel(const rl_tensor *t);

/* View of existing memory (never allocates, never owns). */
rl_tensor rl_tensor_view(float *data, int ndim, const int *shape);
rl_tensor rl_tensor_view2(float *data, int rows, int cols);
/* Rows [row0, row0 + rows) of a tensor, as a view with the same trailing
 * dimensions. RL_ASSERTs that the range lies inside t. */
rl_tensor rl_tensor_rows(const rl_tensor *t, int row0, int rows);

/* Product of dims as size_t; 0 if any dim is negative or the product
 * overflows. */
size_t rl_shape_numel(int ndim, const int *shape);

/* ---- small elementwise helpers (no allocation) ---- */
/* Element-wise, on the loop threads of rl_par.h for long arrays; rl_copy
 * allows overlap (then one memmove). */
void rl_fill(float *x, size_t n, float v);
void rl_copy(float *dst, const float *src, size_t n);
bool rl_all_finite(const float *x, size_t n);
/* dst (cols, rows) := srcᵀ for src (rows, cols); one thread (small matrices). */
void rl_transpose(float *dst, const float *src, int rows, int cols);

#endif
