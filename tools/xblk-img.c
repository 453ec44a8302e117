/*
 * xblk-img - the offline image tool, driven like qemu-img: create, info,
 * check, snapshot, convert, commit, rebase, map, compare, resize, amend
 * and bench.  Messages, output formats and exit codes follow qemu-img so
 * that its users and scripts need nothing new.
 *
 * Each command parses its options, opens images through the block layer
 * (tools/img-common.c) and reports errors as "xblk-img: <message>".
 * Images are locked as QEMU locks them (docs/locking.md); -U
 * (--force-share) opens the images a command only reads without
 * conflicting locks, and is refused with a read-write open, as qemu-img.
 */
#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/snapshot.h"
#include "tools/img-common.h"
#include "util/cutils.h"
#include "util/error.h"
#include "util/main-loop.h"
#include "util/progress.h"
#include "util/version.h"
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define XBLK_VERSION XBLK_VERSION_STRING

typedef struct ImgCmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *synopsis;
    const char *help;
} ImgCmd;

static const ImgCmd *img_find_cmd(const char *name);

static void img_cmd_help(const char *name)
{
    const ImgCmd *c = img_find_cmd(name);
    printf("Usage: xblk-img %s %s\n\n%s", c->name, c->synopsis, c->help);
}

/* Handles -h/--help and unknown options the same way in every command. */
#define HELP_OPT { "help", no_argument, NULL, 'h' }

static int img_usage_error(const char *cmd, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
static int img_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_report("%s", msg);
    fprintf(stderr, "Try 'xblk-img %s --help' for more information\n", cmd);
    return 1;
}

static void append_opts(char **dst, const char *add)
{
    if (!*dst) {
        *dst = g_strdup(add);
    } else {
        char *n = g_strconcat(*dst, ",", add, NULL);
        g_free(*dst);
        *dst = n;
    }
}

/* ---- create ---- */

static void print_create_line(const char *filename, const char *fmt,
                              BlockOpts *o)
{
    GString *line = g_string_new(NULL);
    g_string_append_printf(line, "Formatting '%s', fmt=%s", filename, fmt);
    static const char *order[] = { "backing_file", "backing_fmt",
        "cluster_size", "extended_l2", "compression_type", "preallocation",
        "compat", "size", "lazy_refcounts", "refcount_bits", NULL };
    bool qcow2 = !strcmp(fmt, "qcow2");
    for (int i = 0; order[i]; i++) {
        const char *v = bopts_get(o, order[i]);
        if (!v && qcow2) {
            if (!strcmp(order[i], "cluster_size")) v = "65536";
            else if (!strcmp(order[i], "extended_l2")) v = "off";
            else if (!strcmp(order[i], "compression_type")) v = "zlib";
            else if (!strcmp(order[i], "lazy_refcounts")) v = "off";
            else if (!strcmp(order[i], "refcount_bits")) v = "16";
        }
        if (v) {
            g_string_append_printf(line, " %s=%s", order[i], v);
        }
    }
    printf("%s\n", line->str);
    g_string_free(line, TRUE);
}

static void print_create_options(const char *fmt)
{
    BlockDriver *drv = bdrv_find_format(fmt);
    printf("Supported options:\n");
    for (int i = 0; drv && drv->create_opts && drv->create_opts[i]; i++) {
        printf("  %s\n", drv->create_opts[i]);
    }
}

static int img_create(int argc, char **argv)
{
    const char *fmt = "raw", *base = NULL, *base_fmt = NULL;
    g_autofree char *options = NULL;
    bool quiet = false;
    static const struct option longopts[] = { HELP_OPT, { 0 } };
    int c;
    while ((c = getopt_long(argc, argv, "+hf:o:b:F:uq", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': img_cmd_help("create"); return 0;
        case 'f': fmt = optarg; break;
        case 'o': append_opts(&options, optarg); break;
        case 'b': base = optarg; break;
        case 'F': base_fmt = optarg; break;
        case 'u': break;
        case 'q': quiet = true; break;
        default: return img_usage_error("create", "Invalid option");
        }
    }
    if (optind >= argc) {
        return img_usage_error("create", "Expecting image file name");
    }
    const char *filename = argv[optind++];
    if (options && (!strcmp(options, "help") || !strcmp(options, "?"))) {
        print_create_options(fmt);
        return 0;
    }
    g_autoptr(BlockOpts) o = bopts_new();
    GError *err = NULL;
    if (options && !bopts_parse(o, options, &err)) {
        error_report("%s: %s", filename, err->message);
        g_error_free(err);
        return 1;
    }
    if (optind < argc) {
        uint64_t size;
        if (!img_parse_size(argv[optind], &size)) {
            error_report("Invalid image size specified. You may use k, M, G, "
                         "T, P or E suffixes for");
            error_report("kilobytes, megabytes, gigabytes, terabytes, "
                         "petabytes and exabytes.");
            return 1;
        }
        g_autofree char *s = g_strdup_printf("%" G_GUINT64_FORMAT, size);
        bopts_set(o, "size", s);
        optind++;
    }
    if (optind < argc) {
        return img_usage_error("create", "Unexpected argument: %s",
                               argv[optind]);
    }
    if (base) {
        bopts_set(o, "backing_file", base);
    }
    if (base_fmt) {
        bopts_set(o, "backing_fmt", base_fmt);
    }
    if (bopts_get(o, "backing_file") && !bopts_get(o, "backing_fmt")) {
        /* As qemu-img: guessing the backing format is a security risk,
         * so it must be given; say what it looks like. */
        const char *b = bopts_get(o, "backing_file");
        g_autofree char *dir = g_path_get_dirname(filename);
        g_autofree char *path = g_path_is_absolute(b) ? g_strdup(b)
            : g_build_filename(dir, b, NULL);
        const char *probed = bdrv_probe_format(path, NULL);
        error_report("%s: Backing file specified without backing format",
                     filename);
        if (probed) {
            fprintf(stderr, "Detected format of %s.\n", probed);
        }
        return 1;
    }
    if (!bopts_get(o, "size") && !bopts_get(o, "backing_file")) {
        error_report("%s: Image creation needs a size parameter", filename);
        return 1;
    }
    if (!quiet) {
        print_create_line(filename, fmt, o);
    }
    if (bdrv_create(fmt, filename, o, &err) < 0) {
        error_report("%s: %s", filename, err->message);
        g_error_free(err);
        return 1;
    }
    return 0;
}

/* ---- info ---- */

static void json_print(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
    printf("%s\n", s);
    free(s);
}

static void format_clock(uint64_t nsec, char *buf, size_t len)
{
    uint64_t secs = nsec / 1000000000ULL;
    snprintf(buf, len, "%02" G_GUINT64_FORMAT ":%02u:%02u.%03u",
             secs / 3600, (unsigned)(secs / 60 % 60), (unsigned)(secs % 60),
             (unsigned)(nsec / 1000000 % 1000));
}

static void print_snapshot_header(void)
{
    printf("%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE",
           "VM CLOCK", "ICOUNT");
}

static void print_snapshot_row(const BdrvSnapshotInfo *sn)
{
    char date[32], clock[32], icount[32] = "";
    time_t t = sn->date_sec;
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    format_clock(sn->vm_clock_nsec, clock, sizeof(clock));
    if (sn->icount != BDRV_SNAPSHOT_NO_ICOUNT) {
        snprintf(icount, sizeof(icount), "%" G_GUINT64_FORMAT, sn->icount);
    }
    g_autofree char *vm = size_to_str(sn->vm_state_size);
    printf("%-9s %-16s %8s%20s%13s%11s\n", sn->id_str, sn->name, vm, date,
           clock, icount);
}

static json_t *snapshot_json(const BdrvSnapshotInfo *sn)
{
    json_t *o = json_object();
    if (sn->icount != BDRV_SNAPSHOT_NO_ICOUNT) {
        json_object_set_new(o, "icount", json_integer(sn->icount));
    }
    json_object_set_new(o, "vm-clock-nsec",
                        json_integer(sn->vm_clock_nsec % 1000000000ULL));
    json_object_set_new(o, "name", json_string(sn->name));
    json_object_set_new(o, "date-sec", json_integer(sn->date_sec));
    json_object_set_new(o, "date-nsec", json_integer(sn->date_nsec));
    json_object_set_new(o, "vm-clock-sec",
                        json_integer(sn->vm_clock_nsec / 1000000000ULL));
    json_object_set_new(o, "id", json_string(sn->id_str));
    json_object_set_new(o, "vm-state-size", json_integer(sn->vm_state_size));
    return o;
}

/* Key order follows qemu-img's output, so diffs against it stay quiet. */
static json_t *image_info_json(BlockDriverState *bs)
{
    json_t *o = json_object();
    if (bs->backing_file && bs->backing_format) {
        json_object_set_new(o, "backing-filename-format",
                            json_string(bs->backing_format));
    }
    BdrvSnapshotInfo *list = NULL;
    int n = bdrv_snapshot_list(bs, &list);
    if (n > 0) {
        json_t *arr = json_array();
        for (int i = 0; i < n; i++) {
            json_array_append_new(arr, snapshot_json(&list[i]));
        }
        json_object_set_new(o, "snapshots", arr);
    }
    if (n >= 0) {
        bdrv_snapshot_list_free(list, n);
    }
    json_object_set_new(o, "virtual-size", json_integer(bdrv_getlength(bs)));
    json_object_set_new(o, "filename", json_string(bs->filename));
    int cs = bdrv_get_cluster_size(bs);
    if (cs > 0) {
        json_object_set_new(o, "cluster-size", json_integer(cs));
    }
    json_object_set_new(o, "format", json_string(bdrv_get_format_name(bs)));
    int64_t actual = bdrv_get_allocated_file_size(bs);
    if (actual >= 0) {
        json_object_set_new(o, "actual-size", json_integer(actual));
    }
    json_t *spec = bdrv_get_specific_info(bs);
    if (spec) {
        json_object_set_new(o, "format-specific", spec);
    }
    if (bs->backing_file) {
        g_autofree char *full = bdrv_resolve_backing_path(bs, bs->backing_file);
        json_object_set_new(o, "full-backing-filename", json_string(full));
        json_object_set_new(o, "backing-filename",
                            json_string(bs->backing_file));
    }
    json_object_set_new(o, "dirty-flag", json_false());
    return o;
}

/* Prints a format-specific json tree the way qemu-img's human output does. */
static void print_specific(json_t *j, int indent)
{
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        g_autofree char *name = g_strdup(key);
        for (char *p = name; *p; p++) {
            if (*p == '-') {
                *p = ' ';
            }
        }
        printf("%*s%s:", indent, "", name);
        if (json_is_object(v)) {
            printf("\n");
            print_specific(v, indent + 4);
        } else if (json_is_array(v)) {
            printf("\n");
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                printf("%*s[%zu]:", indent + 4, "", i);
                if (json_is_object(e)) {
                    printf("\n");
                    print_specific(e, indent + 8);
                } else {
                    char *s = json_dumps(e, JSON_ENCODE_ANY);
                    printf(" %s\n", json_is_string(e) ? json_string_value(e)
                                                       : s);
                    free(s);
                }
            }
        } else if (json_is_string(v)) {
            printf(" %s\n", json_string_value(v));
        } else {
            char *s = json_dumps(v, JSON_ENCODE_ANY);
            printf(" %s\n", s);
            free(s);
        }
    }
}

