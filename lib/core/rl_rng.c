/* rl_rng.c -- MT19937 seeded as torch seeds it, and torch's CPU samplers. */
#include "rl_rng.h"

#include <math.h>

#include "rl_half.h"

#define MT_N 624
#define MT_M 397

void rl_mt_seed(rl_mt *g, uint64_t seed)
{
    /* init_genrand (Matsumoto & Nishimura): s[j] = 1812433253 (s[j-1] ^
     * (s[j-1] >> 30)) + j mod 2^32. torch keeps only the low 32 bits. */
    g->s[0] = (uint32_t)(seed & 0xffffffffu);
    for (int j = 1; j < MT_N; j++)
        g->s[j] = 1812433253u * (g->s[j - 1] ^ (g->s[j - 1] >> 30)) + (uint32_t)j;
    g->left = 1;
    g->next = 0;
}

/* Regenerate all 624 words (the standard twist, MATRIX_A = 0x9908b0df). */
static void mt_twist(rl_mt *g)
{
    uint32_t *s = g->s;
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (s[i] & 0x80000000u) | (s[(i + 1) % MT_N] & 0x7fffffffu);
        s[i] = s[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    g->left = MT_N;
    g->next = 0;
}

uint32_t rl_mt_next(rl_mt *g)
{
    if (--g->left <= 0) mt_twist(g);
    uint32_t y = g->s[g->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

void rl_rand_f32(rl_mt *g, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = (float)(rl_mt_next(g) & 0xffffffu) * 0x1p-24f;
}

void rl_uniform_f32(rl_mt *g, float *out, size_t n, double from, double to, rl_fma fma)
{
    float lo = (float)from, hi = (float)to;
    float range = hi - lo;
    for (size_t i = 0; i < n; i++) {
        float x = (float)(rl_mt_next(g) & 0xffffffu) * 0x1p-24f;
        if (fma == RL_FMA) {
            out[i] = fmaf(x, range, lo);
        } else {
            volatile float prod = x * range; /* force the intermediate rounding */
            out[i] = prod + lo;
        }
    }
}

float rl_fmt_round(rl_fmt fmt, float v)
{
    switch (fmt) {
    case RL_BF16: return rl_round_bf16(v);
    case RL_FP16: return rl_round_f16(v);
    default: return v;
    }
}

void rl_uniform_fmt(rl_mt *g, float *out, size_t n, double from, double to,
                    rl_fmt fmt, rl_fma fma)
{
    if (fmt == RL_F32) {
        rl_uniform_f32(g, out, n, from, to, fma);
        return;
    }
    /* c10::BFloat16 / Half have only float constructors: double -> float -> 16 */
    int digits = fmt == RL_BF16 ? 8 : 11;
    uint32_t mask = (1u << digits) - 1u;
    float scale = 1.0f / (float)(1u << digits);
    float lo = rl_fmt_round(fmt, (float)from);
    float hi = rl_fmt_round(fmt, (float)to);
    float range = rl_fmt_round(fmt, hi - lo);
    for (size_t i = 0; i < n; i++) {
        float x = (float)(rl_mt_next(g) & mask) * scale;
        /* x has <= 11 bits and range <= 11 bits: the product is exact, so
         * fused or not gives the same single rounding in to16. */
        out[i] = rl_fmt_round(fmt, x * range + lo);
    }
}

double rl_kaiming_bound(double a, long fan_in)
{
    double gain = sqrt(2.0 / (1.0 + pow(a, 2.0)));
    double std = gain / sqrt((double)fan_in);
    return sqrt(3.0) * std;
}

void rl_kaiming_uniform(rl_mt *g, float *out, size_t n, double a, long fan_in,
                        rl_fmt fmt, rl_fma fma)
{
    double b = rl_kaiming_bound(a, fan_in);
    rl_uniform_fmt(g, out, n, -b, b, fmt, fma);
}

float rl_std_unbiased(const float *x, size_t n, rl_fmt fmt)
{
    if (n < 2) return rl_fmt_round(fmt, NAN); /* torch: nan for a single element */
    double mean = 0.0;
    for (size_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    double m2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - mean;
        m2 += d * d;
    }
    return rl_fmt_round(fmt, (float)sqrt(m2 / (double)(n - 1)));
}

float rl_mt_uniform01(rl_mt *g) { return (float)(rl_mt_next(g) & 0xffffffu) * 0x1p-24f; }

float rl_mt_normal(rl_mt *g)
{
    /* Box-Muller on two 24-bit uniforms; u1 in (0, 1] avoids log(0) */
    float u1 = 1.0f - rl_mt_uniform01(g);
    float u2 = rl_mt_uniform01(g);
    return (float)(sqrt(-2.0 * log((double)u1)) * cos(6.283185307179586 * (double)u2));
}

void rl_mt_fill_normal(rl_mt *g, float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * rl_mt_normal(g);
}
