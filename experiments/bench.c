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
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "flags.h"
#include "train/rl_optim.h"

bench_config bench_defaults(void)
{
    return (bench_config){.method = RL_METHOD_RANDLORA, .bases = RL_BASES_DENSE, .path = RL_PATH_AUTO,
                          .r = 32, .d_out = 768, .d_in = 768, .tokens = 1024, .layers = 1, .threads = 1,
                          .opts = rl_bench_defaults()};
}

rl_status bench_sgemm_rate(int threads, double *gflops)
{
    static double cached[65];
    if (threads < 1 || threads > 64) return rl_fail(RL_EINVAL, "threads %d outside 1..64", threads);
    if (cached[threads] <= 0) {
        rl_blas_set_threads(threads);
        RL_TRY(rl_sgemm_gflops(1024, 1.0, &cached[threads]));
    }
    *gflops = cached[threads];
    return RL_OK;
}

/* Everything one step touches, allocated before timing. */
typedef struct {
    int L, n;
    rl_shared_bases *bases;
    rl_adapter *ad[8];
    rl_layer *ly[8];
    rl_adamw *opt[8];
    float *W[8], *b[8];
    float *act[9];   /* act[0] = x, act[k+1] = output of layer k (after ReLU but the last) */
    float *pre[8];   /* pre-activation of layer k (for ReLU's backward) */
    float *G, *dA, *dB;
} step_ctx;

static void step(void *p)
{
    step_ctx *s = p;
    for (int k = 0; k < s->L; k++) {
        rl_status st = rl_layer_forward(s->ly[k], s->act[k], s->n, s->pre[k]);
        RL_ASSERT(st == RL_OK, "%s", rl_errmsg());
        size_t m = (size_t)s->n * rl_adapter_d_out(s->ad[k]);
        if (k + 1 < s->L)
            for (size_t e = 0; e < m; e++) s->act[k + 1][e] = s->pre[k][e] > 0 ? s->pre[k][e] : 0.0f;
    }
    const float *dy = s->G;
    for (int k = s->L - 1; k >= 0; k--) {
        rl_adapter_zero_grad(s->ad[k]);
        float *dx = k > 0 ? (dy == s->dA ? s->dB : s->dA) : NULL;
        rl_status st = rl_layer_backward(s->ly[k], s->act[k], dy, s->n, dx);
        RL_ASSERT(st == RL_OK, "%s", rl_errmsg());
        rl_adamw_step(s->opt[k], rl_adapter_span(s->ad[k]));
        if (dx) { /* through the ReLU of layer k-1 */
            size_t m = (size_t)s->n * rl_adapter_d_in(s->ad[k]);
            for (size_t e = 0; e < m; e++)
                if (s->pre[k - 1][e] <= 0) dx[e] = 0.0f;
        }
        dy = dx;
    }
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
    rl_shared_bases_free(s->bases);
}

