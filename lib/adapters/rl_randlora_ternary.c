/* rl_randlora_ternary.c -- RandLora with very_sparse (ternary) bases:
 * additions and subtractions instead of multiplications.
 *
 * Every entry of A is 0 or ±a_mag and every entry of B 0 or ±b_mag, and with
 * very_sparse bases only a fraction 1/sqrt(min_dim) of them is nonzero
 * (peft-semantics.md §2.2). UA[c, q] = (λ[k, b] · A[k, q]) · Γ[b, q] is then
 * nonzero only where A[k, q] is, so every product with UA or UB becomes a sum
 * over index lists (rl_shared_bases' ternary index). To keep the inner loops
 * contiguous and vectorisable, the kernels work on transposed activations:
 * row q of xᵀ (d_in, n) is feature q of all n tokens, and each nonzero does
 * one axpy of length n.
 *
 * d_in <= d_out (mn = d_in):                 d_in > d_out (mn = d_out):
 *   Hᵀ[c]  = Σ_{q∈A_k} UA[c,q] xᵀ[q]           Hᵀ[c]  = Σ_{p∈UB col c} ±b xᵀ[p]
 *   yᵀ[p] += s Σ_{c∈UB row p} ±b Hᵀ[c]         yᵀ[q] += s Σ_c UA[c,q] Hᵀ[c]
 *   dHᵀ[c] = s Σ_{p∈UB col c} ±b dyᵀ[p]        g[c,q] = s <Hᵀ[c], dyᵀ[q]>
 *   g[c,q] = <dHᵀ[c], xᵀ[q]>                   dHᵀ[c] = s Σ_q UA[c,q] dyᵀ[q]
 *   dxᵀ[q] += Σ_c UA[c,q] dHᵀ[c]               dxᵀ[p] += Σ_{c∈UB row p} ±b dHᵀ[c]
 * g is ∂L/∂UA at A's nonzeros only -- the factor gradients need nothing else.
 * The values agree with the dense path up to float32 summation order.
 */
/* The inner loops are axpys and dots of length n (tokens): let GCC vectorise
 * them (at -O2 it only does so for loops whose trip count it knows). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include <stdlib.h>
#include <string.h>

#include "../core/rl_tensor.h"
#include "rl_adapter_impl.h"

/* Tokens are processed in tiles of TILE rows, so that a tile's transposed
 * activations (d_in + d_out + 2K rows of TILE floats) stay in cache: one
 * axpy per nonzero over all n tokens would stream them from memory. */
#define TILE 128

static inline void pair_of(const rl_adapter *a, int c, int *k, int *b)
{
    if (a->cfg.pairing == RL_PAIRING_PAPER) {
        *k = c % a->cfg.r;
        *b = c / a->cfg.r;
    } else {
        *k = c / a->nb;
        *b = c % a->nb;
    }
}

rl_status rl_tern_init(rl_adapter *a)
{
    const rl_shared_bases *b = a->bases;
    a->t_aend = rl_alloc((size_t)a->cfg.r * sizeof(int));
    a->t_off = rl_alloc(((size_t)a->K + 1) * sizeof(int));
    if (!a->t_aend || !a->t_off) return rl_fail(RL_ENOMEM, "randlora: cannot allocate the ternary offsets");
    for (int k = 0; k < a->cfg.r; k++) { /* columns are ascending: stop at mn */
        int j = b->a_ptr[k];
        while (j < b->a_ptr[k + 1] && b->a_idx[j] < a->mn) j++;
        a->t_aend[k] = j;
    }
    size_t off = 0;
    for (int c = 0; c < a->K; c++) {
        int k, bb;
        pair_of(a, c, &k, &bb);
        a->t_off[c] = (int)off;
        off += (size_t)(a->t_aend[k] - b->a_ptr[k]);
    }
    a->t_off[a->K] = (int)off;
    a->t_nnz = off;
    return RL_OK;
}

void rl_tern_free(rl_adapter *a)
{
    rl_dealloc(a->t_aend);
    rl_dealloc(a->t_off);
}

