/* sweep_similarity.c -- `randlora sweep similarity`: are RandLora's hidden
 * representations closer to full fine-tuning's than LoRA's, at the same
 * budget?
 *
 * For every task and every seed s that `sweep finetune` trained, it runs
 * the task-B test set (the first 2,000 examples) through the merged model of
 * each final run (results/finetune/models/) and through the fully fine-tuned
 * model of the same seed, and compares every hidden layer by linear CKA
 * (lib/analysis/rl_cka). A control row does the same for the untouched
 * pretrained model: a method that moves the model less can look "closer" to
 * an under-trained reference, and the control shows how close not moving at
 * all is. The claim is judged on the budget-matched pairs of
 * finetune/pairs.csv only (not best against best): Welch intervals of the
 * per-seed mean CKA (over layers), Holm across the pairs, TOST (margin 0.01)
 * for pairs without a significant difference.
 *
 * Writes results/similarity/cka.csv (task, config, seed, layer, cka),
 * summary.csv (mean and 95% interval over seeds per config and layer),
 * claims.csv, manifest.json and plots/out/similarity.png.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis/rl_cka.h"
#include "analysis/rl_probe.h"
#include "commands.h"
#include "core/rl_tensor.h"
#include "adapt.h"
#include "finetune.h"
#include "protocol.h"
#include "flags.h"
#include "sweep.h"

#define SIM_N 2000          /* test examples through each model */
#define SIM_MARGIN 0.01     /* CKA equivalence margin */
#define SIM_MAX_CFG 128
#define SIM_MAX_SEEDS 64

/* Representations of every hidden layer of the model at `path` on the
 * first n examples of d, into reps (layers, n, dim). */
static rl_status reps_of(const char *path, const rl_dataset *d, int n, float *reps, int *layers, int *dim)
{
    rl_model_config mc = ft_model_config();
    rl_model *m = NULL;
    RL_TRY(rl_model_new(&m, &mc, 1));
    rl_status st = rl_model_load_base(m, path);
    *layers = rl_model_n_repr(m, dim);
    float *logits = rl_alloc_floats((size_t)mc.max_batch * mc.n_classes);
    float *buf = rl_alloc_floats((size_t)mc.max_batch * *dim);
    if (st == RL_OK && (!logits || !buf)) st = rl_fail(RL_ENOMEM, "similarity: no memory");
    for (int s = 0; s < n && st == RL_OK; s += mc.max_batch) {
        int B = n - s < mc.max_batch ? n - s : mc.max_batch;
        st = rl_model_forward(m, d->x + (size_t)s * d->dim, B, logits);
        for (int l = 0; l < *layers && st == RL_OK; l++) {
            rl_model_repr(m, l, buf);
            memcpy(reps + ((size_t)l * n + s) * *dim, buf, (size_t)B * *dim * sizeof(float));
        }
    }
    rl_dealloc(logits);
    rl_dealloc(buf);
    rl_model_free(m);
    return st;
}

typedef struct {
    char method[16], bases[16];
    int r;
    long params;
    int n;                       /* seeds with a value */
    double mean_cka[SIM_MAX_SEEDS];
} sim_cfg;

typedef struct {
    pr_flags pr;
    const char *ftdir;
} sim_flags;

static int sim_flag(void *ctx, int argc, char **argv, int *i)
{
    sim_flags *f = ctx;
    if (!strcmp(argv[*i], "--finetune")) {
        const char *v = flag_value("randlora sweep similarity", argc, argv, i);
        if (!v) return -1;
        f->ftdir = v;
        return 1;
    }
    return strcmp(argv[*i], "--smoke") ? 0 : pr_parse_flag(&f->pr, argc, argv, i);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: randlora sweep similarity [--full | --smoke] [--finetune DIR] [--quiet] [--results DIR]\n"
                 "  Linear CKA between each final model's hidden layers and the fully fine-tuned model's of the\n"
                 "  same seed, on the task-B test set, with the untouched pretrained model as a control; the claim\n"
                 "  compares the budget-matched pairs of DIR/pairs.csv over seeds (Welch, Holm, TOST margin 0.01).\n"
                 "  Needs `randlora sweep finetune` of the same size first (DIR default results/finetune).\n");
}

