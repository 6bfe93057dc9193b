/* test_models.c -- finite-difference checks of every block and of both
 * models under every method; training smoke and determinism. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "core/rl_rng.h"
#include "models/rl_model.h"
#include "models/rl_nn.h"
#include "rl_test.h"
#include "train/rl_train.h"

TestSuite(models, .init = rl_test_mark);

/* Element-wise central differences in float32 of a smooth function, step
 * 1e-2 with the loss accumulated in double: truncation error O(eps²·f''') ~
 * 1e-4 relative, rounding ~1e-7·|L| / eps ~ 1e-5. Tolerance: |fd - g| <=
 * 2e-3 · max|g| + 2e-3 · |g|. */
#define FD_EPS 1e-2f
static void expect_close(double fd, double g, double gmax, const char *what, int i)
{
    cr_assert(fabs(fd - g) <= 2e-3 * gmax + 2e-3 * fabs(g), "%s[%d]: fd %.7g vs analytic %.7g (max %.3g)", what,
              i, fd, g, gmax);
}

static double gmax_of(const float *g, int n)
{
    double m = 1e-12;
    for (int i = 0; i < n; i++) m = fmax(m, fabs(g[i]));
    return m;
}

static double dot(const float *a, const float *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

RL_TEST(models, layernorm_gradients)
{
    enum { N = 3, D = 5 };
    float x[N * D], g[D], b[D], G[N * D], y[N * D], mean[N], rstd[N], dx[N * D], dg[D] = {0}, db[D] = {0};
    rl_mt r;
    rl_mt_seed(&r, 1);
    rl_mt_fill_normal(&r, x, N * D, 1.0f);
    rl_mt_fill_normal(&r, g, D, 1.0f);
    rl_mt_fill_normal(&r, b, D, 1.0f);
    rl_mt_fill_normal(&r, G, N * D, 1.0f);
    rl_layernorm_forward(y, mean, rstd, x, g, b, N, D);
    rl_layernorm_backward(dx, dg, db, G, x, mean, rstd, g, N, D, 0);
    float *params[3] = {x, g, b}, *grads[3] = {dx, dg, db};
    int sizes[3] = {N * D, D, D};
    for (int p = 0; p < 3; p++) {
        double gm = gmax_of(grads[p], sizes[p]);
        for (int i = 0; i < sizes[p]; i++) {
            float keep = params[p][i];
            params[p][i] = keep + FD_EPS;
            rl_layernorm_forward(y, mean, rstd, x, g, b, N, D);
            double lp = dot(y, G, N * D);
            params[p][i] = keep - FD_EPS;
            rl_layernorm_forward(y, mean, rstd, x, g, b, N, D);
            double lm = dot(y, G, N * D);
            params[p][i] = keep;
            expect_close((lp - lm) / (2 * FD_EPS), grads[p][i], gm, "layernorm", i);
        }
    }
}

RL_TEST(models, gelu_and_xent_gradients)
{
    float x[9] = {-3, -1.5f, -0.5f, -0.1f, 0, 0.2f, 0.7f, 1.9f, 3.5f}, y[9], dx[9], ones[9];
    rl_fill(ones, 9, 1.0f);
    rl_gelu_backward(dx, ones, x, 9);
    for (int i = 0; i < 9; i++) {
        float a = x[i] + FD_EPS, b = x[i] - FD_EPS, ya, yb;
        rl_gelu_forward(&ya, &a, 1);
        rl_gelu_forward(&yb, &b, 1);
        expect_close((ya - yb) / (2 * FD_EPS), dx[i], 1.0, "gelu", i);
    }
    rl_gelu_forward(y, x, 9);
    cr_assert_float_eq(y[4], 0.0f, 0);
    cr_assert_float_eq(y[8], 3.5f * 0.5f * (1 + erff(3.5f / sqrtf(2))), 1e-6);
    /* cross-entropy */
    float z[6] = {0.3f, -1.2f, 2.0f, 0.5f, 0.5f, -0.7f}, dz[6];
    int lab[2] = {2, 0}, hits;
    double L = rl_xent_forward_backward(dz, z, lab, 2, 3, &hits);
    cr_assert_eq(hits, 2, "argmax of row 0 is 2; row 1 ties 0/1 and takes the first");
    double ref = 0.5 * ((log(exp(0.3) + exp(-1.2) + exp(2.0)) - 2.0) + (log(2 * exp(0.5) + exp(-0.7)) - 0.5));
    cr_assert_float_eq(L, ref, 1e-6);
    for (int i = 0; i < 6; i++) {
        float keep = z[i];
        z[i] = keep + FD_EPS;
        double lp = rl_xent_forward_backward(NULL, z, lab, 2, 3, NULL);
        z[i] = keep - FD_EPS;
        double lm = rl_xent_forward_backward(NULL, z, lab, 2, 3, NULL);
        z[i] = keep;
        expect_close((lp - lm) / (2 * FD_EPS), dz[i], 1.0, "xent", i);
    }
}

RL_TEST(models, attention_gradients)
{
    enum { B = 2, T = 3, D = 4, H = 2, N = B * T * D };
    float q[N], k[N], v[N], o[N], P[B * H * T * T], G[N], dq[N], dk[N], dv[N], dP[B * H * T * T];
    rl_mt r;
    rl_mt_seed(&r, 2);
    rl_mt_fill_normal(&r, q, N, 1.0f);
    rl_mt_fill_normal(&r, k, N, 1.0f);
    rl_mt_fill_normal(&r, v, N, 1.0f);
    rl_mt_fill_normal(&r, G, N, 1.0f);
    rl_attention_forward(o, P, q, k, v, B, T, D, H);
    for (int i = 0; i < B * H * T; i++) {
        double s = 0;
        for (int c = 0; c < T; c++) s += P[i * T + c];
        cr_assert_float_eq(s, 1.0, 1e-6, "softmax rows sum to 1");
    }
    rl_attention_backward(dq, dk, dv, dP, G, P, q, k, v, B, T, D, H);
    float *ps[3] = {q, k, v}, *gs[3] = {dq, dk, dv};
    for (int p = 0; p < 3; p++) {
        double gm = gmax_of(gs[p], N);
        for (int i = 0; i < N; i++) {
            float keep = ps[p][i];
            ps[p][i] = keep + FD_EPS;
            rl_attention_forward(o, P, q, k, v, B, T, D, H);
            double lp = dot(o, G, N);
            ps[p][i] = keep - FD_EPS;
            rl_attention_forward(o, P, q, k, v, B, T, D, H);
            double lm = dot(o, G, N);
            ps[p][i] = keep;
            expect_close((lp - lm) / (2 * FD_EPS), gs[p][i], gm, "attention", i);
        }
    }
}

/* ---- whole models ---- */

typedef struct {
    int kind;    /* rl_model_kind */
    int method;  /* rl_method */
    int bases;   /* rl_bases_kind */
} mcase;

static rl_model_config tiny(int kind)
{
    rl_model_config c = {.kind = (rl_model_kind)kind, .n_classes = 3, .max_batch = 4};
    if (kind == RL_MODEL_MLP) {
        c.in_dim = 12;
        c.hidden = 8;
        c.depth = 2;
    } else {
        c.image = 8;
        c.patch = 4;
        c.dim = 8;
        c.heads = 2;
        c.mlp_dim = 12;
        c.blocks = 2;
    }
    return c;
}

static rl_model *tiny_model(const mcase *c)
{
    rl_model_config cfg = tiny(c->kind);
    rl_model *m = NULL;
    cr_assert_eq(rl_model_new(&m, &cfg, 5), RL_OK, "%s", rl_errmsg());
    rl_adapter_config ac = rl_adapter_config_default((rl_method)c->method);
    ac.r = 2;
    ac.alpha = 4;
    cr_assert_eq(rl_model_attach(m, &ac, "all", (rl_bases_kind)c->bases, 0, RL_PATH_AUTO), RL_OK, "%s", rl_errmsg());
    /* move adapters away from their no-op init so every gradient carries signal */
    rl_span sp[80];
    int n = rl_model_spans(m, sp, 80);
    rl_mt r;
    rl_mt_seed(&r, 9);
    for (int i = 0; i < n; i++)
        if (rl_model_get_mode(m) == RL_MODE_ADAPT && sp[i].p != sp[0].p)
            for (size_t j = 0; j < sp[i].n; j++) sp[i].p[j] += 0.3f * rl_mt_normal(&r);
    return m;
}

static double model_loss(rl_model *m, const float *x, const int *y, int B)
{
    float logits[4 * 3];
    cr_assert_eq(rl_model_forward(m, x, B, logits), RL_OK);
    return rl_xent_forward_backward(NULL, logits, y, B, 3, NULL);
}

static mcase model_cases[8];
ParameterizedTestParameters(models, whole_model_gradients)
{
    static const int methods[4][2] = {{RL_METHOD_FULL, 0}, {RL_METHOD_LORA, 0}, {RL_METHOD_VERA, 0},
                                      {RL_METHOD_RANDLORA, RL_BASES_DENSE}};
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 4; j++) model_cases[k * 4 + j] = (mcase){k, methods[j][0], methods[j][1]};
    return cr_make_param_array(mcase, model_cases, 8);
}

