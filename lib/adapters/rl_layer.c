/* rl_layer.c -- adapted linear layer with factorised / materialised paths. */
#include "rl_layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/rl_blas.h"
#include "../core/rl_tensor.h"
#include "rl_adapter_impl.h"

struct rl_layer {
    const float *W, *b;
    rl_adapter *a;
    int d_out, d_in, max_tokens;
    rl_path path;
    float *merged;          /* W + ΔW, then G = dyᵀ x (materialised path) */
    rl_path last_path;      /* what the last forward did, for backward */
    int last_n;
};

static const char *const path_names[] = {"auto", "factorised", "materialised"};

const char *rl_path_name(rl_path p) { return (unsigned)p < 3 ? path_names[p] : "?"; }

rl_status rl_path_parse(const char *s, rl_path *out)
{
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, path_names[i]) == 0) {
            *out = (rl_path)i;
            return RL_OK;
        }
    return rl_fail(RL_EINVAL, "unknown path '%s' (expected auto, factorised or materialised)",
                   s ? s : "(null)");
}

rl_status rl_layer_new(rl_layer **out, const float *W, const float *b, rl_adapter *a,
                       int max_tokens, rl_path path)
{
    *out = NULL;
    if (!a) return rl_fail(RL_EINVAL, "layer: NULL adapter");
    rl_method m = rl_adapter_method(a);
    if (m != RL_METHOD_FULL && !W)
        return rl_fail(RL_EINVAL, "layer: a %s layer needs its frozen weight", rl_method_name(m));
    if ((unsigned)path > RL_PATH_MATERIALISED) return rl_fail(RL_EINVAL, "layer: bad path %d", (int)path);
    if (path == RL_PATH_MATERIALISED && m != RL_METHOD_RANDLORA)
        return rl_fail(RL_EINVAL, "layer: the materialised path exists for randlora only, not %s",
                       rl_method_name(m));
    if (m == RL_METHOD_RANDLORA && a->max_tokens == 0) {
        /* an adapter without per-row workspace: the materialised path only */
        if (path == RL_PATH_FACTORISED)
            return rl_fail(RL_EINVAL, "layer: the adapter was made with max_tokens 0, so it has no workspace "
                           "for the factorised path");
        path = RL_PATH_MATERIALISED;
        if (max_tokens <= 0) return rl_fail(RL_EINVAL, "layer: max_tokens %d must be positive", max_tokens);
    } else if (max_tokens <= 0 || max_tokens > a->max_tokens) {
        return rl_fail(RL_EINVAL, "layer: max_tokens %d outside 1..%d (the adapter's)", max_tokens,
                       a->max_tokens);
    }
    rl_layer *l = calloc(1, sizeof *l);
    if (!l) return rl_fail(RL_ENOMEM, "layer: no memory");
    *l = (rl_layer){.W = W, .b = b, .a = a, .d_out = a->d_out, .d_in = a->d_in,
                    .max_tokens = max_tokens, .path = m == RL_METHOD_RANDLORA ? path : RL_PATH_FACTORISED,
                    .last_n = -1};
    if (l->path != RL_PATH_FACTORISED) {
        l->merged = rl_alloc_floats((size_t)l->d_out * l->d_in);
        if (!l->merged) {
            free(l);
            return rl_fail(RL_ENOMEM, "layer: cannot allocate a %dx%d buffer", a->d_out, a->d_in);
        }
    }
    *out = l;
    return RL_OK;
}

void rl_layer_free(rl_layer *l)
{
    if (!l) return;
    rl_dealloc(l->merged);
    free(l);
}

rl_adapter *rl_layer_adapter(rl_layer *l) { return l->a; }

double rl_step_flops(rl_method method, rl_bases_kind kind, rl_path path, int d_out, int d_in, int r, int n,
                     bool need_dx)
{
    const double N = n, o = d_out, i = d_in, R = r;
    const double base = 2 * N * o * i * (need_dx ? 2 : 1);
    switch (method) {
    case RL_METHOD_FULL: return 2 * N * o * i * (need_dx ? 3 : 2);
    case RL_METHOD_LORA: /* fwd h, y; bwd h (recomputed), dB, dh, dA [, dx] */
        return base + 2 * N * R * (i + o) + 2 * N * R * (2 * i + 2 * o) + (need_dx ? 2 * N * R * i : 0);
    case RL_METHOD_VERA: /* fwd h, y; bwd h (recomputed), P, dz [, dx] */
        return base + 2 * N * R * (i + o) + 2 * N * R * (i + 2 * o) + (need_dx ? 2 * N * R * i : 0);
    case RL_METHOD_RANDLORA: {
        const int mni = d_out < d_in ? d_out : d_in;
        const double mn = mni, mx = d_out < d_in ? i : o, K = (double)r * rl_randlora_n_bases(mni, r);
        if (kind == RL_BASES_VERY_SPARSE) {
            /* ternary kernels: 2 flops per nonzero and token; density ~1/sqrt(min_dim)
             * (an estimate: the shared bases' min_dim may be larger than this layer's) */
            const double d = 1.0 / sqrt(mn), nua = K * mn * d, nub = mx * K * d;
            if (path == RL_PATH_MATERIALISED)
                return 2 * mx * (K * d) * (mn * d) + 2 * N * o * i * (need_dx ? 3 : 2) + 2 * K * (mx * d) * (mn * d);
            return base + 2 * N * (nua + nub) + 2 * N * (nua + nub) + (i > o ? 2 * N * nub : 0) +
                   (need_dx ? 2 * N * (i > o ? nub : nua) : 0);
        }
        if (path == RL_PATH_MATERIALISED)
            return 2 * o * i * K + 2 * N * o * i * (need_dx ? 3 : 2) + 2 * K * o * i + 2 * K * mn + 4 * K * mn;
        /* fwd H, y; bwd dH, dUA (+ H recomputed and dH from dy UAᵀ when
         * d_in > d_out) [, dx]; UA built twice; factor gradients */
        double f = base + 4 * N * K * (i + o) + 4 * K * mn + 4 * K * mn;
        if (i > o) f += 2 * N * K * o;
        if (need_dx) f += 2 * N * K * i;
        return f;
    }
    }
    return 0;
}

