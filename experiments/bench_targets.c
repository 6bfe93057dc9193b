/* bench_targets.c -- `randlora bench --targets DIR`: the performance targets
 * of issue 13, computed from the rounds `make bench` wrote (experiments/bench.sh).
 *
 * Inputs (DIR/):
 *   machine.csv           `bench --machine --csv` at 1 and 2 threads, once per round
 *                         (a round column; the SGEMM target takes the median per thread count)
 *   compare_c.csv         round,kind + bench_csv_header(): this tool, every round
 *   compare_pytorch.csv   round + peft_bench.py's header: the PyTorch reference
 *                         (impl = peft: PEFT's own layers; transcription: the
 *                         fallback, not PEFT), absent without python3-torch
 *   compare_scaling.csv   round,kind + bench_csv_header(), kind "scale": the 4-layer
 *                         stack at 1 thread and at 2, taking turns (two rows a round);
 *                         when absent, the stack rows of compare_c.csv serve
 *   compare_ratio.csv     the same columns, kind "ratio": C's RandLora layer and C's
 *                         LoRA layer at 4096 tokens, taking turns (two rows a round);
 *                         when absent (runs before it), the layer rows of compare_c.csv
 * A configuration is (kind, method, tokens, dx, threads); each side's time
 * is the median over rounds of the per-round medians, and the speedup the
 * geometric mean of the per-round ratios (the two sides of a comparison took
 * turns within a round: rounds_t).
 * Outputs: DIR/compare.csv (one row per configuration, both sides and the
 * speedup) and DIR/targets.csv (target, condition, figure, threshold,
 * verdict, rounds, ci95_lo, ci95_hi, decided, detail: the verdict on the
 * figure, the 95% interval of the per-round figures and whether it decides
 * the verdict, see target()), written atomically; the table is printed too.
 * A target against PEFT is "not measured" when only the transcription ran.
 * With DIR/runs/ (the rounds of every `make bench`, kept by bench.sh), each
 * kept run is analysed again and DIR/targets_runs.csv puts their verdicts
 * side by side (runs_side_by_side).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#include "analysis/rl_probe.h"
#include "bench.h"
#include "io/rl_results.h"
#include "sweep.h"

typedef struct {
    char kind[8], method[12];
    int tokens, dx, threads;
} cfg_key;

static bool row_is(const csv_table *t, int r, const cfg_key *k)
{
    int ck = csv_col(t, "kind"), cm = csv_col(t, "method"), ct = csv_col(t, "tokens"), cd = csv_col(t, "dx"),
        cth = csv_col(t, "threads");
    if (ck < 0 || cm < 0 || ct < 0 || cd < 0 || cth < 0) return false;
    char **f = t->rows[r];
    return !strcmp(f[ck], k->kind) && !strcmp(f[cm], k->method) && atoi(f[ct]) == k->tokens &&
           atoi(f[cd]) == k->dx && atoi(f[cth]) == k->threads;
}

/* A target's figure round by round. Within a round the two sides of a
 * comparison took turns (bench.sh), so the round's own ratio is the
 * like-for-like one: drift between rounds cancels in it, not in a ratio of
 * medians taken over different rounds. The figure is the geometric mean of
 * the per-round figures (gm), and its 95% interval a t interval (n - 1
 * degrees of freedom) on their logarithms (rl_mean_ci95), exponentiated
 * back; lo, hi are NAN with fewer than 2 rounds. */
typedef struct {
    double v[64];
    int n;
    rl_summary s;
    double gm, lo, hi;
} rounds_t;

static bool rounds_finish(rounds_t *r)
{
    r->gm = r->lo = r->hi = NAN;
    if (r->n < 1 || rl_stats_summarise(r->v, r->n, &r->s) != RL_OK) return false;
    double lg[64], m = 0, h;
    for (int i = 0; i < r->n; i++) m += (lg[i] = log(r->v[i])) / r->n;
    r->gm = exp(m);
    if (r->n > 1 && rl_mean_ci95(lg, r->n, &m, &h) == RL_OK) r->lo = exp(m - h), r->hi = exp(m + h);
    return true;
}

/* The figure of a target: its rounds' geometric mean, or, where no round
 * gave one, the figure from medians over rounds (fallback). */
static double paired_figure(const rounds_t *r, double fallback) { return r->n > 0 ? r->gm : fallback; }

/* Which rows a pairing takes: match(t, r, key). */
typedef bool (*row_match)(const csv_table *t, int r, const void *key);
/* a configuration's rows (key: cfg_key) */
static bool key_match(const csv_table *t, int r, const void *key) { return row_is(t, r, key); }
/* machine.csv's rows at a thread count (key: int) */
static bool threads_match(const csv_table *t, int r, const void *key)
{
    int c = csv_col(t, "threads");
    return c >= 0 && atoi(t->rows[r][c]) == *(const int *)key;
}

/* The rows of a and of b (as match takes them) that ran in the same round
 * (a and b may be the same row): row indices into ia[], ib[] (at most max),
 * their count returned; 0 when no round ran both or a column is missing. */
