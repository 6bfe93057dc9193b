/* fixture.c -- `randlora fixture`, the float64 reference and candidate
 * files (fixture.h). */
#include "fixture.h"

#include "commands.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rl_blas.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "io/rl_safetensors.h"
#include "io/rl_st_header.h"
#include "params.h"

/* max|a - b| / max|b| for double a against float b (absolute when b is 0;
 * +inf when a is not finite). */
static double rel_err_d(const double *a, const float *b, size_t n)
{
    double dmax = 0, rmax = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        dmax = fmax(dmax, fabs(a[i] - (double)b[i]));
        rmax = fmax(rmax, fabs((double)b[i]));
    }
    return rmax > 0 ? dmax / rmax : dmax;
}

/* ---- one layer of a reference file ---- */

typedef struct {
    int d_out, d_in, T;
    float *W, *bias, *x, *dy;
    rl_adapter *a;
} layer_in;

static void layer_free(layer_in *L)
{
    rl_dealloc(L->W);
    rl_dealloc(L->bias);
    rl_dealloc(L->x);
    rl_dealloc(L->dy);
    rl_adapter_free(L->a);
    memset(L, 0, sizeof *L);
}

/* Read layer li of f (weights, bias, x, grad_output, parameters) into an
 * adapter made with cfg. */
static rl_status layer_read(const rl_st_file *f, const parity_setup *ps, const rl_adapter_config *cfg, int li,
                            layer_in *L)
{
    memset(L, 0, sizeof *L);
    L->d_out = ps->shapes[li][0];
    L->d_in = ps->shapes[li][1];
    L->T = ps->tokens;
    size_t o = (size_t)L->d_out, i = (size_t)L->d_in, T = (size_t)L->T;
    L->W = rl_alloc_floats(o * i);
    L->bias = rl_alloc_floats(o);
    L->x = rl_alloc_floats(T * i);
    L->dy = rl_alloc_floats(T * o);
    if (!L->W || !L->bias || !L->x || !L->dy) return rl_fail(RL_ENOMEM, "%s: no memory for layer %d", rl_st_path(f), li);
    char k[96];
    int sw[2] = {L->d_out, L->d_in}, sb[1] = {L->d_out}, sx[2] = {L->T, L->d_in}, sy[2] = {L->T, L->d_out};
    snprintf(k, sizeof k, "layers.%d.weight", li);
    RL_TRY(rl_st_read_f32(f, k, 2, sw, L->W));
    snprintf(k, sizeof k, "layers.%d.bias", li);
    RL_TRY(rl_st_read_f32(f, k, 1, sb, L->bias));
    snprintf(k, sizeof k, "layers.%d.x", li);
    RL_TRY(rl_st_read_f32(f, k, 2, sx, L->x));
    snprintf(k, sizeof k, "layers.%d.grad_output", li);
    RL_TRY(rl_st_read_f32(f, k, 2, sy, L->dy));
    RL_TRY(rl_adapter_new(&L->a, cfg, L->d_out, L->d_in, ps->bases, L->T));
    return parity_load_params(f, li, L->a);
}

/* This implementation in float32: y = x Wᵀ + b + adapter(x), ΔW, and the
 * gradients of L = Σ y ⊙ dy (dx, and the adapter's grads in its span). */
static rl_status layer_f32(layer_in *L, float *y, float *dw, float *dx)
{
    for (int t = 0; t < L->T; t++) memcpy(y + (size_t)t * L->d_out, L->bias, (size_t)L->d_out * sizeof(float));
    rl_gemm(RL_NOTRANS, RL_TRANS, L->T, L->d_out, L->d_in, 1.0f, L->x, L->d_in, L->W, L->d_in, 1.0f, y, L->d_out);
    RL_TRY(rl_adapter_forward(L->a, L->x, L->T, y));
    RL_TRY(rl_adapter_delta_weight(L->a, dw));
    rl_adapter_zero_grad(L->a);
    rl_gemm(RL_NOTRANS, RL_NOTRANS, L->T, L->d_in, L->d_out, 1.0f, L->dy, L->d_out, L->W, L->d_in, 0.0f, dx, L->d_in);
    return rl_adapter_backward(L->a, L->x, L->dy, L->T, dx);
}

