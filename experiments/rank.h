/* rank.h -- `randlora rank` (experiments/rank.c) and `randlora sweep rank`
 * (experiments/sweep_rank.c), callable in-process by the tests. */
#ifndef RL_EXP_RANK_H
#define RL_EXP_RANK_H

#include <stdbool.h>
#include <stdio.h>

#include "core/rl_err.h"

#define RANK_CSV_HEADER "layer,out,in,min_dim,rank,effective_rank,stable_rank,sigma_max,sigma_min"

/* One row per layer of a peft-parity-v1 file: ΔW built by the library from
 * the stored parameters, bases regenerated from the key; numerical rank at
 * the float32 tolerance (rl_rank.h), or at tol when tol > 0. */
rl_status rank_fixture_write(const char *path, FILE *out, bool csv, double tol);

#endif
