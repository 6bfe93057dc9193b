/* rl_model.c -- MLP and small ViT with adapters on their linear layers. */
#include "rl_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/rl_blas.h"
#include "../core/rl_par.h"
#include "../core/rl_rng.h"
#include "../core/rl_tensor.h"
#include "../io/rl_safetensors.h"
#include "rl_nn.h"

#define MAX_LINEARS 64

typedef struct {
    char name[48];          /* module path */
    char target[24];        /* short target name */
    int d_out, d_in;
    float *W, *b, *dW, *db; /* into the base (or head) blocks */
    bool is_head;
    rl_adapter *a;          /* when adapted */
    rl_layer *l;
} linear;

typedef struct {
    /* caches, each (n, d) unless noted */
    float *x_in, *a, *mean1, *rstd1, *q, *k, *v, *P, *o, *x_mid, *c, *mean2, *rstd2, *u, *g;
    float *ln1_g, *ln1_b, *ln2_g, *ln2_b, *dln1_g, *dln1_b, *dln2_g, *dln2_b;
} vit_block;

struct rl_model {
    rl_model_config cfg;
    rl_model_mode mode;
    int T, P, n_max;             /* ViT tokens per image, pixels per patch, max rows */
    linear lin[MAX_LINEARS];
    int n_lin;
    float *base_p, *base_g, *head_p, *head_g;
    size_t n_base, n_head;
    rl_shared_bases *bases;
    /* MLP caches: u[l] pre-activation (B, width), h[l] post (B, width) */
    float *mlp_u[16], *mlp_h[17];   /* mlp_h[0] unused: the input is the caller's */
    /* ViT */
    vit_block blk[16];
    float *pos, *dpos, *lnf_g, *lnf_b, *dlnf_g, *dlnf_b;
    float *xp, *x_out, *f, *meanf, *rstdf, *pooled;
    /* backward scratch */
    float *d1, *d2, *d3, *dq, *dk, *dv, *dmlp, *dP, *dpooled;
    int last_B;
    const float *x_last;   /* the caller's input of the last forward (MLP backward reads it) */
};

/* ---- construction ---- */

static size_t mlp_width(const rl_model_config *c, int l) { return l == 0 ? (size_t)c->in_dim : (size_t)c->hidden; }

static void add_linear(rl_model *m, const char *name, const char *target, int d_out, int d_in, size_t *off)
{
    RL_ASSERT(m->n_lin < MAX_LINEARS, "too many linears");
    linear *L = &m->lin[m->n_lin++];
    memset(L, 0, sizeof *L);
    snprintf(L->name, sizeof L->name, "%s", name);
    snprintf(L->target, sizeof L->target, "%s", target);
    L->d_out = d_out;
    L->d_in = d_in;
    L->W = (float *)(uintptr_t)*off; /* offsets for now; fixed up after allocation */
    *off += (size_t)d_out * d_in;
    L->b = (float *)(uintptr_t)*off;
    *off += (size_t)d_out;
}

static float *take(float *block, size_t *off, size_t n)
{
    float *p = block + *off;
    *off += n;
    return p;
}

static rl_status check_config(const rl_model_config *c)
{
    if (c->n_classes < 2 || c->max_batch < 1)
        return rl_fail(RL_EINVAL, "model: n_classes %d (>= 2) and max_batch %d (>= 1)", c->n_classes, c->max_batch);
    if (c->kind == RL_MODEL_MLP) {
        if (c->in_dim < 1 || c->hidden < 1 || c->depth < 1 || c->depth > 15)
            return rl_fail(RL_EINVAL, "model: MLP in_dim %d, hidden %d, depth %d (1..15)", c->in_dim, c->hidden,
                           c->depth);
        return RL_OK;
    }
    if (c->kind != RL_MODEL_VIT) return rl_fail(RL_EINVAL, "model: unknown kind %d", (int)c->kind);
    if (c->image < 1 || c->patch < 1 || c->image % c->patch)
        return rl_fail(RL_EINVAL, "model: image %d must be a multiple of patch %d", c->image, c->patch);
    if (c->dim < 1 || c->heads < 1 || c->dim % c->heads)
        return rl_fail(RL_EINVAL, "model: dim %d must be a multiple of heads %d", c->dim, c->heads);
    if (c->mlp_dim < 1 || c->blocks < 1 || c->blocks > 16)
        return rl_fail(RL_EINVAL, "model: mlp_dim %d, blocks %d (1..16)", c->mlp_dim, c->blocks);
    return RL_OK;
}

