/* rl_peft.c -- PEFT adapter directories (adapter_config.json + safetensors).
 * See rl_peft.h for the key layout; peft-semantics.md §5 for PEFT's side. */
#include "rl_peft.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/rl_budget.h"
#include "../core/rl_half.h"
#include "../core/rl_tensor.h"
#include "rl_output.h"
#include "rl_results.h"

#define PREFIX "base_model.model."

const char *rl_peft_bases_source_name(rl_peft_bases_source s)
{
    static const char *const names[] = {
        [RL_PEFT_BASES_NONE] = "none",
        [RL_PEFT_BASES_SHARED] = "shared",
        [RL_PEFT_BASES_PER_LAYER] = "per_layer",
        [RL_PEFT_BASES_REGENERATED] = "regenerated",
    };
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

/* ---- small helpers ---- */

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = rl_alloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *d = rl_alloc(n);
    if (d) snprintf(d, n, "%s/%s", dir, name);
    return d;
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Re-fail with extra context after the current message. */
static rl_status with_context(rl_status st, const char *ctx)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rl_errmsg());
    return rl_fail(st, "%s %s", msg, ctx);
}

/* ---- adapter_config.json ---- */

static rl_status cfg_int(json_t *cfg, const char *path, const char *field, long long lo, long long def,
                         long long *out)
{
    json_t *v = json_object_get(cfg, field);
    if (!v || json_is_null(v)) {
        *out = def;
        return RL_OK;
    }
    if (!json_is_integer(v))
        return rl_fail(RL_EFORMAT, "%s: field '%s' must be an integer", path, field);
    *out = json_integer_value(v);
    if (*out < lo)
        return rl_fail(RL_EFORMAT, "%s: field '%s' = %lld must be >= %lld", path, field, *out, lo);
    return RL_OK;
}

static rl_status cfg_num(json_t *cfg, const char *path, const char *field, double def, double *out)
{
    json_t *v = json_object_get(cfg, field);
    if (!v || json_is_null(v)) {
        *out = def;
        return RL_OK;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return rl_fail(RL_EFORMAT, "%s: field '%s' must be a finite number", path, field);
    *out = json_number_value(v);
    return RL_OK;
}

static rl_status cfg_bool(json_t *cfg, const char *path, const char *field, bool def, bool *out)
{
    json_t *v = json_object_get(cfg, field);
    if (!v || json_is_null(v)) {
        *out = def;
        return RL_OK;
    }
    if (!json_is_boolean(v)) return rl_fail(RL_EFORMAT, "%s: field '%s' must be true or false", path, field);
    *out = json_is_true(v);
    return RL_OK;
}

static rl_status read_config(rl_peft *p, const char *path)
{
    if (!file_exists(path)) return rl_fail(RL_ENOTFOUND, "%s: missing (not a PEFT adapter directory?)", path);
    json_error_t err;
    json_t *cfg = json_load_file(path, 0, &err);
    if (!cfg) return rl_fail(RL_EFORMAT, "%s: malformed JSON at line %d column %d: %s", path, err.line,
                             err.column, err.text);
    rl_status st = RL_OK;
    json_t *pt = json_object_get(cfg, "peft_type");
    const char *type = json_is_string(pt) ? json_string_value(pt) : NULL;
    long long r = 0, key = 0;
    if (!json_is_object(cfg)) st = rl_fail(RL_EFORMAT, "%s: not a JSON object", path);
    else if (!pt) st = rl_fail(RL_EFORMAT, "%s: field 'peft_type' is missing", path);
    else if (!type) st = rl_fail(RL_EFORMAT, "%s: field 'peft_type' must be a string", path);
    else if (strcmp(type, "RANDLORA") == 0) p->method = RL_METHOD_RANDLORA;
    else if (strcmp(type, "VERA") == 0) p->method = RL_METHOD_VERA;
    else if (strcmp(type, "LORA") == 0) p->method = RL_METHOD_LORA;
    else st = rl_fail(RL_EFORMAT, "%s: unknown peft_type '%s' (supported: RANDLORA, VERA, LORA)", path, type);
    if (st != RL_OK) goto done;

    p->cfg = rl_adapter_config_default(p->method);
    if ((st = cfg_int(cfg, path, "r", 1, p->cfg.r, &r)) != RL_OK) goto done;
    if (r > 1 << 20) {
        st = rl_fail(RL_EFORMAT, "%s: field 'r' = %lld is too large", path, r);
        goto done;
    }
    p->cfg.r = (int)r;
    bool b = false;
    if ((st = cfg_bool(cfg, path, "fan_in_fan_out", false, &b)) != RL_OK) goto done;
    if (b) {
        st = rl_fail(RL_EFORMAT, "%s: fan_in_fan_out = true (Conv1D layers) is not supported", path);
        goto done;
    }
    if (p->method == RL_METHOD_LORA) {
        if ((st = cfg_num(cfg, path, "lora_alpha", 8.0, &p->cfg.alpha)) != RL_OK) goto done;
        if ((st = cfg_bool(cfg, path, "use_rslora", false, &p->cfg.use_rslora)) != RL_OK) goto done;
        if ((st = cfg_bool(cfg, path, "use_dora", false, &b)) != RL_OK) goto done;
        if (b) {
            st = rl_fail(RL_EFORMAT, "%s: use_dora = true is not supported", path);
            goto done;
        }
    } else {
        if ((st = cfg_int(cfg, path, "projection_prng_key", INT64_MIN, 0, &key)) != RL_OK) goto done;
        p->key = (uint64_t)key;   /* torch: manual_seed(-1) == manual_seed(2^64 - 1) */
        if ((st = cfg_bool(cfg, path, "save_projection", true, &p->save_projection)) != RL_OK) goto done;
    }
    if (p->method == RL_METHOD_RANDLORA) {
        bool sparse = false, very = false;
        if ((st = cfg_num(cfg, path, "randlora_alpha", 640.0, &p->cfg.alpha)) != RL_OK) goto done;
        if ((st = cfg_bool(cfg, path, "sparse", false, &sparse)) != RL_OK) goto done;
        if ((st = cfg_bool(cfg, path, "very_sparse", false, &very)) != RL_OK) goto done;
        p->kind = very ? RL_BASES_VERY_SPARSE : sparse ? RL_BASES_SPARSE : RL_BASES_DENSE;
    }
    if (p->method == RL_METHOD_VERA)
        if ((st = cfg_num(cfg, path, "d_initial", 0.1, &p->cfg.d_initial)) != RL_OK) goto done;
    char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!text || !(p->config_json = dupstr(text))) st = rl_fail(RL_ENOMEM, "%s: out of memory", path);
    free(text);
done:
    json_decref(cfg);
    return st;
}