/* Compare a double result with the file's float tensor `key` if present. */
static rl_status compare_truth(const rl_st_file *f, const char *key, const double *ours, int d0, int d1, double *worst)
{
    if (!rl_st_find(f, key)) return RL_OK;
    size_t n = (size_t)d0 * (d1 > 0 ? d1 : 1);
    float *ref = rl_alloc_floats(n);
    if (!ref) return rl_fail(RL_ENOMEM, "no memory");
    int shape[2] = {d0, d1};
    rl_status st = rl_st_read_f32(f, key, d1 > 0 ? 2 : 1, shape, ref);
    if (st == RL_OK) {
        double e = rel_err_d(ours, ref, n);
        if (e > *worst || isnan(e)) *worst = e;
    }
    rl_dealloc(ref);
    return st;
}

/* Open a reference file and read its setup; nothing stays open on failure. */
static rl_status open_ref(const char *path, rl_st_file **f, parity_setup *ps)
{
    RL_TRY(rl_st_open(f, path));
    rl_status st = parity_setup_read(*f, ps);
    if (st != RL_OK) {
        rl_st_close(*f);
        *f = NULL;
    }
    return st;
}

rl_status fixture_check_truth(const char *path, double *worst)
{
    *worst = -1;
    rl_st_file *f;
    parity_setup ps;
    RL_TRY(open_ref(path, &f, &ps));
    rl_status st = RL_OK;
    for (int li = 0; li < ps.layers && st == RL_OK; li++) {
        layer_in L;
        double *y = NULL, *dx = NULL, *dp = NULL;
        st = layer_read(f, &ps, &ps.cfg, li, &L);
        if (st == RL_OK) {
            size_t np = rl_adapter_param_count(L.a);
            y = malloc((size_t)L.T * L.d_out * sizeof *y);
            dx = malloc((size_t)L.T * L.d_in * sizeof *dx);
            dp = malloc((np ? np : 1) * sizeof *dp);
            st = !y || !dx || !dp ? rl_fail(RL_ENOMEM, "%s: no memory", path)
                                  : truth64_layer(&ps.cfg, ps.bases, L.d_out, L.d_in, L.T, L.W, L.bias,
                                                  rl_adapter_span(L.a).p, L.x, L.dy, y, dx, dp);
        }
        char k[128];
        if (st == RL_OK) {
            snprintf(k, sizeof k, "layers.%d.truth.output", li);
            st = compare_truth(f, k, y, L.T, L.d_out, worst);
        }
        if (st == RL_OK) {
            snprintf(k, sizeof k, "layers.%d.truth.grad.x", li);
            st = compare_truth(f, k, dx, L.T, L.d_in, worst);
        }
        for (int p = 0; st == RL_OK && p < rl_adapter_n_params_info(L.a); p++) {
            const rl_param_info *pi = rl_adapter_param_info(L.a, p);
            snprintf(k, sizeof k, "layers.%d.truth.grad.%s", li, pi->name);
            st = compare_truth(f, k, dp + pi->offset, pi->shape[0], pi->ndim == 2 ? pi->shape[1] : 0, worst);
        }
        free(y);
        free(dx);
        free(dp);
        layer_free(&L);
    }
    parity_setup_free(&ps);
    rl_st_close(f);
    return st;
}

