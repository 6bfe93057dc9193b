/* rl_par.h -- element-wise loops on the threads BLAS uses.
 *
 * RL_PAR_FOR(n) in front of a `for` over n independent iterations runs it as
 * an OpenMP static-schedule loop on the thread count rl_blas_set_threads set
 * (rl_blas.h: one OpenMP pool shared with OpenBLAS's OpenMP flavour, one
 * thread otherwise). Loops shorter than RL_PAR_MIN iterations of element
 * work stay serial: a fork/join costs more than they do.
 *
 * Determinism: a static schedule gives each iteration to one thread and
 * every iteration writes its own outputs, so results do not depend on the
 * thread count. Reductions are written as loops over independent outputs
 * (each output sums its own terms in a fixed order), never as OpenMP
 * reduction clauses, whose combination order follows the thread count.
 * Never call BLAS inside such a loop.
 */
#ifndef RL_PAR_H
#define RL_PAR_H

#define RL_PAR_MIN 16384

#define RL_PRAGMA_(x) _Pragma(#x)
/* n: iterations; work: elements touched per iteration (1 for a plain
 * element-wise loop, the row length for a loop over rows). */
#define RL_PAR_FOR_W(n, work) RL_PRAGMA_(omp parallel for schedule(static) if ((double)(n) * (double)(work) >= RL_PAR_MIN))
#define RL_PAR_FOR(n) RL_PAR_FOR_W(n, 1)
/* A plain element-wise loop (no inner loop, no call) whose iterations may
 * also run as vector lanes: `omp parallel for simd`. Per-element operations
 * stay what they are (no sum is reordered), so the results do not change. */
#define RL_PAR_FOR_SIMD_W(n, work) \
    RL_PRAGMA_(omp parallel for simd schedule(static) if ((double)(n) * (double)(work) >= RL_PAR_MIN))
#define RL_PAR_FOR_SIMD(n) RL_PAR_FOR_SIMD_W(n, 1)

#endif
