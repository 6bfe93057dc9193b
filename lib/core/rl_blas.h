/* rl_blas.h -- the only gateway to cblas (OpenBLAS).
 *
 * rl_gemm computes, for row-major matrices,
 *     C (m, n) = alpha · op(A) · op(B) + beta · C
 * with op(X) = X or Xᵀ as named by ta / tb. op(A) is (m, k), op(B) is (k, n).
 * lda / ldb / ldc are row strides (elements), so a column slice of a wider
 * matrix is a view with a larger leading dimension. beta = 0 overwrites C
 * (NaN in C is not propagated); beta = 1 accumulates.
 *
 * rl_gemm_ref is the naive triple loop with a double accumulator, kept for
 * tests (llm.c's naive-vs-fast pair) and the kernel check below.
 *
 * Threads. rl_blas_set_threads(n) sets OpenBLAS's thread count and the
 * library's own element-wise loops (rl_par.h) to the same n. Those loops run
 * on OpenMP threads; they are allowed more than one only when OpenBLAS is its
 * OpenMP flavour (openblas_get_parallel() == 2): BLAS calls and loops then
 * share one pool of n threads and never run at the same time (a loop runs
 * between BLAS calls; BLAS is called inside a parallel region only through
 * rl_blas_run_parts, which sets OpenBLAS to one thread first: left at n,
 * 0.3.21 ran LoRA's backward products 4-5x slower that way, measured at
 * 4096 rows, 768 features, r = 32). Beside the pthread flavour, whose idle threads spin
 * after each call (toolchain.md §4.3), the loops stay on one thread.
 *
 * Kernels. OpenBLAS's DYNAMIC_ARCH build picks its kernels from the CPU it
 * recognises; 0.3.21 falls back to older ones on CPUs it does not know
 * (Prescott's SSE3 on a family-6 model-207 Xeon, Haswell's AVX2 on a
 * family-26 Zen 5 with AVX-512). rl_blas_upgrade compares the vector tier of
 * the core in use (rl_blas_core_tier) with the CPU's (rl_cpu.h) and names the
 * best core of the build for that CPU: the front end re-executes itself with
 * OPENBLAS_CORETYPE set to it (the variable is read once, when the library
 * loads), then rl_blas_selfcheck compares SGEMM with the naive product
 * before trusting it. The decision uses CPU features only, never the vendor.
 */
#ifndef RL_BLAS_H
#define RL_BLAS_H

#include <stdbool.h>

#include "rl_cpu.h"
#include "rl_err.h"

typedef enum { RL_NOTRANS = 0, RL_TRANS = 1 } rl_trans;

void rl_gemm(rl_trans ta, rl_trans tb, int m, int n, int k,
             float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);

/* The split. With more than one BLAS thread (OpenMP flavour, outside a
 * parallel region), rl_gemm cuts C into rl_gemm_parts(m, n, k) ranges of
 * rows (or of columns, when n > m), at least RL_GEMM_SPLIT_MIN each, cut on
 * multiples of RL_GEMM_ALIGN, and runs one range per thread through
 * rl_blas_run_parts, OpenBLAS on one thread in each. k is never split, so
 * no sum is reordered across parts; an element can still round differently
 * from a one-thread call when a cut puts it in one of OpenBLAS's edge tiles
 * (which sum in another order), so results are repeatable for a thread
 * count, and agree across thread counts to float rounding, as with
 * OpenBLAS's own threads. OpenBLAS 0.3.21's own split of a
 * product over 2 threads, against this one (2-vCPU Zen 5, Cooperlake
 * kernels, OpenMP flavour, medians, GFLOP/s): 1024³ 288 vs 333;
 * (4096, 768, 768) 340 vs 354; (768, 768, 32) 154 vs 304; (4096, 32, 768)
 * 115 vs 264; (768, 32, 4096) 111 vs 245; the ViT's (2048, 64, 64) 135 vs
 * 317. Square products with a large k gain nothing ((768, 768, 4096): 350
 * either way).
 * Products under RL_GEMM_SPLIT_MACS multiply-adds go to OpenBLAS whole
 * ((64, 64, 64) split ran at half its whole rate; (128, 64, 64) at 1.6x).
 * rl_gemm_whole is one OpenBLAS call always (its own threading). */
enum { RL_GEMM_SPLIT_MIN = 32, RL_GEMM_ALIGN = 16, RL_GEMM_SPLIT_MACS = 1 << 19 };
int rl_gemm_parts(int m, int n, int k);
void rl_gemm_whole(rl_trans ta, rl_trans tb, int m, int n, int k,
                   float alpha, const float *A, int lda, const float *B, int ldb,
                   float beta, float *C, int ldc);

