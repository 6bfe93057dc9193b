/* finetune.h -- what `sweep finetune` and `sweep similarity` share: the
 * tasks, their data and splits, the pretrained MLP, the configurations and
 * where the trained models are kept. */
#ifndef RL_FINETUNE_H
#define RL_FINETUNE_H

#include <stdbool.h>

#include "datasets/rl_data.h"
#include "models/rl_model.h"

enum { FT_CLASSES = 0, FT_PERMUTED = 1, FT_TASKS = 2 };
extern const char *const ft_task_names[FT_TASKS];

/* Sizes: smoke (the protocol's own tests, seconds), quick (`make run`),
 * full (`make run FULL=1`). */
typedef enum { FT_SMOKE = 0, FT_QUICK = 1, FT_FULL = 2 } ft_size;
extern const char *const ft_size_names[3];

typedef struct {
    rl_dataset a_train, a_test; /* task A: pretraining, and its held-out accuracy */
    rl_dataset fit, val, test;  /* task B: fit + validation (from B's training data), test */
} ft_data;

/* MLP 784 -> 256 -> 256 -> 5 (GELU); adapters on fc1, fc2. */
rl_model_config ft_model_config(void);
#define FT_TARGETS "fc1,fc2"

rl_status ft_data_load(ft_data *d, int task, ft_size size);
void ft_data_free(ft_data *d);

/* The pretrained base (shared by both tasks: Fashion-MNIST classes 0-4),
 * loaded from <dir>/models/base_<size>.safetensors or trained now and saved
 * there; *a_acc gets its accuracy on task A's test split. */
rl_status ft_base(rl_model **out, const ft_data *d, const char *dir, ft_size size, bool quiet, double *a_acc);


#endif
