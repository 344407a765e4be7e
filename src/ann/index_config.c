/* The schema of `kiln index` configs: the index (build), search and eval sections declared
 * here, composed with the backend, placement and registry sections. All three commands take
 * the same config, so that one YAML file describes an index, how it is searched and measured. */
#include <stddef.h>
#include "kiln/ann.h"

#define KI(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_index_config, index.field) - offsetof(kiln_index_config, index), def, choices, help}
#define KS(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_index_config, search.field) - offsetof(kiln_index_config, search), def, choices, help}
#define KE(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_index_config, evaluate.field) - offsetof(kiln_index_config, evaluate), def, choices, help}

static const kiln_cfg_key index_keys[] = {
    KI("index.kind", KILN_CFG_STRING, kind, "ivf-flat", "flat|ivf-flat|ivf-pq|hnsw",
       "flat: exact search by GEMM (also the ground truth); ivf-flat: k-means lists, nprobe of them "
       "searched; ivf-pq: the same lists holding pq_m bytes a row; hnsw: a layered neighbour graph, "
       "searched with a beam of ef"),
    KI("index.metric", KILN_CFG_STRING, metric, "l2", "l2|ip|cosine",
       "distance: squared L2, inner product, or cosine (rows and queries scaled to unit length)"),
    KI("index.nlist", KILN_CFG_INT, nlist, "0", "[0,)", "IVF lists (0: 4 sqrt(rows), at most rows)"),
    KI("index.nprobe", KILN_CFG_INT, nprobe, "16", "[1,)",
       "IVF lists a search probes by default (stored in the index; kiln index eval --set "
       "eval.target_recall=0.99 picks the cheapest that reaches it)"),
    KI("index.train_rows", KILN_CFG_INT64, train_rows, "0", "[0,)",
       "rows k-means trains on, drawn from the seed (0: 256 per list, at most all)"),
    KI("index.kmeans_iters", KILN_CFG_INT, kmeans_iters, "10", "[1,)",
       "k-means iterations (10, as FAISS trains IVF coarse quantizers)"),
    KI("index.kmeans_init", KILN_CFG_STRING, kmeans_init, "random", "random|kmeans++",
       "k-means start: distinct sample rows drawn from the seed, or k-means++"),
    KI("index.pq_m", KILN_CFG_INT, pq_m, "0", "[0,65536]",
       "IVF-PQ bytes a row: parts of dim / pq_m values, each coded by one of 256 sub-centroids "
       "(0: about 8 values a part; must divide dim)"),
    KI("index.pq_iters", KILN_CFG_INT, pq_iters, "25", "[1,1000]",
       "k-means iterations of each PQ part's 256 sub-centroids (25, as FAISS trains PQ)"),
    KI("index.pq_refine", KILN_CFG_INT, pq_refine, "0", "[0,100000]",
       "IVF-PQ: > 0 keeps the vectors too, and ranks this many best candidates again by exact distance"),
    KI("index.m", KILN_CFG_INT, hnsw_m, "16", "[2,128]",
       "HNSW links per node and layer (2m on the bottom layer): more is better recall, more memory and build time"),
    KI("index.ef_construction", KILN_CFG_INT, ef_construction, "100", "[1,100000]",
       "HNSW beam width while inserting: more is a better graph, built slower"),
    KI("index.ef", KILN_CFG_INT, ef, "64", "[1,100000]",
       "HNSW beam width a search uses by default (stored in the index; eval.target_recall picks one)"),
    KI("index.seed", KILN_CFG_INT64, seed, "0", "[0,)", "seed of the sample, the init and the HNSW levels"),
    KI("index.attributes", KILN_CFG_STRING, attributes, "", NULL,
       "integer attributes of the rows to filter searches on: NAME=FILE.h5:/path[,NAME=...], "
       "one value per input row (e.g. label=data/fashion-mnist.h5:/train/y)"),
    KI("index.threads", KILN_CFG_INT, threads, "0", "[0,)", "CPU threads per rank (0 = its cores)"),
    KI("index.save_interval", KILN_CFG_FLOAT, save_interval, "60", "[0,)",
       "seconds between saves of an HNSW graph being built (0: after every 4,096 rows), so that a build "
       "killed part way continues from its last save; k-means saves after every iteration"),
    KI("index.shards", KILN_CFG_INT, shards, "1", "[1,65536]",
       "> 1: the input cut into this many consecutive row ranges, each an index of its own built by a "
       "group of ranks (groups: gcd(ranks, shards)), under one manifest that searches them all and "
       "merges the top k; for an index larger than one rank's memory, and to build HNSW on many ranks"),
};

static const kiln_cfg_key search_keys[] = {
    KS("search.k", KILN_CFG_INT, k, "10", "[1,)", "neighbours per query"),
    KS("search.nprobe", KILN_CFG_INT, nprobe, "0", "[0,)", "IVF lists probed (0: the index's default)"),
    KS("search.ef", KILN_CFG_INT, ef, "0", "[0,100000]", "HNSW beam width (0: the index's default; at least k is used)"),
    KS("search.filter", KILN_CFG_STRING, filter, "", NULL,
       "only rows whose attribute is one of the values: NAME=V1,V2,... (e.g. label=3,5)"),
    KS("search.chunk_rows", KILN_CFG_INT, chunk_rows, "4096", "[1,)",
       "queries per chunk: the unit ranks share, progress is recorded in, and HDF5 chunks hold"),
    KS("search.progress_interval", KILN_CFG_FLOAT, progress_interval, "10", "[0,)",
       "seconds between progress lines when stderr is not a terminal"),
};

static const kiln_cfg_key eval_keys[] = {
    KE("eval.nprobes", KILN_CFG_INT_LIST, nprobes, "1,2,4,8,16,32,64,128", "[1,)",
       "IVF settings measured (those above nlist are skipped)"),
    KE("eval.efs", KILN_CFG_INT_LIST, efs, "10,16,24,32,48,64,96,128,256", "[1,100000]",
       "HNSW settings measured (beam widths)"),
    KE("eval.target_recall", KILN_CFG_FLOAT, target_recall, "0", "[0,1]",
       "> 0: the cheapest setting whose recall@k reaches it becomes the index's default (nprobe or ef)"),
    KE("eval.rounds", KILN_CFG_INT, rounds, "3", "[1,)",
       "timed passes over the queries per setting; the fastest counts (a shared machine only slows runs down)"),
};

static const kiln_cfg_schema index_section = {"index", index_keys, sizeof index_keys / sizeof index_keys[0], NULL, 0};
static const kiln_cfg_schema search_section = {"search", search_keys, sizeof search_keys / sizeof search_keys[0], NULL, 0};
static const kiln_cfg_schema eval_section = {"eval", eval_keys, sizeof eval_keys / sizeof eval_keys[0], NULL, 0};

#define PART(section, field) {&section, offsetof(kiln_index_config, field)}
static const kiln_cfg_part index_parts[] = {
    PART(index_section, index), PART(search_section, search), PART(eval_section, evaluate),
    PART(kiln_backend_section, backend), PART(kiln_placement_section, placement),
    PART(kiln_registry_section, registry), PART(kiln_registry_publish_section, registry),
};

const kiln_cfg_schema kiln_index_schema = {"index", NULL, 0, index_parts,
                                           sizeof index_parts / sizeof index_parts[0]};
