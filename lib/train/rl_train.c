/* rl_train.c -- schedules, clipping, the training step and evaluation. */
#include "rl_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/rl_tensor.h"

#define MAX_SPANS 80

double rl_lr_schedule(long step, long total, long warmup, double peak, double floor_lr)
{
    if (warmup > 0 && step < warmup) return peak * (double)(step + 1) / (double)warmup;
    long span = total - warmup;
    double p = span > 0 ? (double)(step - warmup) / (double)span : 1.0;
    if (p > 1) p = 1;
    return floor_lr + (peak - floor_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * p));
}

double rl_clip_grad_norm(rl_span *spans, int n, double max_norm)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < spans[i].n; j++) ss += (double)spans[i].g[j] * spans[i].g[j];
    double norm = sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        float s = (float)(max_norm / (norm + 1e-6));
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < spans[i].n; j++) spans[i].g[j] *= s;
    }
    return norm;
}

struct rl_trainer {
    rl_model *m;
    rl_train_config cfg;
    rl_span spans[MAX_SPANS];
    int n_spans;
    rl_adamw *adam[MAX_SPANS];
    rl_sgd *sgd[MAX_SPANS];
    float *logits, *dlogits;
    long step;
};

rl_status rl_trainer_new(rl_trainer **out, rl_model *m, const rl_train_config *cfg)
{
    *out = NULL;
    if (!(cfg->lr > 0) || cfg->total_steps < 1)
        return rl_fail(RL_EINVAL, "trainer: lr %g must be positive and total_steps %ld >= 1", cfg->lr, cfg->total_steps);
    rl_trainer *t = calloc(1, sizeof *t);
    if (!t) return rl_fail(RL_ENOMEM, "trainer: no memory");
    t->m = m;
    t->cfg = *cfg;
    t->n_spans = rl_model_spans(m, t->spans, MAX_SPANS);
    rl_status st = RL_OK;
    for (int i = 0; i < t->n_spans && st == RL_OK; i++)
        st = cfg->opt == RL_OPT_SGD ? rl_sgd_new(&t->sgd[i], t->spans[i].n, (float)cfg->lr, (float)cfg->momentum)
                                    : rl_adamw_new(&t->adam[i], t->spans[i].n, (float)cfg->lr, (float)cfg->weight_decay);
    size_t nl = (size_t)rl_model_n_classes(m) * 4096;
    t->logits = rl_alloc_floats(nl);
    t->dlogits = rl_alloc_floats(nl);
    if (st == RL_OK && (!t->logits || !t->dlogits)) st = rl_fail(RL_ENOMEM, "trainer: no memory for logits");
    if (st != RL_OK) {
        rl_trainer_free(t);
        return st;
    }
    *out = t;
    return RL_OK;
}

void rl_trainer_free(rl_trainer *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_spans; i++) {
        rl_adamw_free(t->adam[i]);
        rl_sgd_free(t->sgd[i]);
    }
    rl_dealloc(t->logits);
    rl_dealloc(t->dlogits);
    free(t);
}

long rl_trainer_steps_done(const rl_trainer *t) { return t->step; }

rl_status rl_trainer_step(rl_trainer *t, const float *x, const int *y, int B, double *loss, int *correct)
{
    if (B > 4096) return rl_fail(RL_EINVAL, "trainer: batch %d above 4096", B);
    rl_model_zero_grad(t->m);
    RL_TRY(rl_model_forward(t->m, x, B, t->logits));
    *loss = rl_xent_forward_backward(t->dlogits, t->logits, y, B, rl_model_n_classes(t->m), correct);
    if (!isfinite(*loss)) return rl_fail(RL_ENONFINITE, "trainer: loss is %g at step %ld", *loss, t->step);
    RL_TRY(rl_model_backward(t->m, t->dlogits, B));
    rl_clip_grad_norm(t->spans, t->n_spans, t->cfg.clip);
    double lr = rl_lr_schedule(t->step, t->cfg.total_steps, t->cfg.warmup, t->cfg.lr, t->cfg.lr_floor);
    for (int i = 0; i < t->n_spans; i++) {
        if (t->adam[i]) {
            t->adam[i]->lr = (float)lr;
            rl_adamw_step(t->adam[i], t->spans[i]);
        } else {
            t->sgd[i]->lr = (float)lr;
            rl_sgd_step(t->sgd[i], t->spans[i]);
        }
    }
    t->step++;
    return RL_OK;
}

rl_status rl_evaluate(rl_trainer *t, const float *x, const int *y, int n, double *loss, double *acc)
{
    const int mb = rl_model_max_batch(t->m), bs = mb < 256 ? mb : 256, in = rl_model_input_dim(t->m),
              c = rl_model_n_classes(t->m);
    double tot = 0;
    long hits = 0;
    for (int s = 0; s < n; s += bs) {
        int B = n - s < bs ? n - s : bs;
        RL_TRY(rl_model_forward(t->m, x + (size_t)s * in, B, t->logits));
        int h;
        tot += rl_xent_forward_backward(NULL, t->logits, y + s, B, c, &h) * B;
        hits += h;
    }
    *loss = n ? tot / n : 0;
    *acc = n ? (double)hits / n : 0;
    return RL_OK;
}
