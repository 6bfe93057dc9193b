/* parity.c -- `randlora parity`: the library against PEFT's own outputs. */
#include "parity.h"

#include "commands.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/rl_adapter.h"
#include "adapters/rl_bases.h"
#include "core/rl_blas.h"
#include "core/rl_budget.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "flags.h"
#include "io/rl_safetensors.h"
#include "io/rl_output.h"
#include "io/rl_results.h"

double parity_rel_err(const float *a, const float *b, size_t n)
{
    double dmax = 0.0, rmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > dmax) dmax = d;
        if (fabs((double)b[i]) > rmax) rmax = fabs((double)b[i]);
    }
    return rmax > 0.0 ? dmax / rmax : dmax;
}

/* Map a float to an integer line where adjacent floats differ by 1. */
static int64_t ordered(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? (int64_t)INT32_MIN - i : i;
}

unsigned parity_ulp_diff(float a, float b)
{
    int64_t d = ordered(a) - ordered(b);
    if (d < 0) d = -d;
    return d > UINT32_MAX ? UINT32_MAX : (unsigned)d;
}

/* ---- the check ---- */

typedef struct {
    const rl_st_file *f;
    double tol;
    parity_result *res;
} ctx;

/* Record a comparison; returns false (and fills fail_*) when it fails. */
static bool judge(ctx *c, const char *what, double err)
{
    if (err > c->res->max_rel || isnan(err)) {
        c->res->max_rel = err;
        snprintf(c->res->max_rel_what, sizeof c->res->max_rel_what, "%s", what);
    }
    if (err <= c->tol) return true;
    if (c->res->pass) {
        c->res->pass = false;
        snprintf(c->res->fail_what, sizeof c->res->fail_what, "%s", what);
        c->res->fail_err = err;
    }
    return false;
}

/* A reference gradient that is all zero while ours is not: the file is
 * defective. It fails, naming the tensor; the finite-difference error of
 * ours against the file's own loss goes into the message and fd_max_err. */
static void judge_zero_ref(ctx *c, const char *key, double fd_err)
{
    c->res->ref_grad_zero++;
    if (fd_err > c->res->fd_max_err || isnan(fd_err)) c->res->fd_max_err = fd_err;
    if (c->res->pass) {
        c->res->pass = false;
        snprintf(c->res->fail_what, sizeof c->res->fail_what,
                 "%s is all zero although the loss moves with it (a defect of the reference file; ours %s "
                 "a finite difference of the loss: err %.2e)",
                 key, fd_err <= PARITY_FD_TOL ? "agrees with" : "DISAGREES with", fd_err);
        c->res->fail_err = INFINITY;
    }
}

/* Read tensor `name` of the given shape into a new tracked buffer. */
static rl_status load(const rl_st_file *f, const char *name, int d0, int d1, float **out)
{
    int shape[2] = {d0, d1};
    int ndim = d1 > 0 ? 2 : 1;
    *out = rl_alloc_floats((size_t)d0 * (d1 > 0 ? d1 : 1));
    if (!*out) return rl_fail(RL_ENOMEM, "%s: cannot allocate for '%s'", rl_st_path(f), name);
    rl_status st = rl_st_read_f32(f, name, ndim, shape, *out);
    if (st != RL_OK) {
        rl_dealloc(*out);
        *out = NULL;
    }
    return st;
}

/* Compare regenerated bases with the stored tensor `name`. */
static rl_status check_bases_tensor(ctx *c, const char *name, const float *gen, size_t n,
                                    int ndim, const int *shape, unsigned max_ulp)
{
    const rl_st_tensor *t = rl_st_find(c->f, name);
    if (!t) return rl_fail(RL_EFORMAT, "%s: tensor '%s' is missing", rl_st_path(c->f), name);
    float *stored = rl_alloc_floats(n);
    if (!stored) return rl_fail(RL_ENOMEM, "out of memory");
    rl_status st = rl_st_read_f32(c->f, name, ndim, shape, stored);
    if (st != RL_OK) {
        rl_dealloc(stored);
        return st;
    }
    long mismatch = 0;
    unsigned worst = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned u = parity_ulp_diff(gen[i], stored[i]);
        if (!isfinite(gen[i]) || !isfinite(stored[i])) u = UINT32_MAX;
        if (u) mismatch++;
        if (u > worst) worst = u;
    }
    rl_dealloc(stored);
    c->res->bases_mismatch += mismatch;
    if (worst > c->res->bases_max_ulp) c->res->bases_max_ulp = worst;
    if (worst > max_ulp && c->res->pass) {
        c->res->pass = false;
        snprintf(c->res->fail_what, sizeof c->res->fail_what, "%s(%ld elements differ, max %u ulp)",
                 name, mismatch, worst);
        c->res->fail_err = worst;
    }
    return RL_OK;
}