/* Every trainable span along a random direction v ~ N(0, I): (L(θ+εv) -
 * L(θ-εv)) / 2ε against <g, v>, ε = 1e-3 (float32 forward, double loss).
 * |v| is ~√n (up to ~7 here), so the step in parameter space is ~7e-3: the
 * O(ε²) truncation through softmax, LayerNorm and GELU stays below ~1e-3
 * relative (measured: ε = 3e-2 is visibly off, 1e-2 borderline, 3e-3 and
 * 1e-3 agree), and float32 rounding of L is ~1e-7·|L|/ε ~ 1e-4. Tolerance
 * 1e-2 relative to Σ|g_i v_i|; a wrong gradient is O(1) off. */
#define FD_DIR_EPS 1e-3f
ParameterizedTest(mcase *c, models, whole_model_gradients)
{
    rl_model *m = tiny_model(c);
    const int B = 3, in = rl_model_input_dim(m);
    float x[4 * 64], logits[12], dl[12];
    int y[3] = {0, 2, 1};
    rl_mt r;
    rl_mt_seed(&r, 4);
    rl_mt_fill_normal(&r, x, (size_t)B * in, 1.0f);
    rl_model_zero_grad(m);
    cr_assert_eq(rl_model_forward(m, x, B, logits), RL_OK);
    rl_xent_forward_backward(dl, logits, y, B, 3, NULL);
    cr_assert_eq(rl_model_backward(m, dl, B), RL_OK);
    rl_span sp[80];
    int ns = rl_model_spans(m, sp, 80);
    cr_assert(ns >= 2);
    for (int s = 0; s < ns; s++) {
        float *v = rl_alloc_floats(sp[s].n), *keep = rl_alloc_floats(sp[s].n);
        rl_mt_fill_normal(&r, v, sp[s].n, 1.0f);
        memcpy(keep, sp[s].p, sp[s].n * sizeof(float));
        double gv = 0, gabs = 0;
        for (size_t j = 0; j < sp[s].n; j++) {
            gv += (double)sp[s].g[j] * v[j];
            gabs += fabs((double)sp[s].g[j] * v[j]);
        }
        for (size_t j = 0; j < sp[s].n; j++) sp[s].p[j] = keep[j] + FD_DIR_EPS * v[j];
        double lp = model_loss(m, x, y, B);
        for (size_t j = 0; j < sp[s].n; j++) sp[s].p[j] = keep[j] - FD_DIR_EPS * v[j];
        double lm = model_loss(m, x, y, B);
        memcpy(sp[s].p, keep, sp[s].n * sizeof(float));
        double fd = (lp - lm) / (2 * FD_DIR_EPS);
        cr_assert(gabs > 0, "span %d has no gradient", s);
        cr_assert(fabs(fd - gv) <= 1e-2 * gabs, "kind %d method %d span %d (%zu params): fd %.6g vs %.6g",
                  c->kind, c->method, s, sp[s].n, fd, gv);
        rl_dealloc(v);
        rl_dealloc(keep);
    }
    rl_model_free(m);
    rl_test_check_leak();
}

