/* test_bases.c -- the shared RandLora / VeRA bases (lib/adapters/rl_bases).
 *
 * Reference values: peft-semantics.md §2.2 and §6, case (out=96, in=64, r=8,
 * key 0), measured with torch 1.13.1 + PEFT. They are printed with 9
 * significant digits, which round-trips float32 exactly (and bf16 / fp16
 * values are float32 values), so they are compared exactly as f-literals.
 *
 * .init records the tracked allocation counter, .fini asserts it came back:
 * the bases' A and B come from rl_alloc, so a leak on any path shows.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "adapters/rl_bases.h"
#include "core/rl_err.h"
#include "core/rl_half.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"

static size_t g_mem0;

static void bases_init(void) { g_mem0 = rl_mem_current(); }

static void bases_fini(void)
{
    cr_assert_eq(rl_mem_current(), g_mem0, "tracked allocations leaked: %zu -> %zu bytes",
                 g_mem0, rl_mem_current());
}

TestSuite(bases, .init = bases_init, .fini = bases_fini);

/* Criterion 2.4 prints a failed assertion made in .fini but still counts the
 * test as passed (and the runner exits 0), so .fini alone cannot catch a
 * leak: every test body also ends with the same check, made inside the test.
 * BASES_TEST(name) is Test(bases, name) with that check appended. */
#define BASES_TEST(name)                                                      \
    static void bases_body_##name(void);                                      \
    Test(bases, name)                                                         \
    {                                                                         \
        bases_body_##name();                                                  \
        bases_fini();                                                         \
    }                                                                         \
    static void bases_body_##name(void)

/* ---- helpers ---- */

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static rl_shared_bases *make(rl_method m, int r, int out, int in, rl_bases_kind kind,
                             rl_fmt fmt, uint64_t key)
{
    rl_shared_bases *b = NULL;
    rl_status s = rl_shared_bases_new(&b, m, r, out, in, kind, fmt, RL_FMA, key);
    cr_assert_eq(s, RL_OK, "bases_new(%s, r=%d, %dx%d, %s): %s", rl_method_name(m), r, out, in,
                 rl_bases_kind_name(kind), rl_errmsg());
    cr_assert_not_null(b);
    return b;
}

static void expect_exact(const float *got, const float *want, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        cr_assert_eq(bits_of(got[i]), bits_of(want[i]), "%s[%d] = %.9g, want %.9g", what, i,
                     (double)got[i], (double)want[i]);
}

/* Every element is exactly representable in fmt. */
static void expect_in_fmt(const float *x, size_t n, rl_fmt fmt, const char *what)
{
    long bad = 0, first = -1;
    for (size_t i = 0; i < n; i++)
        if (bits_of(rl_fmt_round(fmt, x[i])) != bits_of(x[i]) || !isfinite(x[i]))
            if (bad++ == 0) first = (long)i;
    cr_assert_eq(bad, 0, "%s: %ld values not exact in fmt %d; first [%ld] = %.9g", what, bad,
                 (int)fmt, first, first >= 0 ? (double)x[first] : 0.0);
}

/* Unbiased std in double (two-pass). */
static double std_double(const float *x, size_t n)
{
    double mean = 0.0, m2 = 0.0;
    for (size_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) m2 += (x[i] - mean) * (x[i] - mean);
    return sqrt(m2 / (double)(n - 1));
}

/* The 96x64 r8 dense case: sizes PEFT gives (peft-semantics §2.2). */
static void expect_dense_96x64_shape(const rl_shared_bases *b, rl_fmt fmt)
{
    cr_assert_eq(b->method, RL_METHOD_RANDLORA);
    cr_assert_eq(b->kind, RL_BASES_DENSE);
    cr_assert_eq(b->fmt, fmt);
    cr_assert_eq(b->r, 8);
    cr_assert_eq(b->max_out, 96);
    cr_assert_eq(b->max_in, 64);
    cr_assert_eq(b->min_dim, 64);
    cr_assert_eq(b->max_dim, 96);
    cr_assert_eq(b->n_bases, 8);
    cr_assert_eq(b->a_len, (size_t)8 * 64);        /* A (r, 1, min_dim)        */
    cr_assert_eq(b->b_len, (size_t)96 * 8 * 8);    /* B (max_dim, n_bases, r)  */
    cr_assert_not_null(b->A);
    cr_assert_not_null(b->B);
}

