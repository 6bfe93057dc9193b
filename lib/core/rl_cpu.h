/* rl_cpu.h -- what the CPU can do: vector features (cpuid + the OS's saved
 * state) and a measured FMA peak.
 *
 * Features come from cpuid leaves 1 and 7 and, for AVX / AVX-512, from XCR0
 * (xgetbv): a unit counts only when the OS saves its registers. The vector
 * tier orders what a BLAS kernel may use:
 *   RL_TIER_SSE      no AVX (or the OS does not save ymm)
 *   RL_TIER_AVX      AVX
 *   RL_TIER_AVX2     AVX2 + FMA3
 *   RL_TIER_AVX512   AVX-512 F, CD, BW, DQ, VL (OpenBLAS's SkylakeX kernels)
 *
 * The FMA peak is a register-only loop: 12 independent chains of fused
 * multiply-adds on the widest vectors of the tier (zmm, ymm; SSE: a mul and an
 * add on xmm), no memory traffic, so it measures the core's arithmetic rate,
 * the ceiling any SGEMM is held against. With threads > 1 the loop runs on
 * that many OpenMP threads at once and the rates add.
 */
#ifndef RL_CPU_H
#define RL_CPU_H

#include <stdbool.h>

#include "rl_err.h"

typedef enum { RL_TIER_SSE = 0, RL_TIER_AVX = 1, RL_TIER_AVX2 = 2, RL_TIER_AVX512 = 3 } rl_cpu_tier;

typedef struct {
    char vendor[13];            /* "AuthenticAMD", "GenuineIntel", ... */
    int family, model;          /* display family / model (extended fields folded in) */
    bool sse3, avx, fma, avx2;
    bool avx512f, avx512cd, avx512bw, avx512dq, avx512vl, avx512_bf16;
    bool os_ymm, os_zmm;        /* XCR0 says the OS saves ymm / zmm + opmask state */
} rl_cpu_features;

/* This CPU (x86-64; elsewhere every flag is false and the tier is SSE). */
void rl_cpu_detect(rl_cpu_features *f);
rl_cpu_tier rl_cpu_tier_of(const rl_cpu_features *f);
const char *rl_cpu_tier_name(rl_cpu_tier t); /* "sse", "avx", "avx2", "avx512" */
/* "family 26 model 2 AuthenticAMD: avx2 fma avx512f ... (tier avx512)" into buf. */
void rl_cpu_describe(const rl_cpu_features *f, char *buf, int len);

/* Measured FMA peak in GFLOP/s (2 flops per lane and FMA) on `threads`
 * threads at once, on the widest vectors of `tier` (capped at this CPU's
 * tier), for about `seconds`; the median of 5 timings (the statistic of
 * rl_blas_sgemm_rate, so that a fraction of one over the other is like for like). */
rl_status rl_cpu_fma_peak(rl_cpu_tier tier, int threads, double seconds, double *gflops);

#endif