static bool all_zero(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] != 0.0f) return false;
    return true;
}

/* The adapter's share of the loss, L = Σ adapter(x) ⊙ dy, accumulated in
 * double; `y` is scratch of tokens·d_out floats. */
static double adapter_loss(rl_adapter *a, const float *x, const float *dy, int tokens, int d_out,
                           float *y)
{
    memset(y, 0, (size_t)tokens * d_out * sizeof(float));
    rl_status st = rl_adapter_forward(a, x, tokens, y);
    RL_ASSERT(st == RL_OK, "forward failed inside fd_check: %s", rl_errmsg());
    double L = 0.0;
    for (size_t i = 0; i < (size_t)tokens * d_out; i++) L += (double)y[i] * dy[i];
    return L;
}

/* Finite-difference check of one parameter block's gradient along a fixed
 * random ±1 direction v. Each adapter's output is linear in each of its
 * parameter blocks when the other is held fixed (LoRA: A, B; VeRA: λ_b,
 * λ_d; RandLora: λ, Γ), so the central difference (L(θ+εv) - L(θ-εv)) / 2ε
 * has no truncation error and ε can be large (ε = max(1, max|θ|)): only the
 * float32 rounding of the two forward passes remains. Error reported:
 * |D - <g, v>| / Σ|g_i|. The block is restored bit for bit afterwards. */
static rl_status fd_check(rl_adapter *a, const rl_param_info *p, const float *x, const float *dy,
                          int tokens, int d_out, float *y, double *err)
{
    size_t n = (size_t)p->shape[0] * (p->ndim == 2 ? p->shape[1] : 1);
    rl_span sp = rl_adapter_span(a);
    float *theta = sp.p + p->offset;
    const float *g = sp.g + p->offset;
    float *save = rl_alloc_floats(n);
    if (!save) return rl_fail(RL_ENOMEM, "out of memory");
    memcpy(save, theta, n * sizeof(float));
    double scale = 1.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(save[i]));
    const float eps = (float)scale;
    rl_mt rng;
    rl_mt_seed(&rng, 20250211u);
    double gv = 0.0, gabs = 0.0;
    for (size_t i = 0; i < n; i++) {
        float v = (rl_mt_next(&rng) & 1u) ? 1.0f : -1.0f;
        theta[i] = save[i] + eps * v;
        gv += (double)g[i] * v;
        gabs += fabs((double)g[i]);
    }
    double Lp = adapter_loss(a, x, dy, tokens, d_out, y);
    rl_mt_seed(&rng, 20250211u);
    for (size_t i = 0; i < n; i++) {
        float v = (rl_mt_next(&rng) & 1u) ? 1.0f : -1.0f;
        theta[i] = save[i] - eps * v;
    }
    double Lm = adapter_loss(a, x, dy, tokens, d_out, y);
    memcpy(theta, save, n * sizeof(float));
    rl_dealloc(save);
    double D = (Lp - Lm) / (2.0 * (double)eps);
    *err = gabs > 0.0 ? fabs(D - gv) / gabs : fabs(D - gv);
    return RL_OK;
}

/* *w = max(*w, e), NaN-sticky */
static void keep_worst(double *w, double e)
{
    if (e > *w || isnan(e)) *w = e;
}

