/* commands.h -- every `randlora <command>` and `randlora sweep <name>`.
 * Each returns the process exit code (README "Exit codes and limits"):
 *   0  success
 *   1  a check that ran and failed (a parity FAIL, a --safe merge that
 *      refused non-finite weights)
 *   2  bad usage or input: unknown flags and bad values, missing, unreadable
 *      or malformed files, inputs over the memory budget, an output that
 *      would overwrite an input or a non-empty directory
 *   3  out of memory, or an I/O failure while writing an output */
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
int cmd_fixture(int argc, char **argv);  /* fixture.c */
int sweep_cost(int argc, char **argv);   /* sweep_cost.c */
int sweep_expressivity(int argc, char **argv); /* sweep_expressivity.c */
int sweep_finetune(int argc, char **argv); /* sweep_finetune.c */
int sweep_similarity(int argc, char **argv); /* sweep_similarity.c */
int sweep_vit(int argc, char **argv);    /* sweep_vit.c */
int sweep_teacher(int argc, char **argv); /* sweep_teacher.c */

/* Shared by the commands (commands.c). */
/* The exit code of a failed status: 3 for RL_ENOMEM and RL_EWRITE (out of
 * memory; an output that could not be created or written), 2 for every
 * other (bad usage or input: unreadable or malformed files, inputs over the
 * memory budget, an output that would overwrite an input). 1 -- a check that
 * ran and failed -- is each command's own verdict, never a status. */
int cmd_exit_code(rl_status st);
/* Print "randlora <cmd>: <error>: <message>" (and hint, if not NULL, when
 * st is RL_ENOTFOUND or RL_EFORMAT) and return cmd_exit_code(st). */
int cmd_fail(const char *cmd, rl_status st, const char *hint);
#define CMD_HINT_PEFT_DIR                                                                          \
    "a PEFT adapter directory holds adapter_config.json and adapter_model.safetensors "           \
    "(save_pretrained(..., safe_serialization=True))"
/* Is a -h or --help? */
bool cmd_is_help(const char *a);

#endif
