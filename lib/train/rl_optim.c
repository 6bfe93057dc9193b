/* rl_optim.c -- AdamW and SGD over flat spans. */
#include "rl_optim.h"

#include <math.h>
#include <stdlib.h>

#include "../core/rl_par.h"
#include "../core/rl_tensor.h"

rl_status rl_adamw_new(rl_adamw **out, size_t n, float lr, float weight_decay)
{
    *out = NULL;
    if (!(lr > 0.0f)) return rl_fail(RL_EINVAL, "adamw: learning rate %g must be positive", (double)lr);
    rl_adamw *o = calloc(1, sizeof *o);
    if (!o) return rl_fail(RL_ENOMEM, "adamw: no memory");
    *o = (rl_adamw){.lr = lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                    .weight_decay = weight_decay, .n = n};
    o->m = rl_alloc_floats(n ? n : 1);
    o->v = rl_alloc_floats(n ? n : 1);
    if (!o->m || !o->v) {
        rl_adamw_free(o);
        return rl_fail(RL_ENOMEM, "adamw: cannot allocate state for %zu parameters", n);
    }
    *out = o;
    return RL_OK;
}

void rl_adamw_free(rl_adamw *o)
{
    if (!o) return;
    rl_dealloc(o->m);
    rl_dealloc(o->v);
    free(o);
}

void rl_adamw_step(rl_adamw *o, rl_span s)
{
    RL_ASSERT(s.n == o->n, "adamw: span of %zu parameters, state for %zu", s.n, o->n);
    o->t++;
    const float b1 = o->beta1, b2 = o->beta2;
    const float c1 = 1.0f - powf(b1, (float)o->t), c2 = 1.0f - powf(b2, (float)o->t);
    const float decay = 1.0f - o->lr * o->weight_decay, step = o->lr / c1, rc2 = 1.0f / sqrtf(c2);
    float *m_ = o->m, *v_ = o->v;
    /* vector lanes too: IEEE sqrt and division are exact per lane, so the results are those of the scalar loop */
    RL_PAR_FOR_SIMD_W(s.n, 4)
    for (size_t i = 0; i < s.n; i++) {
        float g = s.g[i];
        float m = m_[i] = b1 * m_[i] + (1.0f - b1) * g;
        float v = v_[i] = b2 * v_[i] + (1.0f - b2) * g * g;
        s.p[i] = s.p[i] * decay - step * m / (sqrtf(v) * rc2 + o->eps);
    }
}

rl_status rl_sgd_new(rl_sgd **out, size_t n, float lr, float momentum)
{
    *out = NULL;
    if (!(lr > 0.0f)) return rl_fail(RL_EINVAL, "sgd: learning rate %g must be positive", (double)lr);
    rl_sgd *o = calloc(1, sizeof *o);
    if (!o) return rl_fail(RL_ENOMEM, "sgd: no memory");
    *o = (rl_sgd){.lr = lr, .momentum = momentum, .n = n};
    if (momentum != 0.0f && !(o->buf = rl_alloc_floats(n ? n : 1))) {
        free(o);
        return rl_fail(RL_ENOMEM, "sgd: cannot allocate momentum for %zu parameters", n);
    }
    *out = o;
    return RL_OK;
}

void rl_sgd_free(rl_sgd *o)
{
    if (!o) return;
    rl_dealloc(o->buf);
    free(o);
}

void rl_sgd_step(rl_sgd *o, rl_span s)
{
    RL_ASSERT(s.n == o->n, "sgd: span of %zu parameters, state for %zu", s.n, o->n);
    RL_PAR_FOR(s.n)
    for (size_t i = 0; i < s.n; i++) {
        float g = s.g[i];
        if (o->buf) g = o->buf[i] = o->momentum * o->buf[i] + g;
        s.p[i] -= o->lr * g;
    }
}
