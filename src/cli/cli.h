/* The tools of `kiln` that are not job kinds, one file each; main.c dispatches them and the
 * job table. Each returns a process exit code and prints its own --help. */
#ifndef KILN_CLI_H
#define KILN_CLI_H
#include "kiln/status.h"

int kiln_cmd_data(int argc, char **argv);
int kiln_cmd_ckpt(int argc, char **argv);
int kiln_cmd_topo(int argc, char **argv);
int kiln_cmd_registry(int argc, char **argv);

/* Print the recorded error ("kiln <cmd>: error: ...", traceback with KILN_LOG=debug) and
 * return the exit code for status st. */
int kiln_cli_fail(const char *cmd, kiln_status st);
/* 1 if argv[i] is -h or --help. */
int kiln_cli_is_help(const char *arg);

#endif
