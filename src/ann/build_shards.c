/* `kiln index build`: one index file, or, with index.shards = S > 1, S shards and a manifest.
 *
 * Shard s holds input rows [N s / S, N (s + 1) / S): consecutive ranges, so that a shard's
 * rows are one read. The ranks form gcd(ranks, S) groups, rank r in group r % groups, and
 * group g builds shards g, g + groups, ... one after the other, each exactly as a one-file
 * build of those rows would be on that group (k-means over the group's ranks, HNSW insertion
 * on its first rank's threads): so every rank count builds the same shard files, and HNSW,
 * whose insertion is one shared graph, is built on many ranks at once. A shard already built
 * by an earlier run of the same build (its config, input and rows) is kept, so a build killed
 * part way redoes only the shards it had not finished. When every shard exists, world rank 0
 * writes the manifest (index_set.c), the file that searches name. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/log.h"
#include "ann_internal.h"

static uint64_t shard_first(uint64_t rows, int s, int shards)
{
    return (uint64_t)((unsigned __int128)rows * (unsigned)s / (unsigned)shards);
}

/* 1 when path is a shard an earlier run of this build finished: the same config, input and rows
 * (files are written whole, so one that exists is complete). */
static int shard_done(const kiln_index_build_opts *o, const char *path, uint64_t first, uint64_t rows)
{
    if (!kiln_path_exists(path)) return 0;
    hid_t f;
    if (kiln_h5_open_file(path, "shard", KILN_ERR_DATA, &f) != KILN_OK) {
        kiln_error_clear();
        return 0;
    }
    ann_index head = {0};
    int same = kiln_ann_index_read_attrs(f, path, &head) == KILN_OK && head.config &&
               !strcmp(head.config, o->config_yaml) && !strcmp(head.input, o->input) &&
               head.first_row == (int64_t)first && head.rows == (int64_t)rows;
    kiln_error_clear();
    H5Fclose(f);
    kiln_ann_index_free(&head);
    return same;
}

/* This group's shards, in turn. */
static kiln_status build_group_shards(const kiln_index_build_opts *o, kiln_comm *group_comm, int group, int groups,
                                      uint64_t rows, const char *stem)
{
    int shards = o->cfg->index.shards, lead = kiln_comm_rank(group_comm, KILN_AXIS_WORLD) == 0;
    kiln_status st = KILN_OK;
    for (int s = group; st == KILN_OK && s < shards; s += groups) {
        uint64_t first = shard_first(rows, s, shards), n = shard_first(rows, s + 1, shards) - first;
        char path[PATH_MAX + 64];
        kiln_ann_shard_path(o->output, stem, s, shards, path, sizeof path);
        int done = lead ? shard_done(o, path, first, n) : 0;
        st = kiln_comm_bcast(group_comm, KILN_AXIS_WORLD, &done, sizeof done, 0);
        if (st == KILN_OK && done && lead)
            kiln_info("index: shard %d of %d (%s) was built by an earlier run; kept", s, shards, path);
        if (st == KILN_OK && !done) st = kiln_ann_build_range(o, group_comm, first, n, path);
    }
    return st;
}

/* World rank 0: the manifest, from the shards' attributes and files. */
static kiln_status write_manifest(const kiln_index_build_opts *o, const char *stem, uint64_t rows, int row_bytes)
{
    int shards = o->cfg->index.shards;
    ann_shards sh = {0};
    KILN_CHECK(kiln_ann_shards_alloc(&sh, shards));
    snprintf(sh.stem, sizeof sh.stem, "%s", stem);
    ann_index head = {0};
    kiln_status st = KILN_OK;
    for (int s = 0; s < shards && st == KILN_OK; s++) {
        char path[PATH_MAX + 64];
        kiln_ann_shard_path(o->output, stem, s, shards, path, sizeof path);
        uint32_t crc;
        uint64_t bytes;
        st = kiln_file_crc32(path, &crc, &bytes);
        hid_t f = H5I_INVALID_HID;
        if (st == KILN_OK) st = kiln_h5_open_file(path, "shard", KILN_ERR_DATA, &f);
        ann_index part = {0};
        if (st == KILN_OK) st = kiln_ann_index_read_attrs(f, path, &part);
        if (f >= 0) H5Fclose(f);
        if (st == KILN_OK && s == 0) {
            head = part;
            head.rows = (int64_t)rows;
            memset(&part, 0, sizeof part);
        } else if (st == KILN_OK) {
            head.nlist = part.nlist < head.nlist ? part.nlist : head.nlist;
            head.nprobe = part.nprobe < head.nprobe ? part.nprobe : head.nprobe;
            head.input_crc = kiln_crc32_combine(head.input_crc, part.input_crc, (uint64_t)part.rows * (uint64_t)row_bytes);
        }
        sh.first_row[s] = s ? shard_first(rows, s, shards) : 0;
        sh.rows[s] = (int64_t)(shard_first(rows, s + 1, shards) - shard_first(rows, s, shards));
        sh.file_crc[s] = crc, sh.file_bytes[s] = (int64_t)bytes;
        kiln_ann_index_free(&part);
    }
    head.first_row = 0;
    if (st == KILN_OK) st = kiln_ann_manifest_write(o->output, &head, &sh);
    if (st == KILN_OK)
        printf("kiln index build: %s, %" PRIu64 " rows x %d in %d shards (%s.shard-*-of-%05d.h5), %s -> %s\n",
               kiln_ann_kind_name(head.kind), rows, head.dim, shards, stem, shards,
               kiln_ann_metric_name(head.metric), o->output);
    kiln_ann_index_free(&head);
    kiln_ann_shards_free(&sh);
    return st;
}

kiln_status kiln_index_build(const kiln_index_build_opts *o)
{
    int shards = o->cfg->index.shards;
    if (shards <= 1) return kiln_ann_build_range(o, o->comm, 0, 0, o->output);
    int rank = kiln_comm_rank(o->comm, KILN_AXIS_WORLD), size = kiln_comm_size(o->comm, KILN_AXIS_WORLD);
    int groups = kiln_ann_shard_groups(size, shards), group = rank % groups;
    ann_vectors in;
    kiln_status st = kiln_ann_vectors_open(o->input, "--input", &in);
    uint64_t rows = st == KILN_OK ? in.rows : 0;
    int row_bytes = st == KILN_OK ? in.dim * (in.is_u8 ? 1 : 4) : 0;
    if (st == KILN_OK) kiln_ann_vectors_close(&in);
    if (st == KILN_OK && rows < (uint64_t)shards)
        st = KILN_ERROR(KILN_ERR_CONFIG, "index.shards (%d) is more than the input's %" PRIu64 " rows", shards, rows);
    char stem[256];
    kiln_ann_shard_stem(o->output, stem, sizeof stem);
    st = kiln_comm_agree(o->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    KILN_CHECK(st);
    if (rank == 0)
        kiln_info("index: %d shards of %s on %d group%s of %d rank%s", shards, o->input, groups,
                  groups == 1 ? "" : "s", size / groups, size / groups == 1 ? "" : "s");
    kiln_comm *group_comm = NULL;
    st = kiln_comm_split(o->comm, group, rank, &group_comm);
    if (st == KILN_OK) st = build_group_shards(o, group_comm, group, groups, rows, stem);
    st = kiln_comm_agree(o->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
    if (st == KILN_OK && rank == 0) st = write_manifest(o, stem, rows, row_bytes);
    if (group_comm) kiln_comm_finalize(group_comm);
    return kiln_comm_agree(o->comm, KILN_AXIS_WORLD, st, KILN_ERR_INTERNAL);
}