static rl_status check_layer(ctx *c, int li, const rl_adapter_config *cfg,
                             const rl_shared_bases *bases, int d_out, int d_in, int tokens)
{
    const rl_st_file *f = c->f;
    char key[160];
    rl_adapter *a = NULL;
    float *x = NULL, *W = NULL, *bias = NULL, *dy = NULL, *y = NULL, *dx = NULL, *dw = NULL;
    float *ref = NULL, *ref2 = NULL;
    /* what this layer will hold: x, dx (tokens, in); dy, y (tokens, out);
     * W, dw (out, in); bias; two reference tensors of the largest of those
     * or the parameters; the finite-difference copy; the adapter */
    size_t tn = (size_t)tokens, o = (size_t)d_out, in = (size_t)d_in;
    size_t np = rl_param_count_formula(cfg->method, cfg->r, d_out, d_in), big = rl_size_mul(tn, o);
    if (rl_size_mul(tn, in) > big) big = rl_size_mul(tn, in);
    if (rl_size_mul(o, in) > big) big = rl_size_mul(o, in);
    if (np > big) big = np;
    size_t floats = rl_size_add(rl_size_mul(2, rl_size_add(rl_size_mul(tn, in), rl_size_mul(tn, o))),
                                rl_size_add(rl_size_mul(2, rl_size_mul(o, in)), rl_size_add(o, rl_size_add(rl_size_mul(2, big), np))));
    rl_status st = rl_budget_check(rl_size_add(rl_size_mul(floats, sizeof(float)),
                                               rl_adapter_bytes_bound(cfg, d_out, d_in, bases, tokens)),
                                   "%s: layer %d (%d, %d) with %d tokens (metadata 'tokens')", rl_st_path(f), li,
                                   d_out, d_in, tokens);
    if (st != RL_OK) return st;
    st = rl_adapter_new(&a, cfg, d_out, d_in, bases, tokens);
    if (st != RL_OK) goto done;

    /* (2) init values, bit-exact */
    for (int i = 0; i < rl_adapter_n_params_info(a); i++) {
        const rl_param_info *p = rl_adapter_param_info(a, i);
        snprintf(key, sizeof key, "layers.%d.init.%s", li, p->name);
        if (!rl_st_find(f, key)) continue;
        if ((st = load(f, key, p->shape[0], p->shape[1], &ref)) != RL_OK) goto done;
        size_t n = (size_t)p->shape[0] * (p->ndim == 2 ? p->shape[1] : 1);
        unsigned worst = 0;
        for (size_t j = 0; j < n; j++) {
            unsigned u = parity_ulp_diff(rl_adapter_span(a).p[p->offset + j], ref[j]);
            if (u > worst) worst = u;
        }
        judge(c, key, worst == 0 ? 0.0 : INFINITY);
        c->res->init_checked++;
        rl_dealloc(ref);
        ref = NULL;
    }

    /* load the trained parameters the outputs were computed with */
    if ((st = parity_load_params(f, li, a)) != RL_OK) goto done;
    snprintf(key, sizeof key, "layers.%d.x", li);
    if ((st = load(f, key, tokens, d_in, &x)) != RL_OK) goto done;
    snprintf(key, sizeof key, "layers.%d.weight", li);
    if ((st = load(f, key, d_out, d_in, &W)) != RL_OK) goto done;
    snprintf(key, sizeof key, "layers.%d.bias", li);
    if ((st = load(f, key, d_out, 0, &bias)) != RL_OK) goto done;
    snprintf(key, sizeof key, "layers.%d.grad_output", li);
    if ((st = load(f, key, tokens, d_out, &dy)) != RL_OK) goto done;

    /* (3a) output = x Wᵀ + b + adapter(x) */
    y = rl_alloc_floats((size_t)tokens * d_out);
    dx = rl_alloc_floats((size_t)tokens * d_in);
    dw = rl_alloc_floats((size_t)d_out * d_in);
    if (!y || !dx || !dw) {
        st = rl_fail(RL_ENOMEM, "out of memory");
        goto done;
    }
    for (int t = 0; t < tokens; t++) memcpy(y + (size_t)t * d_out, bias, (size_t)d_out * sizeof(float));
    rl_gemm(RL_NOTRANS, RL_TRANS, tokens, d_out, d_in, 1.0f, x, d_in, W, d_in, 1.0f, y, d_out);
    if ((st = rl_adapter_forward(a, x, tokens, y)) != RL_OK) goto done;
    snprintf(key, sizeof key, "layers.%d.expect.output", li);
    if ((st = load(f, key, tokens, d_out, &ref)) != RL_OK) goto done;
    judge(c, key, parity_rel_err(y, ref, (size_t)tokens * d_out));
    snprintf(key, sizeof key, "layers.%d.truth.output", li);
    if (rl_st_find(f, key)) {
        if ((st = load(f, key, tokens, d_out, &ref2)) != RL_OK) goto done;
        double e = parity_rel_err(y, ref2, (size_t)tokens * d_out);
        double ep = parity_rel_err(ref, ref2, (size_t)tokens * d_out);
        if (e > c->res->truth_out_rel) c->res->truth_out_rel = e;
        if (ep > c->res->peft_truth_out_rel) c->res->peft_truth_out_rel = ep;
        rl_dealloc(ref2);
        ref2 = NULL;
    }
    rl_dealloc(ref);
    ref = NULL;

    /* (3b) delta weight */
    rl_adapter_delta_weight(a, dw);
    snprintf(key, sizeof key, "layers.%d.expect.delta_weight", li);
    if ((st = load(f, key, d_out, d_in, &ref)) != RL_OK) goto done;
    judge(c, key, parity_rel_err(dw, ref, (size_t)d_out * d_in));
    rl_dealloc(ref);
    ref = NULL;

    /* (3c) gradients of L = sum(output ⊙ grad_output): dx = dy W + adapter */
    rl_adapter_zero_grad(a);
    rl_gemm(RL_NOTRANS, RL_NOTRANS, tokens, d_in, d_out, 1.0f, dy, d_out, W, d_in, 0.0f, dx, d_in);
    if ((st = rl_adapter_backward(a, x, dy, tokens, dx)) != RL_OK) goto done;
    snprintf(key, sizeof key, "layers.%d.expect.grad.x", li);
    if ((st = load(f, key, tokens, d_in, &ref)) != RL_OK) goto done;
    {
        double e = parity_rel_err(dx, ref, (size_t)tokens * d_in);
        judge(c, key, e);
        keep_worst(&c->res->grad_rel, e);
    }
    rl_dealloc(ref);
    ref = NULL;
    snprintf(key, sizeof key, "layers.%d.truth.grad.x", li);
    if (rl_st_find(f, key)) {
        if ((st = load(f, key, tokens, d_in, &ref)) != RL_OK) goto done;
        double e = parity_rel_err(dx, ref, (size_t)tokens * d_in);
        if (e > c->res->truth_dx_rel) c->res->truth_dx_rel = e;
        rl_dealloc(ref);
        ref = NULL;
    }
    for (int i = 0; i < rl_adapter_n_params_info(a); i++) {
        const rl_param_info *p = rl_adapter_param_info(a, i);
        snprintf(key, sizeof key, "layers.%d.expect.grad.%s", li, p->name);
        if ((st = load(f, key, p->shape[0], p->shape[1], &ref)) != RL_OK) goto done;
        size_t n = (size_t)p->shape[0] * (p->ndim == 2 ? p->shape[1] : 1);
        const float *ours = rl_adapter_span(a).g + p->offset;
        if (all_zero(ref, n) && !all_zero(ours, n)) {
            double fd_err = INFINITY;
            if ((st = fd_check(a, p, x, dy, tokens, d_out, y, &fd_err)) != RL_OK) goto done;
            judge_zero_ref(c, key, fd_err);
        } else {
            double e = parity_rel_err(ours, ref, n);
            judge(c, key, e);
            keep_worst(&c->res->grad_rel, e);
            keep_worst(&c->res->param_grad_rel, e);
        }
        snprintf(key, sizeof key, "layers.%d.truth.grad.%s", li, p->name);
        if (rl_st_find(f, key)) {
            if ((st = load(f, key, p->shape[0], p->shape[1], &ref2)) != RL_OK) goto done;
            keep_worst(&c->res->truth_grad_rel, parity_rel_err(ours, ref2, n));
            keep_worst(&c->res->peft_truth_grad_rel, parity_rel_err(ref, ref2, n));
            rl_dealloc(ref2);
            ref2 = NULL;
        }
        rl_dealloc(ref);
        ref = NULL;
    }
done:
    rl_dealloc(ref);
    rl_dealloc(ref2);
    rl_dealloc(x);
    rl_dealloc(W);
    rl_dealloc(bias);
    rl_dealloc(dy);
    rl_dealloc(y);
    rl_dealloc(dx);
    rl_dealloc(dw);
    rl_adapter_free(a);
    return st;
}