/* Rows per block for the products of an (n, width) matrix with an r-column
 * one (LoRA's and VeRA's h = x Aᵀ, dh = dy B, dB = dyᵀ h, dA = dhᵀ x, taken a
 * block of rows at a time). OpenBLAS's AVX-512 cores (SkylakeX, Cooperlake,
 * SapphireRapids) have small-matrix kernels that skip packing, and 0.3.21
 * takes them when M·N·K <= 10⁶ and, for a column-major TN product (a
 * row-major x Aᵀ), M·N <= 1200 (kernel/x86_64/sgemm_small_kernel_permit_
 * skylakex.c). So there: the largest multiple of 8 with rows·r·width <= 10⁶
 * and rows·r <= 1200, when that is at least 16; else (other cores, wide
 * layers) RL_SKINNY_ROWS. Measured (2-vCPU Zen 5, Cooperlake, one thread,
 * 4096 rows, width 768, r = 32, the four products): 32 rows 5.0 ms, 40
 * rows 6.6 ms (past the 1200), 256 rows 6.7 ms; on the Haswell kernels
 * (no small kernels) 32 rows 11.0 ms, 256 rows 10.4 ms. */
enum { RL_SKINNY_ROWS = 256 };
int rl_blas_skinny_rows(int r, int width);           /* for the core in use */
int rl_blas_skinny_rows_on(const char *core, int r, int width);

void rl_gemm_ref(rl_trans ta, rl_trans tb, int m, int n, int k,
                 float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

/* Row parts. rl_blas_run_parts calls fn(ctx, part, parts) for every part in
 * 0..parts-1, each on its own OpenMP thread with OpenBLAS on one thread for
 * the duration (its thread count restored after): for products that split
 * into independent ranges of rows, each range then cache-blocked on its own
 * core (OpenBLAS's own split of a skinny (n, r) product scales poorly). With
 * parts <= 1, or an OpenBLAS that is not the OpenMP flavour, it calls
 * fn(ctx, 0, 1) in place. fn must only write what its part owns. */
void rl_blas_run_parts(int parts, void (*fn)(void *ctx, int part, int parts), void *ctx);

/* Threads for BLAS and the element-wise loops: set (n >= 1) / get. */
void rl_blas_set_threads(int n);
int rl_blas_threads(void);
/* Whether the element-wise loops may use more than one thread (OpenBLAS
 * is its OpenMP flavour). */
bool rl_blas_shares_openmp(void);
/* "openmp", "pthread" or "serial": how this OpenBLAS runs its threads. */
const char *rl_blas_threading(void);
/* The core name in use ("SkylakeX") and OpenBLAS's build configuration. */
const char *rl_blas_corename(void);
const char *rl_blas_config(void);

/* This machine's SGEMM rate in GFLOP/s at the current thread count: the
 * median of timed square size x size rl_gemm products (row-major, alpha 1,
 * beta 0; split over the threads as rl_gemm splits),
 * after 2 untimed ones, over at least 7 calls and `seconds`. */
rl_status rl_blas_sgemm_rate(int size, double seconds, double *gflops);
/* The same through rl_gemm_whole: OpenBLAS's own threads, for comparison. */
rl_status rl_blas_sgemm_rate_whole(int size, double seconds, double *gflops);

/* ---- kernel choice ---- */

/* The vector tier an OpenBLAS core's kernels use; -1 for a name this table
 * does not know (then nothing is changed). */
int rl_blas_core_tier(const char *core);
/* The best core of Debian's DYNAMIC_ARCH 0.3.21 build for a CPU with these
 * features: "Cooperlake" (AVX-512 with BF16), "SkylakeX" (AVX-512),
 * "Haswell" (AVX2 + FMA), "Sandybridge" (AVX), or NULL (SSE only). */
const char *rl_blas_best_core(const rl_cpu_features *f);
/* The core to switch to when `current`'s tier is below what the CPU
 * supports; NULL when current is as good, unknown, or nothing is better. */
const char *rl_blas_upgrade(const char *current, const rl_cpu_features *f);
/* SGEMM through the kernels in use (every transpose, alpha and beta, a few
 * odd shapes up to 256) against the naive product. An element fails when
 * |c - ref| > K·FLT_EPSILON · (|alpha| Σ|a||b| + |beta c0|), twice the
 * standard float32 dot-product bound γ_K ≈ K·2^-24: a wrong kernel misses by
 * O(1). RL_ESHAPE naming the first shape and transposes that fail. */
rl_status rl_blas_selfcheck(void);
/* How the kernels were chosen, for bench, manifests and the report (set by
 * the front end; "" until then), e.g. "SkylakeX: chosen by randlora over
 * OpenBLAS's Haswell (CPU tier avx512)". */
void rl_blas_set_selection(const char *note);
const char *rl_blas_selection(void);

#endif
