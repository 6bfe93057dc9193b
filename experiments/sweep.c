/* sweep.c -- common sweep flags, CSV tables, gnuplot rendering. */
#include "sweep.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "commands.h"
#include "flags.h"

#ifdef RL_MPI
#include <mpi.h>
#endif

static int mpi_rank = 0, mpi_size = 1;

void sweep_mpi_init(int *argc, char ***argv)
{
#ifdef RL_MPI
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mpi_size);
#else
    (void)argc;
    (void)argv;
#endif
}

void sweep_mpi_finalize(void)
{
#ifdef RL_MPI
    MPI_Finalize();
#endif
}

bool sweep_is_root(void) { return mpi_rank == 0; }
int sweep_mpi_size(void) { return mpi_size; }

void sweep_barrier(void)
{
#ifdef RL_MPI
    MPI_Barrier(MPI_COMM_WORLD);
#endif
}

bool sweep_mine(const sweep_opts *o, long i)
{
    return (o->limit <= 0 || i < o->limit) && rl_shard_mine(o->shard, i);
}

void sweep_opts_init(sweep_opts *o, const char *name)
{
    memset(o, 0, sizeof *o);
    snprintf(o->dir, sizeof o->dir, "results/%s", name);
    o->shard = (rl_shard){mpi_rank, mpi_size}; /* one process: {0, 1} */
}

int sweep_parse_common(sweep_opts *o, int argc, char **argv, int *i, const char *cmd)
{
    const char *a = argv[*i], *v;
    if (strcmp(a, "--force") == 0) o->force = true;
    else if (strcmp(a, "--quiet") == 0) o->quiet = true;
    else if (strcmp(a, "--full") == 0) o->full = true;
    else if (strcmp(a, "--limit") == 0) {
        int64_t n;
        if (!(v = flag_value(cmd, argc, argv, i)) || !flag_i64(cmd, a, v, 1, LONG_MAX, &n)) return -1;
        o->limit = (long)n;
    } else if (strcmp(a, "--results") == 0) {
        if (!(v = flag_value(cmd, argc, argv, i))) return -1;
        if (strlen(v) >= sizeof o->dir || !*v) {
            fprintf(stderr, "%s: --results '%s' is empty or too long\n", cmd, v);
            return -1;
        }
        snprintf(o->dir, sizeof o->dir, "%s", v);
    } else if (strcmp(a, "--max-memory") == 0) {
        if (!(v = flag_value(cmd, argc, argv, i)) || !flag_max_memory(cmd, v)) return -1;
    } else if (strcmp(a, "--shard") == 0) {
        if (!(v = flag_value(cmd, argc, argv, i))) return -1;
        if (rl_shard_parse(v, &o->shard) != RL_OK) {
            fprintf(stderr, "%s: %s\n", cmd, rl_errmsg());
            return -1;
        }
    } else {
        return 0;
    }
    return 1;
}

int sweep_rc(int rc, rl_status st)
{
    int c = cmd_exit_code(st);
    return c > rc ? c : rc;
}

void sweep_usage_common(FILE *out)
{
    fprintf(out,
            "  common: --results DIR  where CSVs go (default results/<name>)\n"
            "          --force        recompute points already written (default: skip them)\n"
            "          --shard i/n    run only points p with p %% n == i (share DIR across machines)\n"
            "          --quiet        no progress on stderr\n"
            "          --full         the long grid instead of the quick default\n"
            "          --limit N      only the first N points of the grid (smoke runs)\n"
            "          --max-memory BYTES  memory budget for data read from files (datasets)\n"
            "  exit: 0 done, 1 a point failed, 2 bad usage or input, 3 out of memory or an output\n"
            "        (table, plot) that could not be written\n"
            "  MPI build (make MPI=1): mpirun -np N build/mpi/randlora sweep ... spreads the points over\n"
            "  the ranks (shared results directory); rank 0 assembles the tables and plots.\n");
}

int sweep_parse_args(sweep_opts *o, int argc, char **argv, const char *cmd, void (*usage)(FILE *),
                     int (*extra)(void *ctx, int argc, char **argv, int *i), void *ctx)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        int k = sweep_parse_common(o, argc, argv, &i, cmd);
        if (k == 0 && extra) k = extra(ctx, argc, argv, &i);
        if (k < 0) return -1;
        if (k == 0) {
            fprintf(stderr, "%s: unknown flag '%s'\n", cmd, argv[i]);
            usage(stderr);
            return -1;
        }
    }
    return 1;
}

/* ---- CSV ---- */