/* The parameter whose first dimension is r: lora_A (r, in), vera_lambda_d
 * (r), randlora_lambda (r, nb). */
static const char *r_param(rl_method m)
{
    return m == RL_METHOD_LORA ? "lora_A.weight" : m == RL_METHOD_VERA ? "vera_lambda_d" : "randlora_lambda";
}

rl_status parity_setup_read(const rl_st_file *f, parity_setup *out)
{
    memset(out, 0, sizeof *out);
    const char *s, *path = rl_st_path(f);
    int r, layers, tokens;
    s = rl_st_meta(f, "format");
    if (!s) return rl_fail(RL_EFORMAT, "%s: metadata key 'format' is missing", path);
    if (strcmp(s, "peft-parity-v1") != 0)
        return rl_fail(RL_EFORMAT, "%s: metadata 'format' is '%s', expected 'peft-parity-v1'", path, s);
    s = rl_st_meta(f, "method");
    if (!s) return rl_fail(RL_EFORMAT, "%s: metadata key 'method' is missing", path);
    if (rl_method_parse(s, &out->method) != RL_OK || out->method == RL_METHOD_FULL)
        return rl_fail(RL_EFORMAT, "%s: metadata 'method' = '%s' (expected lora, vera or randlora)", path, s);
    rl_method method = out->method;
    /* counts are parsed whole and range-checked in 64 bits (never cut to 32) */
    RL_TRY(rl_st_meta_int(f, "r", 1, INT_MAX, &r));
    RL_TRY(rl_st_meta_int(f, "layers", 1, PARITY_MAX_LAYERS, &layers));
    RL_TRY(rl_st_meta_int(f, "tokens", 1, INT_MAX, &tokens));
    out->layers = layers;
    out->tokens = tokens;

    rl_adapter_config cfg = rl_adapter_config_default(method);
    cfg.r = r;
    if (method != RL_METHOD_VERA) RL_TRY(rl_st_meta_double(f, "alpha", -DBL_MAX, DBL_MAX, &cfg.alpha));
    if (method == RL_METHOD_LORA) RL_TRY(rl_st_meta_bool(f, "use_rslora", &cfg.use_rslora));
    if (method == RL_METHOD_VERA) RL_TRY(rl_st_meta_double(f, "d_initial", -DBL_MAX, DBL_MAX, &cfg.d_initial));
    out->cfg = cfg;

    /* layer shapes, from the frozen weights; tokens and r against what the
     * file holds (layers.i.x is (tokens, in), the r-parameter starts with r),
     * so a count in the metadata can never size memory the file does not back */
    int max_out = 0, max_in = 0;
    for (int i = 0; i < layers; i++) {
        char key[64];
        snprintf(key, sizeof key, "layers.%d.weight", i);
        const rl_st_tensor *t = rl_st_find(f, key);
        if (!t) return rl_fail(RL_EFORMAT, "%s: tensor '%s' is missing", path, key);
        if (t->ndim != 2 || t->shape[0] <= 0 || t->shape[1] <= 0 || t->shape[0] > INT32_MAX / 2 ||
            t->shape[1] > INT32_MAX / 2)
            return rl_fail(RL_EFORMAT, "%s: '%s' must be a non-empty 2-D (out, in) matrix", path, key);
        out->shapes[i][0] = (int)t->shape[0];
        out->shapes[i][1] = (int)t->shape[1];
        if (out->shapes[i][0] > max_out) max_out = out->shapes[i][0];
        if (out->shapes[i][1] > max_in) max_in = out->shapes[i][1];
        snprintf(key, sizeof key, "layers.%d.x", i);
        const rl_st_tensor *x = rl_st_find(f, key);
        if (!x) return rl_fail(RL_EFORMAT, "%s: tensor '%s' is missing", path, key);
        if (x->ndim != 2 || x->shape[0] != tokens || x->shape[1] != t->shape[1])
            return rl_fail(RL_EFORMAT, "%s: metadata 'tokens' = %d but '%s' is %d-D [%lld, %lld], not (tokens, "
                           "in) = (%d, %lld)", path, tokens, key, x->ndim, (long long)(x->ndim > 0 ? x->shape[0] : 0),
                           (long long)(x->ndim > 1 ? x->shape[1] : 0), tokens, (long long)t->shape[1]);
        snprintf(key, sizeof key, "layers.%d.%s", i, r_param(method));
        const rl_st_tensor *p = rl_st_find(f, key);
        if (!p) return rl_fail(RL_EFORMAT, "%s: tensor '%s' is missing", path, key);
        if (p->ndim < 1 || p->shape[0] != r)
            return rl_fail(RL_EFORMAT, "%s: metadata 'r' = %d but '%s' has %lld rows (its first dimension is r)",
                           path, r, key, (long long)(p->ndim > 0 ? p->shape[0] : 0));
    }
    out->max_out = max_out;
    out->max_in = max_in;

    /* shared bases from the key */
    if (method == RL_METHOD_RANDLORA || method == RL_METHOD_VERA) {
        uint64_t key;
        rl_bases_kind kind = RL_BASES_DENSE;
        rl_fmt fmt = RL_BF16;
        RL_TRY(rl_st_meta_seed(f, "projection_prng_key", &key));
        if (method == RL_METHOD_RANDLORA) {
            bool sparse, very;
            RL_TRY(rl_st_meta_bool(f, "sparse", &sparse));
            RL_TRY(rl_st_meta_bool(f, "very_sparse", &very));
            kind = very ? RL_BASES_VERY_SPARSE : sparse ? RL_BASES_SPARSE : RL_BASES_DENSE;
            const char *bd = rl_st_meta(f, "bases_dtype");
            if (kind == RL_BASES_DENSE && bd) {
                if (strcmp(bd, "bfloat16") == 0) fmt = RL_BF16;
                else if (strcmp(bd, "float16") == 0) fmt = RL_FP16;
                else if (strcmp(bd, "float32") == 0) fmt = RL_F32;
                else return rl_fail(RL_EFORMAT, "%s: metadata 'bases_dtype' = '%s' is not "
                                    "bfloat16, float16 or float32", path, bd);
            }
        }
        out->kind = kind;
        /* the bases are sized for the largest (out, in) over the layers, as
         * PEFT sizes them: what that takes is checked before it is drawn */
        RL_TRY(rl_budget_check(rl_shared_bases_bytes(method, r, max_out, max_in, kind),
                               "%s: the shared %s bases for r = %d (metadata 'r') and the largest layer (%d, %d)",
                               path, rl_method_name(method), r, max_out, max_in));
        RL_TRY(rl_shared_bases_new(&out->bases, method, cfg.r, max_out, max_in, kind, fmt,
                                   RL_BASES_FMA_DEFAULT, key));
    }
    return RL_OK;
}

