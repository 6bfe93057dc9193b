/* kernels.c -- choosing OpenBLAS's kernels at start-up (kernels.h). */
#include "kernels.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rl_blas.h"
#include "core/rl_cpu.h"

#define STATE_VAR "RL_BLAS_KERNEL"

static void reexec(char **argv)
{
    fflush(NULL);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "randlora: warning: could not re-execute to change OpenBLAS's kernels (%s); "
            "continuing on %s\n", strerror(errno), rl_blas_corename());
}

void kernels_choose(char **argv)
{
    rl_cpu_features f;
    rl_cpu_detect(&f);
    const char *tier = rl_cpu_tier_name(rl_cpu_tier_of(&f));
    const char *state = getenv(STATE_VAR), *user = getenv("OPENBLAS_CORETYPE");
    const char *core = rl_blas_corename();
    char note[256];

    if (state && strncmp(state, "trial:", 6) == 0) {
        /* the re-executed process: trust the new kernels only if SGEMM agrees */
        char orig[64];
        snprintf(orig, sizeof orig, "%s", state + 6);
        if (rl_blas_selfcheck() != RL_OK) {
            fprintf(stderr, "randlora: warning: %s\nrandlora: warning: falling back to OpenBLAS's own choice (%s)\n",
                    rl_errmsg(), orig);
            char v[128];
            snprintf(v, sizeof v, "rejected:%s:%s", orig, core);
            setenv(STATE_VAR, v, 1);
            unsetenv("OPENBLAS_CORETYPE");
            reexec(argv);
            snprintf(note, sizeof note, "%s (the SGEMM check failed and the fallback could not re-execute)", core);
            rl_blas_set_selection(note);
            return;
        }
        char v[128];
        snprintf(v, sizeof v, "chosen:%s", orig);
        setenv(STATE_VAR, v, 1);
        state = getenv(STATE_VAR);
    }
    if (state && strncmp(state, "chosen:", 7) == 0) {
        snprintf(note, sizeof note, "%s (chosen by randlora over OpenBLAS's own %s: CPU tier %s; SGEMM checked "
                 "against the naive product)", core, state + 7, tier);
    } else if (state && strncmp(state, "rejected:", 9) == 0) {
        snprintf(note, sizeof note, "%s (OpenBLAS's own choice; %s failed the SGEMM check)", core,
                 strchr(state + 9, ':') ? strchr(state + 9, ':') + 1 : "?");
    } else if (user && *user) {
        const char *best = rl_blas_upgrade(core, &f);
        snprintf(note, sizeof note, "%s (OPENBLAS_CORETYPE=%s set by the user; CPU tier %s%s%s%s)", core, user, tier,
                 best ? ": below it, unset the variable to let randlora choose " : "", best ? best : "",
                 best ? " kernels" : "");
    } else if (state && strcmp(state, "off") == 0) {
        snprintf(note, sizeof note, "%s (OpenBLAS's own choice; %s=off)", core, STATE_VAR);
    } else {
        const char *best = rl_blas_upgrade(core, &f);
        if (best) {
            char v[128];
            snprintf(v, sizeof v, "trial:%s", core);
            setenv(STATE_VAR, v, 1);
            setenv("OPENBLAS_CORETYPE", best, 1);
            reexec(argv);
            unsetenv("OPENBLAS_CORETYPE");
            unsetenv(STATE_VAR);
            snprintf(note, sizeof note, "%s (OpenBLAS's own choice, below the CPU's tier %s: re-execution failed)", core,
                     tier);
        } else {
            snprintf(note, sizeof note, "%s (OpenBLAS's own choice; CPU tier %s)", core, tier);
        }
    }
    rl_blas_set_selection(note);
}
