/* rl_results.c -- atomic files, resumable sweep tables, manifests. */
#include "rl_results.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../core/rl_blas.h"
#include "../core/rl_clock.h"
#include "../core/rl_cpu.h"
#include "../core/rl_parse.h"

/* ---- atomic files ---- */

rl_status rl_mkdir_p(const char *dir)
{
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    if (!p) return rl_fail(RL_ENOMEM, "mkdir %s: no memory", dir);
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            rl_status st = rl_fail(RL_EWRITE, "cannot create directory %s: %s", p, strerror(errno));
            free(p);
            return st;
        }
        p[i] = c;
    }
    free(p);
    return RL_OK;
}

static rl_status make_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return RL_OK;
    size_t n = (size_t)(slash - path);
    char *dir = malloc(n + 1);
    if (!dir) return rl_fail(RL_ENOMEM, "%s: no memory", path);
    memcpy(dir, path, n);
    dir[n] = '\0';
    rl_status st = rl_mkdir_p(dir);
    free(dir);
    return st;
}

static void atomic_release(rl_atomic_file *af)
{
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

rl_status rl_atomic_open(rl_atomic_file *af, const char *path)
{
    memset(af, 0, sizeof *af);
    RL_TRY(make_parent(path));
    size_t n = strlen(path) + 32;
    af->path = strdup(path);
    af->tmp = malloc(n);
    if (!af->path || !af->tmp) {
        atomic_release(af);
        return rl_fail(RL_ENOMEM, "%s: no memory", path);
    }
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    af->fp = fopen(af->tmp, "wb");
    if (!af->fp) {
        rl_status st = rl_fail(RL_EWRITE, "%s: cannot create %s: %s", path, af->tmp, strerror(errno));
        atomic_release(af);
        return st;
    }
    return RL_OK;
}

rl_status rl_atomic_commit(rl_atomic_file *af)
{
    int e = 0;
    bool ok = !ferror(af->fp);
    if (!ok) e = EIO;
    if (ok && fflush(af->fp) != 0) { ok = false; e = errno; }
    if (ok && fsync(fileno(af->fp)) != 0) { ok = false; e = errno; }
    if (fclose(af->fp) != 0 && ok) { ok = false; e = errno; }
    if (ok && rename(af->tmp, af->path) != 0) { ok = false; e = errno; }
    rl_status st = RL_OK;
    if (!ok) {
        st = rl_fail(RL_EWRITE, "%s: cannot write: %s", af->path, strerror(e ? e : EIO));
        unlink(af->tmp);
    }
    atomic_release(af);
    return st;
}

void rl_atomic_abort(rl_atomic_file *af)
{
    if (af->fp) fclose(af->fp);
    if (af->tmp) unlink(af->tmp);
    atomic_release(af);
}

rl_status rl_write_file_atomic(const char *path, const void *data, size_t len)
{
    rl_atomic_file af;
    RL_TRY(rl_atomic_open(&af, path));
    if (len && fwrite(data, 1, len, af.fp) != len) {
        rl_status st = rl_fail(RL_EWRITE, "%s: short write: %s", path, strerror(errno));
        rl_atomic_abort(&af);
        return st;
    }
    return rl_atomic_commit(&af);
}

void rl_hash_hex(const char *s, char out[17])
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* ---- sweeps ---- */

rl_status rl_shard_parse(const char *s, rl_shard *out)
{
    const char *slash = s ? strchr(s, '/') : NULL;
    char head[24];
    int i, n;
    size_t hl = slash ? (size_t)(slash - s) : 0;
    if (!slash || hl >= sizeof head)
        return rl_fail(RL_EINVAL, "--shard '%s': expected i/n with 0 <= i < n", s ? s : "");
    memcpy(head, s, hl);
    head[hl] = '\0';
    if (rl_parse_int(slash + 1, 1, INT_MAX, NULL, &n) != RL_OK || rl_parse_int(head, 0, n - 1, NULL, &i) != RL_OK)
        return rl_fail(RL_EINVAL, "--shard '%s': expected i/n with 0 <= i < n", s);
    out->index = i;
    out->count = n;
    return RL_OK;
}

struct rl_sweep {
    char *dir, *table, *header, *points_dir, *table_path;
};

static char *joinf(const char *fmt, const char *a, const char *b)
{
    size_t n = strlen(fmt) + strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, fmt, a, b);
    return s;
}