ParameterizedTestParameters(models, loss_falls_and_is_deterministic)
{
    static mcase cases[10];
    static const int methods[5][2] = {{RL_METHOD_FULL, 0}, {RL_METHOD_LORA, 0}, {RL_METHOD_VERA, 0},
                                      {RL_METHOD_RANDLORA, RL_BASES_DENSE}, {RL_METHOD_RANDLORA, RL_BASES_SPARSE}};
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 5; j++) cases[k * 5 + j] = (mcase){k, methods[j][0], methods[j][1]};
    return cr_make_param_array(mcase, cases, 10);
}

/* 40 AdamW steps on one fixed batch: the loss falls by a third under every
 * method, and a second identical run gives bit-identical losses. */
ParameterizedTest(mcase *c, models, loss_falls_and_is_deterministic)
{
    double first[2] = {0}, last[2] = {0};
    for (int run = 0; run < 2; run++) {
        rl_model *m = tiny_model(c);
        const int B = 4, in = rl_model_input_dim(m);
        float x[4 * 64];
        int y[4] = {0, 1, 2, 1};
        rl_mt r;
        rl_mt_seed(&r, 8);
        rl_mt_fill_normal(&r, x, (size_t)B * in, 1.0f);
        rl_train_config tc = {.opt = RL_OPT_ADAMW, .lr = 3e-2, .total_steps = 40, .warmup = 4, .clip = 1.0};
        rl_trainer *t = NULL;
        cr_assert_eq(rl_trainer_new(&t, m, &tc), RL_OK, "%s", rl_errmsg());
        for (int s = 0; s < 40; s++) {
            double loss;
            int hits;
            cr_assert_eq(rl_trainer_step(t, x, y, B, &loss, &hits), RL_OK);
            if (s == 0) first[run] = loss;
            last[run] = loss;
        }
        rl_trainer_free(t);
        rl_model_free(m);
    }
    cr_assert(last[0] < first[0] * 0.67, "kind %d method %d: loss %g -> %g", c->kind, c->method, first[0], last[0]);
    cr_assert(first[0] == first[1] && last[0] == last[1], "two runs differ: %.17g vs %.17g", last[0], last[1]);
    rl_test_check_leak();
}

