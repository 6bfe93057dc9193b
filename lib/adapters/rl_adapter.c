/* rl_adapter.c -- construction, dispatch and merging, common to all methods. */
#include "rl_adapter_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/rl_budget.h"
#include "../core/rl_par.h"
#include "../core/rl_tensor.h"

rl_adapter_config rl_adapter_config_default(rl_method m)
{
    rl_adapter_config c = {.method = m, .r = 8, .alpha = 8.0, .d_initial = 0.1};
    if (m == RL_METHOD_VERA) c.r = 256;
    if (m == RL_METHOD_RANDLORA) {
        c.r = 32;
        c.alpha = 640.0;
    }
    return c;
}

size_t rl_param_count_formula(rl_method m, int r, int d_out, int d_in)
{
    size_t o = (size_t)d_out, i = (size_t)d_in;
    switch (m) {
    case RL_METHOD_FULL: return o * i;
    case RL_METHOD_LORA: return (size_t)r * (i + o);
    case RL_METHOD_VERA: return o + (size_t)r;
    case RL_METHOD_RANDLORA: {
        int mn = d_out < d_in ? d_out : d_in;
        return (size_t)rl_randlora_n_bases(mn, r) * ((size_t)r + (size_t)mn);
    }
    }
    return 0;
}

size_t rl_adapter_bytes_bound(const rl_adapter_config *cfg, int d_out, int d_in, const rl_shared_bases *bases,
                              int max_tokens)
{
    if (d_out <= 0 || d_in <= 0 || max_tokens < 0 || (cfg->method != RL_METHOD_FULL && cfg->r <= 0)) return 0;
    const size_t o = (size_t)d_out, i = (size_t)d_in, n = (size_t)max_tokens, r = cfg->r > 0 ? (size_t)cfg->r : 0;
    size_t params = rl_size_mul(2, rl_param_count_formula(cfg->method, cfg->r, d_out, d_in)), work = 0;
    switch (cfg->method) {
    case RL_METHOD_FULL: break;
    case RL_METHOD_LORA: /* h, dh (n, r), Aᵀ, and dA, dB of every row part but the first: lora_work_size */
        work = rl_size_add(rl_size_add(rl_size_mul(2, rl_size_mul(n, r)), rl_size_mul(r, i)),
                           rl_size_mul((size_t)rl_parts_cap() - 1, rl_size_mul(r, i + o)));
        break;
    case RL_METHOD_VERA: /* h, dh (n, r), Bd, T (d_out, r), and T of every row part but the first: vera_work_size */
        work = rl_size_add(rl_size_mul(2, rl_size_mul(n, r)), rl_size_mul((size_t)rl_parts_cap() + 1, rl_size_mul(o, r)));
        break;
    case RL_METHOD_RANDLORA: {
        /* dense kernels: n == 0: min(K, 256) rows of UA; else 2·K·mn + 2·n·K.
         * ternary kernels (very_sparse bases): 2·nnz, where nnz <= nb times
         * the nonzeros of A (<= K·mn when the bases are not known); for
         * n > 0, (1 + P)·nnz and P tiles of at most 256 rows of 2·d_in + 2·K
         * + max(d_in, d_out) (P = rl_parts_cap(): one per tile part); plus
         * the offsets (r + K + 1 ints) */
        size_t mn = o < i ? o : i, mx = o < i ? i : o;
        size_t nb = (size_t)rl_randlora_n_bases((int)mn, cfg->r), K = rl_size_mul(nb, r);
        size_t dense = n == 0 ? rl_size_mul(K < 256 ? K : 256, mn)
                              : rl_size_add(rl_size_mul(2, rl_size_mul(K, mn)), rl_size_mul(2, rl_size_mul(n, K)));
        bool maybe_ternary = !bases || (bases->kind == RL_BASES_VERY_SPARSE && bases->a_ptr && !cfg->dense_kernels);
        bool surely_ternary = bases && maybe_ternary;
        size_t tern = 0;
        if (maybe_ternary) {
            size_t nnz = bases ? rl_size_mul(nb, (size_t)bases->a_ptr[bases->r]) : rl_size_mul(K, mn);
            size_t P = (size_t)rl_parts_cap(), rows = n == 0 ? 0 : rl_size_mul(P, 256);
            tern = rl_size_add(rl_size_mul(n == 0 ? 2 : 1 + P, nnz),
                               rl_size_mul(rows, rl_size_add(rl_size_mul(2, i), rl_size_add(rl_size_mul(2, K), mx))));
            tern = rl_size_add(tern, rl_size_add(r, rl_size_add(K, 1 + 15))); /* + the tiles' alignment */
        }
        work = surely_ternary ? tern : dense > tern ? dense : tern;
        break;
    }
    }
    return rl_size_mul(sizeof(float), rl_size_add(params, work));
}