rl_status rl_sweep_open(rl_sweep **out, const char *dir, const char *table, const char *header)
{
    *out = NULL;
    rl_sweep *s = calloc(1, sizeof *s);
    if (!s) return rl_fail(RL_ENOMEM, "sweep: no memory");
    s->dir = strdup(dir);
    s->table = strdup(table);
    s->header = strdup(header);
    s->points_dir = joinf("%s/points/%s", dir, table);
    s->table_path = joinf("%s/%s.csv", dir, table);
    if (!s->dir || !s->table || !s->header || !s->points_dir || !s->table_path) {
        rl_sweep_free(s);
        return rl_fail(RL_ENOMEM, "sweep: no memory");
    }
    rl_status st = rl_mkdir_p(s->points_dir);
    if (st != RL_OK) {
        rl_sweep_free(s);
        return st;
    }
    *out = s;
    return RL_OK;
}

void rl_sweep_free(rl_sweep *s)
{
    if (!s) return;
    free(s->dir);
    free(s->table);
    free(s->header);
    free(s->points_dir);
    free(s->table_path);
    free(s);
}

const char *rl_sweep_table_path(const rl_sweep *s) { return s->table_path; }

static char *point_path(const rl_sweep *s, const char *key)
{
    char h[17];
    rl_hash_hex(key, h);
    size_t n = strlen(s->points_dir) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s.csv", s->points_dir, h);
    return p;
}

bool rl_sweep_done(const rl_sweep *s, const char *key)
{
    char *p = point_path(s, key);
    if (!p) return false;
    struct stat sb;
    bool done = stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
    free(p);
    return done;
}

rl_status rl_sweep_put(rl_sweep *s, const char *key, const char *rows)
{
    if (strchr(key, '\n')) return rl_fail(RL_EINVAL, "sweep: point key contains a newline");
    char *p = point_path(s, key);
    if (!p) return rl_fail(RL_ENOMEM, "sweep: no memory");
    rl_atomic_file af;
    rl_status st = rl_atomic_open(&af, p);
    free(p);
    RL_TRY(st);
    fprintf(af.fp, "# key: %s\n%s", key, rows);
    return rl_atomic_commit(&af);
}

typedef struct {
    char *key;
    char *rows;
} point;

static int point_cmp(const void *a, const void *b)
{
    return strcmp(((const point *)a)->key, ((const point *)b)->key);
}

/* Read a point file: first line "# key: K", the rest rows. */
static rl_status read_point(const char *path, point *pt)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return rl_fail(RL_EIO, "%s: %s", path, strerror(errno));
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)(n > 0 ? n : 0) + 1);
    if (!buf) {
        fclose(fp);
        return rl_fail(RL_ENOMEM, "%s: no memory", path);
    }
    size_t got = fread(buf, 1, (size_t)(n > 0 ? n : 0), fp);
    fclose(fp);
    buf[got] = '\0';
    char *nl = strchr(buf, '\n');
    if (strncmp(buf, "# key: ", 7) != 0 || !nl) {
        free(buf);
        return rl_fail(RL_EFORMAT, "%s: not a sweep point file (no '# key:' line)", path);
    }
    *nl = '\0';
    pt->key = strdup(buf + 7);
    pt->rows = strdup(nl + 1);
    free(buf);
    if (!pt->key || !pt->rows) {
        free(pt->key);
        free(pt->rows);
        return rl_fail(RL_ENOMEM, "%s: no memory", path);
    }
    return RL_OK;
}

rl_status rl_sweep_get(const rl_sweep *s, const char *key, char **rows)
{
    *rows = NULL;
    char *p = point_path(s, key);
    if (!p) return rl_fail(RL_ENOMEM, "sweep: no memory");
    struct stat sb;
    if (stat(p, &sb) != 0) {
        rl_status st = rl_fail(RL_ENOTFOUND, "%s: point '%s' not written yet", p, key);
        free(p);
        return st;
    }
    point pt = {0};
    rl_status st = read_point(p, &pt); /* cleans up after itself on failure */
    if (st == RL_OK && strcmp(pt.key, key) != 0) {
        st = rl_fail(RL_EFORMAT, "%s: holds point '%s', not '%s' (hash collision or edited file)", p, pt.key, key);
        free(pt.key);
        free(pt.rows);
    }
    free(p);
    if (st != RL_OK) return st;
    free(pt.key);
    *rows = pt.rows;
    return RL_OK;
}

/* Does every row have the header's number of fields (no quoting in these
 * tables: fields are counted by commas)? */
static bool rows_fit_header(const char *rows, const char *header)
{
    int want = 1;
    for (const char *h = header; *h; h++) want += *h == ',';
    int got = 1;
    for (const char *p = rows; *p; p++) {
        if (*p == ',') got++;
        else if (*p == '\n') {
            if (got != want) return false;
            got = 1;
        }
    }
    return true;
}

