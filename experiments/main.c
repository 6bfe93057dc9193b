/* main.c -- `randlora <command>`: the command-line front end.
 * Each command lives in its own experiments/<name>.c; lib/ never exits, so
 * exit codes are decided here: 0 success, 1 a check failed, 2 bad usage or
 * input. */
#include <stdio.h>
#include <string.h>

#include "parity.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"parity", cmd_parity, "check the library against PEFT reference files"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: randlora <command> [options]   (randlora <command> --help)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "randlora: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
