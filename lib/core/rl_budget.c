/* rl_budget.c -- the memory budget (see the header). */
#include "rl_budget.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "rl_tensor.h"

static size_t budget_set;          /* 0: the default */
static char budget_why[96];

/* The process's address-space size now (VmSize), or 0 if unknown. */
static size_t vm_size(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    if (!fp) return 0;
    unsigned long pages = 0;
    int ok = fscanf(fp, "%lu", &pages) == 1; /* the kernel's own number: no need for strictness */
    fclose(fp);
    long ps = sysconf(_SC_PAGESIZE);
    return ok && ps > 0 ? rl_size_mul((size_t)pages, (size_t)ps) : 0;
}

/* What a soft limit `res` leaves of the address space, or SIZE_MAX. */
static size_t limit_left(int res)
{
    struct rlimit rl;
    if (getrlimit(res, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
    size_t lim = rl.rlim_cur > SIZE_MAX ? SIZE_MAX : (size_t)rl.rlim_cur, used = vm_size();
    return lim > used ? lim - used : 0;
}

size_t rl_budget_default(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
    size_t phys = pages > 0 && ps > 0 ? rl_size_mul((size_t)pages, (size_t)ps) : SIZE_MAX;
    size_t base = phys;
    const char *from = "physical memory";
    size_t as = limit_left(RLIMIT_AS), data = limit_left(RLIMIT_DATA);
    if (as < base) base = as, from = "the address space RLIMIT_AS leaves";
    if (data < base) base = data, from = "what RLIMIT_DATA leaves";
    snprintf(budget_why, sizeof budget_why, "%d%% of %s", RL_BUDGET_DEFAULT_PCT, from);
    return base / 100 * RL_BUDGET_DEFAULT_PCT;
}

size_t rl_budget(void) { return budget_set ? budget_set : rl_budget_default(); }

void rl_budget_set(size_t bytes)
{
    budget_set = bytes;
    if (bytes) snprintf(budget_why, sizeof budget_why, "--max-memory");
}

const char *rl_budget_source(void)
{
    if (!budget_set) rl_budget_default(); /* fills budget_why */
    return budget_why;
}

/* "1.23 GB" (SI, like the rest of the tool's sizes) into buf. */
static const char *human(size_t b, char *buf, size_t n)
{
    static const char *const units[] = {"bytes", "kB", "MB", "GB", "TB", "PB", "EB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1000.0 && u < 6) v /= 1000.0, u++;
    if (u == 0) snprintf(buf, n, "%zu bytes", b);
    else snprintf(buf, n, "%.3g %s", v, units[u]);
    return buf;
}

rl_status rl_budget_check(size_t need, const char *fmt, ...)
{
    size_t budget = rl_budget(), held = rl_mem_current();
    if (rl_size_add(need, held) <= budget) return RL_OK;
    char what[600], a[32], b[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char held_txt[64] = "", src[200];
    if (held) snprintf(held_txt, sizeof held_txt, " beside %zu bytes already held", held);
    if (budget_set) snprintf(src, sizeof src, "%s, set by --max-memory", human(budget, b, sizeof b));
    else snprintf(src, sizeof src, "%s: %s; --max-memory BYTES changes it", human(budget, b, sizeof b),
                  rl_budget_source());
    if (need == SIZE_MAX)
        return rl_fail(RL_EBUDGET, "%s would take more bytes than a 64-bit size can count, over the memory budget of "
                       "%zu bytes (%s)", what, budget, src);
    return rl_fail(RL_EBUDGET, "%s would take %zu bytes (%s)%s, over the memory budget of %zu bytes (%s)", what, need,
                   human(need, a, sizeof a), held_txt, budget, src);
}