static void set_info(rl_adapter *a, int i, const char *name, size_t off, int d0, int d1)
{
    rl_param_info *p = &a->info[i];
    p->name = name;
    p->offset = off;
    p->ndim = d1 > 0 ? 2 : 1;
    p->shape[0] = d0;
    p->shape[1] = d1 > 0 ? d1 : 0;
}

/* Check the layer against the shared bases, as PEFT's update_layer does. */
static rl_status check_bases(const rl_adapter_config *cfg, int d_out, int d_in,
                             const rl_shared_bases *b)
{
    const char *m = rl_method_name(cfg->method);
    if (!b)
        return rl_fail(RL_EINVAL, "%s: shared bases are required", m);
    else if (b->method != cfg->method)
        return rl_fail(RL_EINVAL, "%s: shared bases were generated for %s", m,
                       rl_method_name(b->method));
    else if (b->r != cfg->r)
        return rl_fail(RL_ERANGE,
                       "%s: adapter r=%d but the shared bases have r=%d (every adapter must use "
                       "the rank the bases were generated with)", m, cfg->r, b->r);
    if (cfg->method == RL_METHOD_VERA) {
        if (d_in > b->max_in || d_out > b->max_out)
            return rl_fail(RL_ERANGE,
                           "vera: layer (%d, %d) is larger than the shared bases (vera_A %dx%d, "
                           "vera_B %dx%d); generate the bases for the largest adapted layer",
                           d_out, d_in, b->r, b->max_in, b->max_out, b->r);
        return RL_OK;
    }
    int mn = d_out < d_in ? d_out : d_in, mx = d_out < d_in ? d_in : d_out;
    if (mx > b->max_dim)
        return rl_fail(RL_ERANGE,
                       "randlora: randlora_B has a size of %d but %d or greater is required "
                       "(layer %dx%d is larger than the shared bases)", b->max_dim, mx, d_out, d_in);
    if (mn > b->min_dim)
        return rl_fail(RL_ERANGE,
                       "randlora: randlora_A has a size of %d but %d or greater is required "
                       "(layer %dx%d is larger than the shared bases)", b->min_dim, mn, d_out, d_in);
    return RL_OK;
}