static void print_info_human(BlockDriverState *bs)
{
    int64_t size = bdrv_getlength(bs);
    g_autofree char *vs = size_to_str(size);
    printf("image: %s\n", bs->filename);
    printf("file format: %s\n", bdrv_get_format_name(bs));
    printf("virtual size: %s (%" G_GINT64_FORMAT " bytes)\n", vs, size);
    int64_t actual = bdrv_get_allocated_file_size(bs);
    if (actual >= 0) {
        g_autofree char *as = size_to_str(actual);
        printf("disk size: %s\n", as);
    } else {
        printf("disk size: unavailable\n");
    }
    int cs = bdrv_get_cluster_size(bs);
    if (cs > 0) {
        printf("cluster_size: %d\n", cs);
    }
    if (bs->backing_file) {
        g_autofree char *full = bdrv_resolve_backing_path(bs, bs->backing_file);
        if (strcmp(full, bs->backing_file)) {
            printf("backing file: %s (actual path: %s)\n", bs->backing_file,
                   full);
        } else {
            printf("backing file: %s\n", bs->backing_file);
        }
        if (bs->backing_format) {
            printf("backing file format: %s\n", bs->backing_format);
        }
    }
    BdrvSnapshotInfo *list = NULL;
    int n = bdrv_snapshot_list(bs, &list);
    if (n > 0) {
        printf("Snapshot list:\n");
        print_snapshot_header();
        for (int i = 0; i < n; i++) {
            print_snapshot_row(&list[i]);
        }
    }
    if (n >= 0) {
        bdrv_snapshot_list_free(list, n);
    }
    json_t *spec = bdrv_get_specific_info(bs);
    if (spec) {
        printf("Format specific information:\n");
        print_specific(json_object_get(spec, "data"), 4);
        json_decref(spec);
    }
}

static int img_info(int argc, char **argv)
{
    const char *fmt = NULL, *output = "human";
    bool chain = false;
    int force_share = 0;
    enum { OPT_OUTPUT = 256, OPT_CHAIN, OPT_IMAGE_OPTS, OPT_OBJECT };
    static const struct option longopts[] = {
        HELP_OPT,
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "backing-chain", no_argument, NULL, OPT_CHAIN },
        { "force-share", no_argument, NULL, 'U' },
        { 0 }
    };
    int c;
    while ((c = getopt_long(argc, argv, "+hf:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': img_cmd_help("info"); return 0;
        case 'f': fmt = optarg; break;
        case 'U': force_share = BDRV_O_FORCE_SHARE; break;
        case OPT_OUTPUT: output = optarg; break;
        case OPT_CHAIN: chain = true; break;
        default: return img_usage_error("info", "Invalid option");
        }
    }
    if (strcmp(output, "human") && strcmp(output, "json")) {
        error_report("--output must be used with human or json as argument.");
        return 1;
    }
    if (optind != argc - 1) {
        return img_usage_error("info", "Expecting one image file name");
    }
    BlockBackend *blk = img_open(argv[optind], fmt, NULL,
                                 (chain ? 0 : BDRV_O_NO_BACKING) | force_share |
                                 BDRV_O_NO_IO,
                                 false, false);
    if (!blk) {
        return 1;
    }
    bool json = !strcmp(output, "json");
    json_t *arr = json_array();
    BlockDriverState *bs = blk_bs(blk);
    for (int depth = 0; bs; depth++) {
        if (json) {
            json_array_append_new(arr, image_info_json(bs));
        } else {
            if (depth) {
                printf("\n");
            }
            print_info_human(bs);
        }
        bs = chain ? bdrv_backing_bs(bs) : NULL;
    }
    if (json) {
        json_print(chain ? arr : json_array_get(arr, 0));
    }
    json_decref(arr);
    blk_unref(blk);
    return 0;
}

/* ---- check ---- */