static rl_status ctx_new(step_ctx *s, const bench_config *c)
{
    memset(s, 0, sizeof *s);
    s->L = c->layers;
    s->n = c->tokens;
    const int n = c->tokens;
    rl_adapter_config ac = rl_adapter_config_default(c->method);
    ac.r = c->r;
    if (c->alpha > 0) ac.alpha = c->alpha;
    else if (c->method == RL_METHOD_LORA) ac.alpha = 2.0 * c->r;
    if (c->method == RL_METHOD_VERA || c->method == RL_METHOD_RANDLORA)
        RL_TRY(rl_shared_bases_new(&s->bases, c->method, c->r, c->d_out, c->d_in, c->bases, RL_BF16,
                                   RL_FMA, 0));
    rl_mt g;
    rl_mt_seed(&g, 42);
    rl_status st = RL_OK;
    s->act[0] = rl_alloc_floats((size_t)n * c->d_in);
    if (!s->act[0]) return rl_fail(RL_ENOMEM, "bench: no memory for x");
    rl_mt_fill_normal(&g, s->act[0], (size_t)n * c->d_in, 1.0f);
    for (int k = 0; k < s->L && st == RL_OK; k++) {
        int o = c->d_out, i = c->d_in;
        size_t nw = (size_t)o * i;
        /* A RandLora layer that will only take the materialised path needs no
         * per-token workspace (rl_adapter.h): its adapter is made with 0 rows. */
        rl_path p = c->path == RL_PATH_AUTO ? rl_path_for(c->method, c->bases, o, i, c->r, n, k > 0) : c->path;
        int rows = c->method == RL_METHOD_RANDLORA && p == RL_PATH_MATERIALISED ? 0 : n;
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
        st = rl_adamw_new(&s->opt[k], sp.n, 1e-4f, 0.0f);
    }
    if (st == RL_OK) {
        /* dx buffers only where dx flows (between the layers of a stack) */
        size_t ndx = s->L > 1 ? (size_t)n * c->d_in : 1;
        s->G = rl_alloc_floats((size_t)n * c->d_out);
        s->dA = rl_alloc_floats(ndx);
        s->dB = rl_alloc_floats(ndx);
        if (!s->G || !s->dA || !s->dB) st = rl_fail(RL_ENOMEM, "bench: no memory");
        else rl_mt_fill_normal(&g, s->G, (size_t)n * c->d_out, 1.0f);
    }
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
        rl_bench_opts o = c->opts;
        st = rl_bench_run(merge_call, &m, &o, &out->time);
        out->params = rl_adapter_param_count(a);
        out->chosen = "merge";
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
    if (c->r <= 0 && c->method != RL_METHOD_FULL) return rl_fail(RL_EINVAL, "bench: --r must be positive");
    if (c->d_out <= 0 || c->d_in <= 0 || c->tokens <= 0)
        return rl_fail(RL_EINVAL, "bench: --out, --in and --tokens must be positive");
    if (c->layers < 1 || c->layers > 8) return rl_fail(RL_EINVAL, "bench: --layers %d outside 1..8", c->layers);
    if (c->layers > 1 && c->d_out != c->d_in)
        return rl_fail(RL_EINVAL, "bench: a stack needs square layers (--out %d, --in %d)", c->d_out, c->d_in);
    if (c->path == RL_PATH_MATERIALISED && c->method != RL_METHOD_RANDLORA)
        return rl_fail(RL_EINVAL, "bench: --path materialised exists for randlora only");
    RL_TRY(bench_sgemm_rate(c->threads, &out->sgemm_gflops));
    rl_blas_set_threads(c->threads);
    if (c->merge) {
        size_t mem_before = rl_mem_current();
        rl_mem_reset_peak();
        rl_status ms = bench_merge(c, out);
        if (ms == RL_OK) {
            out->gflops = out->gflop / out->time.wall.median;
            out->bound_ms = 1e3 * out->gflop / out->sgemm_gflops;
            out->peak_tensor_bytes = rl_mem_peak() - mem_before;
            out->peak_rss_bytes = rl_rss_peak_bytes();
        }
        return ms;
    }

    size_t mem_before = rl_mem_current();
    rl_mem_reset_peak();
    rl_rss_reset_peak(); /* best effort: if refused, the RSS peak covers the whole process */
    step_ctx s;
    rl_status st = ctx_new(&s, c);
    if (st == RL_OK) st = rl_bench_run(step, &s, &c->opts, &out->time);
    if (st == RL_OK) {
        double flops = 0;
        for (int k = 0; k < s.L; k++) {
            rl_path p = rl_layer_choose_path(s.ly[k], s.n, k > 0);
            flops += rl_layer_step_flops(s.ly[k], p, s.n, k > 0);
            out->params += rl_adapter_param_count(s.ad[k]);
            out->chosen = c->method == RL_METHOD_FULL ? "direct" : rl_path_name(p);
        }
        out->gflop = flops / 1e9;
        out->gflops = out->gflop / out->time.wall.median;
        out->bound_ms = 1e3 * out->gflop / out->sgemm_gflops;
        out->peak_tensor_bytes = rl_mem_peak() - mem_before;
        out->peak_rss_bytes = rl_rss_peak_bytes();
    }
    ctx_free(&s);
    return st;
}

const char *bench_csv_header(void)
{
    return "method,bases,path,chosen,r,out,in,tokens,layers,threads,params,median_ms,p25_ms,p75_ms,"
           "ci95_lo_ms,ci95_hi_ms,cpu_ms,reps,gflop,gflops,sgemm_gflops,sgemm_fraction,bound_ms,"
           "peak_tensor_bytes,peak_rss_bytes,core";
}

