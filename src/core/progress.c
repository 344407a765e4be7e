/* Progress display for long work (rank 0 only). */
#include "kiln/progress.h"
#include "kiln/runtime.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct kiln_progress {
    char what[64];
    uint64_t total;
    double interval_s, t0, last_print;
    int tty, active;
};

kiln_progress *kiln_progress_start(const char *what, uint64_t total, double interval_s, int rank)
{
    kiln_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    snprintf(p->what, sizeof p->what, "%s", what);
    p->total = total;
    p->interval_s = interval_s > 0 ? interval_s : 10.0;
    p->t0 = p->last_print = kiln_time_s();
    p->tty = isatty(fileno(stderr));
    p->active = rank == 0;
    return p;
}

static void format_eta(char *buf, size_t n, double seconds)
{
    if (seconds < 0 || seconds > 1e7) { snprintf(buf, n, "--:--"); return; }
    int s = (int)seconds;
    if (s >= 3600) snprintf(buf, n, "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
    else snprintf(buf, n, "%02d:%02d", s / 60, s % 60);
}

void kiln_progress_update(kiln_progress *p, uint64_t done, const char *extra)
{
    if (!p || !p->active) return;
    double t = kiln_time_s();
    /* a terminal redraws at most 10 times a second; a log gets a line every interval */
    if (t - p->last_print < (p->tty ? 0.1 : p->interval_s) && done < p->total) return;
    p->last_print = t;
    double frac = p->total ? (double)done / (double)p->total : 0.0;
    double elapsed = t - p->t0;
    char eta[32];
    format_eta(eta, sizeof eta, frac > 0 ? elapsed * (1.0 - frac) / frac : -1.0);
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30.0);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r%s [%s] %llu/%llu %5.1f%% eta %s %s\033[K", p->what, bar,
                (unsigned long long)done, (unsigned long long)p->total, 100.0 * frac, eta,
                extra ? extra : "");
    } else {
        fprintf(stderr, "%s: %llu/%llu (%.1f%%) elapsed %.0fs eta %s %s\n", p->what,
                (unsigned long long)done, (unsigned long long)p->total, 100.0 * frac, elapsed,
                eta, extra ? extra : "");
    }
    fflush(stderr);
}

void kiln_progress_finish(kiln_progress *p)
{
    if (!p) return;
    if (p->active && p->tty) fprintf(stderr, "\n");
    free(p);
}
