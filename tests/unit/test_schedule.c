/* Pipeline schedule tables (kiln/schedule.h), for pp = 2, 4 and 8, m from pp to 4 pp, every
 * schedule (interleaved with v = 2 and 3):
 *   - each stage's table runs every (micro-batch, chunk) forward once and backward once, the
 *     forward first;
 *   - 1F1B's warm-up, steady and cool-down are where they belong (stage s starts with
 *     pp - 1 - s forwards, then alternates);
 *   - run against the pipeline's dependencies (a forward needs the previous model stage's, a
 *     backward the next stage's and its own forward), no table deadlocks, the activations held
 *     never exceed the schedule's bound (1F1B: pp - stage), and every stage's idle time equals
 *     the bubble formula exactly: (pp - 1)(t_f + t_b) / v, so the bubble's share of the step is
 *     (pp - 1) / (v m + pp - 1), with backward twice forward and equal to it;
 *   - configurations that cannot run are refused naming the keys.
 * Prints rank 0..3's table of 1F1B at pp 4, m 8 and interleaved at pp 2, v 2, m 4. */
#include "check.h"
#include "kiln/schedule.h"

static void print_tables(kiln_pp_schedule s, int pp, int v, int m)
{
    printf("%s pp=%d v=%d m=%d (F/B micro-batch.chunk)\n", kiln_pp_schedule_name(s), pp, v, m);
    for (int r = 0; r < pp; r++) {
        kiln_pp_action *a;
        int n;
        if (kiln_pp_schedule_table(s, pp, v, m, r, &a, &n) != KILN_OK) continue;
        printf("  stage %d:", r);
        for (int i = 0; i < n; i++) printf(" %c%d.%d", a[i].backward ? 'B' : 'F', a[i].micro, a[i].chunk);
        printf("\n");
        free(a);
    }
}

static void check_table(kiln_pp_schedule s, int pp, int v, int m, int r)
{
    kiln_pp_action *a;
    int n;
    CHECK(kiln_pp_schedule_table(s, pp, v, m, r, &a, &n) == KILN_OK, "%s table", kiln_pp_schedule_name(s));
    CHECK(n == 2 * m * v, "%s pp %d m %d stage %d: %d actions", kiln_pp_schedule_name(s), pp, m, r, n);
    int *seen = calloc((size_t)(m * v) * 2, sizeof *seen), bad = 0;
    for (int i = 0; i < n; i++) {
        int cell = a[i].micro * v + a[i].chunk;
        if (a[i].micro < 0 || a[i].micro >= m || a[i].chunk < 0 || a[i].chunk >= v) bad++;
        else if (a[i].backward && !seen[2 * cell]) bad++; /* a backward before its forward */
        else seen[2 * cell + a[i].backward]++;
    }
    for (int c = 0; c < 2 * m * v; c++) bad += seen[c] != 1;
    CHECK(bad == 0, "%s pp %d v %d m %d stage %d: %d actions out of place", kiln_pp_schedule_name(s), pp, v, m, r,
          bad);
    if (s == KILN_PP_1F1B) { /* warm-up, then alternating, then the backwards */
        int w = pp - 1 - r, ok = 1;
        for (int i = 0; i < w; i++) ok &= !a[i].backward;
        for (int i = w; i < w + 2 * (m - w); i++) ok &= a[i].backward == ((i - w) % 2);
        CHECK(ok, "1f1b stage %d: not warm-up %d, then F B F B ...", r, w);
    }
    free(seen), free(a);
}

static void check_timeline(kiln_pp_schedule s, int pp, int v, int m, double tf, double tb)
{
    kiln_pp_timeline t;
    CHECK(kiln_pp_schedule_simulate(s, pp, v, m, tf, tb, &t) == KILN_OK, "%s pp %d v %d m %d runs",
          kiln_pp_schedule_name(s), pp, v, m);
    double want_idle = (pp - 1) * (tf + tb) / (s == KILN_PP_INTERLEAVED ? v : 1);
    for (int r = 0; r < pp; r++) {
        CHECK(fabs(t.idle[r] - want_idle) < 1e-9, "%s pp %d v %d m %d (t_b/t_f %g) stage %d idles %g, the formula %g",
              kiln_pp_schedule_name(s), pp, v, m, tb / tf, r, t.idle[r], want_idle);
        int bound = kiln_pp_schedule_bound(s, pp, v, m, r);
        CHECK(t.held[r] <= bound, "%s stage %d held %d, bound %d", kiln_pp_schedule_name(s), r, t.held[r], bound);
        if (s == KILN_PP_1F1B) CHECK(bound == pp - r, "1f1b stage %d: bound %d, not pp - stage", r, bound);
        if (s == KILN_PP_GPIPE) CHECK(t.held[r] == m, "gpipe stage %d held %d, not m", r, t.held[r]);
    }
    double share = t.idle[0] / t.step, theory = kiln_pp_bubble_theory(s, pp, v, m);
    CHECK(fabs(share - theory) < 1e-12, "%s pp %d v %d m %d: bubble %g of the step, theory %g",
          kiln_pp_schedule_name(s), pp, v, m, share, theory);
}

static void check_refusals(void)
{
    kiln_pp_schedule s;
    CHECK(kiln_pp_schedule_parse("1f1b", &s) && s == KILN_PP_1F1B, "parse 1f1b");
    CHECK(!kiln_pp_schedule_parse("pipedream", &s), "an unknown schedule");
    struct {
        kiln_pp_schedule s;
        int pp, v, m;
        const char *needle;
    } bad[] = {
        {KILN_PP_1F1B, 4, 1, 3, "needs at least 4 micro-batches"},
        {KILN_PP_INTERLEAVED, 4, 2, 6, "needs a multiple of 4"},
        {KILN_PP_1F1B, 2, 2, 4, "parallel.virtual_stages=2 belongs to parallel.schedule=interleaved"},
        {KILN_PP_GPIPE, 0, 1, 4, "parallel.pp=0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kiln_status st = kiln_pp_schedule_check(bad[i].s, bad[i].pp, bad[i].v, bad[i].m);
        CHECK(st == KILN_ERR_CONFIG && strstr(kiln_error_message(), bad[i].needle), "refusal %zu: %s", i,
              st == KILN_OK ? "accepted" : kiln_error_message());
        kiln_error_clear();
    }
}

int main(void)
{
    int pps[] = {2, 4, 8};
    for (int i = 0; i < 3; i++) {
        int pp = pps[i];
        for (int m = pp; m <= 4 * pp; m++)
            for (int s = 0; s < 3; s++)
                for (int v = 1; v <= (s == KILN_PP_INTERLEAVED ? 3 : 1); v++) {
                    if (s == KILN_PP_INTERLEAVED && (v == 1 || m % pp)) continue;
                    for (int r = 0; r < pp; r++) check_table((kiln_pp_schedule)s, pp, v, m, r);
                    check_timeline((kiln_pp_schedule)s, pp, v, m, 1.0, 2.0);
                    check_timeline((kiln_pp_schedule)s, pp, v, m, 1.0, 1.0);
                }
    }
    check_refusals();
    print_tables(KILN_PP_1F1B, 4, 1, 8);
    print_tables(KILN_PP_INTERLEAVED, 2, 2, 4);
    TEST_MAIN_END();
}
