/* test_mpi.c -- the sharded and MPI paths give the rows a single process gives.
 *
 * Runs the CLI as a subprocess (build/randlora, and build/mpi/randlora when
 * `make MPI=1` built it) on the first 12 points of the expressivity grid,
 * which has no timing columns, so rows must be identical. The MPI test is
 * skipped, with the reason, when the MPI build or mpirun is missing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rl_test.h"


static void run(const char *cmd) { rl_test_sh_ok(cmd, 120); }

static char *single_run(const char *tag)
{
    char cmd[512], path[256];
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/rl_%s_%d && build/randlora sweep expressivity --limit 12 --quiet "
                              "--results /tmp/rl_%s_%d", tag, (int)getpid(), tag, (int)getpid());
    run(cmd);
    snprintf(path, sizeof path, "/tmp/rl_%s_%d/runs.csv", tag, (int)getpid());
    char *s = rl_test_slurp(path, NULL);
    cr_assert_not_null(s);
    return s;
}

Test(sweep, shards_and_resume_give_the_same_rows)
{
    if (access("build/randlora", X_OK) != 0) cr_skip_test("build/randlora not built");
    char *one = single_run("one");
    char cmd[512], path[256];
    int pid = (int)getpid();
    /* two shards into one directory, then a rerun that must skip everything */
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/rl_sh_%d && build/randlora sweep expressivity --limit 12 --quiet --shard 0/2 "
                              "--results /tmp/rl_sh_%d && build/randlora sweep expressivity --limit 12 --quiet --shard 1/2 "
                              "--results /tmp/rl_sh_%d", pid, pid, pid);
    run(cmd);
    snprintf(path, sizeof path, "/tmp/rl_sh_%d/runs.csv", pid);
    char *two = rl_test_slurp(path, NULL);
    cr_assert_not_null(two);
    cr_assert_str_eq(two, one, "shards 0/2 + 1/2 differ from one process");
    snprintf(cmd, sizeof cmd, "build/randlora sweep expressivity --limit 12 --results /tmp/rl_sh_%d 2>/tmp/rl_sh_%d.log", pid, pid);
    run(cmd);
    snprintf(path, sizeof path, "/tmp/rl_sh_%d.log", pid);
    char *log = rl_test_slurp(path, NULL);
    cr_assert(log && strstr(log, "(12 already done)"), "a rerun recomputed points: %s", log ? log : "");
    free(log);
    free(two);
    free(one);
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/rl_one_%d /tmp/rl_sh_%d /tmp/rl_sh_%d.log", pid, pid, pid);
    run(cmd);
}

Test(sweep, mpirun_two_ranks_give_the_same_rows)
{
    if (access("build/mpi/randlora", X_OK) != 0)
        cr_skip_test("MPI not built: `make MPI=1` (needs libopenmpi-dev) builds build/mpi/randlora");
    if (system("command -v mpirun >/dev/null 2>&1") != 0) cr_skip_test("mpirun not on PATH (openmpi-bin)");
    char *one = single_run("mpi1");
    char cmd[512], path[256];
    int pid = (int)getpid();
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/rl_mpi_%d && mpirun --allow-run-as-root --oversubscribe -np 2 "
                              "build/mpi/randlora sweep expressivity --limit 12 --quiet --results /tmp/rl_mpi_%d", pid, pid);
    run(cmd);
    snprintf(path, sizeof path, "/tmp/rl_mpi_%d/runs.csv", pid);
    char *two = rl_test_slurp(path, NULL);
    cr_assert_not_null(two, "rank 0 did not assemble the table");
    cr_assert_str_eq(two, one, "mpirun -np 2 differs from one process");
    free(two);
    free(one);
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/rl_mpi1_%d /tmp/rl_mpi_%d", pid, pid);
    run(cmd);
}
