/* rl_tensor.c -- tracked allocation and tensor helpers. */
#include "rl_tensor.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rl_par.h"

/* Each block carries a 64-byte header holding its size, so the data that
 * follows stays 64-byte aligned and rl_dealloc can decrement the counter. */
#define RL_ALIGN 64

static atomic_size_t rl_cur;
static atomic_size_t rl_peak;

void *rl_alloc(size_t bytes)
{
    if (bytes > SIZE_MAX - 2 * RL_ALIGN) return NULL;
    size_t total = (bytes + RL_ALIGN - 1) / RL_ALIGN * RL_ALIGN + RL_ALIGN;
    unsigned char *base = aligned_alloc(RL_ALIGN, total);
    if (!base) return NULL;
    memset(base, 0, total);
    memcpy(base, &bytes, sizeof bytes);
    size_t now = atomic_fetch_add(&rl_cur, bytes) + bytes;
    size_t pk = atomic_load(&rl_peak);
    while (now > pk && !atomic_compare_exchange_weak(&rl_peak, &pk, now)) {
    }
    return base + RL_ALIGN;
}

float *rl_alloc_floats(size_t count)
{
    if (count > SIZE_MAX / sizeof(float)) return NULL;
    return rl_alloc(count * sizeof(float));
}

void rl_dealloc(void *p)
{
    if (!p) return;
    unsigned char *base = (unsigned char *)p - RL_ALIGN;
    size_t bytes;
    memcpy(&bytes, base, sizeof bytes);
    atomic_fetch_sub(&rl_cur, bytes);
    free(base);
}

size_t rl_mem_current(void) { return atomic_load(&rl_cur); }
size_t rl_mem_peak(void) { return atomic_load(&rl_peak); }
void rl_mem_reset_peak(void) { atomic_store(&rl_peak, atomic_load(&rl_cur)); }

size_t rl_shape_numel(int ndim, const int *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return 0;
        size_t d = (size_t)shape[i];
        if (d != 0 && n > SIZE_MAX / d) return 0;
        n *= d;
    }
    return n;
}

rl_status rl_tensor_new(rl_tensor *t, int ndim, const int *shape)
{
    if (!t || !shape) return rl_fail(RL_EINVAL, "tensor_new: NULL argument");
    memset(t, 0, sizeof *t);
    if (ndim < 1 || ndim > RL_MAX_DIMS)
        return rl_fail(RL_EINVAL, "tensor_new: ndim %d outside 1..%d", ndim, RL_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) return rl_fail(RL_EINVAL, "tensor_new: dim %d is %d", i, shape[i]);
    size_t n = rl_shape_numel(ndim, shape);
    bool empty = false;
    for (int i = 0; i < ndim; i++) empty |= shape[i] == 0;
    if (n == 0 && !empty) return rl_fail(RL_EINVAL, "tensor_new: shape overflows size_t");
    float *d = rl_alloc_floats(n ? n : 1);
    if (!d) return rl_fail(RL_ENOMEM, "tensor_new: cannot allocate %zu floats", n);
    t->data = d;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->owns = true;
    return RL_OK;
}

rl_status rl_tensor_new2(rl_tensor *t, int rows, int cols)
{
    int s[2] = {rows, cols};
    return rl_tensor_new(t, 2, s);
}

void rl_tensor_free(rl_tensor *t)
{
    if (!t) return;
    if (t->owns) rl_dealloc(t->data);
    memset(t, 0, sizeof *t);
}

size_t rl_tensor_numel(const rl_tensor *t) { return rl_shape_numel(t->ndim, t->shape); }

rl_tensor rl_tensor_view(float *data, int ndim, const int *shape)
{
    RL_ASSERT(ndim >= 1 && ndim <= RL_MAX_DIMS, "view: ndim %d", ndim);
    rl_tensor t = {.data = data, .ndim = ndim, .owns = false};
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    return t;
}

rl_tensor rl_tensor_view2(float *data, int rows, int cols)
{
    int s[2] = {rows, cols};
    return rl_tensor_view(data, 2, s);
}

rl_tensor rl_tensor_rows(const rl_tensor *t, int row0, int rows)
{
    RL_ASSERT(row0 >= 0 && rows >= 0 && row0 + rows <= t->shape[0],
              "rows [%d, %d) outside a tensor of %d rows", row0, row0 + rows, t->shape[0]);
    size_t inner = rl_shape_numel(t->ndim - 1, t->shape + 1);
    rl_tensor v = *t;
    v.owns = false;
    v.shape[0] = rows;
    v.data = t->data + (size_t)row0 * inner;
    return v;
}

/* Blocks of RL_BLOCK floats, one thread each (rl_par.h): a plain loop or
 * memcpy per block. */
#define RL_BLOCK 8192

void rl_fill(float *x, size_t n, float v)
{
    const size_t nb = (n + RL_BLOCK - 1) / RL_BLOCK;
    RL_PAR_FOR_W(nb, RL_BLOCK)
    for (size_t b = 0; b < nb; b++) {
        const size_t lo = b * RL_BLOCK, hi = lo + RL_BLOCK < n ? lo + RL_BLOCK : n;
        if (v == 0.0f && !signbit(v)) memset(x + lo, 0, (hi - lo) * sizeof *x);
        else
            for (size_t i = lo; i < hi; i++) x[i] = v;
    }
}

void rl_copy(float *dst, const float *src, size_t n)
{
    if (!n) return;
    const uintptr_t d = (uintptr_t)dst, sr = (uintptr_t)src, bytes = n * sizeof *dst;
    if (!(d + bytes <= sr || sr + bytes <= d)) { /* overlapping: one memmove */
        memmove(dst, src, n * sizeof *dst);
        return;
    }
    const size_t nb = (n + RL_BLOCK - 1) / RL_BLOCK;
    RL_PAR_FOR_W(nb, RL_BLOCK)
    for (size_t b = 0; b < nb; b++) {
        const size_t lo = b * RL_BLOCK, hi = lo + RL_BLOCK < n ? lo + RL_BLOCK : n;
        memcpy(dst + lo, src + lo, (hi - lo) * sizeof *dst);
    }
}

bool rl_all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

void rl_transpose(float *dst, const float *src, int rows, int cols)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) dst[(size_t)j * rows + i] = src[(size_t)i * cols + j];
}
