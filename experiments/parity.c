/* parity.c -- `randlora parity`: the library against PEFT's own outputs. */
#include "parity.h"

#include "commands.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/rl_adapter.h"
#include "adapters/rl_bases.h"
#include "core/rl_blas.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "flags.h"
#include "io/rl_safetensors.h"
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

/* ---- metadata ---- */

static rl_status meta_str(const rl_st_file *f, const char *key, const char **out)
{
    *out = rl_st_meta(f, key);
    if (!*out) return rl_fail(RL_EFORMAT, "%s: metadata key '%s' is missing", rl_st_path(f), key);
    return RL_OK;
}

static rl_status meta_long(const rl_st_file *f, const char *key, long lo, long *out)
{
    const char *s;
    RL_TRY(meta_str(f, key, &s));
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo)
        return rl_fail(RL_EFORMAT, "%s: metadata '%s' = '%s' is not an integer >= %ld",
                       rl_st_path(f), key, s, lo);
    *out = v;
    return RL_OK;
}

static rl_status meta_double(const rl_st_file *f, const char *key, double *out)
{
    const char *s;
    RL_TRY(meta_str(f, key, &s));
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return rl_fail(RL_EFORMAT, "%s: metadata '%s' = '%s' is not a number", rl_st_path(f), key, s);
    *out = v;
    return RL_OK;
}

static rl_status meta_bool(const rl_st_file *f, const char *key, bool *out)
{
    const char *s;
    RL_TRY(meta_str(f, key, &s));
    if (strcmp(s, "true") == 0) *out = true;
    else if (strcmp(s, "false") == 0) *out = false;
    else return rl_fail(RL_EFORMAT, "%s: metadata '%s' = '%s' is not true/false", rl_st_path(f), key, s);
    return RL_OK;
}

/* projection_prng_key as torch takes it: a uint64, negative values as two's
 * complement (manual_seed(-1) == manual_seed(2^64 - 1)). */
