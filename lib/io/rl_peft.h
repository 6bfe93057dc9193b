/* rl_peft.h -- PEFT adapter directories: read, write back, merge into base weights.
 *
 * A directory written by PEFT's save_pretrained (peft-semantics.md §5) holds
 *   adapter_config.json          json.dumps(asdict(config)), read with jansson;
 *                                 "peft_type" is RANDLORA, VERA or LORA
 *   adapter_model.safetensors    F32 / F16 / BF16 tensors keyed
 *     RANDLORA  base_model.model.<module path>.randlora_lambda   (r, nb)
 *               base_model.model.<module path>.randlora_gamma    (nb, mn)
 *               base_model.randlora_A (r, 1, min_dim), base_model.randlora_B
 *               (max_dim, NB, r), and (PEFT <= 0.20) a copy of both under every
 *               module; no bases at all when save_projection is false
 *     VERA      base_model.model.<path>.vera_lambda_b (out), .vera_lambda_d (r),
 *               base_model.vera_A (r, I), base_model.vera_B (O, r)
 *     LORA      base_model.model.<path>.lora_A.weight (r, in), .lora_B.weight (out, r)
 * and, in this project's examples, base_model.safetensors with the frozen
 * weights keyed <module path>.weight (out, in).
 *
 * Layer shapes. RandLora and VeRA checkpoints do not record a module's
 * (out, in): Γ (nb, mn) gives only min(out, in) and the bases are sized for
 * the largest layer. The reader therefore takes the shapes from the base
 * weights (base_model.safetensors in the directory, or a file the caller
 * names) and checks every tensor against them and against the config; LoRA
 * shapes come from lora_A / lora_B (and are checked against base weights when
 * present).
 *
 * Shared bases: taken from base_model.<randlora|vera>_A/B if present, else
 * from any per-module copy, else regenerated from projection_prng_key and
 * the largest adapted shape exactly as PEFT does on a CPU machine (bf16
 * dense RandLora bases). Stored bases are also compared with the regenerated
 * ones (bases_match_key), which tells whether the key reproduces the file.
 *
 * Every error names the file and the key (or JSON field) at fault and, for
 * shape errors, the shapes involved. Memory is tracked (rl_alloc).
 */
#ifndef RL_PEFT_H
#define RL_PEFT_H

#include <stdbool.h>
#include <stdint.h>

#include "../adapters/rl_adapter.h"
#include "../adapters/rl_bases.h"
#include "../core/rl_err.h"
#include "rl_safetensors.h"

typedef enum {
    RL_PEFT_BASES_NONE = 0,      /* LoRA */
    RL_PEFT_BASES_SHARED,        /* base_model.<method>_A/B */
    RL_PEFT_BASES_PER_LAYER,     /* only per-module copies */
    RL_PEFT_BASES_REGENERATED    /* absent (save_projection false): from the key */
} rl_peft_bases_source;

const char *rl_peft_bases_source_name(rl_peft_bases_source s); /* "none", "shared", ... */

typedef struct {
    char *path;              /* module path, e.g. "model.layers.0.self_attn.q_proj" */
    int d_out, d_in;
    rl_adapter *adapter;     /* owned; parameters loaded from the checkpoint */
} rl_peft_module;

typedef struct {
    char *dir;
    rl_method method;
    rl_adapter_config cfg;           /* r, alpha, use_rslora from the config */
    uint64_t key;                    /* projection_prng_key (randlora, vera) */
    rl_bases_kind kind;              /* randlora: dense / sparse / very_sparse */
    bool save_projection;            /* as in the config */
    rl_peft_bases_source bases_source;
    bool bases_match_key;            /* stored bases == regenerated, bit for bit */
    rl_shared_bases *bases;          /* owned; NULL for LoRA */
    rl_dtype dtype;                  /* dtype of the adapter's parameter tensors */
    int n_modules;
    rl_peft_module *modules;         /* sorted by path */
    char *config_json;               /* the config as read (re-serialised) */
    char *base_path;                 /* base weights used for shapes, or NULL */
} rl_peft;

/* Read the adapter directory `dir`. base_weights: the base model's weights
 * (safetensors, keys <module path>.weight); NULL means <dir>/base_model.safetensors
 * if it exists. Required for RANDLORA and VERA (RL_ENOTFOUND otherwise).
 * Errors: RL_EIO / RL_ENOTFOUND (missing files or tensors), RL_EFORMAT
 * (malformed JSON, unknown peft_type, bad field types, unexpected keys),
 * RL_ESHAPE (config vs tensors vs base weights), RL_ERANGE, RL_EBUDGET (the
 * shared bases -- sized, as PEFT sizes them, by the largest d_out and the
 * largest d_in, which may come from different modules -- or the adapters
 * would take more than the memory budget; checked before they are
 * allocated). *out is NULL on failure and nothing leaks. */
rl_status rl_peft_load(rl_peft **out, const char *dir, const char *base_weights);
void rl_peft_free(rl_peft *p);

/* ΔW (d_out, d_in) of module i into dw (overwrite). */
rl_status rl_peft_delta_weight(const rl_peft *p, int i, float *dw);

typedef struct {
    int dtype;               /* rl_dtype for every tensor, or -1: as read */
    int save_projection;     /* 1 / 0, or -1: as in the config */
    bool per_layer_copies;   /* RandLora: also write the bases under every
                                module, as PEFT <= 0.20 does (default true) */
    bool replace;            /* out_dir may exist and hold files: it is
                                replaced whole (default false: refused) */
} rl_peft_save_opts;

rl_peft_save_opts rl_peft_save_opts_default(void);

/* Write a PEFT-loadable directory `out_dir`: adapter_config.json (the
 * config read, with save_projection updated, indent 2, sorted keys, as PEFT
 * writes it) and adapter_model.safetensors with PEFT's keys. If p was read
 * with base weights, they are copied to out_dir/base_model.safetensors, so
 * the result inspects alone. The directory is written as a unit
 * (rl_output.h: a temporary sibling renamed into place): a missing or empty
 * out_dir gets the new one; a non-empty one is refused (RL_EINVAL) unless
 * opts->replace, which replaces it whole -- no stale file survives; a
 * failure leaves out_dir as it was (RL_EWRITE). Refused as well: out_dir is
 * p->dir or contains p's base weights. The bytes the writer holds are
 * checked against the memory budget first (RL_EBUDGET). */
rl_status rl_peft_save(const rl_peft *p, const char *out_dir, const rl_peft_save_opts *opts);

/* Write out_path: every tensor of base_path (same keys, dtypes, shapes,
 * order) with W += ΔW for each adapted module's "<path>.weight", rounded as
 * PEFT rounds for F16/BF16 weights: ΔW is rounded to W's dtype before the
 * add (LoRA, VeRA; RandLora without safe) or added in float32 (RandLora with
 * safe: PEFT's safe_merge adds its float32 ΔW), then the sum is rounded.
 * With safe, a non-finite merged value is RL_ENONFINITE naming the module and
 * nothing is written. Refuses (RL_EINVAL) an out_path that is one of its
 * inputs (base_path, the adapter's files, the base weights p was read with)
 * by path, hard link or symbolic link, or a directory (rl_output_check).
 * Tensors that are not adapted are written back byte for byte with their
 * 64-bit shapes. What it will hold is checked against the memory budget
 * before the first tensor is converted (RL_EBUDGET). */
rl_status rl_peft_merge(const rl_peft *p, const char *base_path, const char *out_path, bool safe);

#endif