/* ---- modules ---- */

/* The per-module parameter suffixes of each method (PEFT key = PREFIX +
 * path + "." + suffix); the first one identifies a module. */
static const char *const *param_suffixes(rl_method m, int *n)
{
    static const char *const rl[] = {"randlora_lambda", "randlora_gamma"};
    static const char *const ve[] = {"vera_lambda_b", "vera_lambda_d"};
    static const char *const lo[] = {"lora_A.weight", "lora_B.weight"};
    *n = 2;
    return m == RL_METHOD_RANDLORA ? rl : m == RL_METHOD_VERA ? ve : lo;
}

static int cmp_module(const void *a, const void *b)
{
    return strcmp(((const rl_peft_module *)a)->path, ((const rl_peft_module *)b)->path);
}

/* Classify every tensor of the adapter file; collect module paths. */
static rl_status scan_keys(rl_peft *p, const rl_st_file *f)
{
    const char *file = rl_st_path(f);
    const char *bname = p->method == RL_METHOD_RANDLORA ? "randlora" : "vera";
    char shared_a[64], shared_b[64], alias_a[64], alias_b[64];
    snprintf(shared_a, sizeof shared_a, "base_model.%s_A", bname);
    snprintf(shared_b, sizeof shared_b, "base_model.%s_B", bname);
    snprintf(alias_a, sizeof alias_a, ".%s_A", bname);
    snprintf(alias_b, sizeof alias_b, ".%s_B", bname);
    int nsuf;
    const char *const *suf = param_suffixes(p->method, &nsuf);
    size_t n = rl_st_count(f);
    p->modules = rl_alloc((n + 1) * sizeof *p->modules);
    if (!p->modules) return rl_fail(RL_ENOMEM, "%s: out of memory", file);
    bool have_dtype = false;
    for (size_t i = 0; i < n; i++) {
        const rl_st_tensor *t = rl_st_at(f, i);
        const char *k = t->name;
        if (p->method != RL_METHOD_LORA && (strcmp(k, shared_a) == 0 || strcmp(k, shared_b) == 0)) continue;
        if (strncmp(k, PREFIX, strlen(PREFIX)) != 0)
            return rl_fail(RL_EFORMAT, "%s: unexpected tensor '%s' (PEFT keys start with '" PREFIX "')",
                           file, k);
        if (p->method == RL_METHOD_RANDLORA && (ends_with(k, alias_a) || ends_with(k, alias_b))) continue;
        int which = -1;
        for (int s = 0; s < nsuf; s++) {
            size_t ls = strlen(suf[s]), lk = strlen(k);
            if (lk > strlen(PREFIX) + ls + 1 && ends_with(k, suf[s]) && k[lk - ls - 1] == '.') which = s;
        }
        if (which < 0) {
            if (p->method == RL_METHOD_LORA && ends_with(k, ".lora_B.bias"))
                return rl_fail(RL_EFORMAT, "%s: '%s': lora_bias is not supported", file, k);
            return rl_fail(RL_EFORMAT, "%s: unexpected tensor '%s' for peft_type %s", file, k,
                           rl_method_name(p->method));
        }
        if (!have_dtype) {
            p->dtype = t->dtype;
            have_dtype = true;
        }
        if (which != 0) continue;
        size_t plen = strlen(k) - strlen(PREFIX) - strlen(suf[0]) - 1;
        char *path = rl_alloc(plen + 1);
        if (!path) return rl_fail(RL_ENOMEM, "%s: out of memory", file);
        memcpy(path, k + strlen(PREFIX), plen);
        p->modules[p->n_modules++].path = path;
    }
    if (p->n_modules == 0)
        return rl_fail(RL_ENOTFOUND, "%s: no '%s' tensors: the file holds no %s module", file, suf[0],
                       rl_method_name(p->method));
    qsort(p->modules, (size_t)p->n_modules, sizeof *p->modules, cmp_module);
    /* every module must have its second parameter too */
    char key[1024];
    for (int m = 0; m < p->n_modules; m++) {
        for (int s = 0; s < nsuf; s++) {
            snprintf(key, sizeof key, PREFIX "%s.%s", p->modules[m].path, suf[s]);
            if (!rl_st_find(f, key)) return rl_fail(RL_ENOTFOUND, "%s: tensor '%s' is missing", file, key);
        }
    }
    /* a parameter whose module has no first parameter */
    for (size_t i = 0; i < n; i++) {
        const char *k = rl_st_at(f, i)->name;
        if (!ends_with(k, suf[1]) || strncmp(k, PREFIX, strlen(PREFIX)) != 0) continue;
        snprintf(key, sizeof key, "%.*s%s", (int)(strlen(k) - strlen(suf[1])), k, suf[0]);
        if (!rl_st_find(f, key)) return rl_fail(RL_ENOTFOUND, "%s: tensor '%s' is missing", file, key);
    }
    return RL_OK;
}