static int paired_rows(const csv_table *ta, row_match match, const void *a, const csv_table *tb, const void *b,
                       int *ia, int *ib, int max)
{
    int cra = csv_col(ta, "round"), crb = csv_col(tb, "round"), n = 0;
    if (!ta->rows || !tb->rows || cra < 0 || crb < 0) return 0;
    for (int i = 0; i < ta->nrow && n < max; i++) {
        if (!match(ta, i, a)) continue;
        for (int j = 0; j < tb->nrow; j++)
            if (match(tb, j, b) && !strcmp(ta->rows[i][cra], tb->rows[j][crb])) {
                ia[n] = i, ib[n++] = j;
                break;
            }
    }
    return n;
}

/* The paired ratio of column col_a of a's rows over column col_b of b's,
 * round by round (rounds that ran both, with both values positive), into
 * *out; false when no round gave one. */
static bool paired_ratio_by(const csv_table *ta, row_match match, const void *a, const char *col_a,
                            const csv_table *tb, const void *b, const char *col_b, rounds_t *out)
{
    int ca = csv_col(ta, col_a), cb = csv_col(tb, col_b), ia[64], ib[64];
    out->n = 0;
    if (ca < 0 || cb < 0) return false;
    const int n = paired_rows(ta, match, a, tb, b, ia, ib, 64);
    for (int i = 0; i < n; i++) {
        double x = atof(ta->rows[ia[i]][ca]), y = atof(tb->rows[ib[i]][cb]);
        if (x > 0 && y > 0) out->v[out->n++] = x / y;
    }
    return rounds_finish(out);
}

/* The same for two configurations. */
static bool paired_ratio(const csv_table *ta, const cfg_key *a, const char *col_a, const csv_table *tb,
                         const cfg_key *b, const char *col_b, rounds_t *out)
{
    return paired_ratio_by(ta, key_match, a, col_a, tb, b, col_b, out);
}

/* Median over the matching rows of a numeric column (NAN if none); *n rows. */
static double med(const csv_table *t, const cfg_key *k, const char *col, int *n)
{
    int c = csv_col(t, col), m = 0;
    if (n) *n = 0;
    if (!t->rows || c < 0) return NAN;
    double *v = malloc((size_t)(t->nrow ? t->nrow : 1) * sizeof *v);
    if (!v) return NAN;
    for (int r = 0; r < t->nrow; r++)
        if (row_is(t, r, k)) {
            char *end;
            double x = strtod(t->rows[r][c], &end);
            if (end != t->rows[r][c] && !isnan(x)) v[m++] = x;
        }
    rl_summary s;
    double res = m > 0 && rl_stats_summarise(v, m, &s) == RL_OK ? s.median : NAN;
    free(v);
    if (n) *n = m;
    return res;
}

static double maxcol(const csv_table *t, const cfg_key *k, const char *col)
{
    int c = csv_col(t, col);
    double mx = NAN;
    for (int r = 0; c >= 0 && r < t->nrow; r++)
        if (row_is(t, r, k)) {
            double x = atof(t->rows[r][c]);
            if (isnan(mx) || x > mx) mx = x;
        }
    return mx;
}

static const char *first_cell(const csv_table *t, const cfg_key *k, const char *col)
{
    int c = csv_col(t, col);
    for (int r = 0; c >= 0 && r < t->nrow; r++)
        if (row_is(t, r, k)) return t->rows[r][c];
    return "";
}

typedef struct {
    cfg_key k;
    int c_n, ref_n;
    double c_ms, ref_ms, speedup, bound_ms, first_ms, inner_ms, gflop, c_rss, c_tensor, ref_rss, foreign;
    rounds_t sp; /* PyTorch / C round by round; speedup = its geometric mean */
    char chosen[64], ref_impl[16], core[24], ref_version[48];
} cmp_row;

typedef struct {
    cmp_row *r;
    int n;
    const csv_table *c, *py; /* the rounds behind the rows (py: NULL without PyTorch) */
} cmp_set;

static cmp_row *find(cmp_set *s, const char *kind, const char *method, int tokens, int dx, int threads)
{
    for (int i = 0; i < s->n; i++) {
        cfg_key *k = &s->r[i].k;
        if (!strcmp(k->kind, kind) && !strcmp(k->method, method) && k->tokens == tokens && k->dx == dx &&
            k->threads == threads)
            return &s->r[i];
    }
    return NULL;
}

