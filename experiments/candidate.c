/* candidate.c -- another implementation's results against a reference
 * file (candidate.h). */
#include "candidate.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rl_tensor.h"
#include "io/rl_safetensors.h"

/* Parameter names of layer li: the <p> of REF's layers.<li>.expect.grad.<p>
 * (all but x), into names[] (pointers into REF's tensor names). */
static int param_names(const rl_st_file *ref, int li, const char **names, int max)
{
    char pre[64];
    int n = snprintf(pre, sizeof pre, "layers.%d.expect.grad.", li), k = 0;
    for (size_t i = 0; i < rl_st_count(ref) && k < max; i++) {
        const char *name = rl_st_at(ref, i)->name;
        if (strncmp(name, pre, (size_t)n) == 0 && strcmp(name + n, "x") != 0) names[k++] = name + n;
    }
    return k;
}

/* Is `key` a tensor a candidate may hold? */
static bool known_key(const rl_st_file *ref, const parity_setup *ps, const char *key)
{
    if (ps->bases) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%s_A", rl_shared_bases_prefix(ps->bases));
        snprintf(b, sizeof b, "%s_B", rl_shared_bases_prefix(ps->bases));
        if (!strcmp(key, a) || !strcmp(key, b)) return true;
    }
    int li, n = 0;
    if (sscanf(key, "layers.%d.%n", &li, &n) != 1 || n == 0 || li < 0 || li >= ps->layers) return false;
    char canon[32];
    snprintf(canon, sizeof canon, "layers.%d.", li);
    if (strncmp(key, canon, strlen(canon)) != 0) return false; /* "layers.01." */
    const char *rest = key + n;
    if (!strcmp(rest, "output") || !strcmp(rest, "delta_weight") || !strcmp(rest, "grad.x")) return true;
    const char *p[8];
    int np = param_names(ref, li, p, 8);
    for (int i = 0; i < np; i++)
        if (!strncmp(rest, "grad.", 5) && !strcmp(rest + 5, p[i])) return true;
    return false;
}

typedef struct {
    const rl_st_file *ref, *cand;
    double tol;
    parity_result *res;
} cctx;

static void fail(cctx *c, double err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(cctx *c, double err, const char *fmt, ...)
{
    if (!c->res->pass) return; /* the first failure is the one reported */
    c->res->pass = false;
    c->res->fail_err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->res->fail_what, sizeof c->res->fail_what, fmt, ap);
    va_end(ap);
}

static void worst(double *w, double e)
{
    if (e > *w || isnan(e)) *w = e;
}

/* A tensor (any shape) as float32 in a new buffer. */
static float *read_any(const rl_st_tensor *t)
{
    float *v = rl_alloc_floats(t->numel ? t->numel : 1);
    if (v) rl_st_to_f32(t, v);
    return v;
}

