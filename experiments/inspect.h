/* inspect.h -- `randlora inspect` (experiments/inspect.c), callable
 * in-process by the tests. */
#ifndef RL_EXP_INSPECT_H
#define RL_EXP_INSPECT_H

#include <stdbool.h>
#include <stdio.h>

#include "core/rl_err.h"

#define INSPECT_CSV_HEADER "module,out,in,method,params,rank,min_dim,effective_rank,fro_norm"

/* One row per adapted module of a PEFT adapter directory (base weights for
 * the shapes: base_path, or NULL for <dir>/base_model.safetensors). */
rl_status inspect_write(const char *dir, const char *base_path, FILE *out, bool csv);

#endif
