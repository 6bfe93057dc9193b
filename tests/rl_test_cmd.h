/* rl_test_cmd.h -- run a `randlora <command>` function in-process and
 * capture what it prints.
 *
 * rl_test_run_cmd(cmd_params, "params", args, n, out, sizeof out, err,
 * sizeof err) calls cmd(n + 1, {"params", args...}) with stdout and stderr
 * redirected (through file descriptors, so printf and fprintf both land)
 * and returns its exit code; out and err receive the text, NUL-terminated
 * and truncated to fit.
 */
#ifndef RL_TEST_CMD_H
#define RL_TEST_CMD_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

static inline int rl_test_run_cmd(int (*cmd)(int, char **), const char *name, const char *const *args, int n,
                                  char *out, size_t out_len, char *err, size_t err_len)
{
    char *argv[32] = {(char *)name};
    cr_assert(n < 31, "too many arguments (%d)", n);
    for (int i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
    FILE *fo = tmpfile(), *fe = tmpfile();
    cr_assert(fo && fe);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    int rc = cmd(n + 1, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    FILE *f[2] = {fo, fe};
    char *buf[2] = {out, err};
    size_t len[2] = {out_len, err_len};
    for (int k = 0; k < 2; k++) {
        rewind(f[k]);
        size_t got = fread(buf[k], 1, len[k] - 1, f[k]);
        buf[k][got] = '\0';
        fclose(f[k]);
    }
    return rc;
}

#endif