static void build(cmp_set *s, const csv_table *c, const csv_table *py)
{
    s->n = 0;
    s->c = c;
    s->py = py && py->rows ? py : NULL;
    s->r = calloc((size_t)(c->nrow ? c->nrow : 1), sizeof *s->r);
    RL_ASSERT(s->r, "out of memory");
    int ck = csv_col(c, "kind"), cm = csv_col(c, "method"), ct = csv_col(c, "tokens"), cd = csv_col(c, "dx"),
        cth = csv_col(c, "threads");
    if (ck < 0 || cm < 0 || ct < 0 || cd < 0 || cth < 0) return;
    for (int r = 0; r < c->nrow; r++) {
        char **f = c->rows[r];
        if (find(s, f[ck], f[cm], atoi(f[ct]), atoi(f[cd]), atoi(f[cth]))) continue;
        cmp_row *x = &s->r[s->n++];
        snprintf(x->k.kind, sizeof x->k.kind, "%s", f[ck]);
        snprintf(x->k.method, sizeof x->k.method, "%s", f[cm]);
        x->k.tokens = atoi(f[ct]);
        x->k.dx = atoi(f[cd]);
        x->k.threads = atoi(f[cth]);
        x->c_ms = med(c, &x->k, "median_ms", &x->c_n);
        x->bound_ms = med(c, &x->k, "bound_ms", NULL);
        x->first_ms = med(c, &x->k, "first_ms", NULL);
        x->inner_ms = med(c, &x->k, "inner_ms", NULL);
        x->gflop = med(c, &x->k, "gflop", NULL);
        x->c_rss = med(c, &x->k, "peak_rss_bytes", NULL);
        x->c_tensor = med(c, &x->k, "peak_tensor_bytes", NULL);
        x->foreign = maxcol(c, &x->k, "foreign_cpu");
        snprintf(x->chosen, sizeof x->chosen, "%s", first_cell(c, &x->k, "chosen"));
        snprintf(x->core, sizeof x->core, "%s", first_cell(c, &x->k, "core"));
        x->ref_ms = x->ref_rss = x->speedup = NAN;
        if (py && py->rows) {
            x->ref_ms = med(py, &x->k, "median_ms", &x->ref_n);
            x->ref_rss = med(py, &x->k, "peak_rss_bytes", NULL);
            snprintf(x->ref_impl, sizeof x->ref_impl, "%s", first_cell(py, &x->k, "impl"));
            snprintf(x->ref_version, sizeof x->ref_version, "torch %s PEFT %s", first_cell(py, &x->k, "torch_version"),
                     first_cell(py, &x->k, "peft_version"));
            if (x->ref_n == 0) x->ref_impl[0] = x->ref_version[0] = '\0';
            double fr = maxcol(py, &x->k, "foreign_cpu");
            if (!isnan(fr) && (isnan(x->foreign) || fr > x->foreign)) x->foreign = fr;
            /* the paired figure (rounds_t); the ratio of medians only
             * where no round ran both sides */
            paired_ratio(py, &x->k, "median_ms", c, &x->k, "median_ms", &x->sp);
            x->speedup = paired_figure(&x->sp, x->ref_ms / x->c_ms);
        }
    }
}

/* This machine's 1024^3 SGEMM at 2 threads over 1, round by round (the
 * rows of machine.csv of one round at each), into *out as a target's
 * rounds (geometric mean, 95% interval); false without a round that has
 * both. What a step's thread scaling is measured against: steps made of
 * such products scale no better. */
static bool sgemm_scaling(const csv_table *mach, rounds_t *out)
{
    static const int one = 1, two = 2;
    return paired_ratio_by(mach, threads_match, &two, "sgemm_gflops", mach, &one, "sgemm_gflops", out);
}

/* ---- targets ---- */

typedef struct {
    FILE *csv;
    bool quiet; /* a kept run analysed beside this one: the CSV only */
    int met, not_met, not_measured, decided, undecided;
} tgt_out;

/* One target. The verdict is on the figure (rounds_t: the geometric mean of
 * the per-round figures) against the threshold: figure >= need when ge, else figure <= need. It is decided
 * when the rounds' 95% interval (rr, rounds_t) lies wholly on the verdict's
 * side of the threshold; otherwise the threshold is inside the rounds'
 * spread and another run could turn the verdict. "-" without an interval
 * (fewer than 2 rounds, or nothing measured). */
static void target(tgt_out *o, const char *name, const char *cond, double figure, const char *threshold, double need,
                   bool ge, bool measured, const rounds_t *rr, const char *detail)
{
    const bool ok = ge ? figure >= need : figure <= need;
    const char *v = !measured ? "not measured" : ok ? "met" : "not met";
    const bool ci = measured && rr && rr->n > 1 && !isnan(rr->lo);
    const bool dec = ci && (ok ? (ge ? rr->lo >= need : rr->hi <= need) : (ge ? rr->hi < need : rr->lo > need));
    if (!measured) o->not_measured++;
    else if (ok) o->met++;
    else o->not_met++;
    if (ci) dec ? o->decided++ : o->undecided++;
    /* free text, so rl_csv_plain: every row keeps the header's fields */
    char c2[256], d2[768];
    snprintf(c2, sizeof c2, "%s", cond);
    snprintf(d2, sizeof d2, "%s", detail);
    rl_csv_plain(c2);
    rl_csv_plain(d2);
    fprintf(o->csv, "%s,%s,%.4f,%s,%s,%d,%.4f,%.4f,%s,%s\n", name, c2, figure, threshold, v, measured && rr ? rr->n : 0,
            ci ? rr->lo : NAN, ci ? rr->hi : NAN, !ci ? "-" : dec ? "yes" : "no", d2);
    if (o->quiet) return;
    char iv[48] = "";
    if (ci) snprintf(iv, sizeof iv, "[%.3f, %.3f]%s", rr->lo, rr->hi, dec ? "" : " at threshold");
    printf("  %-22s %-36s %8.3f %-8s %-13s %-28s %s\n", name, cond, figure, threshold, v, iv, detail);
}