RL_TEST(models, merge_and_checkpoint_round_trip)
{
    for (int kind = 0; kind < 2; kind++) {
        mcase c = {kind, RL_METHOD_RANDLORA, RL_BASES_DENSE};
        rl_model *m = tiny_model(&c);
        const int B = 4, in = rl_model_input_dim(m);
        float x[4 * 64], a[12], b[12];
        rl_mt r;
        rl_mt_seed(&r, 3);
        rl_mt_fill_normal(&r, x, (size_t)B * in, 1.0f);
        cr_assert_eq(rl_model_forward(m, x, B, a), RL_OK);
        char path[128], apath[128];
        snprintf(apath, sizeof apath, "/tmp/rl_model_%d_adapters.safetensors", (int)getpid());
        cr_assert_eq(rl_model_save_adapters(m, apath), RL_OK, "%s", rl_errmsg());
        /* adapters reload into a model with the same attachment: identical logits */
        {
            rl_model *m4 = tiny_model(&c);
            rl_span sp[80];
            int ns = rl_model_spans(m4, sp, 80);
            for (int s = 0; s < ns; s++) rl_fill(sp[s].p, sp[s].n, 0.5f); /* clobber */
            cr_assert_eq(rl_model_load_adapters(m4, apath), RL_OK, "%s", rl_errmsg());
            float c4[12];
            cr_assert_eq(rl_model_forward(m4, x, B, c4), RL_OK);
            for (int i = 0; i < B * 3; i++) cr_assert_eq(c4[i], a[i], "reloaded adapters give the same logits");
            rl_model_free(m4);
            mcase other = {kind, RL_METHOD_LORA, RL_BASES_DENSE};
            rl_model *m5 = tiny_model(&other);
            cr_assert_neq(rl_model_load_adapters(m5, apath), RL_OK, "a RandLora file into LoRA adapters is refused");
            rl_model_free(m5);
        }
        cr_assert_eq(rl_model_merge_adapters(m), RL_OK);
        cr_assert_eq(rl_model_get_mode(m), RL_MODE_BASE);
        cr_assert_eq(rl_model_forward(m, x, B, b), RL_OK);
        for (int i = 0; i < B * 3; i++) cr_assert_float_eq(a[i], b[i], 1e-4 * (1 + fabs(a[i])), "merged logits");
        snprintf(path, sizeof path, "/tmp/rl_model_%d.safetensors", (int)getpid());
        cr_assert_eq(rl_model_save_base(m, path), RL_OK, "%s", rl_errmsg());
        rl_model_config cfg = tiny(kind);
        rl_model *m2 = NULL;
        cr_assert_eq(rl_model_new(&m2, &cfg, 77), RL_OK);
        cr_assert_eq(rl_model_load_base(m2, path), RL_OK, "%s", rl_errmsg());
        cr_assert_eq(rl_model_forward(m2, x, B, a), RL_OK);
        for (int i = 0; i < B * 3; i++) cr_assert_eq(a[i], b[i], "loaded model is bit-identical");
        rl_model_config other = tiny(1 - kind);
        rl_model *m3 = NULL;
        cr_assert_eq(rl_model_new(&m3, &other, 1), RL_OK);
        cr_assert_neq(rl_model_load_base(m3, path), RL_OK, "a checkpoint of the other kind is refused");
        unlink(path);
        unlink(apath);
        rl_model_free(m);
        rl_model_free(m2);
        rl_model_free(m3);
    }
}

