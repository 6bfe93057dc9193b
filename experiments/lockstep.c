/* lockstep.c -- taking turns with another process over two FIFOs (lockstep.h). */
#include "lockstep.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/rl_clock.h"

enum { TOKEN_BYTES = sizeof(double) + sizeof(int32_t) };

static rl_status hook_wait(void *ctx, double *partner_cpu) { return lockstep_wait(ctx, partner_cpu); }
static rl_status hook_pass(void *ctx, bool last) { return lockstep_pass(ctx, last); }

void lockstep_init(lockstep *l, bool first, const char *in, const char *out, double settle)
{
    *l = (lockstep){.first = first, .in = in, .out = out, .settle = settle, .timeout = 600.0, .fd_in = -1,
                    .fd_out = -1};
    l->turn = (rl_turn){.ctx = l, .wait = hook_wait, .pass = hook_pass};
    signal(SIGPIPE, SIG_IGN); /* a partner gone shows as EPIPE from write, not a killed process */
}

static void sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Both ends without blocking on the partner: our reading end first (always
 * succeeds), then the writing end, retried until the partner has opened its
 * reading end. */
static rl_status open_fifos(lockstep *l)
{
    l->fd_in = open(l->in, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (l->fd_in < 0) return rl_fail(RL_EIO, "lockstep: cannot open %s for reading: %s", l->in, strerror(errno));
    const double until = rl_now() + l->timeout;
    for (;;) {
        l->fd_out = open(l->out, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (l->fd_out >= 0) break;
        if (errno != ENXIO)
            return rl_fail(RL_EIO, "lockstep: cannot open %s for writing: %s", l->out, strerror(errno));
        if (rl_now() > until)
            return rl_fail(RL_EIO, "lockstep: no partner opened %s within %.0f s", l->out, l->timeout);
        sleep_s(0.01);
    }
    /* blocking from here on (reads wait in poll) */
    if (fcntl(l->fd_in, F_SETFL, 0) != 0 || fcntl(l->fd_out, F_SETFL, 0) != 0)
        return rl_fail(RL_EIO, "lockstep: fcntl on %s / %s: %s", l->in, l->out, strerror(errno));
    l->opened = true;
    return RL_OK;
}

static rl_status send_token(lockstep *l, bool done)
{
    unsigned char b[TOKEN_BYTES];
    const double cpu = rl_cpu_now();
    const int32_t d = done ? 1 : 0;
    memcpy(b, &cpu, sizeof cpu);
    memcpy(b + sizeof cpu, &d, sizeof d);
    size_t off = 0;
    while (off < sizeof b) {
        ssize_t w = write(l->fd_out, b + off, sizeof b - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return rl_fail(RL_EIO, "lockstep: writing the turn to %s: %s", l->out,
                           w < 0 ? strerror(errno) : "nothing written");
        off += (size_t)w;
    }
    return RL_OK;
}

/* Read exactly len bytes, or *eof at a clean end before the first byte. */
static rl_status read_full(lockstep *l, unsigned char *b, size_t len, bool *eof)
{
    size_t off = 0;
    *eof = false;
    while (off < len) {
        struct pollfd p = {.fd = l->fd_in, .events = POLLIN};
        int pr = poll(&p, 1, (int)(l->timeout * 1e3));
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) return rl_fail(RL_EIO, "lockstep: waiting on %s: %s", l->in, strerror(errno));
        if (pr == 0) return rl_fail(RL_EIO, "lockstep: no turn came on %s within %.0f s", l->in, l->timeout);
        ssize_t r = read(l->fd_in, b + off, len - off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return rl_fail(RL_EIO, "lockstep: reading %s: %s", l->in, strerror(errno));
        if (r == 0) {
            if (off == 0) {
                *eof = true;
                return RL_OK;
            }
            return rl_fail(RL_EIO, "lockstep: %s ended inside a token (%zu of %zu bytes)", l->in, off, len);
        }
        off += (size_t)r;
    }
    return RL_OK;
}

/* The partner's next token: its CPU seconds and whether it is done. */
static rl_status recv_token(lockstep *l, double *cpu, bool *done)
{
    unsigned char b[TOKEN_BYTES];
    bool eof;
    RL_TRY(read_full(l, b, sizeof b, &eof));
    if (eof) return rl_fail(RL_EIO, "lockstep: the partner closed %s before it was done", l->in);
    int32_t d;
    memcpy(cpu, b, sizeof *cpu);
    memcpy(&d, b + sizeof *cpu, sizeof d);
    *done = d != 0;
    return RL_OK;
}

rl_status lockstep_wait(lockstep *l, double *partner_cpu)
{
    if (!l->opened) RL_TRY(open_fifos(l));
    if (!l->first && !l->ready_sent) {
        RL_TRY(send_token(l, false)); /* "ready" */
        l->ready_sent = true;
    }
    if (l->partner_done) return RL_OK; /* alone from here on; *partner_cpu keeps its last reading */
    RL_TRY(recv_token(l, partner_cpu, &l->partner_done));
    sleep_s(l->settle);
    return RL_OK;
}

/* After our last turn: wait for the partner's, so that neither process
 * exits (or frees its memory) while the other is timing. */
static rl_status wait_partner_done(lockstep *l)
{
    double cpu;
    RL_TRY(recv_token(l, &cpu, &l->partner_done));
    if (!l->partner_done) return rl_fail(RL_EIO, "lockstep: a turn came on %s after our last", l->in);
    return RL_OK;
}

rl_status lockstep_pass(lockstep *l, bool last)
{
    if (l->done) return rl_fail(RL_EINVAL, "lockstep: a turn passed after the last");
    l->done = last;
    if (l->partner_done) /* the partner waits only for our last turn */
        return last ? send_token(l, true) : RL_OK;
    RL_TRY(send_token(l, last));
    return last ? wait_partner_done(l) : RL_OK;
}

void lockstep_close(lockstep *l)
{
    if (l->opened && !l->done) (void)send_token(l, true); /* failed half-way: let the partner finish alone */
    if (l->fd_in >= 0) close(l->fd_in);
    if (l->fd_out >= 0) close(l->fd_out);
    l->fd_in = l->fd_out = -1;
    l->opened = false;
}
