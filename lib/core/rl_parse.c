/* rl_parse.c -- strict number parsing (see the header for the rule).
 *
 * Integers are accumulated digit by digit in uint64 with an overflow check,
 * rather than through strtoll, which skips leading white space, accepts '+'
 * and "0x" (with base 0) and stops silently at the first non-digit. Doubles
 * go through strtod after the characters are checked to be a plain decimal
 * number, so strtod's "inf", "nan", hex floats and leading space never get
 * in. */
#include "rl_parse.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Values longer than this are cut in messages. */
#define SHOW 64

static const char *sep(const char *what) { return what && *what ? " " : ""; }
static const char *name(const char *what) { return what ? what : ""; }

static rl_status bad(const char *what, const char *s, const char *why)
{
    return rl_fail(RL_EINVAL, "%s%s'%.*s%s' %s", name(what), sep(what), SHOW, s,
                   strlen(s) > SHOW ? "..." : "", why);
}

/* The digits of s[0..] into *v; false if s is not all digits, is empty, or
 * the value exceeds UINT64_MAX (then *overflow is set). */
static bool digits_u64(const char *s, uint64_t *v, bool *overflow)
{
    *overflow = false;
    if (!*s) return false;
    uint64_t x = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10) *overflow = true;
        else x = x * 10 + d;
    }
    *v = x;
    return !*overflow;
}

rl_status rl_parse_u64(const char *s, uint64_t lo, uint64_t hi, const char *what, uint64_t *out)
{
    if (!s) return rl_fail(RL_EINVAL, "%s%smissing value", name(what), sep(what));
    else if (!*s) return rl_fail(RL_EINVAL, "%s%s'' is empty (expected an integer in %llu..%llu)",
                                 name(what), sep(what), (unsigned long long)lo, (unsigned long long)hi);
    uint64_t v = 0;
    bool ovf;
    if (!digits_u64(s, &v, &ovf) && !ovf) return bad(what, s, "is not a non-negative integer");
    if (ovf || v < lo || v > hi) {
        char why[96];
        snprintf(why, sizeof why, "is outside %llu..%llu", (unsigned long long)lo, (unsigned long long)hi);
        return bad(what, s, why);
    }
    *out = v;
    return RL_OK;
}

rl_status rl_parse_i64(const char *s, int64_t lo, int64_t hi, const char *what, int64_t *out)
{
    if (!s) return rl_fail(RL_EINVAL, "%s%smissing value", name(what), sep(what));
    else if (!*s) return rl_fail(RL_EINVAL, "%s%s'' is empty (expected an integer in %lld..%lld)",
                                 name(what), sep(what), (long long)lo, (long long)hi);
    bool neg = s[0] == '-';
    uint64_t m = 0;
    bool ovf;
    if (!digits_u64(s + neg, &m, &ovf) && !ovf) return bad(what, s, "is not an integer");
    int64_t v = 0;
    if (!ovf) {
        if (neg && m <= (uint64_t)INT64_MAX + 1) v = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
        else if (!neg && m <= (uint64_t)INT64_MAX) v = (int64_t)m;
        else ovf = true;
    }
    if (ovf || v < lo || v > hi) {
        char why[96];
        snprintf(why, sizeof why, "is outside %lld..%lld", (long long)lo, (long long)hi);
        return bad(what, s, why);
    }
    *out = v;
    return RL_OK;
}

rl_status rl_parse_int(const char *s, int lo, int hi, const char *what, int *out)
{
    int64_t v;
    RL_TRY(rl_parse_i64(s, lo, hi, what, &v));
    *out = (int)v;
    return RL_OK;
}

/* [-]digits[.digits][(e|E)[+-]digits] or [-].digits[...]: what strtod may see. */
static bool plain_decimal(const char *s)
{
    const char *p = s;
    if (*p == '-') p++;
    size_t ni = strspn(p, "0123456789");
    p += ni;
    size_t nf = 0;
    if (*p == '.') {
        p++;
        nf = strspn(p, "0123456789");
        p += nf;
    }
    if (ni + nf == 0) return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        size_t ne = strspn(p, "0123456789");
        if (ne == 0) return false;
        p += ne;
    }
    return *p == '\0';
}

static rl_status parse_real(const char *s, double lo, double hi, bool lo_open, const char *what, double *out)
{
    if (!s) return rl_fail(RL_EINVAL, "%s%smissing value", name(what), sep(what));
    else if (!*s) return rl_fail(RL_EINVAL, "%s%s'' is empty (expected a number)", name(what), sep(what));
    else if (!plain_decimal(s)) return bad(what, s, "is not a number");
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    /* ERANGE with a finite result is underflow to a tiny or zero value: keep it */
    bool ovf = (errno == ERANGE && !isfinite(v)) || !isfinite(v);
    if (ovf || *end || (lo_open ? !(v > lo) : !(v >= lo)) || !(v <= hi)) {
        char why[96];
        snprintf(why, sizeof why, "is outside %s%g, %g]", lo_open ? "(" : "[", lo, hi);
        return bad(what, s, why);
    }
    *out = v;
    return RL_OK;
}

rl_status rl_parse_double(const char *s, double lo, double hi, const char *what, double *out)
{
    return parse_real(s, lo, hi, false, what, out);
}

rl_status rl_parse_positive(const char *s, double hi, const char *what, double *out)
{
    return parse_real(s, 0.0, hi, true, what, out);
}

rl_status rl_parse_bool(const char *s, const char *what, bool *out)
{
    if (!s) return rl_fail(RL_EINVAL, "%s%smissing value", name(what), sep(what));
    if (strcmp(s, "true") == 0) *out = true;
    else if (strcmp(s, "false") == 0) *out = false;
    else return bad(what, s, "is not true or false");
    return RL_OK;
}

rl_status rl_parse_bytes(const char *s, uint64_t lo, uint64_t hi, const char *what, uint64_t *out)
{
    if (!s) return rl_fail(RL_EINVAL, "%s%smissing value", name(what), sep(what));
    size_t n = strlen(s);
    unsigned shift = 0;
    if (n > 0) {
        switch (s[n - 1]) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        default: break;
        }
    }
    char num[32];
    size_t nd = shift ? n - 1 : n;
    if (nd == 0 || nd >= sizeof num) {
        if (nd == 0) return bad(what, s, "is not a byte count (an integer, optionally with K, M, G or T)");
        char why[96];
        snprintf(why, sizeof why, "is outside %llu..%llu bytes", (unsigned long long)lo, (unsigned long long)hi);
        return bad(what, s, why);
    }
    memcpy(num, s, nd);
    num[nd] = '\0';
    uint64_t v = 0;
    bool ovf;
    if (!digits_u64(num, &v, &ovf) && !ovf)
        return bad(what, s, "is not a byte count (an integer, optionally with K, M, G or T)");
    if (!ovf && shift && v > (UINT64_MAX >> shift)) ovf = true;
    if (!ovf) v <<= shift;
    if (ovf || v < lo || v > hi) {
        char why[96];
        snprintf(why, sizeof why, "is outside %llu..%llu bytes", (unsigned long long)lo, (unsigned long long)hi);
        return bad(what, s, why);
    }
    *out = v;
    return RL_OK;
}
