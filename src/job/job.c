/* The life of a job, the same for every kind: arguments, MPI, the config (loaded and
 * validated on every rank before anything is written), signals, placement, the backend, the
 * kind's run, and one policy that turns the outcome into an exit code on every rank. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "job_args.h"
#include "kiln/job.h"
#include "kiln/log.h"
#include "kiln/fs.h"
#include "kiln/runtime.h"
#include "kiln/slurm.h"

struct kiln_job {
    const kiln_job_kind *kind;
    const job_args *args;
    void *config;
    char *config_yaml;
    kiln_comm *comm;
    const kiln_backend *be;
    kiln_rank_setup place;
    int failure_agreed;         /* the config failed, and every rank knows */
};

int kiln_job_exit_code(kiln_status st)
{
    switch (st) {
    case KILN_OK: return KILN_EXIT_DONE;
    case KILN_ERR_INTERRUPTED: return KILN_EXIT_PREEMPTED;
    case KILN_ERR_CONFIG:
    case KILN_ERR_ARG:
    case KILN_ERR_DATA: return KILN_EXIT_BAD_INPUT;
    default: return KILN_EXIT_FAILED;
    }
}

void *kiln_job_config(kiln_job *j) { return j->config; }
const char *kiln_job_config_yaml(const kiln_job *j) { return j->config_yaml; }
kiln_comm *kiln_job_comm(kiln_job *j) { return j->comm; }
const kiln_backend *kiln_job_backend(const kiln_job *j) { return j->be; }
const kiln_rank_setup *kiln_job_placement(const kiln_job *j) { return &j->place; }
int kiln_job_is_writer(const kiln_job *j) { return kiln_comm_rank(j->comm, KILN_AXIS_WORLD) == 0; }

const char *kiln_job_option(const kiln_job *j, const char *flag)
{
    for (int f = 0; f < j->kind->n_flags; f++)
        if (!j->kind->flags[f].key && !strcmp(j->kind->flags[f].flag, flag))
            return j->args->options[f];
    return NULL;
}

kiln_status kiln_job_agree(kiln_job *j, kiln_status st)
{
    return kiln_comm_agree(j->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
}

kiln_status kiln_job_stop_requested(kiln_job *j, int *stop)
{
    double any = kiln_signals_pending() != 0;
    KILN_CHECK(kiln_comm_allreduce_f64(j->comm, KILN_AXIS_WORLD, &any, 1));
    *stop = any > 0;
    return KILN_OK;
}

static void print_error(const kiln_job *j)
{
    fprintf(stderr, "kiln %s: error: %s\n", j->kind->name, kiln_error_message());
    if (kiln_log_enabled(KILN_LOG_DEBUG)) fprintf(stderr, "%s", kiln_error_traceback());
}

/* The config, on every rank: a bad one fails the same way everywhere, so only rank 0 says so
 * unless some ranks accepted it (a file one node cannot read), when each failing rank does. */
static kiln_status load_config(kiln_job *j, kiln_job_resources *res, int *quiet)
{
    const kiln_job_kind *k = j->kind;
    j->config = calloc(1, k->config_size);
    kiln_status st = j->config ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "config of %s", k->name);
    if (st == KILN_OK)
        st = kiln_config_load(k->schema, j->config, j->args->config_path,
                              (const char *const *)j->args->overrides, j->args->n_overrides);
    if (st == KILN_OK && k->validate) st = k->validate(j->config, res);
    if (st == KILN_OK) {
        j->config_yaml = kiln_config_to_yaml(k->schema, j->config);
        if (!j->config_yaml) st = KILN_ERROR(KILN_ERR_NOMEM, "config of %s as YAML", k->name);
    }
    double failed = st != KILN_OK;
    kiln_status sync = kiln_comm_allreduce_f64(j->comm, KILN_AXIS_WORLD, &failed, 1);
    int world = kiln_comm_size(j->comm, KILN_AXIS_WORLD);
    *quiet = st != KILN_OK && sync == KILN_OK && failed == world &&
             kiln_comm_rank(j->comm, KILN_AXIS_WORLD) != 0;
    if (sync != KILN_OK) return st != KILN_OK ? st : sync;
    j->failure_agreed = failed > 0; /* every rank knows */
    if (st != KILN_OK) return st;
    if (failed > 0)
        return KILN_ERROR(KILN_ERR_CONFIG, "%.0f other rank%s could not load the config (see %s "
                          "message)", failed, failed > 1 ? "s" : "", failed > 1 ? "their" : "its");
    return KILN_OK;
}

