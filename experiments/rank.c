/* rank.c -- `randlora rank`: is the update full rank in the reference
 * files (one row per layer of a parity file). */
#include "rank.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/rl_adapter.h"
#include "analysis/rl_rank.h"
#include "commands.h"
#include "core/rl_budget.h"
#include "core/rl_tensor.h"
#include "flags.h"
#include "io/rl_safetensors.h"
#include "parity.h"

/* ---- rank --fixture ---- */

rl_status rank_fixture_write(const char *path, FILE *out, bool csv, double tol)
{
    rl_st_file *f = NULL;
    RL_TRY(rl_st_open(&f, path));
    parity_setup ps;
    rl_status st = parity_setup_read(f, &ps);
    if (st != RL_OK) {
        rl_st_close(f);
        return st;
    }
    if (csv) fprintf(out, "%s\n", RANK_CSV_HEADER);
    else {
        fprintf(out, "# %s: method=%s r=%d layers=%d", path, rl_method_name(ps.method), ps.cfg.r, ps.layers);
        if (ps.method == RL_METHOD_RANDLORA) fprintf(out, " bases=%s", rl_bases_kind_name(ps.kind));
        fprintf(out, " tol=%s\n", tol > 0 ? "given" : "sigma_max*max(m,n)*FLT_EPSILON");
        fprintf(out, "%-6s %6s %6s %8s %6s %14s %12s %12s %12s%s\n", "layer", "out", "in", "min_dim", "rank",
                "effective_rank", "stable_rank", "sigma_max", "sigma_min",
                ps.method == RL_METHOD_RANDLORA && ps.kind != RL_BASES_DENSE ? "  zero_cols_A" : "");
    }
    for (int i = 0; i < ps.layers && st == RL_OK; i++) {
        int d_out = ps.shapes[i][0], d_in = ps.shapes[i][1];
        rl_adapter *a = NULL;
        float *dw = NULL;
        rl_spectrum *sp = NULL;
        /* ΔW (float) and the SVD's copy of it (double), the adapter */
        size_t mn = (size_t)(d_out < d_in ? d_out : d_in);
        size_t need = rl_size_add(rl_size_mul((size_t)d_out * (size_t)d_in, sizeof(float) + sizeof(double)),
                                  rl_size_add(rl_size_mul(mn, sizeof(double)),
                                              rl_adapter_bytes_bound(&ps.cfg, d_out, d_in, ps.bases, 1)));
        if ((st = rl_budget_check(need, "%s: the rank of layer %d (%d, %d)", path, i, d_out, d_in)) == RL_OK &&
            (st = rl_adapter_new(&a, &ps.cfg, d_out, d_in, ps.bases, 1)) == RL_OK &&
            (st = parity_load_params(f, i, a)) == RL_OK) {
            dw = rl_alloc_floats((size_t)d_out * d_in);
            st = dw ? rl_adapter_delta_weight(a, dw) : rl_fail(RL_ENOMEM, "out of memory");
        }
        if (st == RL_OK) st = rl_spectrum_new(&sp, dw, d_out, d_in, tol);
        if (st == RL_OK) {
            int mn = sp->k;
            if (csv)
                fprintf(out, "%d,%d,%d,%d,%d,%.6g,%.6g,%.9g,%.9g\n", i, d_out, d_in, mn, sp->rank,
                        sp->effective_rank, sp->stable_rank, sp->sigma_max, sp->sigma_min);
            else {
                fprintf(out, "%-6d %6d %6d %8d %6d %14.4f %12.4f %12.5g %12.5g", i, d_out, d_in, mn, sp->rank,
                        sp->effective_rank, sp->stable_rank, sp->sigma_max, sp->sigma_min);
                if (ps.method == RL_METHOD_RANDLORA && ps.kind != RL_BASES_DENSE)
                    fprintf(out, "  %d", rl_rank_zero_columns_A(ps.bases, mn));
                fprintf(out, "\n");
            }
        }
        rl_spectrum_free(sp);
        rl_dealloc(dw);
        rl_adapter_free(a);
    }
    parity_setup_free(&ps);
    rl_st_close(f);
    return st;
}

/* ---- command line ---- */

int cmd_rank(int argc, char **argv)
{
    const char *fixture = NULL;
    bool csv = false;
    double tol = 0.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--fixture") == 0) {
            if (!(fixture = flag_value("randlora rank", argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--csv") == 0) csv = true;
        else if (strcmp(argv[i], "--max-memory") == 0) {
            const char *v = flag_value("randlora rank", argc, argv, &i);
            if (!v || !flag_max_memory("randlora rank", v)) return 2;
        } else if (strcmp(argv[i], "--tol") == 0) {
            const char *v = flag_value("randlora rank", argc, argv, &i);
            if (!v || !flag_positive("randlora rank", "--tol", v, INFINITY, &tol)) return 2;
        } else if (cmd_is_help(argv[i])) {
            printf("usage: randlora rank --fixture FILE [--csv] [--tol T] [--max-memory BYTES]\n"
                   "  For each layer of a peft-parity-v1 file, build ΔW with the library (bases\n"
                   "  regenerated from the key) and print its numerical rank (tolerance\n"
                   "  sigma_max*max(m,n)*FLT_EPSILON unless --tol), effective rank, stable rank,\n"
                   "  sigma_max and sigma_min. --csv: header '%s'.\n" FLAG_MAX_MEMORY_USAGE, RANK_CSV_HEADER);
            return 0;
        } else {
            fprintf(stderr, "randlora rank: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!fixture) {
        fprintf(stderr, "usage: randlora rank --fixture FILE [--csv] [--tol T]\n");
        return 2;
    }
    rl_status st = rank_fixture_write(fixture, stdout, csv, tol);
    return st == RL_OK ? 0 : cmd_fail("rank", st, NULL);
}
