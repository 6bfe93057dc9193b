/* commands.c -- what the commands share: the exit code and error line of a
 * failed command, and -h / --help. */
#include "commands.h"

#include <stdio.h>
#include <string.h>

int cmd_exit_code(rl_status st)
{
    if (st == RL_OK) return 0;
    return st == RL_ENOMEM || st == RL_EWRITE ? 3 : 2;
}

int cmd_fail(const char *cmd, rl_status st, const char *hint)
{
    fprintf(stderr, "randlora %s: %s: %s\n", cmd, rl_strerror(st), rl_errmsg());
    if (hint && (st == RL_ENOTFOUND || st == RL_EFORMAT)) fprintf(stderr, "---> HINT: %s\n", hint);
    return cmd_exit_code(st);
}

bool cmd_is_help(const char *a) { return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0; }
