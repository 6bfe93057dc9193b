/* sweep_cost.c -- `randlora sweep cost`: what a training step costs.
 *
 * Grids (quick default; --full widens each), one CSV table each under
 * results/cost/ with bench_csv_header()'s columns:
 *   time_vs_r     768x768, 1024 tokens, r in {1..64}: every method; RandLora
 *                 dense also on each fixed path
 *   time_vs_size  r = 32, 1024 tokens, 256², 512², 768², 1024², 3072x768
 *   crossover     RandLora dense r = 32 on both paths and auto, and LoRA,
 *                 768² and 1024², tokens 64..4096: where materialising wins
 *   crossover_dx  the same at 768² for an inner layer (computing dx), where
 *                 auto may mix the routes term by term (rl_layer.h)
 *   stack         4 square 768 layers with ReLU, 512 tokens, r = 32
 *   threads       768², 4096 tokens, r = 32, every method, 1 and 2 threads
 * then slopes.csv: log-log least-squares slope of time against out·in per
 * method (GSL), and plots/out/cost_*.png.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/rl_probe.h"
#include "bench.h"
#include "commands.h"
#include "core/rl_blas.h"
#include "sweep.h"

#define N_TABLES 6
static const char *const tables[N_TABLES] = {"time_vs_r", "time_vs_size", "crossover", "stack", "threads",
                                             "crossover_dx"};

typedef struct {
    int table;
    bench_config c;
} cost_point;

typedef struct {
    cost_point *p;
    int n, cap;
} grid;

static void add(grid *g, int table, bench_config c)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 128;
        cost_point *q = realloc(g->p, (size_t)g->cap * sizeof *q);
        RL_ASSERT(q, "out of memory building the grid");
        g->p = q;
    }
    g->p[g->n++] = (cost_point){table, c};
}

/* Every method at one configuration: full, lora, vera, randlora x bases. */
static void add_methods(grid *g, int table, bench_config c)
{
    static const rl_method ms[3] = {RL_METHOD_FULL, RL_METHOD_LORA, RL_METHOD_VERA};
    for (int m = 0; m < 3; m++) {
        bench_config d = c;
        d.method = ms[m];
        d.path = RL_PATH_AUTO;
        add(g, table, d);
    }
    for (int k = 0; k < 3; k++) {
        bench_config d = c;
        d.method = RL_METHOD_RANDLORA;
        d.bases = (rl_bases_kind)k;
        d.path = RL_PATH_AUTO;
        add(g, table, d);
    }
}

static void build_grid(grid *g, bool full)
{
    static const int rs[7] = {1, 2, 4, 8, 16, 32, 64};
    bench_config base = bench_defaults();
    base.opts.min_seconds = full ? 1.0 : 0.3;
    base.opts.max_reps = full ? 50 : 15;

    /* time vs r */
    int n_tok_r = full ? 3 : 1;
    static const int tok_r[3] = {1024, 256, 4096};
    for (int t = 0; t < n_tok_r; t++)
        for (int i = 0; i < 7; i++) {
            bench_config c = base;
            c.tokens = tok_r[t];
            c.r = rs[i];
            if (i == 0) { /* full fine-tuning has no r: once */
                bench_config f = c;
                f.method = RL_METHOD_FULL;
                add(g, 0, f);
            }
            static const rl_method ms[2] = {RL_METHOD_LORA, RL_METHOD_VERA};
            for (int m = 0; m < 2; m++) {
                bench_config d = c;
                d.method = ms[m];
                add(g, 0, d);
            }
            for (int k = 0; k < 3; k++)
                for (int p = 0; p < (k == 0 ? 3 : 1); p++) {
                    bench_config d = c;
                    d.method = RL_METHOD_RANDLORA;
                    d.bases = (rl_bases_kind)k;
                    d.path = (rl_path)p;
                    add(g, 0, d);
                }
        }
    /* time vs size */
    static const int sizes[7][2] = {{256, 256}, {512, 512}, {768, 768}, {1024, 1024}, {3072, 768}, {2048, 2048}, {4096, 4096}};
    for (int s = 0; s < (full ? 7 : 5); s++) {
        bench_config c = base;
        c.d_out = sizes[s][0];
        c.d_in = sizes[s][1];
        add_methods(g, 1, c);
    }
    /* crossover */
    static const int toks[7] = {64, 128, 256, 512, 1024, 2048, 4096};
    static const int cross_sizes[3] = {768, 1024, 2048};
    for (int s = 0; s < (full ? 3 : 2); s++)
        for (int t = 0; t < 7; t++) {
            bench_config c = base;
            c.d_out = c.d_in = cross_sizes[s];
            c.tokens = toks[t];
            for (int p = 0; p < 3; p++) {
                bench_config d = c;
                d.path = (rl_path)p;
                add(g, 2, d);
            }
            bench_config l = c;
            l.method = RL_METHOD_LORA;
            add(g, 2, l);
        }
    /* crossover of an inner layer: auto may mix the routes */
    for (int t = 0; t < 7; t++)
        for (int p = 0; p < 3; p++) {
            bench_config d = base;
            d.tokens = toks[t];
            d.dx = true;
            d.path = (rl_path)p;
            add(g, 5, d);
        }
    /* stack */
    bench_config st = base;
    st.layers = 4;
    st.tokens = 512;
    add_methods(g, 3, st);
    /* threads */
    for (int th = 1; th <= 2; th++) {
        bench_config c = base;
        c.tokens = 4096;
        c.threads = th;
        add_methods(g, 4, c);
    }
}

