/* candidate.h -- `randlora parity --candidate CAND REF`: another
 * implementation (a JAX port, a CUDA kernel, a PEFT fork) checked against a
 * peft-parity-v1 reference file, the same way the library itself is.
 *
 * The candidate is a safetensors file holding that implementation's results
 * for REF's inputs (REF's layers.<i>.weight, .bias, trained adapter values,
 * .x, .grad_output and shared bases), float32 (F16/BF16 are read too):
 *   layers.<i>.output              (tokens, d_out)  y = x Wᵀ + b + adapter(x)
 *   layers.<i>.delta_weight        (d_out, d_in)    ΔW as PEFT's get_delta_weight
 *   layers.<i>.grad.x              (tokens, d_in)   ∂L/∂x, L = Σ output ⊙ grad_output
 *   layers.<i>.grad.<param>        the PEFT parameter's shape: grad.randlora_lambda,
 *                                  grad.randlora_gamma, grad.vera_lambda_b,
 *                                  grad.vera_lambda_d, grad.lora_A.weight, grad.lora_B.weight
 *   randlora_A, randlora_B / vera_A, vera_B   optional: the shared bases it generated
 * for every layer i of REF (all tensors but the bases are required).
 * Metadata is free (experiments/reference/candidate_writer.py writes
 * format=peft-parity-candidate-v1, reference=<REF's name>, implementation).
 *
 * Each tensor is compared with REF's expect.<name> (PEFT's float32 result)
 * and, where REF has it, truth.<name> (float64): it passes when
 * max|cand - ref| / max|ref| <= tol against either (default
 * PARITY_DEFAULT_TOL = 1e-5; a port that is more exact than PEFT's float32
 * must not fail). Bases must equal REF's stored ones bit for bit (RandLora)
 * or within 1 ulp (VeRA's float32 draws). The first failing tensor is named
 * with both errors. A candidate tensor whose name is none of the above is
 * an input error (a misspelt key would otherwise go unchecked).
 */
#ifndef RL_CANDIDATE_H
#define RL_CANDIDATE_H

#include "core/rl_err.h"
#include "parity.h"

/* Check `cand` against `ref`. RL_OK when both could be read (the verdict
 * is res->pass, the PASS/FAIL row parity_print_row prints); an error status
 * naming the file and key when either is unreadable, REF is not a
 * peft-parity-v1 file or the candidate has an unknown key. */
rl_status parity_check_candidate(const char *ref, const char *cand, double tol, parity_result *res);

#endif
