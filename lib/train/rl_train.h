/* rl_train.h -- training a model: schedules, clipping, steps, evaluation.
 *
 * lr(step) = peak · step / warmup                       for step < warmup
 *          = floor + (peak - floor) · ½(1 + cos(π · p))  after, p = progress in [0, 1]
 * Gradient clipping scales every trainable span by min(1, max_norm / ||g||₂),
 * the norm taken over all spans together (torch.nn.utils.clip_grad_norm_).
 *
 * rl_trainer owns one optimiser state per trainable span of the model (made
 * by rl_trainer_new for the model's current mode) and scratch for a batch;
 * rl_trainer_step and rl_evaluate allocate nothing.
 */
#ifndef RL_TRAIN_H
#define RL_TRAIN_H

#include "../models/rl_model.h"
#include "../models/rl_nn.h"
#include "rl_optim.h"

double rl_lr_schedule(long step, long total, long warmup, double peak, double floor_lr);

/* Global L2 norm over the spans' gradients; if max_norm > 0 and the norm is
 * larger, scale them to max_norm. Returns the norm before clipping. */
double rl_clip_grad_norm(rl_span *spans, int n, double max_norm);

typedef enum { RL_OPT_ADAMW = 0, RL_OPT_SGD = 1 } rl_opt_kind;

typedef struct {
    rl_opt_kind opt;
    double lr, weight_decay, momentum, clip;
    long total_steps, warmup;
    double lr_floor;
} rl_train_config;

typedef struct rl_trainer rl_trainer;

rl_status rl_trainer_new(rl_trainer **out, rl_model *m, const rl_train_config *cfg);
void rl_trainer_free(rl_trainer *t);

/* One step on a batch: x (B, input_dim), labels y (B): forward, mean
 * cross-entropy, backward, clipping, optimiser update at the scheduled lr.
 * Returns the batch loss in *loss and correct predictions in *correct. */
rl_status rl_trainer_step(rl_trainer *t, const float *x, const int *y, int B, double *loss, int *correct);
long rl_trainer_steps_done(const rl_trainer *t);

/* Mean loss and accuracy of the model over n examples, in batches of the
 * model's max_batch; logits scratch comes from the trainer. */
rl_status rl_evaluate(rl_trainer *t, const float *x, const int *y, int n, double *loss, double *acc);

#endif
