/* bench.c -- `randlora bench`: time one training step. */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "core/rl_blas.h"
#include "core/rl_budget.h"
#include "core/rl_clock.h"
#include "core/rl_cpu.h"
#include "core/rl_par.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "flags.h"
#include "io/rl_results.h"
#include "lockstep.h"
#include "models/rl_model.h"
#include "train/rl_optim.h"
#include "train/rl_train.h"

bench_config bench_defaults(void)
{
    return (bench_config){.method = RL_METHOD_RANDLORA, .bases = RL_BASES_DENSE, .path = RL_PATH_AUTO,
                          .model = BENCH_LAYER, .r = 32, .d_out = 768, .d_in = 768, .tokens = 1024, .layers = 1,
                          .threads = 1, .opts = rl_bench_defaults()};
}

rl_status bench_sgemm_rate(int threads, double *gflops)
{
    static double cached[65];
    if (threads < 1 || threads > 64) return rl_fail(RL_EINVAL, "threads %d outside 1..64", threads);
    if (cached[threads] <= 0) {
        rl_blas_set_threads(threads);
        RL_TRY(rl_blas_sgemm_rate(1024, 1.0, &cached[threads]));
    }
    *gflops = cached[threads];
    return RL_OK;
}

rl_status bench_fma_peak(int threads, double *gflops)
{
    static double cached[65];
    if (threads < 1 || threads > 64) return rl_fail(RL_EINVAL, "threads %d outside 1..64", threads);
    if (cached[threads] <= 0) RL_TRY(rl_cpu_fma_peak(RL_TIER_AVX512, threads, 0.3, &cached[threads]));
    *gflops = cached[threads];
    return RL_OK;
}

/* The timed calls. Taking turns (--lockstep), the turn that bench_run opened
 * (the machine's rates, then the set-up) is passed first. */
static rl_status then_time(void (*fn)(void *ctx), void *ctx, const bench_config *c, bench_result *out)
{
    if (c->opts.turn) RL_TRY(c->opts.turn->pass(c->opts.turn->ctx, false));
    return rl_bench_run(fn, ctx, &c->opts, &out->time);
}

/* Everything one step touches, allocated before timing. */
typedef struct {
    int L, n;
    bool dx0;        /* the first layer computes dx */
    rl_shared_bases *bases;
    rl_adapter *ad[8];
    rl_layer *ly[8];
    rl_adamw *opt[8];
    float *W[8], *b[8];
    float *act[9];   /* act[0] = x, act[k+1] = output of layer k (after ReLU but the last) */
    float *pre[8];   /* pre-activation of layer k (for ReLU's backward) */
    float *G, *dA, *dB;
    double *lt;      /* seconds of layer k in call c at lt[c·L + k] */
    int calls, max_calls;
    rl_bench_opts opts; /* which calls rl_bench_run times (rl_bench_call_timed) */
} step_ctx;

static void relu(float *out, const float *in, size_t m)
{
    RL_PAR_FOR_SIMD(m)
    for (size_t e = 0; e < m; e++) out[e] = in[e] > 0 ? in[e] : 0.0f;
}

/* dx := 0 where the ReLU's input was <= 0 */
static void relu_mask(float *dx, const float *pre, size_t m)
{
    RL_PAR_FOR_SIMD(m)
    for (size_t e = 0; e < m; e++) dx[e] = pre[e] > 0 ? dx[e] : 0.0f;
}

static void step(void *p)
{
    step_ctx *s = p;
    double *lt = s->calls < s->max_calls ? s->lt + (size_t)s->calls * s->L : NULL;
    for (int k = 0; k < s->L; k++) {
        double t0 = rl_now();
        rl_status st = rl_layer_forward(s->ly[k], s->act[k], s->n, s->pre[k]);
        RL_ASSERT(st == RL_OK, "%s", rl_errmsg());
        if (k + 1 < s->L) relu(s->act[k + 1], s->pre[k], (size_t)s->n * rl_adapter_d_out(s->ad[k]));
        if (lt) lt[k] = rl_now() - t0;
    }
    const float *dy = s->G;
    for (int k = s->L - 1; k >= 0; k--) {
        double t0 = rl_now();
        rl_adapter_zero_grad(s->ad[k]);
        float *dx = k > 0 || s->dx0 ? (dy == s->dA ? s->dB : s->dA) : NULL;
        rl_status st = rl_layer_backward(s->ly[k], s->act[k], dy, s->n, dx);
        RL_ASSERT(st == RL_OK, "%s", rl_errmsg());
        rl_adamw_step(s->opt[k], rl_adapter_span(s->ad[k]));
        if (dx && k > 0) relu_mask(dx, s->pre[k - 1], (size_t)s->n * rl_adapter_d_in(s->ad[k])); /* through layer k-1's ReLU */
        dy = dx;
        if (lt) lt[k] += rl_now() - t0;
    }
    s->calls++;
}

