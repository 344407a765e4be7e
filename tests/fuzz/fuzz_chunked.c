/* Fuzz target: a partial output of the chunked-output engine (kiln/chunked.h), left by a run that
 * stopped half-way, edited as the input says (fuzz_h5.h: its identity attributes, progress/done,
 * progress/crc32 and datasets), then resumed. The engine must refuse what is not its own and
 * never trust what it reads back beyond what it checked. */
#include <mpi.h>
#include <unistd.h>
#include "fuzz_h5.h"
#include "kiln/chunked.h"
#include "kiln/comm.h"
#include "kiln/fs.h"

enum { ROWS = 100, CHUNK = 16 };
static kiln_comm *comm;
static char tmpl[256], work[256], out[256];

static kiln_status compute(void *ctx, uint64_t chunk, uint64_t first, uint64_t rows,
                           void *const *bufs, uint32_t *source_crc)
{
    int fail_at = *(const int *)ctx;
    if ((int)chunk == fail_at) return KILN_ERROR(KILN_ERR_DATA, "stop here");
    for (uint64_t r = 0; r < rows; r++) {
        ((float *)bufs[0])[r] = (float)(first + r);
        ((int32_t *)bufs[1])[2 * r] = (int32_t)r, ((int32_t *)bufs[1])[2 * r + 1] = -1;
    }
    *source_crc = 7;
    return KILN_OK;
}

static kiln_status run(const char *output, int fail_at)
{
    uint64_t rows = ROWS;
    kiln_chunked_dataset sets[2] = {{"score", H5T_NATIVE_FLOAT, 1}, {"topk_index", H5T_NATIVE_INT32, 2}};
    kiln_chunked_attr id[2] = {{"model", KILN_ATTR_STR, "m"}, {"input_rows", KILN_ATTR_U64, &rows}};
    kiln_chunked_spec spec = {output, "fuzz", "the fuzzer", "--output", ROWS, CHUNK, sets, 2, id, 2,
                              "a: 1\n", 4, 1e9};
    kiln_chunked_result res;
    return kiln_chunked_write(comm, &spec, compute, &fail_at, &res);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (kiln_comm_init(argc, argv, 1, &comm) != KILN_OK) abort();
    snprintf(out, sizeof out, "/tmp/fuzz_chunked.%d.h5", (int)getpid());
    snprintf(tmpl, sizeof tmpl, "%s.template", out);
    snprintf(work, sizeof work, "%s.partial", out);
    unlink(work);
    if (run(out, 3) == KILN_OK) abort(); /* stops at chunk 3: a partial with 3 chunks done */
    kiln_error_clear();
    if (rename(work, tmpl) != 0) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unlink(out);
    fuzz_copy(tmpl, work);
    fuzz_h5_edit(work, data, size);
    (void)run(out, -1);
    kiln_error_clear();
    return 0;
}
