/* The job runtime: every job kind (train, infer, eval, and the kinds to come) is one entry of
 * a table, PETSc-style, and one kiln_job_main does what each of them needs:
 *
 *   arguments   `kiln NAME [CONFIG.yaml] [--set key=value ...] [flags]`, `--help` (the kind's
 *               text), `--help-config` (every key of its composed schema);
 *   config      defaults, the YAML file, then every --set and flag shorthand in order;
 *   start-up    MPI, logging (info on world rank 0), SIGTERM/SIGUSR1 as stop requests,
 *               placement (cores, threads, GPU), the backend;
 *   policy      one exit code per outcome, agreed between the ranks in one place.
 *
 * Exit codes (KILN_EXIT_*): 0 done; 1 failed; 2 bad input or usage (config, arguments, a
 * dataset or model that does not fit), nothing written; 75 stopped by a signal at a safe
 * point, to be resumed by running the same command again.
 *
 * A kind's run sees the loaded config, the communicator, the backend and its placement
 * through the accessors below; it agrees with the other ranks before each collective step
 * (kiln_job_agree) so that one rank's failure ends every rank at the same point. A failure
 * that was not agreed (a rank failing alone while others wait in a collective) ends the whole
 * job through MPI_Abort with the failing rank's exit code. docs/develop.md: adding a kind. */
#ifndef KILN_JOB_H
#define KILN_JOB_H
#include <stddef.h>
#include "kiln/backend.h"
#include "kiln/comm.h"
#include "kiln/config.h"
#include "kiln/status.h"
#include "kiln/topo.h"

#define KILN_EXIT_DONE 0
#define KILN_EXIT_FAILED 1
#define KILN_EXIT_BAD_INPUT 2
/* KILN_EXIT_PREEMPTED (75) is in kiln/runtime.h */

/* A command-line flag of a kind: a shorthand for a config key (`--batch 64` sets eval.batch),
 * or, with key NULL, an option of the run itself that is not part of the config (train's
 * `--resume`), read with kiln_job_option. */
typedef struct kiln_job_flag {
    const char *flag;           /* "--batch" */
    const char *key;            /* "eval.batch", or NULL: an option */
    const char *fallback;       /* an option's value when not given (NULL: none) */
    int required;               /* an option that must be given */
} kiln_job_flag;

/* What the runtime sets up for a kind, read from its config by validate. */
typedef struct kiln_job_resources {
    const kiln_placement_config *placement; /* NULL: no binding, default threads */
    int threads;                /* 0 = as many as the rank's cores */
    const char *backend;        /* backend.name; NULL: the kind computes nothing */
    const char *precision;      /* "fp32" (NULL) or "bf16" */
    int device_collectives;     /* collectives on device buffers (NCCL on a GPU) */
} kiln_job_resources;

typedef struct kiln_job kiln_job;

/* A command of a kind that is not a run of it (`kiln sweep status DIR`): argv[0] is its name. */
typedef struct kiln_job_tool {
    const char *name;
    int (*main)(int argc, char **argv);
} kiln_job_tool;

typedef struct kiln_job_kind {
    const char *name;           /* `kiln NAME` */
    const char *summary;        /* one line for `kiln --help` */
    const char *usage;          /* `kiln NAME --help`: synopsis, what it does, an example */
    const kiln_cfg_schema *schema;
    size_t config_size;         /* sizeof the struct the schema fills */
    int config_positional;      /* 1: CONFIG.yaml is required; 0: optional */
    const kiln_job_flag *flags;
    int n_flags;
    /* Checks that span keys and fills *res; may complete the config (expand %j in a path, pin
     * an alias) before it is printed and stored. Runs on every rank, before any output. */
    kiln_status (*validate)(void *config, kiln_job_resources *res);
    /* The output this run holds exclusively for its whole life (a file or a directory; NULL:
     * none), and in *what the key or flag that names it. A second run on the same output fails
     * at once naming the holder; a requeued Slurm job waits up to two minutes for its old self
     * to die first (KILN_OUTPUT_WAIT seconds overrides). */
    const char *(*output)(kiln_job *job, const char **what);
    /* The job itself, on every rank. */
    kiln_status (*run)(kiln_job *job);
    /* `kiln NAME TOOL ...` runs a tool instead (no MPI, no config). */
    const kiln_job_tool *tools;
    int n_tools;
    /* A kind made of commands, each a kind of its own (`kiln index build` is the kind whose
     * command is "build"): `kiln NAME COMMAND ...` runs it; the parent has only name, summary,
     * usage, these and tools. The commands share one config schema (`kiln NAME --help-config` lists it). */
    const struct kiln_job_kind *const *commands;
    int n_commands;
    const char *command;        /* a command's own word ("build"); NULL for a top-level kind */
} kiln_job_kind;

/* `kiln NAME ...` for kind k (argv[0] is NAME): returns the process exit code. */
int kiln_job_main(const kiln_job_kind *k, int argc, char **argv);

/* The exit code for a status (0, 1, 2 or 75 as above). */
int kiln_job_exit_code(kiln_status st);

/* ---- what run sees ---- */
void *kiln_job_config(kiln_job *j);
/* The resolved config as YAML (what is printed and stored with outputs). */
const char *kiln_job_config_yaml(const kiln_job *j);
kiln_comm *kiln_job_comm(kiln_job *j);
const kiln_backend *kiln_job_backend(const kiln_job *j);
const kiln_rank_setup *kiln_job_placement(const kiln_job *j);
/* An option flag's value (kiln_job_flag with key NULL), or its fallback. */
const char *kiln_job_option(const kiln_job *j, const char *flag);
/* 1 on the one rank of the whole world that writes shared files: summaries, metrics, the
 * registry. (Rank 0 of a data-parallel group is not enough once pipeline stages exist.) */
int kiln_job_is_writer(const kiln_job *j);

/* Every rank learns whether st failed on any rank: returns st where it failed, an error
 * pointing at the failing rank elsewhere, KILN_OK when none failed. A failure agreed here
 * ends every rank together (no MPI_Abort). Collective over the whole world. */
kiln_status kiln_job_agree(kiln_job *j, kiln_status st);
/* Collective: *stop = 1 when any rank received SIGTERM/SIGUSR1, so that all stop at the same
 * safe point. */
kiln_status kiln_job_stop_requested(kiln_job *j, int *stop);

#endif
