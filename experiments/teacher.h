/* teacher.h -- the teacher of `sweep teacher` (sweep_teacher.c), for its tests. */
#ifndef RL_TEACHER_SWEEP_H
#define RL_TEACHER_SWEEP_H

#include "datasets/rl_data.h"

#define TS_OUT 256
#define TS_IN 128
enum { TS_FLAT, TS_POWER, TS_SPIKED, TS_SPECS };

/* The teacher of a spectrum: W0 and ΔW* = U diag(s) Vᵀ (256 x 128, seeded;
 * the same for every method and seed). */
rl_status ts_teacher_new(rl_teacher *t, int spec);

/* What the adapter must produce for inputs x (n, TS_IN): y = x ΔW*ᵀ
 * (n, TS_OUT). The teacher answers x W0ᵀ + x ΔW*ᵀ and the student
 * x W0ᵀ + adapter(x) with the same W0, so the x W0ᵀ terms cancel and the
 * required update is exactly ΔW*. */
void ts_target(const rl_teacher *t, const float *x, int n, float *y);

#endif
