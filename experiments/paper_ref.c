/* paper_ref.c -- experiments/reference/paper.csv and its look-ups
 * (paper_ref.h). */
#include "paper_ref.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NFIELDS 9
static const char *const header[NFIELDS] = {"id", "label", "figure", "unit", "claim",
                                            "source", "where", "url", "note"};

struct paper_refs {
    char *path;
    char *text;          /* the file, fields cut in place */
    paper_ref *rows;
    int n;
};

void paper_refs_free(paper_refs *t)
{
    if (!t) return;
    free(t->path);
    free(t->text);
    free(t->rows);
    free(t);
}

/* Cut one RFC 4180 record starting at *p into fields (unquoted in place);
 * *p moves past the record's line end. Returns the field count, or -1 on an
 * unterminated quote or text after a closing quote. */
static int cut_record(char **p, char **f, int max, int *lines)
{
    char *s = *p, *w = s;
    int n = 0;
    for (;;) {
        if (n == max) return max + 1;
        f[n++] = w;
        if (*s == '"') {
            s++;
            for (;;) {
                if (*s == '\0') return -1;
                if (*s == '"' && s[1] == '"') *w++ = '"', s += 2;
                else if (*s == '"') break;
                else {
                    if (*s == '\n') ++*lines;
                    *w++ = *s++;
                }
            }
            s++;
            if (*s != ',' && *s != '\n' && *s != '\r' && *s != '\0') return -1;
        } else {
            while (*s != ',' && *s != '\n' && *s != '\r' && *s != '\0') *w++ = *s++;
        }
        char c = *s;
        *w = '\0';
        if (c == ',') {
            s++;
            w = s;
            continue;
        }
        /* *w = '\0' may have overwritten the line end at s: step by c */
        if (c == '\r') s++, c = s[0] == '\n' ? '\n' : '\0';
        if (c == '\n') s++;
        *p = s;
        return n;
    }
}

static bool id_ok(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_')) return false;
    return true;
}

static rl_status parse(paper_refs *t)
{
    char *p = t->text;
    int line = 1, cap = 0;
    bool have_header = false;
    while (*p) {
        int at = line;
        if (*p == '#' || *p == '\n' || *p == '\r') { /* comment or blank line */
            char *e = strchr(p, '\n');
            p = e ? e + 1 : p + strlen(p);
            line++;
            continue;
        }
        char *f[NFIELDS + 1];
        int extra = 0;
        int n = cut_record(&p, f, NFIELDS, &extra);
        line += 1 + extra;
        if (n < 0) return rl_fail(RL_EFORMAT, "%s:%d: unterminated or misplaced quote", t->path, at);
        if (n != NFIELDS)
            return rl_fail(RL_EFORMAT, "%s:%d: %s%d fields, expected %d (id,label,figure,...)", t->path, at,
                           n > NFIELDS ? "more than " : "", n > NFIELDS ? NFIELDS : n, NFIELDS);
        if (!have_header) {
            for (int i = 0; i < NFIELDS; i++)
                if (strcmp(f[i], header[i]) != 0)
                    return rl_fail(RL_EFORMAT, "%s:%d: header field %d is '%s', expected '%s'", t->path, at, i + 1,
                                   f[i], header[i]);
            have_header = true;
            continue;
        }
        if (t->n == cap) {
            cap = cap ? 2 * cap : 64;
            paper_ref *r = realloc(t->rows, (size_t)cap * sizeof *r);
            if (!r) return rl_fail(RL_ENOMEM, "%s: no memory", t->path);
            t->rows = r;
        }
        paper_ref *r = &t->rows[t->n];
        *r = (paper_ref){f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], at, false};
        if (!id_ok(r->id)) return rl_fail(RL_EFORMAT, "%s:%d: id '%s' is not [a-z0-9_]+", t->path, at, r->id);
        const char *need[6] = {r->figure, r->unit, r->claim, r->source, r->where, NULL};
        static const char *const names[5] = {"figure", "unit", "claim", "source", "where"};
        for (int i = 0; need[i]; i++)
            if (!*need[i]) return rl_fail(RL_EFORMAT, "%s:%d: '%s' has an empty %s", t->path, at, r->id, names[i]);
        for (int i = 0; i < t->n; i++)
            if (strcmp(t->rows[i].id, r->id) == 0)
                return rl_fail(RL_EFORMAT, "%s:%d: id '%s' already defined on line %d", t->path, at, r->id,
                               t->rows[i].line);
        t->n++;
    }
    if (!have_header) return rl_fail(RL_EFORMAT, "%s: no header line", t->path);
    return RL_OK;
}