static int img_check(int argc, char **argv)
{
    const char *fmt = NULL, *output = "human";
    bool quiet = false;
    BdrvCheckMode fix = 0;
    int flags = BDRV_O_CHECK;
    enum { OPT_OUTPUT = 256 };
    static const struct option longopts[] = {
        HELP_OPT,
        { "format", required_argument, NULL, 'f' },
        { "repair", required_argument, NULL, 'r' },
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "force-share", no_argument, NULL, 'U' },
        { 0 }
    };
    int c;
    while ((c = getopt_long(argc, argv, "+hf:r:T:qU", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': img_cmd_help("check"); return 0;
        case 'f': fmt = optarg; break;
        case 'r':
            flags |= BDRV_O_RDWR;
            if (!strcmp(optarg, "leaks")) {
                fix = BDRV_FIX_LEAKS;
            } else if (!strcmp(optarg, "all")) {
                fix = BDRV_FIX_LEAKS | BDRV_FIX_ERRORS;
            } else {
                return img_usage_error("check", "Unknown option value for "
                                       "-r (expecting 'leaks' or 'all'): %s",
                                       optarg);
            }
            break;
        case 'T': break;
        case 'q': quiet = true; break;
        case 'U': flags |= BDRV_O_FORCE_SHARE; break;
        case OPT_OUTPUT: output = optarg; break;
        default: return img_usage_error("check", "Invalid option");
        }
    }
    if (strcmp(output, "human") && strcmp(output, "json")) {
        error_report("--output must be used with human or json as argument.");
        return 1;
    }
    if (optind != argc - 1) {
        return img_usage_error("check", "Expecting one image file name");
    }
    const char *filename = argv[optind];
    bool json = !strcmp(output, "json");
    BlockBackend *blk = img_open(filename, fmt, NULL,
                                 flags | BDRV_O_NO_BACKING, false, quiet);
    if (!blk) {
        return 1;
    }
    BlockDriverState *bs = blk_bs(blk);
    BdrvCheckResult res;
    int ret = bdrv_check(bs, &res, fix);
    if (ret == -ENOTSUP) {
        error_report("This image format does not support checks");
        bdrv_check_result_clear(&res);
        blk_unref(blk);
        return 63;
    }
    bool repaired = res.corruptions_fixed || res.leaks_fixed;
    /* Per-cluster findings go to stderr, as qemu-img prints them. */
    fputs(res.log->str, stderr);
    if (fix && repaired && ret >= 0) {
        /* As qemu-img does: report the fixes, then check again. */
        if (!json && !quiet) {
            printf("The following inconsistencies were found and repaired:"
                   "\n\n    %d leaked clusters\n    %d corruptions\n\n"
                   "Double checking the fixed image now...\n",
                   res.leaks_fixed, res.corruptions_fixed);
        }
        int lf = res.leaks_fixed, cf = res.corruptions_fixed;
        bdrv_check_result_clear(&res);
        ret = bdrv_check(bs, &res, 0);
        res.leaks_fixed = lf;
        res.corruptions_fixed = cf;
    }
    if (ret < 0) {
        res.check_errors++;
    }
    if (json) {
        /* qemu-img's key order (that of its QDict). */
        json_t *o = json_object();
        json_object_set_new(o, "image-end-offset",
                            json_integer(res.image_end_offset));
        if (res.compressed_clusters) {
            json_object_set_new(o, "compressed-clusters",
                                json_integer(res.compressed_clusters));
        }
        json_object_set_new(o, "total-clusters",
                            json_integer(res.total_clusters));
        if (res.corruptions) {
            json_object_set_new(o, "corruptions",
                                json_integer(res.corruptions));
        }
        if (res.corruptions_fixed) {
            json_object_set_new(o, "corruptions-fixed",
                                json_integer(res.corruptions_fixed));
        }
        json_object_set_new(o, "check-errors", json_integer(res.check_errors));
        if (res.leaks) {
            json_object_set_new(o, "leaks", json_integer(res.leaks));
        }
        if (res.leaks_fixed) {
            json_object_set_new(o, "leaks-fixed",
                                json_integer(res.leaks_fixed));
        }
        json_object_set_new(o, "allocated-clusters",
                            json_integer(res.allocated_clusters));
        json_object_set_new(o, "filename", json_string(filename));
        json_object_set_new(o, "format", json_string(bdrv_get_format_name(bs)));
        if (res.fragmented_clusters) {
            json_object_set_new(o, "fragmented-clusters",
                                json_integer(res.fragmented_clusters));
        }
        json_print(o);
        json_decref(o);
    } else if (!quiet) {
        if (!res.corruptions && !res.leaks && !res.check_errors) {
            printf("No errors were found on the image.\n");
        } else {
            if (res.corruptions) {
                printf("\n%d errors were found on the image.\n"
                       "Data may be corrupted, or further writes to the "
                       "image may corrupt it.\n", res.corruptions);
            }
            if (res.leaks) {
                printf("\n%d leaked clusters were found on the image.\n"
                       "This means waste of disk space, but no harm to "
                       "data.\n", res.leaks);
            }
            if (res.check_errors) {
                printf("\n%d internal errors have occurred during the "
                       "check.\n", res.check_errors);
            }
        }
        if (res.total_clusters && res.allocated_clusters >= 0) {
            printf("%" G_GINT64_FORMAT "/%" G_GINT64_FORMAT " = %0.2f%% "
                   "allocated, %0.2f%% fragmented, %0.2f%% compressed "
                   "clusters\n", res.allocated_clusters, res.total_clusters,
                   res.allocated_clusters * 100.0 / res.total_clusters,
                   res.allocated_clusters ? res.fragmented_clusters * 100.0 /
                   res.allocated_clusters : 0.0,
                   res.allocated_clusters ? res.compressed_clusters * 100.0 /
                   res.allocated_clusters : 0.0);
        }
        if (res.image_end_offset) {
            printf("Image end offset: %" G_GINT64_FORMAT "\n",
                   res.image_end_offset);
        }
    }
    int code = 0;
    if (res.check_errors) {
        code = 1;
    } else if (res.corruptions) {
        code = 2;
    } else if (res.leaks) {
        code = 3;
    }
    bdrv_check_result_clear(&res);
    blk_unref(blk);
    return code;
}

/* ---- snapshot ---- */

static int img_snapshot(int argc, char **argv)
{
    enum { SN_NONE, SN_LIST, SN_CREATE, SN_APPLY, SN_DELETE } action = SN_NONE;
    const char *name = NULL, *fmt = NULL;
    bool quiet = false;
    int force_share = 0;
    static const struct option longopts[] = {
        HELP_OPT,
        { "format", required_argument, NULL, 'f' },
        { "force-share", no_argument, NULL, 'U' },
        { 0 }
    };
    int c;
    while ((c = getopt_long(argc, argv, "+hla:c:d:f:qU", longopts,
                            NULL)) != -1) {
        if (strchr("lacd", c) && action != SN_NONE) {
            return img_usage_error("snapshot", "Cannot mix '-l', '-a', '-c', "
                                   "'-d'");
        }
        switch (c) {
        case 'h': img_cmd_help("snapshot"); return 0;
        case 'l': action = SN_LIST; break;
        case 'a': action = SN_APPLY; name = optarg; break;
        case 'c': action = SN_CREATE; name = optarg; break;
        case 'd': action = SN_DELETE; name = optarg; break;
        case 'f': fmt = optarg; break;
        case 'q': quiet = true; break;
        case 'U': force_share = BDRV_O_FORCE_SHARE; break;
        default: return img_usage_error("snapshot", "Invalid option");
        }
    }
    if (optind != argc - 1) {
        return img_usage_error("snapshot", "Expecting one image file name");
    }
    if (action == SN_NONE) {
        action = SN_LIST;
    }
    int flags = BDRV_O_NO_BACKING | (action == SN_LIST ? 0 : BDRV_O_RDWR) |
                force_share;
    BlockBackend *blk = img_open(argv[optind], fmt, NULL, flags, false, quiet);
    if (!blk) {
        return 1;
    }
    BlockDriverState *bs = blk_bs(blk);
    GError *err = NULL;
    int ret = 0;
    switch (action) {
    case SN_LIST: {
        BdrvSnapshotInfo *list = NULL;
        int n = bdrv_snapshot_list(bs, &list);
        if (n < 0) {
            error_report("Could not list snapshots: %s", g_strerror(-n));
            ret = 1;
            break;
        }
        printf("Snapshot list:\n");
        print_snapshot_header();
        for (int i = 0; i < n; i++) {
            print_snapshot_row(&list[i]);
        }
        bdrv_snapshot_list_free(list, n);
        break;
    }
    case SN_CREATE: {
        gint64 now = g_get_real_time();
        BdrvSnapshotInfo sn = {
            .name = (char *)name,
            .date_sec = now / G_USEC_PER_SEC,
            .date_nsec = (now % G_USEC_PER_SEC) * 1000,
            .icount = 0,   /* qemu-img records 0 outside replay */
        };
        if (bdrv_snapshot_create(bs, &sn, &err) < 0) {
            error_report("Could not create snapshot '%s': %s", name,
                         err->message);
            ret = 1;
        }
        break;
    }
    case SN_APPLY:
        if (bdrv_snapshot_apply(bs, name, &err) < 0) {
            error_report("Could not apply snapshot '%s': %s", name,
                         err->message);
            ret = 1;
        }
        break;
    case SN_DELETE: {
        BdrvSnapshotInfo found = { 0 };
        if (!bdrv_snapshot_find(bs, name, &found)) {
            error_report("Could not delete snapshot '%s': snapshot not found",
                         name);
            ret = 1;
            break;
        }
        if (bdrv_snapshot_delete(bs, found.id_str, NULL, &err) < 0) {
            error_report("Could not delete snapshot '%s': %s", name,
                         err->message);
            ret = 1;
        }
        bdrv_snapshot_info_clear(&found);
        break;
    }
    default:
        break;
    }
    if (err) {
        g_error_free(err);
    }
    blk_unref(blk);
    return ret;
}

