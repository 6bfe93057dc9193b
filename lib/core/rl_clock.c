/* rl_clock.c -- clock_gettime wrappers. */
#include "rl_clock.h"

#include <time.h>

static double seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double rl_now(void) { return seconds(CLOCK_MONOTONIC); }
double rl_cpu_now(void) { return seconds(CLOCK_PROCESS_CPUTIME_ID); }