static void ctx_free(step_ctx *s)
{
    for (int k = 0; k < s->L; k++) {
        rl_layer_free(s->ly[k]);
        rl_adapter_free(s->ad[k]);
        rl_adamw_free(s->opt[k]);
        rl_dealloc(s->W[k]);
        rl_dealloc(s->b[k]);
        rl_dealloc(s->pre[k]);
    }
    for (int k = 0; k <= s->L; k++) rl_dealloc(s->act[k]);
    rl_dealloc(s->G);
    rl_dealloc(s->dA);
    rl_dealloc(s->dB);
    free(s->lt);
    rl_shared_bases_free(s->bases);
}

static rl_adapter_config adapter_config(const bench_config *c)
{
    rl_adapter_config ac = rl_adapter_config_default(c->method);
    ac.r = c->r;
    if (c->alpha > 0) ac.alpha = c->alpha;
    else if (c->method == RL_METHOD_LORA) ac.alpha = 2.0 * c->r;
    return ac;
}

static rl_status ctx_new(step_ctx *s, const bench_config *c)
{
    memset(s, 0, sizeof *s);
    s->L = c->layers;
    s->n = c->tokens;
    s->dx0 = c->dx;
    const int n = c->tokens;
    rl_adapter_config ac = adapter_config(c);
    if (c->method == RL_METHOD_VERA || c->method == RL_METHOD_RANDLORA)
        RL_TRY(rl_shared_bases_new(&s->bases, c->method, c->r, c->d_out, c->d_in, c->bases, RL_BF16,
                                   RL_FMA, 0));
    rl_mt g;
    rl_mt_seed(&g, 42);
    rl_status st = RL_OK;
    s->opts = c->opts;
    s->max_calls = rl_bench_max_calls(&c->opts);
    s->lt = calloc((size_t)s->max_calls * s->L, sizeof *s->lt);
    s->act[0] = rl_alloc_floats((size_t)n * c->d_in);
    if (!s->act[0] || !s->lt) return rl_fail(RL_ENOMEM, "bench: no memory for x");
    rl_mt_fill_normal(&g, s->act[0], (size_t)n * c->d_in, 1.0f);
    for (int k = 0; k < s->L && st == RL_OK; k++) {
        int o = c->d_out, i = c->d_in;
        size_t nw = (size_t)o * i;
        const bool need_dx = k > 0 || c->dx;
        /* A RandLora layer that will only take materialised routes needs no
         * per-token workspace (rl_adapter.h): its adapter is made with 0 rows. */
        rl_plan p = c->path == RL_PATH_AUTO ? rl_plan_for(c->method, c->bases, o, i, c->r, n, need_dx, false)
                                            : rl_plan_uniform(c->path);
        bool all_m = p.fwd == RL_PATH_MATERIALISED && p.grads == RL_PATH_MATERIALISED &&
                     (!need_dx || p.dx == RL_PATH_MATERIALISED);
        int rows = c->method == RL_METHOD_RANDLORA && all_m ? 0 : n;
        if ((st = rl_adapter_new(&s->ad[k], &ac, o, i, s->bases, rows)) != RL_OK) break;
        s->W[k] = rl_alloc_floats(nw);
        s->b[k] = rl_alloc_floats((size_t)o);
        s->pre[k] = rl_alloc_floats((size_t)n * o);
        s->act[k + 1] = k + 1 < s->L ? rl_alloc_floats((size_t)n * o) : rl_alloc_floats(1);
        if (!s->W[k] || !s->b[k] || !s->pre[k] || !s->act[k + 1]) {
            st = rl_fail(RL_ENOMEM, "bench: cannot allocate layer %d (%dx%d, %d tokens)", k, o, i, n);
            break;
        }
        rl_mt_fill_normal(&g, s->W[k], nw, 1.0f / sqrtf((float)i));
        rl_span sp = rl_adapter_span(s->ad[k]);
        if (c->method == RL_METHOD_FULL) memcpy(sp.p, s->W[k], nw * sizeof(float));
        else rl_mt_fill_normal(&g, sp.p, sp.n, 0.01f); /* trained-looking values, not the no-op init */
        if ((st = rl_layer_new(&s->ly[k], c->method == RL_METHOD_FULL ? NULL : s->W[k], s->b[k], s->ad[k], n,
                               c->path)) != RL_OK)
            break;
        rl_layer_expect_dx(s->ly[k], need_dx);
        st = rl_adamw_new(&s->opt[k], sp.n, 1e-4f, 0.0f);
    }
    if (st == RL_OK) {
        /* dx buffers only where dx flows */
        size_t ndx = s->L > 1 || c->dx ? (size_t)n * c->d_in : 1;
        s->G = rl_alloc_floats((size_t)n * c->d_out);
        s->dA = rl_alloc_floats(ndx);
        s->dB = rl_alloc_floats(ndx);
        if (!s->G || !s->dA || !s->dB) st = rl_fail(RL_ENOMEM, "bench: no memory");
        else rl_mt_fill_normal(&g, s->G, (size_t)n * c->d_out, 1.0f);
    }
    return st;
}

