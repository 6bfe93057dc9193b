/* sweep_expressivity.c -- `randlora sweep expressivity`: with the data taken
 * out, how well can each method represent a required update of known spectrum
 * at a given number of trainable parameters?
 *
 * Target ΔW* = U diag(s) Vᵀ (datasets/rl_teacher, D x D) with a flat, a
 * power-law (s_k = 1/(k+1)) or a rank-8 spectrum. Each adapter starts at
 * PEFT's init (ΔW = 0) and minimises  L = ||ΔW - ΔW*||_F² / ||ΔW*||_F²  with
 * AdamW (cosine schedule), through its own forward / backward with x = I
 * (so y = ΔWᵀ and dy = 2(y - ΔW*ᵀ)/||ΔW*||²); adapters as in `sweep teacher`
 * (target_fit.h: LoRA alpha 2r, RandLora 20r, seeds from pr_seeds_of). Learning rates {3e-3, 1e-2,
 * 3e-2} are all run; the summary keeps, per configuration, the one with the
 * lowest mean final error (the same tuning for every method).
 * Reference: for LoRA at rank r the best possible error is Eckart-Young's
 * sqrt(Σ_{k>=r} s_k²) / ||s||, printed beside the measured one.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/rl_adapter.h"
#include "analysis/rl_probe.h"
#include "commands.h"
#include "core/rl_tensor.h"
#include "datasets/rl_data.h"
#include "sweep.h"
#include "target_fit.h"
#include "train/rl_optim.h"

typedef struct {
    int spec;            /* 0 flat, 1 power, 2 rank-8 */
    rl_method method;
    rl_bases_kind bases;
    int r, seed;
    double lr;
} expr_point;

static const char *const spec_names[3] = {"flat", "power", "rank8"};

static rl_status make_target(rl_teacher *t, int D, int spec, int seed)
{
    rl_teacher_opts o = {.d_in = D, .d_out = D, .seed = 1000u + (uint64_t)seed};
    if (spec == 0) o.spectrum = RL_SPEC_FLAT;
    else if (spec == 1) {
        o.spectrum = RL_SPEC_POWER;
        o.alpha = 1.0;
    } else {
        o.spectrum = RL_SPEC_RANK_K;
        o.rank_k = 8;
    }
    return rl_teacher_new(t, &o);
}

/* Train one adapter to fit t->dw; final relative error in *err. */
static rl_status fit(const expr_point *p, const rl_teacher *t, int D, int steps, double *err, size_t *params)
{
    tf_adapter ta;
    rl_adamw *opt = NULL;
    float *x = NULL, *y = NULL, *tgt = NULL;
    rl_status st = tf_adapter_new(&ta, p->method, p->bases, p->r, D, D, p->seed, D);
    rl_adapter *a = ta.a;
    if (st == RL_OK) st = rl_adamw_new(&opt, rl_adapter_param_count(a), (float)p->lr, 0.0f);
    if (st == RL_OK) {
        x = rl_alloc_floats((size_t)D * D);
        y = rl_alloc_floats((size_t)D * D);
        tgt = rl_alloc_floats((size_t)D * D);
        if (!x || !y || !tgt) st = rl_fail(RL_ENOMEM, "expressivity: no memory");
    }
    if (st == RL_OK) {
        *params = rl_adapter_param_count(a);
        double nrm = 0;
        for (int i = 0; i < D; i++) x[(size_t)i * D + i] = 1.0f;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                tgt[(size_t)j * D + i] = t->dw[(size_t)i * D + j]; /* ΔW*ᵀ */
                nrm += (double)t->dw[(size_t)i * D + j] * t->dw[(size_t)i * D + j];
            }
        const float gscale = (float)(2.0 / nrm);
        for (int s = 0; s <= steps && st == RL_OK; s++) {
            memset(y, 0, (size_t)D * D * sizeof(float));
            st = rl_adapter_forward(a, x, D, y);
            double L = 0;
            for (size_t e = 0; e < (size_t)D * D; e++) {
                double d = (double)y[e] - tgt[e];
                L += d * d;
                y[e] = gscale * (float)d; /* y becomes dy */
            }
            *err = sqrt(L / nrm);
            if (s == steps || !isfinite(L)) break;
            rl_adapter_zero_grad(a);
            st = rl_adapter_backward(a, x, y, D, NULL);
            /* cosine decay to 0 over the run, 5% warm-up */
            long warm = steps / 20;
            opt->lr = (float)(s < warm ? p->lr * (s + 1) / warm
                                       : p->lr * 0.5 * (1 + cos(3.14159265358979 * (s - warm) / (steps - warm))));
            rl_adamw_step(opt, rl_adapter_span(a));
        }
    }
    rl_dealloc(x);
    rl_dealloc(y);
    rl_dealloc(tgt);
    rl_adamw_free(opt);
    tf_adapter_free(&ta);
    return st;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: randlora sweep expressivity [--full] [--force] [--shard i/n] [--quiet] [--results DIR]\n"
                 "  Fits a target update of known spectrum (flat, 1/k, rank 8) with each method over a range\n"
                 "  of parameter budgets; writes results/expressivity/{runs,summary}.csv and a plot.\n"
                 "  Quick: 128x128, 2 seeds, 600 steps. --full: 256x256, 3 seeds, 2000 steps.\n");
    sweep_usage_common(out);
}