/* uav (t_nnz) and g (t_nnz); with rows, per tile part (parts_cap of them,
 * each running its own range of tiles on its own thread): g's partial sums
 * (t_nnz) and, for one tile of TILE tokens, xᵀ (d_in, TILE), Hᵀ and dHᵀ
 * (K, TILE), a (max(d_in, d_out), TILE) buffer for yᵀ / dyᵀ, and dxᵀ
 * (d_in, TILE). Part 0's g is the g above. */
static size_t tile_floats(const rl_adapter *a)
{
    size_t big = (size_t)(a->d_in > a->d_out ? a->d_in : a->d_out);
    return (size_t)TILE * (2 * (size_t)a->d_in + 2 * (size_t)a->K + big);
}

/* Where the tile buffers start: after uav and the parts' g, rounded up to
 * 16 floats (64 bytes), so that every tile row starts on a cache line
 * (TILE is a multiple of 16) whatever t_nnz is. */
static size_t tiles_at(const rl_adapter *a)
{
    return (a->t_nnz * (1 + (size_t)a->parts_cap) + 15) / 16 * 16;
}

size_t rl_tern_work_size(const rl_adapter *a, int n_max)
{
    if (n_max == 0) return 2 * a->t_nnz;
    return tiles_at(a) + (size_t)a->parts_cap * tile_floats(a);
}

/* Workspace layout of one part. */
typedef struct {
    float *uav, *g, *xT, *HT, *dHT, *bT, *dxT;
} tws;

static tws ws_of(const rl_adapter *a, int part)
{
    tws w;
    w.uav = a->work;
    w.g = w.uav + a->t_nnz * (1 + (size_t)part);
    w.xT = a->work + tiles_at(a) + tile_floats(a) * (size_t)part;
    w.HT = w.xT + (size_t)TILE * a->d_in;
    w.dHT = w.HT + (size_t)TILE * a->K;
    w.bT = w.dHT + (size_t)TILE * a->K;
    w.dxT = w.bT + (size_t)TILE * (a->d_in > a->d_out ? a->d_in : a->d_out);
    return w;
}

/* UA's nonzero values: (λ[k,b] · A[k,q]) · Γ[b,q], the dense path's rounding. */
static void build_uav(const rl_adapter *a, float *uav)
{
    const rl_shared_bases *B = a->bases;
    const int nb = a->nb, mn = a->mn;
    const float *lam = a->params, *gam = a->params + (size_t)a->cfg.r * nb;
    for (int c = 0; c < a->K; c++) {
        int k, b;
        pair_of(a, c, &k, &b);
        const float l = lam[(size_t)k * nb + b];
        float *v = uav + a->t_off[c];
        for (int j = B->a_ptr[k]; j < a->t_aend[k]; j++)
            *v++ = (l * (float)(B->a_sgn[j] * B->a_mag)) * gam[(size_t)b * mn + B->a_idx[j]];
    }
}

/* dλ, dΓ from g (∂L/∂UA at A's nonzeros), as accumulate_factor_grads. */
static void factor_grads(rl_adapter *a, const float *g)
{
    const rl_shared_bases *B = a->bases;
    const int nb = a->nb, mn = a->mn;
    const float *lam = a->params, *gam = a->params + (size_t)a->cfg.r * nb;
    float *dlam = a->grads, *dgam = a->grads + (size_t)a->cfg.r * nb;
    for (int c = 0; c < a->K; c++) {
        int k, b;
        pair_of(a, c, &k, &b);
        const float l = lam[(size_t)k * nb + b];
        const float *gc = g + a->t_off[c];
        double acc = 0;
        for (int j = B->a_ptr[k]; j < a->t_aend[k]; j++) {
            int q = B->a_idx[j];
            float ga = *gc++ * (float)(B->a_sgn[j] * B->a_mag);
            acc += (double)ga * gam[(size_t)b * mn + q];
            dgam[(size_t)b * mn + q] += ga * l;
        }
        dlam[(size_t)k * nb + b] += (float)acc;
    }
}

/* dst (rows, cols) += srcᵀ for src (cols, rows) */
static void add_transposed(float *dst, const float *srcT, int rows, int cols)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) dst[(size_t)i * cols + j] += srcT[(size_t)j * rows + i];
}