static double median_of(double *x, int n)
{
    rl_summary sm;
    return n > 0 && rl_stats_summarise(x, n, &sm) == RL_OK ? sm.median : NAN;
}

/* first_ms, inner_ms from the per-layer times of the timed calls. */
static void layer_split(const step_ctx *s, int timed, double *first_ms, double *inner_ms)
{
    *first_ms = *inner_ms = NAN;
    if (s->L < 2 || s->calls > s->max_calls || timed < 1) return;
    double *f = malloc(2 * (size_t)timed * sizeof *f);
    if (!f) return;
    double *in = f + timed;
    int m = 0;
    for (int c = 0; c < s->calls && m < timed; c++) {
        if (!rl_bench_call_timed(&s->opts, c)) continue;
        const double *lt = s->lt + (size_t)c * s->L;
        f[m] = lt[0];
        double sum = 0;
        for (int k = 1; k < s->L; k++) sum += lt[k];
        in[m++] = sum / (s->L - 1);
    }
    if (m == timed) {
        *first_ms = 1e3 * median_of(f, timed);
        *inner_ms = 1e3 * median_of(in, timed);
    }
    free(f);
}

/* ---- a whole ViT step ---- */

typedef struct {
    rl_trainer *t;
    float *x;
    int *y, B;
} vit_ctx;

static void vit_step(void *p)
{
    vit_ctx *v = p;
    double loss;
    int correct;
    rl_status st = rl_trainer_step(v->t, v->x, v->y, v->B, &loss, &correct);
    RL_ASSERT(st == RL_OK, "%s", rl_errmsg());
}

static rl_status bench_vit(const bench_config *c, bench_result *out)
{
    rl_model_config mc = {.kind = RL_MODEL_VIT, .n_classes = 5, .max_batch = c->tokens, .image = 28, .patch = 7,
                          .dim = 64, .heads = 4, .mlp_dim = 256, .blocks = 4};
    rl_model *m = NULL;
    vit_ctx v = {.B = c->tokens};
    RL_TRY(rl_model_new(&m, &mc, 42));
    rl_adapter_config ac = adapter_config(c);
    rl_status st = rl_model_attach(m, &ac, "q,k,v,o,fc1,fc2", c->bases, 0, c->path);
    if (st == RL_OK && c->method != RL_METHOD_FULL) {
        /* trained-looking adapter values (a zero LoRA B or λ would be a no-op) */
        rl_mt g;
        rl_mt_seed(&g, 43);
        for (int i = 0; i < rl_model_n_linears(m); i++) {
            rl_adapter *a = rl_model_linear_adapter(m, i);
            if (a) rl_mt_fill_normal(&g, rl_adapter_span(a).p, rl_adapter_param_count(a), 0.01f);
        }
    }
    rl_train_config tc = {.opt = RL_OPT_ADAMW, .lr = 1e-4, .weight_decay = 0.0, .clip = 0.0,
                          .total_steps = 1L << 30, .warmup = 0, .lr_floor = 1e-4};
    if (st == RL_OK) st = rl_trainer_new(&v.t, m, &tc);
    const int in = rl_model_input_dim(m);
    v.x = rl_alloc_floats((size_t)c->tokens * in);
    v.y = calloc((size_t)c->tokens, sizeof *v.y);
    if (st == RL_OK && (!v.x || !v.y)) st = rl_fail(RL_ENOMEM, "bench: no memory for a batch of %d", c->tokens);
    if (st == RL_OK) {
        rl_mt g;
        rl_mt_seed(&g, 7);
        for (size_t i = 0; i < (size_t)c->tokens * in; i++) v.x[i] = rl_mt_uniform01(&g);
        for (int i = 0; i < c->tokens; i++) v.y[i] = (int)(rl_mt_next(&g) % 5u);
        st = then_time(vit_step, &v, c, out);
        out->params = rl_model_trainable_count(m);
        snprintf(out->chosen, sizeof out->chosen, "%s", c->method == RL_METHOD_FULL ? "direct" : "auto");
        out->first_ms = out->inner_ms = NAN;
    }
    rl_trainer_free(v.t);
    rl_model_free(m);
    rl_dealloc(v.x);
    free(v.y);
    return st;
}

typedef struct {
    rl_adapter *a;
    float *W;
} merge_ctx;

static void merge_call(void *p)
{
    merge_ctx *m = p;
    rl_status st = rl_adapter_merge(m->a, m->W, false);
    RL_ASSERT(st == RL_OK, "%s", rl_errmsg());
}

