/* commands.h -- every `randlora <command>` and `randlora sweep <name>`.
 * Each returns the process exit code: 0 success, 1 a check failed or a
 * claim did not hold where the command asserts it, 2 bad usage or input. */
#ifndef RL_COMMANDS_H
#define RL_COMMANDS_H

#include <stdbool.h>

#include "core/rl_err.h"

int cmd_parity(int argc, char **argv);   /* parity.c */
int cmd_params(int argc, char **argv);   /* params.c */
int cmd_rank(int argc, char **argv);     /* rank.c */
int cmd_inspect(int argc, char **argv);  /* inspect.c */
int cmd_merge(int argc, char **argv);    /* merge.c */
int cmd_export(int argc, char **argv);   /* export.c */
int sweep_rank(int argc, char **argv);   /* sweep_rank.c */
int cmd_bench(int argc, char **argv);    /* bench.c */
int cmd_report(int argc, char **argv);   /* report.c */
int sweep_cost(int argc, char **argv);   /* sweep_cost.c */
int sweep_expressivity(int argc, char **argv); /* sweep_expressivity.c */
int sweep_finetune(int argc, char **argv); /* sweep_finetune.c */
int sweep_similarity(int argc, char **argv); /* sweep_similarity.c */

/* Shared by the commands (commands.c): print "randlora <cmd>: <error>:
 * <message>" (and a hint about PEFT directories for missing or malformed
 * files) and return the exit code; is argv[i] -h or --help? */
int cmd_fail(const char *cmd, rl_status st);
bool cmd_is_help(const char *a);

#endif