static void speed_target(tgt_out *o, cmp_set *s, const char *name, const char *kind, const char *method, int tokens,
                         int dx, int threads, double need)
{
    cmp_row *x = find(s, kind, method, tokens, dx, threads);
    char cond[96], thr[16], det[320];
    snprintf(cond, sizeof cond, "%s %s %d %s dx=%d %dT", kind, method, tokens, !strcmp(kind, "vit") ? "images" : "tokens",
             dx, threads);
    snprintf(thr, sizeof thr, ">=%.2f", need);
    if (!x || isnan(x->ref_ms)) {
        target(o, name, cond, NAN, thr, need, true, false, NULL, "no PyTorch figure");
        return;
    }
    bool peft = !strcmp(x->ref_impl, "peft");
    /* PyTorch's time over C's FLOP-model bound (its FLOPs at the 1024³ SGEMM
     * rate): about what the step could gain with every product at that rate
     * (not a hard ceiling: large GEMMs may run faster than 1024³ does) */
    char ceil[96] = "";
    if (x->bound_ms > 0)
        snprintf(ceil, sizeof ceil, "; %s / C's FLOP bound %.2f ms = %.2fx", peft ? "PEFT" : "reference", x->bound_ms,
                 x->ref_ms / x->bound_ms);
    /* the rounds' own ratios (C and PyTorch taking turns in a round): the
     * figure is their geometric mean (build), their spread shown here */
    const rounds_t *pr = &x->sp;
    char per[96] = "";
    if (pr->n > 1) snprintf(per, sizeof per, "; round by round %.2f-%.2fx (%d rounds)", pr->s.min, pr->s.max, pr->n);
    snprintf(det, sizeof det, "C %.2f ms vs %s %.2f ms%s%s%s", x->c_ms, peft ? "PEFT" : "transcription (not PEFT)",
             x->ref_ms, ceil, per, peft ? "" : ": PEFT not run (make bench PEFT_SRC=...)");
    target(o, name, cond, x->speedup, thr, need, true, peft, pr, det);
}

