/* rl_cpu.c -- cpuid features and the register-only FMA peak. */
#include "rl_cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "rl_clock.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define RL_X86 1
#endif

/* ---- features ---- */

#ifdef RL_X86
static unsigned long long xgetbv0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

/* cpuid traps to the hypervisor in a VM (tens of microseconds): the features
 * are read once per process and copied from then on. */
static rl_cpu_features detected;
static pthread_once_t detected_once = PTHREAD_ONCE_INIT;
static void detect_now(rl_cpu_features *f);
static void detect_once(void) { detect_now(&detected); }

void rl_cpu_detect(rl_cpu_features *f)
{
    pthread_once(&detected_once, detect_once);
    *f = detected;
}

static void detect_now(rl_cpu_features *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->vendor, sizeof f->vendor, "unknown");
#ifdef RL_X86
    unsigned a = 0, b = 0, c = 0, d = 0, max = 0;
    if (!__get_cpuid(0, &max, &b, &c, &d)) return;
    memcpy(f->vendor, &b, 4);
    memcpy(f->vendor + 4, &d, 4);
    memcpy(f->vendor + 8, &c, 4);
    f->vendor[12] = '\0';
    __get_cpuid(1, &a, &b, &c, &d);
    int fam = (a >> 8) & 0xf, mod = (a >> 4) & 0xf;
    if (fam == 0xf) fam += (a >> 20) & 0xff;
    if (fam == 0x6 || fam >= 0xf) mod |= ((a >> 16) & 0xf) << 4;
    f->family = fam;
    f->model = mod;
    f->sse3 = c & 1u;
    f->fma = (c >> 12) & 1u;
    bool osxsave = (c >> 27) & 1u;
    f->avx = (c >> 28) & 1u;
    if (osxsave) {
        unsigned long long x = xgetbv0();
        f->os_ymm = (x & 0x6) == 0x6;            /* xmm, ymm */
        f->os_zmm = f->os_ymm && (x & 0xe0) == 0xe0; /* opmask, zmm hi256, hi16 zmm */
    }
    if (max >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f->avx2 = (b >> 5) & 1u;
        f->avx512f = (b >> 16) & 1u;
        f->avx512dq = (b >> 17) & 1u;
        f->avx512cd = (b >> 28) & 1u;
        f->avx512bw = (b >> 30) & 1u;
        f->avx512vl = (b >> 31) & 1u;
        unsigned a1, b1, c1, d1;
        __cpuid_count(7, 1, a1, b1, c1, d1);
        f->avx512_bf16 = (a1 >> 5) & 1u;
    }
#endif
}

rl_cpu_tier rl_cpu_tier_of(const rl_cpu_features *f)
{
    if (!f->avx || !f->os_ymm) return RL_TIER_SSE;
    if (!f->avx2 || !f->fma) return RL_TIER_AVX;
    if (f->avx512f && f->avx512cd && f->avx512bw && f->avx512dq && f->avx512vl && f->os_zmm) return RL_TIER_AVX512;
    return RL_TIER_AVX2;
}

const char *rl_cpu_tier_name(rl_cpu_tier t)
{
    static const char *const names[] = {"sse", "avx", "avx2", "avx512"};
    return (unsigned)t < 4 ? names[t] : "?";
}

void rl_cpu_describe(const rl_cpu_features *f, char *buf, int len)
{
    snprintf(buf, (size_t)len, "%s family %d model %d:%s%s%s%s%s%s (tier %s)", f->vendor, f->family, f->model,
             f->avx ? " avx" : "", f->avx2 ? " avx2" : "", f->fma ? " fma" : "",
             f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq ? " avx512f/bw/vl/dq" : "",
             f->avx512_bf16 ? " avx512_bf16" : "", f->avx512f && !f->os_zmm ? " (zmm state not enabled by the OS)" : "",
             rl_cpu_tier_name(rl_cpu_tier_of(f)));
}

/* ---- FMA peak ---- */

/* 12 independent chains x = x·m + c: m < 1 and c small keep every value
 * near c / (1 - m) = 1, far from overflow and denormals. Returns a sum of
 * the chains so the compiler must run the loop. */
