/*
 * xblk-snapshot - the virsh-style snapshot tool.  For now one verb:
 * `validate FILE` checks a <domainsnapshot> document with the engine's
 * parser (snapshot/domainsnapshot.c) and prints it as xblk writes it
 * back (defaults filled in); invalid documents exit 1 with the reason
 * as "xblk-snapshot: <message>" on stderr.
 */
#include "snapshot/domainsnapshot.h"
#include "util/error.h"
#include "util/version.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void snap_help(void)
{
    printf(
"Usage: xblk-snapshot COMMAND [OPTIONS]... [ARGS]...\n"
"Domain snapshot tool for xblk, with virsh's snapshot vocabulary\n"
"\n"
"Commands:\n"
"  validate FILE        check the domainsnapshot XML document FILE and\n"
"                       print it as xblk writes it back (defaults filled\n"
"                       in); exit 1 with the reason when it is invalid\n"
"\n"
"Options:\n"
"  -h, --help           display this help and exit\n"
"  -V, --version        output version information and exit\n"
"\n"
"Run 'xblk-snapshot COMMAND --help' for a command's own help.\n");
}

static void snap_validate_help(void)
{
    printf(
"Usage: xblk-snapshot validate FILE\n"
"\n"
"Parses FILE as libvirt's <domainsnapshot> XML (at most %d bytes, no\n"
"DOCTYPE or entities, nothing fetched) and checks names, modes, paths and\n"
"disks.  On success prints the document as xblk writes it and exits 0;\n"
"otherwise prints the reason on standard error and exits 1.\n",
           DSNAP_MAX_DOC_SIZE);
}

static int snap_cmd_validate(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            snap_validate_help();
            return 0;
        }
        fprintf(stderr, "Try 'xblk-snapshot validate --help' for more "
                "information\n");
        return 1;
    }
    if (argc - optind != 1) {
        error_report("validate expects exactly one FILE");
        fprintf(stderr, "Try 'xblk-snapshot validate --help' for more "
                "information\n");
        return 1;
    }
    GError *err = NULL;
    g_autoptr(DomainSnapshotDef) def = dsnap_parse_file(argv[optind], &err);
    if (!def) {
        error_report_err(err);
        return 1;
    }
    dsnap_def_fill_defaults(def, g_get_real_time() / G_USEC_PER_SEC);
    g_autofree char *xml = dsnap_format(def);
    fputs(xml, stdout);
    return 0;
}

int main(int argc, char **argv)
{
    g_set_prgname("xblk-snapshot");
    if (argc < 2) {
        error_report("Not enough arguments");
        fprintf(stderr, "Try 'xblk-snapshot --help' for more information\n");
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        snap_help();
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("xblk-snapshot version " XBLK_VERSION_STRING "\n");
        return 0;
    }
    if (!strcmp(cmd, "validate")) {
        optind = 0;
        return snap_cmd_validate(argc - 1, argv + 1);
    }
    error_report("Command not found: %s", cmd);
    fprintf(stderr, "Try 'xblk-snapshot --help' for more information\n");
    return 1;
}
