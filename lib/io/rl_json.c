/* rl_json.c -- typed, dotted-key look-ups in a JSON document (rl_json.h). */
#include "rl_json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

struct rl_json {
    char *path;
    json_t *root;
};

rl_status rl_json_load(rl_json **out, const char *path)
{
    if (!out || !path) return rl_fail(RL_EINVAL, "rl_json_load: NULL argument");
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return rl_fail(RL_EIO, "%s: cannot open: %s", path, strerror(errno));
    json_error_t e;
    json_t *root = json_loadf(fp, JSON_REJECT_DUPLICATES, &e);
    fclose(fp);
    if (!root)
        return rl_fail(RL_EFORMAT, "%s: not valid JSON: %s (line %d, column %d)", path, e.text, e.line,
                       e.column);
    if (!json_is_object(root)) {
        json_decref(root);
        return rl_fail(RL_EFORMAT, "%s: the top level is not a JSON object", path);
    }
    rl_json *j = calloc(1, sizeof *j);
    char *p = strdup(path);
    if (!j || !p) {
        free(j);
        free(p);
        json_decref(root);
        return rl_fail(RL_ENOMEM, "%s: no memory", path);
    }
    j->path = p;
    j->root = root;
    *out = j;
    return RL_OK;
}

void rl_json_free(rl_json *j)
{
    if (!j) return;
    json_decref(j->root);
    free(j->path);
    free(j);
}

const char *rl_json_path(const rl_json *j) { return j->path; }

/* Walk a dotted key through nested objects; NULL when a step is missing or
 * the value is null. */
static json_t *walk(const rl_json *j, const char *key)
{
    json_t *v = j->root;
    const char *p = key;
    while (v && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char part[128];
        if (!json_is_object(v) || n == 0 || n >= sizeof part) return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        v = json_object_get(v, part);
        p += n + (dot ? 1 : 0);
        if (dot && !*p) return NULL; /* trailing dot */
    }
    return json_is_null(v) ? NULL : v;
}

static rl_status missing(const rl_json *j, const char *key)
{
    return rl_fail(RL_ENOTFOUND, "%s: field '%s' is missing", j->path, key);
}

bool rl_json_has(const rl_json *j, const char *key) { return walk(j, key) != NULL; }

rl_status rl_json_int(const rl_json *j, const char *key, long long lo, long long hi, long long *out)
{
    json_t *v = walk(j, key);
    if (!v) return missing(j, key);
    double d;
    if (json_is_integer(v)) {
        long long x = (long long)json_integer_value(v);
        if (x < lo || x > hi)
            return rl_fail(RL_EFORMAT, "%s: field '%s' = %lld is outside [%lld, %lld]", j->path, key, x, lo, hi);
        *out = x;
        return RL_OK;
    } else if (json_is_real(v) && (d = json_real_value(v), isfinite(d)) && d == floor(d)) {
        if (d < (double)lo || d > (double)hi)
            return rl_fail(RL_EFORMAT, "%s: field '%s' = %g is outside [%lld, %lld]", j->path, key, d, lo, hi);
        *out = (long long)d;
        return RL_OK;
    }
    char *txt = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    rl_status st = rl_fail(RL_EFORMAT, "%s: field '%s' = %.60s is not an integer", j->path, key,
                           txt ? txt : "?");
    free(txt);
    return st;
}

rl_status rl_json_str(const rl_json *j, const char *key, const char **out)
{
    json_t *v = walk(j, key);
    if (!v) return missing(j, key);
    if (!json_is_string(v)) return rl_fail(RL_EFORMAT, "%s: field '%s' is not a string", j->path, key);
    *out = json_string_value(v);
    return RL_OK;
}

rl_status rl_json_bool(const rl_json *j, const char *key, bool *out)
{
    json_t *v = walk(j, key);
    if (!v) return missing(j, key);
    if (!json_is_boolean(v)) return rl_fail(RL_EFORMAT, "%s: field '%s' is not true/false", j->path, key);
    *out = json_is_true(v);
    return RL_OK;
}

rl_status rl_json_size(const rl_json *j, const char *key, size_t *out)
{
    json_t *v = walk(j, key);
    if (!v) return missing(j, key);
    if (json_is_object(v)) *out = json_object_size(v);
    else if (json_is_array(v)) *out = json_array_size(v);
    else return rl_fail(RL_EFORMAT, "%s: field '%s' is neither an object nor an array", j->path, key);
    return RL_OK;
}

rl_status rl_json_str_at(const rl_json *j, const char *key, size_t i, const char **out)
{
    json_t *v = walk(j, key);
    if (!v) return missing(j, key);
    if (!json_is_array(v)) return rl_fail(RL_EFORMAT, "%s: field '%s' is not an array", j->path, key);
    json_t *e = json_array_get(v, i);
    if (!e) return rl_fail(RL_ENOTFOUND, "%s: field '%s' has no element %zu", j->path, key, i);
    if (!json_is_string(e))
        return rl_fail(RL_EFORMAT, "%s: field '%s' element %zu is not a string", j->path, key, i);
    *out = json_string_value(e);
    return RL_OK;
}