int sweep_expressivity(int argc, char **argv)
{
    sweep_opts o;
    sweep_opts_init(&o, "expressivity");
    int pa = sweep_parse_args(&o, argc, argv, "randlora sweep expressivity", usage, NULL, NULL);
    if (pa <= 0) return pa < 0 ? 2 : 0;
    const int D = o.full ? 256 : 128, seeds = o.full ? 3 : 2, steps = o.full ? 2000 : 600;
    static const double lrs[3] = {3e-3, 1e-2, 3e-2};
    /* grid */
    expr_point *g = NULL;
    int n = 0, cap = 0;
#define PUSH(...)                                                                                          \
    do {                                                                                                   \
        if (n == cap) {                                                                                    \
            cap = cap ? 2 * cap : 256;                                                                     \
            expr_point *q = realloc(g, (size_t)cap * sizeof *g);                                           \
            RL_ASSERT(q, "no memory");                                                                     \
            g = q;                                                                                         \
        }                                                                                                  \
        g[n++] = (expr_point){__VA_ARGS__};                                                                \
    } while (0)
    for (int sp = 0; sp < 3; sp++)
        for (int sd = 0; sd < seeds; sd++)
            for (int l = 0; l < 3; l++) {
                for (int r = 1; r <= D / 2; r *= 2) PUSH(sp, RL_METHOD_LORA, RL_BASES_DENSE, r, sd, lrs[l]);
                for (int r = 1; r <= D; r *= 2) PUSH(sp, RL_METHOD_RANDLORA, RL_BASES_DENSE, r, sd, lrs[l]);
                for (int r = 2; r <= D / 2; r *= 4) {
                    PUSH(sp, RL_METHOD_RANDLORA, RL_BASES_SPARSE, r, sd, lrs[l]);
                    PUSH(sp, RL_METHOD_RANDLORA, RL_BASES_VERY_SPARSE, r, sd, lrs[l]);
                }
                for (int r = 16; r <= 4 * D; r *= 4) PUSH(sp, RL_METHOD_VERA, RL_BASES_DENSE, r, sd, lrs[l]);
                PUSH(sp, RL_METHOD_FULL, RL_BASES_DENSE, 0, sd, lrs[l]);
            }
#undef PUSH
    static const char *header = "spectrum,method,bases,r,params,lr,seed,steps,size,rel_error,lora_optimum";
    rl_sweep *sw = NULL;
    int rc = 0;
    rl_status st;
    if ((st = rl_sweep_open(&sw, o.dir, "runs", header)) != RL_OK) {
        fprintf(stderr, "randlora sweep expressivity: %s\n", rl_errmsg());
        free(g);
        return cmd_exit_code(st);
    }
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"size\": %d, \"seeds\": %d, \"steps\": %d, \"lrs\": [0.003, 0.01, 0.03], \"grid\": \"%s\"}",
             D, seeds, steps, o.full ? "full" : "quick");
    if (sweep_is_root() && (st = rl_manifest_write(o.dir, "expressivity", argc, argv, cfg, 1000)) != RL_OK) {
        fprintf(stderr, "randlora sweep expressivity: %s\n", rl_errmsg());
        rc = sweep_rc(rc, st);
        goto done;
    }
    long mine = 0;
    for (int i = 0; i < n; i++) mine += sweep_mine(&o, i);
    rl_progress pr;
    rl_progress_start(&pr, "sweep expressivity", mine, o.quiet);
    rl_teacher t = {0};
    int t_spec = -1, t_seed = -1;
    for (int i = 0; i < n && rc == 0; i++) {
        if (!sweep_mine(&o, i)) continue;
        const expr_point *p = &g[i];
        char key[256];
        snprintf(key, sizeof key, "spec=%s;method=%s;bases=%s;r=%04d;seed=%d;lr=%g;steps=%d;size=%d",
                 spec_names[p->spec], rl_method_name(p->method),
                 p->method == RL_METHOD_RANDLORA ? rl_bases_kind_name(p->bases) : "-", p->r, p->seed, p->lr, steps, D);
        if (!o.force && rl_sweep_done(sw, key)) {
            rl_progress_step(&pr, key, true);
            continue;
        }
        if (p->spec != t_spec || p->seed != t_seed) {
            rl_teacher_free(&t);
            if (make_target(&t, D, p->spec, p->seed) != RL_OK) {
                fprintf(stderr, "\nrandlora sweep expressivity: %s\n", rl_errmsg());
                rc = 1;
                break;
            }
            t_spec = p->spec;
            t_seed = p->seed;
        }
        double err = NAN, opt = NAN;
        size_t params = 0;
        if (fit(p, &t, D, steps, &err, &params) != RL_OK) {
            fprintf(stderr, "\nrandlora sweep expressivity: %s: %s\n", key, rl_errmsg());
            rc = 1;
            break;
        }
        if (p->method == RL_METHOD_LORA) opt = tf_eckart_young(t.s, t.r, p->r);
        char row[512];
        snprintf(row, sizeof row, "%s,%s,%s,%d,%zu,%g,%d,%d,%d,%.6g,%.6g\n", spec_names[p->spec],
                 rl_method_name(p->method), p->method == RL_METHOD_RANDLORA ? rl_bases_kind_name(p->bases) : "-",
                 p->r, params, p->lr, p->seed, steps, D, err, opt);
        if ((st = rl_sweep_put(sw, key, row)) != RL_OK) {
            fprintf(stderr, "\nrandlora sweep expressivity: %s\n", rl_errmsg());
            rc = sweep_rc(rc, st);
        }
        rl_progress_step(&pr, key, false);
    }
    rl_teacher_free(&t);
    rl_progress_end(&pr);
    sweep_barrier();
    if (!sweep_is_root()) goto done;
    long np;
    if ((st = rl_sweep_finish(sw, &np)) != RL_OK) {
        fprintf(stderr, "randlora sweep expressivity: %s\n", rl_errmsg());
        rc = sweep_rc(rc, st);
        goto done;
    }
    /* summary: per (spectrum, method, bases, r): best lr by mean error, mean and 95% CI over seeds */
    {
        csv_table tb;
        char path[700];
        snprintf(path, sizeof path, "%s/runs.csv", o.dir);
        if ((st = csv_read(path, &tb)) != RL_OK) {
            fprintf(stderr, "randlora sweep expressivity: %s\n", rl_errmsg());
            rc = sweep_rc(rc, st);
            goto done;
        }
        int cs = csv_col(&tb, "spectrum"), cm = csv_col(&tb, "method"), cb = csv_col(&tb, "bases"), cr = csv_col(&tb, "r"),
            cp = csv_col(&tb, "params"), cl = csv_col(&tb, "lr"), ce = csv_col(&tb, "rel_error"),
            co = csv_col(&tb, "lora_optimum");
        size_t cap2 = 1 << 16, len = 0;
        char *out = malloc(cap2);
        len += (size_t)snprintf(out, cap2, "spectrum,method,bases,r,params,best_lr,seeds,rel_error_mean,rel_error_ci95,lora_optimum\n");
        char *done_mark = calloc((size_t)tb.nrow, 1);
        for (int i = 0; i < tb.nrow; i++) {
            if (done_mark[i]) continue;
            double best_mean = INFINITY, best_half = 0, best_lr = 0;
            int best_n = 0;
            for (int l = 0; l < 3; l++) {
                double v[16];
                int k = 0;
                for (int j = i; j < tb.nrow; j++)
                    if (!strcmp(tb.rows[j][cs], tb.rows[i][cs]) && !strcmp(tb.rows[j][cm], tb.rows[i][cm]) &&
                        !strcmp(tb.rows[j][cb], tb.rows[i][cb]) && !strcmp(tb.rows[j][cr], tb.rows[i][cr])) {
                        done_mark[j] = 1;
                        if (fabs(atof(tb.rows[j][cl]) - lrs[l]) < 1e-12 && k < 16) v[k++] = atof(tb.rows[j][ce]);
                    }
                double mean, half;
                if (k && rl_mean_ci95(v, k, &mean, &half) == RL_OK && mean < best_mean) {
                    best_mean = mean;
                    best_half = half;
                    best_lr = lrs[l];
                    best_n = k;
                }
            }
            if (best_n && len + 256 < cap2)
                len += (size_t)snprintf(out + len, cap2 - len, "%s,%s,%s,%s,%s,%g,%d,%.6g,%.6g,%s\n", tb.rows[i][cs],
                                        tb.rows[i][cm], tb.rows[i][cb], tb.rows[i][cr], tb.rows[i][cp], best_lr, best_n,
                                        best_mean, best_half, tb.rows[i][co]);
        }
        snprintf(path, sizeof path, "%s/summary.csv", o.dir);
        if ((st = rl_write_file_atomic(path, out, len)) != RL_OK) {
            fprintf(stderr, "randlora sweep expressivity: %s\n", rl_errmsg());
            rc = sweep_rc(rc, st);
        } else if (!o.quiet) {
            fprintf(stderr, "wrote %s/runs.csv (%ld runs) and %s\n", o.dir, np, path);
        }
        free(done_mark);
        free(out);
        csv_free(&tb);
    }
    if (strcmp(o.dir, "results/expressivity") == 0) {
        static const char *const scripts[] = {"plots/expressivity.gp"};
        if (sweep_render(scripts, 1, o.quiet)) rc = sweep_rc(rc, RL_EWRITE);
    }
done:
    rl_sweep_free(sw);
    free(g);
    return rc;
}