/* (out, in) of every module: from base weights when present, else (LoRA)
 * from lora_A (r, in) / lora_B (out, r). */
static rl_status module_shapes(rl_peft *p, const rl_st_file *f, const rl_st_file *base)
{
    char key[1024];
    for (int m = 0; m < p->n_modules; m++) {
        rl_peft_module *md = &p->modules[m];
        if (base) {
            snprintf(key, sizeof key, "%s.weight", md->path);
            const rl_st_tensor *t = rl_st_find(base, key);
            if (!t) return rl_fail(RL_ENOTFOUND, "%s: base weight '%s' of adapted module '%s' is missing",
                                   rl_st_path(base), key, md->path);
            if (t->ndim != 2 || t->shape[0] <= 0 || t->shape[1] <= 0 || t->shape[0] > INT32_MAX / 2 ||
                t->shape[1] > INT32_MAX / 2)
                return rl_fail(RL_ESHAPE, "%s: base weight '%s' must be a non-empty 2-D (out, in) matrix",
                               rl_st_path(base), key);
            md->d_out = (int)t->shape[0];
            md->d_in = (int)t->shape[1];
        }
        if (p->method == RL_METHOD_LORA) {
            snprintf(key, sizeof key, PREFIX "%s.lora_A.weight", md->path);
            const rl_st_tensor *a = rl_st_find(f, key);
            snprintf(key, sizeof key, PREFIX "%s.lora_B.weight", md->path);
            const rl_st_tensor *b = rl_st_find(f, key);
            if (a->ndim != 2 || b->ndim != 2 || a->shape[0] != p->cfg.r || b->shape[1] != p->cfg.r ||
                a->shape[1] <= 0 || b->shape[0] <= 0 || a->shape[1] > INT32_MAX / 2 ||
                b->shape[0] > INT32_MAX / 2)
                return rl_fail(RL_ESHAPE, "%s: '%s' is [%lld, %lld] and '%s' is [%lld, %lld]: expected "
                               "lora_A (r, in) and lora_B (out, r) with r = %d from adapter_config.json",
                               rl_st_path(f), a->name, (long long)a->shape[0],
                               (long long)(a->ndim > 1 ? a->shape[1] : 0), b->name,
                               (long long)b->shape[0], (long long)(b->ndim > 1 ? b->shape[1] : 0), p->cfg.r);
            if (base && (md->d_out != b->shape[0] || md->d_in != a->shape[1]))
                return rl_fail(RL_ESHAPE, "%s: base weight '%s.weight' is (%d, %d) but the adapter's "
                               "lora_A/lora_B give (%lld, %lld)", rl_st_path(base), md->path, md->d_out,
                               md->d_in, (long long)b->shape[0], (long long)a->shape[1]);
            md->d_out = (int)b->shape[0];
            md->d_in = (int)a->shape[1];
        } else if (!base) {
            return rl_fail(RL_ENOTFOUND, "%s: %s checkpoints do not record layer shapes; base weights "
                           "are needed (%s/base_model.safetensors or --base FILE)", p->dir,
                           rl_method_name(p->method), p->dir);
        }
    }
    return RL_OK;
}

