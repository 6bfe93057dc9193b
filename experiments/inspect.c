/* inspect.c -- `randlora inspect`: one row per module of a PEFT adapter
 * directory (rank, effective rank, Frobenius norm of its ΔW). */
#include "inspect.h"

#include <string.h>

#include "adapters/rl_adapter.h"
#include "analysis/rl_rank.h"
#include "commands.h"
#include "core/rl_budget.h"
#include "core/rl_tensor.h"
#include "flags.h"
#include "io/rl_peft.h"
#include "io/rl_safetensors.h"

/* ---- inspect ---- */

rl_status inspect_write(const char *dir, const char *base_path, FILE *out, bool csv)
{
    rl_peft *p = NULL;
    RL_TRY(rl_peft_load(&p, dir, base_path));
    if (csv) fprintf(out, "%s\n", INSPECT_CSV_HEADER);
    else {
        fprintf(out, "# %s: peft_type=%s r=%d modules=%d dtype=%s", dir, rl_method_name(p->method), p->cfg.r,
                p->n_modules, rl_dtype_name(p->dtype));
        if (p->method == RL_METHOD_RANDLORA) fprintf(out, " bases=%s", rl_bases_kind_name(p->kind));
        if (p->method != RL_METHOD_LORA)
            fprintf(out, " projection=%s key=%llu%s", rl_peft_bases_source_name(p->bases_source),
                    (unsigned long long)p->key,
                    p->bases_source == RL_PEFT_BASES_REGENERATED ? ""
                    : p->bases_match_key ? " (stored bases = regenerated from key)"
                                         : " (stored bases differ from the key's)");
        fprintf(out, "\n%-44s %6s %6s %-9s %9s %6s %8s %14s %12s\n", "module", "out", "in", "method", "params",
                "rank", "min_dim", "effective_rank", "fro_norm");
    }
    rl_status st = RL_OK;
    for (int m = 0; m < p->n_modules && st == RL_OK; m++) {
        const rl_peft_module *md = &p->modules[m];
        /* ΔW (float) and the SVD's copy of it (double) */
        size_t mn = (size_t)(md->d_out < md->d_in ? md->d_out : md->d_in);
        size_t need = rl_size_add(rl_size_mul((size_t)md->d_out * (size_t)md->d_in, sizeof(float) + sizeof(double)),
                                  rl_size_mul(mn, sizeof(double)));
        if ((st = rl_budget_check(need, "%s: the rank of module '%s' (%d, %d)", dir, md->path, md->d_out,
                                  md->d_in)) != RL_OK)
            break;
        float *dw = rl_alloc_floats((size_t)md->d_out * md->d_in);
        rl_spectrum *sp = NULL;
        st = dw ? rl_peft_delta_weight(p, m, dw) : rl_fail(RL_ENOMEM, "out of memory");
        if (st == RL_OK) st = rl_spectrum_new(&sp, dw, md->d_out, md->d_in, 0.0);
        if (st == RL_OK) {
            size_t params = rl_adapter_param_count(md->adapter);
            if (csv)
                fprintf(out, "%s,%d,%d,%s,%zu,%d,%d,%.6g,%.9g\n", md->path, md->d_out, md->d_in,
                        rl_method_name(p->method), params, sp->rank, sp->k, sp->effective_rank, sp->fro);
            else
                fprintf(out, "%-44s %6d %6d %-9s %9zu %6d %8d %14.4f %12.6g\n", md->path, md->d_out, md->d_in,
                        rl_method_name(p->method), params, sp->rank, sp->k, sp->effective_rank, sp->fro);
        }
        rl_spectrum_free(sp);
        rl_dealloc(dw);
    }
    rl_peft_free(p);
    return st;
}

/* ---- command line ---- */

int cmd_inspect(int argc, char **argv)
{
    const char *dir = NULL, *base = NULL;
    bool csv = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--csv") == 0) csv = true;
        else if (strcmp(argv[i], "--base") == 0) {
            if (!(base = flag_value("randlora inspect", argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--max-memory") == 0) {
            const char *v = flag_value("randlora inspect", argc, argv, &i);
            if (!v || !flag_max_memory("randlora inspect", v)) return 2;
        } else if (cmd_is_help(argv[i])) {
            printf("usage: randlora inspect DIR [--base WEIGHTS.safetensors] [--csv] [--max-memory BYTES]\n"
                   "  One row per adapted module of a PEFT adapter directory (RANDLORA, VERA, LORA):\n"
                   "  module path, out, in, method, trainable parameters, numerical rank of ΔW\n"
                   "  (float32 tolerance), min_dim, effective rank, Frobenius norm. Layer shapes\n"
                   "  come from DIR/base_model.safetensors unless --base is given.\n"
                   "  --csv: header '%s'.\n" FLAG_MAX_MEMORY_USAGE, INSPECT_CSV_HEADER);
            return 0;
        } else if (!dir && strncmp(argv[i], "--", 2) != 0) dir = argv[i];
        else {
            fprintf(stderr, "randlora inspect: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: randlora inspect DIR [--base WEIGHTS.safetensors] [--csv]\n");
        return 2;
    }
    rl_status st = inspect_write(dir, base, stdout, csv);
    return st == RL_OK ? 0 : cmd_fail("inspect", st, CMD_HINT_PEFT_DIR);
}