void parity_setup_free(parity_setup *s)
{
    rl_shared_bases_free(s->bases);
    s->bases = NULL;
}

rl_status parity_load_params(const rl_st_file *f, int layer, rl_adapter *a)
{
    char key[160];
    for (int i = 0; i < rl_adapter_n_params_info(a); i++) {
        const rl_param_info *p = rl_adapter_param_info(a, i);
        int shape[2] = {p->shape[0], p->shape[1]};
        snprintf(key, sizeof key, "layers.%d.%s", layer, p->name);
        RL_TRY(rl_st_read_f32(f, key, p->ndim, shape, rl_adapter_span(a).p + p->offset));
    }
    return RL_OK;
}

static rl_status check_file(ctx *c)
{
    parity_setup ps;
    RL_TRY(parity_setup_read(c->f, &ps));
    snprintf(c->res->method, sizeof c->res->method, "%s", rl_method_name(ps.method));
    c->res->layers = ps.layers;

    /* (1) regenerated bases against the stored ones */
    rl_status st = RL_OK;
    const rl_shared_bases *bases = ps.bases;
    if (bases) {
        /* bit-exact for RandLora; VeRA's float32 draws may differ by 1 ulp between torch kernels */
        int sa[3], sb[3], nd = rl_shared_bases_shapes(bases, sa, sb);
        unsigned max_ulp = ps.method == RL_METHOD_VERA ? 1 : 0;
        char ka[32], kb[32];
        snprintf(ka, sizeof ka, "%s_A", rl_shared_bases_prefix(bases));
        snprintf(kb, sizeof kb, "%s_B", rl_shared_bases_prefix(bases));
        st = check_bases_tensor(c, ka, bases->A, bases->a_len, nd, sa, max_ulp);
        if (st == RL_OK) st = check_bases_tensor(c, kb, bases->B, bases->b_len, nd, sb, max_ulp);
    }
    for (int i = 0; i < ps.layers && st == RL_OK; i++)
        st = check_layer(c, i, &ps.cfg, bases, ps.shapes[i][0], ps.shapes[i][1], ps.tokens);
    parity_setup_free(&ps);
    return st;
}