/* Read a stored basis `name` of the expected shape into dst, if present. */
static rl_status read_basis(const rl_st_file *f, const char *name, int ndim, const int *shape, float *dst,
                            bool *found)
{
    *found = rl_st_find(f, name) != NULL;
    if (!*found) return RL_OK;
    rl_status st = rl_st_read_f32(f, name, ndim, shape, dst);
    if (st == RL_ESHAPE) return with_context(st, "(expected from r in adapter_config.json and the largest adapted layer)");
    return st;
}

static rl_status load_bases(rl_peft *p, const rl_st_file *f)
{
    int O = 0, I = 0, mo = 0, mi = 0;
    for (int m = 0; m < p->n_modules; m++) {
        if (p->modules[m].d_out > O) O = p->modules[m].d_out, mo = m;
        if (p->modules[m].d_in > I) I = p->modules[m].d_in, mi = m;
    }
    /* PEFT sizes the shared bases from the largest d_out and the largest
     * d_in, which may come from different modules (its _find_dim): a 1 x N
     * and an N x 1 module need N x N bases. That rule stays (the bases must
     * be PEFT's, bit for bit); what it takes is checked first, together with
     * the two buffers the stored bases are read into. */
    size_t need = rl_shared_bases_bytes(p->method, p->cfg.r, O, I, p->kind), ab = 0;
    if (p->method == RL_METHOD_RANDLORA) {
        size_t mn = (size_t)(O < I ? O : I), mx = (size_t)(O < I ? I : O);
        ab = rl_size_add(rl_size_mul((size_t)p->cfg.r, mn),
                         rl_size_mul(mx, rl_size_mul((size_t)rl_randlora_n_bases((int)mn, p->cfg.r), (size_t)p->cfg.r)));
    } else {
        ab = rl_size_add(rl_size_mul((size_t)p->cfg.r, (size_t)I), rl_size_mul((size_t)O, (size_t)p->cfg.r));
    }
    need = rl_size_add(need, rl_size_mul(ab, sizeof(float)));
    RL_TRY(rl_budget_check(need, "%s: the shared %s bases (r = %d from adapter_config.json; sized by the largest "
                           "d_out = %d, module '%s', and the largest d_in = %d, module '%s', as PEFT sizes them)",
                           p->dir, rl_method_name(p->method), p->cfg.r, O, p->modules[mo].path, I,
                           p->modules[mi].path));
    RL_TRY(rl_shared_bases_new(&p->bases, p->method, p->cfg.r, O, I, p->kind, RL_BASES_FMT_DEFAULT,
                               RL_BASES_FMA_DEFAULT, p->key));
    rl_shared_bases *b = p->bases;
    int sa[3], sb[3], nd = rl_shared_bases_shapes(b, sa, sb);
    const char *bname = rl_shared_bases_prefix(b);
    float *A = rl_alloc_floats(b->a_len), *B = rl_alloc_floats(b->b_len);
    rl_status st = RL_OK;
    if (!A || !B) {
        st = rl_fail(RL_ENOMEM, "%s: out of memory for the bases", rl_st_path(f));
        goto done;
    }
    char ka[1024], kb[1024];
    snprintf(ka, sizeof ka, "base_model.%s_A", bname);
    snprintf(kb, sizeof kb, "base_model.%s_B", bname);
    bool fa, fb;
    p->bases_source = RL_PEFT_BASES_SHARED;
    if ((st = read_basis(f, ka, nd, sa, A, &fa)) != RL_OK) goto done;
    if ((st = read_basis(f, kb, nd, sb, B, &fb)) != RL_OK) goto done;
    if (!fa && !fb && p->method == RL_METHOD_RANDLORA) {
        /* PEFT's per-module copies: all equal; take the first module's */
        snprintf(ka, sizeof ka, PREFIX "%s.randlora_A", p->modules[0].path);
        snprintf(kb, sizeof kb, PREFIX "%s.randlora_B", p->modules[0].path);
        if ((st = read_basis(f, ka, nd, sa, A, &fa)) != RL_OK) goto done;
        if ((st = read_basis(f, kb, nd, sb, B, &fb)) != RL_OK) goto done;
        p->bases_source = RL_PEFT_BASES_PER_LAYER;
    }
    if (fa != fb) {
        st = rl_fail(RL_ENOTFOUND, "%s: tensor '%s' is missing (its pair '%s' is present)", rl_st_path(f),
                     fa ? kb : ka, fa ? ka : kb);
        goto done;
    }
    if (!fa) {
        if (p->save_projection) {
            st = rl_fail(RL_ENOTFOUND, "%s: tensor 'base_model.%s_A' (or a per-module copy) is missing "
                         "although adapter_config.json has save_projection = true", rl_st_path(f), bname);
            goto done;
        }
        p->bases_source = RL_PEFT_BASES_REGENERATED;
        p->bases_match_key = true;
        goto done;
    }
    p->bases_match_key = memcmp(A, b->A, b->a_len * sizeof(float)) == 0 &&
                         memcmp(B, b->B, b->b_len * sizeof(float)) == 0;
    memcpy(b->A, A, b->a_len * sizeof(float));
    memcpy(b->B, B, b->b_len * sizeof(float));
done:
    rl_dealloc(A);
    rl_dealloc(B);
    return st;
}

