/* test_core.c -- lib/core: the torch-compatible RNG, bf16/fp16 rounding,
 * the gemm wrapper, tracked tensors and the error table.
 *
 * Reference numbers come from peft-semantics.md §1 (measured with torch
 * 1.13.1). Floats printed there with 9 significant digits round-trip float32
 * exactly, so they are compared exactly as `f`-suffixed literals.
 *
 * Loops over many cases (the 65536 half patterns, 1500 gemm shapes) count
 * the mismatches and keep the first (or worst) one, then assert once with the
 * index and both values: Criterion sends every assertion to the runner, and
 * a failure should say where it happened, not only that it did.
 *
 * Every test runs in its own process (Criterion forks); .init records the
 * tracked allocation counter and .fini asserts it came back (STYLE §2.7).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "core/rl_blas.h"
#include "core/rl_err.h"
#include "core/rl_half.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"

static size_t g_mem0;

static void core_init(void) { g_mem0 = rl_mem_current(); }

static void core_fini(void)
{
    cr_assert_eq(rl_mem_current(), g_mem0, "tracked allocations leaked: %zu -> %zu bytes",
                 g_mem0, rl_mem_current());
}

TestSuite(core, .init = core_init, .fini = core_fini);

/* Criterion 2.4 prints a failed assertion made in .fini but still counts the
 * test as passed (and the runner exits 0), so .fini alone cannot catch a
 * leak: every test body also ends with the same check, made inside the test.
 * CORE_TEST(name) is Test(core, name) with that check appended. */
#define CORE_TEST(name)                                                       \
    static void core_body_##name(void);                                       \
    Test(core, name)                                                          \
    {                                                                         \
        core_body_##name();                                                   \
        core_fini();                                                          \
    }                                                                         \
    static void core_body_##name(void)

/* ---- helpers ---- */

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* First mismatch in a loop: how many, and where. */
typedef struct {
    long count;
    long first;       /* index (or pattern) of the first mismatch */
    double got, want; /* its values (for printing) */
} mism;

static void mism_add(mism *m, long idx, double got, double want)
{
    if (m->count++ == 0) {
        m->first = idx;
        m->got = got;
        m->want = want;
    }
}

/* Compare arrays of floats bit for bit; assert with the first mismatch. */
static void assert_floats_exact(const float *got, const float *want, size_t n, const char *what)
{
    mism m = {0};
    for (size_t i = 0; i < n; i++)
        if (bits_of(got[i]) != bits_of(want[i])) mism_add(&m, (long)i, got[i], want[i]);
    cr_assert_eq(m.count, 0, "%s: %ld mismatches; first at [%ld]: got %.9g, want %.9g", what,
                 m.count, m.first, m.got, m.want);
}

/* ======================================================================
 * rl_mt: torch.Generator().manual_seed(k) == init_genrand(k mod 2^32)
 * ==================================================================== */

CORE_TEST(mt_seed5489_10000th)
{
    rl_mt g;
    rl_mt_seed(&g, 5489);
    uint32_t u = 0;
    for (int i = 0; i < 10000; i++) u = rl_mt_next(&g);
    cr_assert_eq(u, 4123659995u, "10000th output of seed 5489: %u", u);
}

CORE_TEST(mt_seed0_first_three)
{
    /* Seed 0 is PEFT's default key; GSL would silently map it to 4357. */
    rl_mt g;
    rl_mt_seed(&g, 0);
    uint32_t a = rl_mt_next(&g), b = rl_mt_next(&g), c = rl_mt_next(&g);
    cr_assert_eq(a, 2357136044u, "first: %u", a);
    cr_assert_eq(b, 2546248239u, "second: %u", b);
    cr_assert_eq(c, 3071714933u, "third: %u", c);
}

/* The first n words of two seeds are (or are not) identical. */
static bool same_stream(uint64_t s1, uint64_t s2, int n)
{
    rl_mt g1, g2;
    rl_mt_seed(&g1, s1);
    rl_mt_seed(&g2, s2);
    for (int i = 0; i < n; i++)
        if (rl_mt_next(&g1) != rl_mt_next(&g2)) return false;
    return true;
}

CORE_TEST(mt_seed_mod_2_32)
{
    /* 1500 words cross two twists (624 words each) */
    cr_assert(same_stream(((uint64_t)1 << 32) + 5, 5, 1500), "2^32+5 differs from 5");
    cr_assert(same_stream(UINT64_MAX, 0xffffffffu, 1500), "2^64-1 differs from 2^32-1");
    /* and the comparison can fail: neighbouring seeds differ */
    cr_assert(!same_stream(5, 6, 1500), "seeds 5 and 6 gave the same stream");
    cr_assert(!same_stream(((uint64_t)1 << 32), 1, 1500), "2^32 (== 0) equals seed 1");
}

CORE_TEST(mt_reseed_restarts)
{
    /* seeding resets the state completely, even in the middle of a block */
    rl_mt g;
    rl_mt_seed(&g, 0);
    for (int i = 0; i < 1000; i++) rl_mt_next(&g);
    rl_mt_seed(&g, 0);
    cr_assert_eq(rl_mt_next(&g), 2357136044u);
}

/* ======================================================================
 * torch.rand / uniform_ / kaiming_uniform_
 * ==================================================================== */

CORE_TEST(rand_f32_seed0)
{
    rl_mt g;
    rl_mt_seed(&g, 0);
    float x[300];
    rl_rand_f32(&g, x, 300); /* torch.rand((3,1,100), generator=seed 0) */
    const float want[5] = {0.49625659f, 0.768221796f, 0.0884774327f, 0.132030487f,
                           0.307422817f};
    assert_floats_exact(x, want, 5, "rand seed 0 first values");
    cr_assert_eq(bits_of(x[299]), bits_of(0.331873238f), "last of 300: %.9g", x[299]);
    for (int i = 0; i < 300; i++)
        cr_assert(x[i] >= 0.0f && x[i] < 1.0f, "rand[%d] = %.9g outside [0,1)", i, x[i]);
}

CORE_TEST(rand_f32_seed12345)
{
    rl_mt g;
    rl_mt_seed(&g, 12345);
    float x[300];
    rl_rand_f32(&g, x, 300);
    const float want[5] = {0.981718183f, 0.879606545f, 0.992143452f, 0.461067259f,
                           0.0832159519f};
    assert_floats_exact(x, want, 5, "rand seed 12345 first values");
    cr_assert_eq(bits_of(x[299]), bits_of(0.0913617015f), "last of 300: %.9g", x[299]);
}

