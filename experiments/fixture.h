/* fixture.h -- `randlora fixture`: new reference files in the
 * peft-parity-v1 format (tests/fixtures/peft/README.md), computed by this
 * implementation, so another implementation can be checked at shapes no
 * PEFT-made file covers (4096x4096, r = 1..256, many layers).
 *
 * A file holds what a PEFT-made one holds: the shared bases regenerated
 * from projection_prng_key, per layer the frozen weight and bias, the
 * adapter's init.<param> (RandLora, VeRA) and random trained values, x and
 * grad_output, expect.* (this implementation in float32: output,
 * delta_weight, grad.x, grad.<param>) and truth.* (output, grad.x and
 * grad.<param> in float64, stored as F32). The metadata keeps the format's
 * keys and adds generator=randlora-c, seed, verified_against (the PEFT-made
 * files this build was checked against just before writing: each passes
 * `randlora parity`, and truth64 reproduces its truth.* tensors) and
 * verified_max_rel. Nothing is written unless every one of them passes.
 *
 * truth64_layer (truth64.c) is the float64 reference: PEFT's formulas written out as
 * plain loops in double (no BLAS, no float32 anywhere after the inputs):
 *   y  = x Wᵀ + b + adapter(x),  L = Σ y ⊙ dy,  dx = ∂L/∂x,  dθ = ∂L/∂θ
 *   lora      adapter(x) = s (x Aᵀ) Bᵀ, s = alpha / r (alpha / √r rsLoRA)
 *   vera      adapter(x) = λ_b ⊙ ((λ_d ⊙ (x A_sᵀ)) B_sᵀ)
 *   randlora  adapter(x) = s (x UAᵀ) UBᵀ (d_in <= d_out) or s (x UB) UA,
 *             UA[c,q] = λ[c/nb, c%nb] A[c/nb, q] Γ[c%nb, q],
 *             UB[p,c] = B[p, c/r, c%r]    (PEFT's pairing; rl_adapter.h)
 * It costs O(tokens · r·nb · (d_in + d_out)) and allocates O(tokens · r·nb).
 */
#ifndef RL_FIXTURE_H
#define RL_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "adapters/rl_adapter.h"
#include "adapters/rl_bases.h"
#include "core/rl_err.h"
#include "parity.h"

/* Tolerance of truth64 against a PEFT-made file's truth.* (max|err|/max|ref|):
 * those tensors are float64 results rounded to float32, so they differ
 * from ours by at most 2^-24 relative per element (6e-8) plus float64
 * summation-order noise (~1e-15); 1e-6 leaves a factor 16 and still refutes
 * any formula error, which is O(1). */
#define FIXTURE_TRUTH_TOL 1e-6

/* One layer in float64. params: the adapter's parameter block as
 * rl_adapter lays it out (rl_adapter.h); bases: the shared bases (NULL for
 * lora). Outputs: y (tokens, d_out), dx (tokens, d_in), dparams (same
 * layout as params), all overwritten. cfg->pairing must be PEFT's. */
rl_status truth64_layer(const rl_adapter_config *cfg, const rl_shared_bases *bases, int d_out, int d_in,
                        int tokens, const float *W, const float *bias, const float *params, const float *x,
                        const float *dy, double *y, double *dx, double *dparams);

/* Recompute every truth.* tensor of a reference file with truth64_layer;
 * *worst gets the largest max|err|/max|ref| (-1 if the file has none).
 * Errors name the file and tensor. */
rl_status fixture_check_truth(const char *path, double *worst);

typedef struct {
    rl_method method;
    int r;
    double alpha;               /* lora / randlora */
    bool use_rslora;            /* lora */
    double d_initial;           /* vera */
    rl_bases_kind kind;         /* randlora */
    uint64_t key;               /* projection_prng_key */
    int tokens;
    uint64_t seed;              /* of the random inputs and trained values */
    int layers;
    int shapes[PARITY_MAX_LAYERS][2];   /* (d_out, d_in) */
} fixture_spec;

/* Check this build against every PEFT-made reference file of `method`
 * (metadata peft_commit present) in the given folders: parity_check_file
 * at PARITY_DEFAULT_TOL and fixture_check_truth at FIXTURE_TRUTH_TOL.
 * names gets their base names joined by ','; *n_files their count (0 is an
 * error: nothing to vouch for the new file). */
rl_status fixture_verify(rl_method method, const char *const *dirs, int n_dirs, char *names, size_t len,
                         double *worst_f32, double *worst_f64, int *n_files);

/* Compute and write the file (atomically). `verified` and `verified_rel`
 * go into the metadata as verified_against and verified_max_rel. */
rl_status fixture_write(const fixture_spec *s, const char *verified, const char *verified_rel, const char *out);

/* A candidate file (candidate.h's keys) for the inputs of reference `ref`,
 * computed by this implementation -- with the flattened factors paired as
 * `pairing` says and the scaling multiplied by `scale_factor` (1 and
 * RL_PAIRING_PEFT give a faithful candidate; tests use the others to make
 * deliberately wrong ones). Bases are included when with_bases. */
rl_status fixture_write_candidate(const char *ref, rl_pairing pairing, double scale_factor, bool with_bases,
                                  const char *out);

int cmd_fixture(int argc, char **argv);

#endif
