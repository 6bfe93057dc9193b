/* export.c -- `randlora export`: a PEFT adapter directory written back as
 * a PEFT-loadable directory. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "flags.h"
#include "io/rl_peft.h"
#include "io/rl_safetensors.h"

int cmd_export(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL, *base = NULL;
    rl_peft_save_opts o = rl_peft_save_opts_default();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0) {
            if (!(out = flag_value("randlora export", argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--base") == 0) {
            if (!(base = flag_value("randlora export", argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--dtype") == 0) {
            static const char *const dtypes[] = {"F32", "F16", "BF16"};
            static const rl_dtype codes[] = {RL_DT_F32, RL_DT_F16, RL_DT_BF16};
            const char *d = flag_value("randlora export", argc, argv, &i);
            int k;
            if (!d || !flag_choice("randlora export", "--dtype", d, dtypes, 3, &k)) return 2;
            o.dtype = codes[k];
        } else if (strcmp(argv[i], "--no-projection") == 0) o.save_projection = 0;
        else if (strcmp(argv[i], "--projection") == 0) o.save_projection = 1;
        else if (strcmp(argv[i], "--no-layer-copies") == 0) o.per_layer_copies = false;
        else if (strcmp(argv[i], "--force") == 0) o.replace = true;
        else if (strcmp(argv[i], "--max-memory") == 0) {
            const char *v = flag_value("randlora export", argc, argv, &i);
            if (!v || !flag_max_memory("randlora export", v)) return 2;
        }
        else if (cmd_is_help(argv[i])) {
            printf("usage: randlora export DIR [--out OUT_DIR] [--base WEIGHTS] [--dtype F32|F16|BF16]\n"
                   "                       [--projection | --no-projection] [--no-layer-copies] [--force]\n"
                   "                       [--max-memory BYTES]\n"
                   "  Reads the PEFT adapter directory DIR and writes it back as a PEFT-loadable\n"
                   "  directory OUT_DIR (default DIR_export): adapter_config.json (sorted keys,\n"
                   "  indent 2), adapter_model.safetensors with PEFT's keys (RandLora bases also\n"
                   "  under every module, as PEFT <= 0.20 writes them, unless --no-layer-copies;\n"
                   "  no bases with --no-projection), and the base weights it was read with.\n"
                   "  OUT_DIR is built beside itself and renamed into place: a reader sees the old\n"
                   "  directory or the whole new one. An existing non-empty OUT_DIR is refused\n"
                   "  (exit 2) unless --force, which replaces it whole (no stale file survives).\n"
                   FLAG_MAX_MEMORY_USAGE);
            return 0;
        } else if (!dir && strncmp(argv[i], "--", 2) != 0) dir = argv[i];
        else {
            fprintf(stderr, "randlora export: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: randlora export DIR [--out OUT_DIR] (see --help)\n");
        return 2;
    }
    char def[4096];
    if (!out) {
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/') n--;
        snprintf(def, sizeof def, "%.*s_export", (int)n, dir);
        out = def;
    }
    rl_peft *p = NULL;
    rl_status st = rl_peft_load(&p, dir, base);
    if (st == RL_OK) st = rl_peft_save(p, out, &o);
    if (st == RL_OK) printf("exported %d %s modules of %s to %s\n", p->n_modules, rl_method_name(p->method), dir, out);
    rl_peft_free(p);
    return st == RL_OK ? 0 : cmd_fail("export", st, CMD_HINT_PEFT_DIR);
}