static inline void axpy(float *restrict y, float a, const float *restrict x, int n)
{
    for (int t = 0; t < n; t++) y[t] += a * x[t];
}

/* Eight independent partial sums (float, as a GEMM accumulates): they let
 * the loop vectorise without reassociating a single running sum. */
static inline double dot(const float *restrict x, const float *restrict y, int n)
{
    float s[8] = {0};
    int t = 0;
    for (; t + 8 <= n; t += 8)
        for (int u = 0; u < 8; u++) s[u] += x[t + u] * y[t + u];
    float tail = 0;
    for (; t < n; t++) tail += x[t] * y[t];
    return (double)(((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))) + tail;
}

/* Hᵀ[c] = Σ_{p∈UB col c, p<lim} ±b_mag · srcᵀ[p] */
static void ub_cols(const rl_adapter *a, float *HT, const float *srcT, int lim, float scale, int n)
{
    const rl_shared_bases *B = a->bases;
    memset(HT, 0, (size_t)a->K * n * sizeof(float));
    for (int c = 0; c < a->K; c++)
        for (int j = B->bc_ptr[c]; j < B->bc_ptr[c + 1] && B->bc_idx[j] < lim; j++)
            axpy(HT + (size_t)c * n, scale * (float)(B->bc_sgn[j] * B->b_mag), srcT + (size_t)B->bc_idx[j] * n, n);
}

/* dstᵀ[p] += Σ_{c∈UB row p, c<K} ±b_mag · scale · Hᵀ[c], p < rows */
static void ub_rows(const rl_adapter *a, float *dstT, const float *HT, int rows, float scale, int n)
{
    const rl_shared_bases *B = a->bases;
    for (int p = 0; p < rows; p++)
        for (int j = B->br_ptr[p]; j < B->br_ptr[p + 1] && B->br_idx[j] < a->K; j++)
            axpy(dstT + (size_t)p * n, scale * (float)(B->br_sgn[j] * B->b_mag), HT + (size_t)B->br_idx[j] * n, n);
}

/* Hᵀ[c] = Σ_q scale · UA[c,q] · srcᵀ[q] */
static void ua_rows(const rl_adapter *a, float *HT, const float *uav, const float *srcT, float scale, int n)
{
    const rl_shared_bases *B = a->bases;
    for (int c = 0; c < a->K; c++) {
        int k, b;
        pair_of(a, c, &k, &b);
        float *h = HT + (size_t)c * n;
        memset(h, 0, (size_t)n * sizeof(float));
        const float *v = uav + a->t_off[c];
        for (int j = B->a_ptr[k]; j < a->t_aend[k]; j++) axpy(h, scale * *v++, srcT + (size_t)B->a_idx[j] * n, n);
    }
}

/* dstᵀ[q] += Σ_c scale · UA[c,q] · Hᵀ[c] */
static void ua_cols(const rl_adapter *a, float *dstT, const float *uav, const float *HT, float scale, int n)
{
    const rl_shared_bases *B = a->bases;
    for (int c = 0; c < a->K; c++) {
        int k, b;
        pair_of(a, c, &k, &b);
        const float *v = uav + a->t_off[c], *h = HT + (size_t)c * n;
        for (int j = B->a_ptr[k]; j < a->t_aend[k]; j++) axpy(dstT + (size_t)B->a_idx[j] * n, scale * *v++, h, n);
    }
}

/* g[c,q] += scale · <Hᵀ[c], srcᵀ[q]> at A's nonzeros */
static void ua_grad(const rl_adapter *a, float *g, const float *HT, const float *srcT, float scale, int n)
{
    const rl_shared_bases *B = a->bases;
    for (int c = 0; c < a->K; c++) {
        int k, b;
        pair_of(a, c, &k, &b);
        float *gc = g + a->t_off[c];
        const float *h = HT + (size_t)c * n;
        for (int j = B->a_ptr[k]; j < a->t_aend[k]; j++)
            *gc++ += scale * (float)dot(h, srcT + (size_t)B->a_idx[j] * n, n);
    }
}