/* Index of (method, bases, r) in cfg[0..*n), added if new. */
static int cfg_index(sim_cfg *cfg, int *n, const char *method, const char *bases, int r, long params)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp(cfg[i].method, method) && !strcmp(cfg[i].bases, bases) && cfg[i].r == r) return i;
    if (*n >= SIM_MAX_CFG) return -1;
    sim_cfg *c = &cfg[(*n)++];
    memset(c, 0, sizeof *c);
    snprintf(c->method, sizeof c->method, "%s", method);
    snprintf(c->bases, sizeof c->bases, "%s", bases);
    c->r = r;
    c->params = params;
    return (int)(c - cfg);
}

/* CKA of every config and seed of one task; rows into cka, per-seed means into cfg. */
static rl_status task_cka(const char *ftdir, const char *sizename, int task, const csv_table *runs, sim_cfg *cfg,
                          int *ncfg, pr_text *cka, ft_size size)
{
    const char *tn = ft_task_names[task];
    int cm = csv_col(runs, "method"), cb = csv_col(runs, "bases"), cr = csv_col(runs, "r"), cs = csv_col(runs, "seed"),
        ct = csv_col(runs, "task"), cp = csv_col(runs, "params");
    int max_seed = -1;
    for (int i = 0; i < runs->nrow; i++)
        if (!strcmp(runs->rows[i][ct], tn) && !strcmp(runs->rows[i][cm], "full") && atoi(runs->rows[i][cs]) > max_seed)
            max_seed = atoi(runs->rows[i][cs]);
    if (max_seed < 0) return RL_OK; /* no full fine-tuning for this task */
    ft_data d;
    RL_TRY(ft_data_load(&d, task, size));
    const int n = d.test.n < SIM_N ? d.test.n : SIM_N, dim_max = 256, lay_max = 4;
    float *ref = rl_alloc_floats((size_t)lay_max * n * dim_max), *cur = rl_alloc_floats((size_t)lay_max * n * dim_max);
    float *work = rl_alloc_floats((size_t)2 * n * dim_max + (size_t)dim_max * dim_max);
    rl_status st = ref && cur && work ? RL_OK : rl_fail(RL_ENOMEM, "similarity: no memory");
    char path[800], base[800];
    snprintf(base, sizeof base, "%s/models/base_%s.safetensors", ftdir, sizename);
    for (int seed = 0; seed <= max_seed && st == RL_OK; seed++) {
        int L, D;
        ad_model_path(path, sizeof path, ftdir, tn, "full", "-", 0, seed);
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        st = reps_of(path, &d.test, n, ref, &L, &D);
        /* the control first, then every final run of this seed */
        for (int i = -1; i < runs->nrow && st == RL_OK; i++) {
            const char *method = "pretrained", *bases = "-";
            int r = 0;
            long params = 0;
            if (i >= 0) {
                char **row = runs->rows[i];
                if (strcmp(row[ct], tn) || atoi(row[cs]) != seed || !strcmp(row[cm], "full")) continue;
                method = row[cm];
                bases = row[cb];
                r = atoi(row[cr]);
                params = atol(row[cp]);
                ad_model_path(path, sizeof path, ftdir, tn, method, bases, r, seed);
                if (stat(path, &sb) != 0) {
                    st = rl_fail(RL_ENOTFOUND, "similarity: %s is in runs.csv but its model %s is missing "
                                                "(rerun `sweep finetune --force`)", tn, path);
                    break;
                }
            }
            st = reps_of(i < 0 ? base : path, &d.test, n, cur, &L, &D);
            int ci = cfg_index(cfg, ncfg, method, bases, r, params);
            double sum = 0;
            for (int l = 0; l < L && st == RL_OK; l++) {
                double v;
                st = rl_cka_linear(cur + (size_t)l * n * D, D, ref + (size_t)l * n * D, D, n, work, &v);
                sum += v;
                if (st == RL_OK) st = pr_text_add(cka, "%s,%s,%s,%d,%ld,%d,%d,%.5f\n", tn, method, bases, r, params, seed, l + 1, v);
            }
            if (st == RL_OK && ci >= 0 && cfg[ci].n < SIM_MAX_SEEDS) cfg[ci].mean_cka[cfg[ci].n++] = sum / L;
        }
    }
    rl_dealloc(ref);
    rl_dealloc(cur);
    rl_dealloc(work);
    ft_data_free(&d);
    return st;
}

