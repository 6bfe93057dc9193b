/* flags.h -- the one parser of command-line values, for every command and
 * every sweep (sweep_parse_args uses it too).
 *
 * Each function reads the value of one flag strictly (lib/core/rl_parse.h:
 * the whole string, 64-bit, range-checked; "3abc", "4294967299" for an int,
 * "" and "1,,2" are refused). On failure it prints one line to stderr,
 *     randlora <cmd>: --flag 'value' is outside 1..32
 * and returns false (lists: -1); the caller exits 2. `cmd` is the prefix of
 * the message, e.g. "randlora bench" or "randlora sweep rank".
 *
 * Lists are comma-separated, at least one item, no empty item, at most `max`
 * items (more is an error, never a silent cut); each item is checked as a
 * single value would be.
 */
#ifndef RL_FLAGS_H
#define RL_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The value of the flag argv[*i]: argv[*i + 1], advancing *i. Prints
 * "<cmd>: <flag> needs a value" and returns NULL when there is none. */
const char *flag_value(const char *cmd, int argc, char **argv, int *i);

bool flag_int(const char *cmd, const char *flag, const char *v, int lo, int hi, int *out);
bool flag_i64(const char *cmd, const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out);
bool flag_u64(const char *cmd, const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out);
/* A finite number in [lo, hi]. */
bool flag_double(const char *cmd, const char *flag, const char *v, double lo, double hi, double *out);
/* A finite number in (0, hi]. */
bool flag_positive(const char *cmd, const char *flag, const char *v, double hi, double *out);
/* A byte count: integer with an optional K, M, G or T suffix (powers of 1024). */
bool flag_bytes(const char *cmd, const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out);
/* One of names[0..n): its index into *out; the message lists the names. */
bool flag_choice(const char *cmd, const char *flag, const char *v, const char *const *names, int n, int *out);

/* --max-memory BYTES, which every command that reads files or sizes its
 * memory from flags accepts: sets the memory budget (lib/core/rl_budget.h)
 * that inputs are checked against before anything is allocated. */
bool flag_max_memory(const char *cmd, const char *v);
#define FLAG_MAX_MEMORY_USAGE                                                                        \
    "  --max-memory BYTES  memory budget for what the inputs need (K, M, G, T suffixes; default half\n" \
    "                      of physical memory, or of what RLIMIT_AS leaves); over it: exit 2\n"

/* Comma lists: the number of items (>= 1) written to out, or -1. */
int flag_int_list(const char *cmd, const char *flag, const char *v, int lo, int hi, int *out, int max);
int flag_double_list(const char *cmd, const char *flag, const char *v, double lo, double hi, double *out,
                     int max);
/* Each item one of names[0..n); indices into out. */
int flag_name_list(const char *cmd, const char *flag, const char *v, const char *const *names, int n, int *out,
                   int max);
/* Items "AxB" (two integers in [lo, hi] joined by 'x'), into out[k][0..1]. */
int flag_pair_list(const char *cmd, const char *flag, const char *v, int lo, int hi, int (*out)[2], int max);

#endif