static char **split(char *line, int *n)
{
    int cap = 8, k = 0;
    char **f = malloc((size_t)cap * sizeof *f);
    if (!f) return NULL;
    char *p = line;
    for (;;) {
        if (k == cap) {
            cap *= 2;
            char **g = realloc(f, (size_t)cap * sizeof *f);
            if (!g) {
                free(f);
                return NULL;
            }
            f = g;
        }
        f[k++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = '\0';
        p = c + 1;
    }
    *n = k;
    return f;
}

rl_status csv_read(const char *path, csv_table *t)
{
    memset(t, 0, sizeof *t);
    FILE *fp = fopen(path, "r");
    if (!fp) return rl_fail(RL_EIO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    rl_status st = RL_OK;
    int rcap = 0;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0 || line[0] == '#') continue;
        char *copy = strdup(line);
        int nf = 0;
        char **f = copy ? split(copy, &nf) : NULL;
        if (!f) {
            free(copy);
            st = rl_fail(RL_ENOMEM, "%s: no memory", path);
            break;
        }
        if (!t->head) {
            t->head = f;
            t->ncol = nf;
            continue;
        }
        if (nf != t->ncol) {
            free(f[0]);
            free(f);
            st = rl_fail(RL_EFORMAT, "%s: row %d has %d fields, the header %d", path, t->nrow + 2, nf, t->ncol);
            break;
        }
        if (t->nrow == rcap) {
            rcap = rcap ? 2 * rcap : 64;
            char ***g = realloc(t->rows, (size_t)rcap * sizeof *g);
            if (!g) {
                free(f[0]);
                free(f);
                st = rl_fail(RL_ENOMEM, "%s: no memory", path);
                break;
            }
            t->rows = g;
        }
        t->rows[t->nrow++] = f;
    }
    free(line);
    fclose(fp);
    if (st == RL_OK && !t->head) st = rl_fail(RL_EFORMAT, "%s: empty table", path);
    if (st != RL_OK) csv_free(t);
    return st;
}

void csv_free(csv_table *t)
{
    for (int r = 0; r < t->nrow; r++) {
        free(t->rows[r][0]);
        free(t->rows[r]);
    }
    free(t->rows);
    if (t->head) free(t->head[0]);
    free(t->head);
    memset(t, 0, sizeof *t);
}

int csv_col(const csv_table *t, const char *name)
{
    for (int c = 0; c < t->ncol; c++)
        if (strcmp(t->head[c], name) == 0) return c;
    return -1;
}

/* ---- gnuplot ---- */

/* Append n bytes of s to the growing buffer *buf (*len used, *cap size). */
static bool grow_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = 2 * (*cap + n) + 256;
        char *q = realloc(*buf, c);
        if (!q) return false;
        *buf = q;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}

/* The terminal line "set term[inal] pngcairo OPTS" rewritten for the vector
 * terminal: OPTS kept except the size (converted) and PNG-only options. */
static bool vector_terminal(const char *line, size_t n, const char *ext, char *out, size_t len)
{
    const char *p = line;
    while (p < line + n && (*p == ' ' || *p == '\t')) p++;
    static const char *const heads[2] = {"set terminal pngcairo", "set term pngcairo"};
    size_t skip = 0;
    for (int i = 0; i < 2 && !skip; i++)
        if ((size_t)(line + n - p) >= strlen(heads[i]) && strncmp(p, heads[i], strlen(heads[i])) == 0)
            skip = strlen(heads[i]);
    if (!skip) return false;
    p += skip;
    double w = 640, h = 480; /* pngcairo's default size */
    size_t at = (size_t)snprintf(out, len, "set terminal %s", strcmp(ext, "pdf") == 0 ? "pdfcairo" : "svg");
    while (p < line + n) {
        while (p < line + n && *p == ' ') p++;
        const char *t = p;
        while (p < line + n && *p != ' ') p++;
        size_t k = (size_t)(p - t);
        if (!k || *t == '#') break;
        if (k == 4 && strncmp(t, "size", 4) == 0) {
            char num[64];
            while (p < line + n && *p == ' ') p++;
            const char *v = p;
            while (p < line + n && *p != ' ') p++;
            snprintf(num, sizeof num, "%.*s", (int)(p - v), v);
            if (sscanf(num, "%lf,%lf", &w, &h) != 2) return false;
        } else if ((k == 9 && strncmp(t, "truecolor", 9) == 0) || (k == 11 && strncmp(t, "notruecolor", 11) == 0) ||
                   (k == 9 && strncmp(t, "interlace", 9) == 0) || (k == 11 && strncmp(t, "nointerlace", 11) == 0)) {
            continue; /* PNG only */
        } else if (at < len) {
            at += (size_t)snprintf(out + at, len - at, " %.*s", (int)k, t);
        }
    }
    if (at < len && !strstr(out, " fontscale") && !strstr(out, " linewidth") && !strstr(out, " lw "))
        /* pdfcairo's defaults (fontscale 0.5, thin lines) next to pngcairo's look (eyeballed) */
        at += (size_t)snprintf(out + at, len - at, "%s", strcmp(ext, "pdf") == 0 ? " fontscale 0.75 linewidth 1.5" : "");
    if (at < len) {
        if (strcmp(ext, "pdf") == 0) snprintf(out + at, len - at, " size %.2fin,%.2fin\n", w / 96.0, h / 96.0);
        else snprintf(out + at, len - at, " size %.0f,%.0f\n", w, h);
    }
    return true;
}