static void init_weights(rl_model *m, uint64_t seed)
{
    rl_mt g;
    rl_mt_seed(&g, seed);
    for (int i = 0; i < m->n_lin; i++) {
        linear *L = &m->lin[i];
        double bound = 1.0 / sqrt((double)L->d_in);
        rl_uniform_f32(&g, L->W, (size_t)L->d_out * L->d_in, -bound, bound, RL_FMA);
        memset(L->b, 0, (size_t)L->d_out * sizeof(float));
    }
    if (m->cfg.kind == RL_MODEL_VIT) {
        const int d = m->cfg.dim;
        for (int bi = 0; bi < m->cfg.blocks; bi++) {
            rl_fill(m->blk[bi].ln1_g, d, 1.0f);
            rl_fill(m->blk[bi].ln2_g, d, 1.0f);
            memset(m->blk[bi].ln1_b, 0, d * sizeof(float));
            memset(m->blk[bi].ln2_b, 0, d * sizeof(float));
        }
        rl_fill(m->lnf_g, d, 1.0f);
        memset(m->lnf_b, 0, d * sizeof(float));
        rl_mt_fill_normal(&g, m->pos, (size_t)m->T * d, 0.02f);
    }
}

rl_status rl_model_new(rl_model **out, const rl_model_config *cfg, uint64_t seed)
{
    *out = NULL;
    RL_TRY(check_config(cfg));
    rl_model *m = calloc(1, sizeof *m);
    if (!m) return rl_fail(RL_ENOMEM, "model: no memory");
    m->cfg = *cfg;
    const rl_model_config *c = cfg;
    size_t off = 0;
    int width = 0;
    if (c->kind == RL_MODEL_MLP) {
        m->n_max = c->max_batch;
        for (int l = 0; l < c->depth; l++) {
            char name[48], tgt[24];
            snprintf(tgt, sizeof tgt, "fc%d", l + 1);
            snprintf(name, sizeof name, "mlp.fc%d", l + 1);
            add_linear(m, name, tgt, c->hidden, (int)mlp_width(c, l), &off);
        }
        width = c->hidden;
    } else {
        const int side = c->image / c->patch, d = c->dim;
        m->T = side * side;
        m->P = c->patch * c->patch;
        m->n_max = c->max_batch * m->T;
        add_linear(m, "patch_embed.proj", "patch", d, m->P, &off);
        for (int bi = 0; bi < c->blocks; bi++) {
            static const char *const attn[4] = {"q", "k", "v", "o"};
            char name[48];
            for (int j = 0; j < 4; j++) {
                snprintf(name, sizeof name, "blocks.%d.attn.%s", bi, attn[j]);
                add_linear(m, name, attn[j], d, d, &off);
            }
            snprintf(name, sizeof name, "blocks.%d.mlp.fc1", bi);
            add_linear(m, name, "fc1", c->mlp_dim, d, &off);
            snprintf(name, sizeof name, "blocks.%d.mlp.fc2", bi);
            add_linear(m, name, "fc2", d, c->mlp_dim, &off);
        }
        off += (size_t)c->blocks * 4 * d + 2 * (size_t)d + (size_t)m->T * d; /* LNs, pos */
        width = d;
    }
    m->n_base = off;
    m->n_head = (size_t)c->n_classes * width + c->n_classes;
    m->base_p = rl_alloc_floats(m->n_base);
    m->base_g = rl_alloc_floats(m->n_base);
    m->head_p = rl_alloc_floats(m->n_head);
    m->head_g = rl_alloc_floats(m->n_head);
    if (!m->base_p || !m->base_g || !m->head_p || !m->head_g) goto oom;
    for (int i = 0; i < m->n_lin; i++) { /* fix up offsets */
        linear *L = &m->lin[i];
        size_t wo = (size_t)(uintptr_t)L->W, bo = (size_t)(uintptr_t)L->b;
        L->W = m->base_p + wo;
        L->b = m->base_p + bo;
        L->dW = m->base_g + wo;
        L->db = m->base_g + bo;
    }
    /* the head, last in the linear table */
    {
        linear *H = &m->lin[m->n_lin++];
        memset(H, 0, sizeof *H);
        snprintf(H->name, sizeof H->name, "head");
        snprintf(H->target, sizeof H->target, "head");
        H->d_out = c->n_classes;
        H->d_in = width;
        H->W = m->head_p;
        H->b = m->head_p + (size_t)c->n_classes * width;
        H->dW = m->head_g;
        H->db = m->head_g + (size_t)c->n_classes * width;
        H->is_head = true;
    }
    size_t n = (size_t)m->n_max;
    if (c->kind == RL_MODEL_MLP) {
        m->mlp_h[0] = NULL; /* the input itself */
        for (int l = 0; l < c->depth; l++) {
            m->mlp_u[l] = rl_alloc_floats(n * c->hidden);
            m->mlp_h[l + 1] = rl_alloc_floats(n * c->hidden);
            if (!m->mlp_u[l] || !m->mlp_h[l + 1]) goto oom;
        }
        m->d1 = rl_alloc_floats(n * c->hidden);
        m->d2 = rl_alloc_floats(n * c->hidden);
        if (!m->d1 || !m->d2) goto oom;
    } else {
        const int d = c->dim, h = c->heads, T = m->T;
        size_t bo = m->n_base - ((size_t)c->blocks * 4 * d + 2 * (size_t)d + (size_t)T * d);
        for (int bi = 0; bi < c->blocks; bi++) {
            vit_block *B = &m->blk[bi];
            B->ln1_g = take(m->base_p, &bo, d);
            B->ln1_b = take(m->base_p, &bo, d);
            B->ln2_g = take(m->base_p, &bo, d);
            B->ln2_b = take(m->base_p, &bo, d);
            B->dln1_g = B->ln1_g - m->base_p + m->base_g;
            B->dln1_b = B->ln1_b - m->base_p + m->base_g;
            B->dln2_g = B->ln2_g - m->base_p + m->base_g;
            B->dln2_b = B->ln2_b - m->base_p + m->base_g;
            float **nd[] = {&B->x_in, &B->a, &B->q, &B->k, &B->v, &B->o, &B->x_mid, &B->c};
            for (size_t j = 0; j < sizeof nd / sizeof nd[0]; j++)
                if (!(*nd[j] = rl_alloc_floats(n * d))) goto oom;
            B->mean1 = rl_alloc_floats(n);
            B->rstd1 = rl_alloc_floats(n);
            B->mean2 = rl_alloc_floats(n);
            B->rstd2 = rl_alloc_floats(n);
            B->P = rl_alloc_floats((size_t)c->max_batch * h * T * T);
            B->u = rl_alloc_floats(n * c->mlp_dim);
            B->g = rl_alloc_floats(n * c->mlp_dim);
            if (!B->mean1 || !B->rstd1 || !B->mean2 || !B->rstd2 || !B->P || !B->u || !B->g) goto oom;
        }
        m->lnf_g = take(m->base_p, &bo, d);
        m->lnf_b = take(m->base_p, &bo, d);
        m->pos = take(m->base_p, &bo, (size_t)T * d);
        m->dlnf_g = m->lnf_g - m->base_p + m->base_g;
        m->dlnf_b = m->lnf_b - m->base_p + m->base_g;
        m->dpos = m->pos - m->base_p + m->base_g;
        RL_ASSERT(bo == m->n_base, "base layout %zu != %zu", bo, m->n_base);
        float **nd[] = {&m->x_out, &m->f, &m->d1, &m->d2, &m->d3, &m->dq, &m->dk, &m->dv};
        for (size_t j = 0; j < sizeof nd / sizeof nd[0]; j++)
            if (!(*nd[j] = rl_alloc_floats(n * d))) goto oom;
        m->xp = rl_alloc_floats(n * m->P);
        m->meanf = rl_alloc_floats(n);
        m->rstdf = rl_alloc_floats(n);
        m->pooled = rl_alloc_floats((size_t)c->max_batch * d);
        m->dpooled = rl_alloc_floats((size_t)c->max_batch * d);
        m->dmlp = rl_alloc_floats(n * c->mlp_dim);
        m->dP = rl_alloc_floats((size_t)c->max_batch * h * T * T);
        if (!m->xp || !m->meanf || !m->rstdf || !m->pooled || !m->dpooled || !m->dmlp || !m->dP) goto oom;
    }
    init_weights(m, seed);
    rl_model_reset_head(m, seed ^ 0x9e3779b97f4a7c15ull);
    *out = m;
    return RL_OK;
oom:
    rl_model_free(m);
    return rl_fail(RL_ENOMEM, "model: cannot allocate parameters and activations for batch %d", cfg->max_batch);
}

