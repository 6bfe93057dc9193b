/* fuzz_common.h -- what the libFuzzer harnesses of tests/fuzz/ share.
 *
 * Every harness feeds one reader hostile bytes and checks, beyond what
 * ASan and UBSan catch:
 *   - the tracked allocator (rl_mem_current) is back to zero after the call,
 *     success or failure: nothing tracked leaks on any path;
 *   - a call that fails leaves its output empty (NULL pointer, zeroed
 *     struct), so a caller can never use half a result.
 * A violation aborts with a message, which libFuzzer reports as a crash
 * and saves the input (build/fuzz/crashes/). A crash found later becomes a
 * regression test with its input.
 *
 * Readers that take paths get the input through files in a per-process
 * directory (under /dev/shm when it exists); inputs holding several files
 * separate them with FUZZ_SEP. The memory budget (lib/core/rl_budget.h) is
 * set to 64 MB, so that inputs asking for more are refused as a user's
 * would be, and libFuzzer's own memory limits are never what stops a run.
 * Built and run by `make fuzz FUZZ_S=N` (clang, -fsanitize=fuzzer).
 */
#ifndef RL_FUZZ_COMMON_H
#define RL_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rl_budget.h"
#include "core/rl_err.h"
#include "core/rl_tensor.h"

#define FUZZ_SEP "\n--RLFUZZ--\n"
#define FUZZ_BUDGET ((size_t)64 << 20)

static char fuzz_dir[128];

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz check failed: %s: ", #cond);                                     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Remove the per-process directory when libFuzzer exits. */
static void fuzz_cleanup(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir);
}

/* Make the per-process directory and set the budget (LLVMFuzzerInitialize). */
static inline void fuzz_init(const char *name)
{
    struct stat sb;
    const char *root = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/rl_fuzz_%s_%ld", root, name, (long)getpid());
    mkdir(fuzz_dir, 0700);
    atexit(fuzz_cleanup);
    rl_budget_set(FUZZ_BUDGET);
}

/* The harness's LLVMFuzzerInitialize: the per-process directory and the
 * budget (fuzz_init), then `extra` (a statement; may be empty). */
#define FUZZ_INITIALIZE(name, extra)                                                               \
    int LLVMFuzzerInitialize(int *argc, char ***argv);                                             \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                                 \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                                              \
    {                                                                                              \
        (void)argc;                                                                                \
        (void)argv;                                                                                \
        fuzz_init(name);                                                                           \
        extra;                                                                                     \
        return 0;                                                                                  \
    }

/* fuzz_dir/<name> into buf. */
static inline const char *fuzz_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", fuzz_dir, name);
    return buf;
}

/* Write (or, with data NULL and len SIZE_MAX, remove) fuzz_dir/<name>. */
static inline void fuzz_write(const char *name, const uint8_t *data, size_t len)
{
    char p[256];
    fuzz_path(p, sizeof p, name);
    if (!data && len == SIZE_MAX) {
        unlink(p);
        return;
    }
    FILE *fp = fopen(p, "wb");
    FUZZ_CHECK(fp != NULL, "cannot write %s", p);
    if (len) FUZZ_CHECK(fwrite(data, 1, len, fp) == len, "short write to %s", p);
    fclose(fp);
}

/* Split data at FUZZ_SEP into at most n parts; returns the count found
 * (parts beyond it are empty). */
static inline int fuzz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, int n)
{
    const size_t sl = strlen(FUZZ_SEP);
    int k = 0;
    size_t at = 0;
    for (int i = 0; i < n; i++) part[i] = data + size, len[i] = 0;
    while (k < n) {
        size_t end = size;
        if (k < n - 1)
            for (size_t j = at; j + sl <= size; j++)
                if (memcmp(data + j, FUZZ_SEP, sl) == 0) {
                    end = j;
                    break;
                }
        part[k] = data + at;
        len[k] = end - at;
        k++;
        if (end == size) break;
        at = end + sl;
    }
    return k;
}

/* The tracked allocator must be back to where it was (zero: the harness
 * holds nothing between calls). */
static inline void fuzz_check_mem(const char *what)
{
    FUZZ_CHECK(rl_mem_current() == 0, "%s: %zu tracked bytes still held after the call", what, rl_mem_current());
}

#endif