rl_status paper_refs_load(paper_refs **out, const char *path)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return rl_fail(RL_EIO, "%s: cannot open: %s", path, strerror(errno));
    paper_refs *t = calloc(1, sizeof *t);
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    rl_status st = RL_OK;
    if (!t || !text || !(t->path = strdup(path))) st = rl_fail(RL_ENOMEM, "%s: no memory", path);
    while (st == RL_OK) {
        if (len + 1 == cap) {
            char *q = realloc(text, cap *= 2);
            if (!q) {
                st = rl_fail(RL_ENOMEM, "%s: no memory", path);
                break;
            }
            text = q;
        }
        size_t got = fread(text + len, 1, cap - 1 - len, fp);
        len += got;
        if (got == 0) break;
    }
    if (st == RL_OK && ferror(fp)) st = rl_fail(RL_EIO, "%s: read error", path);
    fclose(fp);
    if (st == RL_OK) {
        text[len] = '\0';
        if (strlen(text) != len) st = rl_fail(RL_EFORMAT, "%s: contains a NUL byte", path);
    }
    if (t) t->text = text;
    else free(text);
    if (st == RL_OK) st = parse(t);
    if (st != RL_OK) {
        paper_refs_free(t);
        return st;
    }
    *out = t;
    return RL_OK;
}

const char *paper_refs_path(const paper_refs *t) { return t->path; }
int paper_refs_count(const paper_refs *t) { return t->n; }

const paper_ref *paper_refs_at(const paper_refs *t, int i)
{
    RL_ASSERT(i >= 0 && i < t->n, "row %d of %d", i, t->n);
    return &t->rows[i];
}

const paper_ref *paper_ref_find(paper_refs *t, const char *id)
{
    for (int i = 0; t && i < t->n; i++)
        if (strcmp(t->rows[i].id, id) == 0) {
            t->rows[i].used = true;
            return &t->rows[i];
        }
    return NULL;
}

static bool number(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return *s && !*end && !errno && isfinite(*v);
}

double paper_ref_value(paper_refs *t, const char *id)
{
    const paper_ref *r = paper_ref_find(t, id);
    double v;
    return r && number(r->figure, &v) ? v : NAN;
}

/* ---- cells ---- */

typedef struct {
    char *buf;
    size_t len, at;
} cell;

/* Append s, escaping '|' for a Markdown table; stops at the buffer's end. */
static void put(cell *c, const char *s)
{
    for (; *s && c->at + 2 < c->len; s++) {
        if (*s == '|') c->buf[c->at++] = '\\';
        c->buf[c->at++] = *s;
    }
    c->buf[c->at] = '\0';
}

/* A figure for a cell: integers with thousands separators, else as written. */
static void put_figure(cell *c, const paper_ref *r)
{
    double v;
    if (number(r->figure, &v) && v == floor(v) && fabs(v) >= 1e4 && fabs(v) < 1e15 && !strpbrk(r->figure, "eE.")) {
        char d[32], o[48];
        int n = snprintf(d, sizeof d, "%.0f", fabs(v)), j = 0;
        if (v < 0) o[j++] = '-';
        for (int i = 0; i < n; i++) {
            if (i && (n - i) % 3 == 0) o[j++] = ',';
            o[j++] = d[i];
        }
        o[j] = '\0';
        put(c, o);
    } else {
        put(c, r->figure);
    }
}

rl_status paper_ref_cell(paper_refs *t, const char *ids, char *buf, size_t len)
{
    RL_ASSERT(buf && len > 0, "paper_ref_cell: no buffer");
    cell c = {buf, len, 0};
    buf[0] = '\0';
    const paper_ref *rows[32];
    int n = 0;
    rl_status st = RL_OK;
    for (const char *p = ids; *p;) {
        while (*p == ' ') p++;
        size_t k = strcspn(p, " ");
        if (!k) break;
        char id[96];
        snprintf(id, sizeof id, "%.*s", (int)(k < sizeof id ? k : sizeof id - 1), p);
        p += k;
        const paper_ref *r = paper_ref_find(t, id);
        if (!r) {
            if (st == RL_OK)
                st = rl_fail(RL_ENOTFOUND, "%s: no reference '%s'", t ? paper_refs_path(t) : PAPER_REF_CSV, id);
            put(&c, n ? "; MISSING reference '" : "MISSING reference '");
            put(&c, id);
            put(&c, "'");
            continue;
        }
        RL_ASSERT(n < 32, "more than 32 ids in one cell");
        rows[n] = r;
        bool quote = !strcmp(r->unit, "quote") || !strcmp(r->unit, "text");
        if (n++ || c.at) put(&c, "; ");
        if (*r->label) {
            put(&c, r->label);
            put(&c, ": ");
        }
        if (!strcmp(r->unit, "quote")) put(&c, "\"");
        put_figure(&c, r);
        if (!strcmp(r->unit, "quote")) put(&c, "\"");
        if (!quote) {
            put(&c, !strcmp(r->unit, "%") ? "" : " ");
            put(&c, r->unit);
        }
    }
    /* each distinct `where` once, then the ids */
    for (int i = 0; i < n; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++) seen |= strcmp(rows[j]->where, rows[i]->where) == 0;
        if (seen) continue;
        put(&c, i ? "; " : " -- ");
        put(&c, rows[i]->where);
    }
    if (n) {
        put(&c, " [paper.csv: ");
        for (int i = 0; i < n; i++) {
            if (i) put(&c, ", ");
            put(&c, rows[i]->id);
        }
        put(&c, "]");
    }
    return st;
}