CORE_TEST(rand_f32_uses_low_24_bits)
{
    /* value = (u & 0xFFFFFF) * 2^-24, one word per element, over 2000
     * elements (three refills of the 624-word block) */
    rl_mt g, w;
    rl_mt_seed(&g, 7);
    rl_mt_seed(&w, 7);
    enum { N = 2000 };
    static float x[N], want[N];
    rl_rand_f32(&g, x, N);
    for (int i = 0; i < N; i++) want[i] = (float)(rl_mt_next(&w) & 0xffffffu) / 16777216.0f;
    assert_floats_exact(x, want, N, "rand vs words");
    cr_assert_eq(rl_mt_next(&g), rl_mt_next(&w), "rand did not consume one word per element");
}

CORE_TEST(kaiming_bound)
{
    /* a = sqrt(5): a**2 = 5.000000000000001, so the bound is not 1/sqrt(fan) */
    double b = rl_kaiming_bound(sqrt(5.0), 100);
    cr_assert(b == 0.09999999999999999, "bound(sqrt5, 100) = %.17g", b);
    cr_assert(b != 0.1, "bound(sqrt5, 100) is exactly 0.1: computed as 1/sqrt(fan)?");
    cr_assert_eq(bits_of((float)b), bits_of(0.10000000149011612f), "(float)bound = %.17g",
                 (double)(float)b);
    /* a = 0 (VeRA): gain sqrt(2), bound sqrt(6/fan) */
    double v = rl_kaiming_bound(0.0, 40);
    cr_assert(fabs(v - sqrt(6.0 / 40.0)) <= 4 * DBL_EPSILON, "bound(0, 40) = %.17g", v);
}

CORE_TEST(uniform_bf16_fp16_first)
{
    /* torch.rand(4, dtype=bfloat16, seed 0)[0] = 0.671875 = (0x8c7f0aac & 0xFF)/256 */
    rl_mt g;
    float x[4];
    rl_mt_seed(&g, 0);
    rl_uniform_fmt(&g, x, 4, 0.0, 1.0, RL_BF16, RL_FMA);
    cr_assert_eq(bits_of(x[0]), bits_of(0.671875f), "bf16 rand[0] = %.9g", x[0]);
    /* fp16 uses the low 11 bits: 0xaac & 0x7ff = 684 -> 684/2048 */
    rl_mt_seed(&g, 0);
    rl_uniform_fmt(&g, x, 4, 0.0, 1.0, RL_FP16, RL_FMA);
    cr_assert_eq(bits_of(x[0]), bits_of(0.333984375f), "fp16 rand[0] = %.9g", x[0]);
}

/* kaiming_uniform_ in bf16 / fp16 is to16(hi * (k - HALF) / HALF) with
 * k = u & (2^D - 1) and hi = to16((float)bound) (peft-semantics §1.2, §6):
 * rebuild that from the raw words, a different expression from the
 * library's x*range + lo. */
static void check_kaiming16(rl_fmt fmt, long fan, uint64_t seed)
{
    enum { N = 1500 };
    static float x[N], want[N];
    const int D = fmt == RL_BF16 ? 8 : 11;
    const int half = 1 << (D - 1);
    rl_mt g, w;
    rl_mt_seed(&g, seed);
    rl_mt_seed(&w, seed);
    rl_kaiming_uniform(&g, x, N, sqrt(5.0), fan, fmt, RL_FMA);
    float hi = rl_fmt_round(fmt, (float)rl_kaiming_bound(sqrt(5.0), fan));
    for (int i = 0; i < N; i++) {
        int k = (int)(rl_mt_next(&w) & ((1u << D) - 1u));
        want[i] = rl_fmt_round(fmt, hi * (float)(k - half) / (float)half);
    }
    char what[64];
    snprintf(what, sizeof what, "kaiming fmt %d fan %ld seed %llu", (int)fmt, fan,
             (unsigned long long)seed);
    assert_floats_exact(x, want, N, what);
    cr_assert_eq(rl_mt_next(&g), rl_mt_next(&w), "%s: not one word per element", what);
}

CORE_TEST(kaiming_16bit_from_words)
{
    check_kaiming16(RL_BF16, 64, 0);
    check_kaiming16(RL_BF16, 100, 12345);
    check_kaiming16(RL_FP16, 64, 0);
    check_kaiming16(RL_FP16, 7, 12345);
}

CORE_TEST(uniform_f32_fma_vs_muladd)
{
    /* fan 100: bound not a power of two, so x*range is inexact and the two
     * roundings differ from fmaf in about half the elements by one ulp */
    enum { N = 1000 };
    static float f[N], m[N], r[N];
    rl_mt g;
    const double b = rl_kaiming_bound(sqrt(5.0), 100);
    rl_mt_seed(&g, 0);
    rl_uniform_f32(&g, f, N, -b, b, RL_FMA);
    rl_mt_seed(&g, 0);
    rl_uniform_f32(&g, m, N, -b, b, RL_MULADD);
    rl_mt_seed(&g, 0);
    rl_rand_f32(&g, r, N);
    const float lo = (float)-b, range = (float)b - (float)-b;
    long ndiff = 0;
    mism bad = {0};
    for (int i = 0; i < N; i++) {
        float fx = fmaf(r[i], range, lo);
        volatile float p = r[i] * range;
        float mx = p + lo;
        if (bits_of(f[i]) != bits_of(fx)) mism_add(&bad, i, f[i], fx);
        if (bits_of(m[i]) != bits_of(mx)) mism_add(&bad, N + i, m[i], mx);
        if (f[i] != m[i]) ndiff++;
        if (fabsf(f[i]) > (float)b) mism_add(&bad, 2 * N + i, f[i], b);
    }
    cr_assert_eq(bad.count, 0, "%ld bad; first [%ld]: got %.9g want %.9g", bad.count, bad.first,
                 bad.got, bad.want);
    cr_assert(ndiff > N / 10, "FMA and mul+add agree in all but %ld of %d elements", ndiff, N);

    /* a power-of-two bound (fan 64) makes the product exact: both agree */
    const double b64 = rl_kaiming_bound(sqrt(5.0), 64);
    rl_mt_seed(&g, 0);
    rl_uniform_f32(&g, f, N, -b64, b64, RL_FMA);
    rl_mt_seed(&g, 0);
    rl_uniform_f32(&g, m, N, -b64, b64, RL_MULADD);
    assert_floats_exact(f, m, N, "fan 64 FMA vs mul+add");
}