/* ---- verification against PEFT-made files ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

rl_status fixture_verify(rl_method method, const char *const *dirs, int n_dirs, char *names, size_t len,
                         double *worst_f32, double *worst_f64, int *n_files)
{
    *n_files = 0;
    *worst_f32 = *worst_f64 = 0;
    names[0] = '\0';
    rl_status st = RL_OK;
    for (int d = 0; d < n_dirs && st == RL_OK; d++) {
        DIR *dir = opendir(dirs[d]);
        if (!dir) return rl_fail(RL_EIO, "--verify %s: cannot open: %s", dirs[d], strerror(errno));
        char *list[512];
        int n = 0;
        struct dirent *e;
        while ((e = readdir(dir)) != NULL && n < 512) {
            size_t k = strlen(e->d_name);
            if (k > 12 && strcmp(e->d_name + k - 12, ".safetensors") == 0 && (list[n] = strdup(e->d_name))) n++;
        }
        closedir(dir);
        qsort(list, (size_t)n, sizeof *list, cmp_str);
        for (int i = 0; i < n; i++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dirs[d], list[i]);
            rl_st_header *h = NULL;
            const char *m;
            bool mine = st == RL_OK && rl_st_header_read(&h, path) == RL_OK &&
                        (m = rl_st_header_meta(h, "method")) && strcmp(m, rl_method_name(method)) == 0 &&
                        rl_st_header_meta(h, "peft_commit") != NULL;
            rl_st_header_free(h);
            if (mine) {
                parity_result res;
                double e64;
                if ((st = parity_check_file(path, PARITY_DEFAULT_TOL, &res)) != RL_OK) {
                    char inner[700];
                    snprintf(inner, sizeof inner, "%s", rl_errmsg());
                    st = rl_fail(st, "verification against %s: %s", path, inner);
                } else if (!res.pass) {
                    st = rl_fail(RL_EINVAL, "verification: %s FAILS parity (%s %.3g): this build does not agree "
                                 "with PEFT, so it writes no reference", path, res.fail_what, res.fail_err);
                } else if ((st = fixture_check_truth(path, &e64)) != RL_OK) {
                    /* message names the file */
                } else if (!(e64 <= FIXTURE_TRUTH_TOL)) {
                    st = rl_fail(RL_EINVAL, "verification: the float64 reference misses %s's truth.* by %.3g "
                                 "(tolerance %g)", path, e64, FIXTURE_TRUTH_TOL);
                } else {
                    if (res.max_rel > *worst_f32) *worst_f32 = res.max_rel;
                    if (e64 > *worst_f64) *worst_f64 = e64;
                    size_t u = strlen(names);
                    snprintf(names + u, len - u, "%s%s", u ? "," : "", list[i]);
                    ++*n_files;
                }
            }
            free(list[i]);
        }
    }
    if (st == RL_OK && *n_files == 0)
        st = rl_fail(RL_ENOTFOUND, "no PEFT-made %s reference file (metadata peft_commit) in the --verify folders: "
                     "nothing to vouch for a new reference", rl_method_name(method));
    return st;
}

/* ---- writing a fixture ---- */

static rl_status add(rl_st_writer *w, const char *name, int d0, int d1, const float *data)
{
    int shape[2] = {d0, d1};
    return rl_st_writer_add(w, name, RL_DT_F32, d1 > 0 ? 2 : 1, shape, data);
}

/* Add a float64 result as F32. */
static rl_status add_d(rl_st_writer *w, const char *name, int d0, int d1, const double *v)
{
    size_t n = (size_t)d0 * (d1 > 0 ? d1 : 1);
    float *f = rl_alloc_floats(n);
    if (!f) return rl_fail(RL_ENOMEM, "no memory for %s", name);
    for (size_t i = 0; i < n; i++) f[i] = (float)v[i];
    rl_status st = add(w, name, d0, d1, f);
    rl_dealloc(f);
    return st;
}

/* The shared bases under PEFT's names and shapes (randlora_A/B, vera_A/B). */
static rl_status add_bases(rl_st_writer *w, const rl_shared_bases *b)
{
    int sa[3], sb[3], nd = rl_shared_bases_shapes(b, sa, sb);
    char ka[32], kb[32];
    snprintf(ka, sizeof ka, "%s_A", rl_shared_bases_prefix(b));
    snprintf(kb, sizeof kb, "%s_B", rl_shared_bases_prefix(b));
    RL_TRY(rl_st_writer_add(w, ka, RL_DT_F32, nd, sa, b->A));
    return rl_st_writer_add(w, kb, RL_DT_F32, nd, sb, b->B);
}

