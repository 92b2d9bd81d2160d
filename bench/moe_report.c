/* SPDX-License-Identifier: MIT */
/* `farpool-bench moe`, the reports: tables, targets, CSV, plot; see moe_report.h. */
#include "moe_report.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "moe_proc.h"

#define PLOT_TIMEOUT_MS     60000
#define TARGET_HINT_VS_DISK 3.0  /* farpool 2 MiB + hints: load <= 1/3 of disk mmap */
#define TARGET_FAULT_RATIO  0.01 /* farpool 2 MiB faults <= 1% of 4 KiB's */
#define TARGET_WALL_S       600.0

const char *const moe_strategy_name[MOE_NSTRATEGIES] = {
    "dram", "mmap", "direct", "memcached", "fp4k", "fp2m", "fp2m-hint",
};

const char *const moe_strategy_label[MOE_NSTRATEGIES] = {
    "local DRAM (all resident)",  "cold disk, mmap",
    "cold disk, O_DIRECT read()", "memcached, 1 MiB items",
    "farpool 4 KiB, no prefetch", "farpool 2 MiB",
    "farpool 2 MiB + hints",
};

void moe_size_str(uint64_t size, char *buf, size_t len)
{
    if (size % GIB == 0)
        snprintf(buf, len, "%" PRIu64 "G", (uint64_t)(size / GIB));
    else if (size % MIB == 0)
        snprintf(buf, len, "%" PRIu64 "M", (uint64_t)(size / MIB));
    else
        snprintf(buf, len, "%" PRIu64, size);
}

/* A result with numbers in it. */
static bool measured(const moe_result_t *r)
{
    return r->outcome == MOE_MEASURED && r->runs > 0;
}

/* Measured, with loads worth comparing (not DRAM, which loads nothing). */
static const moe_result_t *loader(const moe_report_info_t *info, unsigned si, moe_strategy_t s)
{
    const moe_result_t *r = &info->result[si][s];

    return s != MOE_DRAM && measured(r) && r->loads > 0 ? r : NULL;
}

static void fmt_ms(char *buf, size_t len, double ms)
{
    if (ms >= 100)
        snprintf(buf, len, "%.0f", ms);
    else if (ms >= 10)
        snprintf(buf, len, "%.1f", ms);
    else if (ms >= 1)
        snprintf(buf, len, "%.2f", ms);
    else
        snprintf(buf, len, "%.3f", ms);
}

/* "0.31x" of @x against @base, or "-". */
static void fmt_ratio(char *buf, size_t len, double x, double base)
{
    if (base > 0 && x >= 0)
        snprintf(buf, len, "%.2fx", x / base);
    else
        snprintf(buf, len, "-");
}

/* "97.7% less" / "12.0% more" of @x against @base, as RMAI reports reductions. */
static void fmt_change(char *buf, size_t len, double x, double base)
{
    if (base <= 0 || x < 0)
        snprintf(buf, len, "-");
    else if (x <= base)
        snprintf(buf, len, "%.1f%% less", 100.0 * (1 - x / base));
    else
        snprintf(buf, len, "%.1f%% more", 100.0 * (x / base - 1));
}

void moe_report_tables(FILE *out, const moe_report_info_t *info)
{
    for (unsigned si = 0; si < info->nsizes; si++)
        moe_report_table(out, info, si);
}