CORE_TEST(kaiming_std_vectors)
{
    /* peft-semantics §1.5: the (8,1,100) kaiming(a=sqrt5) tensor of seed 0
     * has std 0.0587546416 (f32, FMA), 0.0561523438 (bf16), 0.056854248 (f16) */
    static float x[800];
    const rl_fmt fmts[3] = {RL_F32, RL_BF16, RL_FP16};
    const float want[3] = {0.0587546416f, 0.0561523438f, 0.056854248f};
    for (int i = 0; i < 3; i++) {
        rl_mt g;
        rl_mt_seed(&g, 0);
        rl_kaiming_uniform(&g, x, 800, sqrt(5.0), 100, fmts[i], RL_FMA);
        float s = rl_std_unbiased(x, 800, fmts[i]);
        cr_assert_eq(bits_of(s), bits_of(want[i]), "fmt %d: std %.9g, want %.9g", (int)fmts[i],
                     (double)s, (double)want[i]);
    }
}

CORE_TEST(std_unbiased_small)
{
    /* {1,2,3,4}: mean 2.5, sum of squares 5, unbiased variance 5/3;
     * sqrt(5/3) = 1.2909944487358056 -> float 1.29099441,
     * bf16 (8 bits) 165/128 = 1.2890625, fp16 (11 bits) 1322/1024 */
    const float x[4] = {1, 2, 3, 4};
    cr_assert_eq(bits_of(rl_std_unbiased(x, 4, RL_F32)), bits_of(1.29099441f), "f32 std %.9g",
                 (double)rl_std_unbiased(x, 4, RL_F32));
    cr_assert_eq(bits_of(rl_std_unbiased(x, 4, RL_BF16)), bits_of(1.2890625f), "bf16 std %.9g",
                 (double)rl_std_unbiased(x, 4, RL_BF16));
    cr_assert_eq(bits_of(rl_std_unbiased(x, 4, RL_FP16)), bits_of(1.291015625f),
                 "fp16 std %.9g", (double)rl_std_unbiased(x, 4, RL_FP16));

    /* accumulated in double, two-pass: a large offset must not matter.
     * 2^24 + {0,2,4,6} are exact floats; std = sqrt(20/3) = 2.58198881 */
    const float y[4] = {16777216.0f, 16777218.0f, 16777220.0f, 16777222.0f};
    cr_assert_eq(bits_of(rl_std_unbiased(y, 4, RL_F32)), bits_of(2.58198881f),
                 "offset std %.9g", (double)rl_std_unbiased(y, 4, RL_F32));

    /* constant -> 0; one element -> NaN (torch) */
    const float c[3] = {0.25f, 0.25f, 0.25f};
    cr_assert_eq(bits_of(rl_std_unbiased(c, 3, RL_F32)), 0u);
    cr_assert(isnan(rl_std_unbiased(x, 1, RL_F32)));
    cr_assert(isnan(rl_std_unbiased(x, 1, RL_BF16)));
}

CORE_TEST(fmt_round)
{
    /* 1 + 2^-9 is a bf16 tie (rounds to 1, even) but exact in fp16;
     * 1 + 3*2^-9 is a bf16 tie rounding up to 1 + 2^-7 */
    cr_assert_eq(bits_of(rl_fmt_round(RL_BF16, 1.0f + 0x1p-9f)), bits_of(1.0f));
    cr_assert_eq(bits_of(rl_fmt_round(RL_FP16, 1.0f + 0x1p-9f)), bits_of(1.0f + 0x1p-9f));
    cr_assert_eq(bits_of(rl_fmt_round(RL_BF16, 1.0f + 3 * 0x1p-9f)), bits_of(1.0f + 0x1p-7f));
    cr_assert_eq(bits_of(rl_fmt_round(RL_F32, 1.0f + 0x1p-23f)), bits_of(1.0f + 0x1p-23f));
    /* 1/3 in each format */
    cr_assert_eq(bits_of(rl_fmt_round(RL_BF16, 1.0f / 3.0f)), bits_of(0.333984375f));
    cr_assert_eq(bits_of(rl_fmt_round(RL_FP16, 1.0f / 3.0f)), bits_of(0.333251953125f));
}

CORE_TEST(mt_normal_moments)
{
    /* the test-data normal source: 200000 samples, mean 0 and variance 1
     * within about 6 standard errors */
    enum { N = 200000 };
    rl_mt g;
    rl_mt_seed(&g, 3);
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        double v = rl_mt_normal(&g);
        cr_assert(isfinite(v));
        s += v;
        s2 += v * v;
    }
    double mean = s / N, var = s2 / N - mean * mean;
    cr_assert(fabs(mean) < 0.015, "mean %g", mean);
    cr_assert(fabs(var - 1.0) < 0.02, "variance %g", var);
    float z[5];
    rl_mt_seed(&g, 3);
    rl_mt_fill_normal(&g, z, 5, 0.0f);
    for (int i = 0; i < 5; i++) cr_assert_eq(z[i], 0.0f);
}

/* ======================================================================
 * rl_half: binary16 and bfloat16
 * ==================================================================== */