static rl_status meta(rl_st_writer *w, const char *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static rl_status meta(rl_st_writer *w, const char *k, const char *fmt, ...)
{
    char v[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    return rl_st_writer_meta(w, k, v);
}

/* A number as the format writes it: integers bare ("64"), else %.17g. */
static void num(char *buf, size_t len, double v)
{
    if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, len, "%.0f", v);
    else snprintf(buf, len, "%.17g", v);
}

/* Trained values as tests/gen/gen_parity.py draws them (fixture.h). */
static void draw_params(rl_adapter *a, rl_mt *g, int d_in)
{
    float *p = rl_adapter_span(a).p;
    for (int i = 0; i < rl_adapter_n_params_info(a); i++) {
        const rl_param_info *pi = rl_adapter_param_info(a, i);
        size_t n = (size_t)pi->shape[0] * (pi->ndim == 2 ? pi->shape[1] : 1);
        float *v = p + pi->offset;
        if (!strcmp(pi->name, "randlora_gamma")) {
            for (size_t k = 0; k < n; k++) v[k] *= 1.0f + 0.5f * rl_mt_normal(g);
        } else {
            float scale = !strcmp(pi->name, "randlora_lambda") ? 0.05f
                          : !strcmp(pi->name, "lora_A.weight")  ? 1.0f / sqrtf((float)d_in)
                          : !strcmp(pi->name, "lora_B.weight")  ? 0.1f
                                                                : 1.0f;
            rl_mt_fill_normal(g, v, n, scale);
        }
    }
}

static rl_status write_layer(rl_st_writer *w, const fixture_spec *s, const rl_adapter_config *cfg,
                             const rl_shared_bases *bases, rl_mt *g, int li)
{
    layer_in L = {.d_out = s->shapes[li][0], .d_in = s->shapes[li][1], .T = s->tokens};
    size_t o = (size_t)L.d_out, i = (size_t)L.d_in, T = (size_t)L.T;
    float *y = NULL, *dw = NULL, *dx = NULL, *init = NULL;
    double *y64 = NULL, *dx64 = NULL, *dp64 = NULL;
    char k[160];
    rl_status st = rl_adapter_new(&L.a, cfg, L.d_out, L.d_in, bases, L.T);
    if (st != RL_OK) goto done;
    size_t np = rl_adapter_param_count(L.a);
    L.W = rl_alloc_floats(o * i);
    L.bias = rl_alloc_floats(o);
    L.x = rl_alloc_floats(T * i);
    L.dy = rl_alloc_floats(T * o);
    y = rl_alloc_floats(T * o);
    dw = rl_alloc_floats(o * i);
    dx = rl_alloc_floats(T * i);
    init = rl_alloc_floats(np);
    y64 = malloc(T * o * sizeof *y64);
    dx64 = malloc(T * i * sizeof *dx64);
    dp64 = malloc(np * sizeof *dp64);
    if (!L.W || !L.bias || !L.x || !L.dy || !y || !dw || !dx || !init || !y64 || !dx64 || !dp64) {
        st = rl_fail(RL_ENOMEM, "fixture: no memory for layer %d (%d x %d)", li, L.d_out, L.d_in);
        goto done;
    }
    memcpy(init, rl_adapter_span(L.a).p, np * sizeof *init);
    rl_mt_fill_normal(g, L.W, o * i, 1.0f / sqrtf((float)i));
    rl_mt_fill_normal(g, L.bias, o, 0.1f);
    draw_params(L.a, g, L.d_in);
    rl_mt_fill_normal(g, L.x, T * i, 1.0f);
    rl_mt_fill_normal(g, L.dy, T * o, 1.0f);
    if ((st = layer_f32(&L, y, dw, dx)) != RL_OK) goto done;
    const float *p = rl_adapter_span(L.a).p, *gr = rl_adapter_span(L.a).g;
    if ((st = truth64_layer(cfg, bases, L.d_out, L.d_in, L.T, L.W, L.bias, p, L.x, L.dy, y64, dx64, dp64)) != RL_OK)
        goto done;
#define ADD(expr) if ((st = (expr)) != RL_OK) goto done
    snprintf(k, sizeof k, "layers.%d.weight", li);
    ADD(add(w, k, L.d_out, L.d_in, L.W));
    snprintf(k, sizeof k, "layers.%d.bias", li);
    ADD(add(w, k, L.d_out, 0, L.bias));
    for (int q = 0; q < rl_adapter_n_params_info(L.a); q++) {
        const rl_param_info *pi = rl_adapter_param_info(L.a, q);
        int d1 = pi->ndim == 2 ? pi->shape[1] : 0;
        snprintf(k, sizeof k, "layers.%d.%s", li, pi->name);
        ADD(add(w, k, pi->shape[0], d1, p + pi->offset));
        if (s->method != RL_METHOD_LORA) { /* LoRA's A init is a draw of torch's global RNG: not stored */
            snprintf(k, sizeof k, "layers.%d.init.%s", li, pi->name);
            ADD(add(w, k, pi->shape[0], d1, init + pi->offset));
        }
        snprintf(k, sizeof k, "layers.%d.expect.grad.%s", li, pi->name);
        ADD(add(w, k, pi->shape[0], d1, gr + pi->offset));
        snprintf(k, sizeof k, "layers.%d.truth.grad.%s", li, pi->name);
        ADD(add_d(w, k, pi->shape[0], d1, dp64 + pi->offset));
    }
    snprintf(k, sizeof k, "layers.%d.x", li);
    ADD(add(w, k, L.T, L.d_in, L.x));
    snprintf(k, sizeof k, "layers.%d.grad_output", li);
    ADD(add(w, k, L.T, L.d_out, L.dy));
    snprintf(k, sizeof k, "layers.%d.expect.output", li);
    ADD(add(w, k, L.T, L.d_out, y));
    snprintf(k, sizeof k, "layers.%d.expect.delta_weight", li);
    ADD(add(w, k, L.d_out, L.d_in, dw));
    snprintf(k, sizeof k, "layers.%d.expect.grad.x", li);
    ADD(add(w, k, L.T, L.d_in, dx));
    snprintf(k, sizeof k, "layers.%d.truth.output", li);
    ADD(add_d(w, k, L.T, L.d_out, y64));
    snprintf(k, sizeof k, "layers.%d.truth.grad.x", li);
    ADD(add_d(w, k, L.T, L.d_in, dx64));
#undef ADD
done:
    rl_dealloc(y);
    rl_dealloc(dw);
    rl_dealloc(dx);
    rl_dealloc(init);
    free(y64);
    free(dx64);
    free(dp64);
    layer_free(&L);
    return st;
}

rl_status fixture_write(const fixture_spec *s, const char *verified, const char *verified_rel, const char *out)
{
    if (s->method == RL_METHOD_FULL || s->layers < 1 || s->layers > PARITY_MAX_LAYERS || s->tokens < 1 || s->r < 1)
        return rl_fail(RL_EINVAL, "fixture: bad spec (method %s, %d layers, %d tokens, r %d)", rl_method_name(s->method),
                       s->layers, s->tokens, s->r);
    rl_adapter_config cfg = rl_adapter_config_default(s->method);
    cfg.r = s->r;
    cfg.alpha = s->alpha;
    cfg.use_rslora = s->use_rslora;
    cfg.d_initial = s->d_initial;
    int max_out = 0, max_in = 0;
    for (int i = 0; i < s->layers; i++) {
        if (s->shapes[i][0] > max_out) max_out = s->shapes[i][0];
        if (s->shapes[i][1] > max_in) max_in = s->shapes[i][1];
    }
    rl_shared_bases *bases = NULL;
    rl_st_writer *w = NULL;
    rl_status st = RL_OK;
    if (s->method != RL_METHOD_LORA)
        st = rl_shared_bases_new(&bases, s->method, s->r, max_out, max_in, s->kind, RL_BASES_FMT_DEFAULT,
                                 RL_BASES_FMA_DEFAULT, s->key);
    if (st == RL_OK) st = rl_st_writer_new(&w);
    char a[64];
#define TRY(expr) if (st == RL_OK) st = (expr)
    TRY(meta(w, "format", "peft-parity-v1"));
    TRY(meta(w, "method", "%s", rl_method_name(s->method)));
    TRY(meta(w, "r", "%d", s->r));
    TRY(meta(w, "tokens", "%d", s->tokens));
    TRY(meta(w, "layers", "%d", s->layers));
    TRY(meta(w, "projection_prng_key", "%" PRIu64, s->key));
    TRY(meta(w, "dtype", "float32"));
    if (s->method == RL_METHOD_LORA || s->method == RL_METHOD_RANDLORA) {
        num(a, sizeof a, s->alpha);
        TRY(meta(w, "alpha", "%s", a));
    }
    if (s->method == RL_METHOD_LORA) TRY(meta(w, "use_rslora", "%s", s->use_rslora ? "true" : "false"));
    if (s->method == RL_METHOD_RANDLORA) {
        TRY(meta(w, "sparse", "%s", s->kind == RL_BASES_SPARSE ? "true" : "false"));
        TRY(meta(w, "very_sparse", "%s", s->kind == RL_BASES_VERY_SPARSE ? "true" : "false"));
        TRY(meta(w, "bases_dtype", "%s", s->kind == RL_BASES_DENSE ? "bfloat16" : "float32"));
    }
    if (s->method == RL_METHOD_VERA) {
        num(a, sizeof a, s->d_initial);
        TRY(meta(w, "d_initial", "%s", a));
    }
    TRY(meta(w, "generator", "randlora-c"));
    TRY(meta(w, "seed", "%" PRIu64, s->seed));
    TRY(meta(w, "verified_against", "%s", verified));
    TRY(meta(w, "verified_max_rel", "%s", verified_rel));
    if (bases) TRY(add_bases(w, bases));
    rl_mt g;
    rl_mt_seed(&g, s->seed);
    for (int li = 0; li < s->layers; li++) TRY(write_layer(w, s, &cfg, bases, &g, li));
    TRY(rl_st_writer_save(w, out));
#undef TRY
    rl_st_writer_free(w);
    rl_shared_bases_free(bases);
    return st;
}

/* ---- candidates ---- */

rl_status fixture_write_candidate(const char *ref, rl_pairing pairing, double scale_factor, bool with_bases,
                                  const char *out)
{
    rl_st_file *f;
    parity_setup ps;
    RL_TRY(open_ref(ref, &f, &ps));
    rl_status st = RL_OK;
    rl_adapter_config cfg = ps.cfg;
    cfg.pairing = pairing;
    if (scale_factor != 1.0 && cfg.method == RL_METHOD_VERA)
        st = rl_fail(RL_EINVAL, "candidate: VeRA has no scaling to change");
    cfg.alpha *= scale_factor;
    rl_st_writer *w = NULL;
    if (st == RL_OK) st = rl_st_writer_new(&w);
    const char *base = strrchr(ref, '/') ? strrchr(ref, '/') + 1 : ref;
    if (st == RL_OK) st = meta(w, "format", "peft-parity-candidate-v1");
    if (st == RL_OK) st = meta(w, "reference", "%s", base);
    if (st == RL_OK)
        st = meta(w, "implementation", "randlora-c%s%s", pairing == RL_PAIRING_PAPER ? ", paper pairing" : "",
                  scale_factor != 1.0 ? ", scaling changed" : "");
    if (st == RL_OK && with_bases && ps.bases) st = add_bases(w, ps.bases);
    for (int li = 0; li < ps.layers && st == RL_OK; li++) {
        layer_in L;
        float *y = NULL, *dw = NULL, *dx = NULL;
        char k[160];
        st = layer_read(f, &ps, &cfg, li, &L);
        if (st == RL_OK) {
            y = rl_alloc_floats((size_t)L.T * L.d_out);
            dw = rl_alloc_floats((size_t)L.d_out * L.d_in);
            dx = rl_alloc_floats((size_t)L.T * L.d_in);
            st = y && dw && dx ? layer_f32(&L, y, dw, dx) : rl_fail(RL_ENOMEM, "candidate: no memory");
        }
        if (st == RL_OK) {
            snprintf(k, sizeof k, "layers.%d.output", li);
            st = add(w, k, L.T, L.d_out, y);
        }
        if (st == RL_OK) {
            snprintf(k, sizeof k, "layers.%d.delta_weight", li);
            st = add(w, k, L.d_out, L.d_in, dw);
        }
        if (st == RL_OK) {
            snprintf(k, sizeof k, "layers.%d.grad.x", li);
            st = add(w, k, L.T, L.d_in, dx);
        }
        for (int p = 0; st == RL_OK && p < rl_adapter_n_params_info(L.a); p++) {
            const rl_param_info *pi = rl_adapter_param_info(L.a, p);
            snprintf(k, sizeof k, "layers.%d.grad.%s", li, pi->name);
            st = add(w, k, pi->shape[0], pi->ndim == 2 ? pi->shape[1] : 0, rl_adapter_span(L.a).g + pi->offset);
        }
        rl_dealloc(y);
        rl_dealloc(dw);
        rl_dealloc(dx);
        layer_free(&L);
    }
    if (st == RL_OK) st = rl_st_writer_save(w, out);
    rl_st_writer_free(w);
    parity_setup_free(&ps);
    rl_st_close(f);
    return st;
}

/* ---- the command ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: randlora fixture --method M --r R --shapes OUTxIN[xCOUNT],... --out FILE.safetensors\n"
            "                        [--sparse | --very_sparse] [--key K] [--tokens T] [--alpha A]\n"
            "                        [--rslora] [--d-initial D] [--seed S] [--verify DIR]...\n"
            "  Writes a new reference file in the peft-parity-v1 format (tests/fixtures/peft/README.md)\n"
            "  computed by this implementation: bases regenerated from --key (default 0), random\n"
            "  weights, inputs and trained adapter values (--seed, default 1), expect.* in float32 and\n"
            "  truth.* in float64. Before writing, this build is checked against every PEFT-made file\n"
            "  of method M in the --verify folders (default tests/fixtures/peft and\n"
            "  tests/fixtures/peft_extra): each must pass `randlora parity` and have its truth.*\n"
            "  reproduced by the float64 reference within %g; their names go into the metadata\n"
            "  (verified_against, beside generator=randlora-c).\n"
            "  --method    lora, vera or randlora     --r R        rank (1..65536)\n"
            "  --shapes    (d_out, d_in) of each layer as nn.Linear stores them; xCOUNT repeats one\n"
            "  --tokens    rows of x (default 4)      --alpha A    lora_alpha / randlora_alpha (PEFT's\n"
            "              default: 8 for lora, 640 for randlora)\n"
            "  --rslora    lora: scaling alpha / sqrt(r)   --d-initial D  vera (default 0.1)\n",
            FIXTURE_TRUTH_TOL);
}

/* argv parsing kept local (issue 15 moves flags to experiments/flags.h). */
static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-' || *s == '+') return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static bool parse_pos_int(const char *s, long max, int *out)
{
    uint64_t v;
    if (!parse_u64(s, &v) || v < 1 || v > (uint64_t)max) return false;
    *out = (int)v;
    return true;
}

static bool parse_pos_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || !(v > 0)) return false;
    *out = v;
    return true;
}