void rl_model_detach(rl_model *m)
{
    for (int i = 0; i < m->n_lin; i++) {
        rl_layer_free(m->lin[i].l);
        rl_adapter_free(m->lin[i].a);
        m->lin[i].l = NULL;
        m->lin[i].a = NULL;
    }
    rl_shared_bases_free(m->bases);
    m->bases = NULL;
    m->mode = RL_MODE_BASE;
}

void rl_model_free(rl_model *m)
{
    if (!m) return;
    rl_model_detach(m);
    rl_dealloc(m->base_p);
    rl_dealloc(m->base_g);
    rl_dealloc(m->head_p);
    rl_dealloc(m->head_g);
    for (int l = 0; l < 16; l++) {
        rl_dealloc(m->mlp_u[l]);
        rl_dealloc(m->mlp_h[l + 1]);
        vit_block *B = &m->blk[l];
        float *bufs[] = {B->x_in, B->a, B->q, B->k, B->v, B->o, B->x_mid, B->c, B->mean1, B->rstd1,
                         B->mean2, B->rstd2, B->P, B->u, B->g};
        for (size_t j = 0; j < sizeof bufs / sizeof bufs[0]; j++) rl_dealloc(bufs[j]);
    }
    float *bufs[] = {m->xp, m->x_out, m->f, m->meanf, m->rstdf, m->pooled, m->d1, m->d2, m->d3,
                     m->dq, m->dk, m->dv, m->dmlp, m->dP, m->dpooled};
    for (size_t j = 0; j < sizeof bufs / sizeof bufs[0]; j++) rl_dealloc(bufs[j]);
    free(m);
}

int rl_model_input_dim(const rl_model *m)
{
    return m->cfg.kind == RL_MODEL_MLP ? m->cfg.in_dim : m->cfg.image * m->cfg.image;
}

int rl_model_n_classes(const rl_model *m) { return m->cfg.n_classes; }
int rl_model_max_batch(const rl_model *m) { return m->cfg.max_batch; }
rl_model_mode rl_model_get_mode(const rl_model *m) { return m->mode; }

