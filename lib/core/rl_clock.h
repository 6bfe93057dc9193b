/* rl_clock.h -- clocks for timers and progress: monotonic wall time and the
 * process's CPU time, in seconds. */
#ifndef RL_CLOCK_H
#define RL_CLOCK_H

double rl_now(void);      /* CLOCK_MONOTONIC */
double rl_cpu_now(void);  /* CLOCK_PROCESS_CPUTIME_ID: all threads of the process */

#endif
