/* backbone.c -- the cached pretrained ViT (backbone.h). */
#include "backbone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/rl_blas.h"
#include "datasets/rl_data.h"
#include "io/rl_results.h"
#include "protocol.h"

rl_status bb_spec_json(const bb_spec *s, char **json)
{
    pr_text t = {0};
    const rl_model_config *m = &s->model;
    rl_status st = pr_text_add(&t, "{\"format\": \"randlora-backbone-v1\", \"model\": {\"kind\": \"vit\", \"image\": %d, "
                                   "\"patch\": %d, \"dim\": %d, \"heads\": %d, \"mlp_dim\": %d, \"blocks\": %d, "
                                   "\"classes\": %d}, \"source\": {\"dataset\": \"fashion-mnist\", \"classes\": [",
                               m->image, m->patch, m->dim, m->heads, m->mlp_dim, m->blocks, m->n_classes);
    for (int i = 0; st == RL_OK && i < s->n_source; i++) st = pr_text_add(&t, "%s%d", i ? ", " : "", s->source[i]);
    if (st == RL_OK)
        st = pr_text_add(&t, "], \"n_train\": %d, \"n_val\": %d, \"n_test\": %d}, \"recipe\": {\"optimizer\": \"adamw\", "
                             "\"lr\": %.6g, \"batch\": %d, \"max_epochs\": %d, \"patience\": %d, \"warmup\": 0.05, "
                             "\"schedule\": \"cosine\", \"clip\": 1.0, \"weight_decay\": 0}, \"seed\": %llu}",
                         s->n_train, s->n_val, s->n_test, s->lr, s->batch, s->max_epochs, s->patience,
                         (unsigned long long)s->seed);
    if (st == RL_OK) st = rl_json_canonical(t.buf, json);
    pr_text_free(&t);
    return st;
}

static rl_status load_source(const bb_spec *s, rl_dataset *fit, rl_dataset *val, rl_dataset *test)
{
    rl_label_opts lo = {.n_keep = s->n_source, .max_count = s->n_train};
    memcpy(lo.keep, s->source, sizeof lo.keep);
    rl_dataset all = {0};
    RL_TRY(rl_fmnist_load(&all, RL_SPLIT_TRAIN, NULL, &lo));
    rl_status st = all.n == s->n_train ? RL_OK
                                       : rl_fail(RL_EFORMAT, "backbone %s: %d source training examples, need %d", s->name,
                                                 all.n, s->n_train);
    if (st == RL_OK) st = rl_dataset_split_stratified(fit, val, &all, s->n_val, s->seed + 7);
    rl_dataset_free(&all);
    lo.max_count = s->n_test;
    if (st == RL_OK) st = rl_fmnist_load(test, RL_SPLIT_TEST, NULL, &lo);
    return st;
}

rl_status bb_get(const char *root, const bb_spec *s, bool quiet, bb_info *info)
{
    memset(info, 0, sizeof *info);
    if (s->model.kind != RL_MODEL_VIT || s->model.n_classes != s->n_source)
        return rl_fail(RL_EINVAL, "backbone %s: a ViT with one output per source class is expected", s->name);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/%s", root, s->name);
    snprintf(info->path, sizeof info->path, "%s/model.safetensors", dir);
    char *want = NULL, *have = NULL;
    RL_TRY(bb_spec_json(s, &want));
    struct stat sb;
    rl_status st = rl_manifest_config_member(dir, "spec", &have);
    bool reuse = st == RL_OK && strcmp(have, want) == 0 && stat(info->path, &sb) == 0;
    free(have);
    have = NULL;
    if (reuse) { /* the stated accuracies come from the manifest */
        st = rl_manifest_config_member(dir, "result", &have);
        if (st == RL_OK &&
            sscanf(have, "{\"steps\":%ld,\"test_acc\":%lf,\"val_acc\":%lf}", &info->steps, &info->test_acc, &info->val_acc) != 3)
            st = rl_fail(RL_EFORMAT, "%s/manifest.json: config.result is '%s'", dir, have);
        free(have);
        free(want);
        return st;
    }
    rl_errclear();
    info->built = true;
    if (!quiet) fprintf(stderr, "backbone %s: pretraining the ViT on Fashion-MNIST classes (%d examples)...\n", s->name, s->n_train);
    rl_dataset fit = {0}, val = {0}, test = {0};
    rl_model *m = NULL;
    st = load_source(s, &fit, &val, &test);
    if (st == RL_OK) st = rl_model_new(&m, &s->model, s->seed);
    pr_fit_out fo;
    if (st == RL_OK) {
        pr_train_cfg tc = {.lr = s->lr, .batch = s->batch, .max_epochs = s->max_epochs, .patience = s->patience,
                           .clip = 1.0, .weight_decay = 0.0, .warmup_frac = 0.05};
        st = pr_fit(m, &fit, &val, &tc, s->seed + 1, &fo);
    }
    if (st == RL_OK) st = pr_eval(m, &test, &info->test_acc, NULL);
    if (st == RL_OK) {
        info->val_acc = fo.val_acc;
        info->steps = fo.steps;
        st = rl_mkdir_p(dir);
    }
    if (st == RL_OK) st = rl_model_save_base(m, info->path); /* the checkpoint first, the manifest last */
    if (st == RL_OK) {
        pr_text cfg = {0};
        st = pr_text_add(&cfg, "{\"spec\": %s, \"result\": {\"steps\": %ld, \"test_acc\": %.6f, \"val_acc\": %.6f}}",
                         want, info->steps, info->test_acc, info->val_acc);
        char *args[1] = {(char *)"pretraining"};
        if (st == RL_OK) st = rl_manifest_write(dir, "backbone", 1, args, cfg.buf, s->seed);
        pr_text_free(&cfg);
    }
    if (st == RL_OK && !quiet)
        fprintf(stderr, "backbone %s: %ld steps, source validation accuracy %.4f, test accuracy %.4f -> %s\n", s->name,
                info->steps, info->val_acc, info->test_acc, info->path);
    rl_model_free(m);
    rl_dataset_free(&fit);
    rl_dataset_free(&val);
    rl_dataset_free(&test);
    free(want);
    return st;
}