/* B[p, bi, k] in the (max_dim, n_bases, r) layout */
static float B_at(const rl_shared_bases *b, int p, int bi, int k)
{
    return b->B[((size_t)p * b->n_bases + bi) * b->r + k];
}

/* ======================================================================
 * Dense RandLora bases: the §6 test vectors
 * ==================================================================== */

BASES_TEST(dense_bf16_vectors)
{
    rl_shared_bases *b = make(RL_METHOD_RANDLORA, 8, 96, 64, RL_BASES_DENSE, RL_BF16, 0);
    expect_dense_96x64_shape(b, RL_BF16);
    const float A[4] = {0.6015625f, -1.109375f, -0.150390625f, 0.875f};
    const float B[4] = {-0.458984375f, -0.93359375f, -0.65234375f, 0.3515625f};
    expect_exact(b->A, A, 4, "bf16 A");
    expect_exact(b->B, B, 4, "bf16 B");
    /* B[0,1,0]: the first draw of the second chunk (B is drawn basis-major) */
    cr_assert_eq(bits_of(B_at(b, 0, 1, 0)), bits_of(-1.078125f), "B[0,1,0] = %.9g",
                 (double)B_at(b, 0, 1, 0));
    expect_in_fmt(b->A, b->a_len, RL_BF16, "bf16 A");
    expect_in_fmt(b->B, b->b_len, RL_BF16, "bf16 B");
    /* normalised by the std: close to 1 (bf16 rounding of std and quotients) */
    double sa = std_double(b->A, b->a_len), sb = std_double(b->B, b->b_len);
    cr_assert(fabs(sa - 1.0) < 0.02, "std(A) = %g", sa);
    cr_assert(fabs(sb - 1.0) < 0.02, "std(B) = %g", sb);
    rl_shared_bases_free(b);
}

BASES_TEST(dense_fp16_vectors)
{
    rl_shared_bases *b = make(RL_METHOD_RANDLORA, 8, 96, 64, RL_BASES_DENSE, RL_FP16, 0);
    expect_dense_96x64_shape(b, RL_FP16);
    /* fp16 values have at most 11 significant bits: 9 digits are exact */
    const float A[4] = {-0.580566406f, -0.794433594f, 1.07421875f, 0.327880859f};
    const float B[4] = {0.158691406f, -1.63085938f, -1.16210938f, 1.125f};
    expect_exact(b->A, A, 4, "fp16 A");
    expect_exact(b->B, B, 4, "fp16 B");
    cr_assert_eq(bits_of(B_at(b, 0, 1, 0)), bits_of(-0.783691406f), "B[0,1,0] = %.9g",
                 (double)B_at(b, 0, 1, 0));
    expect_in_fmt(b->A, b->a_len, RL_FP16, "fp16 A");
    expect_in_fmt(b->B, b->b_len, RL_FP16, "fp16 B");
    /* fp16 is not bf16: some values need more than 8 significant bits */
    long wide = 0;
    for (size_t i = 0; i < b->a_len; i++) wide += rl_round_bf16(b->A[i]) != b->A[i];
    cr_assert(wide > 0, "every fp16 A value is also a bf16 value");
    rl_shared_bases_free(b);
}

BASES_TEST(dense_f32_vectors)
{
    /* the unreleased float32 variant (PEFT d3ff1334a), FMA build */
    rl_shared_bases *b = make(RL_METHOD_RANDLORA, 8, 96, 64, RL_BASES_DENSE, RL_F32, 0);
    expect_dense_96x64_shape(b, RL_F32);
    const float A[2] = {-0.0128173027f, 0.91838187f};
    const float B[1] = {-0.482316971f};
    expect_exact(b->A, A, 2, "f32 A");
    expect_exact(b->B, B, 1, "f32 B");
    long wide = 0;
    for (size_t i = 0; i < b->a_len; i++) wide += rl_round_f16(b->A[i]) != b->A[i];
    cr_assert(wide > (long)b->a_len / 2, "f32 bases look rounded to 16 bits (%ld of %zu wider)", wide,
              b->a_len);
    rl_shared_bases_free(b);
}