rl_status parity_check_file(const char *path, double tol, parity_result *res)
{
    memset(res, 0, sizeof *res);
    res->pass = true;
    res->truth_grad_rel = res->peft_truth_grad_rel = -1.0; /* until a truth.grad.<param> is seen */
    rl_st_file *f = NULL;
    rl_status st = rl_st_open(&f, path);
    if (st != RL_OK) {
        res->pass = false;
        return st;
    }
    ctx c = {.f = f, .tol = tol, .res = res};
    st = check_file(&c);
    rl_st_close(f);
    if (st != RL_OK) res->pass = false;
    return st;
}

bool parity_print_row(const char *label, const parity_result *res, rl_status st)
{
    if (st != RL_OK) {
        printf("FAIL %s error %s: %s\n", label, rl_strerror(st), rl_errmsg());
        return false;
    }
    if (!res->pass) {
        printf("FAIL %s %s %.3g\n", label, res->fail_what, res->fail_err);
        return false;
    }
    printf("PASS %s method=%s layers=%d bases=", label, res->method, res->layers);
    if (strcmp(res->method, "lora") == 0) printf("none");
    else if (res->bases_absent) printf("not-given");
    else if (res->bases_mismatch == 0) printf("bit-exact");
    else printf("%ld-differ-max-%u-ulp", res->bases_mismatch, res->bases_max_ulp);
    printf(" init=%d max_rel=%.2e (%s) grad=%.2e vs_float64: output=%.2e dx=%.2e", res->init_checked, res->max_rel,
           res->max_rel_what, res->grad_rel, res->truth_out_rel, res->truth_dx_rel);
    if (res->truth_grad_rel >= 0) printf(" params=%.2e", res->truth_grad_rel);
    printf(" (peft_f32 output=%.2e", res->peft_truth_out_rel);
    if (res->peft_truth_grad_rel >= 0) printf(" params=%.2e", res->peft_truth_grad_rel);
    printf(")\n");
    return true;
}