static rl_status load_params(rl_peft *p, const rl_st_file *f)
{
    char key[1024], ctx[256];
    /* RandLora adapters are made with no per-row workspace (max_tokens 0):
     * a directory is only ever merged, exported or turned into ΔW, and a
     * one-row workspace would cost 2·K·min_dim floats per module */
    const int rows = p->method == RL_METHOD_RANDLORA ? 0 : 1;
    size_t need = 0;
    for (int m = 0; m < p->n_modules; m++)
        need = rl_size_add(need, rl_adapter_bytes_bound(&p->cfg, p->modules[m].d_out, p->modules[m].d_in, p->bases, rows));
    RL_TRY(rl_budget_check(need, "%s: the %d adapters (r = %d from adapter_config.json, shapes from the base "
                           "weights)", p->dir, p->n_modules, p->cfg.r));
    for (int m = 0; m < p->n_modules; m++) {
        rl_peft_module *md = &p->modules[m];
        rl_status st = rl_adapter_new(&md->adapter, &p->cfg, md->d_out, md->d_in, p->bases, rows);
        if (st != RL_OK) return with_context(st, md->path);
        rl_adapter *a = md->adapter;
        for (int i = 0; i < rl_adapter_n_params_info(a); i++) {
            const rl_param_info *pi = rl_adapter_param_info(a, i);
            int shape[2] = {pi->shape[0], pi->shape[1]};
            snprintf(key, sizeof key, PREFIX "%s.%s", md->path, pi->name);
            st = rl_st_read_f32(f, key, pi->ndim, shape, rl_adapter_span(a).p + pi->offset);
            if (st == RL_ESHAPE) {
                snprintf(ctx, sizeof ctx, "(expected from r = %d in adapter_config.json and the layer "
                         "shape (%d, %d) of the base weight)", p->cfg.r, md->d_out, md->d_in);
                return with_context(st, ctx);
            }
            if (st != RL_OK) return st;
        }
    }
    return RL_OK;
}

rl_status rl_peft_load(rl_peft **out, const char *dir, const char *base_weights)
{
    *out = NULL;
    if (!dir) return rl_fail(RL_EINVAL, "peft_load: NULL directory");
    rl_peft *p = rl_alloc(sizeof *p);
    if (!p) return rl_fail(RL_ENOMEM, "out of memory");
    rl_st_file *f = NULL, *base = NULL;
    char *cfg_path = join(dir, "adapter_config.json"), *st_path = join(dir, "adapter_model.safetensors");
    char *def_base = join(dir, "base_model.safetensors");
    rl_status st = RL_OK;
    if (!(p->dir = dupstr(dir)) || !cfg_path || !st_path || !def_base) {
        st = rl_fail(RL_ENOMEM, "out of memory");
        goto done;
    }
    if ((st = read_config(p, cfg_path)) != RL_OK) goto done;
    if (!file_exists(st_path)) {
        st = rl_fail(RL_ENOTFOUND, "%s: missing (adapter_model.bin is not supported: save with "
                     "safe_serialization=True)", st_path);
        goto done;
    }
    if ((st = rl_st_open(&f, st_path)) != RL_OK) goto done;
    const char *bp = base_weights ? base_weights : file_exists(def_base) ? def_base : NULL;
    if (bp) {
        if ((st = rl_st_open(&base, bp)) != RL_OK) goto done;
        if (!(p->base_path = dupstr(bp))) {
            st = rl_fail(RL_ENOMEM, "out of memory");
            goto done;
        }
    }
    if ((st = scan_keys(p, f)) != RL_OK) goto done;
    if ((st = module_shapes(p, f, base)) != RL_OK) goto done;
    if (p->method != RL_METHOD_LORA && (st = load_bases(p, f)) != RL_OK) goto done;
    if ((st = load_params(p, f)) != RL_OK) goto done;
done:
    rl_st_close(f);
    rl_st_close(base);
    rl_dealloc(cfg_path);
    rl_dealloc(st_path);
    rl_dealloc(def_base);
    if (st != RL_OK) {
        rl_peft_free(p);
        return st;
    }
    *out = p;
    return RL_OK;
}

