/* SPDX-License-Identifier: MIT */
/* `farpool-bench tiers`: medians, tables, CSV and plots; see tiers_report.h. */
#include "tiers_report.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "common/time.h"

#define MAX_RUNS_REPORT 64
#define PLOT_TIMEOUT_MS 30000

const uint64_t tiers_blocks[TIERS_NBLOCKS] = {4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB,
                                              1 * MIB, 2 * MIB,  4 * MIB,  8 * MIB};
const char *const tiers_block_names[TIERS_NBLOCKS] = {"4K", "16K", "64K", "256K",
                                                      "1M", "2M",  "4M",  "8M"};

const char *const tiers_series_ids[TIERS_NSERIES] = {
    "dram", "loopback", "loopback-api", "netns", "netns-api", "disk",
};
const char *const tiers_series_labels[TIERS_NSERIES] = {
    "local DRAM",          "pool loopback (mapped)", "pool loopback (node API)",
    "pool netns (mapped)", "pool netns (node API)",  "local disk cold (O_DIRECT)",
};

void tiers_run_clear(tiers_run_t *run)
{
    for (unsigned s = 0; s < TIERS_NSERIES; s++) {
        run->lat_med[s] = run->lat_p99[s] = run->lat_n[s] = NAN;
        for (unsigned b = 0; b < TIERS_NBLOCKS; b++)
            run->gbs[s][b] = run->gbs_bytes[s][b] = NAN;
    }
}

/* ------------------------------------------------------------------------ */
/* Medians                                                                  */
/* ------------------------------------------------------------------------ */

/* Median of the finite values of @v[0..@n); NAN if there is none. */
static double median_finite(const double *v, unsigned n)
{
    double w[MAX_RUNS_REPORT];
    unsigned k = 0;

    for (unsigned i = 0; i < n && k < MAX_RUNS_REPORT; i++) {
        if (isfinite(v[i]))
            w[k++] = v[i];
    }
    return k > 0 ? bench_median(w, k) : NAN;
}

static double ratio(double v, double base)
{
    return isfinite(v) && isfinite(base) && base > 0 ? v / base : NAN;
}

/*
 * The median of @v over runs and the medians of its per-run ratios to
 * @dram and @disk (the same figure of the baselines, per run).
 */
static void figure_make(const double *v, const double *dram, const double *disk, unsigned n,
                        tiers_figure_t *f)
{
    double rd[MAX_RUNS_REPORT], rk[MAX_RUNS_REPORT];

    for (unsigned i = 0; i < n; i++) {
        rd[i] = ratio(v[i], dram[i]);
        rk[i] = ratio(v[i], disk[i]);
    }
    f->v = median_finite(v, n);
    f->vs_dram = median_finite(rd, n);
    f->vs_disk = median_finite(rk, n);
}