static rl_status meta_key(const rl_st_file *f, uint64_t *out)
{
    const char *s;
    RL_TRY(meta_str(f, "projection_prng_key", &s));
    char *end;
    errno = 0;
    if (s[0] == '-') {
        long long v = strtoll(s, &end, 10);
        *out = (uint64_t)v;
    } else {
        *out = strtoull(s, &end, 10);
    }
    if (errno || end == s || *end)
        return rl_fail(RL_EFORMAT, "%s: metadata 'projection_prng_key' = '%s' is not a 64-bit integer",
                       rl_st_path(f), s);
    return RL_OK;
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
    rl_status st = rl_adapter_new(&a, cfg, d_out, d_in, bases, tokens);
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

rl_status parity_setup_read(const rl_st_file *f, parity_setup *out)
{
    memset(out, 0, sizeof *out);
    const char *s;
    long r, layers, tokens;
    RL_TRY(meta_str(f, "format", &s));
    if (strcmp(s, "peft-parity-v1") != 0)
        return rl_fail(RL_EFORMAT, "%s: metadata 'format' is '%s', expected 'peft-parity-v1'",
                       rl_st_path(f), s);
    RL_TRY(meta_str(f, "method", &s));
    if (rl_method_parse(s, &out->method) != RL_OK || out->method == RL_METHOD_FULL)
        return rl_fail(RL_EFORMAT, "%s: metadata 'method' = '%s' (expected lora, vera or randlora)",
                       rl_st_path(f), s);
    rl_method method = out->method;
    RL_TRY(meta_long(f, "r", 1, &r));
    RL_TRY(meta_long(f, "layers", 1, &layers));
    RL_TRY(meta_long(f, "tokens", 1, &tokens));
    if (layers > PARITY_MAX_LAYERS)
        return rl_fail(RL_EFORMAT, "%s: %ld layers (at most %d supported)", rl_st_path(f), layers,
                       PARITY_MAX_LAYERS);
    out->layers = (int)layers;
    out->tokens = (int)tokens;

    rl_adapter_config cfg = rl_adapter_config_default(method);
    cfg.r = (int)r;
    if (method != RL_METHOD_VERA) RL_TRY(meta_double(f, "alpha", &cfg.alpha));
    if (method == RL_METHOD_LORA) RL_TRY(meta_bool(f, "use_rslora", &cfg.use_rslora));
    if (method == RL_METHOD_VERA) RL_TRY(meta_double(f, "d_initial", &cfg.d_initial));
    out->cfg = cfg;

    /* layer shapes, from the frozen weights */
    int max_out = 0, max_in = 0;
    for (int i = 0; i < layers; i++) {
        char key[64];
        snprintf(key, sizeof key, "layers.%d.weight", i);
        const rl_st_tensor *t = rl_st_find(f, key);
        if (!t) return rl_fail(RL_EFORMAT, "%s: tensor '%s' is missing", rl_st_path(f), key);
        if (t->ndim != 2 || t->shape[0] <= 0 || t->shape[1] <= 0 || t->shape[0] > INT32_MAX / 2 ||
            t->shape[1] > INT32_MAX / 2)
            return rl_fail(RL_EFORMAT, "%s: '%s' must be a non-empty 2-D (out, in) matrix",
                           rl_st_path(f), key);
        out->shapes[i][0] = (int)t->shape[0];
        out->shapes[i][1] = (int)t->shape[1];
        if (out->shapes[i][0] > max_out) max_out = out->shapes[i][0];
        if (out->shapes[i][1] > max_in) max_in = out->shapes[i][1];
    }
    out->max_out = max_out;
    out->max_in = max_in;

    /* shared bases from the key */
    if (method == RL_METHOD_RANDLORA || method == RL_METHOD_VERA) {
        uint64_t key;
        rl_bases_kind kind = RL_BASES_DENSE;
        rl_fmt fmt = RL_BF16;
        RL_TRY(meta_key(f, &key));
        if (method == RL_METHOD_RANDLORA) {
            bool sparse, very;
            RL_TRY(meta_bool(f, "sparse", &sparse));
            RL_TRY(meta_bool(f, "very_sparse", &very));
            kind = very ? RL_BASES_VERY_SPARSE : sparse ? RL_BASES_SPARSE : RL_BASES_DENSE;
            const char *bd = rl_st_meta(f, "bases_dtype");
            if (kind == RL_BASES_DENSE && bd) {
                if (strcmp(bd, "bfloat16") == 0) fmt = RL_BF16;
                else if (strcmp(bd, "float16") == 0) fmt = RL_FP16;
                else if (strcmp(bd, "float32") == 0) fmt = RL_F32;
                else return rl_fail(RL_EFORMAT, "%s: metadata 'bases_dtype' = '%s' is not "
                                    "bfloat16, float16 or float32", rl_st_path(f), bd);
            }
        }
        out->kind = kind;
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

static void usage(FILE *out)
{
    fprintf(out,
            "usage: randlora parity [--tol REL] [--out CSV] FILE...\n"
            "  Checks the library against PEFT reference files (peft-parity-v1 safetensors,\n"
            "  e.g. tests/fixtures/peft/*.safetensors): regenerated bases (bit-exact for\n"
            "  RandLora, <= 1 ulp for VeRA), init values (bit-exact), and output, delta\n"
            "  weight and gradients within max|err| / max|ref| <= REL (default %g).\n",
            PARITY_DEFAULT_TOL);
}

#define PARITY_CMD "randlora parity"

int cmd_parity(int argc, char **argv)
{
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
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strncmp(a, "--", 2) == 0) {
            fprintf(stderr, "randlora parity: unknown flag '%s'\n", a);
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
    int passed = 0, failed = 0;
    double worst_grad = 0.0, worst_truth_grad = -1.0;
    /* --out FILE: the same verdicts as CSV, written atomically at the end */
    size_t ccap = 4096 + (size_t)(argc - first) * 768, clen = 0;
    char *csv = out_path ? malloc(ccap) : NULL;
    if (csv)
        clen += (size_t)snprintf(csv, ccap, "file,method,layers,pass,max_rel,max_rel_tensor,bases_mismatch,"
                                            "bases_max_ulp,init_checked,grad_rel,param_grad_rel,truth_out_rel,"
                                            "truth_dx_rel,truth_grad_rel,peft_truth_out_rel,peft_truth_grad_rel,"
                                            "ref_grad_zero,fd_max_err,error\n");
    for (int i = first; i < argc; i++) {
        parity_result res;
        rl_status st = parity_check_file(argv[i], tol, &res);
        if (csv && clen + 768 < ccap)
            clen += (size_t)snprintf(csv + clen, ccap - clen,
                                     "%s,%s,%d,%s,%.3e,%s,%ld,%u,%d,%.3e,%.3e,%.3e,%.3e,%.3e,%.3e,%.3e,%d,%.3e,%s\n",
                                     argv[i], res.method, res.layers, res.pass ? "PASS" : "FAIL", res.max_rel,
                                     res.pass ? res.max_rel_what : res.fail_what, res.bases_mismatch, res.bases_max_ulp,
                                     res.init_checked, res.grad_rel, res.param_grad_rel, res.truth_out_rel,
                                     res.truth_dx_rel, res.truth_grad_rel, res.peft_truth_out_rel,
                                     res.peft_truth_grad_rel, res.ref_grad_zero, res.fd_max_err,
                                     st != RL_OK ? rl_strerror(st) : "");
        if (st != RL_OK) {
            printf("FAIL %s error %s: %s\n", argv[i], rl_strerror(st), rl_errmsg());
            failed++;
            continue;
        }
        if (!res.pass) {
            printf("FAIL %s %s %.3g\n", argv[i], res.fail_what, res.fail_err);
            failed++;
        } else {
            printf("PASS %s method=%s layers=%d bases=", argv[i], res.method, res.layers);
            if (strcmp(res.method, "lora") == 0) printf("none");
            else if (res.bases_mismatch == 0) printf("bit-exact");
            else printf("%ld-differ-max-%u-ulp", res.bases_mismatch, res.bases_max_ulp);
            printf(" init=%d max_rel=%.2e (%s) grad=%.2e vs_float64: output=%.2e dx=%.2e", res.init_checked,
                   res.max_rel, res.max_rel_what, res.grad_rel, res.truth_out_rel, res.truth_dx_rel);
            if (res.truth_grad_rel >= 0) printf(" params=%.2e", res.truth_grad_rel);
            printf(" (peft_f32 output=%.2e", res.peft_truth_out_rel);
            if (res.peft_truth_grad_rel >= 0) printf(" params=%.2e", res.peft_truth_grad_rel);
            printf(")\n");
            passed++;
        }
        if (res.grad_rel > worst_grad || isnan(res.grad_rel)) worst_grad = res.grad_rel;
        if (res.truth_grad_rel > worst_truth_grad) worst_truth_grad = res.truth_grad_rel;
    }
    printf("worst gradient error vs PEFT %.2e", worst_grad);
    if (worst_truth_grad >= 0) printf(", parameter gradients vs float64 truth %.2e", worst_truth_grad);
    printf("\n");
    printf("%d passed, %d failed\n", passed, failed);
    if (csv) {
        if (rl_write_file_atomic(out_path, csv, clen) != RL_OK) {
            fprintf(stderr, "randlora parity: %s\n", rl_errmsg());
            failed++;
        }
        free(csv);
    }
    return failed ? 1 : 0;
}
