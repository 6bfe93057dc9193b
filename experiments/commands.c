/* commands.c -- what the commands share: the error line and exit code of a
 * failed command, and -h / --help. */
#include "commands.h"

#include <stdio.h>
#include <string.h>

int cmd_fail(const char *cmd, rl_status st)
{
    fprintf(stderr, "randlora %s: %s: %s\n", cmd, rl_strerror(st), rl_errmsg());
    if (st == RL_ENOTFOUND || st == RL_EFORMAT)
        fprintf(stderr, "---> HINT: a PEFT adapter directory holds adapter_config.json and "
                        "adapter_model.safetensors (save_pretrained(..., safe_serialization=True))\n");
    return 2;
}

bool cmd_is_help(const char *a) { return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0; }