void rl_peft_free(rl_peft *p)
{
    if (!p) return;
    if (p->modules)
        for (int m = 0; m < p->n_modules; m++) {
            rl_dealloc(p->modules[m].path);
            rl_adapter_free(p->modules[m].adapter);
        }
    rl_dealloc(p->modules);
    rl_shared_bases_free(p->bases);
    rl_dealloc(p->dir);
    rl_dealloc(p->config_json);
    rl_dealloc(p->base_path);
    rl_dealloc(p);
}

rl_status rl_peft_delta_weight(const rl_peft *p, int i, float *dw)
{
    RL_ASSERT(i >= 0 && i < p->n_modules, "module %d of %d", i, p->n_modules);
    return rl_adapter_delta_weight(p->modules[i].adapter, dw);
}

/* ---- writing ---- */

rl_peft_save_opts rl_peft_save_opts_default(void)
{
    return (rl_peft_save_opts){.dtype = -1, .save_projection = -1, .per_layer_copies = true};
}

static rl_status copy_file(const char *from, const char *to)
{
    FILE *fp = fopen(from, "rb");
    if (!fp) return rl_fail(RL_EIO, "%s: cannot open: %s", from, strerror(errno));
    rl_atomic_file af;
    rl_status st = rl_atomic_open(&af, to);
    if (st != RL_OK) {
        fclose(fp);
        return st;
    }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
        if (fwrite(buf, 1, n, af.fp) != n) {
            fclose(fp);
            rl_atomic_abort(&af);
            return rl_fail(RL_EWRITE, "%s: write failed", to);
        }
    bool bad = ferror(fp);
    fclose(fp);
    if (bad) {
        rl_atomic_abort(&af);
        return rl_fail(RL_EIO, "%s: read failed", from);
    }
    return rl_atomic_commit(&af);
}

static rl_status write_bases(const rl_peft *p, rl_st_writer *w, rl_dtype dt, bool per_layer)
{
    const rl_shared_bases *b = p->bases;
    int sa[3], sb[3], nd = rl_shared_bases_shapes(b, sa, sb);
    const char *bname = rl_shared_bases_prefix(b);
    char key[1024];
    snprintf(key, sizeof key, "base_model.%s_A", bname);
    RL_TRY(rl_st_writer_add(w, key, dt, nd, sa, b->A));
    snprintf(key, sizeof key, "base_model.%s_B", bname);
    RL_TRY(rl_st_writer_add(w, key, dt, nd, sb, b->B));
    if (per_layer && p->method == RL_METHOD_RANDLORA)
        for (int m = 0; m < p->n_modules; m++) {
            snprintf(key, sizeof key, PREFIX "%s.randlora_A", p->modules[m].path);
            RL_TRY(rl_st_writer_add(w, key, dt, nd, sa, b->A));
            snprintf(key, sizeof key, PREFIX "%s.randlora_B", p->modules[m].path);
            RL_TRY(rl_st_writer_add(w, key, dt, nd, sb, b->B));
        }
    return RL_OK;
}

