/* fuzz_idx.c -- the IDX loader (datasets/rl_idx.c): the input is the images
 * file FUZZ_SEP the labels file (gzip or raw: zlib reads both); the first
 * byte of the labels part also picks options (classes, max_count). */
#include "datasets/rl_data.h"
#include "fuzz_common.h"

FUZZ_INITIALIZE("idx", (void)0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[2];
    size_t len[2];
    fuzz_split(data, size, part, len, 2);
    fuzz_write("images", part[0], len[0]);
    fuzz_write("labels", part[1], len[1]);
    char ip[256], lp[256];
    fuzz_path(ip, sizeof ip, "images");
    fuzz_path(lp, sizeof lp, "labels");
    rl_label_opts o = {0};
    uint8_t sel = size ? data[size - 1] : 0;
    if (sel & 1) o.max_count = sel >> 4;
    if (sel & 2) {
        o.n_keep = 2;
        o.keep[0] = 5;
        o.keep[1] = sel % 5;
    }
    o.unscaled = sel & 4;
    rl_dataset d;
    memset(&d, 0x5a, sizeof d);
    if (rl_idx_load(&d, ip, lp, &o, NULL) != RL_OK)
        FUZZ_CHECK(d.x == NULL && d.y == NULL && d.n == 0, "a failed load left a dataset");
    else
        FUZZ_CHECK(d.n >= 0 && (d.n == 0 || d.x != NULL), "a loaded dataset without data");
    rl_dataset_free(&d);
    fuzz_check_mem("rl_idx_load");
    return 0;
}
