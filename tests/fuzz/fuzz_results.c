/* fuzz_results.c -- the readers of results/ (experiments/sweep.c csv_read,
 * the report's strict rp_num, and the sweep point files that
 * rl_sweep_finish assembles, lib/io/rl_results.c). */
#include "fuzz_common.h"
#include "io/rl_results.h"
#include "report.h"
#include "sweep.h"

FUZZ_INITIALIZE("results", (void)0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("t.csv", data, size);
    char p[256];
    fuzz_path(p, sizeof p, "t.csv");
    csv_table t;
    memset(&t, 0x5a, sizeof t);
    if (csv_read(p, &t) != RL_OK) {
        FUZZ_CHECK(t.head == NULL && t.rows == NULL && t.nrow == 0 && t.ncol == 0, "a failed read left a table");
    } else {
        FUZZ_CHECK(t.ncol >= 1 && t.head != NULL, "a table without a header");
        for (int r = 0; r < t.nrow; r++)
            for (int c = 0; c < t.ncol; c++) {
                double v = rp_num(&t, r, t.head[c]);
                (void)v;
            }
        csv_free(&t);
    }
    /* the same bytes as a sweep point file */
    rl_sweep *s = NULL;
    FUZZ_CHECK(rl_sweep_open(&s, fuzz_dir, "f", "a,b") == RL_OK, "%s", rl_errmsg());
    char pt[256];
    fuzz_path(pt, sizeof pt, "points/f/0123456789abcdef.csv");
    FILE *fp = fopen(pt, "wb");
    FUZZ_CHECK(fp != NULL, "cannot write %s", pt);
    if (size) fwrite(data, 1, size, fp);
    fclose(fp);
    long n = -1;
    rl_status st = rl_sweep_finish(s, &n);
    /* counted, or left out whole (rows of another width than the header) */
    FUZZ_CHECK(st != RL_OK || n == 1 || n == 0, "a point file counted %ld times", n);
    if (st == RL_OK && n == 0) {
        char tp[256], buf[16];
        fuzz_path(tp, sizeof tp, "f.csv");
        FILE *tf = fopen(tp, "rb");
        FUZZ_CHECK(tf != NULL, "no table %s", tp);
        size_t got = fread(buf, 1, sizeof buf, tf);
        fclose(tf);
        FUZZ_CHECK(got == 4 && memcmp(buf, "a,b\n", 4) == 0, "a point left out but its rows are in the table");
    }
    rl_sweep_free(s);
    unlink(pt);
    fuzz_check_mem("results");
    return 0;
}