/* The targets of the run whose rounds are in dir; quiet: nothing printed. */
static int targets_of_run(const char *dir, bool quiet)
{
    char p[700];
    csv_table c, py, mach;
    memset(&py, 0, sizeof py);
    memset(&mach, 0, sizeof mach);
    snprintf(p, sizeof p, "%s/compare_c.csv", dir);
    if (csv_read(p, &c) != RL_OK) {
        fprintf(stderr, "randlora bench --targets: %s\n", rl_errmsg());
        return 2;
    }
    snprintf(p, sizeof p, "%s/compare_pytorch.csv", dir);
    bool have_py = csv_read(p, &py) == RL_OK;
    snprintf(p, sizeof p, "%s/machine.csv", dir);
    bool have_mach = csv_read(p, &mach) == RL_OK;
    csv_table scale;
    memset(&scale, 0, sizeof scale);
    snprintf(p, sizeof p, "%s/compare_scaling.csv", dir);
    bool have_scale = csv_read(p, &scale) == RL_OK;
    csv_table ratio;
    memset(&ratio, 0, sizeof ratio);
    snprintf(p, sizeof p, "%s/compare_ratio.csv", dir);
    bool have_ratio = csv_read(p, &ratio) == RL_OK;
    cmp_set s, scs = {0}, rts = {0};
    build(&s, &c, have_py ? &py : NULL);
    if (have_scale) build(&scs, &scale, NULL);
    if (have_ratio) build(&rts, &ratio, NULL);

    /* compare.csv */
    rl_atomic_file af;
    snprintf(p, sizeof p, "%s/compare.csv", dir);
    rl_status st = rl_atomic_open(&af, p);
    if (st == RL_OK) {
        fprintf(af.fp, "kind,method,tokens,dx,threads,c_rounds,c_ms,bound_ms,c_over_bound,gflop,chosen,first_ms,"
                       "inner_ms,c_peak_rss_bytes,c_peak_tensor_bytes,ref_impl,ref_rounds,ref_ms,ref_peak_rss_bytes,"
                       "speedup,foreign_cpu_max,core,ref_version\n");
        for (int i = 0; i < s.n; i++) {
            cmp_row *x = &s.r[i];
            fprintf(af.fp, "%s,%s,%d,%d,%d,%d,%.4f,%.4f,%.4f,%.5f,%s,%.4f,%.4f,%.0f,%.0f,%s,%d,%.4f,%.0f,%.4f,%.4f,%s,%s\n",
                    x->k.kind, x->k.method, x->k.tokens, x->k.dx, x->k.threads, x->c_n, x->c_ms, x->bound_ms,
                    x->c_ms / x->bound_ms, x->gflop, x->chosen, x->first_ms, x->inner_ms, x->c_rss, x->c_tensor,
                    x->ref_impl[0] ? x->ref_impl : "-", x->ref_n, x->ref_ms, x->ref_rss, x->speedup, x->foreign,
                    x->core, x->ref_version[0] ? x->ref_version : "-");
        }
        st = rl_atomic_commit(&af);
    }

    /* targets.csv */
    tgt_out o = {.quiet = quiet};
    snprintf(p, sizeof p, "%s/targets.csv", dir);
    if (st == RL_OK) st = rl_atomic_open(&af, p);
    if (st == RL_OK) {
        o.csv = af.fp;
        fprintf(o.csv, "target,condition,figure,threshold,verdict,rounds,ci95_lo,ci95_hi,decided,detail\n");
        if (!quiet)
            printf("performance targets (%s/targets.csv; figures: geometric means of the per-round figures)\n", dir);
        char name[64], cond[96], det[768];
        /* 1. RandLora >= 2x PEFT at 4096 tokens; LoRA, VeRA >= 1.2x */
        for (int dx = 0; dx < 2; dx++)
            for (int th = 1; th <= 2; th++)
                speed_target(&o, &s, "randlora_vs_peft_4096", "layer", "randlora", 4096, dx, th, 2.0);
        static const char *const lv[2] = {"lora", "vera"};
        for (int m = 0; m < 2; m++)
            for (int tok = 4096; tok >= 1024; tok /= 4)
                for (int dx = 0; dx < 2; dx++)
                    for (int th = 1; th <= 2; th++) {
                        snprintf(name, sizeof name, "%s_vs_peft", lv[m]);
                        speed_target(&o, &s, name, "layer", lv[m], tok, dx, th, 1.2);
                    }
        /* 2. RandLora at 1024 tokens within 1.1x of the FLOP-model bound of its plan */
        for (int dx = 0; dx < 2; dx++)
            for (int th = 1; th <= 2; th++) {
                cmp_row *x = find(&s, "layer", "randlora", 1024, dx, th);
                snprintf(cond, sizeof cond, "layer randlora 1024 tokens dx=%d %dT", dx, th);
                if (!x) {
                    target(&o, "randlora_1024_bound", cond, NAN, "<=1.10", 1.1, false, false, NULL, "not run");
                    continue;
                }
                snprintf(det, sizeof det, "%.2f ms vs bound %.2f ms (%.3f GFLOP; plan %s); vs PyTorch %.2fx", x->c_ms,
                         x->bound_ms, x->gflop, x->chosen, x->speedup);
                rounds_t pr;
                paired_ratio(&c, &x->k, "median_ms", &c, &x->k, "bound_ms", &pr);
                target(&o, "randlora_1024_bound", cond, paired_figure(&pr, x->c_ms / x->bound_ms), "<=1.10", 1.1, false,
                       true, &pr, det);
            }
        /* 3. RandLora / LoRA step time against the FLOP floor: from the
         * pairs in which the two took turns (compare_ratio.csv), else from
         * the two layer rows of a round, timed minutes apart */
        cmp_set *rs = have_ratio ? &rts : &s;
        const csv_table *rt = have_ratio ? &ratio : &c;
        const char *rk = have_ratio ? "ratio" : "layer";
        for (int dx = 0; dx < 2; dx++)
            for (int th = 1; th <= 2; th++) {
                cmp_row *rl = find(rs, rk, "randlora", 4096, dx, th), *lo = find(rs, rk, "lora", 4096, dx, th);
                snprintf(cond, sizeof cond, "layer 4096 tokens dx=%d %dT", dx, th);
                if (!rl || !lo) {
                    target(&o, "randlora_over_lora", cond, NAN, dx ? "<=1.50" : "<=1.05xfloor", 1.5, false, false, NULL,
                           "not run");
                    continue;
                }
                /* with dx the issue asks <= 1.50 against a floor of 1.47 (LoRA all
                 * factorised): 2% above the floor. LoRA's ΔW route lowers its FLOPs
                 * and so raises the floor; the threshold keeps the 2%. */
                rounds_t pr;
                paired_ratio(rt, &rl->k, "median_ms", rt, &lo->k, "median_ms", &pr);
                double q = paired_figure(&pr, rl->c_ms / lo->c_ms), floor = rl->gflop / lo->gflop;
                double lim = dx ? fmax(1.5, floor * (1.5 / 1.47)) : 1.05 * floor;
                char thr[24], per[96] = "";
                snprintf(thr, sizeof thr, "<=%.3f", lim);
                if (pr.n > 1) snprintf(per, sizeof per, "; round by round %.3f-%.3f (%d rounds)", pr.s.min, pr.s.max, pr.n);
                snprintf(det, sizeof det, "%.2f / %.2f ms (%s); FLOP floor %.3f%s%s", rl->c_ms, lo->c_ms,
                         have_ratio ? "taking turns" : "separate pairs of a round", floor,
                         dx && lim > 1.5 ? " (threshold 1.50/1.47 of the floor)" : "", per);
                target(&o, "randlora_over_lora", cond, q, thr, lim, false, true, &pr, det);
            }
        /* 4. a 4-layer stack scales with threads: from the pairs that took
         * turns (compare_scaling.csv), else from the stack rows of the C side */
        static const char *const ms[3] = {"lora", "vera", "randlora"};
        cmp_set *sc = have_scale ? &scs : &s;
        const csv_table *sct = have_scale ? &scale : &c;
        const char *sk = have_scale ? "scale" : "stack";
        rounds_t ms2;
        char mach_sc[128] = "";
        if (have_mach && sgemm_scaling(&mach, &ms2))
            snprintf(mach_sc, sizeof mach_sc, "; this machine's SGEMM 1024^3 2T/1T %.2f (geometric mean of rounds %.2f-%.2f)",
                     ms2.gm, ms2.s.min, ms2.s.max);
        for (int m = 0; m < 3; m++) {
            cmp_row *a = NULL, *b = NULL;
            for (int i = 0; i < sc->n && !a; i++)
                if (!strcmp(sc->r[i].k.kind, sk) && !strcmp(sc->r[i].k.method, ms[m]) && sc->r[i].k.threads == 1)
                    a = &sc->r[i];
            if (a) b = find(sc, sk, ms[m], a->k.tokens, a->k.dx, 2);
            snprintf(cond, sizeof cond, "stack %s 1T/2T", ms[m]);
            if (!a || !b) {
                target(&o, "stack_thread_scaling", cond, NAN, ">=1.85", 1.85, true, false, NULL, "not run");
                continue;
            }
            /* 1T and 2T took turns within a round: the figure is the rounds'
             * own ratios' geometric mean, as every speed target's. Beside it,
             * from the same row pairs, the two runs' own SGEMM 1024^3 rates
             * (each run measures them in a turn of its own, just before its
             * steps): the machine's 2T/1T, which the stack's scaling follows
             * on a VM whose second CPU delivers 1.5-2.0x of the first, and
             * the stack's scaling over it. A round drops out of a figure only
             * where that figure's values are missing. */
            rounds_t pr = {.n = 0}, sg = {.n = 0}, rel = {.n = 0};
            int ia[64], ib[64];
            const int np = paired_rows(sct, key_match, &a->k, sct, &b->k, ia, ib, 64);
            const int ct = csv_col(sct, "median_ms"), cs = csv_col(sct, "sgemm_gflops");
            for (int i = 0; i < np && ct >= 0; i++) {
                char **r1 = sct->rows[ia[i]], **r2 = sct->rows[ib[i]];
                const double t1 = atof(r1[ct]), t2 = atof(r2[ct]);
                if (!(t1 > 0 && t2 > 0)) continue;
                pr.v[pr.n++] = t1 / t2;
                const double s1 = cs >= 0 ? atof(r1[cs]) : 0, s2 = cs >= 0 ? atof(r2[cs]) : 0;
                if (!(s1 > 0 && s2 > 0)) continue;
                sg.v[sg.n++] = s2 / s1;
                rel.v[rel.n++] = (t1 / t2) / (s2 / s1);
            }
            rounds_finish(&pr);
            char per[128] = "", own[192] = "";
            if (pr.n > 1)
                snprintf(per, sizeof per, "; round by round 1T/2T %.2f-%.2f (median %.2f; %d rounds)", pr.s.min,
                         pr.s.max, pr.s.median, pr.n);
            if (pr.n > 1 && rounds_finish(&sg) && rounds_finish(&rel) && rel.n > 1)
                snprintf(own, sizeof own,
                         "; the two runs' own SGEMM 1024^3 2T/1T %.2f-%.2f by round, the stack's scaling over it "
                         "%.2f-%.2f (geometric mean %.3f)",
                         sg.s.min, sg.s.max, rel.s.min, rel.s.max, rel.gm);
            snprintf(det, sizeof det,
                     "%d tokens: %.2f ms at 1 thread; %.2f ms at 2 (per layer at 2: first %.2f; inner %.2f ms)%s%s%s%s",
                     a->k.tokens, a->c_ms, b->c_ms, b->first_ms, b->inner_ms, per,
                     have_scale ? "; 1T and 2T taking turns, 1T on one CPU" : "; separate runs", mach_sc, own);
            target(&o, "stack_thread_scaling", cond, paired_figure(&pr, a->c_ms / b->c_ms), ">=1.85", 1.85, true, true,
                   &pr, det);
        }
        /* 5. SGEMM against the FMA peak: per thread count, the geometric mean
         * of the rounds' fractions (bench.sh measures the machine in every
         * round; a fraction pairs the SGEMM and FMA of one round) */
        int cth = -1, cf = -1, cs = -1, cp = -1, cc = -1;
        if (have_mach) {
            cth = csv_col(&mach, "threads"), cf = csv_col(&mach, "sgemm_fraction_of_fma");
            cs = csv_col(&mach, "sgemm_gflops"), cp = csv_col(&mach, "fma_gflops"), cc = csv_col(&mach, "core");
        }
        const bool mach_ok = cth >= 0 && cf >= 0 && cs >= 0 && cp >= 0 && cc >= 0;
        if (have_mach && !mach_ok)
            target(&o, "sgemm_of_fma_peak", "SGEMM 1024^3", NAN, ">=0.75", 0.75, true, false, NULL,
                   "machine.csv lacks threads / sgemm_gflops / fma_gflops / sgemm_fraction_of_fma / core");
        for (int r = 0; mach_ok && r < mach.nrow; r++) {
            bool seen = false; /* one target per thread count, at its first row */
            for (int q = 0; q < r && !seen; q++) seen = !strcmp(mach.rows[q][cth], mach.rows[r][cth]);
            if (seen) continue;
            rounds_t fr = {.n = 0};
            double sg[64], pk[64];
            int k = 0;
            for (int q = r; q < mach.nrow && k < 64; q++)
                if (!strcmp(mach.rows[q][cth], mach.rows[r][cth])) {
                    fr.v[k] = atof(mach.rows[q][cf]);
                    sg[k] = atof(mach.rows[q][cs]);
                    pk[k++] = atof(mach.rows[q][cp]);
                }
            fr.n = k;
            rl_summary ss, sp;
            if (!rounds_finish(&fr) || rl_stats_summarise(sg, k, &ss) != RL_OK || rl_stats_summarise(pk, k, &sp) != RL_OK)
                continue;
            snprintf(cond, sizeof cond, "SGEMM 1024^3 %sT", mach.rows[r][cth]);
            if (k > 1)
                snprintf(det, sizeof det, "median of %d rounds: SGEMM %.2f GFLOP/s vs FMA peak %.2f GFLOP/s; fraction %.3f-%.3f (core %s)",
                         k, ss.median, sp.median, fr.s.min, fr.s.max, mach.rows[r][cc]);
            else
                snprintf(det, sizeof det, "SGEMM %.2f GFLOP/s vs FMA peak %.2f GFLOP/s (core %s)", ss.median, sp.median,
                         mach.rows[r][cc]);
            target(&o, "sgemm_of_fma_peak", cond, fr.gm, ">=0.75", 0.75, true, true, &fr, det);
        }
        if (!have_mach)
            target(&o, "sgemm_of_fma_peak", "SGEMM 1024^3", NAN, ">=0.75", 0.75, true, false, NULL, "no machine.csv");
        /* 6. the whole ViT step */
        for (int m = 0; m < 3; m++)
            for (int th = 1; th <= 2; th++) {
                cmp_row *x = NULL;
                for (int i = 0; i < s.n && !x; i++)
                    if (!strcmp(s.r[i].k.kind, "vit") && !strcmp(s.r[i].k.method, ms[m]) && s.r[i].k.threads == th)
                        x = &s.r[i];
                snprintf(name, sizeof name, "vit_%s_vs_peft", ms[m]);
                speed_target(&o, &s, name, "vit", ms[m], x ? x->k.tokens : 128, 1, th, m == 2 ? 2.0 : 1.2);
            }
        /* 7. no method slower than PyTorch anywhere: the figure is the
         * slowest comparison's; its interval, the comparison whose rounds'
         * interval reaches lowest (decided only if every one clears 1.00) */
        double worst = INFINITY;
        char where[96] = "", low[96] = "";
        int n_cmp = 0;
        bool all_peft = true;
        const rounds_t *lowest = NULL;
        for (int i = 0; i < s.n; i++) {
            cmp_row *x = &s.r[i];
            if (isnan(x->speedup)) continue;
            n_cmp++;
            all_peft &= !strcmp(x->ref_impl, "peft");
            char at[96];
            snprintf(at, sizeof at, "%s %s %d dx=%d %dT", x->k.kind, x->k.method, x->k.tokens, x->k.dx, x->k.threads);
            if (x->speedup < worst) {
                worst = x->speedup;
                snprintf(where, sizeof where, "%s", at);
            }
            if (x->sp.n > 1 && !isnan(x->sp.lo) && (!lowest || x->sp.lo < lowest->lo)) {
                lowest = &x->sp;
                snprintf(low, sizeof low, "%s", at);
            }
        }
        snprintf(det, sizeof det, "slowest of %d comparisons: %s%s%s%s", n_cmp, where,
                 low[0] && strcmp(low, where) ? "; lowest 95% interval: " : "", low[0] && strcmp(low, where) ? low : "",
                 all_peft ? "" : " (some against the transcription: not PEFT)");
        target(&o, "no_method_slower", "every comparison", n_cmp ? worst : NAN, ">=1.00", 1.0, true, n_cmp > 0 && all_peft,
               lowest, det);
        if (!quiet)
            printf("  %d met, %d not met, %d not measured; of those measured over 2 or more rounds, %d decided by the "
                   "rounds' 95%% interval, %d at their threshold\n",
                   o.met, o.not_met, o.not_measured, o.decided, o.undecided);
        st = rl_atomic_commit(&af);
    }
    free(s.r);
    free(scs.r);
    free(rts.r);
    csv_free(&c);
    if (have_py) csv_free(&py);
    if (have_scale) csv_free(&scale);
    if (have_ratio) csv_free(&ratio);
    if (have_mach) csv_free(&mach);
    if (st != RL_OK) {
        fprintf(stderr, "randlora bench --targets: %s\n", rl_errmsg());
        return 1;
    }
    return 0;
}