/* fp16 pattern -> value, written independently of the library. */
static float f16_value(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (e == 0)
        v = ldexp(m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(1024 + m, e - 25);
    return (float)((h & 0x8000) ? -v : v);
}

CORE_TEST(f16_exhaustive_roundtrip)
{
    mism val = {0}, rt = {0}, nan = {0};
    for (uint32_t h = 0; h < 65536; h++) {
        float f = rl_f16_to_f32((uint16_t)h);
        bool is_nan = ((h >> 10) & 0x1f) == 31 && (h & 0x3ff) != 0;
        if (is_nan) {
            uint16_t back = rl_f32_to_f16(f);
            if (!isnan(f) || ((back >> 10) & 0x1f) != 31 || (back & 0x3ff) == 0 ||
                (back & 0x8000) != (h & 0x8000))
                mism_add(&nan, (long)h, f, back);
            continue;
        }
        if (bits_of(f) != bits_of(f16_value((uint16_t)h))) mism_add(&val, (long)h, f, f16_value((uint16_t)h));
        uint16_t back = rl_f32_to_f16(f);
        if (back != h) mism_add(&rt, (long)h, back, h);
    }
    cr_assert_eq(val.count, 0, "f16->f32 wrong for %ld patterns; first 0x%04lx: %.9g, want %.9g",
                 val.count, val.first, val.got, val.want);
    cr_assert_eq(rt.count, 0, "round trip fails for %ld patterns; first 0x%04lx -> 0x%04x",
                 rt.count, rt.first, (unsigned)rt.got);
    cr_assert_eq(nan.count, 0, "NaN pattern 0x%04lx: f32 %g, back 0x%04x", nan.first, nan.got,
                 (unsigned)nan.want);
}

CORE_TEST(f16_exhaustive_midpoints)
{
    /* between adjacent positive finite patterns h, h+1 (subnormals included):
     * the midpoint goes to the even pattern, one float ulp above it to h+1,
     * one below to h; the negative side mirrors it. Midpoints have at most
     * 12 significant bits, so they are exact floats. */
    mism m = {0};
    for (uint32_t h = 0; h < 0x7bff; h++) {
        float lo = rl_f16_to_f32((uint16_t)h), hi = rl_f16_to_f32((uint16_t)(h + 1));
        float mid = (float)(((double)lo + (double)hi) / 2.0);
        uint16_t even = (uint16_t)((h & 1u) ? h + 1 : h);
        uint16_t got;
        if ((got = rl_f32_to_f16(mid)) != even) mism_add(&m, (long)h, got, even);
        if ((got = rl_f32_to_f16(nextafterf(mid, INFINITY))) != h + 1)
            mism_add(&m, (long)h, got, h + 1);
        if ((got = rl_f32_to_f16(nextafterf(mid, 0.0f))) != h) mism_add(&m, (long)h, got, h);
        if ((got = rl_f32_to_f16(-mid)) != (even | 0x8000u))
            mism_add(&m, (long)h, got, even | 0x8000u);
        if ((got = rl_f32_to_f16(-nextafterf(mid, INFINITY))) != ((h + 1) | 0x8000u))
            mism_add(&m, (long)h, got, (h + 1) | 0x8000u);
    }
    cr_assert_eq(m.count, 0, "%ld wrong roundings; first between 0x%04lx and the next: 0x%04x, "
                 "want 0x%04x", m.count, m.first, (unsigned)m.got, (unsigned)m.want);
}

CORE_TEST(f16_edges)
{
    cr_assert_eq(rl_f32_to_f16(65504.0f), 0x7bff);
    cr_assert_eq(rl_f32_to_f16(65519.0f), 0x7bff);
    cr_assert_eq(rl_f32_to_f16(nextafterf(65520.0f, 0.0f)), 0x7bff);
    cr_assert_eq(rl_f32_to_f16(65520.0f), 0x7c00, "65520 must round (to even) to inf");
    cr_assert_eq(rl_f32_to_f16(-65520.0f), 0xfc00);
    cr_assert_eq(rl_f32_to_f16(1e10f), 0x7c00);
    cr_assert_eq(rl_f32_to_f16(FLT_MAX), 0x7c00);
    cr_assert_eq(rl_f32_to_f16(INFINITY), 0x7c00);
    cr_assert_eq(rl_f32_to_f16(-INFINITY), 0xfc00);
    /* subnormals: 2^-24 is the smallest; 2^-25 ties to 0 (even); 1.5*2^-25
     * rounds up; 3*2^-25 ties to 2 (even); anything below 2^-25 is 0 */
    cr_assert_eq(rl_f32_to_f16(0x1p-24f), 0x0001);
    cr_assert_eq(rl_f32_to_f16(0x1p-25f), 0x0000);
    cr_assert_eq(rl_f32_to_f16(-0x1p-25f), 0x8000);
    cr_assert_eq(rl_f32_to_f16(1.5f * 0x1p-25f), 0x0001);
    cr_assert_eq(rl_f32_to_f16(nextafterf(0x1p-25f, 1.0f)), 0x0001);
    cr_assert_eq(rl_f32_to_f16(3.0f * 0x1p-25f), 0x0002);
    cr_assert_eq(rl_f32_to_f16(0x1p-26f), 0x0000);
    cr_assert_eq(rl_f32_to_f16(FLT_TRUE_MIN), 0x0000);
    cr_assert_eq(rl_f32_to_f16(-0.0f), 0x8000);
    /* largest subnormal 0x03ff, smallest normal 0x0400 = 2^-14 */
    cr_assert_eq(rl_f32_to_f16(0x1p-14f), 0x0400);
    cr_assert_eq(rl_f32_to_f16(1023.0f * 0x1p-24f), 0x03ff);
    cr_assert_eq(rl_f32_to_f16(1.0f), 0x3c00);
    cr_assert_eq(rl_f32_to_f16(-2.0f), 0xc000);
    /* rounding that carries into the exponent: 2047.5 -> 2048 */
    cr_assert_eq(rl_f32_to_f16(2047.5f), 0x6800);
    /* NaN in, NaN out: also with a payload only in the low mantissa bits
     * that a plain shift would drop (0x7f800001 must not become inf) */
    const uint32_t nans[5] = {0x7fc00000u, 0x7f800001u, 0xffffffffu, 0x7f802000u, 0xff800001u};
    for (int i = 0; i < 5; i++) {
        uint16_t h = rl_f32_to_f16(float_of(nans[i]));
        cr_assert(((h >> 10) & 0x1f) == 31 && (h & 0x3ff) != 0, "0x%08x -> 0x%04x, not NaN",
                  nans[i], h);
        cr_assert(isnan(rl_round_f16(float_of(nans[i]))));
    }
}

CORE_TEST(bf16_exhaustive_roundtrip)
{
    mism val = {0}, rt = {0}, nan = {0};
    for (uint32_t h = 0; h < 65536; h++) {
        float f = rl_bf16_to_f32((uint16_t)h);
        if (bits_of(f) != h << 16) mism_add(&val, (long)h, bits_of(f), h << 16);
        bool is_nan = ((h >> 7) & 0xff) == 0xff && (h & 0x7f) != 0;
        uint16_t back = rl_f32_to_bf16(f);
        if (is_nan) {
            if (!isnan(f) || ((back >> 7) & 0xff) != 0xff || (back & 0x7f) == 0 ||
                (back & 0x8000) != (h & 0x8000))
                mism_add(&nan, (long)h, f, back);
        } else if (back != h) {
            mism_add(&rt, (long)h, back, h);
        }
    }
    cr_assert_eq(val.count, 0, "bf16->f32 not a plain shift for 0x%04lx", val.first);
    cr_assert_eq(rt.count, 0, "round trip fails for %ld patterns; first 0x%04lx -> 0x%04x",
                 rt.count, rt.first, (unsigned)rt.got);
    cr_assert_eq(nan.count, 0, "NaN pattern 0x%04lx: back 0x%04x", nan.first, (unsigned)nan.want);
}

CORE_TEST(bf16_exhaustive_midpoints)
{
    /* adjacent bf16 patterns h, h+1 differ in float bit 16, so the float
     * with bits (h << 16) | 0x8000 is their midpoint (also across binades
     * and for float subnormals); +-1 in the low bits is just above/below. */
    mism m = {0};
    for (uint32_t h = 0; h < 0x7f80; h++) {
        uint32_t mid = (h << 16) | 0x8000u;
        uint16_t even = (uint16_t)((h & 1u) ? h + 1 : h); /* 0x7f7f: up to inf 0x7f80 */
        uint16_t got;
        for (int neg = 0; neg < 2; neg++) {
            const uint32_t s = neg ? 0x80000000u : 0u;
            const uint16_t sg = (uint16_t)(s >> 16);
            if ((got = rl_f32_to_bf16(float_of(s | mid))) != (even | sg))
                mism_add(&m, (long)(h | sg), got, even | sg);
            if ((got = rl_f32_to_bf16(float_of(s | (mid + 1)))) != ((h + 1) | sg))
                mism_add(&m, (long)(h | sg), got, (h + 1) | sg);
            if ((got = rl_f32_to_bf16(float_of(s | (mid - 1)))) != (h | sg))
                mism_add(&m, (long)(h | sg), got, h | sg);
        }
    }
    cr_assert_eq(m.count, 0, "%ld wrong roundings; first above 0x%04lx: 0x%04x, want 0x%04x",
                 m.count, m.first, (unsigned)m.got, (unsigned)m.want);
}

CORE_TEST(bf16_edges)
{
    cr_assert_eq(rl_f32_to_bf16(float_of(0x7f7fffffu)), 0x7f80, "FLT_MAX must round to inf");
    cr_assert_eq(rl_f32_to_bf16(float_of(0xff7fffffu)), 0xff80);
    cr_assert_eq(rl_f32_to_bf16(float_of(0x7f7f7fffu)), 0x7f7f);
    cr_assert_eq(rl_f32_to_bf16(INFINITY), 0x7f80);
    cr_assert_eq(rl_f32_to_bf16(-0.0f), 0x8000);
    cr_assert_eq(rl_f32_to_bf16(1.0f), 0x3f80);
    /* 1 + 2^-8 ties to 1 (even); 1 + 3*2^-8 ties up to 1 + 2^-6 */
    cr_assert_eq(rl_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    cr_assert_eq(rl_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    const uint32_t nans[5] = {0x7fc00000u, 0x7f800001u, 0xffffffffu, 0x7fff0000u, 0xff800001u};
    for (int i = 0; i < 5; i++) {
        uint16_t h = rl_f32_to_bf16(float_of(nans[i]));
        cr_assert(((h >> 7) & 0xff) == 0xff && (h & 0x7f) != 0, "0x%08x -> 0x%04x, not NaN",
                  nans[i], h);
        cr_assert_eq(h & 0x8000, (nans[i] >> 16) & 0x8000, "NaN sign lost: 0x%08x", nans[i]);
        cr_assert(isnan(rl_round_bf16(float_of(nans[i]))));
    }
}

/* Round to p significant bits (RNE) in double; `qmin_exp` is the exponent
 * of the smallest quantum (subnormal spacing), `maxv` the largest finite. */
static float ref_round(float f, int p, int qmin_exp, double maxv)
{
    if (isnan(f) || isinf(f)) return f;
    double a = fabs((double)f);
    if (a == 0.0) return f;
    int e;
    frexp(a, &e); /* a in [2^(e-1), 2^e): quantum 2^(e-p) */
    int q = e - p < qmin_exp ? qmin_exp : e - p;
    double r = ldexp(nearbyint(ldexp(a, -q)), q);
    if (r > maxv) r = INFINITY;
    return (float)(f < 0 ? -r : r);
}

CORE_TEST(half_random_vs_reference)
{
    /* 2^20 random floats per format, against a rounding written in double
     * with nearbyint; exponents drawn around each format's range */
    rl_mt g;
    rl_mt_seed(&g, 11);
    mism h16 = {0}, hb = {0};
    for (long i = 0; i < (1L << 20); i++) {
        uint32_t u = rl_mt_next(&g), v = rl_mt_next(&g);
        /* fp16: exponent in [-30, 17) */
        int e16 = (int)(v % 47) - 30;
        float f = float_of((u & 0x807fffffu) | ((uint32_t)(e16 + 127) << 23));
        float got = rl_round_f16(f), want = ref_round(f, 11, -24, 65504.0);
        if (bits_of(got) != bits_of(want)) mism_add(&h16, (long)bits_of(f), got, want);
        /* bf16: any float pattern (subnormal quantum 2^-133) */
        float b = float_of(u ^ (v << 7));
        got = rl_round_bf16(b);
        want = ref_round(b, 8, -133, 255.0 * 0x1p120);
        if (!(isnan(b) && isnan(got)) && bits_of(got) != bits_of(want))
            mism_add(&hb, (long)bits_of(b), got, want);
    }
    cr_assert_eq(h16.count, 0, "fp16: %ld mismatches; first 0x%08lx: %.9g, want %.9g",
                 h16.count, h16.first, h16.got, h16.want);
    cr_assert_eq(hb.count, 0, "bf16: %ld mismatches; first 0x%08lx: %.9g, want %.9g", hb.count,
                 hb.first, hb.got, hb.want);
}

/* ======================================================================
 * rl_gemm vs rl_gemm_ref
 * ==================================================================== */

CORE_TEST(gemm_ref_hand_example)
{
    /* [[1,2,3],[4,5,6]] x [[7,8],[9,10],[11,12]] = [[58,64],[139,154]];
     * the same from the transposed storage, with alpha 2 and beta 0.5 */
    const float A[6] = {1, 2, 3, 4, 5, 6}, At[6] = {1, 4, 2, 5, 3, 6};
    const float B[6] = {7, 8, 9, 10, 11, 12}, Bt[6] = {7, 9, 11, 8, 10, 12};
    const float want[4] = {58, 64, 139, 154};
    for (int t = 0; t < 4; t++) {
        rl_trans ta = (t & 1) ? RL_TRANS : RL_NOTRANS, tb = (t & 2) ? RL_TRANS : RL_NOTRANS;
        const float *a = ta ? At : A, *b = tb ? Bt : B;
        int lda = ta ? 2 : 3, ldb = tb ? 3 : 2;
        float C[4] = {NAN, NAN, NAN, NAN}, D[4] = {NAN, NAN, NAN, NAN};
        rl_gemm_ref(ta, tb, 2, 2, 3, 1.0f, a, lda, b, ldb, 0.0f, C, 2);
        rl_gemm(ta, tb, 2, 2, 3, 1.0f, a, lda, b, ldb, 0.0f, D, 2);
        for (int i = 0; i < 4; i++) {
            cr_assert_eq(C[i], want[i], "ref ta=%d tb=%d C[%d] = %g", ta, tb, i, (double)C[i]);
            cr_assert_eq(D[i], want[i], "gemm ta=%d tb=%d C[%d] = %g", ta, tb, i, (double)D[i]);
        }
        float E[4] = {2, 4, 6, 8};
        rl_gemm(ta, tb, 2, 2, 3, 2.0f, a, lda, b, ldb, 0.5f, E, 2);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(E[i], 2 * want[i] + (float)(i + 1), "alpha/beta: C[%d] = %g", i,
                         (double)E[i]);
    }
}

CORE_TEST(gemm_k0)
{
    /* k = 0: C = beta * C without reading A or B (NULL is fine) */
    float C[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
    rl_gemm(RL_NOTRANS, RL_NOTRANS, 2, 3, 0, 1.0f, NULL, 1, NULL, 3, 0.0f, C, 3);
    for (int i = 0; i < 6; i++) cr_assert_eq(bits_of(C[i]), 0u, "C[%d] = %g", i, (double)C[i]);
    float D[6] = {1, 2, 3, 4, 5, 6};
    rl_gemm(RL_NOTRANS, RL_NOTRANS, 2, 3, 0, 1.0f, NULL, 1, NULL, 3, 0.5f, D, 3);
    for (int i = 0; i < 6; i++) cr_assert_eq(D[i], 0.5f * (float)(i + 1));
}

typedef struct {
    int ta, tb;
    float beta;
} gemm_case;

ParameterizedTestParameters(core, gemm_vs_ref)
{
    static gemm_case cases[12];
    for (int i = 0; i < 12; i++) {
        cases[i].ta = i & 1;
        cases[i].tb = (i >> 1) & 1;
        cases[i].beta = (i / 4 == 0) ? 0.0f : (i / 4 == 1 ? 1.0f : 0.5f);
    }
    return cr_make_param_array(gemm_case, cases, 12);
}

#define PAD_SENTINEL 12345.0f

ParameterizedTest(gemm_case *pc, core, gemm_vs_ref)
{
    static const int dims[5] = {1, 3, 7, 17, 33};
    const rl_trans ta = pc->ta ? RL_TRANS : RL_NOTRANS, tb = pc->tb ? RL_TRANS : RL_NOTRANS;
    const float alpha = -1.25f, beta = pc->beta;
    rl_mt g;
    rl_mt_seed(&g, 100 + (uint64_t)(pc->ta + 2 * pc->tb));
    double worst = 0.0;
    char where[200] = "", nan_where[200] = "";
    long pad_bad = 0, nan_bad = 0;
    for (int im = 0; im < 5; im++)
        for (int in = 0; in < 5; in++)
            for (int ik = 0; ik < 5; ik++) {
                const int m = dims[im], n = dims[in], k = dims[ik];
                const int pad = 1 + (m + n + k) % 4; /* leading dims above the minimum */
                /* stored shapes: A (m,k) or (k,m); B (k,n) or (n,k); C (m,n) */
                const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
                const int lda = ac + pad, ldb = bc + pad + 1, ldc = n + pad;
                float *A = rl_alloc_floats((size_t)ar * lda);
                float *B = rl_alloc_floats((size_t)br * ldb);
                float *C = rl_alloc_floats((size_t)m * ldc);
                float *R = rl_alloc_floats((size_t)m * ldc);
                float *C0 = rl_alloc_floats((size_t)m * ldc);
                cr_assert(A && B && C && R && C0);
                /* the padding of A and B holds NaN: reading it would show */
                for (int i = 0; i < ar; i++)
                    for (int j = 0; j < lda; j++)
                        A[i * lda + j] = j < ac ? 2.0f * rl_mt_uniform01(&g) - 1.0f : NAN;
                for (int i = 0; i < br; i++)
                    for (int j = 0; j < ldb; j++)
                        B[i * ldb + j] = j < bc ? 2.0f * rl_mt_uniform01(&g) - 1.0f : NAN;
                /* C: NaN when beta = 0 (must be ignored), else random; the
                 * padding holds a sentinel that must survive */
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < ldc; j++)
                        C0[i * ldc + j] = j >= n ? PAD_SENTINEL
                                          : beta == 0.0f ? NAN
                                                         : 2.0f * rl_mt_uniform01(&g) - 1.0f;
                rl_copy(C, C0, (size_t)m * ldc);
                rl_copy(R, C0, (size_t)m * ldc);
                rl_gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
                rl_gemm_ref(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, R, ldc);
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        double s = 0.0; /* sum_p |a_ip b_pj| */
                        for (int p = 0; p < k; p++) {
                            double a = ta ? A[p * lda + i] : A[i * lda + p];
                            double b = tb ? B[j * ldb + p] : B[p * ldb + j];
                            s += fabs(a * b);
                        }
                        const double c0 = beta == 0.0f ? 0.0 : fabs((double)beta * C0[i * ldc + j]);
                        /* float32 summation error bound for a length-k dot
                         * product: |fl(x.y) - x.y| <= k*u*sum|x_p y_p| with
                         * u = FLT_EPSILON/2. Headroom: 8*k*FLT_EPSILON (16x)
                         * for blocked/FMA accumulation orders; the alpha
                         * scaling, the beta*C addition and the final
                         * rounding add two more roundings (k + 2), scaled
                         * by everything that enters the result. */
                        const double tol =
                            8.0 * (k + 2) * FLT_EPSILON * (fabs((double)alpha) * s + c0);
                        const double got = C[i * ldc + j], want = R[i * ldc + j];
                        const double diff = fabs(got - want);
                        if (!isfinite(got) || !isfinite(want)) {
                            if (nan_bad++ == 0)
                                snprintf(nan_where, sizeof nan_where,
                                         "m=%d n=%d k=%d (%d,%d): %g vs ref %g", m, n, k, i, j,
                                         got, want);
                            continue;
                        }
                        const double ratio = diff / tol; /* NaN only if both are 0 */
                        if (ratio > worst) {
                            worst = ratio;
                            snprintf(where, sizeof where,
                                     "m=%d n=%d k=%d (%d,%d): %.9g vs ref %.9g, diff %.3g, "
                                     "tol %.3g",
                                     m, n, k, i, j, got, want, diff, tol);
                        }
                    }
                    for (int j = n; j < ldc; j++)
                        if (bits_of(C[i * ldc + j]) != bits_of(PAD_SENTINEL)) pad_bad++;
                }
                rl_dealloc(A);
                rl_dealloc(B);
                rl_dealloc(C);
                rl_dealloc(R);
                rl_dealloc(C0);
            }
    cr_assert_eq(nan_bad, 0, "ta=%d tb=%d beta=%g: %ld non-finite results; first %s", pc->ta,
                 pc->tb, (double)beta, nan_bad, nan_where);
    cr_assert(worst <= 1.0, "ta=%d tb=%d beta=%g: worst diff/tol %.3g at %s", pc->ta, pc->tb,
              (double)beta, worst, where);
    cr_assert_eq(pad_bad, 0, "ta=%d tb=%d beta=%g: gemm wrote %ld padding elements of C",
                 pc->ta, pc->tb, (double)beta, pad_bad);
    core_fini(); /* the explicit leak check (see CORE_TEST) */
}

/* ======================================================================
 * rl_tensor: tracked allocation, views
 * ==================================================================== */

CORE_TEST(tensor_counter_and_peak)
{
    const size_t m0 = rl_mem_current();
    rl_mem_reset_peak();
    cr_assert_eq(rl_mem_peak(), m0);
    rl_tensor a, b;
    cr_assert_eq(rl_tensor_new2(&a, 3, 5), RL_OK);
    cr_assert(a.owns && a.ndim == 2 && a.shape[0] == 3 && a.shape[1] == 5 && a.data);
    cr_assert_eq(rl_tensor_numel(&a), 15u);
    cr_assert_eq(rl_mem_current(), m0 + 15 * sizeof(float), "after (3,5): %zu", rl_mem_current());
    cr_assert_eq(rl_mem_peak(), m0 + 60);
    for (int i = 0; i < 15; i++) cr_assert_eq(bits_of(a.data[i]), 0u, "not zero-filled at %d", i);
    const int s3[3] = {2, 1, 2};
    cr_assert_eq(rl_tensor_new(&b, 3, s3), RL_OK);
    cr_assert_eq(rl_mem_current(), m0 + 76);
    cr_assert_eq(rl_mem_peak(), m0 + 76);
    rl_tensor_free(&a);
    cr_assert_null(a.data, "free did not reset the tensor");
    cr_assert(!a.owns);
    cr_assert_eq(rl_mem_current(), m0 + 16);
    cr_assert_eq(rl_mem_peak(), m0 + 76, "peak fell on free: %zu", rl_mem_peak());
    rl_mem_reset_peak();
    cr_assert_eq(rl_mem_peak(), m0 + 16);
    rl_tensor_free(&b);
    rl_tensor_free(&b); /* freeing a reset tensor again is harmless */
    rl_tensor_free(NULL);
    cr_assert_eq(rl_mem_current(), m0);
    cr_assert_eq(rl_mem_peak(), m0 + 16);
}

CORE_TEST(tensor_empty_dim)
{
    const size_t m0 = rl_mem_current();
    rl_tensor t;
    const int s[2] = {4, 0};
    cr_assert_eq(rl_tensor_new(&t, 2, s), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(rl_tensor_numel(&t), 0u);
    rl_tensor_free(&t);
    cr_assert_eq(rl_mem_current(), m0);
}

CORE_TEST(tensor_views_do_not_allocate)
{
    rl_tensor t;
    const int s[3] = {4, 2, 3};
    cr_assert_eq(rl_tensor_new(&t, 3, s), RL_OK);
    for (int i = 0; i < 24; i++) t.data[i] = (float)i;
    const size_t m1 = rl_mem_current();

    rl_tensor r = rl_tensor_rows(&t, 1, 2);
    cr_assert_eq(rl_mem_current(), m1);
    cr_assert(!r.owns);
    cr_assert_eq(r.data, t.data + 6, "rows(1) starts at offset %td", r.data - t.data);
    cr_assert(r.ndim == 3 && r.shape[0] == 2 && r.shape[1] == 2 && r.shape[2] == 3);
    cr_assert_eq(r.data[0], 6.0f);
    cr_assert_eq(rl_tensor_numel(&r), 12u);
    rl_tensor last = rl_tensor_rows(&t, 3, 1);
    cr_assert_eq(last.data[5], 23.0f);
    rl_tensor none = rl_tensor_rows(&t, 4, 0); /* empty range at the end */
    cr_assert_eq(rl_tensor_numel(&none), 0u);

    float buf[12];
    for (int i = 0; i < 12; i++) buf[i] = (float)i;
    rl_tensor v = rl_tensor_view2(buf, 3, 4);
    cr_assert(v.data == buf && !v.owns && v.ndim == 2 && v.shape[0] == 3 && v.shape[1] == 4);
    rl_tensor vr = rl_tensor_rows(&v, 2, 1);
    cr_assert_eq(vr.data, buf + 8);
    const int s1[1] = {12};
    rl_tensor v1 = rl_tensor_view(buf, 1, s1);
    cr_assert_eq(rl_tensor_numel(&v1), 12u);
    cr_assert_eq(rl_mem_current(), m1);

    /* freeing a view releases nothing (a stack buffer would crash free) */
    rl_tensor_free(&v);
    rl_tensor_free(&r);
    cr_assert_null(r.data);
    cr_assert_eq(rl_mem_current(), m1);
    cr_assert_eq(t.data[6], 6.0f, "the parent was touched by freeing a view");
    rl_tensor_free(&t);
}

CORE_TEST(tensor_bad_shapes)
{
    const size_t m0 = rl_mem_current();
    rl_tensor t;
    const int ok[5] = {2, 2, 2, 2, 2};
    const int neg[2] = {3, -1};
    const int big[4] = {INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX};
    struct { int ndim; const int *shape; const char *why; } bad[4] = {
        {0, ok, "ndim 0"}, {5, ok, "ndim 5"}, {2, neg, "negative dim"}, {4, big, "overflow"}};
    for (int i = 0; i < 4; i++) {
        memset(&t, 0xab, sizeof t);
        rl_errclear();
        rl_status s = rl_tensor_new(&t, bad[i].ndim, bad[i].shape);
        cr_assert_eq(s, RL_EINVAL, "%s: status %d", bad[i].why, s);
        cr_assert_null(t.data, "%s: data not reset", bad[i].why);
        cr_assert(!t.owns, "%s: owns set", bad[i].why);
        cr_assert_neq(rl_errmsg()[0], '\0', "%s: no message", bad[i].why);
        cr_assert_eq(rl_mem_current(), m0, "%s allocated %zu bytes", bad[i].why,
                     rl_mem_current() - m0);
    }
    cr_assert_eq(rl_tensor_new2(&t, -2, 3), RL_EINVAL);
    cr_assert_eq(rl_shape_numel(2, neg), 0u);
    cr_assert_eq(rl_shape_numel(4, big), 0u);
    cr_assert_eq(rl_shape_numel(3, ok), 8u);
    cr_assert_eq(rl_mem_current(), m0);
}

CORE_TEST(alloc_aligned_zeroed)
{
    const size_t m0 = rl_mem_current();
    rl_dealloc(NULL);
    const size_t sizes[8] = {1, 3, 63, 64, 65, 100, 4096, 100000};
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 8; i++) {
            unsigned char *p = rl_alloc(sizes[i]);
            cr_assert_not_null(p);
            cr_assert_eq((uintptr_t)p % 64, 0u, "rl_alloc(%zu) = %p not 64-byte aligned",
                         sizes[i], (void *)p);
            cr_assert_eq(rl_mem_current(), m0 + sizes[i]);
            size_t nz = 0;
            for (size_t j = 0; j < sizes[i]; j++) nz += p[j] != 0;
            cr_assert_eq(nz, 0u, "rl_alloc(%zu): %zu nonzero bytes (round %d)", sizes[i], nz,
                         round);
            memset(p, 0x5a, sizes[i]); /* dirty it: the next round may reuse it */
            rl_dealloc(p);
            cr_assert_eq(rl_mem_current(), m0);
        }
    float *f = rl_alloc_floats(33);
    cr_assert_eq((uintptr_t)f % 64, 0u);
    cr_assert_eq(rl_mem_current(), m0 + 33 * sizeof(float));
    rl_dealloc(f);
    cr_assert_null(rl_alloc_floats(SIZE_MAX / 2), "an overflowing count was allocated");
    cr_assert_null(rl_alloc(SIZE_MAX - 8));
    cr_assert_eq(rl_mem_current(), m0);
}

CORE_TEST(elementwise_helpers)
{
    float x[6] = {1, 2, 3, 4, 5, 6};
    rl_copy(x + 1, x, 5); /* overlapping: memmove semantics */
    const float want[6] = {1, 1, 2, 3, 4, 5};
    assert_floats_exact(x, want, 6, "overlapping copy");
    rl_copy(x, NULL, 0);
    rl_fill(x, 4, -0.5f);
    cr_assert(x[0] == -0.5f && x[3] == -0.5f && x[4] == 4.0f);
    cr_assert(rl_all_finite(x, 6));
    cr_assert(rl_all_finite(NULL, 0));
    x[5] = INFINITY;
    cr_assert(!rl_all_finite(x, 6));
    cr_assert(rl_all_finite(x, 5));
    x[5] = NAN;
    cr_assert(!rl_all_finite(x, 6));
}

/* ======================================================================
 * rl_err
 * ==================================================================== */

CORE_TEST(err_fail_and_message)
{
    rl_errclear();
    cr_assert_str_eq(rl_errmsg(), "");
    rl_status s = rl_fail(RL_EIO, "cannot open %s (%d)", "x.bin", 7);
    cr_assert_eq(s, RL_EIO);
    cr_assert_str_eq(rl_errmsg(), "cannot open x.bin (7)");
    cr_assert_eq(rl_fail(RL_ESHAPE, "shape %dx%d", 2, 3), RL_ESHAPE);
    cr_assert_str_eq(rl_errmsg(), "shape 2x3", "the later message replaces the earlier one");
    rl_errclear();
    cr_assert_str_eq(rl_errmsg(), "");
    /* a message longer than the buffer is truncated, not overflowed */
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(rl_fail(RL_EINVAL, "%s", big), RL_EINVAL);
    size_t len = strlen(rl_errmsg());
    cr_assert(len > 100 && len < sizeof big - 1, "message length %zu", len);
}

CORE_TEST(err_strerror)
{
    const rl_status codes[12] = {RL_OK,      RL_EINVAL, RL_ENOMEM,     RL_EIO,
                                 RL_EFORMAT, RL_ENOTFOUND, RL_ESHAPE, RL_ENONFINITE,
                                 RL_ELAPACK, RL_ERANGE, RL_EBUDGET, RL_EWRITE};
    for (int i = 0; i < 12; i++) {
        const char *m = rl_strerror(codes[i]);
        cr_assert_not_null(m);
        cr_assert_str_neq(m, "unknown error", "code %d has no text", codes[i]);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(m, rl_strerror(codes[j]), "codes %d and %d share a text", codes[i],
                              codes[j]);
    }
    cr_assert_str_eq(rl_strerror((rl_status)42), "unknown error");
    cr_assert_str_eq(rl_strerror((rl_status)-RL_NCODES), "unknown error");
    cr_assert_str_eq(rl_strerror((rl_status)-1000), "unknown error");
}

static void *fail_in_thread(void *arg)
{
    (void)arg;
    rl_fail(RL_ENOMEM, "from another thread");
    return NULL;
}

CORE_TEST(err_message_thread_local)
{
    rl_fail(RL_EINVAL, "main thread");
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fail_in_thread, NULL), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_str_eq(rl_errmsg(), "main thread");
}
