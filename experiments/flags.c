/* flags.c -- strict command-line values (see flags.h). The numbers go
 * through lib/core/rl_parse.h; this file adds the message prefix, lists and
 * names. */
#include "flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rl_budget.h"
#include "core/rl_parse.h"

/* Print "<cmd>: <message>" when st failed; true on success. */
static bool report(const char *cmd, rl_status st)
{
    if (st == RL_OK) return true;
    fprintf(stderr, "%s: %s\n", cmd, rl_errmsg());
    return false;
}

const char *flag_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value\n", cmd, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool flag_int(const char *cmd, const char *flag, const char *v, int lo, int hi, int *out)
{
    return report(cmd, rl_parse_int(v, lo, hi, flag, out));
}

bool flag_i64(const char *cmd, const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    return report(cmd, rl_parse_i64(v, lo, hi, flag, out));
}

bool flag_u64(const char *cmd, const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    return report(cmd, rl_parse_u64(v, lo, hi, flag, out));
}

bool flag_double(const char *cmd, const char *flag, const char *v, double lo, double hi, double *out)
{
    return report(cmd, rl_parse_double(v, lo, hi, flag, out));
}

bool flag_positive(const char *cmd, const char *flag, const char *v, double hi, double *out)
{
    return report(cmd, rl_parse_positive(v, hi, flag, out));
}

bool flag_bytes(const char *cmd, const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    return report(cmd, rl_parse_bytes(v, lo, hi, flag, out));
}

bool flag_max_memory(const char *cmd, const char *v)
{
    uint64_t b;
    if (!report(cmd, rl_parse_bytes(v, 1, SIZE_MAX, "--max-memory", &b))) return false;
    rl_budget_set((size_t)b);
    return true;
}

/* "a, b or c" into buf. */
static void names_text(char *buf, size_t size, const char *const *names, int n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int k = 0; k < n && at < size; k++)
        at += (size_t)snprintf(buf + at, size - at, "%s%s", k == 0 ? "" : k == n - 1 ? " or " : ", ", names[k]);
}

bool flag_choice(const char *cmd, const char *flag, const char *v, const char *const *names, int n, int *out)
{
    for (int k = 0; v && k < n; k++)
        if (strcmp(v, names[k]) == 0) {
            *out = k;
            return true;
        }
    char list[512];
    names_text(list, sizeof list, names, n);
    fprintf(stderr, "%s: %s '%s' is not %s\n", cmd, flag, v ? v : "", list);
    return false;
}

/* ---- lists ---- */

/* Split a copy of v at commas: item k is items[k]. Returns the count, or -1
 * after printing why (empty list, empty item, more than max items). *copy
 * must be freed by the caller (also on failure). */
static int split(const char *cmd, const char *flag, const char *v, int max, char **copy, char ***items)
{
    *copy = NULL;
    *items = NULL;
    if (!v || !*v) {
        fprintf(stderr, "%s: %s '' is an empty list (give at least one value)\n", cmd, flag);
        return -1;
    }
    int n = 1;
    for (const char *p = v; *p; p++) n += *p == ',';
    if (n > max) {
        fprintf(stderr, "%s: %s '%s' has %d items, at most %d are allowed\n", cmd, flag, v, n, max);
        return -1;
    }
    *copy = strdup(v);
    *items = malloc((size_t)n * sizeof **items);
    if (!*copy || !*items) {
        fprintf(stderr, "%s: %s: out of memory\n", cmd, flag);
        return -1;
    }
    char *p = *copy;
    for (int k = 0; k < n; k++) {
        char *c = strchr(p, ',');
        if (c) *c = '\0';
        if (!*p) {
            fprintf(stderr, "%s: %s '%s': item %d is empty\n", cmd, flag, v, k + 1);
            return -1;
        }
        (*items)[k] = p;
        p = c ? c + 1 : p + strlen(p);
    }
    return n;
}

/* The message of a bad item: "<cmd>: <flag> '<list>': item k: <why>". */
static void item_fail(const char *cmd, const char *flag, const char *v, int k)
{
    fprintf(stderr, "%s: %s '%s': item %d: %s\n", cmd, flag, v, k + 1, rl_errmsg());
}

/* Parse every item of the list v with item(), which returns false (and
 * leaves a message in rl_errmsg()) for a bad one. */
static int each_item(const char *cmd, const char *flag, const char *v, int max,
                     bool (*item)(const char *s, int k, void *out), void *out)
{
    char *copy, **items;
    int n = split(cmd, flag, v, max, &copy, &items);
    for (int k = 0; k < n; k++)
        if (!item(items[k], k, out)) {
            item_fail(cmd, flag, v, k);
            n = -1;
            break;
        }
    free(copy);
    free(items);
    return n;
}

typedef struct {
    int lo, hi, *out;
} int_items;

static bool int_item(const char *s, int k, void *ctx)
{
    int_items *c = ctx;
    return rl_parse_int(s, c->lo, c->hi, NULL, &c->out[k]) == RL_OK;
}

int flag_int_list(const char *cmd, const char *flag, const char *v, int lo, int hi, int *out, int max)
{
    int_items c = {lo, hi, out};
    return each_item(cmd, flag, v, max, int_item, &c);
}

typedef struct {
    double lo, hi, *out;
} double_items;

static bool double_item(const char *s, int k, void *ctx)
{
    double_items *c = ctx;
    return rl_parse_double(s, c->lo, c->hi, NULL, &c->out[k]) == RL_OK;
}

int flag_double_list(const char *cmd, const char *flag, const char *v, double lo, double hi, double *out, int max)
{
    double_items c = {lo, hi, out};
    return each_item(cmd, flag, v, max, double_item, &c);
}

int flag_name_list(const char *cmd, const char *flag, const char *v, const char *const *names, int n_names,
                   int *out, int max)
{
    char *copy, **items;
    int n = split(cmd, flag, v, max, &copy, &items);
    for (int k = 0; k < n; k++) {
        int j = 0;
        while (j < n_names && strcmp(items[k], names[j]) != 0) j++;
        if (j == n_names) {
            char list[512];
            names_text(list, sizeof list, names, n_names);
            fprintf(stderr, "%s: %s '%s': item %d '%s' is not %s\n", cmd, flag, v, k + 1, items[k], list);
            n = -1;
            break;
        }
        out[k] = j;
    }
    free(copy);
    free(items);
    return n;
}

int flag_pair_list(const char *cmd, const char *flag, const char *v, int lo, int hi, int (*out)[2], int max)
{
    char *copy, **items;
    int n = split(cmd, flag, v, max, &copy, &items);
    for (int k = 0; k < n; k++) {
        char *x = strchr(items[k], 'x');
        if (!x) {
            fprintf(stderr, "%s: %s '%s': item %d '%s' is not AxB (two integers joined by 'x')\n", cmd, flag, v,
                    k + 1, items[k]);
            n = -1;
            break;
        }
        *x = '\0';
        if (rl_parse_int(items[k], lo, hi, NULL, &out[k][0]) != RL_OK ||
            rl_parse_int(x + 1, lo, hi, NULL, &out[k][1]) != RL_OK) {
            item_fail(cmd, flag, v, k);
            n = -1;
            break;
        }
    }
    free(copy);
    free(items);
    return n;
}
