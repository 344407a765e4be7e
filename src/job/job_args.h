/* The command line of a job kind, parsed before MPI starts (job_args.c): the config file,
 * the overrides in the order given (--set and the flags that are shorthands for keys), and
 * the options that are not config keys. */
#ifndef KILN_JOB_ARGS_H
#define KILN_JOB_ARGS_H
#include "kiln/job.h"

typedef struct job_args {
    const char *config_path;    /* NULL: defaults and overrides only */
    char **overrides;           /* "key=value", in order */
    int n_overrides;
    const char **options;       /* [k->n_flags]: an option flag's value, or NULL */
    int exit_now;               /* -1: run; else exit with this code (help printed, usage error) */
} job_args;

/* Parse argv (argv[0] is the kind's name). On --help, --help-config or a usage error prints
 * what it should and sets exit_now. */
kiln_status kiln_job_args_parse(const kiln_job_kind *k, int argc, char **argv, job_args *a);
void kiln_job_args_free(const kiln_job_kind *k, job_args *a);

#endif