/* Time merging one adapter into a (d_out, d_in) weight. */
static rl_status bench_merge(const bench_config *c, bench_result *out)
{
    rl_adapter_config ac = rl_adapter_config_default(c->method);
    ac.r = c->r;
    rl_shared_bases *b = NULL;
    rl_adapter *a = NULL;
    float *W = rl_alloc_floats((size_t)c->d_out * c->d_in);
    rl_status st = W ? RL_OK : rl_fail(RL_ENOMEM, "bench: no memory for the weight");
    if (st == RL_OK && (c->method == RL_METHOD_VERA || c->method == RL_METHOD_RANDLORA))
        st = rl_shared_bases_new(&b, c->method, c->r, c->d_out, c->d_in, c->bases, RL_BF16, RL_FMA, 0);
    if (st == RL_OK) st = rl_adapter_new(&a, &ac, c->d_out, c->d_in, b, c->method == RL_METHOD_RANDLORA ? 0 : 1);
    if (st == RL_OK) {
        rl_mt g;
        rl_mt_seed(&g, 5);
        rl_mt_fill_normal(&g, rl_adapter_span(a).p, rl_adapter_param_count(a), 0.01f);
        merge_ctx m = {a, W};
        st = then_time(merge_call, &m, c, out);
        out->params = rl_adapter_param_count(a);
        snprintf(out->chosen, sizeof out->chosen, "merge");
        double K = c->method == RL_METHOD_RANDLORA ? (double)c->r * rl_adapter_n_bases(a) : (double)c->r;
        out->gflop = (2.0 * c->d_out * c->d_in * K) / 1e9; /* dense ΔW product */
    }
    rl_adapter_free(a);
    rl_shared_bases_free(b);
    rl_dealloc(W);
    return st;
}

rl_status bench_run(const bench_config *c, bench_result *out)
{
    memset(out, 0, sizeof *out);
    out->cfg = *c;
    out->first_ms = out->inner_ms = NAN;
    if (c->r <= 0 && c->method != RL_METHOD_FULL) return rl_fail(RL_EINVAL, "bench: --r must be positive");
    if (c->d_out <= 0 || c->d_in <= 0 || c->tokens <= 0)
        return rl_fail(RL_EINVAL, "bench: --out, --in and --tokens must be positive");
    if (c->layers < 1 || c->layers > 8) return rl_fail(RL_EINVAL, "bench: --layers %d outside 1..8", c->layers);
    if (c->layers > 1 && c->d_out != c->d_in)
        return rl_fail(RL_EINVAL, "bench: a stack needs square layers (--out %d, --in %d)", c->d_out, c->d_in);
    if (c->path == RL_PATH_MATERIALISED && c->method != RL_METHOD_RANDLORA && c->method != RL_METHOD_VERA)
        return rl_fail(RL_EINVAL, "bench: --path materialised exists for randlora and vera only (lora's gradients "
                       "take the factors; --path auto gives it ΔW for forward and dx)");
    if (c->model == BENCH_VIT && (c->merge || c->layers != 1))
        return rl_fail(RL_EINVAL, "bench: --model vit times a whole model step (no --merge, --layers)");
    /* Taking turns (--lockstep), the machine's rates and the set-up take a
       turn of their own, so that neither overlaps the partner's steps. */
    const rl_turn *turn = c->opts.turn;
    double partner_cpu;
    if (turn) RL_TRY(turn->wait(turn->ctx, &partner_cpu));
    RL_TRY(bench_sgemm_rate(c->threads, &out->sgemm_gflops));
    RL_TRY(bench_fma_peak(c->threads, &out->fma_gflops));
    rl_blas_set_threads(c->threads);
    size_t mem_before = rl_mem_current();
    rl_mem_reset_peak();
    rl_rss_reset_peak(); /* best effort: if refused, the RSS peak covers the whole process */
    rl_status st;
    if (c->merge || c->model == BENCH_VIT) {
        st = c->merge ? bench_merge(c, out) : bench_vit(c, out);
        if (st == RL_OK) {
            out->gflops = out->gflop > 0 ? out->gflop / out->time.wall.median : NAN;
            out->bound_ms = out->gflop > 0 ? 1e3 * out->gflop / out->sgemm_gflops : NAN;
            out->peak_tensor_bytes = rl_mem_peak() - mem_before;
            out->peak_rss_bytes = rl_rss_peak_bytes();
        }
        return st;
    }
    step_ctx s;
    st = ctx_new(&s, c);
    if (st == RL_OK) st = then_time(step, &s, c, out);
    if (st == RL_OK) {
        double flops = 0;
        for (int k = 0; k < s.L; k++) {
            const bool need_dx = k > 0 || c->dx;
            rl_plan p = rl_layer_choose_plan(s.ly[k], s.n, need_dx);
            flops += rl_layer_plan_flops(s.ly[k], p, s.n, need_dx);
            out->params += rl_adapter_param_count(s.ad[k]);
            if (c->method == RL_METHOD_FULL) snprintf(out->chosen, sizeof out->chosen, "direct");
            else if (k == s.L - 1) rl_plan_name(p, need_dx, out->chosen, sizeof out->chosen); /* an inner layer's */
        }
        layer_split(&s, out->time.wall.n, &out->first_ms, &out->inner_ms);
        out->gflop = flops / 1e9;
        out->gflops = out->gflop / out->time.wall.median;
        out->bound_ms = 1e3 * out->gflop / out->sgemm_gflops;
        out->peak_tensor_bytes = rl_mem_peak() - mem_before;
        out->peak_rss_bytes = rl_rss_peak_bytes();
    }
    ctx_free(&s);
    return st;
}