#define FIXTURE_MAX_DIM 65536
#define FIXTURE_MAX_ELEMS ((size_t)1 << 28) /* 1 GiB of float32 per tensor */

int cmd_fixture(int argc, char **argv)
{
    const char *method_s = NULL, *r_s = NULL, *shapes_s = NULL, *key_s = NULL, *tokens_s = NULL, *alpha_s = NULL,
               *dinit_s = NULL, *seed_s = NULL, *out = NULL;
    const char *verify[16];
    int n_verify = 0;
    bool sparse = false, very = false, rslora = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **val = NULL;
        if (!strcmp(a, "--method")) val = &method_s;
        else if (!strcmp(a, "--r")) val = &r_s;
        else if (!strcmp(a, "--shapes")) val = &shapes_s;
        else if (!strcmp(a, "--key")) val = &key_s;
        else if (!strcmp(a, "--tokens")) val = &tokens_s;
        else if (!strcmp(a, "--alpha")) val = &alpha_s;
        else if (!strcmp(a, "--d-initial")) val = &dinit_s;
        else if (!strcmp(a, "--seed")) val = &seed_s;
        else if (!strcmp(a, "--out")) val = &out;
        else if (!strcmp(a, "--sparse")) sparse = true;
        else if (!strcmp(a, "--very_sparse") || !strcmp(a, "--very-sparse")) very = true;
        else if (!strcmp(a, "--rslora")) rslora = true;
        else if (!strcmp(a, "--verify")) {
            if (i + 1 >= argc || n_verify == 16) {
                fprintf(stderr, "randlora fixture: --verify needs a folder (at most 16)\n");
                return 2;
            }
            verify[n_verify++] = argv[++i];
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "randlora fixture: %s '%s'\n", strncmp(a, "--", 2) ? "unexpected argument" : "unknown flag", a);
            usage(stderr);
            return 2;
        }
        if (val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "randlora fixture: %s needs a value\n", a);
                return 2;
            }
            *val = argv[++i];
        }
    }
    fixture_spec s = {.tokens = 4, .seed = 1, .kind = very ? RL_BASES_VERY_SPARSE : sparse ? RL_BASES_SPARSE : RL_BASES_DENSE};
    params_selection sel;
    if (!method_s || !r_s || !shapes_s || !out) {
        fprintf(stderr, "randlora fixture: missing %s\n", !method_s ? "--method M" : !r_s ? "--r R" : !shapes_s ? "--shapes OUTxIN,..." : "--out FILE");
        usage(stderr);
        return 2;
    } else if (rl_method_parse(method_s, &s.method) != RL_OK || s.method == RL_METHOD_FULL) {
        fprintf(stderr, "randlora fixture: --method '%s' is not lora, vera or randlora\n", method_s);
        return 2;
    } else if (!parse_pos_int(r_s, FIXTURE_MAX_DIM, &s.r)) {
        fprintf(stderr, "randlora fixture: --r '%s' is not an integer in [1, %d]\n", r_s, FIXTURE_MAX_DIM);
        return 2;
    } else if (params_parse_shapes(shapes_s, &sel) != RL_OK) {
        fprintf(stderr, "randlora fixture: %s\n", rl_errmsg());
        return 2;
    } else if (tokens_s && !parse_pos_int(tokens_s, FIXTURE_MAX_DIM, &s.tokens)) {
        fprintf(stderr, "randlora fixture: --tokens '%s' is not an integer in [1, %d]\n", tokens_s, FIXTURE_MAX_DIM);
        return 2;
    } else if (key_s && !parse_u64(key_s, &s.key)) {
        fprintf(stderr, "randlora fixture: --key '%s' is not an unsigned 64-bit integer\n", key_s);
        return 2;
    } else if (seed_s && !parse_u64(seed_s, &s.seed)) {
        fprintf(stderr, "randlora fixture: --seed '%s' is not an unsigned 64-bit integer\n", seed_s);
        return 2;
    } else if ((sparse || very) && s.method != RL_METHOD_RANDLORA) {
        fprintf(stderr, "randlora fixture: --%s is for --method randlora only\n", very ? "very_sparse" : "sparse");
        return 2;
    } else if (sparse && very) {
        fprintf(stderr, "randlora fixture: give --sparse or --very_sparse, not both\n");
        return 2;
    } else if (rslora && s.method != RL_METHOD_LORA) {
        fprintf(stderr, "randlora fixture: --rslora is for --method lora only\n");
        return 2;
    } else if (dinit_s && s.method != RL_METHOD_VERA) {
        fprintf(stderr, "randlora fixture: --d-initial is for --method vera only\n");
        return 2;
    } else if (alpha_s && s.method == RL_METHOD_VERA) {
        fprintf(stderr, "randlora fixture: --alpha has no meaning for vera (no scaling)\n");
        return 2;
    }
    rl_adapter_config def = rl_adapter_config_default(s.method);
    s.alpha = def.alpha;
    s.d_initial = def.d_initial;
    s.use_rslora = rslora;
    if (alpha_s && !parse_pos_double(alpha_s, &s.alpha)) {
        fprintf(stderr, "randlora fixture: --alpha '%s' is not a positive number\n", alpha_s);
        return 2;
    } else if (dinit_s && !parse_pos_double(dinit_s, &s.d_initial)) {
        fprintf(stderr, "randlora fixture: --d-initial '%s' is not a positive number\n", dinit_s);
        return 2;
    }
    for (int i = 0; i < sel.n; i++)
        for (int c = 0; c < sel.m[i].count; c++) {
            const params_module *m = &sel.m[i];
            if (s.layers == PARITY_MAX_LAYERS) {
                fprintf(stderr, "randlora fixture: --shapes gives more than %d layers\n", PARITY_MAX_LAYERS);
                return 2;
            } else if (m->d_out > FIXTURE_MAX_DIM || m->d_in > FIXTURE_MAX_DIM ||
                       (size_t)m->d_out * (size_t)m->d_in > FIXTURE_MAX_ELEMS ||
                       (size_t)s.tokens * (size_t)(m->d_out > m->d_in ? m->d_out : m->d_in) > FIXTURE_MAX_ELEMS) {
                fprintf(stderr, "randlora fixture: --shapes %s (with --tokens %d) is too large: each dim <= %d and "
                        "each tensor <= 2^28 elements\n", m->name, s.tokens, FIXTURE_MAX_DIM);
                return 2;
            }
            s.shapes[s.layers][0] = m->d_out;
            s.shapes[s.layers][1] = m->d_in;
            s.layers++;
        }
    static const char *const default_dirs[2] = {"tests/fixtures/peft", "tests/fixtures/peft_extra"};
    const char *const *dirs = n_verify ? verify : default_dirs;
    char names[4096], rel[160];
    double w32, w64;
    int nf;
    rl_status st = fixture_verify(s.method, dirs, n_verify ? n_verify : 2, names, sizeof names, &w32, &w64, &nf);
    if (st != RL_OK) {
        fprintf(stderr, "randlora fixture: %s\n", rl_errmsg());
        return st == RL_EIO ? 2 : 1;
    }
    printf("verified against %d PEFT-made %s file%s: float32 max_rel %.2e (tolerance %g), float64 truth %.2e "
           "(tolerance %g)\n  %s\n", nf, rl_method_name(s.method), nf > 1 ? "s" : "", w32, PARITY_DEFAULT_TOL, w64,
           FIXTURE_TRUTH_TOL, names);
    snprintf(rel, sizeof rel, "float32 %.3g (tolerance %g); float64 truth %.3g (tolerance %g)", w32,
             PARITY_DEFAULT_TOL, w64, FIXTURE_TRUTH_TOL);
    if ((st = fixture_write(&s, names, rel, out)) != RL_OK) {
        fprintf(stderr, "randlora fixture: %s\n", rl_errmsg());
        return st == RL_EINVAL || st == RL_ERANGE ? 2 : 1;
    }
    printf("wrote %s: %s r=%d, %d layer%s, %d tokens, key %" PRIu64 ", seed %" PRIu64 "\n", out,
           rl_method_name(s.method), s.r, s.layers, s.layers > 1 ? "s" : "", s.tokens, s.key, s.seed);
    return 0;
}
