/* rl_layer.c -- adapted linear layer; RandLora's step term by term. */
#include "rl_layer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/rl_blas.h"
#include "../core/rl_par.h"
#include "../core/rl_tensor.h"
#include "rl_adapter_impl.h"

struct rl_layer {
    const float *W, *b;
    rl_adapter *a;
    int d_out, d_in, max_tokens;
    rl_path path;
    bool need_dx;           /* what the forward plans for */
    bool fixed;             /* plan fixed by rl_layer_fix_plan */
    rl_plan plan;
    float *merged;          /* W + ΔW, then G = dyᵀ x (materialised routes) */
    rl_plan last_plan;      /* what the last forward planned, for backward */
    bool m_built;           /* merged holds W + ΔW of the last forward */
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

rl_plan rl_plan_uniform(rl_path p) { return (rl_plan){p, p, p}; }

const char *rl_plan_name(rl_plan p, bool need_dx, char *buf, size_t len)
{
    bool f = p.fwd == p.grads && (!need_dx || p.dx == p.fwd);
    if (f) snprintf(buf, len, "%s", rl_path_name(p.fwd));
    else if (need_dx)
        snprintf(buf, len, "mixed(fwd=%c grads=%c dx=%c)", p.fwd == RL_PATH_MATERIALISED ? 'M' : 'F',
                 p.grads == RL_PATH_MATERIALISED ? 'M' : 'F', p.dx == RL_PATH_MATERIALISED ? 'M' : 'F');
    else
        snprintf(buf, len, "mixed(fwd=%c grads=%c)", p.fwd == RL_PATH_MATERIALISED ? 'M' : 'F',
                 p.grads == RL_PATH_MATERIALISED ? 'M' : 'F');
    return buf;
}

/* Methods with materialised routes: every adapter. RandLora's and VeRA's
 * parameter gradients can also come from G = dyᵀ x; LoRA's always take the
 * factors. */
static bool has_m(rl_method m) { return m != RL_METHOD_FULL; }
static bool grads_m_ok(rl_method m) { return m == RL_METHOD_RANDLORA || m == RL_METHOD_VERA; }

/* Whose plans take one route for every term: the ternary kernels. */
static bool uniform_only(const rl_adapter *a) { return a->ternary; }

/* The (d_out, d_in) buffer of the materialised routes: W + ΔW, then G. */
static rl_status alloc_merged(rl_layer *l)
{
    l->merged = rl_alloc_floats((size_t)l->d_out * l->d_in);
    return l->merged ? RL_OK : rl_fail(RL_ENOMEM, "layer: cannot allocate a %dx%d buffer", l->d_out, l->d_in);
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
    if (path == RL_PATH_MATERIALISED && !grads_m_ok(m))
        return rl_fail(RL_EINVAL, "layer: the all-materialised path exists for randlora and vera only, not %s "
                       "(whose parameter gradients take the factors; path auto gives it ΔW for forward and dx)",
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
    *l = (rl_layer){.W = W, .b = b, .a = a, .d_out = a->d_out, .d_in = a->d_in, .max_tokens = max_tokens,
                    .path = has_m(m) ? path : RL_PATH_FACTORISED, .need_dx = true, .last_n = -1};
    /* the buffer, where a plan can use it (LoRA: a plan for max_tokens rows
     * with a materialised term; its savings grow with the rows) */
    bool want_m = l->path != RL_PATH_FACTORISED;
    if (want_m && m == RL_METHOD_LORA) {
        rl_plan p0 = rl_plan_for(m, RL_BASES_DENSE, l->d_out, l->d_in, a->cfg.r, max_tokens, false, false),
                p1 = rl_plan_for(m, RL_BASES_DENSE, l->d_out, l->d_in, a->cfg.r, max_tokens, true, false);
        want_m = p0.fwd == RL_PATH_MATERIALISED || p1.fwd == RL_PATH_MATERIALISED || p1.dx == RL_PATH_MATERIALISED;
    }
    if (want_m) {
        rl_status st = alloc_merged(l);
        if (st != RL_OK) {
            free(l);
            return st;
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

void rl_layer_expect_dx(rl_layer *l, bool need_dx) { l->need_dx = need_dx; }

rl_adapter *rl_layer_adapter(rl_layer *l) { return l->a; }

/* ---- the FLOP model ---- */

static double randlora_ternary_flops(rl_path path, double N, double o, double i, double K, double mn, double mx,
                                     bool need_dx)
{
    /* ternary kernels: 2 flops per nonzero and token; density ~1/sqrt(min_dim)
     * (an estimate: the shared bases' min_dim may be larger than this layer's) */
    const double base = 2 * N * o * i * (need_dx ? 2 : 1);
    const double d = 1.0 / sqrt(mn), nua = K * mn * d, nub = mx * K * d;
    if (path == RL_PATH_MATERIALISED)
        return 2 * mx * (K * d) * (mn * d) + 2 * N * o * i * (need_dx ? 3 : 2) + 2 * K * (mx * d) * (mn * d);
    return base + 2 * N * (nua + nub) + 2 * N * (nua + nub) + (i > o ? 2 * N * nub : 0) +
           (need_dx ? 2 * N * (i > o ? nub : nua) : 0);
}

double rl_plan_flops(rl_method method, rl_bases_kind kind, rl_plan p, int d_out, int d_in, int r, int n,
                     bool need_dx)
{
    const double N = n, o = d_out, i = d_in, R = r;
    const double base = 2 * N * o * i * (need_dx ? 2 : 1);
    switch (method) {
    case RL_METHOD_FULL: return 2 * N * o * i * (need_dx ? 3 : 2);
    case RL_METHOD_LORA:
    case RL_METHOD_VERA: {
        /* LoRA (B A, s) and VeRA (Bd A_s) share the shape: h = x Aᵀ (n, r) */
        const bool M_fwd = p.fwd == RL_PATH_MATERIALISED, vera = method == RL_METHOD_VERA;
        const double h = 2 * N * R * i, dW = 2 * o * i * R;
        double f = base + (M_fwd ? dW : h + 2 * N * R * o); /* ΔW, or h and y += h Bᵀ */
        if (p.grads == RL_PATH_MATERIALISED) f += 2 * N * o * i + 2 * o * i * R; /* G, T = G Aᵀ */
        else if (vera) f += 2 * N * R * o + (M_fwd ? h : 0);                        /* T = dyᵀ h */
        else f += 2 * N * R * (2 * o + i) + (M_fwd ? h : 0);                       /* dB, dh, dA */
        if (vera) f += 4 * o * R;                                                  /* the reductions */
        if (need_dx) {
            if (p.dx == RL_PATH_MATERIALISED) f += M_fwd ? 0 : dW;
            else f += h + (vera || p.grads == RL_PATH_MATERIALISED ? 2 * N * R * o : 0); /* [dh,] dx += dh A */
        }
        return f;
    }
    case RL_METHOD_RANDLORA: {
        const int mni = d_out < d_in ? d_out : d_in;
        const double mn = mni, mx = d_out < d_in ? i : o, K = (double)r * rl_randlora_n_bases(mni, r);
        if (kind == RL_BASES_VERY_SPARSE) return randlora_ternary_flops(p.fwd, N, o, i, K, mn, mx, need_dx);
        const double U = 2 * K * mn, Fg = 4 * K * mn, dW = 2 * o * i * K + U;
        const bool M_fwd = p.fwd == RL_PATH_MATERIALISED, M_gr = p.grads == RL_PATH_MATERIALISED;
        double f = base;
        /* a factorised forward keeps UA and H (x·UB when d_in > d_out) for backward */
        f += M_fwd ? dW : 2 * N * K * (i + o) + U;
        if (M_gr) f += 2 * N * o * i + 2 * K * o * i + Fg;
        else f += (i <= o ? 2 * N * K * (i + o) : 2 * N * K * o + (M_fwd ? 2 * N * K * i : 0)) + Fg;
        if (need_dx) {
            if (p.dx == RL_PATH_MATERIALISED) f += M_fwd ? 0 : dW;
            else f += 2 * N * K * i + (M_fwd ? U : 0) + (!M_gr && i <= o ? 0 : 2 * N * K * o);
        }
        return f;
    }
    }
    return 0;
}

rl_plan rl_plan_for(rl_method method, rl_bases_kind kind, int d_out, int d_in, int r, int n, bool need_dx,
                    bool only_materialised)
{
    const rl_path F = RL_PATH_FACTORISED, M = RL_PATH_MATERIALISED;
    if (!has_m(method)) return rl_plan_uniform(F);
    if (only_materialised && grads_m_ok(method)) return rl_plan_uniform(M);
    if (kind == RL_BASES_VERY_SPARSE && method == RL_METHOD_RANDLORA)
        return rl_plan_flops(method, kind, rl_plan_uniform(M), d_out, d_in, r, n, need_dx) <
                       rl_plan_flops(method, kind, rl_plan_uniform(F), d_out, d_in, r, n, need_dx)
                   ? rl_plan_uniform(M)
                   : rl_plan_uniform(F);
    /* every combination, factorised first so that ties keep PEFT's route */
    rl_plan best = rl_plan_uniform(F);
    double bf = rl_plan_flops(method, kind, best, d_out, d_in, r, n, need_dx);
    for (int c = 1; c < (need_dx ? 8 : 4); c++) {
        rl_plan p = {c & 1 ? M : F, c & 2 ? M : F, c & 4 ? M : F};
        if (!need_dx) p.dx = p.fwd;
        if (p.grads == M && !grads_m_ok(method)) continue;
        double f = rl_plan_flops(method, kind, p, d_out, d_in, r, n, need_dx);
        if (f < bf) {
            bf = f;
            best = p;
        }
    }
    return best;
}

/* The kernels the adapter really runs: ternary ones only for very_sparse
 * bases without dense_kernels. */
static rl_bases_kind kernel_kind(const rl_adapter *a)
{
    return a->ternary ? RL_BASES_VERY_SPARSE : RL_BASES_DENSE;
}

double rl_layer_plan_flops(const rl_layer *l, rl_plan p, int n, bool need_dx)
{
    return rl_plan_flops(l->a->cfg.method, kernel_kind(l->a), p, l->d_out, l->d_in, l->a->cfg.r, n, need_dx);
}

rl_status rl_layer_fix_plan(rl_layer *l, rl_plan p)
{
    const rl_path F = RL_PATH_FACTORISED, M = RL_PATH_MATERIALISED;
    const rl_path t[3] = {p.fwd, p.grads, p.dx};
    bool any_m = false, any_f = false;
    for (int k = 0; k < 3; k++) {
        if (t[k] != F && t[k] != M) return rl_fail(RL_EINVAL, "layer: a plan's routes are factorised or materialised");
        any_m |= t[k] == M;
        any_f |= t[k] == F;
    }
    if (any_m && !has_m(l->a->cfg.method))
        return rl_fail(RL_EINVAL, "layer: full fine-tuning has no materialised route");
    if (p.grads == M && !grads_m_ok(l->a->cfg.method))
        return rl_fail(RL_EINVAL, "layer: %s's parameter gradients take the factors only",
                       rl_method_name(l->a->cfg.method));
    if (any_m && l->path == F)
        return rl_fail(RL_EINVAL, "layer: a materialised route needs a layer made with path auto or materialised");
    if (any_m && !l->merged) RL_TRY(alloc_merged(l)); /* a LoRA layer whose own plans never needed it */
    if (any_f && l->a->cfg.method == RL_METHOD_RANDLORA && l->a->max_tokens == 0)
        return rl_fail(RL_EINVAL, "layer: the adapter has no per-row workspace for a factorised route");
    if (any_f && any_m && uniform_only(l->a))
        return rl_fail(RL_EINVAL, "layer: the ternary kernels take one route for the whole step");
    l->plan = p;
    l->fixed = true;
    return RL_OK;
}

rl_plan rl_layer_choose_plan(const rl_layer *l, int n, bool need_dx)
{
    if (l->fixed) return l->plan;
    if (l->path != RL_PATH_AUTO) return rl_plan_uniform(l->path);
    /* an adapter without per-row workspace, or a layer without the buffer */
    if (l->a->cfg.method == RL_METHOD_RANDLORA && l->a->max_tokens == 0) return rl_plan_uniform(RL_PATH_MATERIALISED);
    rl_plan p = rl_plan_for(l->a->cfg.method, kernel_kind(l->a), l->d_out, l->d_in, l->a->cfg.r, n, need_dx, false);
    /* the ternary kernels' steps are whole: one route for every term */
    if (uniform_only(l->a)) p.grads = p.dx = p.fwd;
    if (!l->merged) p = rl_plan_uniform(RL_PATH_FACTORISED); /* a LoRA layer sized never to need ΔW */
    return p;
}

/* ---- forward / backward ---- */

static void fill_bias(const rl_layer *l, int n, float *y)
{
    const int o = l->d_out;
    if (!l->b) {
        rl_fill(y, (size_t)n * o, 0.0f);
        return;
    }
    RL_PAR_FOR_W(n, o)
    for (int t = 0; t < n; t++) memcpy(y + (size_t)t * o, l->b, (size_t)o * sizeof(float));
}

/* merged := W + ΔW */
static void build_m(rl_layer *l)
{
    rl_copy(l->merged, l->W, (size_t)l->d_out * l->d_in);
    switch (l->a->cfg.method) {
    case RL_METHOD_LORA: rl_lora_delta_weight_acc(l->a, l->merged, 1.0f); break;
    case RL_METHOD_VERA: rl_vera_delta_weight_acc(l->a, l->merged, 1.0f); break;
    default: rl_randlora_delta_weight_acc(l->a, l->merged, 1.0f); break;
    }
    l->m_built = true;
}

rl_status rl_layer_forward(rl_layer *l, const float *x, int n, float *y)
{
    if (n < 0 || n > l->max_tokens)
        return rl_fail(RL_EINVAL, "layer forward: %d rows, at most %d", n, l->max_tokens);
    const int o = l->d_out, i = l->d_in;
    fill_bias(l, n, y);
    rl_plan p = rl_layer_choose_plan(l, n, l->need_dx);
    l->last_plan = p;
    l->last_n = n;
    l->m_built = false;
    l->a->fwd_n = -1;
    if (n == 0) return RL_OK;
    if (l->a->cfg.method == RL_METHOD_FULL) return rl_adapter_forward(l->a, x, n, y);
    if (p.fwd == RL_PATH_MATERIALISED) {
        build_m(l); /* y += x Mᵀ */
        rl_gemm(RL_NOTRANS, RL_TRANS, n, o, i, 1.0f, x, i, l->merged, i, 1.0f, y, o);
        return RL_OK;
    }
    rl_gemm(RL_NOTRANS, RL_TRANS, n, o, i, 1.0f, x, i, l->W, i, 1.0f, y, o); /* y += x Wᵀ */
    l->a->keep_fwd = true; /* backward follows on the same x, n and parameters: keep what it can reuse */
    rl_status st = rl_adapter_forward(l->a, x, n, y);
    l->a->keep_fwd = false;
    return st;
}

/* The adapter's part of backward, allowed to reuse the forward's intermediates. */
static rl_status adapter_backward_kept(rl_layer *l, const float *x, const float *dy, int n, float *dx)
{
    l->a->use_fwd = true;
    rl_status st = rl_adapter_backward(l->a, x, dy, n, dx);
    l->a->use_fwd = false;
    return st;
}

rl_status rl_layer_backward(rl_layer *l, const float *x, const float *dy, int n, float *dx)
{
    if (n != l->last_n)
        return rl_fail(RL_EINVAL, "layer backward: %d rows but the last forward had %d "
                       "(backward must follow forward)", n, l->last_n);
    const int o = l->d_out, i = l->d_in;
    if (n == 0) return RL_OK;
    if (l->a->cfg.method == RL_METHOD_FULL) {
        if (dx) rl_fill(dx, (size_t)n * i, 0.0f);
        return adapter_backward_kept(l, x, dy, n, dx);
    }
    rl_plan p = l->last_plan;
    if (dx && !l->need_dx) /* dx was not planned for: M if it is there (or no workspace), else the factors */
        p.dx = l->m_built || (l->a->cfg.method == RL_METHOD_RANDLORA && l->a->max_tokens < n) ? RL_PATH_MATERIALISED
               : uniform_only(l->a)                                                          ? p.grads
                                                                                              : RL_PATH_FACTORISED;
    if (dx) {
        if (p.dx == RL_PATH_MATERIALISED) {
            if (!l->m_built) build_m(l);
            rl_gemm(RL_NOTRANS, RL_NOTRANS, n, i, o, 1.0f, dy, o, l->merged, i, 0.0f, dx, i); /* dx = dy M */
        } else {
            rl_gemm(RL_NOTRANS, RL_NOTRANS, n, i, o, 1.0f, dy, o, l->W, i, 0.0f, dx, i); /* dx = dy W */
            /* + the adapter's part: with factorised grads, shared with them below */
            if (p.grads == RL_PATH_MATERIALISED) {
                l->a->use_fwd = true;
                if (l->a->cfg.method == RL_METHOD_VERA) rl_vera_dx_acc(l->a, dy, n, dx);
                else rl_randlora_dx_acc(l->a, dy, n, dx);
                l->a->use_fwd = false;
            }
        }
    }
    if (p.grads == RL_PATH_MATERIALISED) {
        rl_gemm(RL_TRANS, RL_NOTRANS, o, i, n, 1.0f, dy, o, x, i, 0.0f, l->merged, i); /* G = dyᵀ x */
        l->m_built = false;
        if (l->a->cfg.method == RL_METHOD_VERA) rl_vera_grads_from_G(l->a, l->merged);
        else rl_randlora_grads_from_G(l->a, l->merged);
        l->last_n = -1; /* M was overwritten by G */
        l->a->fwd_n = -1;
        return RL_OK;
    }
    /* factorised grads (and the adapter's dx when dx is factorised) */
    return adapter_backward_kept(l, x, dy, n, dx && p.dx == RL_PATH_FACTORISED ? dx : NULL);
}
