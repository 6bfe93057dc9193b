/* rl_budget.h -- the memory budget: sizes that come from a file or a flag
 * are turned into bytes and checked here before anything is allocated.
 *
 * A crafted 21 KB file can declare tokens = 10^9 or a 20,000 x 1 layer; the
 * reader must then refuse with a message naming the field and the bytes it
 * would take (exit 2), not allocate gigabytes and fail later or get killed.
 * Every reader and command computes what it is about to allocate, saturating
 * at SIZE_MAX (rl_size_mul / rl_size_add), and calls rl_budget_check.
 *
 * The budget (bytes) is, unless rl_budget_set gave one (`--max-memory`):
 *     RL_BUDGET_DEFAULT_PCT % of physical memory (sysconf),
 * lowered, when the process runs under a soft RLIMIT_AS or RLIMIT_DATA, to
 * that same fraction of the address space the limit still leaves free (the
 * limit minus the current VmSize from /proc/self/statm). The check compares
 * the bytes already held through rl_alloc (rl_mem_current) plus the new need
 * with the budget. It is a policy check before allocating, not an allocator:
 * code that allocates without asking is unaffected.
 */
#ifndef RL_BUDGET_H
#define RL_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "rl_err.h"

#define RL_BUDGET_DEFAULT_PCT 50

/* a * b and a + b, saturating at SIZE_MAX (a need too large to count is
 * simply over any budget). */
static inline size_t rl_size_mul(size_t a, size_t b)
{
    return (a != 0 && b > SIZE_MAX / a) ? SIZE_MAX : a * b;
}
static inline size_t rl_size_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

/* The budget in bytes (the default until rl_budget_set). */
size_t rl_budget(void);
/* Set the budget (bytes > 0); 0 returns to the default. Call before any
 * thread that reads it starts (the commands do so while parsing flags). */
void rl_budget_set(size_t bytes);
/* The default: RL_BUDGET_DEFAULT_PCT % of physical memory or of what
 * RLIMIT_AS / RLIMIT_DATA leave, whichever is smaller. */
size_t rl_budget_default(void);
/* What the budget is, for messages: "--max-memory" or "50% of physical
 * memory" / "50% of the address space RLIMIT_AS leaves". */
const char *rl_budget_source(void);

/* RL_OK if rl_mem_current() + need fits the budget; else RL_EBUDGET with
 * "<what> would take N bytes (x.y GB), over the memory budget of M bytes (...;
 * --max-memory BYTES changes it)", `what` formatted printf-style (it should
 * name the file and the field or flag the size comes from). */
rl_status rl_budget_check(size_t need, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
