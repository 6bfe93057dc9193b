/* fuzz_safetensors.c -- the safetensors reader (lib/io/rl_safetensors.c) on
 * hostile bytes: open, every accessor, the strict metadata parsers, and a
 * round trip (what was read, written back raw, reads back the same). */
#include "fuzz_common.h"
#include "io/rl_safetensors.h"

FUZZ_INITIALIZE("safetensors", (void)0)

static void round_trip(const rl_st_file *f)
{
    rl_st_writer *w = NULL;
    FUZZ_CHECK(rl_st_writer_new(&w) == RL_OK, "%s", rl_errmsg());
    for (size_t i = 0; i < rl_st_count(f); i++) {
        const rl_st_tensor *t = rl_st_at(f, i);
        if (!t->name[0]) { /* an empty name is valid JSON but the writer refuses it */
            rl_st_writer_free(w);
            return;
        }
        FUZZ_CHECK(rl_st_writer_add_raw(w, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes) == RL_OK,
                   "re-adding \"%s\": %s", t->name, rl_errmsg());
    }
    char p[256];
    fuzz_path(p, sizeof p, "rt.safetensors");
    FUZZ_CHECK(rl_st_writer_save(w, p) == RL_OK, "%s", rl_errmsg());
    rl_st_writer_free(w);
    rl_st_file *g = NULL;
    FUZZ_CHECK(rl_st_open(&g, p) == RL_OK, "what was read does not read back: %s", rl_errmsg());
    FUZZ_CHECK(rl_st_count(g) == rl_st_count(f), "%zu tensors back of %zu", rl_st_count(g), rl_st_count(f));
    for (size_t i = 0; i < rl_st_count(f); i++) {
        const rl_st_tensor *a = rl_st_at(f, i), *b = rl_st_at(g, i);
        FUZZ_CHECK(strcmp(a->name, b->name) == 0 && a->dtype == b->dtype && a->ndim == b->ndim &&
                       a->nbytes == b->nbytes && memcmp(a->shape, b->shape, sizeof a->shape[0] * (size_t)a->ndim) == 0 &&
                       (a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0),
                   "tensor %zu \"%s\" changed in the round trip", i, a->name);
    }
    rl_st_close(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_st_file *f = (rl_st_file *)&f; /* must become NULL on failure */
    rl_status st = rl_st_open_buffer(&f, data, size, "fuzz");
    if (st != RL_OK) {
        FUZZ_CHECK(f == NULL, "a failed open left an output");
        FUZZ_CHECK(rl_errmsg()[0] != '\0', "a failure without a message");
        fuzz_check_mem("rl_st_open_buffer");
        return 0;
    }
    for (size_t i = 0; i < rl_st_count(f); i++) {
        const rl_st_tensor *t = rl_st_at(f, i);
        FUZZ_CHECK(rl_st_find(f, t->name) == t, "find(\"%s\") is not the tensor", t->name);
        FUZZ_CHECK(t->nbytes == t->numel * rl_dtype_size(t->dtype), "nbytes");
        if (t->numel <= ((size_t)1 << 20)) {
            float *x = rl_alloc_floats(t->numel ? t->numel : 1);
            FUZZ_CHECK(x != NULL, "alloc");
            rl_st_to_f32(t, x);
            rl_dealloc(x);
        }
    }
    static const char *const keys[] = {"r", "tokens", "layers", "alpha", "use_rslora", "projection_prng_key", "format"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        int64_t i64 = 7;
        int i = 7;
        double d = 7;
        bool b = true;
        uint64_t u = 7;
        if (rl_st_meta_i64(f, keys[k], INT64_MIN, INT64_MAX, &i64) != RL_OK) FUZZ_CHECK(i64 == 7, "i64 written on failure");
        if (rl_st_meta_int(f, keys[k], 1, 1 << 20, &i) != RL_OK) FUZZ_CHECK(i == 7, "int written on failure");
        else FUZZ_CHECK(i >= 1 && i <= 1 << 20, "int out of range");
        if (rl_st_meta_double(f, keys[k], -1e300, 1e300, &d) != RL_OK) FUZZ_CHECK(d == 7, "double written on failure");
        if (rl_st_meta_bool(f, keys[k], &b) != RL_OK) FUZZ_CHECK(b, "bool written on failure");
        if (rl_st_meta_seed(f, keys[k], &u) != RL_OK) FUZZ_CHECK(u == 7, "seed written on failure");
    }
    round_trip(f);
    rl_st_close(f);
    fuzz_check_mem("safetensors");
    return 0;
}