/* ---- the kept runs, side by side ---- */

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* a field of row r by column name ("" when the column is missing) */
static const char *cell(const csv_table *t, int r, const char *col)
{
    int c = csv_col(t, col);
    return c >= 0 ? t->rows[r][c] : "";
}

void bench_runs_cell(const csv_table *t, int r, char *buf, size_t len)
{
    const char *v = cell(t, r, "verdict");
    if (!strcmp(v, "not measured")) snprintf(buf, len, "not measured");
    else snprintf(buf, len, "%.3f %s%s", atof(cell(t, r, "figure")), v, !strcmp(cell(t, r, "decided"), "no") ? " (at threshold)" : "");
}

int bench_runs_names(const csv_table *t, const char *runs[64])
{
    int n = 0;
    for (int r = 0; r < t->nrow; r++) {
        const char *run = cell(t, r, "run");
        if (n == 0 || strcmp(runs[n - 1], run)) {
            if (n == 64) break;
            runs[n++] = run;
        }
    }
    return n;
}

/* the row of run's (target, condition), or -1 */
static int run_row(const csv_table *t, const char *run, const char *target, const char *cond)
{
    for (int r = 0; r < t->nrow; r++)
        if (!strcmp(cell(t, r, "run"), run) && !strcmp(cell(t, r, "target"), target) &&
            !strcmp(cell(t, r, "condition"), cond))
            return r;
    return -1;
}