void rl_model_reset_head(rl_model *m, uint64_t seed)
{
    linear *H = &m->lin[m->n_lin - 1];
    rl_mt g;
    rl_mt_seed(&g, seed);
    double bound = 1.0 / sqrt((double)H->d_in);
    rl_uniform_f32(&g, H->W, (size_t)H->d_out * H->d_in, -bound, bound, RL_FMA);
    memset(H->b, 0, (size_t)H->d_out * sizeof(float));
}

/* ---- adapters ---- */

bool rl_model_target_listed(const char *targets, const char *t)
{
    if (strcmp(targets, "all") == 0) return true;
    size_t n = strlen(t);
    for (const char *p = targets; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, t, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static bool is_target(const linear *L, const char *targets)
{
    return !L->is_head && rl_model_target_listed(targets, L->target);
}

rl_status rl_model_attach(rl_model *m, const rl_adapter_config *cfg, const char *targets,
                          rl_bases_kind kind, uint64_t key, rl_path path)
{
    rl_model_detach(m);
    if (cfg->method == RL_METHOD_FULL) return RL_OK; /* RL_MODE_BASE: everything trains */
    /* every name in targets must exist */
    if (strcmp(targets, "all") != 0) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", targets);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            bool found = false;
            for (int i = 0; i < m->n_lin && !found; i++) found = !m->lin[i].is_head && strcmp(m->lin[i].target, tok) == 0;
            if (!found) {
                char valid[256] = "";
                for (int i = 0; i < m->n_lin; i++)
                    if (!m->lin[i].is_head && !strstr(valid, m->lin[i].target)) {
                        strncat(valid, m->lin[i].target, sizeof valid - strlen(valid) - 2);
                        strcat(valid, " ");
                    }
                return rl_fail(RL_EINVAL, "model: target '%s' matches no linear layer (valid: %sall)", tok, valid);
            }
        }
    }
    int max_out = 0, max_in = 0, n_t = 0;
    for (int i = 0; i < m->n_lin; i++)
        if (is_target(&m->lin[i], targets)) {
            n_t++;
            if (m->lin[i].d_out > max_out) max_out = m->lin[i].d_out;
            if (m->lin[i].d_in > max_in) max_in = m->lin[i].d_in;
        }
    if (!n_t) return rl_fail(RL_EINVAL, "model: no target linears in '%s'", targets);
    rl_status st = RL_OK;
    if (cfg->method == RL_METHOD_VERA || cfg->method == RL_METHOD_RANDLORA)
        st = rl_shared_bases_new(&m->bases, cfg->method, cfg->r, max_out, max_in, kind, RL_BF16, RL_FMA, key);
    for (int i = 0; i < m->n_lin && st == RL_OK; i++) {
        linear *L = &m->lin[i];
        if (!is_target(L, targets)) continue;
        rl_adapter_config c = *cfg;
        c.init_seed = cfg->init_seed + (uint64_t)i;
        st = rl_adapter_new(&L->a, &c, L->d_out, L->d_in, m->bases, m->n_max);
        if (st == RL_OK) st = rl_layer_new(&L->l, L->W, L->b, L->a, m->n_max, path);
        if (st == RL_OK && i == 0) rl_layer_expect_dx(L->l, false); /* its input is the data */
    }
    if (st != RL_OK) {
        rl_model_detach(m);
        return st;
    }
    m->mode = RL_MODE_ADAPT;
    return RL_OK;
}

rl_status rl_model_merge_adapters(rl_model *m)
{
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].a) RL_TRY(rl_adapter_merge(m->lin[i].a, m->lin[i].W, true));
    rl_model_detach(m);
    return RL_OK;
}

size_t rl_model_adapter_count(const rl_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].a) n += rl_adapter_param_count(m->lin[i].a);
    return n;
}

int rl_model_spans(rl_model *m, rl_span *spans, int max)
{
    int k = 0;
    if (m->mode == RL_MODE_BASE && k < max) spans[k++] = (rl_span){m->base_p, m->base_g, m->n_base};
    if (k < max) spans[k++] = (rl_span){m->head_p, m->head_g, m->n_head};
    for (int i = 0; i < m->n_lin && k < max; i++)
        if (m->lin[i].a) spans[k++] = rl_adapter_span(m->lin[i].a);
    return k;
}

size_t rl_model_trainable_count(rl_model *m)
{
    return (m->mode == RL_MODE_BASE ? m->n_base : 0) + m->n_head + rl_model_adapter_count(m);
}

void rl_model_zero_grad(rl_model *m)
{
    memset(m->base_g, 0, m->n_base * sizeof(float));
    memset(m->head_g, 0, m->n_head * sizeof(float));
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].a) rl_adapter_zero_grad(m->lin[i].a);
}

/* ---- linear forward / backward ---- */