static void point_key(const cost_point *p, char *buf, size_t len)
{
    const bench_config *c = &p->c;
    /* numbers zero-padded so that the table, ordered by key, is in numeric order */
    snprintf(buf, len, "table=%s;method=%s;bases=%s;path=%s;r=%03d;out=%05d;in=%05d;tokens=%05d;layers=%d;threads=%02d",
             tables[p->table], rl_method_name(c->method),
             c->method == RL_METHOD_RANDLORA ? rl_bases_kind_name(c->bases) : "-",
             c->method == RL_METHOD_RANDLORA ? rl_path_name(c->path) : "-", c->method == RL_METHOD_FULL ? 0 : c->r,
             c->d_out, c->d_in, c->tokens, c->layers, c->threads);
    if (c->dx) snprintf(buf + strlen(buf), len - strlen(buf), ";dx=1");
}

/* slopes.csv and slopes.gp (labels for the log-log plot) from time_vs_size. */
static rl_status write_slopes(const char *dir)
{
    char path[700];
    snprintf(path, sizeof path, "%s/time_vs_size.csv", dir);
    csv_table t;
    RL_TRY(csv_read(path, &t));
    int cm = csv_col(&t, "method"), cb = csv_col(&t, "bases"), co = csv_col(&t, "out"), ci = csv_col(&t, "in"),
        ct = csv_col(&t, "median_ms");
    char csv[4096], gp[4096];
    int nc = snprintf(csv, sizeof csv, "method,bases,points,slope,intercept,r2\n");
    int ng = snprintf(gp, sizeof gp, "# generated by randlora sweep cost from time_vs_size.csv (GSL least squares)\n");
    static const char *const names[6][2] = {{"full", "-"}, {"lora", "-"}, {"vera", "-"},
                                            {"randlora", "dense"}, {"randlora", "sparse"}, {"randlora", "very_sparse"}};
    int label = 0;
    for (int m = 0; m < 6; m++) {
        double x[16], y[16];
        int n = 0;
        for (int r = 0; r < t.nrow && n < 16; r++)
            if (strcmp(t.rows[r][cm], names[m][0]) == 0 && strcmp(t.rows[r][cb], names[m][1]) == 0) {
                x[n] = atof(t.rows[r][co]) * atof(t.rows[r][ci]);
                y[n] = atof(t.rows[r][ct]);
                n++;
            }
        double slope, icpt, r2;
        if (n < 2 || rl_fit_loglog(x, y, n, &slope, &icpt, &r2) != RL_OK) continue;
        nc += snprintf(csv + nc, sizeof csv - (size_t)nc, "%s,%s,%d,%.4f,%.4f,%.4f\n", names[m][0], names[m][1], n,
                       slope, icpt, r2);
        ng += snprintf(gp + ng, sizeof gp - (size_t)ng,
                       "set label %d \"%s%s%s: slope %.2f (R^2 %.3f)\" at graph 0.03, graph %.2f left font \",9\"\n",
                       label + 1, names[m][0], m >= 3 ? " " : "", m >= 3 ? names[m][1] : "", slope, r2,
                       0.95 - 0.05 * label);
        label++;
    }
    csv_free(&t);
    snprintf(path, sizeof path, "%s/slopes.csv", dir);
    RL_TRY(rl_write_file_atomic(path, csv, (size_t)nc));
    snprintf(path, sizeof path, "%s/slopes.gp", dir);
    return rl_write_file_atomic(path, gp, (size_t)ng);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: randlora sweep cost [--full] [--force] [--shard i/n] [--quiet] [--results DIR]\n"
                 "  Times training steps of full fine-tuning, LoRA, VeRA and RandLora (dense, sparse,\n"
                 "  very_sparse; factorised and materialised) over r, layer size and token count;\n"
                 "  writes results/cost/*.csv, manifest.json and plots/out/cost_*.png.\n");
    sweep_usage_common(out);
}