rl_status rl_peft_save(const rl_peft *p, const char *out_dir, const rl_peft_save_opts *opts)
{
    rl_peft_save_opts o = opts ? *opts : rl_peft_save_opts_default();
    if (!out_dir || !*out_dir) return rl_fail(RL_EINVAL, "peft_save: empty output directory");
    else if (o.dtype > RL_DT_BF16) return rl_fail(RL_EINVAL, "peft_save: bad dtype %d", o.dtype);
    const char *inputs[] = {p->dir, p->base_path};
    if (rl_output_dir_check(out_dir, inputs, 2) != RL_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", rl_errmsg());
        return rl_fail(RL_EINVAL, "%s (the adapter directory and base weights it was read from are inputs)", msg);
    }
    rl_dtype dt = o.dtype < 0 ? p->dtype : (rl_dtype)o.dtype;
    bool save_proj = o.save_projection < 0 ? p->save_projection : o.save_projection != 0;
    /* what the writer will hold: a copy of every tensor in dtype dt */
    size_t need = 0;
    for (int m = 0; m < p->n_modules; m++)
        need = rl_size_add(need, rl_size_mul(rl_adapter_param_count(p->modules[m].adapter), rl_dtype_size(dt)));
    if (p->bases && save_proj) {
        size_t nb = rl_size_mul(rl_size_add(p->bases->a_len, p->bases->b_len), rl_dtype_size(dt));
        need = rl_size_add(need, rl_size_mul(nb, o.per_layer_copies && p->method == RL_METHOD_RANDLORA
                                                     ? (size_t)p->n_modules + 1 : 1));
    }
    RL_TRY(rl_budget_check(need, "%s: writing %d modules%s", out_dir, p->n_modules,
                           p->bases && save_proj && o.per_layer_copies ? " with a copy of the bases under each" : ""));
    rl_atomic_dir ad;
    RL_TRY(rl_atomic_dir_open(&ad, out_dir, o.replace));
    char *cfg_path = rl_atomic_dir_file(&ad, "adapter_config.json");
    char *st_path = rl_atomic_dir_file(&ad, "adapter_model.safetensors");
    char *base_out = rl_atomic_dir_file(&ad, "base_model.safetensors");
    json_t *cfg = NULL;
    char *text = NULL;
    rl_st_writer *w = NULL;
    rl_status st = RL_OK;
    if (!cfg_path || !st_path || !base_out) {
        st = rl_fail(RL_ENOMEM, "out of memory");
        goto done;
    }
    json_error_t err;
    cfg = json_loads(p->config_json, 0, &err);
    RL_ASSERT(cfg, "config_json was produced by jansson: %s", err.text);
    if (p->method != RL_METHOD_LORA) json_object_set_new(cfg, "save_projection", json_boolean(save_proj));
    text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!text) {
        st = rl_fail(RL_ENOMEM, "out of memory");
        goto done;
    }
    if ((st = rl_write_file_atomic(cfg_path, text, strlen(text))) != RL_OK) goto done;

    if ((st = rl_st_writer_new(&w)) != RL_OK) goto done;
    if ((st = rl_st_writer_meta(w, "format", "pt")) != RL_OK) goto done;
    char key[1024];
    for (int m = 0; m < p->n_modules; m++) {
        rl_adapter *a = p->modules[m].adapter;
        for (int i = 0; i < rl_adapter_n_params_info(a); i++) {
            const rl_param_info *pi = rl_adapter_param_info(a, i);
            snprintf(key, sizeof key, PREFIX "%s.%s", p->modules[m].path, pi->name);
            st = rl_st_writer_add(w, key, dt, pi->ndim, pi->shape, rl_adapter_span(a).p + pi->offset);
            if (st != RL_OK) goto done;
        }
    }
    if (p->method != RL_METHOD_LORA && save_proj && (st = write_bases(p, w, dt, o.per_layer_copies)) != RL_OK)
        goto done;
    if ((st = rl_st_writer_save(w, st_path)) != RL_OK) goto done;
    if (p->base_path) st = copy_file(p->base_path, base_out);
done:
    rl_st_writer_free(w);
    free(text);
    json_decref(cfg);
    free(cfg_path);
    free(st_path);
    free(base_out);
    if (st == RL_OK) st = rl_atomic_dir_commit(&ad);
    else rl_atomic_dir_abort(&ad);
    return st;
}

/* ---- merge ---- */

static float round_to(rl_dtype dt, float v)
{
    return dt == RL_DT_BF16 ? rl_round_bf16(v) : dt == RL_DT_F16 ? rl_round_f16(v) : v;
}

