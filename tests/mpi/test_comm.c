/* The comm seams that sweeps and pipeline stages stand on, on 3 ranks (tests/mpi/run_c.sh):
 * sub-communicators (each group sums on its own), point-to-point sends and receives around a
 * ring, and collectives larger than one MPI call carries (the limit lowered so a small buffer
 * is split into many pieces) giving exactly the sums an unsplit call gives; what cannot be
 * split is refused, and ZeRO over more parameters than MPI's int counts address is refused
 * at start-up. */
#include "check.h"
#include "kiln/comm.h"
#include "kiln/model.h"
#include "kiln/parallel.h"

static kiln_comm *comm;
static int rank, world;

static void test_split(void)
{
    kiln_comm *sub = NULL;
    int color = rank % 2; /* {0, 2} and {1} */
    CHECK_OK(kiln_comm_split(comm, color, -rank, &sub)); /* key -rank: reversed order */
    if (!sub) return;
    int size = kiln_comm_size(sub, KILN_AXIS_WORLD), me = kiln_comm_rank(sub, KILN_AXIS_WORLD);
    int want_size = color == 0 ? (world + 1) / 2 : world / 2;
    CHECK(size == want_size && kiln_comm_size(sub, KILN_AXIS_DP) == size &&
              kiln_comm_size(sub, KILN_AXIS_PP) == 1,
          "group %d: size %d (want %d), dp %d, pp %d", color, size, want_size,
          kiln_comm_size(sub, KILN_AXIS_DP), kiln_comm_size(sub, KILN_AXIS_PP));
    int ahead = 0; /* members with a higher world rank come first */
    for (int r = rank + 2; r < world; r += 2) ahead++;
    CHECK(me == ahead, "rank %d: %d in its group, want %d", rank, me, ahead);
    double x = rank + 1.0;
    CHECK_OK(kiln_comm_allreduce_f64(sub, KILN_AXIS_DP, &x, 1));
    double want = 0.0;
    for (int r = color; r < world; r += 2) want += r + 1.0;
    CHECK(x == want, "group %d sums %g, want %g", color, x, want);
    CHECK_OK(kiln_comm_agree(sub, KILN_AXIS_WORLD, KILN_OK, KILN_ERR_INTERNAL));
    kiln_comm_finalize(sub);
}

static void test_ring(void)
{
    enum { N = 1000 };
    float send[N], recv[N];
    for (int i = 0; i < N; i++) send[i] = (float)(rank * 10000 + i);
    int right = (rank + 1) % world, left = (rank + world - 1) % world;
    kiln_comm_request *rs = NULL, *rr = NULL;
    CHECK_OK(kiln_comm_irecv(comm, KILN_AXIS_WORLD, left, 7, KILN_PRECISION_FP32, recv, N, &rr));
    CHECK_OK(kiln_comm_isend(comm, KILN_AXIS_WORLD, right, 7, KILN_PRECISION_FP32, send, N, &rs));
    if (rr) CHECK_OK(kiln_comm_wait(rr));
    if (rs) CHECK_OK(kiln_comm_wait(rs));
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= recv[i] == (float)(left * 10000 + i);
    CHECK(ok, "rank %d received rank %d's buffer", rank, left);
}

/* Sums split at a limit of 7 elements equal the exact sums (small integers: exact in float). */
static void test_split_collectives(void)
{
    enum { N = 50 };
    float f[N], g[N];
    double d[N];
    for (int i = 0; i < N; i++) f[i] = g[i] = (float)(i + rank), d[i] = i * 0.5 + rank;
    kiln_comm_set_max_count(7);
    CHECK(kiln_comm_max_count() == 7, "limit lowered");
    CHECK_OK(kiln_comm_allreduce_f32(comm, KILN_AXIS_WORLD, f, N));
    CHECK_OK(kiln_comm_allreduce_f64(comm, KILN_AXIS_WORLD, d, N));
    kiln_comm_request *req = NULL;
    CHECK_OK(kiln_comm_iallreduce_f32(comm, KILN_AXIS_DP, g, N, &req));
    int done = 0;
    if (req) CHECK_OK(kiln_comm_test(req, &done));
    if (req) CHECK_OK(kiln_comm_wait(req));
    char bytes[40];
    for (int i = 0; i < 40; i++) bytes[i] = rank == 1 ? (char)('a' + i % 26) : 0;
    CHECK_OK(kiln_comm_bcast(comm, KILN_AXIS_WORLD, bytes, sizeof bytes, 1));
    int ranks_sum = world * (world - 1) / 2, ok = 1;
    for (int i = 0; i < N; i++) {
        ok &= f[i] == (float)(world * i + ranks_sum) && g[i] == f[i];
        ok &= d[i] == world * i * 0.5 + ranks_sum;
    }
    for (int i = 0; i < 40; i++) ok &= bytes[i] == (char)('a' + i % 26);
    CHECK(ok, "sums and broadcast split into pieces of 7 equal the whole");
    float big[8] = {0};
    kiln_comm_request *s = NULL;
    CHECK_FAILS(kiln_comm_isend(comm, KILN_AXIS_WORLD, (rank + 1) % world, 1, KILN_PRECISION_FP32,
                                big, 8, &s),
                KILN_ERR_ARG, "more than one MPI call carries (7)");
    if (s) CHECK_OK(kiln_comm_wait(s));
    kiln_comm_set_max_count(0);
    CHECK(kiln_comm_max_count() == KILN_COMM_MAX_COUNT, "limit restored");
}

/* ZeRO shards address the flat buffer with int counts: a model past the limit is refused. */
static void test_zero_refused(void)
{
    kiln_model_config c;
    memset(&c, 0, sizeof c);
    strcpy(c.kind, "mlp");
    c.hidden.n = 1;
    c.hidden.v[0] = 16;
    kiln_model *m = NULL;
    CHECK_OK(kiln_model_create(&c, 8, 4, 4, kiln_backend_cpu(), 1, &m)); /* 212 parameters */
    kiln_comm_set_max_count(100);
    kiln_dp *dp = NULL;
    CHECK_FAILS(kiln_dp_create(comm, m, kiln_backend_cpu(), 1 << 20, 1, 1, &dp),
                KILN_ERR_UNSUPPORTED, "parallel.zero=1 over 212 parameters");
    kiln_dp_free(dp);
    dp = NULL;
    CHECK_OK(kiln_dp_create(comm, m, kiln_backend_cpu(), 1 << 20, 1, 0, &dp)); /* stage 0 splits */
    kiln_dp_free(dp);
    kiln_comm_set_max_count(0);
    kiln_model_free(m);
}

int main(int argc, char **argv)
{
    if (kiln_comm_init(&argc, &argv, 1, &comm) != KILN_OK) return 1;
    rank = kiln_comm_rank(comm, KILN_AXIS_WORLD);
    world = kiln_comm_size(comm, KILN_AXIS_WORLD);
    test_split();
    test_ring();
    test_split_collectives();
    test_zero_refused();
    kiln_comm_finalize(comm);
    TEST_MAIN_END();
}
