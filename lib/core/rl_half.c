/* rl_half.c -- bfloat16 / binary16 <-> float32 with round-to-nearest-even. */
#include "rl_half.h"

#include <string.h>

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

uint16_t rl_f32_to_bf16(float f)
{
    uint32_t u = bits_of(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep sign, force quiet */
        return (uint16_t)((u >> 16) | 0x0040u);
    /* add half an ulp of bf16, plus one if the kept lsb is odd (ties to even) */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float rl_bf16_to_f32(uint16_t h) { return float_of((uint32_t)h << 16); }

uint16_t rl_f32_to_f16(float f)
{
    uint32_t u = bits_of(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);   /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  /* >= 65520: rounds to inf */
    int e = (int)(a >> 23) - 127;                             /* unbiased exponent */
    if (e >= -14) {
        /* normal fp16: keep 10 mantissa bits, round the 13 dropped bits */
        uint32_t m = a & 0x7fffffu;
        uint32_t h = ((uint32_t)(e + 15) << 10) | (m >> 13);
        uint32_t rest = m & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* may carry into exp: fine */
        return (uint16_t)(sign | h);
    }
    if (e < -25) return sign; /* below half the smallest subnormal: 0 */
    /* subnormal fp16: value = q * 2^-24 with q = round(mant24 * 2^(e+24-23)) */
    uint32_t m = (a & 0x7fffffu) | 0x800000u;   /* 24-bit significand, value m * 2^(e-23) */
    int shift = -e - 1;                           /* m * 2^(e-23) / 2^-24 = m >> (-e-1) */
    uint32_t q = m >> shift;
    uint32_t rest = m & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

float rl_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x3ffu;
    if (e == 0x1f) return float_of(sign | 0x7f800000u | (m << 13)); /* inf / NaN */
    if (e == 0) {
        /* zero or subnormal: m * 2^-24, exact in float */
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    return float_of(sign | ((e + 112u) << 23) | (m << 13));
}

float rl_round_bf16(float f) { return rl_bf16_to_f32(rl_f32_to_bf16(f)); }
float rl_round_f16(float f) { return rl_f16_to_f32(rl_f32_to_f16(f)); }