void bench_runs_differ(const csv_table *t, const char *const *runs, int n, bench_runs_row row, void *ctx, int *same,
                       int *all)
{
    *same = *all = 0;
    for (int r = 0; n > 0 && r < t->nrow; r++) {
        if (strcmp(cell(t, r, "run"), runs[n - 1]) || !strcmp(cell(t, r, "verdict"), "not measured")) continue;
        int at[64];
        bool agree = true;
        for (int k = 0; k < n; k++) {
            at[k] = run_row(t, runs[k], cell(t, r, "target"), cell(t, r, "condition"));
            agree &= at[k] >= 0 && !strcmp(cell(t, at[k], "verdict"), cell(t, r, "verdict"));
        }
        ++*all;
        if (agree) ++*same;
        else row(ctx, t, r, at, n);
    }
}

/* bench --targets' line for a target whose verdict differs between runs */
static void print_differing(void *ctx, const csv_table *t, int r, const int *at, int n)
{
    (void)ctx;
    printf("  %-22s %-36s", cell(t, r, "target"), cell(t, r, "condition"));
    for (int k = 0; k < n; k++) {
        char c[64] = "absent";
        if (at[k] >= 0) bench_runs_cell(t, at[k], c, sizeof c);
        printf("%s%s", k ? " | " : " ", c);
    }
    printf("\n");
}

