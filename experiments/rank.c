/* rank.c -- `randlora rank`, `inspect`, `merge`, `export`: is the update full
 * rank, in the reference files and in PEFT checkpoints; merge a checkpoint
 * into base weights; write it back as a PEFT directory. */
#include "rank.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/rl_adapter.h"
#include "analysis/rl_rank.h"
#include "commands.h"
#include "core/rl_tensor.h"
#include "flags.h"
#include "io/rl_peft.h"
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
        if ((st = rl_adapter_new(&a, &ps.cfg, d_out, d_in, ps.bases, 1)) == RL_OK &&
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

static int fail(const char *cmd, rl_status st)
{
    fprintf(stderr, "randlora %s: %s: %s\n", cmd, rl_strerror(st), rl_errmsg());
    if (st == RL_ENOTFOUND || st == RL_EFORMAT)
        fprintf(stderr, "---> HINT: a PEFT adapter directory holds adapter_config.json and "
                        "adapter_model.safetensors (save_pretrained(..., safe_serialization=True))\n");
    return 2;
}

static bool is_help(const char *a) { return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0; }

int cmd_rank(int argc, char **argv)
{
    const char *fixture = NULL;
    bool csv = false;
    double tol = 0.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--fixture") == 0) {
            if (!(fixture = flag_value("randlora rank", argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--csv") == 0) csv = true;
        else if (strcmp(argv[i], "--tol") == 0) {
            const char *v = flag_value("randlora rank", argc, argv, &i);
            if (!v || !flag_positive("randlora rank", "--tol", v, INFINITY, &tol)) return 2;
        } else if (is_help(argv[i])) {
            printf("usage: randlora rank --fixture FILE [--csv] [--tol T]\n"
                   "  For each layer of a peft-parity-v1 file, build ΔW with the library (bases\n"
                   "  regenerated from the key) and print its numerical rank (tolerance\n"
                   "  sigma_max*max(m,n)*FLT_EPSILON unless --tol), effective rank, stable rank,\n"
                   "  sigma_max and sigma_min. --csv: header '%s'.\n", RANK_CSV_HEADER);
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
    return st == RL_OK ? 0 : fail("rank", st);
}

int cmd_inspect(int argc, char **argv)
{
    const char *dir = NULL, *base = NULL;
    bool csv = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--csv") == 0) csv = true;
        else if (strcmp(argv[i], "--base") == 0) {
            if (!(base = flag_value("randlora inspect", argc, argv, &i))) return 2;
        } else if (is_help(argv[i])) {
            printf("usage: randlora inspect DIR [--base WEIGHTS.safetensors] [--csv]\n"
                   "  One row per adapted module of a PEFT adapter directory (RANDLORA, VERA, LORA):\n"
                   "  module path, out, in, method, trainable parameters, numerical rank of ΔW\n"
                   "  (float32 tolerance), min_dim, effective rank, Frobenius norm. Layer shapes\n"
                   "  come from DIR/base_model.safetensors unless --base is given.\n"
                   "  --csv: header '%s'.\n", INSPECT_CSV_HEADER);
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
    return st == RL_OK ? 0 : fail("inspect", st);
}

int cmd_merge(int argc, char **argv)
{
    const char *dir = NULL, *base = NULL, *out = NULL;
    bool safe = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--base") == 0) {
            if (!(base = flag_value("randlora merge", argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--out") == 0) {
            if (!(out = flag_value("randlora merge", argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--safe") == 0) safe = true;
        else if (is_help(argv[i])) {
            printf("usage: randlora merge DIR --base WEIGHTS.safetensors --out MERGED.safetensors [--safe]\n"
                   "  Writes every tensor of WEIGHTS with each adapted module's ΔW added to\n"
                   "  '<module>.weight' (same keys, dtypes and order). --safe refuses non-finite\n"
                   "  results (nothing is written). Never overwrites its inputs.\n");
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
    return st == RL_OK ? 0 : fail("merge", st);
}

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
        else if (is_help(argv[i])) {
            printf("usage: randlora export DIR [--out OUT_DIR] [--base WEIGHTS] [--dtype F32|F16|BF16]\n"
                   "                       [--projection | --no-projection] [--no-layer-copies]\n"
                   "  Reads the PEFT adapter directory DIR and writes it back as a PEFT-loadable\n"
                   "  directory OUT_DIR (default DIR_export): adapter_config.json (sorted keys,\n"
                   "  indent 2), adapter_model.safetensors with PEFT's keys (RandLora bases also\n"
                   "  under every module, as PEFT <= 0.20 writes them, unless --no-layer-copies;\n"
                   "  no bases with --no-projection), and the base weights it was read with.\n");
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
    return st == RL_OK ? 0 : fail("export", st);
}