/* The claim rows of one task from the matched LoRA / VeRA pairs of pairs.csv. */
static void task_claims(const char *tn, const csv_table *pairs, sim_cfg *cfg, int ncfg, pr_text *cl, pr_text *pr,
                        ft_size size)
{
    const sim_cfg *ctrl = NULL;
    for (int i = 0; i < ncfg; i++)
        if (!strcmp(cfg[i].method, "pretrained")) ctrl = &cfg[i];
    static const char *const others[2] = {"lora", "vera"};
    for (int k = 0; k < 2; k++) {
        pr_cmp c[64], *cp[64];
        char list[600] = "";
        int n = 0;
        const sim_cfg *A[64], *B[64];
        for (int i = 0; i < pairs->nrow && n < 64; i++) {
            char **row = pairs->rows[i];
            if (strcmp(row[csv_col(pairs, "task")], tn) || strcmp(row[csv_col(pairs, "b_method")], others[k]) ||
                strcmp(row[csv_col(pairs, "a_method")], "randlora") || atoi(row[csv_col(pairs, "matched")]) != 1)
                continue;
            const sim_cfg *a = NULL, *b = NULL;
            for (int j = 0; j < ncfg; j++) {
                if (!strcmp(cfg[j].method, "randlora") && !strcmp(cfg[j].bases, row[csv_col(pairs, "a_bases")]) &&
                    cfg[j].r == atoi(row[csv_col(pairs, "a_r")]))
                    a = &cfg[j];
                if (!strcmp(cfg[j].method, others[k]) && cfg[j].r == atoi(row[csv_col(pairs, "b_r")])) b = &cfg[j];
            }
            if (!a || !b || !pr_compare(&c[n], a->mean_cka, a->n, b->mean_cka, b->n, SIM_MARGIN)) continue;
            A[n] = a;
            B[n] = b;
            cp[n] = &c[n];
            n++;
        }
        if (!n) continue;
        pr_decide(cp, n);
        for (int i = 0; i < n; i++) {
            char one[200];
            snprintf(one, sizeof one, "%sr=%d %.4f vs r=%d %.4f: %+.4f [%+.4f; %+.4f] %s", i ? "; " : "", A[i]->r,
                     c[i].w.mean_a, B[i]->r, c[i].w.mean_b, c[i].w.diff, c[i].w.lo, c[i].w.hi, c[i].verdict);
            if (strlen(list) + strlen(one) < sizeof list) strcat(list, one);
            pr_text_add(pr, "%s,%s,%s,%d,%ld,%s,%d,%ld,%d,%d,%.4f,%.4f,%.4f,%.4f,%.4f,%.4g,%.4g,%s\n", tn, "randlora",
                        A[i]->bases, A[i]->r, A[i]->params, others[k], B[i]->r, B[i]->params, A[i]->n, B[i]->n,
                        c[i].w.mean_a, c[i].w.mean_b, c[i].w.diff, c[i].w.lo, c[i].w.hi, c[i].w.p, c[i].p_holm,
                        c[i].verdict);
        }
        char counts[200], m[1200], ctl[160] = "";
        const char *v = pr_family_verdict(cp, n, counts, sizeof counts);
        if (ctrl && ctrl->n > 1) {
            double mean, half;
            rl_mean_ci95(ctrl->mean_cka, ctrl->n, &mean, &half);
            snprintf(ctl, sizeof ctl, "; control (untouched pretrained model): %.4f ± %.4f", mean, half);
        }
        snprintf(m, sizeof m, "mean CKA over hidden layers with full fine-tuning of the same seed, RandLora - %s: %s (%s)%s",
                 k ? "VeRA" : "LoRA", counts, list, ctl);
        char claim[120];
        snprintf(claim, sizeof claim, "RandLora activations closer to full fine-tuning than %s's at equal parameters",
                 k ? "VeRA" : "LoRA");
        pr_claim_row(cl, tn, claim, "cka_claim", m, v,
                    "budget-matched pairs of finetune/pairs.csv; Welch 95% interval over seeds; Holm across pairs; "
                    "TOST margin 0.01 otherwise",
                    ft_size_names[size]);
    }
}

