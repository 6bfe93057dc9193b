/* kernels.h -- the front end's choice of OpenBLAS kernels (lib/core/rl_blas.h).
 *
 * kernels_choose(argv) runs first in main. When OPENBLAS_CORETYPE is unset
 * (or empty) and OpenBLAS picked a core of a lower vector tier than this CPU
 * supports (rl_blas_upgrade: by cpuid features, never by vendor), it sets
 * OPENBLAS_CORETYPE to the best core of the build and re-executes the same
 * command once (/proc/self/exe; OpenBLAS reads the variable only when it
 * loads). The new process finds RL_BLAS_KERNEL=trial:<OpenBLAS's core>,
 * checks SGEMM against the naive product (rl_blas_selfcheck) and either keeps
 * the kernels (RL_BLAS_KERNEL=chosen:..., which child processes inherit with
 * OPENBLAS_CORETYPE, so they skip the check) or warns and re-executes once
 * more on OpenBLAS's own choice (RL_BLAS_KERNEL=rejected:...). If exec fails
 * it warns and carries on with the kernels it has. RL_BLAS_KERNEL=off turns
 * the choice off. Either way rl_blas_selection() then says what happened,
 * for bench, manifests and the report.
 */
#ifndef RL_KERNELS_H
#define RL_KERNELS_H

void kernels_choose(char **argv);

#endif
