/* hfconfig.h -- a Hugging Face model's linear modules from its files alone,
 * and PEFT's target_modules rules over them (`randlora params --config /
 * --weights`).
 *
 * From a transformers config.json (lib/io/rl_json.h) the module names and
 * (d_out, d_in) shapes are derived exactly as transformers builds the model
 * class the config names:
 *   llama, mistral, qwen2, qwen3, gemma, gemma2   model.layers.{i}.self_attn.{q,k,v,o}_proj,
 *                     model.layers.{i}.mlp.{gate,up,down}_proj, lm_head
 *   phi3              model.layers.{i}.self_attn.{qkv,o}_proj, mlp.{gate_up,down}_proj, lm_head
 *   gpt2              transformer.h.{i}.attn.c_attn / c_proj, mlp.c_fc / c_proj (Conv1D), lm_head
 *   gpt_neox          gpt_neox.layers.{i}.attention.{query_key_value,dense},
 *                     mlp.dense_h_to_4h / dense_4h_to_h, embed_out
 *   vit, dinov2       [vit.|dinov2.]encoder.layer.{i}.attention.attention.{query,key,value},
 *                     attention.output.dense, intermediate.dense / output.dense (ViT),
 *                     mlp.fc1 / fc2 or weights_in / weights_out (DINOv2 SwiGLU);
 *                     pooler.dense (ViTModel) or classifier (*ForImageClassification)
 *   clip, clip_vision_model   {text,vision}_model.encoder.layers.{i}.self_attn.{k,v,q,out}_proj,
 *                     mlp.fc1 / fc2, visual_projection, text_projection
 * using hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads, num_key_value_heads (default: num_attention_heads,
 * as transformers), head_dim when present (else hidden_size / heads),
 * vocab_size and tie_word_embeddings (GPT-2: n_embd, n_layer, n_head,
 * n_inner; DINOv2: mlp_ratio; CLIP: vision_config / text_config and
 * projection_dim). A missing or malformed field, or an unknown model_type,
 * is an error naming the file and the field.
 *
 * From a checkpoint's safetensors headers (lib/io/rl_st_header.h; one file
 * or a sharded model.safetensors.index.json) every 2-D floating-point
 * "<module>.weight" is a candidate module, shape as stored; names whose last
 * part says embedding (embed*, *embedding*, wte, wpe) are set aside, and
 * lm_head / embed_out are taken as the output head. Given both files, the
 * modules come from the config and each is checked against the checkpoint
 * (same name up to a leading prefix, same shape; Conv1D stored (in, out)).
 *
 * Target rules (PEFT tuners_utils.check_target_module_exists and
 * _maybe_include_all_linear_layers):
 *   a list    a module matches an item when its full name equals the item
 *             or ends in "." + item ("q_proj", "self_attn.q_proj",
 *             "model.layers.0.self_attn.q_proj");
 *   a string  re.fullmatch(pattern, name): here a POSIX extended regular
 *             expression anchored at both ends (Python-only syntax such as
 *             \d, (?:...) or lazy quantifiers is refused with a hint);
 *   "all-linear" (any case, as a string) every Linear / Conv1D module but
 *             the output embedding (model.get_output_embeddings()).
 * Only linear modules are listed; PEFT would also refuse a target that
 * matches a module of another type.
 */
#ifndef RL_HFCONFIG_H
#define RL_HFCONFIG_H

#include <stdbool.h>

#include "core/rl_err.h"
#include "params.h"

#define HF_MAX_NAME 192

typedef struct {
    char name[HF_MAX_NAME];   /* full module name, e.g. "model.layers.0.self_attn.q_proj" */
    int d_out, d_in;          /* as nn.Linear's weight; a Conv1D stores (d_in, d_out) */
    bool conv1d;
    bool head;                /* the output embedding: all-linear leaves it out */
    bool tied;                /* the head shares the input embedding's weight */
} hf_module;

typedef struct {
    char model_type[48];      /* "llama", ... ; "" from a checkpoint alone */
    char arch[96];            /* architectures[0], or the class assumed */
    char desc[320];           /* one line for humans */
    char source[512];         /* the file(s) read */
    int n, cap;
    hf_module *m;             /* owned */
    int n_skipped;            /* checkpoint: 2-D weights set aside as embeddings */
    unsigned long long read_bytes, data_bytes; /* checkpoint: header bytes read, tensor bytes */
    int n_files;
} hf_model;

/* Derive the linear modules of the model a config.json describes. */
rl_status hf_model_from_config(hf_model *out, const char *path);
/* The modules of a checkpoint (.safetensors or .index.json), from headers
 * only. With cfg non-NULL the modules are cfg's, checked against the
 * checkpoint and renamed as it names them (out takes them over). */
rl_status hf_model_from_weights(hf_model *out, const char *path, const hf_model *cfg);
void hf_model_free(hf_model *m);

typedef enum { HF_TARGETS_LIST = 0, HF_TARGETS_REGEX = 1 } hf_targets_kind;

/* PEFT's list rule for one item: key == target or key ends in "." + target. */
bool hf_list_item_matches(const char *key, const char *target, size_t target_len);

/* matched[i] (m->n entries) := does module i match. A list is comma-
 * separated; "all-linear" as a list item is the shorthand (the CLI's only
 * way to pass a string that is not a regex). RL_EINVAL names a bad regex or
 * an empty item; RL_ENOTFOUND ("no linear module matches the targets ...")
 * when nothing matched. */
rl_status hf_match(const hf_model *m, hf_targets_kind kind, const char *spec, bool *matched);

/* Matched modules grouped into module kinds for params_count: every all-
 * digit part of a name becomes '*', and modules of the same pattern and
 * shape become one kind with a count. Names point into g. */
typedef struct {
    params_selection sel;
    char names[PARAMS_MAX_MODULES][HF_MAX_NAME];
    char layers[PARAMS_MAX_MODULES][96];   /* the indices the first '*' stood for: "0-27" */
} hf_groups;

rl_status hf_group(const hf_model *m, const bool *matched, hf_groups *g);

#endif