rl_status rl_adapter_new(rl_adapter **out, const rl_adapter_config *cfg, int d_out, int d_in,
                         const rl_shared_bases *bases, int max_tokens)
{
    *out = NULL;
    const rl_adapter_ops *ops = NULL;
    if (!cfg) return rl_fail(RL_EINVAL, "adapter: NULL config");
    switch (cfg->method) {
    case RL_METHOD_FULL: ops = &rl_full_ops; break;
    case RL_METHOD_LORA: ops = &rl_lora_ops; break;
    case RL_METHOD_VERA: ops = &rl_vera_ops; break;
    case RL_METHOD_RANDLORA: ops = &rl_randlora_ops; break;
    default: return rl_fail(RL_EINVAL, "adapter: unknown method %d", (int)cfg->method);
    }
    if (d_out <= 0 || d_in <= 0)
        return rl_fail(RL_EINVAL, "%s: bad layer shape (d_out=%d, d_in=%d)", ops->name, d_out, d_in);
    else if (cfg->method != RL_METHOD_FULL && cfg->r <= 0)
        return rl_fail(RL_EINVAL, "`r` should be a positive integer value but the value passed is %d",
                       cfg->r);
    else if (max_tokens < 0 || (max_tokens == 0 && cfg->method != RL_METHOD_RANDLORA))
        return rl_fail(RL_EINVAL, "%s: max_tokens must be positive (got %d; 0 is for a RandLora adapter used "
                       "only on the materialised path)", ops->name, max_tokens);
    else if (cfg->method == RL_METHOD_LORA && cfg->use_rslora && cfg->r <= 0)
        return rl_fail(RL_EINVAL, "lora: use_rslora needs r > 0");
    if (cfg->method == RL_METHOD_VERA || cfg->method == RL_METHOD_RANDLORA)
        RL_TRY(check_bases(cfg, d_out, d_in, bases));

    rl_adapter *a = calloc(1, sizeof *a);
    if (!a) return rl_fail(RL_ENOMEM, "adapter: out of memory");
    a->ops = ops;
    a->cfg = *cfg;
    a->d_out = d_out;
    a->d_in = d_in;
    a->max_tokens = max_tokens;
    a->fwd_n = -1;
    a->bases = bases;
    a->parts_cap = rl_parts_cap();
    a->skinny_rows = rl_blas_skinny_rows(cfg->r, d_in > d_out ? d_in : d_out);
    const int r = cfg->r;
    switch (cfg->method) {
    case RL_METHOD_FULL:
        a->scaling = 1.0f;
        a->n_params = (size_t)d_out * d_in;
        a->n_info = 1;
        set_info(a, 0, "weight", 0, d_out, d_in);
        break;
    case RL_METHOD_LORA:
        a->scaling = (float)(cfg->use_rslora ? cfg->alpha / sqrt((double)r) : cfg->alpha / r);
        a->n_params = (size_t)r * d_in + (size_t)d_out * r;
        a->n_info = 2;
        set_info(a, 0, "lora_A.weight", 0, r, d_in);
        set_info(a, 1, "lora_B.weight", (size_t)r * d_in, d_out, r);
        break;
    case RL_METHOD_VERA:
        a->scaling = 1.0f;
        a->n_params = (size_t)d_out + r;
        a->n_info = 2;
        set_info(a, 0, "vera_lambda_b", 0, d_out, 0);
        set_info(a, 1, "vera_lambda_d", (size_t)d_out, r, 0);
        break;
    case RL_METHOD_RANDLORA:
        a->scaling = (float)(cfg->alpha / r);
        a->mn = d_out < d_in ? d_out : d_in;
        a->mx = d_out < d_in ? d_in : d_out;
        a->nb = rl_randlora_n_bases(a->mn, r);
        a->K = r * a->nb;
        a->n_params = (size_t)a->nb * (r + a->mn);
        a->ternary = bases->kind == RL_BASES_VERY_SPARSE && bases->a_ptr && !cfg->dense_kernels;
        if (a->ternary) {
            rl_status ts = rl_tern_init(a);
            if (ts != RL_OK) {
                rl_adapter_free(a);
                return ts;
            }
        }
        a->n_info = 2;
        set_info(a, 0, "randlora_lambda", 0, r, a->nb);
        set_info(a, 1, "randlora_gamma", (size_t)r * a->nb, a->nb, a->mn);
        break;
    }
    a->n_work = ops->work_size(a, max_tokens);
    a->params = rl_alloc_floats(a->n_params);
    a->grads = rl_alloc_floats(a->n_params);
    a->work = a->n_work ? rl_alloc_floats(a->n_work) : NULL;
    if (!a->params || !a->grads || (a->n_work && !a->work)) {
        rl_status st = rl_fail(RL_ENOMEM, "%s: cannot allocate %zu parameters and %zu workspace "
                               "floats", ops->name, a->n_params, a->n_work);
        rl_adapter_free(a);
        return st;
    }
    ops->reset(a);
    *out = a;
    return RL_OK;
}

void rl_adapter_free(rl_adapter *a)
{
    if (!a) return;
    rl_dealloc(a->params);
    rl_dealloc(a->grads);
    rl_dealloc(a->work);
    if (a->ternary) rl_tern_free(a);
    free(a);
}