/* The whole arrays against peft-semantics §6, assembled from the core
 * primitives (each checked against torch in test_core.c): A = kaiming(fan
 * min_dim) drawn row-major, then one (max_dim, 1, r) chunk per basis with fan
 * r scattered into B[:, b, :] (basis-major draws), each divided by its own
 * unbiased std in fmt. The §6 vectors above pin only a few values; this pins
 * every element, for several shapes (r dividing min_dim or not, O < I). */
typedef struct {
    int fmt, r, out, in;
    unsigned key;
} dense_case;

ParameterizedTestParameters(bases, dense_matches_reference_algorithm)
{
    static dense_case cases[] = {
        {RL_BF16, 8, 96, 64, 0},   {RL_FP16, 8, 96, 64, 0},      {RL_F32, 8, 96, 64, 0},
        {RL_BF16, 16, 40, 100, 12345}, {RL_FP16, 16, 40, 100, 12345}, {RL_BF16, 5, 96, 64, 0},
        {RL_F32, 3, 7, 10, 7},     {RL_BF16, 32, 256, 512, 0},
    };
    return cr_make_param_array(dense_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(dense_case *c, bases, dense_matches_reference_algorithm)
{
    const rl_fmt fmt = (rl_fmt)c->fmt;
    rl_shared_bases *b = make(RL_METHOD_RANDLORA, c->r, c->out, c->in, RL_BASES_DENSE, fmt,
                              c->key);
    const int md = c->out < c->in ? c->out : c->in, xd = c->out < c->in ? c->in : c->out;
    const int r = c->r, nb = (md + r - 1) / r;
    cr_assert_eq(b->n_bases, nb);
    cr_assert_eq(b->a_len, (size_t)r * md);
    cr_assert_eq(b->b_len, (size_t)xd * nb * r);
    float *A = rl_alloc_floats(b->a_len), *B = rl_alloc_floats(b->b_len);
    float *chunk = rl_alloc_floats((size_t)xd * r);
    cr_assert(A && B && chunk);
    rl_mt g;
    rl_mt_seed(&g, c->key);
    rl_kaiming_uniform(&g, A, b->a_len, sqrt(5.0), md, fmt, RL_FMA);
    for (int bi = 0; bi < nb; bi++) {
        rl_kaiming_uniform(&g, chunk, (size_t)xd * r, sqrt(5.0), r, fmt, RL_FMA);
        for (int p = 0; p < xd; p++)
            for (int k = 0; k < r; k++) B[((size_t)p * nb + bi) * r + k] = chunk[p * r + k];
    }
    const float sa = rl_std_unbiased(A, b->a_len, fmt), sb = rl_std_unbiased(B, b->b_len, fmt);
    for (size_t i = 0; i < b->a_len; i++) A[i] = rl_fmt_round(fmt, A[i] / sa);
    for (size_t i = 0; i < b->b_len; i++) B[i] = rl_fmt_round(fmt, B[i] / sb);
    /* count mismatches, keep the first (values copied: messages are also
     * formatted for passing asserts under --full-stats) */
    long bad = 0, first = -1;
    double got = 0, want = 0;
    for (size_t i = 0; i < b->a_len; i++)
        if (bits_of(A[i]) != bits_of(b->A[i]) && bad++ == 0) {
            first = (long)i;
            got = b->A[i];
            want = A[i];
        }
    cr_assert_eq(bad, 0, "fmt %d r %d %dx%d: %ld A values differ; first [%ld] %.9g, want %.9g",
                 c->fmt, r, c->out, c->in, bad, first, got, want);
    for (size_t i = 0; i < b->b_len; i++)
        if (bits_of(B[i]) != bits_of(b->B[i]) && bad++ == 0) {
            first = (long)i;
            got = b->B[i];
            want = B[i];
        }
    cr_assert_eq(bad, 0, "fmt %d r %d %dx%d: %ld B values differ; first [%ld] %.9g, want %.9g",
                 c->fmt, r, c->out, c->in, bad, first, got, want);
    rl_dealloc(A);
    rl_dealloc(B);
    rl_dealloc(chunk);
    rl_shared_bases_free(b);
    bases_fini(); /* the explicit leak check (see BASES_TEST) */
}

/* ======================================================================
 * Sparse / very sparse bases
 * ==================================================================== */

typedef struct {
    long neg, zero, pos, other;
    float vpos; /* the positive value seen (0 if none) */
    float vother;
} tern_count;

/* Count values in {-v, 0, +v}; v is taken from the first nonzero. */
static tern_count count_ternary(const float *x, size_t n)
{
    tern_count c = {0};
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (x[i] == 0.0f) {
            c.zero++;
            continue;
        }
        if (c.vpos == 0.0f) c.vpos = a;
        if (a != c.vpos || !isfinite(x[i])) {
            if (c.other++ == 0) c.vother = x[i];
        } else if (x[i] > 0) {
            c.pos++;
        } else {
            c.neg++;
        }
    }
    return c;
}

/* 1/std of a ternary {-1,0,+1} tensor with these counts (closed form). */
static double inv_std_ternary(const tern_count *c)
{
    double n = (double)(c->neg + c->zero + c->pos);
    double s = (double)(c->pos - c->neg), nz = (double)(c->pos + c->neg);
    return 1.0 / sqrt((nz - s * s / n) / (n - 1.0));
}

BASES_TEST(sparse_96x64)
{
    rl_shared_bases *b = make(RL_METHOD_RANDLORA, 8, 96, 64, RL_BASES_SPARSE, RL_BF16, 0);
    cr_assert_eq(b->kind, RL_BASES_SPARSE);
    cr_assert_eq(b->fmt, RL_F32, "sparse bases are float32 whatever fmt says");
    cr_assert_eq(b->a_len, (size_t)8 * 64);
    cr_assert_eq(b->b_len, (size_t)96 * 8 * 8);

    /* peft-semantics §2.2: A in {+-1.69935358, 0}, B in {+-1.74219525, 0} */
    tern_count ca = count_ternary(b->A, b->a_len), cb = count_ternary(b->B, b->b_len);
    cr_assert_eq(ca.other, 0, "A holds %ld values besides +-v, 0 (e.g. %.9g)", ca.other,
                 (double)ca.vother);
    cr_assert_eq(cb.other, 0, "B holds %ld values besides +-v, 0 (e.g. %.9g)", cb.other,
                 (double)cb.vother);
    cr_assert_eq(bits_of(ca.vpos), bits_of(1.69935358f), "A's value %.9g", (double)ca.vpos);
    cr_assert_eq(bits_of(cb.vpos), bits_of(1.74219525f), "B's value %.9g", (double)cb.vpos);
    /* s = 3: P(+1) = P(-1) = 1/6, so a third is nonzero */
    double fa = (double)(ca.pos + ca.neg) / (double)b->a_len;
    double fb = (double)(cb.pos + cb.neg) / (double)b->b_len;
    cr_assert(fa > 0.25 && fa < 0.42, "A nonzero fraction %g", fa);
    cr_assert(fb > 0.25 && fb < 0.42, "B nonzero fraction %g", fb);
    cr_assert(cb.pos > (long)b->b_len / 8 && cb.neg > (long)b->b_len / 8, "B signs: %ld +, %ld -", cb.pos,
              cb.neg);
    /* the value is 1/std of the ternary tensor */
    cr_assert(fabs(ca.vpos * (1.0 / inv_std_ternary(&ca)) - 1.0) < 1e-6, "A: v*std != 1");
    cr_assert(fabs(cb.vpos * (1.0 / inv_std_ternary(&cb)) - 1.0) < 1e-6, "B: v*std != 1");
    rl_shared_bases_free(b);
}

/* Sparse bases from the raw words: A = torch.rand((r,1,min_dim)), then
 * B = torch.rand((max_dim, NB, r)) (row-major over the final shape, unlike
 * the dense path), ternarised at fl32(1/(2s)) and fl32(1 - 1/(2s)) with
 * s = 3 (sparse) or sqrt(min_dim) (very_sparse; min_dim, not max_dim). The
 * signs of every stored value must match. */
static void check_ternary_draws(rl_bases_kind kind, int r, int out, int in, uint64_t key)
{
    rl_shared_bases *b = make(RL_METHOD_RANDLORA, r, out, in, kind, RL_F32, key);
    const size_t n = b->a_len + b->b_len;
    float *raw = rl_alloc_floats(n);
    cr_assert_not_null(raw);
    rl_mt g;
    rl_mt_seed(&g, key);
    rl_rand_f32(&g, raw, n);
    const int md = out < in ? out : in;
    const double sv = kind == RL_BASES_VERY_SPARSE ? sqrt((double)md) : 3.0;
    const float lo = (float)(1.0 / (2.0 * sv)), hi = (float)(1.0 - 1.0 / (2.0 * sv));
    long bad = 0, first = -1;
    for (size_t i = 0; i < n; i++) {
        float t = raw[i] < lo ? -1.0f : (raw[i] > hi ? 1.0f : 0.0f);
        float got = i < b->a_len ? b->A[i] : b->B[i - b->a_len];
        float sgn = got > 0 ? 1.0f : (got < 0 ? -1.0f : 0.0f);
        if (sgn != t && bad++ == 0) first = (long)i;
    }
    cr_assert_eq(bad, 0, "%s r=%d %dx%d key %llu: %ld signs differ from ternarised "
                 "torch.rand; first draw %ld (A has %zu)", rl_bases_kind_name(kind), r, out, in,
                 (unsigned long long)key, bad, first, b->a_len);
    rl_dealloc(raw);
    rl_shared_bases_free(b);
}

BASES_TEST(sparse_draws_from_rand)
{
    check_ternary_draws(RL_BASES_SPARSE, 8, 96, 64, 0);
    check_ternary_draws(RL_BASES_SPARSE, 16, 40, 100, 12345);
    check_ternary_draws(RL_BASES_VERY_SPARSE, 8, 96, 64, 0);
    check_ternary_draws(RL_BASES_VERY_SPARSE, 4, 400, 16, 3);
    check_ternary_draws(RL_BASES_VERY_SPARSE, 16, 40, 100, 12345);
}

BASES_TEST(very_sparse_96x64)
{
    rl_shared_bases *b = make(RL_METHOD_RANDLORA, 8, 96, 64, RL_BASES_VERY_SPARSE, RL_BF16, 0);
    cr_assert_eq(b->kind, RL_BASES_VERY_SPARSE);
    cr_assert_eq(b->fmt, RL_F32);
    tern_count ca = count_ternary(b->A, b->a_len), cb = count_ternary(b->B, b->b_len);
    cr_assert_eq(ca.other, 0, "A holds non-ternary values (e.g. %.9g)", (double)ca.vother);
    cr_assert_eq(cb.other, 0, "B holds non-ternary values (e.g. %.9g)", (double)cb.vother);
    /* s = sqrt(min_dim) = 8: P(+1) = P(-1) = 1/16, nonzero 1/8 = 1/sqrt(64) */
    double fb = (double)(cb.pos + cb.neg) / (double)b->b_len;
    double fp = (double)cb.pos / (double)b->b_len, fn = (double)cb.neg / (double)b->b_len;
    /* 6144 draws: the standard error of the fraction is about 0.004; s from
     * max_dim (sqrt(96)) would give 0.102 */
    cr_assert(fb > 0.11 && fb < 0.14, "B nonzero fraction %g, want about 0.125", fb);
    cr_assert(fp > 0.05 && fp < 0.075, "B +1 fraction %g, want about 1/16", fp);
    cr_assert(fn > 0.05 && fn < 0.075, "B -1 fraction %g, want about 1/16", fn);
    double fa = (double)(ca.pos + ca.neg) / (double)b->a_len;
    cr_assert(fa > 0.07 && fa < 0.19, "A nonzero fraction %g", fa);
    /* values are +-1/std, std of the ternary tensor (float32 division) */
    cr_assert(fabs(ca.vpos / inv_std_ternary(&ca) - 1.0) < 1e-6, "A value %.9g, 1/std %.9g",
              (double)ca.vpos, inv_std_ternary(&ca));
    cr_assert(fabs(cb.vpos / inv_std_ternary(&cb) - 1.0) < 1e-6, "B value %.9g, 1/std %.9g",
              (double)cb.vpos, inv_std_ternary(&cb));
    /* sparser than the s = 3 kind, so a larger 1/std: about 1/sqrt(1/8)
     * = 2.83 against 1/sqrt(1/3) = 1.73 */
    rl_shared_bases *s = make(RL_METHOD_RANDLORA, 8, 96, 64, RL_BASES_SPARSE, RL_BF16, 0);
    const float vs = count_ternary(s->B, s->b_len).vpos;
    cr_assert(cb.vpos > 1.4f * vs, "very sparse B value %.9g, sparse %.9g", (double)cb.vpos,
              (double)vs);
    rl_shared_bases_free(s);
    rl_shared_bases_free(b);
}

/* ======================================================================
 * Purity, shapes, VeRA
 * ==================================================================== */

static bool same_bases(const rl_shared_bases *x, const rl_shared_bases *y)
{
    return x->a_len == y->a_len && x->b_len == y->b_len &&
           memcmp(x->A, y->A, x->a_len * sizeof(float)) == 0 &&
           memcmp(x->B, y->B, x->b_len * sizeof(float)) == 0;
}

BASES_TEST(pure_function_of_arguments)
{
    const rl_bases_kind kinds[3] = {RL_BASES_DENSE, RL_BASES_SPARSE, RL_BASES_VERY_SPARSE};
    for (int i = 0; i < 3; i++) {
        rl_shared_bases *x = make(RL_METHOD_RANDLORA, 8, 96, 64, kinds[i], RL_BF16, 0);
        rl_shared_bases *y = make(RL_METHOD_RANDLORA, 8, 96, 64, kinds[i], RL_BF16, 0);
        cr_assert(same_bases(x, y), "kind %d: two calls differ", (int)kinds[i]);
        rl_shared_bases *k = make(RL_METHOD_RANDLORA, 8, 96, 64, kinds[i], RL_BF16, 1);
        cr_assert_neq(memcmp(x->A, k->A, x->a_len * sizeof(float)), 0,
                      "kind %d: key 1 gives key 0's A", (int)kinds[i]);
        cr_assert_neq(memcmp(x->B, k->B, x->b_len * sizeof(float)), 0,
                      "kind %d: key 1 gives key 0's B", (int)kinds[i]);
        /* only the key mod 2^32 matters (torch manual_seed) */
        rl_shared_bases *w = make(RL_METHOD_RANDLORA, 8, 96, 64, kinds[i], RL_BF16,
                                  ((uint64_t)1 << 32));
        cr_assert(same_bases(x, w), "kind %d: key 2^32 differs from key 0", (int)kinds[i]);
        rl_shared_bases_free(x);
        rl_shared_bases_free(y);
        rl_shared_bases_free(k);
        rl_shared_bases_free(w);
    }
}

BASES_TEST(depends_on_min_max_only)
{
    /* RandLora sizes use min/max of (O, I): (64, 96) == (96, 64) */
    rl_shared_bases *x = make(RL_METHOD_RANDLORA, 8, 96, 64, RL_BASES_DENSE, RL_BF16, 0);
    rl_shared_bases *y = make(RL_METHOD_RANDLORA, 8, 64, 96, RL_BASES_DENSE, RL_BF16, 0);
    cr_assert_eq(y->min_dim, 64);
    cr_assert_eq(y->max_dim, 96);
    cr_assert(same_bases(x, y), "(64,96) and (96,64) give different bases");
    rl_shared_bases_free(x);
    rl_shared_bases_free(y);
}

BASES_TEST(rank_changes_shape)
{
    rl_shared_bases *x = make(RL_METHOD_RANDLORA, 8, 96, 64, RL_BASES_DENSE, RL_BF16, 0);
    rl_shared_bases *y = make(RL_METHOD_RANDLORA, 5, 96, 64, RL_BASES_DENSE, RL_BF16, 0);
    cr_assert_eq(y->r, 5);
    cr_assert_eq(y->n_bases, 13, "ceil(64/5) = 13, got %d", y->n_bases);
    cr_assert_eq(y->a_len, (size_t)5 * 64);
    cr_assert_eq(y->b_len, (size_t)96 * 13 * 5);
    cr_assert_neq(x->b_len, y->b_len);
    /* r = 16: 4 bases, (96, 4, 16): the same element count as r = 8, yet a
     * different tensor (fan r = 16 gives bound 1/4 instead of 1/sqrt(8)) */
    rl_shared_bases *z = make(RL_METHOD_RANDLORA, 16, 96, 64, RL_BASES_DENSE, RL_BF16, 0);
    cr_assert_eq(z->n_bases, 4);
    cr_assert_eq(z->b_len, x->b_len);
    cr_assert_neq(memcmp(x->B, z->B, x->b_len * sizeof(float)), 0);
    rl_shared_bases_free(x);
    rl_shared_bases_free(y);
    rl_shared_bases_free(z);
}

/* VeRA: A (r, I) then B (O, r), float32 kaiming(a = 0): bound sqrt(6/fan). */
static void check_vera(int r, int out, int in)
{
    rl_shared_bases *b = make(RL_METHOD_VERA, r, out, in, RL_BASES_DENSE, RL_F32, 0);
    cr_assert_eq(b->method, RL_METHOD_VERA);
    cr_assert_eq(b->a_len, (size_t)r * in, "VeRA A is (r, I)");
    cr_assert_eq(b->b_len, (size_t)out * r, "VeRA B is (O, r)");
    const float ba = (float)(sqrt(3.0) * sqrt(2.0) / sqrt((double)in));
    const float bb = (float)(sqrt(3.0) * sqrt(2.0) / sqrt((double)r));
    float ma = 0.0f, mb = 0.0f;
    for (size_t i = 0; i < b->a_len; i++) ma = fmaxf(ma, fabsf(b->A[i]));
    for (size_t i = 0; i < b->b_len; i++) mb = fmaxf(mb, fabsf(b->B[i]));
    cr_assert(ma <= ba, "max |A| %.9g above the bound %.9g (fan I = %d)", (double)ma, (double)ba,
              in);
    cr_assert(mb <= bb, "max |B| %.9g above the bound %.9g (fan r = %d)", (double)mb, (double)bb,
              r);
    /* uniform over the whole interval: the bound is nearly reached (a
     * smaller fan-based bound, or a normalisation, would show here) */
    cr_assert(ma > 0.9f * ba, "max |A| %.9g, bound %.9g", (double)ma, (double)ba);
    cr_assert(mb > 0.9f * bb, "max |B| %.9g, bound %.9g", (double)mb, (double)bb);
    /* A is the first r*I draws: kaiming_uniform(a=0, fan=I) from key 0 */
    static float want[4096];
    rl_mt g;
    rl_mt_seed(&g, 0);
    cr_assert(b->a_len <= 4096);
    rl_kaiming_uniform(&g, want, b->a_len, 0.0, in, RL_F32, RL_FMA);
    cr_assert_eq(memcmp(b->A, want, b->a_len * sizeof(float)), 0, "A is not the first draws");
    rl_shared_bases_free(b);
}

BASES_TEST(vera_shapes_and_bounds)
{
    check_vera(8, 40, 40);
    check_vera(8, 40, 24);
    check_vera(4, 24, 40);
}

BASES_TEST(n_bases)
{
    const int cases[][3] = {{64, 8, 8}, {24, 5, 5}, {20, 8, 3}, {50, 8, 7},
                            {8, 16, 1}, {7, 1, 7},  {1, 1, 1},  {96, 32, 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(rl_randlora_n_bases(cases[i][0], cases[i][1]), cases[i][2],
                     "n_bases(%d, %d) = %d, want %d", cases[i][0], cases[i][1],
                     rl_randlora_n_bases(cases[i][0], cases[i][1]), cases[i][2]);
}

BASES_TEST(names_parse)
{
    for (int m = 0; m < 4; m++) {
        rl_method got = (rl_method)99;
        cr_assert_eq(rl_method_parse(rl_method_name((rl_method)m), &got), RL_OK);
        cr_assert_eq(got, (rl_method)m);
    }
    for (int k = 0; k < 3; k++) {
        rl_bases_kind got = (rl_bases_kind)99;
        cr_assert_eq(rl_bases_kind_parse(rl_bases_kind_name((rl_bases_kind)k), &got), RL_OK);
        cr_assert_eq(got, (rl_bases_kind)k);
    }
    cr_assert_str_eq(rl_method_name(RL_METHOD_RANDLORA), "randlora");
    cr_assert_str_eq(rl_bases_kind_name(RL_BASES_VERY_SPARSE), "very_sparse");
    rl_method m;
    cr_assert_eq(rl_method_parse("dora", &m), RL_EINVAL);
    cr_assert(strstr(rl_errmsg(), "dora"), "message does not name the input: %s", rl_errmsg());
    cr_assert_eq(rl_method_parse(NULL, &m), RL_EINVAL);
    rl_bases_kind k;
    cr_assert_eq(rl_bases_kind_parse("Sparse", &k), RL_EINVAL);
    cr_assert(strstr(rl_errmsg(), "Sparse"), "message: %s", rl_errmsg());
}

/* ======================================================================
 * Refused inputs
 * ==================================================================== */

/* A dummy non-NULL value that *out must not keep on failure. */
static rl_shared_bases g_dummy;

static void expect_refused(rl_method m, int r, int out, int in, rl_bases_kind kind,
                           uint64_t key, const char *needle)
{
    const size_t m0 = rl_mem_current();
    rl_shared_bases *b = &g_dummy;
    rl_errclear();
    rl_status s = rl_shared_bases_new(&b, m, r, out, in, kind, RL_BF16, RL_FMA, key);
    cr_assert_eq(s, RL_EINVAL, "(%s, r=%d, %dx%d, kind %d): status %d, want RL_EINVAL",
                 rl_method_name(m), r, out, in, (int)kind, s);
    cr_assert_null(b, "out not set to NULL on failure");
    cr_assert_neq(rl_errmsg()[0], '\0', "no message");
    if (needle)
        cr_assert(strstr(rl_errmsg(), needle), "message lacks \"%s\": %s", needle, rl_errmsg());
    cr_assert_eq(rl_mem_current(), m0, "a refused call leaked %zu bytes", rl_mem_current() - m0);
}

BASES_TEST(bad_input)
{
    expect_refused(RL_METHOD_RANDLORA, 0, 96, 64, RL_BASES_DENSE, 0,
                   "`r` should be a positive integer");
    expect_refused(RL_METHOD_RANDLORA, -3, 96, 64, RL_BASES_DENSE, 0,
                   "`r` should be a positive integer");
    expect_refused(RL_METHOD_VERA, 0, 96, 64, RL_BASES_DENSE, 0,
                   "`r` should be a positive integer");
    expect_refused(RL_METHOD_LORA, 8, 96, 64, RL_BASES_DENSE, 0, "lora");
    expect_refused(RL_METHOD_FULL, 8, 96, 64, RL_BASES_DENSE, 0, NULL);
    expect_refused(RL_METHOD_RANDLORA, 8, 0, 64, RL_BASES_DENSE, 0, NULL);
    expect_refused(RL_METHOD_RANDLORA, 8, 96, -1, RL_BASES_DENSE, 0, NULL);
    expect_refused(RL_METHOD_VERA, 8, 0, 0, RL_BASES_DENSE, 0, NULL);
    expect_refused(RL_METHOD_RANDLORA, 8, 96, 64, (rl_bases_kind)7, 0, NULL);
}

BASES_TEST(zero_std_refused)
{
    /* very_sparse with min_dim 1: s = 1, thresholds 0.5 / 0.5, so every
     * value is +-1. r = 1: A has one element, whose std is NaN. */
    expect_refused(RL_METHOD_RANDLORA, 1, 1, 1, RL_BASES_VERY_SPARSE, 0, "std");
    /* key 12345 starts 0.98, 0.88, 0.99: with r = 3 all of A is +1, std 0 */
    expect_refused(RL_METHOD_RANDLORA, 3, 1, 1, RL_BASES_VERY_SPARSE, 12345, "randlora_A");
    /* the same draws with s = 3 (sparse: thresholds 1/6, 5/6) are all +1 too */
    expect_refused(RL_METHOD_RANDLORA, 3, 1, 1, RL_BASES_SPARSE, 12345, "randlora_A");
    /* dense with one element in A: std NaN */
    expect_refused(RL_METHOD_RANDLORA, 1, 1, 1, RL_BASES_DENSE, 0, "std");
    /* key 0, r = 2: A = {0.496 -> -1, 0.768 -> +1} is fine, but B = {0.088,
     * 0.132} -> {-1, -1} has std 0: the refusal names B */
    expect_refused(RL_METHOD_RANDLORA, 2, 1, 1, RL_BASES_VERY_SPARSE, 0, "randlora_B");
    rl_shared_bases_free(NULL);
}