/* The columns of issue 7's harness first, in their order (the gnuplot scripts read
 * them by number), then what issue 13 added; turn_calls and turn_warmup are the
 * timed and untimed steps of a turn when taking turns (--lockstep), else 0. */
const char *bench_csv_header(void)
{
    return "method,bases,path,chosen,r,out,in,tokens,layers,threads,params,median_ms,p25_ms,p75_ms,"
           "ci95_lo_ms,ci95_hi_ms,cpu_ms,reps,gflop,gflops,sgemm_gflops,sgemm_fraction,bound_ms,"
           "peak_tensor_bytes,peak_rss_bytes,core,model,dx,first_ms,inner_ms,fma_gflops,foreign_cpu,"
           "turn_calls,turn_warmup";
}

void bench_csv_row(const bench_result *r, char *buf, size_t len)
{
    const bench_config *c = &r->cfg;
    const rl_summary *w = &r->time.wall;
    const bool has_bases = c->method == RL_METHOD_RANDLORA, vit = c->model == BENCH_VIT;
    snprintf(buf, len,
             "%s,%s,%s,%s,%d,%d,%d,%d,%d,%d,%zu,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%d,%.5f,%.2f,%.2f,%.4f,%.4f,"
             "%zu,%zu,%s,%s,%d,%.4f,%.4f,%.2f,%.4f,%d,%d\n",
             rl_method_name(c->method), has_bases ? rl_bases_kind_name(c->bases) : "-",
             c->method == RL_METHOD_RANDLORA ? rl_path_name(c->path) : "-", r->chosen,
             c->method == RL_METHOD_FULL ? 0 : c->r, vit ? 64 : c->d_out, vit ? 64 : c->d_in, c->tokens,
             vit ? 4 : c->layers, c->threads, r->params, 1e3 * w->median, 1e3 * w->p25, 1e3 * w->p75,
             1e3 * w->ci_lo, 1e3 * w->ci_hi, 1e3 * r->time.cpu_per_call, w->n, r->gflop, r->gflops, r->sgemm_gflops,
             r->gflops / r->sgemm_gflops, r->bound_ms, r->peak_tensor_bytes, r->peak_rss_bytes, rl_blas_corename(),
             vit ? "vit" : "layer", vit || c->dx || c->layers > 1 ? 1 : 0, r->first_ms, r->inner_ms, r->fma_gflops,
             r->time.foreign_cpu, c->opts.turn ? c->opts.turn_calls : 0, c->opts.turn ? c->opts.turn_warmup : 0);
}