static rl_status check_rows(const rl_adapter *a, int n, const char *op)
{
    if (n < 0 || n > a->max_tokens)
        return rl_fail(RL_EINVAL, "%s %s: %d rows but the workspace was sized for at most %d",
                       a->ops->name, op, n, a->max_tokens);
    return RL_OK;
}

rl_status rl_adapter_forward(rl_adapter *a, const float *x, int n, float *y)
{
    RL_TRY(check_rows(a, n, "forward"));
    a->fwd_n = -1;
    if (n) a->ops->forward(a, x, n, y);
    return RL_OK;
}

rl_status rl_adapter_backward(rl_adapter *a, const float *x, const float *dy, int n, float *dx)
{
    RL_TRY(check_rows(a, n, "backward"));
    if (n) a->ops->backward(a, x, dy, n, dx);
    a->fwd_n = -1;
    return RL_OK;
}

rl_status rl_adapter_delta_weight(rl_adapter *a, float *dw)
{
    a->ops->delta_weight(a, dw);
    return RL_OK;
}

rl_status rl_adapter_merge(rl_adapter *a, float *W, bool safe)
{
    size_t n = (size_t)a->d_out * a->d_in;
    float *dw = rl_alloc_floats(n);
    if (!dw) return rl_fail(RL_ENOMEM, "%s merge: cannot allocate a %dx%d buffer", a->ops->name,
                            a->d_out, a->d_in);
    a->ops->delta_weight(a, dw);
    for (size_t i = 0; i < n; i++) dw[i] += W[i];
    if (safe && !rl_all_finite(dw, n)) {
        rl_dealloc(dw);
        return rl_fail(RL_ENONFINITE,
                       "NaNs detected in the merged weights. The %s adapter (%dx%d) seems to be "
                       "broken; the weight was left unchanged", a->ops->name, a->d_out, a->d_in);
    }
    memcpy(W, dw, n * sizeof(float));
    rl_dealloc(dw);
    return RL_OK;
}

rl_status rl_adapter_unmerge(rl_adapter *a, float *W)
{
    size_t n = (size_t)a->d_out * a->d_in;
    float *dw = rl_alloc_floats(n);
    if (!dw) return rl_fail(RL_ENOMEM, "%s unmerge: cannot allocate a %dx%d buffer", a->ops->name,
                            a->d_out, a->d_in);
    a->ops->delta_weight(a, dw);
    for (size_t i = 0; i < n; i++) W[i] -= dw[i];
    rl_dealloc(dw);
    return RL_OK;
}

void rl_adapter_reset(rl_adapter *a) { a->ops->reset(a); }
void rl_adapter_zero_grad(rl_adapter *a) { rl_fill(a->grads, a->n_params, 0.0f); }
size_t rl_adapter_param_count(const rl_adapter *a) { return a->n_params; }
rl_span rl_adapter_span(rl_adapter *a) { return (rl_span){a->params, a->grads, a->n_params}; }
int rl_adapter_n_params_info(const rl_adapter *a) { return a->n_info; }

const rl_param_info *rl_adapter_param_info(const rl_adapter *a, int i)
{
    return i >= 0 && i < a->n_info ? &a->info[i] : NULL;
}

const rl_param_info *rl_adapter_find_param(const rl_adapter *a, const char *name)
{
    for (int i = 0; i < a->n_info; i++)
        if (strcmp(a->info[i].name, name) == 0) return &a->info[i];
    return NULL;
}

rl_method rl_adapter_method(const rl_adapter *a) { return a->cfg.method; }
int rl_adapter_d_out(const rl_adapter *a) { return a->d_out; }
int rl_adapter_d_in(const rl_adapter *a) { return a->d_in; }
float rl_adapter_scaling(const rl_adapter *a) { return a->scaling; }
int rl_adapter_n_bases(const rl_adapter *a) { return a->cfg.method == RL_METHOD_RANDLORA ? a->nb : 0; }

void rl_parts_add(float *dst, const float *from_part1, size_t stride, size_t n, int parts)
{
    RL_PAR_FOR_W(n, parts)
    for (size_t e = 0; e < n; e++) {
        float acc = dst[e];
        for (int p = 1; p < parts; p++) acc += from_part1[(size_t)(p - 1) * stride + e];
        dst[e] = acc;
    }
}
