/* fuzz_digits.c -- the sklearn digits CSV loader (datasets/rl_digits.c):
 * the input is the file (gzip or plain); native 8x8 and resampled to 28. */
#include "datasets/rl_data.h"
#include "fuzz_common.h"

FUZZ_INITIALIZE("digits", (void)0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("digits.csv.gz", data, size);
    char p[256];
    fuzz_path(p, sizeof p, "digits.csv.gz");
    for (int side = 8; side <= 28; side += 20) {
        rl_digits_opts o = {.expect_rows = -1, .side = side, .resize = RL_RESIZE_BILINEAR};
        rl_dataset d;
        memset(&d, 0x5a, sizeof d);
        if (rl_digits_load(&d, p, &o) != RL_OK)
            FUZZ_CHECK(d.x == NULL && d.y == NULL && d.n == 0, "a failed load left a dataset");
        else
            FUZZ_CHECK(d.n >= 1 && d.x != NULL && d.dim == side * side, "a loaded dataset without data");
        rl_dataset_free(&d);
        fuzz_check_mem("rl_digits_load");
    }
    return 0;
}
