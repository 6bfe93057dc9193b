/* rl_bases.h -- the shared random bases of RandLora and VeRA, as PEFT makes them.
 *
 * One pair of frozen bases per model, generated once from projection_prng_key
 * and sized for the largest adapted layer; every layer uses a slice
 * (peft-semantics.md §2.2, §3). With (O, I) the element-wise maximum of
 * (d_out, d_in) over the adapted layers:
 *
 * RandLora: min_dim = min(O, I), max_dim = max(O, I), n_bases = ceil(min_dim / r)
 *   A  (r, 1, min_dim)            shared by all bases
 *   B  (max_dim, n_bases, r)      one (max_dim, r) basis per b
 *   dense:   A = kaiming_uniform(a=√5, fan=min_dim) in bf16 (draws A[k][j] in
 *            row-major order), then for b = 0..n_bases-1 a (max_dim, 1, r)
 *            chunk with fan = r (so B is drawn basis-major), each tensor
 *            divided by its unbiased std, in bf16.
 *   sparse / very_sparse: A = torch.rand, then B = torch.rand over the final
 *            shape (row-major), ternarised to -1 below fl32(1/(2s)), +1 above
 *            fl32(1 - 1/(2s)), 0 between, then divided by the float32 std;
 *            s = 3 (sparse) or sqrt(min_dim) (very_sparse, which wins if both).
 * VeRA: A (r, I) then B (O, r), float32 kaiming_uniform with a = 0 (gain √2),
 *   fan = I for A and r for B, no normalisation.
 *
 * Everything is stored as float32 holding the exact generated values. The
 * bases are a pure function of (method, O, I, r, kind, fmt, key).
 */
#ifndef RL_BASES_H
#define RL_BASES_H

#include <stddef.h>
#include <stdint.h>

#include "../core/rl_err.h"
#include "../core/rl_rng.h"

typedef enum { RL_METHOD_FULL = 0, RL_METHOD_LORA, RL_METHOD_VERA, RL_METHOD_RANDLORA } rl_method;
typedef enum { RL_BASES_DENSE = 0, RL_BASES_SPARSE, RL_BASES_VERY_SPARSE } rl_bases_kind;

const char *rl_method_name(rl_method m);            /* "full", "lora", "vera", "randlora" */
const char *rl_bases_kind_name(rl_bases_kind k);    /* "dense", "sparse", "very_sparse" */
/* Parse a name as above; RL_EINVAL naming it if unknown. */
rl_status rl_method_parse(const char *s, rl_method *out);
rl_status rl_bases_kind_parse(const char *s, rl_bases_kind *out);

typedef struct {
    rl_method method;        /* RL_METHOD_RANDLORA or RL_METHOD_VERA */
    rl_bases_kind kind;      /* RandLora only */
    rl_fmt fmt;              /* RandLora dense: RL_BF16 (PEFT on CPU/CUDA), RL_FP16 (MPS), RL_F32 (unreleased) */
    rl_fma fma;              /* float32 draws (VeRA, RandLora RL_F32): RL_FMA as torch's AVX2 build */
    uint64_t key;            /* projection_prng_key */
    int r;
    int max_out, max_in;     /* (O, I) */
    int min_dim, max_dim, n_bases;   /* RandLora */
    float *A;                /* RandLora (r, 1, min_dim); VeRA (r, I)   */
    float *B;                /* RandLora (max_dim, n_bases, r); VeRA (O, r) */
    size_t a_len, b_len;     /* element counts */
    /* Sparse and very_sparse RandLora bases are ternary: every entry of A is
     * 0 or ±a_mag, every entry of B 0 or ±b_mag. Their index, built once
     * here, lets the adapters add and subtract instead of multiplying:
     *   A        CSR by row k:          a_ptr (r+1), a_idx (column q), a_sgn (±1)
     *   B as UB  (max_dim, n_bases·r):  CSR by row p (br_*) and CSC by
     *            column c (bc_*), indices ascending within a row / column.
     * NULL for dense bases and VeRA. */
    float a_mag, b_mag;
    int *a_ptr, *a_idx, *br_ptr, *br_idx, *bc_ptr, *bc_idx;
    signed char *a_sgn, *br_sgn, *bc_sgn;
} rl_shared_bases;

/* ceil(min_dim / r) exactly as PEFT computes it (no int overflow). */
int rl_randlora_n_bases(int min_dim, int r);

/* Generate the shared bases for layers whose largest (d_out, d_in) are
 * (max_out, max_in). method must be RL_METHOD_RANDLORA or RL_METHOD_VERA.
 * Allocates (tracked); free with rl_shared_bases_free. Errors: r <= 0,
 * non-positive dims, a sparse basis whose std is 0 (all zeros: PEFT would
 * divide by zero; refused here). */
rl_status rl_shared_bases_new(rl_shared_bases **out, rl_method method, int r,
                              int max_out, int max_in, rl_bases_kind kind,
                              rl_fmt fmt, rl_fma fma, uint64_t key);
void rl_shared_bases_free(rl_shared_bases *b);
/* The bytes rl_shared_bases_new will allocate (tracked) for these
 * arguments, an upper bound: A and B, the dense generator's chunk, and for
 * sparse / very_sparse bases the ternary index at its largest (every entry
 * nonzero). Saturates at SIZE_MAX; 0 for arguments _new refuses. For the
 * memory budget (rl_budget.h), before the bases are drawn. */
size_t rl_shared_bases_bytes(rl_method method, int r, int max_out, int max_in, rl_bases_kind kind);

/* The shapes PEFT stores the two tensors with: RandLora A (r, 1, min_dim)
 * and B (max_dim, n_bases, r); VeRA A (r, I) and B (O, r). Fills shape_a and
 * shape_b and returns their ndim (3 or 2). */
int rl_shared_bases_shapes(const rl_shared_bases *b, int shape_a[3], int shape_b[3]);
/* "randlora" or "vera": PEFT's prefix of the tensors' names (randlora_A, vera_B, ...). */
const char *rl_shared_bases_prefix(const rl_shared_bases *b);

/* Defaults PEFT uses on a CPU machine: bf16 dense bases, FMA float32 draws. */
#define RL_BASES_FMT_DEFAULT RL_BF16
#define RL_BASES_FMA_DEFAULT RL_FMA

#endif
