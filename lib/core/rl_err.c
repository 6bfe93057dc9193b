/* rl_err.c -- the error table and the thread-local last message. */
#include "rl_err.h"

#include <stdarg.h>

static const char *const rl_errtab[RL_NCODES] = {
    [0]            = "ok",
    [-RL_EINVAL]   = "invalid argument",
    [-RL_ENOMEM]   = "out of memory",
    [-RL_EIO]      = "input/output error",
    [-RL_EFORMAT]  = "malformed file",
    [-RL_ENOTFOUND]= "not found",
    [-RL_ESHAPE]   = "shape mismatch",
    [-RL_ENONFINITE] = "non-finite value",
    [-RL_ELAPACK]  = "LAPACK failure",
    [-RL_ERANGE]   = "does not fit the shared bases",
    [-RL_EBUDGET]  = "over the memory budget",
    [-RL_EWRITE]   = "cannot write the output",
};

static _Thread_local char rl_msg[1024];

const char *rl_strerror(rl_status code)
{
    int i = -(int)code;
    if (i < 0 || i >= RL_NCODES || !rl_errtab[i]) return "unknown error";
    return rl_errtab[i];
}

rl_status rl_fail(rl_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rl_msg, sizeof rl_msg, fmt, ap);
    va_end(ap);
    return code;
}

const char *rl_errmsg(void) { return rl_msg; }

void rl_errclear(void) { rl_msg[0] = '\0'; }