static void tern_forward_tile(rl_adapter *a, const tws *w, const float *x, int n, float *y);
static void tern_backward_tile(rl_adapter *a, const tws *w, const float *x, const float *dy, int n, float *dx);

/* Tiles in parts: part p of P runs tiles [T·p/P, T·(p+1)/P) of the T tiles
 * on its own thread (rl_blas_run_parts), with its own tile buffers and, in
 * backward, its own partial g; the partials then add in part order, so for
 * a given number of parts the result is fixed. */
typedef struct {
    rl_adapter *a;
    const float *x, *dy;
    float *y, *dx;
    int n;
} tern_job;

static int tile_parts(const rl_adapter *a, int n)
{
    const int tiles = (n + TILE - 1) / TILE, p = rl_parts(a, n);
    return p < tiles ? p : tiles > 0 ? tiles : 1;
}

/* Part p's tiles: forward when j->dy is NULL, else backward into its own g. */
static void tern_part(void *ctx, int part, int parts)
{
    const tern_job *j = ctx;
    const rl_adapter *a = j->a;
    const tws w = ws_of(a, part);
    const int tiles = (j->n + TILE - 1) / TILE;
    int lo, hi;
    rl_part_rows(tiles, part, parts, &lo, &hi);
    if (j->dy) memset(w.g, 0, a->t_nnz * sizeof(float));
    for (int t = lo; t < hi; t++) {
        const int t0 = t * TILE, m = j->n - t0 < TILE ? j->n - t0 : TILE;
        const float *x = j->x + (size_t)t0 * a->d_in;
        if (!j->dy) tern_forward_tile(j->a, &w, x, m, j->y + (size_t)t0 * a->d_out);
        else
            tern_backward_tile(j->a, &w, x, j->dy + (size_t)t0 * a->d_out, m, j->dx ? j->dx + (size_t)t0 * a->d_in : NULL);
    }
}

void rl_tern_forward(rl_adapter *a, const float *x, int n, float *y)
{
    build_uav(a, a->work);
    tern_job j = {.a = a, .x = x, .y = y, .n = n};
    rl_blas_run_parts(tile_parts(a, n), tern_part, &j);
}

void rl_tern_backward(rl_adapter *a, const float *x, const float *dy, int n, float *dx)
{
    build_uav(a, a->work);
    tern_job j = {.a = a, .x = x, .dy = dy, .dx = dx, .n = n};
    const int parts = tile_parts(a, n);
    rl_blas_run_parts(parts, tern_part, &j);
    const tws w = ws_of(a, 0);
    if (parts > 1) rl_parts_add(w.g, w.g + a->t_nnz, a->t_nnz, a->t_nnz, parts);
    factor_grads(a, w.g);
}

/* One tile of n <= TILE tokens; UA's values (w.uav) are already built. */
static void tern_forward_tile(rl_adapter *a, const tws *wp, const float *x, int n, float *y)
{
    const int di = a->d_in, dout = a->d_out;
    const float s = a->scaling;
    const tws w = *wp;
    rl_transpose(w.xT, x, n, di);
    memset(w.bT, 0, (size_t)n * dout * sizeof(float));
    if (di <= dout) {
        ua_rows(a, w.HT, w.uav, w.xT, 1.0f, n);    /* Hᵀ = UA xᵀ   (K, n) */
        ub_rows(a, w.bT, w.HT, dout, s, n);        /* yᵀ += s UB Hᵀ */
    } else {
        ub_cols(a, w.HT, w.xT, di, 1.0f, n);       /* Hᵀ = UBᵀ xᵀ  (K, n) */
        ua_cols(a, w.bT, w.uav, w.HT, s, n);       /* yᵀ += s UAᵀ Hᵀ */
    }
    add_transposed(y, w.bT, n, dout);
}

