/* rl_parse.h -- strict parsing of numbers written as text, for every reader
 * of files (safetensors metadata, results tables, /proc) and every flag.
 *
 * One rule: the whole string is the number, or the call fails. No leading or
 * trailing space, no '+', no hex or octal, no "inf"/"nan", no digits
 * followed by junk ("3abc"), no empty string; integers are read in 64 bits
 * and then checked against the caller's range [lo, hi], so "4294967304" is
 * out of range for an int, never 8. atoi, atof, strtol and sscanf("%d") do
 * none of this and must not be used on text that comes from outside.
 *
 * Failure returns RL_EINVAL and leaves a message (rl_errmsg()) that names
 * `what` (the flag or "file: key" being read; may be NULL), the value and
 * the accepted range, e.g.
 *     --seeds '4294967299' is outside 1..32
 *     x.safetensors: metadata 'r' '3abc' is not an integer
 * *out is written only on success. A file reader that wants RL_EFORMAT
 * returns it instead: the message stays.
 */
#ifndef RL_PARSE_H
#define RL_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "rl_err.h"

/* Decimal integer, optional leading '-', in [lo, hi]. */
rl_status rl_parse_i64(const char *s, int64_t lo, int64_t hi, const char *what, int64_t *out);
/* Decimal integer without sign, in [lo, hi]. */
rl_status rl_parse_u64(const char *s, uint64_t lo, uint64_t hi, const char *what, uint64_t *out);
/* rl_parse_i64 into an int (lo, hi within INT_MIN..INT_MAX). */
rl_status rl_parse_int(const char *s, int lo, int hi, const char *what, int *out);
/* A finite decimal number ("1e-5", "-0.25", "3") in [lo, hi]; values that
 * overflow a double are out of range. */
rl_status rl_parse_double(const char *s, double lo, double hi, const char *what, double *out);
/* The same in (0, hi]: a positive number. */
rl_status rl_parse_positive(const char *s, double hi, const char *what, double *out);
/* "true" or "false", nothing else. */
rl_status rl_parse_bool(const char *s, const char *what, bool *out);
/* A byte count: an unsigned integer optionally followed by one of the
 * binary suffixes K, M, G, T (KiB, MiB, GiB, TiB: "512M", "2G"), in
 * [lo, hi]; the product must not overflow. */
rl_status rl_parse_bytes(const char *s, uint64_t lo, uint64_t hi, const char *what, uint64_t *out);

#endif
