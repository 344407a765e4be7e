/* `kiln index` in the job table: the commands build, search and eval, each a kind of its own
 * on the job runtime (MPI, placement, exit codes, the exclusive output), sharing one schema. */
#include <stdio.h>
#include <string.h>
#include "kiln/runtime.h"
#include "ann_internal.h"

#define STR2(x) #x
#define STR(x) STR2(x)

static const char build_usage[] =
    "usage: kiln index build [CONFIG.yaml] --input FILE.h5:/dataset --output INDEX.h5\n"
    "                        [--kind flat|ivf-flat|ivf-pq|hnsw] [--metric l2|ip|cosine] [--nlist N]\n"
    "                        [--m M] [--ef-construction EF] [--set index.shards=S]\n"
    "                        [--set key=value ...] [--help-config]\n\n"
    "Builds a nearest-neighbour index of the rows of a float32 or uint8 [N,D] dataset (embeddings\n"
    "from kiln infer, features, pixels). flat: exact search by GEMM. ivf-flat: k-means (on the\n"
    "backend's GEMM, over the ranks) into index.nlist lists, of which a search probes nprobe.\n"
    "hnsw: a layered graph (index.m links a node, beam index.ef_construction while inserting),\n"
    "built on the threads of rank 0, searched with a beam of ef: the fastest at high recall.\n"
    "The ranks (mpiexec -n R) share the training sample and the rows; the result is the same on\n"
    "any number of ranks. INDEX.h5 appears whole or not at all; rerun the same command after a\n"
    "kill (k-means, PQ training and HNSW insertion continue from what they saved).\n"
    "index.shards=S builds S row ranges as indexes of their own, gcd(R, S) rank groups at once\n"
    "(HNSW on many ranks), under INDEX.h5 as their manifest; a search merges their top k.\n"
    "docs/index.md describes the layouts.\n"
    "Exit codes: 0 done, 1 failed, 2 bad input, " STR(KILN_EXIT_PREEMPTED) " stopped by a signal.\n\n"
    "example:\n"
    "  mpiexec -n 2 kiln index build --input data/fashion-mnist.h5:/train/x --output fmnist.index.h5 \\\n"
    "      --set index.attributes=label=data/fashion-mnist.h5:/train/y\n";

static const char search_usage[] =
    "usage: kiln index search [CONFIG.yaml] --index INDEX --queries FILE.h5:/dataset --output OUT.h5\n"
    "                         [--k K] [--nprobe N | --ef EF] [--filter NAME=V1,V2] [--set key=value ...]\n\n"
    "The k nearest indexed rows of every query: OUT.h5 holds ids int64 [Q,k] (input row numbers;\n"
    "-1 where fewer qualify) and distances float32 [Q,k] (squared L2, or the inner product for ip\n"
    "and cosine). INDEX is a file or registry:NAME@ALIAS. The ranks share the queries by chunks;\n"
    "until complete the output is OUT.h5.partial, and rerunning after a kill does only the rest.\n"
    "--filter keeps only rows whose attribute (index.attributes at build) is one of the values.\n\n"
    "example:\n"
    "  kiln index search --index registry:fmnist-index@production \\\n"
    "      --queries data/fashion-mnist.h5:/test/x --k 10 --output neighbours.h5\n";

static const char eval_usage[] =
    "usage: kiln index eval [CONFIG.yaml] --index INDEX --queries FILE.h5:/dataset [--k K]\n"
    "                       [--output RESULT.json] [--plot RECALL.svg] [--set key=value ...]\n\n"
    "Recall@1, @k and @100 against an exact search (cached in .kiln-cache/) and queries/s (this\n"
    "rank's threads, the fastest of eval.rounds passes), for every nprobe of eval.nprobes (IVF)\n"
    "or ef of eval.efs (HNSW). --set eval.target_recall=0.99 stores the cheapest that reaches it as the index's\n"
    "default; with registry.name the index is registered (kind index) with its recall and speed.\n\n"
    "example:\n"
    "  kiln index eval --index fmnist.index.h5 --queries data/fashion-mnist.h5:/test/x \\\n"
    "      --set eval.target_recall=0.99 --plot recall.svg --set registry.name=fmnist-index\n";