rl_status rl_peft_merge(const rl_peft *p, const char *base_path, const char *out_path, bool safe)
{
    if (!base_path || !out_path) return rl_fail(RL_EINVAL, "merge: NULL path");
    char *cfg_path = join(p->dir, "adapter_config.json");
    char *st_path = join(p->dir, "adapter_model.safetensors");
    const char *inputs[] = {base_path, cfg_path, st_path, p->base_path};
    rl_status st = cfg_path && st_path ? rl_output_check(out_path, inputs, 4) : rl_fail(RL_ENOMEM, "out of memory");
    rl_dealloc(cfg_path);
    rl_dealloc(st_path);
    RL_TRY(st);

    rl_st_file *base = NULL;
    RL_TRY(rl_st_open(&base, base_path));
    rl_st_writer *w = NULL;
    float *buf = NULL, *dw = NULL;
    int *which = NULL;
    size_t n = rl_st_count(base);
    char key[1024];
    /* which[i]: the module merged into tensor i, or -1 */
    which = rl_alloc((n + 1) * sizeof *which);
    if (!which) {
        st = rl_fail(RL_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) which[i] = -1;
    for (int m = 0; m < p->n_modules; m++) {
        const rl_peft_module *md = &p->modules[m];
        snprintf(key, sizeof key, "%s.weight", md->path);
        const rl_st_tensor *t = rl_st_find(base, key);
        if (!t) {
            st = rl_fail(RL_ENOTFOUND, "%s: base weight '%s' of adapted module '%s' is missing", base_path,
                         key, md->path);
            goto done;
        }
        if (t->ndim != 2 || t->shape[0] != md->d_out || t->shape[1] != md->d_in) {
            st = rl_fail(RL_ESHAPE, "%s: base weight '%s' has %d dims [%lld, %lld], the adapter's module "
                         "is (%d, %d)", base_path, key, t->ndim, (long long)(t->ndim > 0 ? t->shape[0] : 0),
                         (long long)(t->ndim > 1 ? t->shape[1] : 0), md->d_out, md->d_in);
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            if (rl_st_at(base, i) == t) which[i] = m;
    }
    /* the writer holds a copy of every tensor; an adapted one is converted
     * to float32 and its ΔW built beside it (two float buffers at a time) */
    size_t need = 0, widest = 0;
    for (size_t i = 0; i < n; i++) {
        const rl_st_tensor *t = rl_st_at(base, i);
        need = rl_size_add(need, t->nbytes);
        if (which[i] >= 0 && t->numel > widest) widest = t->numel;
    }
    need = rl_size_add(need, rl_size_mul(widest, 2 * sizeof(float)));
    if ((st = rl_budget_check(need, "merge of %s into %s", base_path, out_path)) != RL_OK) goto done;
    if ((st = rl_st_writer_new(&w)) != RL_OK) goto done;
    if ((st = rl_st_writer_meta(w, "format", "pt")) != RL_OK) goto done;
    for (size_t i = 0; i < n; i++) {
        const rl_st_tensor *t = rl_st_at(base, i);
        if (which[i] < 0) { /* not adapted: written back byte for byte, 64-bit shape and all */
            if ((st = rl_st_writer_add_raw(w, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes)) != RL_OK)
                goto done;
            continue;
        }
        const rl_peft_module *md = &p->modules[which[i]];
        buf = rl_alloc_floats(t->numel);
        dw = rl_alloc_floats(t->numel);
        if (!buf || !dw) {
            st = rl_fail(RL_ENOMEM, "%s: out of memory for '%s'", base_path, t->name);
            goto done;
        }
        rl_st_to_f32(t, buf);
        if ((st = rl_adapter_delta_weight(md->adapter, dw)) != RL_OK) goto done;
        /* PEFT's rounding for half-precision W (float32 W: both are exact
         * float32 sums): LoRA and VeRA's get_delta_weight returns ΔW
         * already cast to W's dtype, so W + round(ΔW) is rounded again;
         * RandLora's returns float32 ΔW, added as is by safe_merge
         * (orig_weights += ΔW: one rounding) but cast first by the plain
         * merge (W += ΔW.to(dtype)). */
        bool round_delta = !(p->method == RL_METHOD_RANDLORA && safe);
        for (size_t j = 0; j < t->numel; j++) {
            float d = round_delta ? round_to(t->dtype, dw[j]) : dw[j];
            buf[j] = round_to(t->dtype, buf[j] + d);
            if (safe && !isfinite(buf[j])) {
                st = rl_fail(RL_ENONFINITE, "%s: NaNs detected in the merged weights of module '%s' "
                             "(element %zu); nothing written", out_path, md->path, j);
                goto done;
            }
        }
        int shape[2] = {md->d_out, md->d_in};
        if ((st = rl_st_writer_add(w, t->name, t->dtype, 2, shape, buf)) != RL_OK) goto done;
        rl_dealloc(buf);
        rl_dealloc(dw);
        buf = dw = NULL;
    }
    st = rl_st_writer_save(w, out_path);
done:
    rl_dealloc(buf);
    rl_dealloc(dw);
    rl_dealloc(which);
    rl_st_writer_free(w);
    rl_st_close(base);
    return st;
}
