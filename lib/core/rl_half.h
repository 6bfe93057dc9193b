/* rl_half.h -- bfloat16 and IEEE binary16 conversions.
 *
 * float -> 16-bit conversions round to nearest, ties to even (RNE), as
 * c10::BFloat16 (round_to_nearest_even) and c10::Half do; NaN stays NaN
 * (quiet), overflow goes to infinity, fp16 subnormals are rounded correctly.
 * 16-bit -> float conversions are exact.
 */
#ifndef RL_HALF_H
#define RL_HALF_H

#include <stdint.h>

uint16_t rl_f32_to_bf16(float f);
float    rl_bf16_to_f32(uint16_t h);
uint16_t rl_f32_to_f16(float f);
float    rl_f16_to_f32(uint16_t h);

/* Round a float to the nearest bf16 / fp16 value, returned as float. */
float rl_round_bf16(float f);
float rl_round_f16(float f);

#endif