static void lin_forward(linear *L, const float *x, int n, float *y)
{
    if (L->l) {
        rl_status st = rl_layer_forward(L->l, x, n, y);
        RL_ASSERT(st == RL_OK, "%s: %s", L->name, rl_errmsg());
        return;
    }
    RL_PAR_FOR_W(n, L->d_out)
    for (int t = 0; t < n; t++) memcpy(y + (size_t)t * L->d_out, L->b, (size_t)L->d_out * sizeof(float));
    rl_gemm(RL_NOTRANS, RL_TRANS, n, L->d_out, L->d_in, 1.0f, x, L->d_in, L->W, L->d_in, 1.0f, y, L->d_out);
}

/* dx (n, d_in) := dy W (+ adapter); W, b grads when they train. dx may be NULL. */
static void lin_backward(rl_model *m, linear *L, const float *x, const float *dy, int n, float *dx)
{
    if (L->l) {
        rl_status st = rl_layer_backward(L->l, x, dy, n, dx);
        RL_ASSERT(st == RL_OK, "%s: %s", L->name, rl_errmsg());
        return;
    }
    if (L->is_head || m->mode == RL_MODE_BASE) {
        /* dW += dyᵀ x;  db += Σ_rows dy */
        rl_gemm(RL_TRANS, RL_NOTRANS, L->d_out, L->d_in, n, 1.0f, dy, L->d_out, x, L->d_in, 1.0f, L->dW, L->d_in);
        RL_PAR_FOR_W(L->d_out, n) /* each column sums its rows in order */
        for (int j = 0; j < L->d_out; j++)
            for (int t = 0; t < n; t++) L->db[j] += dy[(size_t)t * L->d_out + j];
    }
    if (dx) rl_gemm(RL_NOTRANS, RL_NOTRANS, n, L->d_in, L->d_out, 1.0f, dy, L->d_out, L->W, L->d_in, 0.0f, dx, L->d_in);
}

/* ---- MLP ---- */

static void mlp_forward(rl_model *m, const float *x, int B, float *logits)
{
    const rl_model_config *c = &m->cfg;
    const float *h = x;
    for (int l = 0; l < c->depth; l++) {
        lin_forward(&m->lin[l], h, B, m->mlp_u[l]);
        rl_gelu_forward(m->mlp_h[l + 1], m->mlp_u[l], (size_t)B * c->hidden);
        h = m->mlp_h[l + 1];
    }
    lin_forward(&m->lin[m->n_lin - 1], h, B, logits);
}

static void mlp_backward(rl_model *m, const float *x, const float *dlogits, int B)
{
    const rl_model_config *c = &m->cfg;
    float *dh = m->d1, *tmp = m->d2;
    lin_backward(m, &m->lin[m->n_lin - 1], m->mlp_h[c->depth], dlogits, B, dh);
    for (int l = c->depth - 1; l >= 0; l--) {
        rl_gelu_backward(dh, dh, m->mlp_u[l], (size_t)B * c->hidden); /* du */
        const float *in = l ? m->mlp_h[l] : x;
        lin_backward(m, &m->lin[l], in, dh, B, l > 0 ? tmp : NULL); /* no dx for the input */
        float *s = dh;
        dh = tmp;
        tmp = s;
    }
}

/* ---- ViT ---- */

/* y += x, element-wise */
static void add_to(float *y, const float *x, size_t n)
{
    RL_PAR_FOR_SIMD(n)
    for (size_t e = 0; e < n; e++) y[e] += x[e];
}

static void patchify(rl_model *m, const float *x, int B)
{
    const int S = m->cfg.image, p = m->cfg.patch, side = S / p;
    RL_PAR_FOR_W(B, (size_t)S * S)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < m->T; t++) {
            int pr = t / side, pc = t % side;
            float *dst = m->xp + ((size_t)b * m->T + t) * m->P;
            for (int i = 0; i < p; i++)
                memcpy(dst + (size_t)i * p, x + (size_t)b * S * S + (size_t)(pr * p + i) * S + pc * p,
                       (size_t)p * sizeof(float));
        }
}

static void vit_forward(rl_model *m, const float *x, int B, float *logits)
{
    const rl_model_config *c = &m->cfg;
    const int d = c->dim, T = m->T, n = B * T;
    patchify(m, x, B);
    float *xe = c->blocks ? m->blk[0].x_in : m->x_out;
    lin_forward(&m->lin[0], m->xp, n, xe);
    RL_PAR_FOR_W(B, (size_t)T * d)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < d; j++) xe[((size_t)b * T + t) * d + j] += m->pos[(size_t)t * d + j];
    for (int bi = 0; bi < c->blocks; bi++) {
        vit_block *K = &m->blk[bi];
        linear *L = &m->lin[1 + 6 * bi];
        float *xo = bi + 1 < c->blocks ? m->blk[bi + 1].x_in : m->x_out;
        rl_layernorm_forward(K->a, K->mean1, K->rstd1, K->x_in, K->ln1_g, K->ln1_b, n, d);
        lin_forward(&L[0], K->a, n, K->q);
        lin_forward(&L[1], K->a, n, K->k);
        lin_forward(&L[2], K->a, n, K->v);
        rl_attention_forward(K->o, K->P, K->q, K->k, K->v, B, T, d, c->heads);
        lin_forward(&L[3], K->o, n, K->x_mid);
        add_to(K->x_mid, K->x_in, (size_t)n * d);
        rl_layernorm_forward(K->c, K->mean2, K->rstd2, K->x_mid, K->ln2_g, K->ln2_b, n, d);
        lin_forward(&L[4], K->c, n, K->u);
        rl_gelu_forward(K->g, K->u, (size_t)n * c->mlp_dim);
        lin_forward(&L[5], K->g, n, xo);
        add_to(xo, K->x_mid, (size_t)n * d);
    }
    rl_layernorm_forward(m->f, m->meanf, m->rstdf, m->x_out, m->lnf_g, m->lnf_b, n, d);
    RL_PAR_FOR_W(B, (size_t)T * d)
    for (int b = 0; b < B; b++) {
        float *pb = m->pooled + (size_t)b * d;
        memset(pb, 0, d * sizeof(float));
        for (int t = 0; t < T; t++)
            for (int j = 0; j < d; j++) pb[j] += m->f[((size_t)b * T + t) * d + j] / T;
    }
    lin_forward(&m->lin[m->n_lin - 1], m->pooled, B, logits);
}