/* ---- the command ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: randlora bench --method full|lora|vera|randlora [--r R] [--out O] [--in I]\n"
            "                      [--tokens T] [--bases dense|sparse|very_sparse] [--threads N]\n"
            "                      [--path auto|factorised|materialised] [--layers L] [--dx] [--alpha A]\n"
            "                      [--model layer|vit] [--min-reps N] [--max-reps N] [--seconds S]\n"
            "                      [--merge] [--csv] [--max-memory BYTES]\n"
            "                      [--lockstep first|second --lockstep-in FIFO --lockstep-out FIFO\n"
            "                       [--lockstep-calls K] [--lockstep-warmup W] [--lockstep-settle MS]]\n"
            "       randlora bench --machine [--threads N] [--csv]\n"
            "       randlora bench --targets DIR\n"
            "  Times one training step (forward, backward, AdamW) of one adapted linear layer\n"
            "  (--dx: computing dx too, as an inner layer), or of a stack of L square layers with\n"
            "  ReLU (first layer without dx, then per-layer split: first, inner), frozen base;\n"
            "  --model vit: a whole ViT step (28x28 images, patch 7, dim 64, 4 heads, MLP 256,\n"
            "  4 blocks, 5 classes; adapters on q,k,v,o,fc1,fc2; --tokens images per batch);\n"
            "  --merge: merging the adapter into one weight instead. Defaults: randlora r=32,\n"
            "  768x768, 1024 tokens, dense bases, auto path, 1 thread.\n"
            "  --machine: the BLAS core in use and how it was chosen, this CPU's vector tier,\n"
            "  SGEMM rate (1024^3) and register-only FMA peak at N threads.\n"
            "  --targets DIR: the performance targets from the rounds `make bench` wrote into DIR\n"
            "  (compare_c.csv, compare_pytorch.csv, compare_scaling.csv, compare_ratio.csv,\n"
            "  machine.csv): DIR/compare.csv, DIR/targets.csv; with DIR/runs/, every kept run\n"
            "  analysed again and their verdicts side by side in DIR/targets_runs.csv.\n"
            "  --lockstep: take turns with another process (experiments/lockstep.h: this tool or\n"
            "  experiments/reference/peft_bench.py, given the same two FIFOs the other way round),\n"
            "  so that both are timed on the same stretch of a drifting machine. A turn: W\n"
            "  untimed steps (default 1: caches and clocks settle), then K timed (default 5);\n"
            "  each side first sleeps --lockstep-settle ms (default 20) on getting its turn, so\n"
            "  that the other's idle OpenMP threads have stopped spinning.\n"
            FLAG_MAX_MEMORY_USAGE);
}

#define BENCH_CMD "randlora bench"

/* What a run with these flags will allocate (tracked), bounded from above,
 * checked against the memory budget before anything is: the shared bases;
 * per layer W, bias, the pre-activation and activation (tokens, out), the
 * merged-weight buffer, AdamW's two moments and the adapter; x, G and the
 * two dx buffers. --merge: the weight, its ΔW buffer, bases and adapter. */
static rl_status bench_budget(const bench_config *c)
{
    if (c->r <= 0 && c->method != RL_METHOD_FULL) return RL_OK; /* bench_run refuses it */
    rl_adapter_config ac = rl_adapter_config_default(c->method);
    ac.r = c->r;
    const size_t n = (size_t)c->tokens, o = (size_t)c->d_out, i = (size_t)c->d_in, L = (size_t)c->layers;
    size_t oi = rl_size_mul(o, i), floats, bytes;
    size_t bases = c->method == RL_METHOD_VERA || c->method == RL_METHOD_RANDLORA
                       ? rl_shared_bases_bytes(c->method, c->r, c->d_out, c->d_in, c->bases) : 0;
    if (c->merge) {
        floats = rl_size_mul(2, oi);
        bytes = rl_adapter_bytes_bound(&ac, c->d_out, c->d_in, NULL, 1);
    } else {
        size_t params = rl_param_count_formula(c->method, c->r, c->d_out, c->d_in);
        size_t per = rl_size_add(rl_size_mul(2, oi), rl_size_add(o, rl_size_add(rl_size_mul(2, rl_size_mul(n, o)),
                                                                                  rl_size_mul(2, params))));
        floats = rl_size_add(rl_size_mul(L, per), rl_size_add(rl_size_mul(3, rl_size_mul(n, i)), rl_size_mul(n, o)));
        bytes = rl_size_mul(L, rl_adapter_bytes_bound(&ac, c->d_out, c->d_in, NULL, c->tokens));
    }
    bytes = rl_size_add(rl_size_add(bytes, bases), rl_size_mul(floats, sizeof(float)));
    return rl_budget_check(bytes, "%s r=%d, %dx%d, %d tokens, %d layer%s (--r, --out, --in, --tokens, --layers)",
                           rl_method_name(c->method), c->r, c->d_out, c->d_in, c->tokens, c->layers,
                           c->layers == 1 ? "" : "s");
}

/* A name flag (--method, --bases, --path): print why it failed. */
static bool named(const char *flag, rl_status st)
{
    if (st != RL_OK) fprintf(stderr, BENCH_CMD ": %s: %s\n", flag, rl_errmsg());
    return st == RL_OK;
}

