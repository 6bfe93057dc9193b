/* rl_rng.h -- a torch-compatible CPU random number generator.
 *
 * Reproduces torch 1.13's CPU generator bit for bit (peft-semantics.md §1):
 *   - torch.Generator().manual_seed(k) seeds an MT19937 with
 *     init_genrand(k mod 2^32) (NOT init_by_array; and not GSL, which
 *     silently replaces seed 0 -- PEFT's default key -- by 4357);
 *   - every float32 / bfloat16 / float16 sample consumes exactly one 32-bit
 *     word, in row-major element order;
 *   - uniform_(from, to) for float32:  x = (u & 0xFFFFFF) · 2^-24,
 *       value = x · (hi - lo) + lo, rounded once (fused multiply-add) as the
 *       AVX2 build torch ships on x86-64 does, or twice (mul then add) as the
 *       no-AVX "default" dispatch does -- the caller chooses (rl_fma);
 *   - uniform_ for a 16-bit type with D mantissa digits (bf16: 8, fp16: 11):
 *       x = (u & (2^D - 1)) · 2^-D, lo/hi/range rounded to the 16-bit type,
 *       value = to16(x · range + lo) (exact in float, one RNE at the end);
 *   - kaiming_uniform_(a, fan_in):  bound = sqrt(3) · sqrt(2 / (1 + a²)) /
 *       sqrt(fan), computed in double in this order, then uniform_(-b, b);
 *   - torch.rand = uniform_(0, 1) in float32 (exact either way).
 *
 * Self-checks (tests/test_core.c): the 10000th output of seed 5489 is
 * 4123659995; seed 0 starts 2357136044, 2546248239, 3071714933.
 */
#ifndef RL_RNG_H
#define RL_RNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t s[624];
    int left;   /* words left before the next twist (torch's `left_`)  */
    int next;   /* index of the next word to temper (torch's `next_`) */
} rl_mt;

/* torch.Generator().manual_seed(seed): only seed mod 2^32 matters. */
void rl_mt_seed(rl_mt *g, uint64_t seed);
uint32_t rl_mt_next(rl_mt *g);

typedef enum { RL_FMA = 0, RL_MULADD = 1 } rl_fma;

/* The 16-bit float formats torch can draw in, plus float32. */
typedef enum { RL_F32 = 0, RL_BF16 = 1, RL_FP16 = 2 } rl_fmt;

/* torch.rand(n): values (u & 0xFFFFFF) · 2^-24. */
void rl_rand_f32(rl_mt *g, float *out, size_t n);

/* uniform_(from, to) into float32. */
void rl_uniform_f32(rl_mt *g, float *out, size_t n, double from, double to, rl_fma fma);

/* uniform_(from, to) into a tensor of format fmt (RL_F32 uses `fma`); the
 * results are written as float32 holding exactly the fmt values. */
void rl_uniform_fmt(rl_mt *g, float *out, size_t n, double from, double to,
                    rl_fmt fmt, rl_fma fma);

/* The bound torch.nn.init.kaiming_uniform_ uses (mode fan_in, leaky_relu). */
double rl_kaiming_bound(double a, long fan_in);

/* kaiming_uniform_(t, a, fan_in) into format fmt. */
void rl_kaiming_uniform(rl_mt *g, float *out, size_t n, double a, long fan_in,
                        rl_fmt fmt, rl_fma fma);

/* Round a float32 to fmt (identity for RL_F32). */
float rl_fmt_round(rl_fmt fmt, float v);

/* Tensor.std() (unbiased, accumulated in double, two-pass) rounded to fmt. */
float rl_std_unbiased(const float *x, size_t n, rl_fmt fmt);

/* A small explicit-state uniform / normal source for everything that need
 * not match torch (test data, synthetic inputs): uses rl_mt underneath. */
float rl_mt_uniform01(rl_mt *g);                 /* [0, 1) with 24 bits */
float rl_mt_normal(rl_mt *g);                    /* Box-Muller, N(0, 1) */
void rl_mt_fill_normal(rl_mt *g, float *x, size_t n, float scale);

#endif
