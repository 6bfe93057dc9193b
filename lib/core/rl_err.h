/* rl_err.h -- status codes and error messages for the whole library.
 *
 * Two tiers (see STYLE.md):
 *   - bugs (broken invariants between the library's own modules) stop the
 *     process through RL_ASSERT, which stays on in every build;
 *   - input and environment errors (files, shapes given by a user, bad
 *     flags, LAPACK failures, non-finite merges) return an rl_status < 0 and
 *     leave a one-line message that rl_errmsg() returns. The message names the
 *     file, key, shape or flag at fault.
 *
 * lib/ never calls exit(): the command-line front end decides exit codes.
 */
#ifndef RL_ERR_H
#define RL_ERR_H

#include <stdio.h>
#include <stdlib.h>

typedef enum {
    RL_OK       = 0,
    RL_EINVAL   = -1,   /* bad argument: rank, shape, flag            */
    RL_ENOMEM   = -2,   /* allocation failed                          */
    RL_EIO      = -3,   /* could not open / read an input             */
    RL_EFORMAT  = -4,   /* a file is malformed (header, JSON, sizes)  */
    RL_ENOTFOUND= -5,   /* a key or file that must exist is missing   */
    RL_ESHAPE   = -6,   /* shapes that do not agree                   */
    RL_ENONFINITE = -7, /* NaN or Inf where finite values are needed  */
    RL_ELAPACK  = -8,   /* LAPACK returned info != 0                  */
    RL_ERANGE   = -9,   /* a layer does not fit the shared bases      */
    RL_EBUDGET  = -10,  /* an input needs more memory than the budget */
    RL_EWRITE   = -11,  /* could not create / write / rename an output */
    RL_NCODES   = 12
} rl_status;

/* Short fixed text for a code ("invalid argument", ...). */
const char *rl_strerror(rl_status code);

/* Record a detailed message (printf-style) for the calling thread and
 * return `code`, so that callers write `return rl_fail(RL_EINVAL, ...)`. */
rl_status rl_fail(rl_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The last message recorded by rl_fail on this thread ("" if none). */
const char *rl_errmsg(void);

/* Forget the last message. */
void rl_errclear(void);

#define RL_ASSERT(cond, ...)                                                  \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: assertion failed: %s: ", __FILE__,        \
                    __LINE__, #cond);                                         \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* Propagate a non-OK status. */
#define RL_TRY(expr)                                                          \
    do {                                                                      \
        rl_status rl_try_s_ = (expr);                                         \
        if (rl_try_s_ != RL_OK) return rl_try_s_;                             \
    } while (0)

#endif