char *sweep_vector_script(const char *text, const char *ext, const char *out_dir, const char *out_file,
                          char *name, size_t name_len)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int terms = 0, outputs = 0;
    name[0] = '\0';
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
        char line[1200];
        const char *q = p;
        while (q < p + n && (*q == ' ' || *q == '\t')) q++;
        bool ok = true;
        if (vector_terminal(p, n, ext, line, sizeof line)) {
            terms++;
            ok = grow_put(&buf, &len, &cap, line, strlen(line));
        } else if (strncmp(q, "set output \"", 12) == 0) {
            const char *a = q + 12, *z = memchr(a, '"', (size_t)(p + n - a));
            const char *slash = a;
            for (const char *c = a; z && c < z; c++)
                if (*c == '/') slash = c + 1;
            if (!z || z - slash < 5 || strncmp(z - 4, ".png", 4) != 0) {
                rl_fail(RL_EFORMAT, "set output does not name a .png file: %.*s", (int)n, p);
                free(buf);
                return NULL;
            }
            snprintf(name, name_len, "%.*s", (int)(z - 4 - slash), slash);
            if (out_file) snprintf(line, sizeof line, "set output \"%s/%s\"\n", out_dir, out_file);
            else snprintf(line, sizeof line, "set output \"%s/%s.%s\"\n", out_dir, name, ext);
            outputs++;
            ok = grow_put(&buf, &len, &cap, line, strlen(line));
        } else {
            ok = grow_put(&buf, &len, &cap, p, n);
        }
        if (!ok) {
            free(buf);
            rl_fail(RL_ENOMEM, "out of memory");
            return NULL;
        }
        p += n;
    }
    if (terms != 1 || outputs != 1) {
        free(buf);
        rl_fail(RL_EFORMAT, "the script has %d 'set terminal pngcairo' and %d 'set output' lines (one of each is "
                "needed to render it as vector graphics)", terms, outputs);
        return NULL;
    }
    if (!buf) buf = calloc(1, 1);
    return buf;
}

const char *sweep_vector_ext(void)
{
    static const char *ext;
    if (!ext) ext = system("gnuplot -e 'set terminal pdfcairo' >/dev/null 2>&1") == 0 ? "pdf" : "svg";
    return ext;
}

int sweep_render_vector(const char *script, const char *out_dir, bool quiet)
{
    FILE *fp = fopen(script, "r");
    if (!fp) {
        fprintf(stderr, "%s: cannot open: %s\n", script, strerror(errno));
        return 1;
    }
    char *text = NULL, chunk[4096];
    size_t len = 0, cap = 0, got;
    bool ok = true;
    while (ok && (got = fread(chunk, 1, sizeof chunk, fp)) > 0) ok = grow_put(&text, &len, &cap, chunk, got);
    fclose(fp);
    const char *ext = sweep_vector_ext();
    char name[256], tmp[300], final[900];
    snprintf(tmp, sizeof tmp, ".vector.%ld.tmp", (long)getpid());
    char *vec = ok && text ? sweep_vector_script(text, ext, out_dir, tmp, name, sizeof name) : NULL;
    free(text);
    if (!vec) {
        fprintf(stderr, "%s: no vector rendering: %s\n", script, ok ? rl_errmsg() : "out of memory");
        return 1;
    }
    char tmp_path[900];
    snprintf(tmp_path, sizeof tmp_path, "%s/%s", out_dir, tmp);
    snprintf(final, sizeof final, "%s/%s.%s", out_dir, name, ext);
    int rc = 1;
    if (rl_mkdir_p(out_dir) == RL_OK) {
        FILE *gp = popen("gnuplot", "w");
        if (gp) {
            fputs(vec, gp);
            int st = pclose(gp);
            if (st == 0 && rename(tmp_path, final) == 0) rc = 0;
            else fprintf(stderr, "gnuplot (vector %s of %s) failed (status %d)\n", ext, script,
                         WIFEXITED(st) ? WEXITSTATUS(st) : st);
        }
    }
    if (rc) unlink(tmp_path);
    else if (!quiet) fprintf(stderr, "rendered %s\n", final);
    free(vec);
    return rc;
}

int sweep_render(const char *const *scripts, int n, bool quiet)
{
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf(stderr, "gnuplot is not on PATH: CSVs written, plots not rendered "
                        "(apt-get install gnuplot-nox, then rerun the sweep or `gnuplot %s`)\n",
                n ? scripts[0] : "plots/*.gp");
        return 0;
    }
    if (rl_mkdir_p("plots/out") != RL_OK) {
        fprintf(stderr, "%s\n", rl_errmsg());
        return n;
    }
    int failed = 0;
    for (int i = 0; i < n; i++) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "gnuplot '%s'", scripts[i]);
        int rc = system(cmd);
        if (rc != 0) {
            failed++;
            fprintf(stderr, "gnuplot %s failed (status %d)\n", scripts[i], WIFEXITED(rc) ? WEXITSTATUS(rc) : rc);
        } else {
            if (!quiet) fprintf(stderr, "rendered %s\n", scripts[i]);
            failed += sweep_render_vector(scripts[i], "plots/out", quiet);
        }
    }
    return failed;
}
