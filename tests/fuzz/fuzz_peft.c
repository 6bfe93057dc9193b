/* fuzz_peft.c -- PEFT adapter directories (lib/io/rl_peft.c): the input is
 * adapter_config.json FUZZ_SEP adapter_model.safetensors [FUZZ_SEP
 * base_model.safetensors]; a directory that loads is also taken through
 * delta weights, export (--force) and merge. */
#include "fuzz_common.h"
#include "io/rl_peft.h"

FUZZ_INITIALIZE("peft", (void)0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[3];
    size_t len[3];
    int n = fuzz_split(data, size, part, len, 3);
    char dir[200], out[256], merged[256], base[256];
    snprintf(dir, sizeof dir, "%s/in", fuzz_dir);
    mkdir(dir, 0700);
    fuzz_write("in/adapter_config.json", part[0], len[0]);
    fuzz_write("in/adapter_model.safetensors", part[1], len[1]);
    if (n == 3) fuzz_write("in/base_model.safetensors", part[2], len[2]);
    else fuzz_write("in/base_model.safetensors", NULL, SIZE_MAX);
    rl_peft *p = (rl_peft *)&p;
    rl_status st = rl_peft_load(&p, dir, NULL);
    if (st != RL_OK) {
        FUZZ_CHECK(p == NULL, "a failed load left an output");
        fuzz_check_mem("rl_peft_load");
        return 0;
    }
    for (int m = 0; m < p->n_modules; m++) {
        size_t nw = (size_t)p->modules[m].d_out * (size_t)p->modules[m].d_in;
        if (rl_budget_check(nw * sizeof(float), "fuzz") != RL_OK) continue;
        float *dw = rl_alloc_floats(nw);
        FUZZ_CHECK(dw != NULL, "alloc");
        FUZZ_CHECK(rl_peft_delta_weight(p, m, dw) == RL_OK, "%s", rl_errmsg());
        rl_dealloc(dw);
    }
    rl_peft_save_opts o = rl_peft_save_opts_default();
    o.replace = true;
    snprintf(out, sizeof out, "%s/out", fuzz_dir);
    if (rl_peft_save(p, out, &o) == RL_OK) {
        rl_peft *q = NULL;
        FUZZ_CHECK(rl_peft_load(&q, out, NULL) == RL_OK, "an export does not load back: %s", rl_errmsg());
        FUZZ_CHECK(q->n_modules == p->n_modules && q->method == p->method, "the export differs");
        rl_peft_free(q);
    }
    if (p->base_path) {
        snprintf(merged, sizeof merged, "%s/merged.safetensors", fuzz_dir);
        snprintf(base, sizeof base, "%s", p->base_path);
        rl_status ms = rl_peft_merge(p, base, merged, true);
        FUZZ_CHECK(ms != RL_EINVAL || strstr(rl_errmsg(), "refusing") == NULL, "merge refused a distinct output");
    }
    rl_peft_free(p);
    fuzz_check_mem("peft");
    return 0;
}