rl_status rl_sweep_finish(rl_sweep *s, long *n_points)
{
    DIR *d = opendir(s->points_dir);
    if (!d) return rl_fail(RL_EIO, "%s: %s", s->points_dir, strerror(errno));
    point *pts = NULL;
    size_t np = 0, cap = 0;
    rl_status st = RL_OK;
    struct dirent *e;
    while (st == RL_OK && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len != 20 || strcmp(e->d_name + 16, ".csv") != 0) continue; /* skip temp files */
        if (np == cap) {
            cap = cap ? 2 * cap : 64;
            point *np2 = realloc(pts, cap * sizeof *pts);
            if (!np2) {
                st = rl_fail(RL_ENOMEM, "sweep: no memory");
                break;
            }
            pts = np2;
        }
        char *path = joinf("%s/%s", s->points_dir, e->d_name);
        if (!path) {
            st = rl_fail(RL_ENOMEM, "sweep: no memory");
            break;
        }
        st = read_point(path, &pts[np]);
        if (st == RL_OK && !rows_fit_header(pts[np].rows, s->header)) {
            /* written under another header (an older version of the sweep):
             * left out, so the table stays well-formed */
            fprintf(stderr, "sweep: %s: point '%s' has rows of another width than the header of %s: left out "
                            "(delete it or rerun with --force)\n", path, pts[np].key, s->table_path);
            free(pts[np].key);
            free(pts[np].rows);
        } else if (st == RL_OK) {
            np++;
        }
        free(path);
    }
    closedir(d);
    if (st == RL_OK) {
        if (np > 1) qsort(pts, np, sizeof *pts, point_cmp); /* qsort(NULL, 0, ...) is undefined */
        rl_atomic_file af;
        st = rl_atomic_open(&af, s->table_path);
        if (st == RL_OK) {
            fprintf(af.fp, "%s\n", s->header);
            for (size_t i = 0; i < np; i++) fputs(pts[i].rows, af.fp);
            st = rl_atomic_commit(&af);
        }
    }
    for (size_t i = 0; i < np; i++) {
        free(pts[i].key);
        free(pts[i].rows);
    }
    free(pts);
    if (n_points) *n_points = (long)np;
    return st;
}

/* ---- progress ---- */

void rl_progress_start(rl_progress *p, const char *what, long total, bool quiet)
{
    *p = (rl_progress){.total = total, .t0 = rl_now(), .quiet = quiet, .what = what,
                       .tty = isatty(STDERR_FILENO) == 1};
}

/* On a terminal one line rewritten in place; into a file or pipe a new line
 * at most every 5 seconds (and for the last point), so logs stay readable. */
void rl_progress_step(rl_progress *p, const char *point, bool skipped)
{
    p->done++;
    if (skipped) p->skipped++;
    if (p->quiet) return;
    double now = rl_now(), el = now - p->t0;
    if (!p->tty && p->done < p->total && now - p->last < 5.0) return;
    p->last = now;
    long ran = p->done - p->skipped;
    double rate = el > 0 ? (double)ran / el : 0.0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0.0;
    fprintf(stderr, "%s%s: %ld/%ld (%ld skipped: done before) %.2f points/s ETA %.0fs  %s%s%s",
            p->tty ? "\r" : "", p->what, p->done, p->total, p->skipped, rate, eta,
            skipped ? "skip " : "", point, p->tty ? "\033[K" : "\n");
    fflush(stderr);
}

void rl_progress_end(rl_progress *p)
{
    if (p->quiet) return;
    fprintf(stderr, "%s%s: %ld points (%ld already done) in %.1fs\n", p->tty ? "\n" : "", p->what,
            p->done, p->skipped, rl_now() - p->t0);
}

/* ---- manifest ---- */

static char *cpu_model(void)
{
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp) return strdup("unknown");
    char line[512];
    char *res = NULL;
    while (!res && fgets(line, sizeof line, fp)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ') c++;
                c[strcspn(c, "\n")] = '\0';
                res = strdup(c);
            }
        }
    }
    fclose(fp);
    return res ? res : strdup("unknown");
}

/* What the figures stand on: the CPU's vector features, the BLAS kernels in
 * use and how they were chosen, and the SGEMM rate (1024^3) beside the
 * register-only FMA peak, both measured now at the current thread count
 * (about 0.8 s; once per process). */