RL_TEST(models, bad_targets_and_configs)
{
    rl_model_config cfg = tiny(RL_MODEL_VIT);
    rl_model *m = NULL;
    cr_assert_eq(rl_model_new(&m, &cfg, 1), RL_OK);
    rl_adapter_config ac = rl_adapter_config_default(RL_METHOD_LORA);
    ac.r = 2;
    cr_assert_eq(rl_model_attach(m, &ac, "q,qq", RL_BASES_DENSE, 0, RL_PATH_AUTO), RL_EINVAL);
    cr_assert(strstr(rl_errmsg(), "'qq'") != NULL, "%s", rl_errmsg());
    cr_assert_eq(rl_model_attach(m, &ac, "q,v", RL_BASES_DENSE, 0, RL_PATH_AUTO), RL_OK);
    /* 2 blocks x (q, v) x r (8 + 8) */
    cr_assert_eq(rl_model_adapter_count(m), 2u * 2 * 2 * (8 + 8));
    rl_model_free(m);
    cfg.patch = 3; /* 8 is not a multiple of 3 */
    cr_assert_eq(rl_model_new(&m, &cfg, 1), RL_EINVAL);
    cr_assert_null(m);
}

/* Linear CKA: 1 under rotation and scaling, ~0 for unrelated data, and the
 * value of a hand-computed 3 x 1 example. */