static void vit_backward(rl_model *m, const float *dlogits, int B)
{
    const rl_model_config *c = &m->cfg;
    const int d = c->dim, T = m->T, n = B * T;
    const bool base = m->mode == RL_MODE_BASE;
    lin_backward(m, &m->lin[m->n_lin - 1], m->pooled, dlogits, B, m->dpooled);
    float *dx = m->d1, *tmp = m->d2, *acc = m->d3;
    RL_PAR_FOR_W(B, (size_t)T * d)
    for (int b = 0; b < B; b++) /* df = dpooled / T for every token */
        for (int t = 0; t < T; t++)
            for (int j = 0; j < d; j++) tmp[((size_t)b * T + t) * d + j] = m->dpooled[(size_t)b * d + j] / T;
    rl_layernorm_backward(dx, base ? m->dlnf_g : NULL, base ? m->dlnf_b : NULL, tmp, m->x_out, m->meanf, m->rstdf,
                          m->lnf_g, n, d, 0);
    for (int bi = c->blocks - 1; bi >= 0; bi--) {
        vit_block *K = &m->blk[bi];
        linear *L = &m->lin[1 + 6 * bi];
        /* MLP branch: dx is d(x_out); x_out = x_mid + fc2(gelu(fc1(LN2(x_mid)))) */
        lin_backward(m, &L[5], K->g, dx, n, m->dmlp);
        rl_gelu_backward(m->dmlp, m->dmlp, K->u, (size_t)n * c->mlp_dim);
        lin_backward(m, &L[4], K->c, m->dmlp, n, tmp);
        rl_layernorm_backward(dx, base ? K->dln2_g : NULL, base ? K->dln2_b : NULL, tmp, K->x_mid, K->mean2,
                              K->rstd2, K->ln2_g, n, d, 1); /* dx is now d(x_mid) */
        /* attention branch: x_mid = x_in + o_lin(attn(q, k, v)) */
        lin_backward(m, &L[3], K->o, dx, n, tmp); /* tmp = d(attn out) */
        rl_attention_backward(m->dq, m->dk, m->dv, m->dP, tmp, K->P, K->q, K->k, K->v, B, T, d, c->heads);
        lin_backward(m, &L[0], K->a, m->dq, n, acc);
        lin_backward(m, &L[1], K->a, m->dk, n, tmp);
        add_to(acc, tmp, (size_t)n * d);
        lin_backward(m, &L[2], K->a, m->dv, n, tmp);
        add_to(acc, tmp, (size_t)n * d);
        rl_layernorm_backward(dx, base ? K->dln1_g : NULL, base ? K->dln1_b : NULL, acc, K->x_in, K->mean1,
                              K->rstd1, K->ln1_g, n, d, 1); /* dx is now d(x_in) */
    }
    if (base) {
        RL_PAR_FOR_W(T * d, B) /* each entry sums the batch in order */
        for (int e = 0; e < T * d; e++)
            for (int b = 0; b < B; b++) m->dpos[e] += dx[(size_t)b * T * d + e];
    }
    lin_backward(m, &m->lin[0], m->xp, dx, n, NULL);
}

rl_status rl_model_forward(rl_model *m, const float *x, int B, float *logits)
{
    if (B < 1 || B > m->cfg.max_batch)
        return rl_fail(RL_EINVAL, "model forward: batch %d outside 1..%d", B, m->cfg.max_batch);
    if (m->cfg.kind == RL_MODEL_MLP) mlp_forward(m, x, B, logits);
    else vit_forward(m, x, B, logits);
    m->last_B = B;
    m->x_last = x;
    return RL_OK;
}

rl_status rl_model_backward(rl_model *m, const float *dlogits, int B)
{
    if (B != m->last_B) return rl_fail(RL_EINVAL, "model backward: batch %d, last forward %d", B, m->last_B);
    if (m->cfg.kind == RL_MODEL_MLP) mlp_backward(m, m->x_last, dlogits, B);
    else vit_backward(m, dlogits, B);
    return RL_OK;
}

