/* params.h -- `randlora params`: exact trainable-parameter counts and
 * checkpoint sizes of LoRA, VeRA and RandLora on real architectures, from
 * their linear-layer shapes.
 *
 * A model is a list of linear module kinds, each (d_out, d_in) as nn.Linear
 * stores its weight, times the number of layers that hold it. The counts use
 * the library's closed forms (rl_param_count_formula: LoRA r(in+out), VeRA
 * out+r, RandLora ceil(mn/r)(r+mn)) summed over the adapted modules; the
 * shared bases are sized as PEFT sizes them, from (O, I) = the element-wise
 * maximum of (d_out, d_in) over the adapted modules (peft-semantics.md §2.2,
 * §3):
 *   RandLora  A (r, 1, min(O,I)) + B (max(O,I), ceil(min(O,I)/r), r)
 *   VeRA      A (r, I) + B (O, r)
 *   LoRA      none
 * Checkpoint size = (trainable + bases) floats x 4 bytes with one canonical
 * copy of the bases (save_projection=True); PEFT <= 0.20 also writes a full
 * copy of randlora_A/B under every adapted RandLora module (§5.3), VeRA drops
 * its per-layer aliases (§5.4).
 */
#ifndef RL_PARAMS_H
#define RL_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/rl_bases.h"
#include "core/rl_err.h"

/* The CSV header `randlora params --csv` prints, exactly. In a row, the
 * targets field joins the module names with '+' (never ',' or ';'). */
#define PARAMS_CSV_HEADER "arch,method,r,targets,layers,params,bases_floats"

/* Limits on user-given sizes, so that every count fits in 64 bits. */
#define PARAMS_MAX_DIM   (1 << 20)   /* d_out, d_in, r       */
#define PARAMS_MAX_COUNT (1 << 20)   /* layers of one module */
#define PARAMS_MAX_MODULES 64        /* module kinds in one selection */

/* One kind of linear module: `count` copies of a (d_out, d_in) weight. */
typedef struct {
    const char *name;    /* HF attribute name, e.g. "q_proj"; "768x768" for --shapes */
    const char *alias;   /* short PEFT-style alias ("q", "k", "v", "o") or NULL */
    const char *path;    /* dotted path inside one block, e.g. "self_attn.q_proj" */
    const char *tower;   /* "vision" / "text" for two-tower models, else NULL */
    int d_out, d_in, count;
} params_module;

typedef struct {
    const char *name;    /* "llama-3.2-3b" */
    const char *desc;    /* one line, human */
    const char *source;  /* HF repo whose config.json the shapes come from */
    int n_modules;
    params_module modules[16];
} params_arch;

/* Adapted modules: a selection from an architecture, or parsed --shapes. */
typedef struct {
    int n;
    params_module m[PARAMS_MAX_MODULES];
    char targets[512];   /* canonical names joined by '+', e.g. "q_proj+v_proj" */
} params_selection;

typedef struct {
    uint64_t layers;        /* adapted modules (sum of counts) */
    uint64_t params;        /* trainable parameters */
    int max_out, max_in;    /* (O, I) over the adapted modules */
    uint64_t bases_floats;  /* shared A + B floats stored with save_projection */
    uint64_t ckpt_bytes;        /* F32: params + one copy of the bases */
    uint64_t ckpt_bytes_peft020; /* F32, PEFT <= 0.20: + a copy per RandLora module */
} params_result;

/* The built-in architectures, in table order. */
int params_n_archs(void);
const params_arch *params_arch_at(int i);
/* NULL if `name` is not built in. */
const params_arch *params_arch_find(const char *name);

/* Select the modules of `a` named by the comma-separated `targets`: HF names
 * ("q_proj"), dotted suffixes of the in-block path ("self_attn.q_proj"),
 * aliases q, k, v, o, or "all-linear" (every linear module PEFT's
 * all-linear would pick for the base model). Duplicates collapse. RL_EINVAL
 * naming the bad item and listing the valid names. */
rl_status params_select(const params_arch *a, const char *targets, params_selection *sel);

/* Parse "OUTxIN[xCOUNT],..." (COUNT defaults to 1). RL_EINVAL naming the
 * bad piece. */
rl_status params_parse_shapes(const char *spec, params_selection *sel);

/* Count modules `m[0..n)` adapted with method `method` at rank r. RL_EINVAL
 * for r outside [1, PARAMS_MAX_DIM] or n <= 0, RL_ERANGE on 64-bit overflow. */
rl_status params_count(rl_method method, int r, const params_module *m, int n, params_result *out);

/* Print the human report of one (modules, method, r) under `title`. */
void params_print_report(const char *title, const params_selection *sel, rl_method method, int r,
                         rl_bases_kind kind, const params_result *res);
/* One CSV row (PARAMS_CSV_HEADER's columns) with `arch` in the first field. */
void params_print_csv_row(const char *arch, rl_method method, int r, const params_selection *sel,
                          const params_result *res);
/* The table of params and checkpoint sizes per (r, method) for `sel`, with a
 * "== name -- desc [source]" title (or CSV rows named `name`). Returns 0, or
 * 2 after printing the error when a count fails. */
int params_print_table(const char *name, const char *desc, const char *source, const params_selection *sel,
                       const rl_method *methods, int n_methods, const int *rs, int n_rs, bool csv);
/* The footnote under such tables (what "PEFT<=0.20*" means). */
void params_print_table_note(void);

/* `randlora params --config FILE | --weights FILE ...` (hfconfig.c): the
 * same tables for a Hugging Face model read from its files. */
int params_hf(int argc, char **argv);

#endif