static bool same_shape(const rl_st_tensor *a, const rl_st_tensor *b)
{
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

static void shape_txt(const rl_st_tensor *t, char *buf, size_t len)
{
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->ndim && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (at < len) snprintf(buf + at, len - at, "]");
}

/* One result tensor: candidate `name` against REF's expect.<what> and
 * truth.<what>. kind: 0 output, 1 delta weight, 2 dx, 3 parameter grad. */
static rl_status check_tensor(cctx *c, int li, const char *what, int kind)
{
    char name[160], ke[176], kt[176];
    snprintf(name, sizeof name, "layers.%d.%s", li, what);
    snprintf(ke, sizeof ke, "layers.%d.expect.%s", li, what);
    snprintf(kt, sizeof kt, "layers.%d.truth.%s", li, what);
    const rl_st_tensor *tc = rl_st_find(c->cand, name), *te = rl_st_find(c->ref, ke), *tt = rl_st_find(c->ref, kt);
    if (!te) return rl_fail(RL_EFORMAT, "%s: tensor '%s' is missing", rl_st_path(c->ref), ke);
    if (!tc) {
        fail(c, INFINITY, "%s is missing from the candidate", name);
        return RL_OK;
    }
    if (!same_shape(tc, te)) {
        char a[96], b[96];
        shape_txt(tc, a, sizeof a);
        shape_txt(te, b, sizeof b);
        fail(c, INFINITY, "%s has shape %s, the reference's %s is %s", name, a, ke, b);
        return RL_OK;
    }
    float *vc = read_any(tc), *ve = read_any(te), *vt = tt && same_shape(tt, te) ? read_any(tt) : NULL;
    rl_status st = RL_OK;
    if (!vc || !ve || (tt && same_shape(tt, te) && !vt)) {
        st = rl_fail(RL_ENOMEM, "no memory for '%s'", name);
    } else {
        parity_result *r = c->res;
        double e = parity_rel_err(vc, ve, tc->numel), et = vt ? parity_rel_err(vc, vt, tc->numel) : NAN;
        double ep = vt ? parity_rel_err(ve, vt, tc->numel) : NAN;
        if (e > r->max_rel || isnan(e)) {
            r->max_rel = e;
            snprintf(r->max_rel_what, sizeof r->max_rel_what, "%s", name);
        }
        if (kind >= 2) worst(&r->grad_rel, e);
        if (kind == 3) worst(&r->param_grad_rel, e);
        if (vt) {
            if (kind == 0) worst(&r->truth_out_rel, et), worst(&r->peft_truth_out_rel, ep);
            if (kind == 2) worst(&r->truth_dx_rel, et);
            if (kind == 3) worst(&r->truth_grad_rel, et), worst(&r->peft_truth_grad_rel, ep);
        }
        if (!(e <= c->tol) && !(vt && et <= c->tol)) {
            if (vt)
                fail(c, e, "%s (max|err|/max|ref| > %g against both PEFT's %s and the float64 %s, which it misses "
                     "by %.3g; against PEFT:)", name, c->tol, ke, kt, et);
            else
                fail(c, e, "%s (max|err|/max|ref| against PEFT's %s > %g:)", name, ke, c->tol);
        }
    }
    rl_dealloc(vc);
    rl_dealloc(ve);
    rl_dealloc(vt);
    return st;
}

/* Optional shared bases: REF's stored tensors, exactly (VeRA: 1 ulp). */
static rl_status check_bases(cctx *c, const parity_setup *ps)
{
    int given = 0;
    for (int k = 0; k < 2 && ps->bases; k++) {
        char name[32];
        snprintf(name, sizeof name, "%s_%c", rl_shared_bases_prefix(ps->bases), k ? 'B' : 'A');
        const rl_st_tensor *tc = rl_st_find(c->cand, name), *tr = rl_st_find(c->ref, name);
        if (!tc) continue;
        given++;
        if (!tr) return rl_fail(RL_EFORMAT, "%s: tensor '%s' is missing", rl_st_path(c->ref), name);
        if (!same_shape(tc, tr)) {
            char a[96], b[96];
            shape_txt(tc, a, sizeof a);
            shape_txt(tr, b, sizeof b);
            fail(c, INFINITY, "%s has shape %s, the reference's is %s", name, a, b);
            continue;
        }
        float *vc = read_any(tc), *vr = read_any(tr);
        if (!vc || !vr) {
            rl_dealloc(vc);
            rl_dealloc(vr);
            return rl_fail(RL_ENOMEM, "no memory for '%s'", name);
        }
        long differ = 0;
        unsigned maxu = 0;
        for (size_t i = 0; i < tc->numel; i++) {
            unsigned u = isfinite(vc[i]) && isfinite(vr[i]) ? parity_ulp_diff(vc[i], vr[i]) : UINT32_MAX;
            differ += u != 0;
            if (u > maxu) maxu = u;
        }
        c->res->bases_mismatch += differ;
        if (maxu > c->res->bases_max_ulp) c->res->bases_max_ulp = maxu;
        unsigned allowed = ps->method == RL_METHOD_VERA ? 1 : 0;
        if (maxu > allowed) fail(c, maxu, "%s: %ld elements differ from the reference's, max %u ulp (allowed %u)", name, differ, maxu, allowed);
        rl_dealloc(vc);
        rl_dealloc(vr);
    }
    c->res->bases_absent = ps->bases && given == 0;
    return RL_OK;
}

rl_status parity_check_candidate(const char *ref_path, const char *cand_path, double tol, parity_result *res)
{
    memset(res, 0, sizeof *res);
    res->pass = true;
    res->truth_grad_rel = res->peft_truth_grad_rel = -1.0;
    rl_st_file *ref = NULL, *cand = NULL;
    parity_setup ps = {0};
    rl_status st = rl_st_open(&ref, ref_path);
    if (st == RL_OK) st = rl_st_open(&cand, cand_path);
    if (st == RL_OK) st = parity_setup_read(ref, &ps);
    if (st == RL_OK) {
        snprintf(res->method, sizeof res->method, "%s", rl_method_name(ps.method));
        res->layers = ps.layers;
        for (size_t i = 0; i < rl_st_count(cand) && st == RL_OK; i++)
            if (!known_key(ref, &ps, rl_st_at(cand, i)->name))
                st = rl_fail(RL_EFORMAT, "%s: tensor '%s' is not a candidate key for %s (expected layers.<i>.output, "
                             ".delta_weight, .grad.x, .grad.<PEFT param> for i < %d%s)", cand_path,
                             rl_st_at(cand, i)->name, ref_path, ps.layers,
                             ps.bases ? ", and optionally the shared bases" : "");
    }
    cctx c = {ref, cand, tol, res};
    if (st == RL_OK) st = check_bases(&c, &ps);
    for (int li = 0; li < ps.layers && st == RL_OK; li++) {
        st = check_tensor(&c, li, "output", 0);
        if (st == RL_OK) st = check_tensor(&c, li, "delta_weight", 1);
        if (st == RL_OK) st = check_tensor(&c, li, "grad.x", 2);
        const char *p[8];
        int np = param_names(ref, li, p, 8);
        for (int k = 0; k < np && st == RL_OK; k++) {
            char what[96];
            snprintf(what, sizeof what, "grad.%s", p[k]);
            st = check_tensor(&c, li, what, 3);
        }
    }
    parity_setup_free(&ps);
    rl_st_close(ref);
    rl_st_close(cand);
    if (st != RL_OK) res->pass = false;
    return st;
}

/* ---- `randlora parity --candidate` ---- */

int parity_candidate_cmd(int argc, char **argv)
{
    double tol = PARITY_DEFAULT_TOL;
    const char *cand = NULL, *ref = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--candidate") || !strcmp(a, "--tol")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "randlora parity: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (a[2] == 'c') {
                cand = v;
                continue;
            }
            char *end;
            errno = 0;
            tol = strtod(v, &end);
            if (!*v || *end || errno || !(tol > 0.0) || !isfinite(tol)) {
                fprintf(stderr, "randlora parity: --tol '%s' is not a positive number\n", v);
                return 2;
            }
        } else if (strncmp(a, "--", 2) == 0) {
            fprintf(stderr, "randlora parity: flag '%s' is not available with --candidate (only --tol)\n", a);
            return 2;
        } else if (ref) {
            fprintf(stderr, "randlora parity: --candidate takes one reference file ('%s' and '%s' given)\n", ref, a);
            return 2;
        } else {
            ref = a;
        }
    }
    if (!ref) {
        fprintf(stderr, "randlora parity: --candidate CAND needs a reference file: parity --candidate CAND REF\n");
        return 2;
    }
    parity_result res;
    rl_status st = parity_check_candidate(ref, cand, tol, &res);
    if (st != RL_OK) {
        fprintf(stderr, "randlora parity: %s\n", rl_errmsg());
        return 2;
    }
    char label[1200];
    snprintf(label, sizeof label, "%s candidate=%s", ref, cand);
    bool ok = parity_print_row(label, &res, st);
    parity_print_summary(ok, !ok, res.grad_rel, res.truth_grad_rel);
    return ok ? 0 : 1;
}