/* DIR/runs/<run>/ keeps the rounds of each `make bench` (bench.sh copies
 * them there, named <UTC start, YYYYmmdd-HHMM>-<source>, so that names sort
 * by time): each is analysed again by this code, and DIR/targets_runs.csv
 * puts their verdicts side by side (run, then targets.csv's columns). A
 * run's interval speaks for its own machine only; across runs, a verdict
 * that turns is one the machine decides. 0 when there is no runs/. */
static int runs_side_by_side(const char *dir)
{
    char p[900];
    snprintf(p, sizeof p, "%s/runs", dir);
    DIR *d = opendir(p);
    if (!d) return 0;
    char *names[64];
    int n = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 64) {
        if (e->d_name[0] == '.') continue;
        struct stat sb;
        snprintf(p, sizeof p, "%s/runs/%s", dir, e->d_name);
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            names[n] = strdup(e->d_name);
            RL_ASSERT(names[n], "out of memory");
            n++;
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, name_cmp);
    csv_table tg[64];
    int have = 0;
    static const char *const need[] = {"target", "condition", "figure", "threshold", "verdict", "rounds", "decided"};
    for (int k = 0; k < n && rc == 0; k++) {
        snprintf(p, sizeof p, "%s/runs/%s", dir, names[k]);
        if (targets_of_run(p, true) != 0) {
            fprintf(stderr, "randlora bench --targets: the kept run %s could not be analysed\n", p);
            rc = 1;
            break;
        }
        snprintf(p, sizeof p, "%s/runs/%s/targets.csv", dir, names[k]);
        if (csv_read(p, &tg[k]) != RL_OK) {
            fprintf(stderr, "randlora bench --targets: %s\n", rl_errmsg());
            rc = 1;
            break;
        }
        have = k + 1;
        for (size_t c = 0; c < sizeof need / sizeof *need; c++)
            if (csv_col(&tg[k], need[c]) < 0) {
                fprintf(stderr, "randlora bench --targets: %s has no column %s\n", p, need[c]);
                rc = 1;
            }
    }
    rl_atomic_file af;
    snprintf(p, sizeof p, "%s/targets_runs.csv", dir);
    if (rc == 0 && n > 0 && rl_atomic_open(&af, p) == RL_OK) {
        fprintf(af.fp, "run,target,condition,figure,threshold,verdict,rounds,decided\n");
        for (int k = 0; k < n; k++)
            for (int r = 0; r < tg[k].nrow; r++) {
                fprintf(af.fp, "%s", names[k]);
                for (size_t c = 0; c < sizeof need / sizeof *need; c++)
                    fprintf(af.fp, ",%s", tg[k].rows[r][csv_col(&tg[k], need[c])]);
                fprintf(af.fp, "\n");
            }
        if (rl_atomic_commit(&af) != RL_OK) rc = 1;
    } else if (rc == 0 && n > 0) {
        rc = 1;
    }
    if (rc != 0 && n > 0) fprintf(stderr, "randlora bench --targets: %s\n", rl_errmsg());
    /* what it prints comes from the table it wrote, through what the report uses */
    csv_table all_runs;
    if (rc == 0 && n > 1 && csv_read(p, &all_runs) != RL_OK) {
        fprintf(stderr, "randlora bench --targets: %s\n", rl_errmsg());
        rc = 1;
    } else if (rc == 0 && n > 1) {
        const char *runs[64];
        const int nr = bench_runs_names(&all_runs, runs);
        int same, all;
        printf("verdicts by run (%s; %d kept runs: %s ... %s); the targets whose verdict differs:\n", p, nr, runs[0],
               runs[nr - 1]);
        bench_runs_differ(&all_runs, runs, nr, print_differing, NULL, &same, &all);
        printf("  %d of %d targets measured in the newest run have the same verdict in every run\n", same, all);
        csv_free(&all_runs);
    }
    for (int k = 0; k < have; k++) csv_free(&tg[k]);
    for (int k = 0; k < n; k++) free(names[k]);
    return rc;
}

int bench_targets(const char *dir)
{
    int rc = targets_of_run(dir, false);
    return rc != 0 ? rc : runs_side_by_side(dir);
}