void bench_csv_row(const bench_result *r, char *buf, size_t len)
{
    const bench_config *c = &r->cfg;
    const rl_summary *w = &r->time.wall;
    bool has_bases = c->method == RL_METHOD_RANDLORA;
    snprintf(buf, len,
             "%s,%s,%s,%s,%d,%d,%d,%d,%d,%d,%zu,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%d,%.5f,%.2f,%.2f,%.4f,%.4f,"
             "%zu,%zu,%s\n",
             rl_method_name(c->method), has_bases ? rl_bases_kind_name(c->bases) : "-",
             c->method == RL_METHOD_RANDLORA ? rl_path_name(c->path) : "-", r->chosen,
             c->method == RL_METHOD_FULL ? 0 : c->r, c->d_out, c->d_in, c->tokens, c->layers, c->threads,
             r->params, 1e3 * w->median, 1e3 * w->p25, 1e3 * w->p75, 1e3 * w->ci_lo, 1e3 * w->ci_hi,
             1e3 * r->time.cpu_per_call, w->n, r->gflop, r->gflops, r->sgemm_gflops,
             r->gflops / r->sgemm_gflops, r->bound_ms, r->peak_tensor_bytes, r->peak_rss_bytes,
             rl_blas_corename());
}

/* ---- the command ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: randlora bench --method full|lora|vera|randlora [--r R] [--out O] [--in I]\n"
            "                      [--tokens T] [--bases dense|sparse|very_sparse] [--threads N]\n"
            "                      [--path auto|factorised|materialised] [--layers L] [--alpha A]\n"
            "                      [--min-reps N] [--max-reps N] [--seconds S] [--merge] [--csv]\n"
            "                      [--max-memory BYTES]\n"
            "  Times one training step (forward, backward, AdamW) of one adapted linear layer\n"
            "  (or a stack of L square layers with ReLU), frozen base; with --merge, merging the\n"
            "  adapter into one weight instead. Defaults: randlora r=32,\n"
            "  768x768, 1024 tokens, dense bases, auto path, 1 thread.\n" FLAG_MAX_MEMORY_USAGE);
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

int cmd_bench(int argc, char **argv)
{
    bench_config c = bench_defaults();
    bool csv = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (strcmp(a, "--csv") == 0) { csv = true; continue; }
        if (strcmp(a, "--merge") == 0) { c.merge = true; continue; }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(stdout); return 0; }
        if (!v) { fprintf(stderr, "randlora bench: %s needs a value\n", a); return 2; }
        i++;
        if (strcmp(a, "--method") == 0) ok = named(a, rl_method_parse(v, &c.method));
        else if (strcmp(a, "--bases") == 0) ok = named(a, rl_bases_kind_parse(v, &c.bases));
        else if (strcmp(a, "--path") == 0) ok = named(a, rl_path_parse(v, &c.path));
        else if (strcmp(a, "--r") == 0) ok = flag_int(BENCH_CMD, a, v, 1, 1 << 30, &c.r);
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
        else {
            fprintf(stderr, "randlora bench: unknown flag '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) return 2;
    }
    if (c.opts.max_reps < c.opts.min_reps) c.opts.max_reps = c.opts.min_reps;
    bench_result r;
    rl_status st = bench_budget(&c);
    if (st == RL_OK) st = bench_run(&c, &r);
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
    printf("%s%s%s r=%d %dx%d tokens=%d layers=%d threads=%d path=%s params=%zu\n",
           rl_method_name(c.method), c.method == RL_METHOD_RANDLORA ? "/" : "",
           c.method == RL_METHOD_RANDLORA ? rl_bases_kind_name(c.bases) : "", c.r, c.d_out, c.d_in, c.tokens,
           c.layers, c.threads, r.chosen, r.params);
    printf("  step  median %.3f ms  IQR [%.3f, %.3f]  median 95%% CI [%.3f, %.3f] (%.1f%%)  n=%d  cpu %.3f ms\n",
           1e3 * w->median, 1e3 * w->p25, 1e3 * w->p75, 1e3 * w->ci_lo, 1e3 * w->ci_hi,
           100 * w->ci_coverage, w->n, 1e3 * r.time.cpu_per_call);
    printf("  FLOP model %.4f GFLOP -> %.1f GFLOP/s = %.0f%% of SGEMM %.1f GFLOP/s (bound %.3f ms, %.2fx)\n",
           r.gflop, r.gflops, 100 * r.gflops / r.sgemm_gflops, r.sgemm_gflops, r.bound_ms,
           1e3 * w->median / r.bound_ms);
    printf("  memory: peak tensor bytes %zu (library), peak RSS %zu (process VmHWM)  core %s\n",
           r.peak_tensor_bytes, r.peak_rss_bytes, rl_blas_corename());
    return 0;
}