/* One tile; the part's g accumulates over its tiles (zeroed by its part). */
static void tern_backward_tile(rl_adapter *a, const tws *wp, const float *x, const float *dy, int n, float *dx)
{
    const int di = a->d_in, dout = a->d_out;
    const float s = a->scaling;
    const tws w = *wp;
    rl_transpose(w.xT, x, n, di);
    rl_transpose(w.bT, dy, n, dout);                  /* dyᵀ (d_out, n) */
    if (di <= dout) {
        ub_cols(a, w.dHT, w.bT, dout, s, n);       /* dHᵀ = s UBᵀ dyᵀ */
        ua_grad(a, w.g, w.dHT, w.xT, 1.0f, n);     /* g = dHᵀ x at A's nonzeros */
        if (dx) {
            memset(w.dxT, 0, (size_t)n * di * sizeof(float));
            ua_cols(a, w.dxT, w.uav, w.dHT, 1.0f, n); /* dxᵀ += UAᵀ dHᵀ */
        }
    } else {
        ub_cols(a, w.HT, w.xT, di, 1.0f, n);       /* Hᵀ = UBᵀ xᵀ (recomputed) */
        ua_grad(a, w.g, w.HT, w.bT, s, n);         /* g = s Hᵀ dy */
        ua_rows(a, w.dHT, w.uav, w.bT, s, n);      /* dHᵀ = s UA dyᵀ */
        if (dx) {
            memset(w.dxT, 0, (size_t)n * di * sizeof(float));
            ub_rows(a, w.dxT, w.dHT, di, 1.0f, n); /* dxᵀ += UB dHᵀ */
        }
    }
    if (dx) add_transposed(dx, w.dxT, n, di);
}

void rl_tern_delta_weight_acc(rl_adapter *a, float *dw, float beta)
{
    const rl_shared_bases *B = a->bases;
    const int di = a->d_in, dout = a->d_out;
    const size_t nw = (size_t)dout * di;
    float *uav = a->work;
    if (beta == 0.0f) memset(dw, 0, nw * sizeof(float));
    else if (beta != 1.0f) for (size_t e = 0; e < nw; e++) dw[e] *= beta;
    build_uav(a, uav);
    /* ΔW[p, q] (d_in <= d_out) or ΔW[q, p] (d_in > d_out) += s·UB[p,c]·UA[c,q] */
    const int rows = di <= dout ? dout : di;
    for (int p = 0; p < rows; p++)
        for (int jb = B->br_ptr[p]; jb < B->br_ptr[p + 1] && B->br_idx[jb] < a->K; jb++) {
            int c = B->br_idx[jb], k, bb;
            pair_of(a, c, &k, &bb);
            const float coef = a->scaling * (float)(B->br_sgn[jb] * B->b_mag);
            const float *v = uav + a->t_off[c];
            if (di <= dout)
                for (int j = B->a_ptr[k]; j < a->t_aend[k]; j++) dw[(size_t)p * di + B->a_idx[j]] += coef * *v++;
            else
                for (int j = B->a_ptr[k]; j < a->t_aend[k]; j++) dw[(size_t)B->a_idx[j] * di + p] += coef * *v++;
        }
}

void rl_tern_grads_from_G(rl_adapter *a, const float *G)
{
    const rl_shared_bases *B = a->bases;
    const int di = a->d_in, dout = a->d_out, lim = di <= dout ? dout : di;
    float *g = a->work + a->t_nnz;
    /* g[c,q] = s Σ_{p∈UB col c} ±b G[p,q] (d_in <= d_out) or G[q,p] (d_in > d_out) */
    for (int c = 0; c < a->K; c++) {
        int k, bb;
        pair_of(a, c, &k, &bb);
        float *gc = g + a->t_off[c];
        for (int j = B->a_ptr[k]; j < a->t_aend[k]; j++) {
            int q = B->a_idx[j];
            float acc = 0;
            for (int jb = B->bc_ptr[c]; jb < B->bc_ptr[c + 1] && B->bc_idx[jb] < lim; jb++) {
                int p = B->bc_idx[jb];
                acc += (float)B->bc_sgn[jb] * (di <= dout ? G[(size_t)p * di + q] : G[(size_t)q * di + p]);
            }
            *gc++ = a->scaling * B->b_mag * acc;
        }
    }
    factor_grads(a, g);
}
