/* fuzz_parity.c -- peft-parity-v1 files (experiments/parity.c): the
 * metadata and setup reader alone (its bases NULL on failure), then the
 * whole check and `randlora rank`'s per-layer spectra. */
#include "fuzz_common.h"
#include "io/rl_safetensors.h"
#include "parity.h"
#include "rank.h"

static FILE *devnull;

FUZZ_INITIALIZE("parity", devnull = fopen("/dev/null", "w"))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_st_file *f = NULL;
    if (rl_st_open_buffer(&f, data, size, "fuzz") == RL_OK) {
        parity_setup ps;
        if (parity_setup_read(f, &ps) != RL_OK) FUZZ_CHECK(ps.bases == NULL, "a failed setup left bases");
        parity_setup_free(&ps);
        rl_st_close(f);
    }
    fuzz_check_mem("parity_setup_read");
    fuzz_write("p.safetensors", data, size);
    char p[256];
    fuzz_path(p, sizeof p, "p.safetensors");
    parity_result res;
    if (parity_check_file(p, 1e-5, &res) != RL_OK) FUZZ_CHECK(!res.pass, "an error that passes");
    fuzz_check_mem("parity_check_file");
    rank_fixture_write(p, devnull, size % 2 == 0, 0.0);
    fuzz_check_mem("rank_fixture_write");
    return 0;
}
