/* test_vit.c -- the pieces of `sweep vit` and `sweep teacher`: the cached
 * backbone (bit-for-bit round trip, rebuilt when its manifest changes) and
 * the teacher-student task's required update at step 0. (The ViT's
 * gradients with adapters on q, k, v, o, fc1, fc2 are in test_models.c.) */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backbone.h"
#include "core/rl_blas.h"
#include "core/rl_rng.h"
#include "core/rl_tensor.h"
#include "rl_test.h"
#include "target_fit.h"
#include "teacher.h"

TestSuite(vit, .init = rl_test_mark);


static bb_spec tiny_spec(void)
{
    return (bb_spec){.name = "tiny",
                     .model = {.kind = RL_MODEL_VIT, .n_classes = 5, .max_batch = 64, .image = 28, .patch = 7, .dim = 8,
                               .heads = 2, .mlp_dim = 16, .blocks = 1},
                     .source = {0, 1, 2, 3, 4}, .n_source = 5, .n_train = 300, .n_val = 60, .n_test = 100,
                     .max_epochs = 1, .patience = 1, .batch = 64, .lr = 1e-3, .seed = 3};
}

RL_TEST(vit, backbone_round_trips_and_rebuilds_on_a_changed_manifest)
{
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("dataset-fashion-mnist not installed");
    char root[64];
    rl_test_tmpdir(root, "rl_bb_");
    bb_spec s = tiny_spec();
    bb_info a, b;
    cr_assert_eq(bb_get(root, &s, true, &a), RL_OK, "%s", rl_errmsg());
    cr_assert(a.built && a.steps > 0 && a.test_acc > 0 && a.test_acc <= 1, "built: steps %ld, accuracy %g", a.steps, a.test_acc);
    long n1, n2;
    char *f1 = rl_test_slurp(a.path, &n1);
    cr_assert_not_null(f1);
    /* reused: nothing retrained, the same bytes, the stated accuracies from the manifest */
    cr_assert_eq(bb_get(root, &s, true, &b), RL_OK, "%s", rl_errmsg());
    cr_assert(!b.built);
    cr_assert(fabs(b.test_acc - a.test_acc) < 1e-6 && b.steps == a.steps);
    char *f2 = rl_test_slurp(b.path, &n2);
    cr_assert(n1 == n2 && memcmp(f1, f2, (size_t)n1) == 0);
    free(f2);
    /* load into a model and save again: bit for bit */
    rl_model *m = NULL;
    cr_assert_eq(rl_model_new(&m, &s.model, 99), RL_OK);
    cr_assert_eq(rl_model_load_base(m, a.path), RL_OK, "%s", rl_errmsg());
    char again[128];
    snprintf(again, sizeof again, "%s/again.safetensors", root);
    cr_assert_eq(rl_model_save_base(m, again), RL_OK);
    f2 = rl_test_slurp(again, &n2);
    cr_assert(n1 == n2 && memcmp(f1, f2, (size_t)n1) == 0, "the checkpoint does not round-trip bit for bit");
    free(f2);
    unlink(again);
    /* a target task loads the backbone under its own head (10 classes) */
    rl_model_config t10 = s.model;
    t10.n_classes = 10;
    rl_model *m10 = NULL;
    cr_assert_eq(rl_model_new(&m10, &t10, 1), RL_OK);
    cr_assert_eq(rl_model_load_backbone(m10, a.path), RL_OK, "%s", rl_errmsg());
    cr_assert_neq(rl_model_load_base(m10, a.path), RL_OK, "the 5-class head cannot load into 10 classes");
    rl_model_free(m10);
    rl_model_free(m);
    /* another recipe: the manifest no longer matches, so it is rebuilt */
    s.max_epochs = 2;
    cr_assert_eq(bb_get(root, &s, true, &b), RL_OK, "%s", rl_errmsg());
    cr_assert(b.built && b.steps > a.steps);
    f2 = rl_test_slurp(b.path, &n2);
    cr_assert(n1 != n2 || memcmp(f1, f2, (size_t)n1) != 0, "rebuilt weights differ");
    free(f2);
    /* a manifest edited by hand (here: broken) is not trusted either */
    char mp[128];
    snprintf(mp, sizeof mp, "%s/tiny/manifest.json", root);
    FILE *fp = fopen(mp, "w");
    cr_assert_not_null(fp);
    fputs("{\"config\": {\"spec\": {\"edited\": true}}}\n", fp);
    fclose(fp);
    cr_assert_eq(bb_get(root, &s, true, &b), RL_OK, "%s", rl_errmsg());
    cr_assert(b.built);
    free(f1);
    snprintf(mp, sizeof mp, "rm -rf %s", root);
    cr_assert_eq(system(mp), 0);
}

