/* SPDX-License-Identifier: MIT */
/* The farpool tool's progress bar on standard error (see progress.h). */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/time.h"

#define REDRAW_NS 100000000ull /* at most ten redraws a second */

void cli_format_bytes(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    int u = -1;

    if (bytes < 1024) {
        snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
        return;
    }
    while (v >= 1024.0 && u < 5) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, cap, "%.1f %s", v, units[u]);
}

/* Columns of the terminal on stderr, 80 if it does not say. */
static int term_width(void)
{
    struct winsize ws;

    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

void cli_progress_start(cli_progress_t *p, const char *label, uint64_t total, bool quiet)
{
    memset(p, 0, sizeof(*p));
    p->on = !quiet && isatty(STDERR_FILENO);
    p->label = label;
    p->total = total;
    p->start_ns = fp_time_ns();
}

void cli_progress_update(cli_progress_t *p, uint64_t done)
{
    char line[512], bar[128], dn[32], tot[32], rate[32], eta[32];
    uint64_t t;
    double secs, bps, frac;
    int width, barw, fill, n;

    if (!p->on)
        return;
    t = fp_time_ns();
    if (p->drawn && t - p->last_ns < REDRAW_NS)
        return;
    p->last_ns = t;
    secs = (double)(t - p->start_ns) / 1e9;
    bps = secs > 0.0 ? (double)done / secs : 0.0;
    frac = p->total != 0 ? (double)done / (double)p->total : 1.0;
    if (frac > 1.0)
        frac = 1.0;
    cli_format_bytes(done, dn, sizeof(dn));
    cli_format_bytes(p->total, tot, sizeof(tot));
    cli_format_bytes((uint64_t)bps, rate, sizeof(rate));
    if (bps > 0.0 && done <= p->total) {
        uint64_t left = (uint64_t)((double)(p->total - done) / bps + 0.5);

        if (left >= 3600)
            snprintf(eta, sizeof(eta), "%llu:%02llu:%02llu", (unsigned long long)(left / 3600),
                     (unsigned long long)(left / 60 % 60), (unsigned long long)(left % 60));
        else
            snprintf(eta, sizeof(eta), "%llu:%02llu", (unsigned long long)(left / 60),
                     (unsigned long long)(left % 60));
    } else {
        snprintf(eta, sizeof(eta), "--:--");
    }
    /* "LABEL [####    ] 3.0 MiB / 20.0 MiB  85.3 MiB/s  ETA 0:01", fitted to the terminal. */
    width = term_width() - 1;
    n = snprintf(line, sizeof(line), " %10s / %-10s %10s/s  ETA %s", dn, tot, rate, eta);
    barw = width - n - (int)strlen(p->label) - 4;
    if (barw > (int)sizeof(bar) - 1)
        barw = (int)sizeof(bar) - 1;
    if (barw >= 5) {
        fill = (int)(frac * barw);
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, ' ', (size_t)(barw - fill));
        bar[barw] = '\0';
        fprintf(stderr, "\r%s [%s]%s\033[K", p->label, bar, line);
    } else {
        fprintf(stderr, "\r%.*s\033[K", width > 0 ? width : 1, line + 1);
    }
    fflush(stderr);
    p->drawn = true;
}

void cli_progress_text(cli_progress_t *p, const char *text)
{
    if (!p->on)
        return;
    fprintf(stderr, "\r%.*s\033[K", term_width() - 1, text);
    fflush(stderr);
    p->drawn = true;
}

void cli_progress_clear(cli_progress_t *p)
{
    if (!p->on || !p->drawn)
        return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
    p->drawn = false;
}