/* Placement and the backend, which can fail on one rank alone (no GPU on one node). */
static kiln_status start_rank(kiln_job *j, const kiln_job_resources *res)
{
    const kiln_placement_config *p = res->placement;
    kiln_status st = kiln_topo_place_rank(p ? p->bind : 0, p ? p->cores_per_rank : 0,
                                          res->threads, &j->place);
    if (st == KILN_OK && res->backend)
        st = kiln_backend_select(res->backend, res->precision ? res->precision : "fp32",
                                 j->place.gpu, &j->be);
    KILN_CHECK(kiln_job_agree(j, st));
    if (res->backend && res->device_collectives)
        KILN_CHECK(kiln_job_agree(j, kiln_comm_attach_device(j->comm, j->be)));
    if (kiln_log_enabled(KILN_LOG_INFO))
        fprintf(stderr, "# resolved config (%s backend, %d threads)\n%s",
                j->be ? j->be->name : "no", j->place.threads, j->config_yaml);
    return KILN_OK;
}

/* How long to wait for another holder of the output: a requeued Slurm job may start before its
 * old self has died. */
static double output_wait_s(void)
{
    const char *s = getenv("KILN_OUTPUT_WAIT");
    if (s && *s) return atof(s);
    return kiln_slurm()->restart_count > 0 ? 120.0 : 0.0;
}

/* Rank 0 holds the kind's output for the whole run; every rank learns whether it could. */
static kiln_status hold_output(kiln_job *j, kiln_output_lock **lock)
{
    const char *what = "output", *path = j->kind->output ? j->kind->output(j, &what) : NULL;
    kiln_status st = KILN_OK;
    if (path && path[0] && kiln_job_is_writer(j))
        st = kiln_output_lock_acquire(path, what, output_wait_s(), lock);
    return kiln_job_agree(j, st);
}

static kiln_status run_job(kiln_job *j, int *quiet)
{
    kiln_job_resources res = {0};
    KILN_CHECK(load_config(j, &res, quiet));
    kiln_signals_install();
    KILN_CHECK(start_rank(j, &res));
    kiln_output_lock *lock = NULL;
    KILN_CHECK(hold_output(j, &lock));
    kiln_status st = j->kind->run(j);
    kiln_output_lock_release(lock);
    return st;
}

/* A kind made of commands (`kiln index build|search|eval`): the command named, or the usage. */
static int run_command(const kiln_job_kind *k, int argc, char **argv)
{
    for (int c = 0; argc > 1 && c < k->n_commands; c++)
        if (!strcmp(argv[1], k->commands[c]->command)) return kiln_job_main(k->commands[c], argc - 1, argv + 1);
    for (int t = 0; argc > 1 && t < k->n_tools; t++) /* `kiln features diff A B`: no MPI, no config */
        if (!strcmp(argv[1], k->tools[t].name)) return k->tools[t].main(argc - 1, argv + 1);
    /* the commands of a kind share one config schema: any of them lists it */
    if (argc > 1 && !strcmp(argv[1], "--help-config")) return kiln_job_main(k->commands[0], argc, argv);
    int help = argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
    FILE *out = help ? stdout : stderr;
    if (argc > 1 && !help) fprintf(out, "kiln %s: unknown command '%s'\n\n", k->name, argv[1]);
    fputs(k->usage, out);
    return help ? KILN_EXIT_DONE : KILN_EXIT_BAD_INPUT;
}

int kiln_job_main(const kiln_job_kind *k, int argc, char **argv)
{
    if (k->n_commands) return run_command(k, argc, argv);
    for (int t = 0; argc > 1 && t < k->n_tools; t++)
        if (!strcmp(argv[1], k->tools[t].name)) return k->tools[t].main(argc - 1, argv + 1);
    job_args args;
    if (kiln_job_args_parse(k, argc, argv, &args) != KILN_OK) {
        fprintf(stderr, "kiln %s: error: %s\n", k->name, kiln_error_message());
        kiln_job_args_free(k, &args);
        return KILN_EXIT_FAILED;
    }
    if (args.exit_now >= 0) {
        kiln_job_args_free(k, &args);
        return args.exit_now;
    }
    kiln_job j = {.kind = k, .args = &args};
    kiln_status st = kiln_comm_init(&argc, &argv, 1, &j.comm);
    int quiet = 0;
    if (st == KILN_OK) {
        kiln_log_init(kiln_comm_rank(j.comm, KILN_AXIS_WORLD));
        st = run_job(&j, &quiet);
    }
    int rc = kiln_job_exit_code(st);
    if (st != KILN_OK && !quiet) print_error(&j);
    /* a rank that failed alone would leave the others blocked in a collective */
    int agreed = j.failure_agreed || kiln_comm_failure_agreed(j.comm);
    if (st != KILN_OK && st != KILN_ERR_INTERRUPTED && !agreed)
        kiln_comm_abort(j.comm, rc);
    if (j.comm) kiln_comm_finalize(j.comm);
    free(j.config);
    free(j.config_yaml);
    kiln_job_args_free(k, &args);
    return rc;
}