rl_path rl_path_for(rl_method method, rl_bases_kind kind, int d_out, int d_in, int r, int n, bool need_dx)
{
    if (method != RL_METHOD_RANDLORA) return RL_PATH_FACTORISED;
    return rl_step_flops(method, kind, RL_PATH_MATERIALISED, d_out, d_in, r, n, need_dx) <
                   rl_step_flops(method, kind, RL_PATH_FACTORISED, d_out, d_in, r, n, need_dx)
               ? RL_PATH_MATERIALISED
               : RL_PATH_FACTORISED;
}

/* The kernels the adapter really runs: ternary ones only for very_sparse
 * bases without dense_kernels. */
static rl_bases_kind kernel_kind(const rl_adapter *a)
{
    return a->ternary ? RL_BASES_VERY_SPARSE : RL_BASES_DENSE;
}

double rl_layer_step_flops(const rl_layer *l, rl_path path, int n, bool need_dx)
{
    return rl_step_flops(l->a->cfg.method, kernel_kind(l->a), path, l->d_out, l->d_in, l->a->cfg.r, n, need_dx);
}

rl_path rl_layer_choose_path(const rl_layer *l, int n, bool need_dx)
{
    if (l->path != RL_PATH_AUTO) return l->path;
    return rl_path_for(l->a->cfg.method, kernel_kind(l->a), l->d_out, l->d_in, l->a->cfg.r, n, need_dx);
}

static void fill_bias(const rl_layer *l, int n, float *y)
{
    if (!l->b) {
        memset(y, 0, (size_t)n * l->d_out * sizeof(float));
        return;
    }
    for (int t = 0; t < n; t++) memcpy(y + (size_t)t * l->d_out, l->b, (size_t)l->d_out * sizeof(float));
}

rl_status rl_layer_forward(rl_layer *l, const float *x, int n, float *y)
{
    if (n < 0 || n > l->max_tokens)
        return rl_fail(RL_EINVAL, "layer forward: %d rows, at most %d", n, l->max_tokens);
    const int o = l->d_out, i = l->d_in;
    fill_bias(l, n, y);
    rl_path p = rl_layer_choose_path(l, n, true);
    l->last_path = p;
    l->last_n = n;
    if (n == 0) return RL_OK;
    if (l->a->cfg.method == RL_METHOD_FULL) return rl_adapter_forward(l->a, x, n, y);
    if (p == RL_PATH_MATERIALISED) {
        /* M = W + ΔW (ΔW accumulated onto a copy of W);  y += x Mᵀ */
        memcpy(l->merged, l->W, (size_t)o * i * sizeof(float));
        rl_randlora_delta_weight_acc(l->a, l->merged, 1.0f);
        rl_gemm(RL_NOTRANS, RL_TRANS, n, o, i, 1.0f, x, i, l->merged, i, 1.0f, y, o);
        return RL_OK;
    }
    rl_gemm(RL_NOTRANS, RL_TRANS, n, o, i, 1.0f, x, i, l->W, i, 1.0f, y, o); /* y += x Wᵀ */
    return rl_adapter_forward(l->a, x, n, y);
}

rl_status rl_layer_backward(rl_layer *l, const float *x, const float *dy, int n, float *dx)
{
    if (n != l->last_n)
        return rl_fail(RL_EINVAL, "layer backward: %d rows but the last forward had %d "
                       "(backward must follow forward)", n, l->last_n);
    const int o = l->d_out, i = l->d_in;
    if (dx) memset(dx, 0, (size_t)n * i * sizeof(float));
    if (n == 0) return RL_OK;
    if (l->a->cfg.method == RL_METHOD_FULL) return rl_adapter_backward(l->a, x, dy, n, dx);
    if (l->last_path == RL_PATH_MATERIALISED) {
        if (dx) rl_gemm(RL_NOTRANS, RL_NOTRANS, n, i, o, 1.0f, dy, o, l->merged, i, 0.0f, dx, i); /* dx = dy M */
        rl_gemm(RL_TRANS, RL_NOTRANS, o, i, n, 1.0f, dy, o, x, i, 0.0f, l->merged, i); /* G = dyᵀ x */
        rl_randlora_grads_from_G(l->a, l->merged);
        l->last_n = -1; /* M was overwritten by G */
        return RL_OK;
    }
    if (dx) rl_gemm(RL_NOTRANS, RL_NOTRANS, n, i, o, 1.0f, dy, o, l->W, i, 0.0f, dx, i); /* dx = dy W */
    return rl_adapter_backward(l->a, x, dy, n, dx);
}