/* ---- convert ---- */

typedef struct ConvertState {
    BlockBackend **src;
    int64_t *src_sizes;
    int nb_src;
    BlockBackend *dst;
    int64_t total;
    int64_t next;             /* next offset to hand out */
    int64_t done;
    int64_t chunk;
    bool compress;
    bool target_has_backing;  /* -B: skip what the backing provides */
    bool target_zeroed;       /* fresh target reads as zero */
    int64_t sparse;           /* -S: minimum zero run to skip */
    int running;
    int ret;
} ConvertState;

/* Finds the source and offset for a global offset (sources concatenate). */
static BlockBackend *convert_src(ConvertState *s, int64_t off,
                                 int64_t *src_off, int64_t *left)
{
    for (int i = 0; i < s->nb_src; i++) {
        if (off < s->src_sizes[i]) {
            *src_off = off;
            *left = s->src_sizes[i] - off;
            return s->src[i];
        }
        off -= s->src_sizes[i];
    }
    return NULL;
}

static int coroutine_fn convert_chunk(ConvertState *s, int64_t off,
                                      int64_t len, uint8_t *buf)
{
    int64_t soff = 0, left = 0;
    BlockBackend *src = convert_src(s, off, &soff, &left);
    len = MIN(len, left);
    BlockDriverState *sbs = blk_bs(src);
    while (len > 0) {
        int64_t pnum;
        int depth;
        int st = bdrv_block_status_above(sbs, soff, len, &pnum, NULL, NULL,
                                         &depth);
        if (st < 0) {
            return st;
        }
        pnum = MAX(MIN(pnum, len), 1);
        bool from_backing = s->target_has_backing && depth > 0 &&
                            !(st & BDRV_BLOCK_ALLOCATED && depth == 0);
        bool zero = (st & BDRV_BLOCK_ZERO) && !(st & BDRV_BLOCK_DATA);
        int ret = 0;
        if (from_backing) {
            /* The target's backing file provides this part. */
        } else if (zero) {
            if (!s->target_zeroed) {
                ret = blk_co_pwrite_zeroes(s->dst, off, pnum, 0);
            }
        } else {
            IOVector q;
            iovec_init_buf(&q, buf, pnum);
            ret = blk_co_preadv(src, soff, pnum, &q, 0);
            if (ret >= 0) {
                if (s->compress) {
                    ret = blk_co_pwritev(s->dst, off, pnum, &q,
                                         BDRV_REQ_WRITE_COMPRESSED);
                } else if (s->sparse && s->target_zeroed &&
                           buffer_is_zero(buf, pnum)) {
                    /* -S: a zero buffer on a fresh target needs no write */
                } else {
                    ret = blk_co_pwritev(s->dst, off, pnum, &q, 0);
                }
            }
        }
        if (ret < 0) {
            return ret;
        }
        off += pnum;
        soff += pnum;
        len -= pnum;
        s->done += pnum;
    }
    return 0;
}

static void coroutine_fn convert_worker(void *opaque)
{
    ConvertState *s = opaque;
    uint8_t *buf = bdrv_blockalign(NULL, s->chunk);
    while (s->ret >= 0 && s->next < s->total) {
        int64_t off = s->next;
        s->next = MIN(s->total, ROUND_DOWN(off, s->chunk) + s->chunk);
        int ret = convert_chunk(s, off, s->next - off, buf);
        if (ret < 0 && s->ret >= 0) {
            s->ret = ret;
        }
        progress_update(s->done, s->total);
    }
    bdrv_vfree(buf);
    s->running--;
}