void tiers_summarize(const tiers_run_t *runs, unsigned n, tiers_summary_t *sum_p)
{
    double v[MAX_RUNS_REPORT], dram[MAX_RUNS_REPORT], disk[MAX_RUNS_REPORT];

    if (n > MAX_RUNS_REPORT)
        n = MAX_RUNS_REPORT;
    memset(sum_p, 0, sizeof(*sum_p));
    sum_p->runs = n;
    for (unsigned s = 0; s < TIERS_NSERIES; s++) {
        for (unsigned i = 0; i < n; i++) {
            v[i] = runs[i].lat_med[s];
            dram[i] = runs[i].lat_med[TIERS_DRAM];
            disk[i] = runs[i].lat_med[TIERS_DISK];
        }
        figure_make(v, dram, disk, n, &sum_p->lat_med[s]);
        for (unsigned i = 0; i < n; i++) {
            v[i] = runs[i].lat_p99[s];
            dram[i] = runs[i].lat_p99[TIERS_DRAM];
            disk[i] = runs[i].lat_p99[TIERS_DISK];
        }
        figure_make(v, dram, disk, n, &sum_p->lat_p99[s]);
        for (unsigned i = 0; i < n; i++)
            v[i] = runs[i].lat_n[s];
        sum_p->lat_n[s] = median_finite(v, n);
        sum_p->present[s] = isfinite(sum_p->lat_med[s].v);
        for (unsigned b = 0; b < TIERS_NBLOCKS; b++) {
            for (unsigned i = 0; i < n; i++) {
                v[i] = runs[i].gbs[s][b];
                dram[i] = runs[i].gbs[TIERS_DRAM][b];
                disk[i] = runs[i].gbs[TIERS_DISK][b];
            }
            figure_make(v, dram, disk, n, &sum_p->gbs[s][b]);
            if (isfinite(sum_p->gbs[s][b].v))
                sum_p->present[s] = true;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                   */
/* ------------------------------------------------------------------------ */

/* Latency in us: more decimals for small figures. */
static const char *fmt_us(double v, char *buf, size_t len)
{
    if (!isfinite(v))
        snprintf(buf, len, "-");
    else if (v < 10)
        snprintf(buf, len, "%.2f", v);
    else
        snprintf(buf, len, "%.1f", v);
    return buf;
}

static const char *fmt_gbs(double v, char *buf, size_t len)
{
    if (!isfinite(v))
        snprintf(buf, len, "-");
    else if (v < 0.1)
        snprintf(buf, len, "%.3f", v);
    else
        snprintf(buf, len, "%.2f", v);
    return buf;
}

static const char *fmt_ratio(double v, char *buf, size_t len)
{
    if (!isfinite(v))
        snprintf(buf, len, "-");
    else if (v < 0.01)
        snprintf(buf, len, "%.4fx", v);
    else if (v < 10)
        snprintf(buf, len, "%.2fx", v);
    else if (v < 100)
        snprintf(buf, len, "%.1fx", v);
    else
        snprintf(buf, len, "%.0fx", v);
    return buf;
}

void tiers_print_run(FILE *out, unsigned idx, unsigned n, const tiers_run_t *run)
{
    char a[32], b[32];

    for (unsigned s = 0; s < TIERS_NSERIES; s++) {
        bool any = isfinite(run->lat_med[s]);

        for (unsigned k = 0; k < TIERS_NBLOCKS; k++)
            any = any || isfinite(run->gbs[s][k]);
        if (!any)
            continue;
        fprintf(out, "run %u/%u: %-26s random 4 KiB %s us (p99 %s); GB/s", idx + 1, n,
                tiers_series_labels[s], fmt_us(run->lat_med[s], a, sizeof(a)),
                fmt_us(run->lat_p99[s], b, sizeof(b)));
        for (unsigned k = 0; k < TIERS_NBLOCKS; k++)
            fprintf(out, " %s %s", tiers_block_names[k], fmt_gbs(run->gbs[s][k], a, sizeof(a)));
        fprintf(out, "\n");
    }
}

/* A table of the bandwidth figures (@what 0) or of their ratios to DRAM (1) or disk (2). */
static void print_bw_table(const tiers_summary_t *sum, int what)
{
    char buf[32];

    printf("| tier |");
    for (unsigned k = 0; k < TIERS_NBLOCKS; k++)
        printf(" %s |", tiers_block_names[k]);
    printf("\n|---|");
    for (unsigned k = 0; k < TIERS_NBLOCKS; k++)
        printf("---|");
    printf("\n");
    for (unsigned s = 0; s < TIERS_NSERIES; s++) {
        if (!sum->present[s])
            continue;
        printf("| %s |", tiers_series_labels[s]);
        for (unsigned k = 0; k < TIERS_NBLOCKS; k++) {
            const tiers_figure_t *f = &sum->gbs[s][k];

            if (what == 0)
                printf(" %s |", fmt_gbs(f->v, buf, sizeof(buf)));
            else
                printf(" %s |", fmt_ratio(what == 1 ? f->vs_dram : f->vs_disk, buf, sizeof(buf)));
        }
        printf("\n");
    }
}

void tiers_print_tables(const tiers_summary_t *sum)
{
    char c[6][32];

    printf("\n### Random 4 KiB access latency (microseconds; median of %u run%s)\n\n", sum->runs,
           sum->runs == 1 ? "" : "s");
    printf("| tier | median | p99 | median vs DRAM | median vs disk | p99 vs DRAM | p99 vs disk "
           "| accesses |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (unsigned s = 0; s < TIERS_NSERIES; s++) {
        const tiers_figure_t *m = &sum->lat_med[s], *p = &sum->lat_p99[s];

        if (!sum->present[s])
            continue;
        printf("| %s | %s | %s | %s | %s | %s | %s | %.0f |\n", tiers_series_labels[s],
               fmt_us(m->v, c[0], sizeof(c[0])), fmt_us(p->v, c[1], sizeof(c[1])),
               fmt_ratio(m->vs_dram, c[2], sizeof(c[2])), fmt_ratio(m->vs_disk, c[3], sizeof(c[3])),
               fmt_ratio(p->vs_dram, c[4], sizeof(c[4])), fmt_ratio(p->vs_disk, c[5], sizeof(c[5])),
               sum->lat_n[s]);
    }

    printf("\n### Sequential bandwidth by block size (GB/s = 1e9 bytes/s)\n\n");
    print_bw_table(sum, 0);
    printf("\n### Sequential bandwidth vs local DRAM (same run, same block size)\n\n");
    print_bw_table(sum, 1);
    printf("\n### Sequential bandwidth vs local disk, cold, O_DIRECT (same run, same block "
           "size)\n\n");
    print_bw_table(sum, 2);
}

/* ------------------------------------------------------------------------ */
/* CSV                                                                      */
/* ------------------------------------------------------------------------ */

static void csv_number(FILE *f, double v, int decimals)
{
    if (isfinite(v))
        fprintf(f, "%.*f", decimals, v);
}

static void csv_row(FILE *f, unsigned s, const char *measure, uint64_t block,
                    const tiers_figure_t *fig, const char *unit, unsigned runs)
{
    fprintf(f, "%s,\"%s\",%s,%llu,", tiers_series_ids[s], tiers_series_labels[s], measure,
            (unsigned long long)block);
    csv_number(f, fig->v, 4);
    fprintf(f, ",%s,", unit);
    csv_number(f, fig->vs_dram, 5);
    fprintf(f, ",");
    csv_number(f, fig->vs_disk, 5);
    fprintf(f, ",%u\n", runs);
}

int tiers_write_csv(const char *path, const tiers_summary_t *sum)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        fprintf(stderr, "farpool-bench tiers: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "series,label,measure,block_bytes,value,unit,vs_dram,vs_disk,runs\n");
    for (unsigned s = 0; s < TIERS_NSERIES; s++) {
        if (!sum->present[s])
            continue;
        csv_row(f, s, "latency_median", 4 * KIB, &sum->lat_med[s], "us", sum->runs);
        csv_row(f, s, "latency_p99", 4 * KIB, &sum->lat_p99[s], "us", sum->runs);
        for (unsigned k = 0; k < TIERS_NBLOCKS; k++)
            csv_row(f, s, "bandwidth", tiers_blocks[k], &sum->gbs[s][k], "GB/s", sum->runs);
    }
    if (ferror(f) || fclose(f) != 0) {
        fprintf(stderr, "farpool-bench tiers: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Plots                                                                    */
/* ------------------------------------------------------------------------ */

/* True if @name is an executable file in $PATH. */
static bool in_path(const char *name)
{
    const char *path = getenv("PATH");
    char buf[4096];

    if (path == NULL)
        path = "/usr/bin:/bin";
    while (*path != '\0') {
        size_t n = strcspn(path, ":");

        if (n > 0 && n + strlen(name) + 2 <= sizeof(buf)) {
            snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
            if (access(buf, X_OK) == 0)
                return true;
        }
        path += n;
        if (*path == ':')
            path++;
    }
    return false;
}

/* Single quotes are the one character a gnuplot '...' string cannot hold. */
static bool plot_path_ok(const char *dir)
{
    return strchr(dir, '\'') == NULL && strchr(dir, '\n') == NULL;
}

static void write_script(FILE *f, const char *dir, const tiers_summary_t *sum)
{
    unsigned col = 2;
    bool first = true;

    fprintf(f, "set terminal pngcairo size 1100,650 font ',11' noenhanced\n"
               "set datafile missing 'NaN'\n"
               "set grid\n"
               "set key outside right top\n");

    /* Bandwidth: one line per series, log x (block size) and log y. */
    fprintf(f, "$bw << EOD\n");
    for (unsigned k = 0; k < TIERS_NBLOCKS; k++) {
        fprintf(f, "%llu", (unsigned long long)tiers_blocks[k]);
        for (unsigned s = 0; s < TIERS_NSERIES; s++) {
            if (!sum->present[s])
                continue;
            if (isfinite(sum->gbs[s][k].v))
                fprintf(f, " %.5f", sum->gbs[s][k].v);
            else
                fprintf(f, " NaN");
        }
        fprintf(f, "\n");
    }
    fprintf(f, "EOD\n");
    fprintf(f, "set output '%s/tiers_bandwidth.png'\n", dir);
    fprintf(f,
            "set title 'farpool-bench tiers: sequential bandwidth by block size (median of %u "
            "run%s)'\n",
            sum->runs, sum->runs == 1 ? "" : "s");
    fprintf(f, "set xlabel 'block size'\nset ylabel 'GB/s'\nset logscale x 2\nset logscale y\n");
    fprintf(f, "set xtics (");
    for (unsigned k = 0; k < TIERS_NBLOCKS; k++)
        fprintf(f, "%s'%s' %llu", k ? ", " : "", tiers_block_names[k],
                (unsigned long long)tiers_blocks[k]);
    fprintf(f, ")\nplot ");
    for (unsigned s = 0; s < TIERS_NSERIES; s++) {
        if (!sum->present[s])
            continue;
        fprintf(f, "%s$bw using 1:%u with linespoints lw 2 pt 7 title '%s'", first ? "" : ", ",
                col++, tiers_series_labels[s]);
        first = false;
    }
    fprintf(f, "\n");

    /* Latency: median and p99 bars per series, log y. */
    fprintf(f, "reset\nset terminal pngcairo size 1100,650 font ',11' noenhanced\n"
               "set datafile missing 'NaN'\nset grid ytics\nset key inside left top\n");
    fprintf(f, "$lat << EOD\n");
    for (unsigned s = 0; s < TIERS_NSERIES; s++) {
        if (!sum->present[s] || !isfinite(sum->lat_med[s].v))
            continue;
        fprintf(f, "\"%s\" %.4f %.4f\n", tiers_series_labels[s], sum->lat_med[s].v,
                isfinite(sum->lat_p99[s].v) ? sum->lat_p99[s].v : sum->lat_med[s].v);
    }
    fprintf(f, "EOD\n");
    fprintf(f, "set output '%s/tiers_latency.png'\n", dir);
    fprintf(f,
            "set title 'farpool-bench tiers: random 4 KiB access latency (median of %u run%s)'\n",
            sum->runs, sum->runs == 1 ? "" : "s");
    fprintf(f, "set ylabel 'microseconds'\nset logscale y\nset yrange [0.1:*]\n"
               "set style data histograms\nset style histogram clustered gap 1\n"
               "set style fill solid 0.85 border -1\nset boxwidth 0.9\n"
               "set xtics rotate by 20 right scale 0\nset bmargin 7\n"
               "plot $lat using 2:xtic(1) title 'median', '' using 3 title 'p99'\n");
}

int tiers_plot(const char *dir, const tiers_summary_t *sum)
{
    char png[2][4352];
    uint64_t deadline;
    int pfd[2], st = 0;
    FILE *f;
    pid_t pid;

    if (!in_path("gnuplot")) {
        fprintf(stderr, "farpool-bench tiers: gnuplot not found: no PNG written (the CSV is "
                        "there); install gnuplot for the plots\n");
        return 1;
    }
    if (!plot_path_ok(dir)) {
        fprintf(stderr, "farpool-bench tiers: cannot plot into %s (a quote in the path)\n", dir);
        return -1;
    }
    /* No stale plot of an earlier run may pass for this one's. */
    snprintf(png[0], sizeof(png[0]), "%s/tiers_bandwidth.png", dir);
    snprintf(png[1], sizeof(png[1]), "%s/tiers_latency.png", dir);
    unlink(png[0]);
    unlink(png[1]);

    if (pipe(pfd) != 0) {
        fprintf(stderr, "farpool-bench tiers: pipe: %s\n", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "farpool-bench tiers: fork: %s\n", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(pfd[0], STDIN_FILENO);
        close(pfd[0]);
        close(pfd[1]);
        dup2(STDERR_FILENO, STDOUT_FILENO); /* stdout holds the tables */
        signal(SIGPIPE, SIG_DFL);
        execlp("gnuplot", "gnuplot", (char *)NULL);
        _exit(127);
    }
    close(pfd[0]);
    f = fdopen(pfd[1], "w");
    if (f == NULL) {
        close(pfd[1]);
    } else {
        write_script(f, dir, sum);
        fclose(f);
    }

    /* Bounded: a gnuplot that hangs is killed. */
    deadline = fp_time_ns() + PLOT_TIMEOUT_MS * FP_NS_PER_MS;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            st = -1;
            break;
        }
        if (fp_time_ns() > deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            fprintf(stderr, "farpool-bench tiers: gnuplot took over %d s; killed\n",
                    PLOT_TIMEOUT_MS / 1000);
            return -1;
        }
        bench_sleep_ms(10);
    }
    if (f == NULL || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || access(png[0], R_OK) != 0 ||
        access(png[1], R_OK) != 0) {
        fprintf(stderr, "farpool-bench tiers: gnuplot failed (status %d): no PNG written\n", st);
        return -1;
    }
    return 0;
}