RL_TEST(vit, teacher_student_requires_exactly_the_chosen_update_at_step_0)
{
    rl_teacher t;
    cr_assert_eq(ts_teacher_new(&t, TS_FLAT), RL_OK, "%s", rl_errmsg());
    cr_assert(t.d_out == TS_OUT && t.d_in == TS_IN);
    const int n = 16;
    float *x = rl_alloc_floats((size_t)n * TS_IN), *y = rl_alloc_floats((size_t)n * TS_OUT),
          *ref = rl_alloc_floats((size_t)n * TS_OUT), *dw = rl_alloc_floats((size_t)TS_OUT * TS_IN),
          *out = rl_alloc_floats((size_t)n * TS_OUT);
    rl_mt g;
    rl_mt_seed(&g, 5);
    rl_mt_fill_normal(&g, x, (size_t)n * TS_IN, 1.0f);
    /* the target is x ΔW*ᵀ, ΔW* the teacher's own update */
    ts_target(&t, x, n, y);
    rl_gemm(RL_NOTRANS, RL_TRANS, n, TS_OUT, TS_IN, 1.0f, x, TS_IN, t.dw, TS_IN, 0.0f, ref, TS_OUT);
    cr_assert_eq(memcmp(y, ref, (size_t)n * TS_OUT * sizeof(float)), 0);
    /* every method starts from ΔW = 0 exactly (and outputs exactly 0), so
     * the update still to learn is ΔW* itself */
    static const struct { rl_method m; rl_bases_kind b; int r; } cases[] = {
        {RL_METHOD_FULL, RL_BASES_DENSE, 0},     {RL_METHOD_LORA, RL_BASES_DENSE, 3},
        {RL_METHOD_VERA, RL_BASES_DENSE, 128},   {RL_METHOD_RANDLORA, RL_BASES_DENSE, 16},
        {RL_METHOD_RANDLORA, RL_BASES_SPARSE, 16}, {RL_METHOD_RANDLORA, RL_BASES_VERY_SPARSE, 16}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tf_adapter a;
        cr_assert_eq(tf_adapter_new(&a, cases[c].m, cases[c].b, cases[c].r, TS_OUT, TS_IN, 0, n), RL_OK, "%s",
                     rl_errmsg());
        cr_assert_eq(rl_adapter_delta_weight(a.a, dw), RL_OK);
        memset(out, 0, (size_t)n * TS_OUT * sizeof(float));
        cr_assert_eq(rl_adapter_forward(a.a, x, n, out), RL_OK);
        for (size_t i = 0; i < (size_t)TS_OUT * TS_IN; i++) cr_assert_eq(dw[i], 0.0f, "method %zu: ΔW != 0 at step 0", c);
        for (size_t i = 0; i < (size_t)n * TS_OUT; i++) cr_assert_eq(out[i], 0.0f);
        /* and the error is then exactly 1: nothing of ΔW* is learnt yet */
        cr_assert_eq(tf_rel_error(dw, t.dw, (size_t)TS_OUT * TS_IN), 1.0);
        tf_adapter_free(&a);
    }
    rl_dealloc(x);
    rl_dealloc(y);
    rl_dealloc(ref);
    rl_dealloc(dw);
    rl_dealloc(out);
    rl_teacher_free(&t);
}
