/* rl_adapter_impl.h -- the adapter struct and the per-method operation table.
 * Private to lib/adapters: callers use rl_adapter.h. */
#ifndef RL_ADAPTER_IMPL_H
#define RL_ADAPTER_IMPL_H

#include "../core/rl_blas.h"
#include "rl_adapter.h"

#define RL_MAX_PARAM_INFO 2

typedef struct {
    const char *name;
    /* workspace floats needed for up to n_max rows */
    size_t (*work_size)(const rl_adapter *a, int n_max);
    void (*reset)(rl_adapter *a);
    void (*forward)(rl_adapter *a, const float *x, int n, float *y);
    void (*backward)(rl_adapter *a, const float *x, const float *dy, int n, float *dx);
    void (*delta_weight)(rl_adapter *a, float *dw);
} rl_adapter_ops;

struct rl_adapter {
    const rl_adapter_ops *ops;
    rl_adapter_config cfg;
    int d_out, d_in, max_tokens;
    float scaling;
    float *params, *grads;
    size_t n_params;
    int n_info;
    rl_param_info info[RL_MAX_PARAM_INFO];
    const rl_shared_bases *bases;   /* borrowed */
    float *work;
    size_t n_work;
    /* Forward intermediates kept for backward (LoRA's and VeRA's h,
     * RandLora's UA and H): only under rl_layer, whose contract is that
     * backward follows forward on the same x, n and parameters. rl_layer sets
     * keep_fwd around its forward call (the method then records fwd_n = n)
     * and use_fwd around its backward call; any other forward resets fwd_n
     * to -1, and every backward ends it. */
    bool keep_fwd, use_fwd;
    int fwd_n;
    int parts_cap;          /* LoRA, VeRA: row parts whose partial sums the workspace holds */
    int skinny_rows;        /* LoRA, VeRA: rows per block of the skinny products */
    /* randlora: mn = min(d_in, d_out), mx = max, nb = ceil(mn / r), K = r·nb */
    int mn, mx, nb, K;
    /* randlora with very_sparse bases: ternary kernels (rl_randlora_ternary.c).
     * t_aend[k] ends row k of A's index at columns < mn; row c of UA has its
     * nonzero values at uav[t_off[c] .. t_off[c+1]) */
    bool ternary;
    int *t_aend, *t_off;
    size_t t_nnz;
};

extern const rl_adapter_ops rl_full_ops, rl_lora_ops, rl_vera_ops, rl_randlora_ops;

/* LoRA's and VeRA's skinny products (an (n, r) intermediate, r << d)
 * run in row parts on the BLAS threads (rl_blas_run_parts): part p of P
 * takes rows [n·p/P, n·(p+1)/P) on its own thread with BLAS on one thread,
 * skinny_rows rows at a time (rl_blas_skinny_rows: 32 for r = 32 and 768
 * features on OpenBLAS's AVX-512 cores, whose small-matrix kernels then
 * skip packing; 256 elsewhere), so that the block of x and dy one product
 * reads is still in cache for the next. OpenBLAS's own split of these
 * products scales poorly: at n = 4096, 768 features, r = 32 LoRA's backward
 * products took 7.7 ms on 1 thread, 5.7 ms on 2 threads through OpenBLAS,
 * 4.4 ms in 2 parts (256-row blocks).
 * The sums over rows (LoRA's dA and dB, VeRA's T) add block by block within
 * a part, then part by part in order: for a given number of parts and
 * OpenBLAS core the result is fixed. An adapter holds the partial sums of
 * up to parts_cap parts: the BLAS thread count when it was made, at least
 * 2, at most RL_PARTS_MAX; fewer than RL_PARTS_MIN_ROWS rows a part run as
 * one. */
#define RL_PARTS_MAX 8
#define RL_PARTS_MIN_ROWS 64

static inline int rl_parts_cap(void)
{
    const int t = rl_blas_threads();
    return t < 2 ? 2 : t > RL_PARTS_MAX ? RL_PARTS_MAX : t;
}

static inline int rl_parts(const rl_adapter *a, int n)
{
    int t = rl_blas_threads();
    if (t > a->parts_cap) t = a->parts_cap;
    return t > 1 && n >= RL_PARTS_MIN_ROWS * t ? t : 1;
}

