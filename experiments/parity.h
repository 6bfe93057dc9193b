/* parity.h -- check the library against PEFT reference files
 * (the ../shared/parity "peft-parity-v1" safetensors format; a copy lives in
 * tests/fixtures/peft/ and its README describes every key).
 *
 * For one file: (1) regenerate the shared bases from the metadata and compare
 * them with the stored ones -- bit-exact for RandLora, at most 1 ulp for
 * VeRA's float32 bases (torch's float32 uniform_ rounds once or twice
 * depending on the CPU kernel it dispatches to); (2) compare every stored
 * init.<param> with the adapter's initial values, bit-exact; (3) load the
 * stored parameters and compute output, delta weight, dx and every parameter
 * gradient, and compare with expect.* by  max|ours - ref| / max|ref| <= tol.
 * Errors against the float64 truth.* are measured too and reported.
 *
 * Parameter gradients are compared with expect.grad.<param> like every other
 * tensor, and with the float64 truth.grad.<param> where the file has it. A
 * reference gradient that is identically zero while ours is not is a defect
 * of the reference file (the loss L = Σ output ⊙ grad_output moves with that
 * parameter): the file FAILS, naming the tensor, and a finite difference of
 * L (fd_check, PARITY_FD_TOL) is still computed and reported, so the message
 * says whether ours agrees with the file's own loss.
 */
#ifndef RL_PARITY_H
#define RL_PARITY_H

#include <stdbool.h>

#include "adapters/rl_adapter.h"
#include "adapters/rl_bases.h"
#include "core/rl_err.h"
#include "io/rl_safetensors.h"

#define PARITY_DEFAULT_TOL 1e-5
/* Tolerance of the finite-difference gradient check (|D - <g,v>| / Σ|g|):
 * the loss is exactly linear along the probe direction, so the error is the
 * float32 rounding of two forward passes (~1e-7 relative per output, summed
 * over tokens·d_out terms with cancellation); 1e-4 leaves room for that and
 * still refutes any wrong gradient, whose error is O(1). */
#define PARITY_FD_TOL 1e-4

typedef struct {
    bool pass;
    char method[16];
    int layers;
    char fail_what[320];       /* the tensor that failed (and why), if !pass */
    double fail_err;
    double max_rel;            /* worst expect.* error over all tensors */
    char max_rel_what[160];
    long bases_mismatch;       /* elements differing from the stored bases */
    unsigned bases_max_ulp;    /* largest ulp distance to the stored bases */
    int init_checked;          /* init.* tensors compared */
    double truth_out_rel;      /* ours vs float64 truth.output (worst layer) */
    double truth_dx_rel;       /* ours vs float64 truth.grad.x */
    double peft_truth_out_rel; /* PEFT's float32 expect.output vs truth.output */
    double grad_rel;           /* worst expect.grad.* error (x and parameters) */
    double param_grad_rel;     /* worst expect.grad.<param> error */
    double truth_grad_rel;     /* ours vs float64 truth.grad.<param> (worst; -1: no truth.grad.<param>) */
    double peft_truth_grad_rel;/* PEFT's float32 expect.grad.<param> vs truth.grad.<param> */
    int ref_grad_zero;         /* expect.grad.<param> that were all zero while ours were
                                  not: a defect of the file, which then fails */
    double fd_max_err;         /* worst finite-difference error of ours among those */
    bool bases_absent;         /* a candidate without the shared bases (nothing compared) */
} parity_result;

/* Check one file. Returns RL_OK when the file could be read and checked (the
 * verdict is res->pass); an error status (message in rl_errmsg()) when the
 * file is unreadable or lacks a key the format requires. */
rl_status parity_check_file(const char *path, double tol, parity_result *res);

/* What a reference file describes, read from its metadata and weights:
 * method, adapter config, layer shapes, and the shared bases regenerated
 * from projection_prng_key (NULL for lora). Shared with `randlora rank`. */
#define PARITY_MAX_LAYERS 64
typedef struct {
    rl_method method;
    rl_adapter_config cfg;
    int layers, tokens;
    int shapes[PARITY_MAX_LAYERS][2];   /* (d_out, d_in) of layers.i.weight */
    int max_out, max_in;
    rl_bases_kind kind;                 /* randlora */
    rl_shared_bases *bases;             /* owned; free with parity_setup_free */
} parity_setup;

/* Read the metadata and layer shapes of f and regenerate its bases. Errors
 * name the file and the metadata key or tensor at fault. */
rl_status parity_setup_read(const rl_st_file *f, parity_setup *out);
void parity_setup_free(parity_setup *s);
/* Load layer `layer`'s stored parameters (layers.<i>.<param name>) into a. */
rl_status parity_load_params(const rl_st_file *f, int layer, rl_adapter *a);

/* Relative error max|a - b| / max|b| (absolute when b is all zero); NaN or
 * Inf anywhere in a gives +inf, so "fail unless err <= tol" is NaN-safe. */
double parity_rel_err(const float *a, const float *b, size_t n);
/* Distance in units in the last place between two finite floats. */
unsigned parity_ulp_diff(float a, float b);

/* The PASS/FAIL line of one checked file (st: parity_check_file's status);
 * returns whether it passed. */
bool parity_print_row(const char *label, const parity_result *res, rl_status st);
/* The last two lines: worst gradient errors and "N passed, M failed". */
void parity_print_summary(int passed, int failed, double worst_grad, double worst_truth_grad);

/* `randlora parity --candidate CAND REF` (candidate.c). */
int parity_candidate_cmd(int argc, char **argv);

#endif
