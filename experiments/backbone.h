/* backbone.h -- the pretrained ViT that `sweep vit` adapts, made here and
 * cached: trained once on a source task, saved as a safetensors checkpoint
 * under <root>/<name>/ (model.safetensors, manifest.json), and reused while
 * the manifest's "spec" equals the one asked for; rebuilt otherwise.
 *
 * The spec is everything that decides the weights: the ViT's shape, the
 * source task (Fashion-MNIST classes, the first n_train training examples
 * of those classes, n_val of them held out for early stopping), the recipe
 * (AdamW, lr, batch, warm-up and cosine over at most max_epochs, early
 * stopping with patience, best validation state restored) and the seed.
 * The checkpoint is written before the manifest, so a manifest always
 * describes a complete checkpoint; an interrupted pretraining is redone.
 */
#ifndef RL_BACKBONE_H
#define RL_BACKBONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "models/rl_model.h"

typedef struct {
    const char *name;         /* directory under the root */
    rl_model_config model;    /* a ViT; n_classes = n_source */
    int source[10], n_source; /* Fashion-MNIST classes of the source task */
    int n_train, n_val;       /* first n_train training examples of those classes; n_val held out */
    int n_test;               /* test examples for the stated source accuracy */
    int max_epochs, patience, batch;
    double lr;
    uint64_t seed;            /* weights init; data order seed + 1 */
} bb_spec;

typedef struct {
    bool built;               /* trained now (false: reused) */
    double val_acc, test_acc; /* source task, of the saved state */
    long steps;
    char path[700];           /* <root>/<name>/model.safetensors */
} bb_info;

/* The spec as canonical JSON (what the manifest stores and compares). */
rl_status bb_spec_json(const bb_spec *s, char **json);

/* Make sure the backbone exists under root and describe it in *info. */
rl_status bb_get(const char *root, const bb_spec *s, bool quiet, bb_info *info);

#endif