int sweep_cost(int argc, char **argv)
{
    sweep_opts o;
    sweep_opts_init(&o, "cost");
    int pa = sweep_parse_args(&o, argc, argv, "randlora sweep cost", usage, NULL, NULL);
    if (pa <= 0) return pa < 0 ? 2 : 0;
    grid g = {0};
    build_grid(&g, o.full);
    rl_sweep *sw[N_TABLES] = {0};
    int rc = 0;
    rl_status st;
    for (int t = 0; t < N_TABLES; t++)
        if ((st = rl_sweep_open(&sw[t], o.dir, tables[t], bench_csv_header())) != RL_OK) {
            fprintf(stderr, "randlora sweep cost: %s\n", rl_errmsg());
            rc = sweep_rc(rc, st);
            goto done;
        }
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"grid\": \"%s\", \"points\": %d, \"shard\": \"%d/%d\", \"timing\": \"median of >= 7 steps after 2 warm-up\"}",
             o.full ? "full" : "quick", g.n, o.shard.index, o.shard.count);
    if (sweep_is_root() && (st = rl_manifest_write(o.dir, "cost", argc, argv, cfg, 42)) != RL_OK) {
        fprintf(stderr, "randlora sweep cost: %s\n", rl_errmsg());
        rc = sweep_rc(rc, st);
        goto done;
    }
    long mine = 0;
    for (int i = 0; i < g.n; i++) mine += sweep_mine(&o, i);
    rl_progress prog;
    rl_progress_start(&prog, "sweep cost", mine, o.quiet);
    for (int i = 0; i < g.n; i++) {
        if (!sweep_mine(&o, i)) continue;
        char key[512];
        point_key(&g.p[i], key, sizeof key);
        rl_sweep *s = sw[g.p[i].table];
        if (!o.force && rl_sweep_done(s, key)) {
            rl_progress_step(&prog, key, true);
            continue;
        }
        bench_result r;
        if ((st = bench_run(&g.p[i].c, &r)) != RL_OK) {
            fprintf(stderr, "\nrandlora sweep cost: point %s: %s\n", key, rl_errmsg());
            rc = st == RL_ENOMEM ? sweep_rc(rc, st) : rc > 1 ? rc : 1;
            continue;
        }
        char row[1024];
        bench_csv_row(&r, row, sizeof row);
        if ((st = rl_sweep_put(s, key, row)) != RL_OK) {
            fprintf(stderr, "\nrandlora sweep cost: %s\n", rl_errmsg());
            rc = sweep_rc(rc, st);
            break;
        }
        rl_progress_step(&prog, key, false);
    }
    rl_progress_end(&prog);
    sweep_barrier();
    if (!sweep_is_root()) goto done;
    for (int t = 0; t < N_TABLES; t++) {
        long n;
        if ((st = rl_sweep_finish(sw[t], &n)) != RL_OK) {
            fprintf(stderr, "randlora sweep cost: %s\n", rl_errmsg());
            rc = sweep_rc(rc, st);
        } else if (!o.quiet) {
            fprintf(stderr, "wrote %s (%ld points)\n", rl_sweep_table_path(sw[t]), n);
        }
    }
    if (write_slopes(o.dir) != RL_OK) fprintf(stderr, "randlora sweep cost: slopes: %s\n", rl_errmsg());
    static const char *const scripts[] = {"plots/cost_time_vs_r.gp", "plots/cost_time_vs_size.gp",
                                          "plots/cost_crossover.gp", "plots/cost_memory.gp"};
    if (strcmp(o.dir, "results/cost") == 0) {
        if (sweep_render(scripts, 4, o.quiet)) rc = sweep_rc(rc, RL_EWRITE);
    } else if (!o.quiet) {
        fprintf(stderr, "plots read results/cost/: not rendered for --results %s\n", o.dir);
    }
done:
    for (int t = 0; t < N_TABLES; t++) rl_sweep_free(sw[t]);
    free(g.p);
    return rc;
}