int sweep_similarity(int argc, char **argv)
{
    sweep_opts o;
    sweep_opts_init(&o, "similarity");
    sim_flags fl = {.pr = {.cmd = "randlora sweep similarity"}, .ftdir = "results/finetune"};
    int pa = sweep_parse_args(&o, argc, argv, fl.pr.cmd, usage, sim_flag, &fl);
    if (pa <= 0) return pa < 0 ? 2 : 0;
    const int sz = pr_flags_size(&fl.pr, &o);
    if (sz < 0) return 2;
    const ft_size size = (ft_size)sz;
    if (!sweep_is_root()) return 0; /* not a grid: rank 0 alone computes it */
    /* its manifest.json and claims.csv would replace the fine-tuning run's */
    struct stat rs, fs;
    if (stat(o.dir, &rs) == 0 && stat(fl.ftdir, &fs) == 0 && rs.st_dev == fs.st_dev && rs.st_ino == fs.st_ino) {
        fprintf(stderr, "randlora sweep similarity: --results %s is the fine-tuning directory it reads (%s)\n", o.dir,
                fl.ftdir);
        return 2;
    }
    char path[700];
    csv_table runs, pairs;
    snprintf(path, sizeof path, "%s/runs.csv", fl.ftdir);
    if (csv_read(path, &runs) != RL_OK) {
        fprintf(stderr, "randlora sweep similarity: %s: run `randlora sweep finetune` first\n", rl_errmsg());
        return 2;
    }
    snprintf(path, sizeof path, "%s/pairs.csv", fl.ftdir);
    if (csv_read(path, &pairs) != RL_OK) {
        fprintf(stderr, "randlora sweep similarity: %s: run `randlora sweep finetune` to the end first\n", rl_errmsg());
        csv_free(&runs);
        return 2;
    }
    char cfgjson[300];
    snprintf(cfgjson, sizeof cfgjson, "{\"finetune\": \"%s\", \"size\": \"%s\", \"examples\": %d, \"margin\": %g}",
             fl.ftdir, ft_size_names[size], SIM_N, SIM_MARGIN);
    int rc = 0;
    rl_status ost;
    if ((ost = rl_mkdir_p(o.dir)) != RL_OK || (ost = rl_manifest_write(o.dir, "similarity", argc, argv, cfgjson, 0)) != RL_OK) {
        fprintf(stderr, "randlora sweep similarity: %s\n", rl_errmsg());
        rc = cmd_exit_code(ost);
    }
    pr_text cka = {0}, sum = {0}, cl = {0}, pr = {0};
    pr_text_add(&cka, "task,method,bases,r,params,seed,layer,cka\n");
    pr_text_add(&sum, "task,method,bases,r,params,seeds,cka_mean,cka_ci95\n");
    pr_text_add(&cl, PR_CLAIM_HEADER);
    pr_text_add(&pr, "task,a_method,a_bases,a_r,a_params,b_method,b_r,b_params,a_seeds,b_seeds,a_cka,b_cka,diff,ci_lo,"
                     "ci_hi,p,p_holm,verdict\n");
    static sim_cfg cfg[SIM_MAX_CFG];
    for (int task = 0; task < FT_TASKS && rc == 0; task++) {
        int ncfg = 0;
        rl_status st = task_cka(fl.ftdir, ft_size_names[size], task, &runs, cfg, &ncfg, &cka, size);
        if (st != RL_OK) {
            fprintf(stderr, "randlora sweep similarity: %s\n", rl_errmsg());
            rc = sweep_rc(rc, st);
            break;
        }
        for (int i = 0; i < ncfg; i++) {
            double mean, half;
            if (rl_mean_ci95(cfg[i].mean_cka, cfg[i].n, &mean, &half) == RL_OK)
                pr_text_add(&sum, "%s,%s,%s,%d,%ld,%d,%.4f,%.4f\n", ft_task_names[task], cfg[i].method, cfg[i].bases,
                            cfg[i].r, cfg[i].params, cfg[i].n, mean, half);
        }
        task_claims(ft_task_names[task], &pairs, cfg, ncfg, &cl, &pr, size);
    }
    static const char *const names[4] = {"cka.csv", "summary.csv", "claims.csv", "pairs.csv"};
    pr_text *texts[4] = {&cka, &sum, &cl, &pr};
    for (int k = 0; k < 4 && rc == 0; k++) {
        snprintf(path, sizeof path, "%s/%s", o.dir, names[k]);
        if ((ost = rl_write_file_atomic(path, texts[k]->buf, texts[k]->len)) != RL_OK) {
            fprintf(stderr, "randlora sweep similarity: %s\n", rl_errmsg());
            rc = sweep_rc(rc, ost);
        }
    }
    if (rc == 0 && !o.quiet) fprintf(stderr, "wrote %s/{cka,summary,claims,pairs}.csv\n", o.dir);
    if (rc == 0 && strcmp(o.dir, "results/similarity") == 0) {
        static const char *const scripts[] = {"plots/similarity.gp"};
        if (sweep_render(scripts, 1, o.quiet)) rc = sweep_rc(rc, RL_EWRITE);
    }
    for (int k = 0; k < 4; k++) pr_text_free(texts[k]);
    csv_free(&runs);
    csv_free(&pairs);
    return rc;
}