void parity_print_summary(int passed, int failed, double worst_grad, double worst_truth_grad)
{
    printf("worst gradient error vs PEFT %.2e", worst_grad);
    if (worst_truth_grad >= 0) printf(", parameter gradients vs float64 truth %.2e", worst_truth_grad);
    printf("\n");
    printf("%d passed, %d failed\n", passed, failed);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: randlora parity [--tol REL] [--out CSV] [--max-memory BYTES] FILE...\n"
            "       randlora parity [--tol REL] --candidate CAND.safetensors REF.safetensors\n"
            "  Checks the library against PEFT reference files (peft-parity-v1 safetensors,\n"
            "  e.g. tests/fixtures/peft/*.safetensors): regenerated bases (bit-exact for\n"
            "  RandLora, <= 1 ulp for VeRA), init values (bit-exact), and output, delta\n"
            "  weight and gradients within max|err| / max|ref| <= REL (default %g).\n"
            "  --candidate: another implementation's results for REF's inputs (layers.<i>.output,\n"
            "  .delta_weight, .grad.x, .grad.<PEFT param>, optional bases) checked the same way\n"
            "  against PEFT's expect.* and the float64 truth.* (candidate.h; experiments/reference/).\n"
            "  --out CSV   the verdicts as a table, written atomically (never over a FILE)\n"
            FLAG_MAX_MEMORY_USAGE
            "  Exit: 0 every file passed, 1 a check failed, 2 a file is missing, unreadable,\n"
            "  malformed or over the memory budget (or bad usage), 3 the CSV could not be written.\n",
            PARITY_DEFAULT_TOL);
}

#define PARITY_CMD "randlora parity"

/* A growing text buffer for --out; `failed` once an allocation failed. */
typedef struct {
    char *buf;
    size_t len, cap;
    bool failed;
} csv_text;

