/* lockstep.h -- two processes timed by turns, so that both see the same machine.
 *
 * On a shared VM the machine's speed drifts by 10-20% over tens of seconds;
 * two programs timed one after the other can land in different states and
 * their ratio moves with it. Taking turns step by step (`randlora bench
 * --lockstep` against experiments/reference/peft_bench.py --lockstep, or
 * against another `randlora bench`), each program times only its own steps,
 * and both sample the same stretch of time.
 *
 * Two FIFOs, one each way (mkfifo; bench.sh makes them). A token is 12 bytes:
 * the sender's process CPU seconds so far (a native double, for foreign_cpu)
 * and an int32 that is 1 when the sender has no turns left. The second
 * process opens with a token ("ready") once its set-up is done; the first
 * waits for it. Thereafter whoever holds the token runs one turn and passes
 * it. A process that has passed its last turn waits for the partner's last
 * (a token that says done) before it goes on, so that neither exits or frees
 * its memory while the other is timing; the one still running takes any
 * turns it has left without waiting and says done after the last.
 *
 * After receiving the token a process sleeps `settle` seconds before its
 * turn: an OpenMP runtime's idle threads spin for several milliseconds after
 * a parallel region (libgomp here: 7-9 ms of CPU in a 50 ms sleep), and
 * would otherwise take a core from the turn that follows. Each turn is timed
 * on its own, so the sleep costs wall time only.
 *
 * A read waits at most `timeout` seconds (set-up included); then, or when
 * the partner closes early, the hook fails with a message naming the FIFO.
 */
#ifndef RL_LOCKSTEP_H
#define RL_LOCKSTEP_H

#include <stdbool.h>

#include "analysis/rl_probe.h"

typedef struct {
    bool first;          /* the first to run; the second opens with "ready" */
    const char *in, *out; /* FIFO paths: the partner's tokens arrive on in */
    double settle;       /* seconds slept after receiving the turn */
    double timeout;      /* seconds a read may wait */
    /* state */
    int fd_in, fd_out;
    bool opened, ready_sent, partner_done, done;
    rl_turn turn;        /* hooks for rl_bench_opts.turn, ctx = this */
} lockstep;

/* Set up (nothing opened yet: the FIFOs are opened by the first wait). */
void lockstep_init(lockstep *l, bool first, const char *in, const char *out, double settle);
/* One turn of work that rl_bench_run does not run (bench's machine rates):
 * lockstep_wait, the work, lockstep_pass(l, false). */
rl_status lockstep_wait(lockstep *l, double *partner_cpu);
rl_status lockstep_pass(lockstep *l, bool last);
/* Close the FIFOs; a process that has not said it was done says so first. */
void lockstep_close(lockstep *l);

#endif
