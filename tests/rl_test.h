/* rl_test.h -- shared helpers for the Criterion suites.
 *
 * Leak checks: Criterion 2.4 prints a failed assertion made in a suite's
 * .fini but still counts the test as passed, so a leak check there can never
 * fail a test. RL_TEST(suite, name) is Test(suite, name) whose body is
 * followed, inside the test, by rl_test_check_leak(); the suite's .init must
 * be rl_test_mark (TestSuite(x, .init = rl_test_mark)). Parameterized tests
 * call rl_test_check_leak() as their last statement.
 */
#ifndef RL_TEST_H
#define RL_TEST_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rl_tensor.h"

static size_t rl_test_mem0;

static inline void rl_test_mark(void) { rl_test_mem0 = rl_mem_current(); }

static inline void rl_test_check_leak(void)
{
    cr_assert_eq(rl_mem_current(), rl_test_mem0, "tracked allocations leaked: %zu -> %zu bytes",
                 rl_test_mem0, rl_mem_current());
}

/* A fresh directory /tmp/<prefix>XXXXXX for one test, into dir[64]. */
static inline void rl_test_tmpdir(char dir[64], const char *prefix)
{
    snprintf(dir, 64, "/tmp/%sXXXXXX", prefix);
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

/* Remove every file (and empty folder) left in dir, then dir itself. */
static inline void rl_test_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (unlink(p) != 0) rmdir(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* The whole file at path (malloc'd, NUL-terminated; *len gets its size when
 * len is not NULL), or NULL when it cannot be read. */
static inline char *rl_test_slurp(const char *path, long *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = n >= 0 ? calloc((size_t)n + 1, 1) : NULL;
    if (b && fread(b, 1, (size_t)n, fp) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(fp);
    if (b && len) *len = n;
    return b;
}

#define RL_TEST(suite, name)                                                                       \
    static void suite##_body_##name(void);                                                         \
    Test(suite, name)                                                                              \
    {                                                                                              \
        suite##_body_##name();                                                                     \
        rl_test_check_leak();                                                                      \
    }                                                                                              \
    static void suite##_body_##name(void)

#endif
