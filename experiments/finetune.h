/* finetune.h -- what `sweep finetune` and `sweep similarity` share: the
 * tasks, their data, the model, pretraining and adaptation. */
#ifndef RL_FINETUNE_H
#define RL_FINETUNE_H

#include <stdbool.h>

#include "datasets/rl_data.h"
#include "models/rl_model.h"

enum { FT_CLASSES = 0, FT_PERMUTED = 1, FT_TEACHER = 2, FT_TASKS = 3 };
extern const char *const ft_task_names[FT_TASKS];

typedef struct {
    rl_dataset a_train, b_train, b_test;
} ft_data;

#define FT_MAX_CURVE 512
typedef struct {
    int n;
    long step[FT_MAX_CURVE];
    double loss[FT_MAX_CURVE];
    double step_ms;
    long steps;
} ft_log;

rl_model_config ft_model_config(void);
rl_status ft_data_load(ft_data *d, int task, bool full);
void ft_data_free(ft_data *d);
/* Train every trainable block of m on `train` (batches of 128, AdamW, warm-up
 * + cosine, clip 1); log (may be NULL) gets the loss every 10 steps and the
 * median step time. */
rl_status ft_train(rl_model *m, const rl_dataset *train, int epochs, double lr, uint64_t seed, ft_log *log);
rl_status ft_eval(rl_model *m, const rl_dataset *d, double *acc);
/* The pretrained base of a task family, from <dir>/models/ or trained now. */
rl_status ft_base(rl_model **out, int task, const ft_data *d, const char *dir, bool full, bool quiet);
/* New head, then the method's adapters on fc1, fc2 (full: everything trains). */
rl_status ft_adapt(rl_model *m, rl_method method, rl_bases_kind bases, int r, uint64_t seed);

#endif