void moe_report_table(FILE *out, const moe_report_info_t *info, unsigned si)
{
    {
        const moe_result_t *disk = loader(info, si, MOE_MMAP);
        const moe_result_t *fp4k = loader(info, si, MOE_FP4K);
        char sz[32], budget[32];

        moe_size_str(info->size[si], sz, sizeof(sz));
        fprintf(out, "\n### Experts of %s\n\n", sz);
        if (info->slots[si] == 0) {
            fprintf(out, "Skipped: %s\n", info->size_note[si]);
            return;
        }
        moe_size_str((uint64_t)info->slots[si] * info->size[si], budget, sizeof(budget));
        fprintf(out,
                "%u experts of %s, top-%u per batch, %u batches, budget %u experts (%s), "
                "%u run%s; medians.\n\n",
                info->experts, sz, info->top_k, info->batches, info->slots[si], budget, info->runs,
                info->runs == 1 ? "" : "s");
        fprintf(out, "| strategy | loads | load ms | unload ms | faults/load (app) | "
                     "farpool faults/load | moved MiB | CPU s | server CPU s | total s | "
                     "load vs disk mmap | load vs farpool 4K | load+unload vs disk mmap | "
                     "faults vs disk mmap |\n");
        fprintf(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
        for (unsigned s = 0; s < MOE_NSTRATEGIES; s++) {
            const moe_result_t *r = &info->result[si][s];
            char load[32], unload[32], vs_disk[32], vs_4k[32], lu[32], fv[32], fpf[32], srv[32];
            char loads[32];

            if (r->outcome == MOE_NOT_WANTED)
                continue;
            if (!measured(r)) {
                fprintf(out, "| %s | %s: %s | | | | | | | | | | | | |\n", moe_strategy_label[s],
                        r->outcome == MOE_SKIPPED ? "skipped" : "FAILED", r->note);
                continue;
            }
            if (s == MOE_DRAM) {
                fprintf(out,
                        "| %s | resident | - | - | - | - | 0 | %.2f | - | %.2f | - | - | - | - "
                        "|\n",
                        moe_strategy_label[s], r->cpu_s, r->total_s);
                continue;
            }
            fmt_ms(load, sizeof(load), r->load_ms);
            if (r->unloads_done > 0)
                fmt_ms(unload, sizeof(unload), r->unload_ms);
            else
                snprintf(unload, sizeof(unload), "-");
            if (r->loads_done < r->loads)
                snprintf(loads, sizeof(loads), "%u of %u", r->loads_done, r->loads);
            else
                snprintf(loads, sizeof(loads), "%u", r->loads);
            fmt_ratio(vs_disk, sizeof(vs_disk), r->load_ms, disk ? disk->load_ms : -1);
            fmt_ratio(vs_4k, sizeof(vs_4k), r->load_ms, fp4k ? fp4k->load_ms : -1);
            fmt_change(lu, sizeof(lu), r->load_unload_per_load_ms,
                       disk ? disk->load_unload_per_load_ms : -1);
            fmt_change(fv, sizeof(fv), r->faults_app, disk ? disk->faults_app : -1);
            if (s >= MOE_FP4K)
                snprintf(fpf, sizeof(fpf), "%.0f", r->faults_fp);
            else
                snprintf(fpf, sizeof(fpf), "-");
            if (s == MOE_MEMCACHED || s >= MOE_FP4K)
                snprintf(srv, sizeof(srv), "%.2f", r->server_cpu_s);
            else
                snprintf(srv, sizeof(srv), "-");
            fprintf(out,
                    "| %s%s%s | %s | %s | %s | %.0f | %s | %.0f | %.2f | %s | %.2f | %s | %s | %s "
                    "| %s |\n",
                    moe_strategy_label[s], r->wrong ? " **WRONG DATA**" : "",
                    r->truncated ? " (time limit)" : "", loads, load, unload, r->faults_app, fpf,
                    r->bytes_moved / MIB, r->cpu_s, srv, r->total_s, vs_disk, vs_4k, lu, fv);
        }
        fprintf(out, "\n");
    }
}

/* One cell of the targets table: @met and its text. */
static void target_cell(FILE *out, bool have, bool met, const char *text)
{
    if (!have)
        fprintf(out, " n/a (%s) |", text);
    else
        fprintf(out, " %s: %s |", text, met ? "met" : "**not met**");
}

void moe_report_targets(FILE *out, const moe_report_info_t *info)
{
    fprintf(out, "\n### Targets (ratios from this run)\n\n| target |");
    for (unsigned si = 0; si < info->nsizes; si++) {
        char sz[32];

        moe_size_str(info->size[si], sz, sizeof(sz));
        fprintf(out, " %s |", sz);
    }
    fprintf(out, "\n|---|");
    for (unsigned si = 0; si < info->nsizes; si++)
        fprintf(out, "---|");

    fprintf(out, "\n| farpool 2 MiB + hints: load <= 1/3 of cold disk mmap |");
    for (unsigned si = 0; si < info->nsizes; si++) {
        const moe_result_t *h = loader(info, si, MOE_FP2M_HINT), *d = loader(info, si, MOE_MMAP);
        char text[64] = "not measured";

        if (h != NULL && d != NULL)
            snprintf(text, sizeof(text), "%.2fx (%.0f vs %.0f ms)", h->load_ms / d->load_ms,
                     h->load_ms, d->load_ms);
        target_cell(out, h && d, h && d && h->load_ms * TARGET_HINT_VS_DISK <= d->load_ms, text);
    }
    fprintf(out, "\n| farpool 2 MiB + hints: load faster than memcached |");
    for (unsigned si = 0; si < info->nsizes; si++) {
        const moe_result_t *h = loader(info, si, MOE_FP2M_HINT);
        const moe_result_t *m = loader(info, si, MOE_MEMCACHED);
        char text[64] = "not measured";

        if (h != NULL && m != NULL)
            snprintf(text, sizeof(text), "%.2fx (%.0f vs %.0f ms)", h->load_ms / m->load_ms,
                     h->load_ms, m->load_ms);
        target_cell(out, h && m, h && m && h->load_ms < m->load_ms, text);
    }
    fprintf(out, "\n| farpool 2 MiB: page faults <= 1%% of 4 KiB's (application thread, "
                 "getrusage) |");
    for (unsigned si = 0; si < info->nsizes; si++) {
        const moe_result_t *a = loader(info, si, MOE_FP2M), *b = loader(info, si, MOE_FP4K);
        char text[64] = "not measured";
        bool have = a && b && b->faults_app > 0;

        if (have)
            snprintf(text, sizeof(text), "%.2f%% (%.0f vs %.0f per load)",
                     100 * a->faults_app / b->faults_app, a->faults_app, b->faults_app);
        target_cell(out, have, have && a->faults_app <= TARGET_FAULT_RATIO * b->faults_app, text);
    }
    fprintf(out, "\n| farpool 2 MiB: page faults <= 1%% of 4 KiB's (farpool's count) |");
    for (unsigned si = 0; si < info->nsizes; si++) {
        const moe_result_t *a = loader(info, si, MOE_FP2M), *b = loader(info, si, MOE_FP4K);
        char text[64] = "not measured";
        bool have = a && b && b->faults_fp > 0;

        if (have)
            snprintf(text, sizeof(text), "%.2f%% (%.0f vs %.0f per load)",
                     100 * a->faults_fp / b->faults_fp, a->faults_fp, b->faults_fp);
        target_cell(out, have, have && a->faults_fp <= TARGET_FAULT_RATIO * b->faults_fp, text);
    }
    fprintf(out, "\n\nWhole run: %.0f s", info->wall_s);
    if (info->is_default)
        fprintf(out, " (target for the default run: < %.0f s: %s)", TARGET_WALL_S,
                info->wall_s < TARGET_WALL_S ? "met" : "**not met**");
    fprintf(out, ".\n");
}

/* ------------------------------------------------------------------------ */
/* CSV                                                                      */
/* ------------------------------------------------------------------------ */

/* @text as a CSV field: quoted, with quotes doubled. */
static void csv_text(FILE *f, const char *text)
{
    fputc('"', f);
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

static const char *const outcome_name[] = {"not-wanted", "skipped", "failed", "measured"};

bool moe_report_csv(const char *path, const moe_report_info_t *info)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        moe_err("cannot write %s: %s", path, strerror(errno));
        return false;
    }
    fprintf(f, "expert_bytes,expert_size,experts,top_k,batches,budget_experts,strategy,outcome,"
               "note,wrong,truncated,runs,loads,unloads,loads_done,unloads_done,load_ms_median,"
               "load_ms_p90,"
               "unload_ms_median,faults_app_per_load,faults_process_per_load,"
               "faults_farpool_per_load,faults_app_per_run,faults_process_per_run,"
               "faults_farpool_per_run,bytes_moved_per_run,cpu_s,server_cpu_s,total_s,"
               "load_unload_s,load_unload_ms_per_load,compute_gbs,load_vs_mmap,load_vs_fp4k,load_"
               "unload_reduction_vs_mmap_"
               "pct,fault_reduction_vs_mmap_pct,checksum,prefetch_issued,prefetch_used,"
               "prefetch_late,prefetch_wasted,prefetch_hinted,evictions\n");
    for (unsigned si = 0; si < info->nsizes; si++) {
        const moe_result_t *disk = loader(info, si, MOE_MMAP);
        const moe_result_t *fp4k = loader(info, si, MOE_FP4K);
        char sz[32];

        moe_size_str(info->size[si], sz, sizeof(sz));
        for (unsigned s = 0; s < MOE_NSTRATEGIES; s++) {
            const moe_result_t *r = &info->result[si][s];
            bool m = measured(r), l = loader(info, si, (moe_strategy_t)s) != NULL;

            if (r->outcome == MOE_NOT_WANTED)
                continue;
            fprintf(f, "%" PRIu64 ",%s,%u,%u,%u,%u,%s,%s,", info->size[si], sz, info->experts,
                    info->top_k, info->batches, info->slots[si], moe_strategy_name[s],
                    outcome_name[r->outcome]);
            csv_text(f, r->note);
            if (!m) {
                fprintf(f, ",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,\n");
                continue;
            }
            fprintf(f,
                    ",%d,%d,%u,%u,%u,%u,%u,%.4f,%.4f,%.4f,%.1f,%.1f,%.1f,%.0f,%.0f,%.0f,%.0f,%.3f,"
                    "%.3f,%.3f,%.4f,%.4f,%.3f,",
                    r->wrong, r->truncated, r->runs, r->loads, r->unloads, r->loads_done,
                    r->unloads_done, r->load_ms, r->load_p90_ms, r->unload_ms, r->faults_app,
                    r->faults_proc, r->faults_fp, r->run_faults_app, r->run_faults_proc,
                    r->run_faults_fp, r->bytes_moved, r->cpu_s, r->server_cpu_s, r->total_s,
                    r->load_unload_s, r->load_unload_per_load_ms, r->compute_gbs);
            if (l && disk != NULL)
                fprintf(f, "%.4f,", r->load_ms / disk->load_ms);
            else
                fprintf(f, ",");
            if (l && fp4k != NULL)
                fprintf(f, "%.4f,", r->load_ms / fp4k->load_ms);
            else
                fprintf(f, ",");
            if (l && disk != NULL && disk->load_unload_per_load_ms > 0)
                fprintf(f, "%.2f,",
                        100.0 * (1 - r->load_unload_per_load_ms / disk->load_unload_per_load_ms));
            else
                fprintf(f, ",");
            if (l && disk != NULL && disk->faults_app > 0)
                fprintf(f, "%.2f,", 100.0 * (1 - r->faults_app / disk->faults_app));
            else
                fprintf(f, ",");
            fprintf(f, "%016" PRIx64 ",", r->checksum);
            if (r->has_prefetch)
                fprintf(
                    f, "%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n",
                    r->pf_issued, r->pf_used, r->pf_late, r->pf_wasted, r->pf_hinted, r->evictions);
            else
                fprintf(f, ",,,,,\n");
        }
    }
    if (fclose(f) != 0) {
        moe_err("writing %s: %s", path, strerror(errno));
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* The plot                                                                 */
/* ------------------------------------------------------------------------ */

/* Write the gnuplot script for @png with terminal @term; false on failure. */
static bool plot_script(const char *script, const char *png, const char *term,
                        const moe_report_info_t *info)
{
    FILE *f = fopen(script, "w");
    double ymin = 0, ymax = 0;
    bool any = false;

    if (f == NULL) {
        moe_err("cannot write %s: %s", script, strerror(errno));
        return false;
    }
    fprintf(f, "set terminal %s size 1000,620 noenhanced\n", term);
    fprintf(f, "set output '%s'\n", png);
    fprintf(f,
            "set title \"farpool-bench moe: median expert load time (%u experts, top-%u, "
            "%u batches, seed %" PRIu64 ")\"\n",
            info->experts, info->top_k, info->batches, info->seed);
    fprintf(f, "set xlabel \"expert size (MiB)\"\nset ylabel \"median load time (ms)\"\n");
    fprintf(f, "set logscale x 2\nset logscale y 10\nset grid\nset key outside right\n");
    fprintf(f, "set xrange [%.3f:%.3f]\n", (double)info->size[0] / MIB / 1.5,
            (double)info->size[info->nsizes - 1] / MIB * 1.5);
    /* The y range from the data, a factor of 2 around it: never empty, even with one point. */
    for (unsigned si = 0; si < info->nsizes; si++) {
        for (unsigned s = MOE_MMAP; s < MOE_NSTRATEGIES; s++) {
            const moe_result_t *r = loader(info, si, (moe_strategy_t)s);

            if (r != NULL && r->load_ms > 0) {
                ymin = ymin == 0 || r->load_ms < ymin ? r->load_ms : ymin;
                ymax = r->load_ms > ymax ? r->load_ms : ymax;
            }
        }
    }
    if (ymin > 0)
        fprintf(f, "set yrange [%.6g:%.6g]\n", ymin / 2, ymax * 2);
    fprintf(f, "set xtics (");
    for (unsigned si = 0; si < info->nsizes; si++)
        fprintf(f, "%s\"%" PRIu64 "\" %" PRIu64, si ? ", " : "", (uint64_t)(info->size[si] / MIB),
                (uint64_t)(info->size[si] / MIB));
    fprintf(f, ")\n");
    for (unsigned s = MOE_MMAP; s < MOE_NSTRATEGIES; s++) {
        fprintf(f, "$s%u << EOD\n", s);
        for (unsigned si = 0; si < info->nsizes; si++) {
            const moe_result_t *r = loader(info, si, (moe_strategy_t)s);

            if (r != NULL && r->load_ms > 0)
                fprintf(f, "%" PRIu64 " %.6f\n", (uint64_t)(info->size[si] / MIB), r->load_ms);
        }
        fprintf(f, "EOD\n");
    }
    fprintf(f, "plot");
    for (unsigned s = MOE_MMAP; s < MOE_NSTRATEGIES; s++) {
        bool has = false;

        for (unsigned si = 0; si < info->nsizes; si++)
            has = has || loader(info, si, (moe_strategy_t)s) != NULL;
        if (!has)
            continue;
        fprintf(f, "%s $s%u using 1:2 with linespoints lw 2 pt 7 title \"%s\"", any ? "," : "", s,
                moe_strategy_label[s]);
        any = true;
    }
    fprintf(f, "\n");
    if (fclose(f) != 0 || !any) {
        if (!any)
            moe_err("nothing was measured that loads experts: no plot");
        unlink(script);
        return false;
    }
    return true;
}

int moe_report_plot(const char *png, const moe_report_info_t *info)
{
    static const char *const terms[] = {"pngcairo", "png"};
    char gnuplot[PATH_MAX], script[PATH_MAX + 8];

    if (!bench_find_program("gnuplot", gnuplot, sizeof(gnuplot))) {
        moe_err("gnuplot not found: no plot (install gnuplot; the CSV has the numbers)");
        return 1;
    }
    snprintf(script, sizeof(script), "%s.gp", png);
    for (unsigned i = 0; i < sizeof(terms) / sizeof(terms[0]); i++) {
        char *argv[] = {gnuplot, script, NULL};
        int rc;

        if (!plot_script(script, png, terms[i], info))
            return -1;
        moe_path_register(script);
        rc = moe_run_program(argv, PLOT_TIMEOUT_MS);
        unlink(script);
        moe_path_forget(script);
        if (rc == 0 && access(png, R_OK) == 0)
            return 0;
        moe_err("gnuplot could not draw %s with the %s terminal (exit %d)%s", png, terms[i], rc,
                i + 1 < sizeof(terms) / sizeof(terms[0]) ? "; trying another" : "");
    }
    return -1;
}
