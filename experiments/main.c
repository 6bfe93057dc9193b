/* main.c -- `randlora <command>`: the command-line front end.
 * Each command lives in its own experiments/<name>.c; lib/ never exits, so
 * exit codes are decided here and in the commands (commands.h): 0 success,
 * 1 a check failed, 2 bad usage or input, 3 out of memory or a failed write. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "kernels.h"
#include "sweep.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} command;

/* `randlora sweep <name>`: experiment drivers that write results/<name>/. */
static const command sweeps[] = {
    {"rank", sweep_rank, "rank of ΔW over r, bases, shapes and training (results/rank/)"},
    {"cost", sweep_cost, "time and memory of a training step (results/cost/)"},
    {"expressivity", sweep_expressivity, "fit an update of known spectrum at matched budgets"},
    {"finetune", sweep_finetune, "pretrain on task A, adapt to task B with every method (results/finetune/)"},
    {"similarity", sweep_similarity, "CKA of adapted models' activations with full fine-tuning's"},
    {"teacher", sweep_teacher, "learn a known update dW* through data: teacher-student test (results/teacher/)"},
    {"vit", sweep_vit, "adapt a pretrained ViT to shifted tasks with every method (results/vit/)"},
};

static const command commands[] = {
    {"parity", cmd_parity, "check the library (or --candidate: another implementation) against PEFT reference files"},
    {"fixture", cmd_fixture, "write a new reference file (peft-parity-v1) computed by this implementation"},
    {"params", cmd_params, "trainable parameters and checkpoint sizes on real architectures"},
    {"rank", cmd_rank, "numerical rank of each layer's ΔW in a parity file"},
    {"inspect", cmd_inspect, "one row per module of a PEFT adapter directory: rank, norms"},
    {"merge", cmd_merge, "add a PEFT adapter's ΔW to base weights (safetensors)"},
    {"export", cmd_export, "write a PEFT adapter directory back (PEFT-loadable)"},
    {"bench", cmd_bench, "time one training step of an adapted layer"},
    {"report", cmd_report, "write results/REPORT.md and the plots from results/"},
    {"sweep", NULL, "run an experiment grid: randlora sweep <name> [--help]"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: randlora <command> [options]   (randlora <command> --help)\n\ncommands:\n");
    for (size_t i = 0; i < COUNT(commands); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nsweeps:\n");
    for (size_t i = 0; i < COUNT(sweeps); i++)
        if (sweeps[i].name) fprintf(out, "  sweep %-8s %s\n", sweeps[i].name, sweeps[i].help);
    fprintf(out, "\nexit: 0 success, 1 a check failed, 2 bad usage or input (including over the memory\n"
                 "budget, --max-memory BYTES), 3 out of memory or an output that could not be written\n");
}

static int run_sweep(int argc, char **argv)
{
    if (argc >= 2)
        for (size_t i = 0; i < COUNT(sweeps); i++)
            if (sweeps[i].name && strcmp(argv[1], sweeps[i].name) == 0)
                return sweeps[i].run(argc - 1, argv + 1);
    fprintf(stderr, "randlora sweep: %s '%s'\n", argc >= 2 ? "unknown experiment" : "missing experiment",
            argc >= 2 ? argv[1] : "");
    usage(stderr);
    return 2;
}

static int dispatch(int argc, char **argv);

int main(int argc, char **argv)
{
    kernels_choose(argv); /* may re-execute the command once, on better BLAS kernels */
    sweep_mpi_init(&argc, &argv); /* no-op without make MPI=1 */
    int rc = dispatch(argc, argv);
    sweep_mpi_finalize();
    return rc;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "sweep") == 0) return run_sweep(argc - 1, argv + 1);
    for (size_t i = 0; i < COUNT(commands); i++)
        if (commands[i].run && strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "randlora: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