static inline void rl_part_rows(int n, int part, int parts, int *lo, int *hi)
{
    *lo = (int)((long long)n * part / parts);
    *hi = (int)((long long)n * (part + 1) / parts);
}

/* h (hi - lo, r) := rows [lo, hi) of x (d_in columns) times Aᵀ, for A
 * (r, d_in) with row stride lda: skinny_rows rows at a time. */
static inline void rl_skinny_xat(const rl_adapter *a, const float *x, int lo, int hi, const float *A, int lda, float *h)
{
    const int r = a->cfg.r, di = a->d_in;
    for (int b0 = lo; b0 < hi; b0 += a->skinny_rows) {
        const int m = hi - b0 < a->skinny_rows ? hi - b0 : a->skinny_rows;
        rl_gemm(RL_NOTRANS, RL_TRANS, m, r, di, 1.0f, x + (size_t)b0 * di, di, A, lda, 0.0f, h + (size_t)(b0 - lo) * r, r);
    }
}

/* dst[e] += the partial sums of parts 1..parts-1, in order; part p's n
 * floats start at from_part1 + (p - 1)·stride. */
void rl_parts_add(float *dst, const float *from_part1, size_t stride, size_t n, int parts);

/* Are the forward intermediates of n rows there for this backward? */
static inline bool rl_fwd_cached(const rl_adapter *a, int n) { return a->use_fwd && a->fwd_n == n; }
/* A forward records what it keeps. */
static inline void rl_fwd_keep(rl_adapter *a, int n) { a->fwd_n = a->keep_fwd ? n : -1; }

/* RandLora's materialised path (rl_layer.c): given G = dyᵀ x (d_out, d_in),
 * accumulate dλ and dΓ through dUA = s · UBᵀ · dM, where dM = G (d_in <= d_out)
 * or Gᵀ (d_in > d_out), a chunk of UA_CHUNK rows at a time (the first block
 * of the workspace). */
void rl_randlora_grads_from_G(rl_adapter *a, const float *G);
/* dx (n, d_in) += the adapter's part of ∂L/∂x alone, through the factors
 * (dense kernels, an adapter with per-row workspace for n rows): the dx term
 * of a step whose parameter gradients take the materialised route. */
void rl_randlora_dx_acc(rl_adapter *a, const float *dy, int n, float *dx);
/* dw := s·ΔW + beta·dw, built a chunk of UA rows at a time (UA_CHUNK). */
void rl_randlora_delta_weight_acc(rl_adapter *a, float *dw, float beta);

/* VeRA's materialised routes (rl_layer.c): dw := ΔW + beta·dw; dλ_b, dλ_d
 * accumulated from G = dyᵀ x (d_out, d_in); dx (n, d_in) += the adapter's
 * part of ∂L/∂x alone, through the factors (the dx term of a step whose
 * parameter gradients take the materialised route). They use the workspace
 * past the two per-row blocks, so a forward's kept h survives them. */
void rl_vera_delta_weight_acc(rl_adapter *a, float *dw, float beta);
void rl_vera_grads_from_G(rl_adapter *a, const float *G);
void rl_vera_dx_acc(rl_adapter *a, const float *dy, int n, float *dx);

/* LoRA's materialised forward and dx (rl_layer.c): dw := s·B·A + beta·dw.
 * (LoRA's parameter gradients always take the factors.) */
void rl_lora_delta_weight_acc(rl_adapter *a, float *dw, float beta);

/* ---- ternary kernels (rl_randlora_ternary.c), used when a->ternary ---- */
rl_status rl_tern_init(rl_adapter *a);          /* t_aend, t_off, t_nnz */
void rl_tern_free(rl_adapter *a);
size_t rl_tern_work_size(const rl_adapter *a, int n_max);
void rl_tern_forward(rl_adapter *a, const float *x, int n, float *y);
void rl_tern_backward(rl_adapter *a, const float *x, const float *dy, int n, float *dx);
void rl_tern_delta_weight_acc(rl_adapter *a, float *dw, float beta);
void rl_tern_grads_from_G(rl_adapter *a, const float *G);

#endif