#include "analysis/rl_cka.h"
RL_TEST(models, linear_cka)
{
    enum { N = 50, P = 4 };
    float X[N * P], Y[N * P], Z[N * P], work[N * 2 * P + P * P];
    rl_mt r;
    rl_mt_seed(&r, 12);
    rl_mt_fill_normal(&r, X, N * P, 1.0f);
    rl_mt_fill_normal(&r, Z, N * P, 1.0f);
    /* Y = 3 · X Q for the rotation Q swapping and negating columns */
    for (int i = 0; i < N; i++) {
        Y[i * P + 0] = -3 * X[i * P + 1];
        Y[i * P + 1] = 3 * X[i * P + 0];
        Y[i * P + 2] = 3 * X[i * P + 3];
        Y[i * P + 3] = 3 * X[i * P + 2];
    }
    double c;
    cr_assert_eq(rl_cka_linear(X, P, Y, P, N, work, &c), RL_OK);
    cr_assert_float_eq(c, 1.0, 1e-6);
    cr_assert_eq(rl_cka_linear(X, P, Z, P, N, work, &c), RL_OK);
    cr_assert(c < 0.3, "independent draws: %g", c);
    /* x = (1, 2, 3), y = (1, 0, 2): centred (-1, 0, 1) and (0, -1, 1);
     * (yᵀx)² = 1, xᵀx = 2, yᵀy = 2: CKA = 1 / (2 · 2) = 0.25 */
    float a[3] = {1, 2, 3}, b[3] = {1, 0, 2}, w[7];
    cr_assert_eq(rl_cka_linear(a, 1, b, 1, 3, w, &c), RL_OK);
    cr_assert_float_eq(c, 0.25, 1e-12);
    float k[3] = {2, 2, 2};
    cr_assert_eq(rl_cka_linear(a, 1, k, 1, 3, w, &c), RL_EINVAL);
}

/* ---- the ViT as `sweep vit` adapts it: q, k, v, o, fc1, fc2 of every block ---- */

static mcase vit_cases[6];
ParameterizedTestParameters(models, vit_block_gradients_on_paper_targets)
{
    static const int methods[6][2] = {{RL_METHOD_FULL, 0},
                                      {RL_METHOD_LORA, 0},
                                      {RL_METHOD_VERA, 0},
                                      {RL_METHOD_RANDLORA, RL_BASES_DENSE},
                                      {RL_METHOD_RANDLORA, RL_BASES_SPARSE},
                                      {RL_METHOD_RANDLORA, RL_BASES_VERY_SPARSE}};
    for (int j = 0; j < 6; j++) vit_cases[j] = (mcase){RL_MODEL_VIT, methods[j][0], methods[j][1]};
    return cr_make_param_array(mcase, vit_cases, 6);
}

/* For every block and every one of its six target linears, the directional
 * derivative of the loss along a random direction of that linear's
 * trainable parameters (the adapter's block, or the linear's own weight
 * slice of the base block under full fine-tuning) against <g, v>, with the
 * tolerance of whole_model_gradients. The gradients of block 0 go through
 * block 1's backward (dx), so each block's dx is checked too.
 * The adapters are moved off their no-op init by 0.1·N(0, 1), not the 0.3
 * of whole_model_gradients: with adapters on q and k (and not on the patch
 * embedding), 0.3 gives RandLora updates far beyond anything training
 * produces, the attention logits saturate, and the ε = 1e-3 central
 * difference was measured 4-15% off for q and k from truncation alone (the
 * analytic gradient agrees at ε = 1e-4, on both RandLora paths); at 0.1
 * every method's worst case is below 4e-3 of Σ|g v|. */
