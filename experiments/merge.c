/* merge.c -- `randlora merge`: a PEFT adapter's ΔW added to base weights
 * (safetensors), as PEFT's merge_and_unload rounds it. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "flags.h"
#include "io/rl_peft.h"

int cmd_merge(int argc, char **argv)
{
    const char *dir = NULL, *base = NULL, *out = NULL;
    bool safe = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--base") == 0) {
            if (!(base = flag_value("randlora merge", argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--out") == 0) {
            if (!(out = flag_value("randlora merge", argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--max-memory") == 0) {
            const char *v = flag_value("randlora merge", argc, argv, &i);
            if (!v || !flag_max_memory("randlora merge", v)) return 2;
        } else if (strcmp(argv[i], "--safe") == 0) safe = true;
        else if (cmd_is_help(argv[i])) {
            printf("usage: randlora merge DIR --base WEIGHTS.safetensors --out MERGED.safetensors [--safe]\n"
                   "                      [--max-memory BYTES]\n"
                   "  Writes every tensor of WEIGHTS with each adapted module's ΔW added to\n"
                   "  '<module>.weight' (same keys, dtypes and order). --safe refuses non-finite\n"
                   "  results (nothing is written; exit 1). Never overwrites its inputs (by path,\n"
                   "  hard or symbolic link: exit 2).\n" FLAG_MAX_MEMORY_USAGE);
            return 0;
        } else if (!dir && strncmp(argv[i], "--", 2) != 0) dir = argv[i];
        else {
            fprintf(stderr, "randlora merge: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!dir || !base || !out) {
        fprintf(stderr, "usage: randlora merge DIR --base WEIGHTS.safetensors --out MERGED.safetensors [--safe]\n");
        return 2;
    }
    rl_peft *p = NULL;
    rl_status st = rl_peft_load(&p, dir, base);
    if (st == RL_OK) st = rl_peft_merge(p, base, out, safe);
    if (st == RL_OK) printf("merged %d %s modules of %s into %s\n", p->n_modules, rl_method_name(p->method), dir, out);
    rl_peft_free(p);
    if (st == RL_ENONFINITE) { /* the --safe check ran and refused */
        fprintf(stderr, "randlora merge: %s\n", rl_errmsg());
        return 1;
    }
    return st == RL_OK ? 0 : cmd_fail("merge", st, CMD_HINT_PEFT_DIR);
}