static void csv_put(csv_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void csv_put(csv_text *t, const char *fmt, ...)
{
    for (int k = 0; k < 2 && !t->failed; k++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
        } else if (t->buf && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        } else {
            size_t cap = 2 * t->cap + (size_t)n + 4096;
            char *b = realloc(t->buf, cap);
            if (!b) t->failed = true;
            else {
                t->buf = b;
                t->cap = cap;
            }
        }
    }
}

int cmd_parity(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) /* another implementation's results: candidate.c */
        if (strcmp(argv[i], "--candidate") == 0) return parity_candidate_cmd(argc, argv);
    double tol = PARITY_DEFAULT_TOL;
    const char *out_path = NULL;
    int first = 1;
    for (; first < argc; first++) {
        const char *a = argv[first];
        if (strcmp(a, "--tol") == 0) {
            const char *v = flag_value(PARITY_CMD, argc, argv, &first);
            if (!v || !flag_positive(PARITY_CMD, a, v, INFINITY, &tol)) return 2;
        } else if (strcmp(a, "--out") == 0) {
            if (!(out_path = flag_value(PARITY_CMD, argc, argv, &first))) return 2;
        } else if (strcmp(a, "--max-memory") == 0) {
            const char *v = flag_value(PARITY_CMD, argc, argv, &first);
            if (!v || !flag_max_memory(PARITY_CMD, v)) return 2;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strncmp(a, "--", 2) == 0) {
            fprintf(stderr, PARITY_CMD ": unknown flag '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    if (first >= argc) {
        usage(stderr);
        return 2;
    }
    /* --out never lands on one of the files it reports on */
    if (out_path && rl_output_check(out_path, (const char *const *)argv + first, (size_t)(argc - first)) != RL_OK) {
        fprintf(stderr, PARITY_CMD ": --out: %s\n", rl_errmsg());
        return 2;
    }
    int passed = 0, failed = 0, rc = 0;
    double worst_grad = 0.0, worst_truth_grad = -1.0;
    /* --out FILE: the same verdicts as CSV, written atomically at the end */
    csv_text csv = {0};
    if (out_path)
        csv_put(&csv, "file,method,layers,pass,max_rel,max_rel_tensor,bases_mismatch,bases_max_ulp,init_checked,"
                      "grad_rel,param_grad_rel,truth_out_rel,truth_dx_rel,truth_grad_rel,peft_truth_out_rel,"
                      "peft_truth_grad_rel,ref_grad_zero,fd_max_err,error\n");
    for (int i = first; i < argc; i++) {
        parity_result res;
        rl_status st = parity_check_file(argv[i], tol, &res);
        if (out_path)
            csv_put(&csv, "%s,%s,%d,%s,%.3e,%s,%ld,%u,%d,%.3e,%.3e,%.3e,%.3e,%.3e,%.3e,%.3e,%d,%.3e,%s\n", argv[i],
                    res.method, res.layers, res.pass ? "PASS" : "FAIL", res.max_rel,
                    res.pass ? res.max_rel_what : res.fail_what, res.bases_mismatch, res.bases_max_ulp,
                    res.init_checked, res.grad_rel, res.param_grad_rel, res.truth_out_rel, res.truth_dx_rel,
                    res.truth_grad_rel, res.peft_truth_out_rel, res.peft_truth_grad_rel, res.ref_grad_zero,
                    res.fd_max_err, st != RL_OK ? rl_strerror(st) : "");
        if (parity_print_row(argv[i], &res, st)) passed++;
        else failed++;
        if (st != RL_OK) { /* not a verdict: the file could not be checked (2), or memory ran out (3) */
            if (cmd_exit_code(st) > rc) rc = cmd_exit_code(st);
            continue;
        }
        if (!res.pass && rc < 1) rc = 1;
        if (res.grad_rel > worst_grad || isnan(res.grad_rel)) worst_grad = res.grad_rel;
        if (res.truth_grad_rel > worst_truth_grad) worst_truth_grad = res.truth_grad_rel;
    }
    parity_print_summary(passed, failed, worst_grad, worst_truth_grad);
    if (out_path) {
        rl_status st = csv.failed ? rl_fail(RL_ENOMEM, "%s: out of memory for the table", out_path)
                                  : rl_write_file_atomic(out_path, csv.buf, csv.len);
        if (st != RL_OK) rc = cmd_fail("parity", st, NULL) > rc ? cmd_exit_code(st) : rc;
        free(csv.buf);
    }
    return rc;
}
