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
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
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

/* Write text to dir/name (created or replaced). */
static inline void rl_test_write(const char *dir, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert(f, "%s: %s", p, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0, "%s", p);
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

/* Do two files hold the same bytes? (cmp -s) */
static inline bool rl_test_same_file(const char *a, const char *b)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

/* ---- running the CLI as a subprocess ----
 *
 * rl_test_cli runs the randlora binary built beside this runner
 * (<dir of /proc/self/exe>/../randlora: build/randlora for build/tests/run,
 * build/asan/randlora for make asan) with args (NULL-terminated, without the
 * program name), captures stdout and stderr together, and kills it after
 * timeout_s seconds. Limits for the child:
 *   as_bytes    RLIMIT_AS (0: none). ASan reserves terabytes of address
 *               space and cannot start under such a limit, so sanitizer builds
 *               pass the budget the limit would have given as --max-memory
 *               (half of as_bytes, placed after the command words) instead;
 *   fsize_bytes RLIMIT_FSIZE (0: none), with SIGXFSZ ignored, so a write past
 *               it fails with EFBIG as on a full disk.
 * The output is checked for sanitizer reports, which fail the test. */
#if defined(__SANITIZE_ADDRESS__)
#define RL_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RL_TEST_ASAN 1
#endif
#endif
#ifndef RL_TEST_ASAN
#define RL_TEST_ASAN 0
#endif

typedef struct {
    int code;            /* exit status; -1 if killed or not run */
    int signal;          /* the signal that ended it, or 0 */
    bool timed_out;
    double seconds;      /* wall time */
    char out[16384];     /* stdout + stderr (the first 16 kB) */
} rl_test_run;

static inline const char *rl_test_cli_path(void)
{
    static char path[4096];
    if (!path[0]) {
        char self[4000];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        cr_assert(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        *slash = '\0';
        snprintf(path, sizeof path, "%s/../randlora", self);
    }
    cr_assert_eq(access(path, X_OK), 0, "%s is not built (make builds it with the tests)", path);
    return path;
}

static inline void rl_test_cli(rl_test_run *r, const char *const *args, size_t as_bytes, size_t fsize_bytes,
                               double timeout_s)
{
    memset(r, 0, sizeof *r);
    r->code = -1;
    const char *argv[64];
    char mm[32];
    int n = 0;
    argv[n++] = rl_test_cli_path();
    int words = args[0] && strcmp(args[0], "sweep") == 0 ? 2 : 1;
    for (int k = 0; args[k]; k++) {
        if (RL_TEST_ASAN && as_bytes && k == words) {
            snprintf(mm, sizeof mm, "%zu", as_bytes / 2);
            argv[n++] = "--max-memory";
            argv[n++] = mm;
        }
        cr_assert(n < 60, "too many arguments");
        argv[n++] = args[k];
    }
    if (RL_TEST_ASAN && as_bytes && n <= words) {
        snprintf(mm, sizeof mm, "%zu", as_bytes / 2);
        argv[n++] = "--max-memory";
        argv[n++] = mm;
    }
    argv[n] = NULL;
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        if (as_bytes && !RL_TEST_ASAN) {
            struct rlimit rl = {as_bytes, as_bytes};
            setrlimit(RLIMIT_AS, &rl);
        }
        if (fsize_bytes) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {fsize_bytes, fsize_bytes};
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double el = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        int left_ms = (int)((timeout_s - el) * 1000.0);
        if (left_ms <= 0) {
            r->timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd pf = {fd[0], POLLIN, 0};
        int pr = poll(&pf, 1, left_ms);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) continue;
        char tmp[4096];
        ssize_t got = read(fd[0], tmp, sizeof tmp);
        if (got <= 0) break;
        size_t keep = (size_t)got < sizeof r->out - 1 - len ? (size_t)got : sizeof r->out - 1 - len;
        memcpy(r->out + len, tmp, keep);
        len += keep;
    }
    r->out[len] = '\0';
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (WIFEXITED(status)) r->code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r->signal = WTERMSIG(status);
    cr_assert(!strstr(r->out, "Sanitizer") && !strstr(r->out, "runtime error:"), "sanitizer report from %s:\n%s",
              args[0], r->out);
}

/* Run and expect exit code `code`; `must` (may be NULL) in the output. */
#define RL_TEST_EXPECT_EXIT(r, code_, must)                                                        \
    do {                                                                                           \
        cr_assert(!(r)->timed_out, "timed out after %.1f s:\n%s", (r)->seconds, (r)->out);          \
        cr_assert_eq((r)->code, (code_), "exit %d (signal %d), want %d:\n%s", (r)->code, (r)->signal, \
                     (code_), (r)->out);                                                          \
        if ((must) != NULL)                                                                        \
            cr_assert(strstr((r)->out, (must)) != NULL, "output lacks '%s':\n%s", (const char *)(must), \
                      (r)->out);                                                                   \
    } while (0)

/* Run a shell command under coreutils' timeout (killed after timeout_s
 * seconds) and return its exit status (124: it timed out). Tests bound
 * their subprocesses this way instead of Criterion's .timeout, which leaks
 * 48 bytes in the runner (LeakSanitizer, make asan) once tests of two
 * suites carry one. */
static inline int rl_test_sh(const char *cmd, int timeout_s)
{
    size_t n = strlen(cmd) * 4 + 64;
    char *q = malloc(n), *p = q;
    cr_assert_not_null(q);
    p += snprintf(p, n, "timeout -k 5 %d sh -c '", timeout_s);
    for (const char *c = cmd; *c; c++) { /* quote for the single-quoted sh -c argument */
        if (*c == '\'') p += snprintf(p, n - (size_t)(p - q), "'\\''");
        else *p++ = *c;
    }
    snprintf(p, n - (size_t)(p - q), "'");
    int rc = system(q);
    free(q);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

/* rl_test_sh that must succeed. */
static inline void rl_test_sh_ok(const char *cmd, int timeout_s)
{
    int rc = rl_test_sh(cmd, timeout_s);
    cr_assert_eq(rc, 0, "%s (exit %d): %s", rc == 124 ? "timed out" : "failed", rc, cmd);
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