/* ---- representations ---- */

int rl_model_n_repr(const rl_model *m, int *dim)
{
    *dim = m->cfg.kind == RL_MODEL_MLP ? m->cfg.hidden : m->cfg.dim;
    return m->cfg.kind == RL_MODEL_MLP ? m->cfg.depth : m->cfg.blocks;
}

void rl_model_repr(const rl_model *m, int layer, float *out)
{
    const int B = m->last_B;
    if (m->cfg.kind == RL_MODEL_MLP) {
        memcpy(out, m->mlp_h[layer + 1], (size_t)B * m->cfg.hidden * sizeof(float));
        return;
    }
    const int d = m->cfg.dim, T = m->T;
    const float *x = layer + 1 < m->cfg.blocks ? m->blk[layer + 1].x_in : m->x_out;
    for (int b = 0; b < B; b++) {
        float *ob = out + (size_t)b * d;
        memset(ob, 0, d * sizeof(float));
        for (int t = 0; t < T; t++)
            for (int j = 0; j < d; j++) ob[j] += x[((size_t)b * T + t) * d + j] / T;
    }
}

int rl_model_n_linears(const rl_model *m) { return m->n_lin; }
const char *rl_model_linear_name(const rl_model *m, int i) { return m->lin[i].name; }
const char *rl_model_linear_target(const rl_model *m, int i) { return m->lin[i].target; }
rl_adapter *rl_model_linear_adapter(rl_model *m, int i) { return m->lin[i].a; }
const rl_shared_bases *rl_model_shared_bases(const rl_model *m) { return m->bases; }
const float *rl_model_linear_weight(const rl_model *m, int i, int *d_out, int *d_in)
{
    *d_out = m->lin[i].d_out;
    *d_in = m->lin[i].d_in;
    return m->lin[i].W;
}

/* ---- checkpoints ---- */

/* Visit every base / head tensor: name, pointer, shape. */
typedef rl_status (*tensor_fn)(void *ctx, const char *name, float *p, int ndim, const int *shape);

static rl_status each_base_tensor(const rl_model *m, tensor_fn fn, void *ctx, bool with_head)
{
    char name[96];
    for (int i = 0; i < m->n_lin; i++) {
        const linear *L = &m->lin[i];
        if (L->is_head && !with_head) continue;
        int sw[2] = {L->d_out, L->d_in}, sb[1] = {L->d_out};
        snprintf(name, sizeof name, "%s.weight", L->name);
        RL_TRY(fn(ctx, name, L->W, 2, sw));
        snprintf(name, sizeof name, "%s.bias", L->name);
        RL_TRY(fn(ctx, name, L->b, 1, sb));
    }
    if (m->cfg.kind == RL_MODEL_VIT) {
        const int d = m->cfg.dim;
        int sd[1] = {d}, sp[2] = {m->T, d};
        for (int bi = 0; bi < m->cfg.blocks; bi++) {
            const vit_block *K = &m->blk[bi];
            float *ps[4] = {K->ln1_g, K->ln1_b, K->ln2_g, K->ln2_b};
            static const char *const nm[4] = {"ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"};
            for (int j = 0; j < 4; j++) {
                snprintf(name, sizeof name, "blocks.%d.%s", bi, nm[j]);
                RL_TRY(fn(ctx, name, ps[j], 1, sd));
            }
        }
        RL_TRY(fn(ctx, "norm.weight", m->lnf_g, 1, sd));
        RL_TRY(fn(ctx, "norm.bias", m->lnf_b, 1, sd));
        RL_TRY(fn(ctx, "pos_embed", m->pos, 2, sp));
    }
    return RL_OK;
}

static rl_status add_tensor(void *ctx, const char *name, float *p, int ndim, const int *shape)
{
    return rl_st_writer_add(ctx, name, RL_DT_F32, ndim, shape, p);
}

static rl_status read_tensor(void *ctx, const char *name, float *p, int ndim, const int *shape)
{
    return rl_st_read_f32(ctx, name, ndim, shape, p);
}

rl_status rl_model_save_base(const rl_model *m, const char *path)
{
    rl_st_writer *w = NULL;
    RL_TRY(rl_st_writer_new(&w));
    rl_status st = rl_st_writer_meta(w, "format", "randlora-model-v1");
    char v[64];
    snprintf(v, sizeof v, "%s", m->cfg.kind == RL_MODEL_MLP ? "mlp" : "vit");
    if (st == RL_OK) st = rl_st_writer_meta(w, "kind", v);
    if (st == RL_OK) st = each_base_tensor(m, add_tensor, w, true);
    if (st == RL_OK) st = rl_st_writer_save(w, path);
    rl_st_writer_free(w);
    return st;
}