static const char index_usage[] =
    "usage: kiln index build|search|eval ...   (kiln index COMMAND --help for each)\n\n"
    "  build    an index of the rows of an HDF5 dataset: flat, IVF-flat or HNSW, on many ranks\n"
    "  search   the k nearest rows of every query, into an HDF5 file, exactly once\n"
    "  eval     recall and queries/s against exact search; pick nprobe or ef; register\n\n"
    "docs/index.md is the guide.\n";

static kiln_status validate(void *config, kiln_job_resources *res)
{
    kiln_index_config *c = config;
    *res = (kiln_job_resources){&c->placement, c->index.threads, c->backend.name, "fp32", 0};
    if (!strcmp(c->backend.name, "cuda"))
        return KILN_ERROR(KILN_ERR_UNSUPPORTED, "kiln index runs on the cpu backend for now (backend.name=cuda "
                          "is not supported yet: the search kernels read host memory)");
    return KILN_OK;
}

static kiln_status build_run(kiln_job *j)
{
    kiln_index_build_opts o = {kiln_job_config(j), kiln_job_config_yaml(j), kiln_job_option(j, "--input"),
                               kiln_job_option(j, "--output"), kiln_job_comm(j), kiln_job_backend(j),
                               *kiln_job_placement(j)};
    return kiln_index_build(&o);
}

static kiln_index_search_opts search_opts(kiln_job *j)
{
    const char *plot = kiln_job_option(j, "--plot");
    return (kiln_index_search_opts){kiln_job_config(j), kiln_job_config_yaml(j), kiln_job_option(j, "--index"),
                                    kiln_job_option(j, "--queries"), kiln_job_option(j, "--output"), plot ? plot : "",
                                    kiln_job_comm(j), kiln_job_backend(j), *kiln_job_placement(j)};
}

static kiln_status search_run(kiln_job *j)
{
    kiln_index_search_opts o = search_opts(j);
    return kiln_index_search(&o);
}

static kiln_status eval_run(kiln_job *j)
{
    kiln_index_search_opts o = search_opts(j);
    return kiln_index_eval(&o);
}

static const char *held_output(kiln_job *j, const char **what)
{
    *what = "--output";
    const char *out = kiln_job_option(j, "--output");
    return out && out[0] ? out : NULL;
}

static const kiln_job_flag build_flags[] = {
    {"--input", NULL, NULL, 1},
    {"--output", NULL, NULL, 1},
    {"--kind", "index.kind", NULL, 0},
    {"--metric", "index.metric", NULL, 0},
    {"--nlist", "index.nlist", NULL, 0},
    {"--m", "index.m", NULL, 0},
    {"--ef-construction", "index.ef_construction", NULL, 0},
};

static const kiln_job_flag search_flags[] = {
    {"--index", NULL, NULL, 1},   {"--queries", NULL, NULL, 1},   {"--output", NULL, NULL, 1},
    {"--k", "search.k", NULL, 0}, {"--nprobe", "search.nprobe", NULL, 0}, {"--filter", "search.filter", NULL, 0},
    {"--ef", "search.ef", NULL, 0},
};

static const kiln_job_flag eval_flags[] = {
    {"--index", NULL, NULL, 1},   {"--queries", NULL, NULL, 1}, {"--output", NULL, "", 0},
    {"--plot", NULL, "", 0},      {"--k", "search.k", NULL, 0},
};

#define COMMAND(var, word, summary_, usage_, flags_, run_)                                      \
    static const kiln_job_kind var = {.name = "index " word, .summary = summary_, .usage = usage_, \
                                      .schema = &kiln_index_schema, .config_size = sizeof(kiln_index_config), \
                                      .flags = flags_, .n_flags = sizeof flags_ / sizeof flags_[0],      \
                                      .validate = validate, .output = held_output, .run = run_,          \
                                      .command = word}

COMMAND(build_job, "build", "build an index", build_usage, build_flags, build_run);
COMMAND(search_job, "search", "search an index", search_usage, search_flags, search_run);
COMMAND(eval_job, "eval", "measure an index", eval_usage, eval_flags, eval_run);

static const kiln_job_kind *const index_commands[] = {&build_job, &search_job, &eval_job};

const kiln_job_kind kiln_index_job = {
    .name = "index",
    .summary = "nearest-neighbour indexes: build, search, eval",
    .usage = index_usage,
    .commands = index_commands,
    .n_commands = sizeof index_commands / sizeof index_commands[0],
};