static int img_convert(int argc, char **argv)
{
    const char *fmt = NULL, *out_fmt = "raw", *backing = NULL;
    const char *cache = "unsafe", *src_cache = "writeback";
    g_autofree char *options = NULL;
    bool compress = false, progress = false, quiet = false, skip_create = false;
    int workers = 8, force_share = 0;
    int64_t sparse = 4096;
    static const struct option longopts[] = {
        HELP_OPT,
        { "force-share", no_argument, NULL, 'U' },
        { 0 }
    };
    int c;
    while ((c = getopt_long(argc, argv, "+hf:O:o:B:cpt:T:qnm:WS:U", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'h': img_cmd_help("convert"); return 0;
        case 'f': fmt = optarg; break;
        case 'O': out_fmt = optarg; break;
        case 'o': append_opts(&options, optarg); break;
        case 'B': backing = optarg; break;
        case 'c': compress = true; break;
        case 'p': progress = true; break;
        case 't': cache = optarg; break;
        case 'T': src_cache = optarg; break;
        case 'q': quiet = true; break;
        case 'n': skip_create = true; break;
        case 'W': break;
        case 'U': force_share = BDRV_O_FORCE_SHARE; break;
        case 'm':
            workers = atoi(optarg);
            if (workers < 1 || workers > 16) {
                error_report("Invalid number of coroutines. Allowed number "
                             "of coroutines is between 1 and 16");
                return 1;
            }
            break;
        case 'S': {
            uint64_t v;
            if (!img_parse_size(optarg, &v)) {
                error_report("Invalid buffer size for sparse output "
                             "specified. Valid sizes are multiples of 512 "
                             "up to 16777216.");
                return 1;
            }
            sparse = v;
            break;
        }
        default: return img_usage_error("convert", "Invalid option");
        }
    }
    if (quiet) {
        progress = false;
    }
    int nb_src = argc - optind - 1;
    if (nb_src < 1) {
        return img_usage_error("convert", "Expecting image file name");
    }
    const char *out_name = argv[argc - 1];
    int src_flags = 0, dst_flags = BDRV_O_RDWR | BDRV_O_UNMAP;
    bool src_wt, dst_wt;
    if (!img_parse_cache_mode(src_cache, &src_flags, &src_wt)) {
        error_report("Invalid source cache option: %s", src_cache);
        return 1;
    }
    if (!img_parse_cache_mode(cache, &dst_flags, &dst_wt)) {
        error_report("Invalid cache option: %s", cache);
        return 1;
    }
    if (compress && strcmp(out_fmt, "qcow2")) {
        error_report("Compression not supported for this file format");
        return 1;
    }
    ConvertState s = { .nb_src = nb_src, .compress = compress,
                       .sparse = sparse, .chunk = 2 << 20 };
    s.src = g_new0(BlockBackend *, nb_src);
    s.src_sizes = g_new0(int64_t, nb_src);
    int ret = 1;
    for (int i = 0; i < nb_src; i++) {
        s.src[i] = img_open(argv[optind + i], fmt, NULL,
                            src_flags | force_share, src_wt,
                            quiet);
        if (!s.src[i]) {
            goto out;
        }
        s.src_sizes[i] = blk_getlength(s.src[i]);
        s.total += s.src_sizes[i];
    }
    if (!skip_create) {
        g_autoptr(BlockOpts) o = bopts_new();
        GError *err = NULL;
        if (options && !bopts_parse(o, options, &err)) {
            error_report("%s", err->message);
            g_error_free(err);
            goto out;
        }
        g_autofree char *sz = g_strdup_printf("%" G_GINT64_FORMAT, s.total);
        bopts_set(o, "size", sz);
        if (backing) {
            bopts_set(o, "backing_file", backing);
            const char *bf = bdrv_probe_format(backing, NULL);
            if (bf && !bopts_get(o, "backing_fmt")) {
                bopts_set(o, "backing_fmt", bf);
            }
        }
        if (bdrv_create(out_fmt, out_name, o, &err) < 0) {
            error_report("%s: error while converting %s: %s", out_name,
                         out_fmt, err->message);
            g_error_free(err);
            goto out;
        }
        s.target_zeroed = !backing;
    }
    s.target_has_backing = backing != NULL;
    s.dst = img_open(out_name, skip_create ? NULL : out_fmt, NULL,
                     dst_flags | (backing ? 0 : BDRV_O_NO_BACKING), dst_wt,
                     quiet);
    if (!s.dst) {
        goto out;
    }
    if (compress) {
        int cs = bdrv_get_cluster_size(blk_bs(s.dst));
        s.chunk = MAX(cs, 65536);
    }
    progress_init(progress);
    s.running = workers;
    for (int i = 0; i < workers; i++) {
        co_enter(co_create(convert_worker, &s));
    }
    AIO_POLL_WHILE(s.running > 0);
    if (s.ret >= 0) {
        s.ret = blk_flush(s.dst);
    }
    progress_end();
    if (s.ret < 0) {
        error_report("error while writing at byte %" G_GINT64_FORMAT ": %s",
                     s.next, g_strerror(-s.ret));
        goto out;
    }
    ret = 0;
out:
    for (int i = 0; i < nb_src; i++) {
        blk_unref(s.src[i]);
    }
    blk_unref(s.dst);
    g_free(s.src);
    g_free(s.src_sizes);
    return ret;
}

/* ---- map ---- */

typedef struct MapEntry {
    int64_t start, length, offset;
    int depth;
    bool present, zero, data, has_offset;
    const char *filename;
} MapEntry;

static bool map_mergeable(const MapEntry *a, const MapEntry *b)
{
    return a->depth == b->depth && a->present == b->present &&
           a->zero == b->zero && a->data == b->data &&
           a->has_offset == b->has_offset &&
           (!a->has_offset || a->offset + a->length == b->offset) &&
           a->filename == b->filename;
}

static void map_print(const MapEntry *e, bool json, bool *first)
{
    if (json) {
        printf("%s{ \"start\": %" G_GINT64_FORMAT ", \"length\": %"
               G_GINT64_FORMAT ", \"depth\": %d, \"present\": %s, \"zero\": "
               "%s, \"data\": %s", *first ? "[" : ",\n", e->start, e->length,
               e->depth, e->present ? "true" : "false",
               e->zero ? "true" : "false", e->data ? "true" : "false");
        if (e->has_offset) {
            printf(", \"offset\": %" G_GINT64_FORMAT, e->offset);
        }
        printf("}");
    } else if (e->data && e->has_offset) {
        printf("%#-16" G_GINT64_MODIFIER "x%#-16" G_GINT64_MODIFIER "x%#-16"
               G_GINT64_MODIFIER "x%s\n", e->start, e->length, e->offset,
               e->filename);
    }
    *first = false;
}

static int img_map(int argc, char **argv)
{
    const char *fmt = NULL, *output = "human";
    enum { OPT_OUTPUT = 256, OPT_START, OPT_MAX };
    static const struct option longopts[] = {
        HELP_OPT,
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "force-share", no_argument, NULL, 'U' },
        { "start-offset", required_argument, NULL, 's' },
        { "max-length", required_argument, NULL, 'l' },
        { 0 }
    };
    uint64_t start = 0, max = INT64_MAX;
    int c, force_share = 0;
    while ((c = getopt_long(argc, argv, "+hf:Us:l:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': img_cmd_help("map"); return 0;
        case 'f': fmt = optarg; break;
        case 'U': force_share = BDRV_O_FORCE_SHARE; break;
        case 's':
            if (!img_parse_size(optarg, &start)) {
                error_report("Invalid start offset specified");
                return 1;
            }
            break;
        case 'l':
            if (!img_parse_size(optarg, &max)) {
                error_report("Invalid length specified");
                return 1;
            }
            break;
        case OPT_OUTPUT: output = optarg; break;
        default: return img_usage_error("map", "Invalid option");
        }
    }
    if (strcmp(output, "human") && strcmp(output, "json")) {
        error_report("--output must be used with human or json as argument.");
        return 1;
    }
    if (optind != argc - 1) {
        return img_usage_error("map", "Expecting one image file name");
    }
    BlockBackend *blk = img_open(argv[optind], fmt, NULL, force_share, false,
                                 false);
    if (!blk) {
        return 1;
    }
    bool json = !strcmp(output, "json");
    BlockDriverState *bs = blk_bs(blk);
    int64_t len = MIN((uint64_t)bdrv_getlength(bs), start + max);
    if (!json) {
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
    }
    MapEntry cur = { 0 };
    bool have = false, first = true;
    int ret = 0;
    for (int64_t off = start; off < len;) {
        int64_t pnum, map;
        int depth;
        BlockDriverState *file;
        int st = bdrv_block_status_above(bs, off, MIN(len - off, 1LL << 30),
                                         &pnum, &map, &file, &depth);
        if (st < 0 || pnum <= 0) {
            error_report("Could not read file metadata: %s",
                         g_strerror(st < 0 ? -st : EIO));
            ret = 1;
            break;
        }
        MapEntry e = {
            .start = off, .length = pnum, .depth = depth,
            .present = (st & (BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_DATA)) != 0 &&
                       !(depth > 0 && !(st & BDRV_BLOCK_ALLOCATED)),
            .zero = (st & BDRV_BLOCK_ZERO) != 0,
            .data = (st & BDRV_BLOCK_DATA) != 0,
            .has_offset = (st & BDRV_BLOCK_OFFSET_VALID) != 0,
            .offset = map,
            .filename = file ? file->filename : NULL,
        };
        if (have && map_mergeable(&cur, &e)) {
            cur.length += e.length;
        } else {
            if (have) {
                map_print(&cur, json, &first);
            }
            cur = e;
            have = true;
        }
        off += pnum;
    }
    if (have && ret == 0) {
        map_print(&cur, json, &first);
    }
    if (json && !first) {
        printf("]\n");
    }
    blk_unref(blk);
    return ret;
}

/* ---- compare ---- */

static int compare_zero_tail(BlockBackend *blk, int64_t from, int64_t to,
                             const char *name, uint8_t *buf, int64_t bsz)
{
    for (int64_t off = from; off < to;) {
        int64_t n = MIN(bsz, to - off);
        int ret = blk_pread(blk, off, n, buf);
        if (ret < 0) {
            error_report("Error while reading offset %" G_GINT64_FORMAT
                         " of %s: %s", off, name, g_strerror(-ret));
            return 4;
        }
        if (!buffer_is_zero(buf, n)) {
            for (int64_t i = 0; i < n; i++) {
                if (buf[i]) {
                    printf("Content mismatch at offset %" G_GINT64_FORMAT
                           "!\n", off + i);
                    return 1;
                }
            }
        }
        off += n;
    }
    return 0;
}

static int img_compare(int argc, char **argv)
{
    const char *fmt1 = NULL, *fmt2 = NULL;
    bool strict = false, progress = false, quiet = false;
    int force_share = 0;
    static const struct option longopts[] = {
        HELP_OPT,
        { "force-share", no_argument, NULL, 'U' },
        { 0 }
    };
    int c;
    while ((c = getopt_long(argc, argv, "+hf:F:spqT:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': img_cmd_help("compare"); return 0;
        case 'f': fmt1 = optarg; break;
        case 'F': fmt2 = optarg; break;
        case 's': strict = true; break;
        case 'p': progress = true; break;
        case 'q': quiet = true; break;
        case 'T': break;
        case 'U': force_share = BDRV_O_FORCE_SHARE; break;
        default:
            img_usage_error("compare", "Invalid option");
            return 2;
        }
    }
    if (optind != argc - 2) {
        img_usage_error("compare", "Expecting two image file names");
        return 2;
    }
    if (!fmt2) {
        fmt2 = fmt1;
    }
    const char *n1 = argv[optind], *n2 = argv[optind + 1];
    BlockBackend *b1 = img_open(n1, fmt1, NULL, force_share, false, quiet);
    if (!b1) {
        return 2;
    }
    BlockBackend *b2 = img_open(n2, fmt2, NULL, force_share, false, quiet);
    if (!b2) {
        blk_unref(b1);
        return 2;
    }
    int64_t s1 = blk_getlength(b1), s2 = blk_getlength(b2);
    int64_t common = MIN(s1, s2), bsz = 1 << 20;
    uint8_t *p1 = bdrv_blockalign(NULL, bsz), *p2 = bdrv_blockalign(NULL, bsz);
    int ret = 0;
    progress_init(progress && !quiet);
    if (s1 != s2 && strict) {
        printf("Strict mode: Image size mismatch!\n");
        ret = 1;
        goto out;
    }
    for (int64_t off = 0; off < common && ret == 0;) {
        int64_t pn1, pn2;
        int d1, d2;
        int st1 = bdrv_block_status_above(blk_bs(b1), off, common - off, &pn1,
                                          NULL, NULL, &d1);
        int st2 = bdrv_block_status_above(blk_bs(b2), off, common - off, &pn2,
                                          NULL, NULL, &d2);
        if (st1 < 0 || st2 < 0) {
            error_report("Error while reading metadata");
            ret = 4;
            break;
        }
        int64_t n = MIN(MIN(pn1, pn2), bsz);
        n = MAX(n, 1);
        bool z1 = (st1 & BDRV_BLOCK_ZERO) && !(st1 & BDRV_BLOCK_DATA);
        bool z2 = (st2 & BDRV_BLOCK_ZERO) && !(st2 & BDRV_BLOCK_DATA);
        if (!(z1 && z2) || strict) {
            int r1 = blk_pread(b1, off, n, p1), r2 = blk_pread(b2, off, n, p2);
            if (r1 < 0 || r2 < 0) {
                error_report("Error while reading offset %" G_GINT64_FORMAT
                             ": %s", off, g_strerror(-(r1 < 0 ? r1 : r2)));
                ret = 4;
                break;
            }
            if (memcmp(p1, p2, n)) {
                for (int64_t i = 0; i < n; i++) {
                    if (p1[i] != p2[i]) {
                        if (!quiet) {
                            printf("Content mismatch at offset %"
                                   G_GINT64_FORMAT "!\n", off + i);
                        }
                        ret = 1;
                        break;
                    }
                }
            }
        }
        off += n;
        progress_update(off, MAX(s1, s2));
    }
    if (ret == 0 && s1 != s2) {
        if (!quiet) {
            printf("Warning: Image size mismatch!\n");
        }
        ret = s1 > s2 ? compare_zero_tail(b1, common, s1, n1, p1, bsz)
                      : compare_zero_tail(b2, common, s2, n2, p2, bsz);
    }
    progress_end();
    if (ret == 0 && !quiet) {
        printf("Images are identical.\n");
    }
out:
    bdrv_vfree(p1);
    bdrv_vfree(p2);
    blk_unref(b1);
    blk_unref(b2);
    return ret == 4 ? 2 : ret;
}

/* ---- resize ---- */

static int img_resize(int argc, char **argv)
{
    const char *fmt = NULL;
    bool quiet = false, shrink = false;
    PreallocMode prealloc = PREALLOC_MODE_OFF;
    enum { OPT_PREALLOC = 256, OPT_SHRINK };
    static const struct option longopts[] = {
        HELP_OPT,
        { "preallocation", required_argument, NULL, OPT_PREALLOC },
        { "shrink", no_argument, NULL, OPT_SHRINK },
        { 0 }
    };
    /* A leading "-" of a negative size is not an option. */
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && g_ascii_isdigit(argv[i][1])) {
            argv[i][0] = '~';
        }
    }
    int c;
    while ((c = getopt_long(argc, argv, "+hf:q", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': img_cmd_help("resize"); return 0;
        case 'f': fmt = optarg; break;
        case 'q': quiet = true; break;
        case OPT_SHRINK: shrink = true; break;
        case OPT_PREALLOC:
            if (!prealloc_mode_parse(optarg, &prealloc)) {
                error_report("Invalid preallocation mode '%s'", optarg);
                return 1;
            }
            break;
        default: return img_usage_error("resize", "Invalid option");
        }
    }
    if (optind != argc - 2) {
        return img_usage_error("resize", "Expecting image file name and size");
    }
    const char *sz = argv[optind + 1];
    int rel = 0;
    if (*sz == '+') {
        rel = 1;
        sz++;
    } else if (*sz == '~') {
        rel = -1;
        sz++;
    }
    uint64_t v;
    if (!img_parse_size(sz, &v)) {
        error_report("Invalid image size specified. You may use k, M, G, T, "
                     "P or E suffixes for");
        error_report("kilobytes, megabytes, gigabytes, terabytes, petabytes "
                     "and exabytes.");
        return 1;
    }
    BlockBackend *blk = img_open(argv[optind], fmt, NULL,
                                 BDRV_O_RDWR | BDRV_O_NO_BACKING, false, quiet);
    if (!blk) {
        return 1;
    }
    int64_t cur = blk_getlength(blk);
    int64_t target = rel > 0 ? cur + (int64_t)v : rel < 0 ? cur - (int64_t)v
                                                          : (int64_t)v;
    int ret = 0;
    GError *err = NULL;
    if (target <= 0) {
        error_report("New image size must be positive");
        ret = 1;
    } else if (target < cur && !shrink) {
        error_report("Use the --shrink option to perform a shrink "
                     "operation.");
        ret = 1;
    } else if (blk_truncate(blk, target, true, prealloc, &err) < 0) {
        error_report("%s", err->message);
        g_error_free(err);
        ret = 1;
    } else if (!quiet) {
        printf("Image resized.\n");
    }
    blk_unref(blk);
    return ret;
}

/* ---- commit ---- */

static int img_commit(int argc, char **argv)
{
    const char *fmt = NULL, *base_name = NULL, *cache = "unsafe";
    bool quiet = false, progress = false, drop = false;
    static const struct option longopts[] = { HELP_OPT, { 0 } };
    int c;
    while ((c = getopt_long(argc, argv, "+hf:t:b:dpqr:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': img_cmd_help("commit"); return 0;
        case 'f': fmt = optarg; break;
        case 't': cache = optarg; break;
        case 'b': base_name = optarg; drop = true; break;
        case 'd': drop = true; break;
        case 'p': progress = true; break;
        case 'q': quiet = true; break;
        case 'r': break;
        default: return img_usage_error("commit", "Invalid option");
        }
    }
    if (optind != argc - 1) {
        return img_usage_error("commit", "Expecting one image file name");
    }
    int flags = BDRV_O_UNMAP;
    bool wt;
    if (!img_parse_cache_mode(cache, &flags, &wt)) {
        error_report("Invalid cache option: %s", cache);
        return 1;
    }
    const char *top_name = argv[optind];
    BlockBackend *top = img_open(top_name, fmt, NULL, flags, wt, quiet);
    if (!top) {
        return 1;
    }
    BlockDriverState *tbs = blk_bs(top), *base = bdrv_backing_bs(tbs);
    if (!base) {
        error_report("Image does not have a backing file");
        blk_unref(top);
        return 1;
    }
    if (base_name) {
        g_autofree char *want = g_canonicalize_filename(base_name, NULL);
        while (base) {
            g_autofree char *have = g_canonicalize_filename(base->filename,
                                                            NULL);
            if (!strcmp(have, want)) {
                break;
            }
            base = bdrv_backing_bs(base);
        }
        if (!base) {
            error_report("Did not find '%s' in the backing chain of '%s'",
                         base_name, top_name);
            blk_unref(top);
            return 1;
        }
    }
    /* Open the base a second time, writable, and copy into it everything
     * that the layers above it define. */
    BlockBackend *bb = img_open(base->filename, bdrv_get_format_name(base),
                                NULL, flags | BDRV_O_RDWR | BDRV_O_NO_BACKING,
                                wt, quiet);
    if (!bb) {
        blk_unref(top);
        return 1;
    }
    int64_t len = blk_getlength(top), blen = blk_getlength(bb);
    int ret = 0;
    GError *err = NULL;
    if (blen < len && blk_truncate(bb, len, false, PREALLOC_MODE_OFF,
                                   &err) < 0) {
        error_report("Could not grow the base image: %s", err->message);
        g_error_free(err);
        ret = -EIO;
    }
    uint8_t *buf = bdrv_blockalign(NULL, 1 << 20);
    progress_init(progress && !quiet);
    for (int64_t off = 0; off < len && ret >= 0;) {
        int64_t pnum = 0;
        int depth = 0;
        int st = 0;
        /* Allocated in some layer above base? */
        BlockDriverState *p = tbs;
        int64_t n = MIN(len - off, 1 << 20);
        bool above = false;
        for (; p && p != base; p = bdrv_backing_bs(p)) {
            st = bdrv_block_status(p, off, n, &pnum, NULL, NULL);
            if (st < 0) {
                break;
            }
            if (pnum == 0) {
                pnum = n;
            }
            n = MIN(n, pnum);
            if (st & (BDRV_BLOCK_ALLOCATED)) {
                above = true;
                break;
            }
        }
        (void)depth;
        if (st < 0) {
            ret = st;
            break;
        }
        if (above) {
            ret = blk_pread(top, off, n, buf);
            if (ret >= 0) {
                ret = buffer_is_zero(buf, n) ? blk_pwrite_zeroes(bb, off, n, 0)
                                             : blk_pwrite(bb, off, n, buf, 0);
            }
        }
        off += n;
        progress_update(off, len);
    }
    progress_end();
    bdrv_vfree(buf);
    if (ret >= 0) {
        ret = blk_flush(bb);
    }
    blk_unref(bb);
    if (ret < 0) {
        error_report("Block job failed: %s", g_strerror(-ret));
        blk_unref(top);
        return 1;
    }
    if (!drop) {
        /* Empty the committed image, as qemu-img does. */
        ret = bdrv_make_empty(tbs, &err);
    }
    if (ret >= 0 && base != bdrv_backing_bs(tbs) && !drop) {
        ret = bdrv_change_backing_file(tbs, base->filename,
                                       bdrv_get_format_name(base), &err);
    }
    blk_unref(top);
    if (ret < 0) {
        error_report("%s", err ? err->message : g_strerror(-ret));
        g_clear_error(&err);
        return 1;
    }
    if (!quiet) {
        printf("Image committed.\n");
    }
    return 0;
}

/* ---- rebase ---- */

static int img_rebase(int argc, char **argv)
{
    const char *fmt = NULL, *out_base = NULL, *out_fmt = NULL;
    const char *cache = "writeback";
    bool unsafe = false, progress = false, quiet = false;
    int force_share = 0;
    static const struct option longopts[] = {
        HELP_OPT,
        { "force-share", no_argument, NULL, 'U' },
        { 0 }
    };
    int c;
    while ((c = getopt_long(argc, argv, "+hf:F:b:upt:T:qU", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'h': img_cmd_help("rebase"); return 0;
        case 'f': fmt = optarg; break;
        case 'F': out_fmt = optarg; break;
        case 'b': out_base = optarg; break;
        case 'u': unsafe = true; break;
        case 'p': progress = true; break;
        case 't': cache = optarg; break;
        case 'T': break;
        case 'U': force_share = BDRV_O_FORCE_SHARE; break;
        case 'q': quiet = true; break;
        default: return img_usage_error("rebase", "Invalid option");
        }
    }
    if (optind != argc - 1) {
        return img_usage_error("rebase", "Expecting one image file name");
    }
    if (!out_base) {
        error_report("Must specify backing file (-b)");
        return 1;
    }
    int flags = BDRV_O_RDWR | (unsafe ? BDRV_O_NO_BACKING : 0);
    bool wt;
    if (!img_parse_cache_mode(cache, &flags, &wt)) {
        error_report("Invalid cache option: %s", cache);
        return 1;
    }
    const char *name = argv[optind];
    BlockBackend *blk = img_open(name, fmt, NULL, flags, wt, quiet);
    if (!blk) {
        return 1;
    }
    BlockDriverState *bs = blk_bs(blk);
    GError *err = NULL;
    int ret = 0;
    BlockBackend *nb = NULL;
    if (*out_base && !out_fmt) {
        g_autofree char *p = bdrv_resolve_backing_path(bs, out_base);
        const char *probed = bdrv_probe_format(p, NULL);
        out_fmt = probed;
    }
    if (!unsafe) {
        /* Keep every unallocated cluster's content by copying what the old
         * backing chain shows wherever the new one differs. */
        if (*out_base) {
            g_autofree char *p = bdrv_resolve_backing_path(bs, out_base);
            nb = img_open(p, out_fmt, NULL, force_share, false, quiet);
            if (!nb) {
                blk_unref(blk);
                return 1;
            }
        }
        int64_t len = blk_getlength(blk);
        int64_t nlen = nb ? blk_getlength(nb) : 0;
        int64_t bsz = 1 << 16;
        uint8_t *a = bdrv_blockalign(NULL, bsz), *b = bdrv_blockalign(NULL, bsz);
        progress_init(progress && !quiet);
        BlockDriverState *old = bdrv_backing_bs(bs);
        for (int64_t off = 0; off < len && ret >= 0;) {
            int64_t n = MIN(bsz, len - off), pnum;
            int st = bdrv_block_status(bs, off, n, &pnum, NULL, NULL);
            if (st < 0) {
                ret = st;
                break;
            }
            n = MAX(MIN(n, pnum), 1);
            if (!(st & BDRV_BLOCK_ALLOCATED)) {
                memset(a, 0, n);
                memset(b, 0, n);
                if (old) {
                    int64_t olen = bdrv_getlength(old);
                    if (off < olen) {
                        ret = bdrv_pread(old, off, MIN(n, olen - off), a);
                    }
                }
                if (ret >= 0 && nb && off < nlen) {
                    ret = blk_pread(nb, off, MIN(n, nlen - off), b);
                }
                if (ret >= 0 && memcmp(a, b, n)) {
                    ret = blk_pwrite(blk, off, n, a, 0);
                }
            }
            off += n;
            progress_update(off, len);
        }
        progress_end();
        bdrv_vfree(a);
        bdrv_vfree(b);
        if (ret >= 0) {
            ret = blk_flush(blk);
        }
        if (ret < 0) {
            error_report("Could not copy data while rebasing: %s",
                         g_strerror(-ret));
        }
    }
    if (ret >= 0 && bdrv_change_backing_file(bs, *out_base ? out_base : NULL,
                                             *out_base ? out_fmt : NULL,
                                             &err) < 0) {
        error_report("Could not change the backing file to '%s': %s",
                     out_base, err->message);
        g_error_free(err);
        ret = -1;
    }
    blk_unref(nb);
    blk_unref(blk);
    return ret < 0 ? 1 : 0;
}

/* ---- amend ---- */

static int img_amend(int argc, char **argv)
{
    const char *fmt = NULL;
    g_autofree char *options = NULL;
    bool quiet = false, force = false, progress = false;
    enum { OPT_FORCE = 256 };
    static const struct option longopts[] = {
        HELP_OPT,
        { "force", no_argument, NULL, OPT_FORCE },
        { 0 }
    };
    int c;
    while ((c = getopt_long(argc, argv, "+ho:f:t:pq", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': img_cmd_help("amend"); return 0;
        case 'o': append_opts(&options, optarg); break;
        case 'f': fmt = optarg; break;
        case 't': break;
        case 'p': progress = true; break;
        case 'q': quiet = true; break;
        case OPT_FORCE: force = true; break;
        default: return img_usage_error("amend", "Invalid option");
        }
    }
    (void)progress;
    if (!options) {
        error_report("Must specify options (-o)");
        return 1;
    }
    if (optind != argc - 1) {
        return img_usage_error("amend", "Expecting one image file name");
    }
    g_autoptr(BlockOpts) o = bopts_new();
    GError *err = NULL;
    if (!bopts_parse(o, options, &err)) {
        error_report("Invalid options for file format: %s", err->message);
        g_error_free(err);
        return 1;
    }
    BlockBackend *blk = img_open(argv[optind], fmt, NULL,
                                 BDRV_O_RDWR | BDRV_O_NO_BACKING, false, quiet);
    if (!blk) {
        return 1;
    }
    int ret = bdrv_amend(blk_bs(blk), o, force, &err);
    if (ret < 0) {
        error_report("Error while amending options: %s", err->message);
        g_error_free(err);
    }
    blk_unref(blk);
    return ret < 0 ? 1 : 0;
}

/* ---- bench ---- */

typedef struct BenchState {
    BlockBackend *blk;
    int64_t image_size;
    int64_t offset, step, bufsize;
    int remaining, in_flight, flush_interval, writes_since_flush;
    bool write, drain_on_flush;
    uint8_t *buf;
    int ret;
} BenchState;

static void coroutine_fn bench_worker(void *opaque)
{
    BenchState *b = opaque;
    IOVector q;
    iovec_init_buf(&q, b->buf, b->bufsize);
    while (b->remaining > 0 && b->ret >= 0) {
        b->remaining--;
        int64_t off = b->offset;
        /* Like qemu-img: advance by the step modulo the image size, so a
         * large odd step scatters requests over the whole image. */
        b->offset += b->step;
        if (b->image_size > 0) {
            b->offset %= b->image_size;
        }
        if (b->offset + b->bufsize > b->image_size) {
            b->offset = 0;
        }
        int ret = b->write ? blk_co_pwritev(b->blk, off, b->bufsize, &q, 0)
                           : blk_co_preadv(b->blk, off, b->bufsize, &q, 0);
        if (ret < 0) {
            b->ret = ret;
            break;
        }
        if (b->write && b->flush_interval &&
            ++b->writes_since_flush >= b->flush_interval) {
            b->writes_since_flush = 0;
            ret = blk_co_flush(b->blk);
            if (ret < 0) {
                b->ret = ret;
            }
        }
    }
    b->in_flight--;
}

static int img_bench(int argc, char **argv)
{
    const char *fmt = NULL, *cache = "writeback";
    int count = 75000, depth = 64, flush_interval = 0, pattern = 0;
    uint64_t bufsize = 4096, step = 0, offset = 0;
    bool write = false, quiet = false, step_set = false;
    int force_share = 0;
    enum { OPT_FLUSH = 256, OPT_PATTERN, OPT_NO_DRAIN };
    static const struct option longopts[] = {
        HELP_OPT,
        { "flush-interval", required_argument, NULL, OPT_FLUSH },
        { "pattern", required_argument, NULL, OPT_PATTERN },
        { "no-drain", no_argument, NULL, OPT_NO_DRAIN },
        { "force-share", no_argument, NULL, 'U' },
        { 0 }
    };
    int c;
    while ((c = getopt_long(argc, argv, "+hc:d:f:ni:o:qs:S:t:wU", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'h': img_cmd_help("bench"); return 0;
        case 'c': count = atoi(optarg); break;
        case 'd': depth = atoi(optarg); break;
        case 'f': fmt = optarg; break;
        case 'n': cache = "none"; break;
        case 'i': break;
        case 'o':
            if (!img_parse_size(optarg, &offset)) {
                error_report("Invalid offset specified");
                return 1;
            }
            break;
        case 'q': quiet = true; break;
        case 's':
            if (!img_parse_size(optarg, &bufsize) || !bufsize) {
                error_report("Invalid buffer size specified");
                return 1;
            }
            break;
        case 'S':
            if (!img_parse_size(optarg, &step)) {
                error_report("Invalid step size specified");
                return 1;
            }
            step_set = true;
            break;
        case 't': cache = optarg; break;
        case 'w': write = true; break;
        case 'U': force_share = BDRV_O_FORCE_SHARE; break;
        case OPT_FLUSH: flush_interval = atoi(optarg); break;
        case OPT_PATTERN: pattern = atoi(optarg); break;
        case OPT_NO_DRAIN: break;
        default: return img_usage_error("bench", "Invalid option");
        }
    }
    if (count < 1 || depth < 1) {
        error_report("Invalid request count or queue depth");
        return 1;
    }
    if (optind != argc - 1) {
        return img_usage_error("bench", "Expecting one image file name");
    }
    int flags = (write ? BDRV_O_RDWR : 0) | force_share;
    bool wt;
    if (!img_parse_cache_mode(cache, &flags, &wt)) {
        error_report("Invalid cache mode");
        return 1;
    }
    BlockBackend *blk = img_open(argv[optind], fmt, NULL, flags, wt, quiet);
    if (!blk) {
        return 1;
    }
    if (!step_set) {
        step = bufsize;
    }
    BenchState b = { .blk = blk, .image_size = blk_getlength(blk),
                     .offset = offset, .step = step, .bufsize = bufsize,
                     .remaining = count, .write = write,
                     .flush_interval = flush_interval };
    b.buf = bdrv_blockalign(blk_bs(blk), bufsize);
    memset(b.buf, pattern, bufsize);
    if (!quiet) {
        printf("Sending %d %s requests, %" G_GUINT64_FORMAT " bytes each, %d "
               "in parallel (starting at offset %" G_GUINT64_FORMAT ", step "
               "size %" G_GUINT64_FORMAT ")\n", count,
               write ? "write" : "read", bufsize, depth, offset, step);
    }
    gint64 t0 = g_get_monotonic_time();
    b.in_flight = depth;
    for (int i = 0; i < depth; i++) {
        co_enter(co_create(bench_worker, &b));
    }
    AIO_POLL_WHILE(b.in_flight > 0);
    if (b.ret >= 0 && write) {
        b.ret = blk_flush(blk);
    }
    double secs = (g_get_monotonic_time() - t0) / 1e6;
    bdrv_vfree(b.buf);
    blk_unref(blk);
    if (b.ret < 0) {
        error_report("Failed request: %s", g_strerror(-b.ret));
        return 1;
    }
    if (!quiet) {
        printf("Run completed in %3.3f seconds.\n", secs);
    }
    return 0;
}

/* ---- dispatch ---- */

static const ImgCmd img_cmds[] = {
    { "amend", img_amend, "[--force] [-p] [-q] [-f fmt] -o options filename",
      "Changes format-specific options of an existing image (qcow2: compat,\n"
      "refcount_bits, lazy_refcounts, backing_file, backing_fmt).\n" },
    { "bench", img_bench, "[-c count] [-d depth] [-f fmt] "
      "[--flush-interval=N] [-n] [-o offset] [--pattern=N] [-q] "
      "[-s buffer_size] [-S step_size] [-t cache] [-w] filename",
      "Runs a simple sequential I/O benchmark on the image.\n" },
    { "check", img_check, "[-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] "
      "filename",
      "Checks the image for consistency; -r repairs leaks or everything.\n"
      "Exit codes: 0 no errors, 1 check not completed, 2 corruptions,\n"
      "3 leaked clusters, 63 format without checks.\n" },
    { "commit", img_commit, "[-q] [-f fmt] [-t cache] [-b base] [-d] [-p] "
      "filename",
      "Writes the image's data into its backing file (or base).\n" },
    { "compare", img_compare, "[-f fmt] [-F fmt] [-p] [-q] [-s] filename1 "
      "filename2",
      "Compares the contents of two images. Exit codes: 0 identical,\n"
      "1 different, 2 error.\n" },
    { "convert", img_convert, "[-c] [-p] [-q] [-n] [-f fmt] [-t cache] "
      "[-T src_cache] [-O output_fmt] [-B backing_file] [-o options] "
      "[-S sparse_size] [-m num_coroutines] [-W] filename [filename2 [...]] "
      "output_filename",
      "Converts (and concatenates) images into a new image.\n" },
    { "create", img_create, "[-q] [-f fmt] [-b backing_file] [-F backing_fmt] "
      "[-u] [-o options] filename [size]",
      "Creates a new image. Sizes take k, M, G, T, P or E suffixes.\n"
      "'-o help' lists the format's options.\n" },
    { "info", img_info, "[-f fmt] [--output=ofmt] [--backing-chain] [-U] "
      "filename",
      "Shows information about the image (--output=human or json).\n" },
    { "map", img_map, "[-f fmt] [--output=ofmt] [--start-offset=OFFSET] "
      "[--max-length=LEN] [-U] filename",
      "Dumps the metadata of the image (where each part of the disk is).\n" },
    { "rebase", img_rebase, "[-q] [-f fmt] [-t cache] [-p] [-u] "
      "-b backing_file [-F backing_fmt] filename",
      "Changes the backing file; without -u the visible content is kept.\n" },
    { "resize", img_resize, "[--shrink] [--preallocation=prealloc] [-q] "
      "[-f fmt] filename [+ | -]size",
      "Changes the virtual size of the image.\n" },
    { "snapshot", img_snapshot, "[-q] [-l | -a snapshot | -c snapshot | "
      "-d snapshot] filename",
      "Lists (-l), creates (-c), applies (-a) or deletes (-d) internal\n"
      "snapshots.\n" },
};

static const ImgCmd *img_find_cmd(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(img_cmds); i++) {
        if (!strcmp(img_cmds[i].name, name)) {
            return &img_cmds[i];
        }
    }
    return NULL;
}

static void print_format(const char *name, void *opaque)
{
    printf(" %s", name);
}

static void img_help(void)
{
    printf("xblk-img version " XBLK_VERSION "\n"
           "usage: xblk-img [standard options] command [command options]\n"
           "Disk image utility (qemu-img compatible)\n\n"
           "    '-h', '--help'       display this help and exit\n"
           "    '-V', '--version'    output version information and exit\n\n"
           "Command syntax:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(img_cmds); i++) {
        printf("  %s %s\n", img_cmds[i].name, img_cmds[i].synopsis);
    }
    printf("\nSupported formats:");
    bdrv_iterate_format(print_format, NULL);
    printf("\n\n'xblk-img COMMAND --help' describes one command.\n");
}

int main(int argc, char **argv)
{
    g_set_prgname("xblk-img");
    if (argc < 2) {
        error_report("Not enough arguments");
        fprintf(stderr, "Try 'xblk-img --help' for more information\n");
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        img_help();
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("xblk-img version " XBLK_VERSION "\n");
        return 0;
    }
    const ImgCmd *c = img_find_cmd(cmd);
    if (!c) {
        error_report("Command not found: %s", cmd);
        return 1;
    }
    optind = 0;   /* reset getopt for the command's own options */
    return c->fn(argc - 1, argv + 1);
}