#ifdef RL_X86
#define CHAINS(T, SET1, FMA, ADD, N)                                                         \
    T a0 = SET1(1.0f), a1 = SET1(1.1f), a2 = SET1(1.2f), a3 = SET1(1.3f), a4 = SET1(1.4f), \
      a5 = SET1(1.5f), a6 = SET1(1.6f), a7 = SET1(1.7f), a8 = SET1(1.8f), a9 = SET1(1.9f),  \
      a10 = SET1(2.0f), a11 = SET1(2.1f);                                                   \
    const T m = SET1(0.9999999f), c = SET1(1e-7f);                                          \
    for (long i = 0; i < (N); i++) {                                                        \
        a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c); a3 = FMA(a3, m, c);     \
        a4 = FMA(a4, m, c); a5 = FMA(a5, m, c); a6 = FMA(a6, m, c); a7 = FMA(a7, m, c);     \
        a8 = FMA(a8, m, c); a9 = FMA(a9, m, c); a10 = FMA(a10, m, c); a11 = FMA(a11, m, c); \
    }                                                                                       \
    T s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));                \
    s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)))

__attribute__((target("avx512f"))) static float loop_zmm(long n)
{
    CHAINS(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, n);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float loop_ymm(long n)
{
    CHAINS(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, n);
    float o[8];
    _mm256_storeu_ps(o, s);
    return o[0] + o[7];
}

static inline __m128 mul_add_xmm(__m128 x, __m128 m, __m128 c) { return _mm_add_ps(_mm_mul_ps(x, m), c); }

static float loop_xmm(long n)
{
    CHAINS(__m128, _mm_set1_ps, mul_add_xmm, _mm_add_ps, n);
    float o[4];
    _mm_storeu_ps(o, s);
    return o[0] + o[3];
}
#endif

/* Flops of one iteration of the loop on the tier's vectors. */
static double flops_per_iter(rl_cpu_tier t)
{
    return 12.0 * 2.0 * (t == RL_TIER_AVX512 ? 16 : t >= RL_TIER_AVX2 ? 8 : 4);
}

static float run_loop(rl_cpu_tier t, long n)
{
#ifdef RL_X86
    if (t == RL_TIER_AVX512) return loop_zmm(n);
    if (t >= RL_TIER_AVX2) return loop_ymm(n);
    return loop_xmm(n);
#else
    (void)t;
    volatile float x = 1.0f;
    for (long i = 0; i < n; i++) x = x * 0.9999999f + 1e-7f;
    return x;
#endif
}

rl_status rl_cpu_fma_peak(rl_cpu_tier tier, int threads, double seconds, double *gflops)
{
    *gflops = 0;
    if (threads < 1 || threads > 256) return rl_fail(RL_EINVAL, "fma peak: %d threads outside 1..256", threads);
    if (!(seconds > 0)) return rl_fail(RL_EINVAL, "fma peak: seconds %g must be positive", seconds);
    rl_cpu_features f;
    rl_cpu_detect(&f);
    rl_cpu_tier have = rl_cpu_tier_of(&f);
    rl_cpu_tier t = tier > have ? have : tier;
    if (t == RL_TIER_AVX) t = RL_TIER_SSE; /* AVX1 has no FMA: the mul + add loop */
    /* calibrate on one thread: iterations for about a fifth of `seconds` */
    enum { REPS = 5 };
    long n = 1 << 16;
    for (;;) {
        double t0 = rl_now();
        volatile float sink = run_loop(t, n);
        (void)sink;
        double dt = rl_now() - t0;
        if (dt >= seconds / 50 || n > (1L << 40)) {
            n = (long)((double)n * (seconds / REPS) / (dt > 1e-9 ? dt : 1e-9)) + 1;
            break;
        }
        n *= 4;
    }
    /* the median of REPS timings: the statistic rl_blas_sgemm_rate reports, so
     * that SGEMM's fraction of this peak compares like with like (a best-of
     * peak over a median SGEMM read 0.70-0.84 on one 2-vCPU VM within minutes) */
    double g[REPS];
    for (int rep = 0; rep < REPS; rep++) {
        double t0 = rl_now();
        float acc = 0;
#pragma omp parallel num_threads(threads) reduction(+ : acc)
        acc += run_loop(t, n);
        double dt = rl_now() - t0;
        if (acc != acc) return rl_fail(RL_ENONFINITE, "fma peak: the loop produced NaN");
        g[rep] = flops_per_iter(t) * (double)n * threads / dt / 1e9;
    }
    for (int a = 1; a < REPS; a++) /* insertion sort of 5 */
        for (int b = a; b > 0 && g[b - 1] > g[b]; b--) {
            double tmp = g[b];
            g[b] = g[b - 1];
            g[b - 1] = tmp;
        }
    *gflops = g[REPS / 2];
    return RL_OK;
}