static rl_status load_base(rl_model *m, const char *path, bool with_head)
{
    rl_st_file *f = NULL;
    RL_TRY(rl_st_open(&f, path));
    const char *kind = rl_st_meta(f, "kind");
    const char *want = m->cfg.kind == RL_MODEL_MLP ? "mlp" : "vit";
    rl_status st = RL_OK;
    if (!kind || strcmp(kind, want) != 0)
        st = rl_fail(RL_EFORMAT, "%s: metadata 'kind' is '%s', this model is '%s'", path, kind ? kind : "(missing)", want);
    if (st == RL_OK) st = each_base_tensor(m, read_tensor, f, with_head);
    rl_st_close(f);
    return st;
}

rl_status rl_model_load_base(rl_model *m, const char *path) { return load_base(m, path, true); }
rl_status rl_model_load_backbone(rl_model *m, const char *path) { return load_base(m, path, false); }

rl_status rl_model_save_adapters(const rl_model *m, const char *path)
{
    rl_st_writer *w = NULL;
    RL_TRY(rl_st_writer_new(&w));
    rl_status st = rl_st_writer_meta(w, "format", "pt");
    char name[160];
    for (int i = 0; i < m->n_lin && st == RL_OK; i++) {
        const linear *L = &m->lin[i];
        if (L->is_head) {
            int sw[2] = {L->d_out, L->d_in}, sb[1] = {L->d_out};
            st = rl_st_writer_add(w, "base_model.model.head.weight", RL_DT_F32, 2, sw, L->W);
            if (st == RL_OK) st = rl_st_writer_add(w, "base_model.model.head.bias", RL_DT_F32, 1, sb, L->b);
            continue;
        }
        if (!L->a) continue;
        rl_span sp = rl_adapter_span(L->a);
        for (int j = 0; j < rl_adapter_n_params_info(L->a) && st == RL_OK; j++) {
            const rl_param_info *pi = rl_adapter_param_info(L->a, j);
            snprintf(name, sizeof name, "base_model.model.%s.%s", L->name, pi->name);
            st = rl_st_writer_add(w, name, RL_DT_F32, pi->ndim, pi->shape, sp.p + pi->offset);
        }
    }
    if (st == RL_OK && m->bases) {
        const rl_shared_bases *b = m->bases;
        int sa[3], sb[3], nd = rl_shared_bases_shapes(b, sa, sb);
        snprintf(name, sizeof name, "base_model.%s_A", rl_shared_bases_prefix(b));
        st = rl_st_writer_add(w, name, RL_DT_F32, nd, sa, b->A);
        snprintf(name, sizeof name, "base_model.%s_B", rl_shared_bases_prefix(b));
        if (st == RL_OK) st = rl_st_writer_add(w, name, RL_DT_F32, nd, sb, b->B);
    }
    if (st == RL_OK) st = rl_st_writer_save(w, path);
    rl_st_writer_free(w);
    return st;
}

rl_status rl_model_load_adapters(rl_model *m, const char *path)
{
    rl_st_file *f = NULL;
    RL_TRY(rl_st_open(&f, path));
    rl_status st = RL_OK;
    char name[160];
    for (int i = 0; i < m->n_lin && st == RL_OK; i++) {
        linear *L = &m->lin[i];
        if (L->is_head) {
            int sw[2] = {L->d_out, L->d_in}, sb[1] = {L->d_out};
            st = rl_st_read_f32(f, "base_model.model.head.weight", 2, sw, L->W);
            if (st == RL_OK) st = rl_st_read_f32(f, "base_model.model.head.bias", 1, sb, L->b);
            continue;
        }
        if (!L->a) continue;
        rl_span sp = rl_adapter_span(L->a);
        for (int j = 0; j < rl_adapter_n_params_info(L->a) && st == RL_OK; j++) {
            const rl_param_info *pi = rl_adapter_param_info(L->a, j);
            snprintf(name, sizeof name, "base_model.model.%s.%s", L->name, pi->name);
            st = rl_st_read_f32(f, name, pi->ndim, pi->shape, sp.p + pi->offset);
        }
    }
    if (st == RL_OK && m->bases) {
        const rl_shared_bases *b = m->bases;
        char keys[2][48];
        snprintf(keys[0], sizeof keys[0], "base_model.%s_A", rl_shared_bases_prefix(b));
        snprintf(keys[1], sizeof keys[1], "base_model.%s_B", rl_shared_bases_prefix(b));
        const float *mine[2] = {b->A, b->B};
        size_t lens[2] = {b->a_len, b->b_len};
        for (int k = 0; k < 2 && st == RL_OK; k++) {
            const rl_st_tensor *t = rl_st_find(f, keys[k]);
            if (!t) continue; /* save_projection = false: ours come from the key */
            float *tmp = rl_alloc_floats(t->numel ? t->numel : 1);
            if (!tmp) {
                st = rl_fail(RL_ENOMEM, "%s: no memory", path);
                break;
            }
            rl_st_to_f32(t, tmp);
            if (t->numel != lens[k] || memcmp(tmp, mine[k], lens[k] * sizeof(float)) != 0)
                st = rl_fail(RL_EFORMAT, "%s: '%s' differs from the bases this model generated (another key, r or "
                                         "shape?)", path, keys[k]);
            rl_dealloc(tmp);
        }
    }
    rl_st_close(f);
    return st;
}