static json_t *machine_json(void)
{
    static double sgemm = -1, fma = -1;
    static int threads = 0;
    const int t = rl_blas_threads();
    if (threads != t) {
        threads = t;
        if (rl_blas_sgemm_rate(1024, 0.5, &sgemm) != RL_OK) sgemm = -1;
        if (rl_cpu_fma_peak(RL_TIER_AVX512, t, 0.3, &fma) != RL_OK) fma = -1;
    }
    rl_cpu_features f;
    rl_cpu_detect(&f);
    char desc[256];
    rl_cpu_describe(&f, desc, sizeof desc);
    json_t *j = json_object();
    json_object_set_new(j, "cpu_features", json_string(desc));
    json_object_set_new(j, "openblas_core", json_string(rl_blas_corename()));
    json_object_set_new(j, "openblas_core_selection",
                        json_string(rl_blas_selection()[0] ? rl_blas_selection() : "not recorded (library use)"));
    json_object_set_new(j, "threads", json_integer(t));
    if (sgemm > 0) json_object_set_new(j, "sgemm_gflops", json_real(sgemm));
    if (fma > 0) json_object_set_new(j, "fma_peak_gflops", json_real(fma));
    if (sgemm > 0 && fma > 0) json_object_set_new(j, "sgemm_fraction_of_fma_peak", json_real(sgemm / fma));
    return j;
}

#ifdef __has_include
#if __has_include("source_id.h")
#include "source_id.h"
#endif
#endif
#ifndef RL_SOURCE_ID
#define RL_SOURCE_ID "unknown"
#endif
const char *rl_source_id(void) { return RL_SOURCE_ID; }

rl_status rl_manifest_write(const char *dir, const char *experiment, int argc, char **argv,
                            const char *config_json, uint64_t seed)
{
    json_t *m = json_object();
    json_t *cmd = json_array();
    for (int i = 0; i < argc; i++) json_array_append_new(cmd, json_string(argv[i]));
    json_object_set_new(m, "experiment", json_string(experiment));
    json_object_set_new(m, "command", cmd);
    json_object_set_new(m, "seed", json_integer((json_int_t)seed));
    json_object_set_new(m, "source", json_string(rl_source_id()));
    if (config_json) {
        json_error_t err;
        json_t *cfg = json_loads(config_json, 0, &err);
        if (!cfg) {
            json_decref(m);
            return rl_fail(RL_EINVAL, "manifest: config is not JSON: %s", err.text);
        }
        json_object_set_new(m, "config", cfg);
    }
    json_t *v = json_object();
    json_object_set_new(v, "openblas", json_string(rl_blas_config()));
    json_object_set_new(v, "openblas_core", json_string(rl_blas_corename()));
    json_object_set_new(v, "blas_threads", json_integer(rl_blas_threads()));
    json_object_set_new(v, "blas_threading", json_string(rl_blas_threading()));
    json_object_set_new(v, "compiler", json_string(__VERSION__));
    json_object_set_new(v, "jansson", json_string(JANSSON_VERSION));
    json_object_set_new(m, "versions", v);
    char *cpu = cpu_model();
    json_object_set_new(m, "cpu", json_string(cpu ? cpu : "unknown"));
    free(cpu);
    json_object_set_new(m, "machine", machine_json());
    json_object_set_new(m, "online_cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    char ts[32];
    time_t now = time(NULL);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_object_set_new(m, "written_utc", json_string(ts));
    char *text = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(m);
    if (!text) return rl_fail(RL_ENOMEM, "manifest: no memory");
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    rl_status st;
    if (!path) {
        st = rl_fail(RL_ENOMEM, "manifest: no memory");
    } else {
        snprintf(path, n, "%s/manifest.json", dir);
        size_t tl = strlen(text);
        text[tl] = '\n';
        st = rl_write_file_atomic(path, text, tl + 1);
        text[tl] = '\0';
    }
    free(path);
    free(text);
    return st;
}

rl_status rl_json_canonical(const char *json, char **canonical)
{
    *canonical = NULL;
    json_error_t err;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &err);
    if (!v) return rl_fail(RL_EINVAL, "not JSON (%s at %d): %.60s", err.text, err.position, json);
    *canonical = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(v);
    return *canonical ? RL_OK : rl_fail(RL_ENOMEM, "json: no memory");
}

rl_status rl_manifest_config_member(const char *dir, const char *name, char **canonical)
{
    *canonical = NULL;
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    if (!path) return rl_fail(RL_ENOMEM, "manifest: no memory");
    snprintf(path, n, "%s/manifest.json", dir);
    json_error_t err;
    json_t *m = json_load_file(path, 0, &err);
    rl_status st = RL_OK;
    if (!m) {
        FILE *fp = fopen(path, "r");
        st = fp ? rl_fail(RL_EFORMAT, "%s: not JSON (%s, line %d)", path, err.text, err.line)
                : rl_fail(RL_ENOTFOUND, "%s: no manifest", path);
        if (fp) fclose(fp);
    } else {
        json_t *v = json_object_get(json_object_get(m, "config"), name);
        if (!v) st = rl_fail(RL_ENOTFOUND, "%s: no config.%s", path, name);
        else if (!(*canonical = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)))
            st = rl_fail(RL_ENOMEM, "manifest: no memory");
        json_decref(m);
    }
    free(path);
    return st;
}