/* --machine: what the figures of this run stand on. */
static int machine(int threads, bool csv)
{
    double sg = 0, fma = 0;
    if (bench_sgemm_rate(threads, &sg) != RL_OK || bench_fma_peak(threads, &fma) != RL_OK) {
        fprintf(stderr, "randlora bench: %s\n", rl_errmsg());
        return 1;
    }
    /* OpenBLAS's own threads on the same product, beside rl_gemm's split */
    double own = sg;
    const int split = rl_gemm_parts(1024, 1024, 1024);
    if (split > 1 && rl_blas_sgemm_rate_whole(1024, 1.0, &own) != RL_OK) {
        fprintf(stderr, "randlora bench: %s\n", rl_errmsg());
        return 1;
    }
    rl_cpu_features f;
    rl_cpu_detect(&f);
    char cpu[256];
    rl_cpu_describe(&f, cpu, sizeof cpu);
    const char *sel = rl_blas_selection()[0] ? rl_blas_selection() : rl_blas_corename();
    if (csv) {
        /* free text without commas, so that the CSV needs no quoting */
        char s2[256], c2[256];
        snprintf(s2, sizeof s2, "%s", sel);
        snprintf(c2, sizeof c2, "%s", cpu);
        rl_csv_plain(s2);
        rl_csv_plain(c2);
        printf("threads,core,blas_threading,cpu_tier,sgemm_gflops,fma_gflops,sgemm_fraction_of_fma,selection,cpu,"
               "openblas_own_gflops,source\n");
        printf("%d,%s,%s,%s,%.2f,%.2f,%.4f,%s,%s,%.2f,%s\n", threads, rl_blas_corename(), rl_blas_threading(),
               rl_cpu_tier_name(rl_cpu_tier_of(&f)), sg, fma, sg / fma, s2, c2, own, rl_source_id());
        return 0;
    }
    printf("cpu      %s\n", cpu);
    printf("source   %s\n", rl_source_id());
    printf("blas     %s, %s threads; core %s\n", rl_blas_config(), rl_blas_threading(), sel);
    printf("threads  %d: SGEMM 1024^3 %.1f GFLOP/s = %.0f%% of the register-only FMA peak %.1f GFLOP/s\n", threads, sg,
           100 * sg / fma, fma);
    if (split > 1)
        printf("         (rl_gemm: rows split over %d threads, OpenBLAS on one in each; OpenBLAS's own %d threads: "
               "%.1f GFLOP/s = %.0f%%)\n", split, threads, own, 100 * own / fma);
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    bench_config c = bench_defaults();
    bool csv = false, mach = false;
    int role = -1; /* --lockstep: 0 first, 1 second */
    c.opts.turn_calls = 5;
    c.opts.turn_warmup = 1;
    const char *fifo_in = NULL, *fifo_out = NULL;
    double settle_ms = 20.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (strcmp(a, "--csv") == 0) { csv = true; continue; }
        if (strcmp(a, "--merge") == 0) { c.merge = true; continue; }
        if (strcmp(a, "--dx") == 0) { c.dx = true; continue; }
        if (strcmp(a, "--machine") == 0) { mach = true; continue; }
        if (strcmp(a, "--targets") == 0) {
            if (!v) { fprintf(stderr, "randlora bench: --targets needs a directory\n"); return 2; }
            return bench_targets(v);
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(stdout); return 0; }
        if (!v) { fprintf(stderr, "randlora bench: %s needs a value\n", a); return 2; }
        i++;
        if (strcmp(a, "--method") == 0) ok = named(a, rl_method_parse(v, &c.method));
        else if (strcmp(a, "--bases") == 0) ok = named(a, rl_bases_kind_parse(v, &c.bases));
        else if (strcmp(a, "--path") == 0) ok = named(a, rl_path_parse(v, &c.path));
        else if (strcmp(a, "--model") == 0) {
            static const char *const models[2] = {"layer", "vit"};
            int k = 0;
            ok = flag_choice(BENCH_CMD, a, v, models, 2, &k);
            c.model = k ? BENCH_VIT : BENCH_LAYER;
        } else if (strcmp(a, "--r") == 0) ok = flag_int(BENCH_CMD, a, v, 1, 1 << 30, &c.r);
        else if (strcmp(a, "--out") == 0) ok = flag_int(BENCH_CMD, a, v, 1, 1 << 30, &c.d_out);
        else if (strcmp(a, "--in") == 0) ok = flag_int(BENCH_CMD, a, v, 1, 1 << 30, &c.d_in);
        else if (strcmp(a, "--tokens") == 0) ok = flag_int(BENCH_CMD, a, v, 1, 1 << 30, &c.tokens);
        else if (strcmp(a, "--threads") == 0) ok = flag_int(BENCH_CMD, a, v, 1, 1 << 30, &c.threads);
        else if (strcmp(a, "--layers") == 0) ok = flag_int(BENCH_CMD, a, v, 1, 1 << 30, &c.layers);
        else if (strcmp(a, "--min-reps") == 0) ok = flag_int(BENCH_CMD, a, v, 1, 1 << 30, &c.opts.min_reps);
        else if (strcmp(a, "--max-reps") == 0) ok = flag_int(BENCH_CMD, a, v, 1, 1 << 30, &c.opts.max_reps);
        else if (strcmp(a, "--alpha") == 0) ok = flag_positive(BENCH_CMD, a, v, INFINITY, &c.alpha);
        else if (strcmp(a, "--max-memory") == 0) ok = flag_max_memory(BENCH_CMD, v);
        else if (strcmp(a, "--seconds") == 0) ok = flag_positive(BENCH_CMD, a, v, 86400.0, &c.opts.min_seconds);
        else if (strcmp(a, "--lockstep") == 0) {
            static const char *const roles[2] = {"first", "second"};
            ok = flag_choice(BENCH_CMD, a, v, roles, 2, &role);
        } else if (strcmp(a, "--lockstep-in") == 0) fifo_in = v;
        else if (strcmp(a, "--lockstep-out") == 0) fifo_out = v;
        else if (strcmp(a, "--lockstep-settle") == 0) ok = flag_double(BENCH_CMD, a, v, 0.0, 1000.0, &settle_ms);
        else if (strcmp(a, "--lockstep-calls") == 0) ok = flag_int(BENCH_CMD, a, v, 1, 1 << 20, &c.opts.turn_calls);
        else if (strcmp(a, "--lockstep-warmup") == 0) ok = flag_int(BENCH_CMD, a, v, 0, 1 << 20, &c.opts.turn_warmup);
        else {
            fprintf(stderr, "randlora bench: unknown flag '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) return 2;
    }
    if (c.opts.max_reps < c.opts.min_reps) c.opts.max_reps = c.opts.min_reps;
    if ((role >= 0) != (fifo_in != NULL) || (role >= 0) != (fifo_out != NULL)) {
        fprintf(stderr, "randlora bench: --lockstep, --lockstep-in and --lockstep-out go together\n");
        return 2;
    }
    if (role >= 0 && (mach || c.merge)) {
        fprintf(stderr, "randlora bench: --lockstep times training steps (not --machine or --merge)\n");
        return 2;
    }
    if (mach) return machine(c.threads, csv);
    lockstep ls;
    if (role >= 0) {
        lockstep_init(&ls, role == 0, fifo_in, fifo_out, settle_ms / 1e3);
        c.opts.turn = &ls.turn;
    }
    bench_result r;
    rl_status st = bench_budget(&c);
    if (st == RL_OK) st = bench_run(&c, &r);
    if (role >= 0) lockstep_close(&ls);
    if (st != RL_OK) {
        fprintf(stderr, "randlora bench: %s\n", rl_errmsg());
        return cmd_exit_code(st); /* 2: bad flags or over the budget; 3: out of memory */
    }
    char row[1024];
    bench_csv_row(&r, row, sizeof row);
    if (csv) {
        printf("%s\n%s", bench_csv_header(), row);
        return 0;
    }
    const rl_summary *w = &r.time.wall;
    if (c.model == BENCH_VIT)
        printf("vit %s%s%s r=%d batch=%d (16 tokens each) threads=%d params=%zu\n", rl_method_name(c.method),
               c.method == RL_METHOD_RANDLORA ? "/" : "", c.method == RL_METHOD_RANDLORA ? rl_bases_kind_name(c.bases) : "",
               c.r, c.tokens, c.threads, r.params);
    else
        printf("%s%s%s r=%d %dx%d tokens=%d layers=%d dx=%s threads=%d path=%s params=%zu\n", rl_method_name(c.method),
               c.method == RL_METHOD_RANDLORA ? "/" : "", c.method == RL_METHOD_RANDLORA ? rl_bases_kind_name(c.bases) : "",
               c.r, c.d_out, c.d_in, c.tokens, c.layers,
               c.layers > 1 ? (c.dx ? "every layer" : "every layer but the first") : (c.dx ? "yes" : "no"), c.threads,
               r.chosen, r.params);
    printf("  step  median %.3f ms  IQR [%.3f, %.3f]  median 95%% CI [%.3f, %.3f] (%.1f%%)  n=%d  cpu %.3f ms\n",
           1e3 * w->median, 1e3 * w->p25, 1e3 * w->p75, 1e3 * w->ci_lo, 1e3 * w->ci_hi,
           100 * w->ci_coverage, w->n, 1e3 * r.time.cpu_per_call);
    if (c.layers > 1)
        printf("  per layer: first %.3f ms (%s), inner %.3f ms (mean of %d)\n", r.first_ms, c.dx ? "with dx" : "no dx",
               r.inner_ms, c.layers - 1);
    if (r.gflop > 0)
        printf("  FLOP model %.4f GFLOP -> %.1f GFLOP/s = %.0f%% of SGEMM %.1f GFLOP/s (bound %.3f ms, %.2fx)\n",
               r.gflop, r.gflops, 100 * r.gflops / r.sgemm_gflops, r.sgemm_gflops, r.bound_ms,
               1e3 * w->median / r.bound_ms);
    printf("  machine: SGEMM %.1f GFLOP/s = %.0f%% of the FMA peak %.1f GFLOP/s (%d thread%s); core %s\n", r.sgemm_gflops,
           100 * r.sgemm_gflops / r.fma_gflops, r.fma_gflops, c.threads, c.threads > 1 ? "s" : "",
           rl_blas_selection()[0] ? rl_blas_selection() : rl_blas_corename());
    printf("  memory: peak tensor bytes %zu (library), peak RSS %zu (process VmHWM)\n", r.peak_tensor_bytes,
           r.peak_rss_bytes);
    return 0;
}