#define VIT_PERTURB 0.1f
ParameterizedTest(mcase *c, models, vit_block_gradients_on_paper_targets)
{
    rl_model_config cfg = tiny(RL_MODEL_VIT);
    rl_model *m = NULL;
    cr_assert_eq(rl_model_new(&m, &cfg, 5), RL_OK, "%s", rl_errmsg());
    rl_adapter_config ac = rl_adapter_config_default((rl_method)c->method);
    ac.r = 2;
    ac.alpha = 4;
    cr_assert_eq(rl_model_attach(m, &ac, "q,k,v,o,fc1,fc2", (rl_bases_kind)c->bases, 0, RL_PATH_AUTO), RL_OK, "%s",
                 rl_errmsg());
    rl_span sp[80];
    int ns = rl_model_spans(m, sp, 80);
    rl_mt r;
    rl_mt_seed(&r, 9);
    for (int i = 1; i < ns; i++) /* adapters off their no-op init */
        if (rl_model_get_mode(m) == RL_MODE_ADAPT && sp[i].p != sp[0].p)
            for (size_t j = 0; j < sp[i].n; j++) sp[i].p[j] += VIT_PERTURB * rl_mt_normal(&r);
    const int B = 3, in = rl_model_input_dim(m);
    float x[4 * 64], logits[12], dl[12];
    int y[3] = {0, 2, 1};
    rl_mt_fill_normal(&r, x, (size_t)B * in, 1.0f);
    rl_model_zero_grad(m);
    cr_assert_eq(rl_model_forward(m, x, B, logits), RL_OK);
    rl_xent_forward_backward(dl, logits, y, B, 3, NULL);
    cr_assert_eq(rl_model_backward(m, dl, B), RL_OK);
    int checked = 0;
    for (int i = 0; i < rl_model_n_linears(m); i++) {
        const char *t = rl_model_linear_target(m, i);
        if (!strcmp(t, "patch") || !strcmp(t, "head")) continue;
        float *p, *g;
        size_t n;
        rl_adapter *a = rl_model_linear_adapter(m, i);
        if (c->method == RL_METHOD_FULL) {
            int o, k;
            p = (float *)rl_model_linear_weight(m, i, &o, &k);
            n = (size_t)o * k;
            g = sp[0].g + (p - sp[0].p); /* the base gradient block has the parameters' layout */
            cr_assert(p >= sp[0].p && p + n <= sp[0].p + sp[0].n);
        } else {
            cr_assert_not_null(a, "%s has no adapter", rl_model_linear_name(m, i));
            rl_span s = rl_adapter_span(a);
            p = s.p;
            g = s.g;
            n = s.n;
        }
        float *v = rl_alloc_floats(n), *keep = rl_alloc_floats(n);
        rl_mt_fill_normal(&r, v, n, 1.0f);
        memcpy(keep, p, n * sizeof(float));
        double gv = 0, gabs = 0;
        for (size_t j = 0; j < n; j++) {
            gv += (double)g[j] * v[j];
            gabs += fabs((double)g[j] * v[j]);
        }
        for (size_t j = 0; j < n; j++) p[j] = keep[j] + FD_DIR_EPS * v[j];
        double lp = model_loss(m, x, y, B);
        for (size_t j = 0; j < n; j++) p[j] = keep[j] - FD_DIR_EPS * v[j];
        double lm = model_loss(m, x, y, B);
        memcpy(p, keep, n * sizeof(float));
        double fd = (lp - lm) / (2 * FD_DIR_EPS);
        cr_assert(gabs > 0, "%s: no gradient", rl_model_linear_name(m, i));
        cr_assert(fabs(fd - gv) <= 1e-2 * gabs, "method %d bases %d %s: fd %.6g vs %.6g", c->method, c->bases,
                  rl_model_linear_name(m, i), fd, gv);
        rl_dealloc(v);
        rl_dealloc(keep);
        checked++;
    }
    cr_assert_eq(checked, 6 * cfg.blocks, "six target linears per block");
    rl_model_free(m);
    rl_test_check_leak();
}
