/*
 * domainsnapshot.h - libvirt's <domainsnapshot> document: the C model,
 * a hardened parser (libxml2), the writer and RelaxNG validation.
 *
 * Owns: DomainSnapshotDef and its parts.  Invariants of a parsed (or
 * dsnap_def_fill_defaults()-ed) definition: every name is a safe file
 * name (dsnap_name_is_safe()), disk names are unique, an external memory
 * snapshot has a file, every file path is absolute.  The parser never
 * touches the network or the file system beyond the file it is given:
 * no DTD, no entities, no XInclude, documents at most DSNAP_MAX_DOC_SIZE.
 * Callers: the snapshot catalog and CLI (tools/xblk-snapshot.c).
 */
#ifndef XBLK_SNAPSHOT_DOMAINSNAPSHOT_H
#define XBLK_SNAPSHOT_DOMAINSNAPSHOT_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* Far above any real snapshot document (a few KiB), far below harm. */
#define DSNAP_MAX_DOC_SIZE (1024 * 1024)
/* Where Debian's libvirt0 installs the schema (it includes its siblings). */
#define DSNAP_SCHEMA_DEFAULT "/usr/share/libvirt/schemas/domainsnapshot.rng"

/* What happens to memory or a disk; DEFAULT = the attribute was absent. */
typedef enum {
    DSNAP_MODE_DEFAULT = 0,
    DSNAP_MODE_NO,
    DSNAP_MODE_INTERNAL,
    DSNAP_MODE_EXTERNAL,
    DSNAP_MODE_MANUAL,          /* disks only */
} DsnapMode;

/* The domain state recorded with the snapshot; NONE = <state> absent. */
typedef enum {
    DSNAP_STATE_NONE = 0,
    DSNAP_STATE_RUNNING,
    DSNAP_STATE_BLOCKED,
    DSNAP_STATE_PAUSED,
    DSNAP_STATE_SHUTDOWN,
    DSNAP_STATE_SHUTOFF,
    DSNAP_STATE_CRASHED,
    DSNAP_STATE_DISK_SNAPSHOT,
} DsnapState;

/* One <disks>/<disk>. */
typedef struct DsnapDiskDef {
    char *name;                 /* target dev ("hda") or absolute path */
    DsnapMode mode;
    char *driver_type;          /* <driver type=...> or NULL */
    char *source_file;          /* <source file=...> or NULL */
} DsnapDiskDef;

/* One <domain>/<devices>/<disk>. */
typedef struct DsnapDomainDisk {
    char *device;               /* "disk" or "cdrom" */
    char *driver_type;          /* or NULL */
    char *source_file;          /* or NULL (empty drive) */
    char *target_dev;
    char *target_bus;           /* "ide" for xblk's machine */
} DsnapDomainDisk;

/* The subset of libvirt's <domain> that describes xblk's machine. */
typedef struct DsnapDomainDef {
    char *type;                 /* hypervisor, "qemu" */
    char *name;
    uint64_t memory_kib;
    unsigned vcpus;             /* 0 = absent, written as 1 */
    char *os_type;              /* "hvm" */
    char *os_arch;              /* or NULL */
    GPtrArray *disks;           /* of DsnapDomainDisk * */
} DsnapDomainDef;

typedef struct DomainSnapshotDef {
    char *name;                 /* NULL until parsed or filled in */
    char *description;
    DsnapState state;
    bool has_creation_time;
    int64_t creation_time;      /* seconds since the epoch */
    char *parent;               /* parent snapshot's name or NULL */
    DsnapMode memory;
    char *memory_file;
    GPtrArray *disks;           /* of DsnapDiskDef * */
    int active;                 /* -1 absent, else 0 or 1 */
    DsnapDomainDef *domain;     /* or NULL */
} DomainSnapshotDef;

DomainSnapshotDef *dsnap_def_new(void);
/* An empty <domain> whose disks array frees DsnapDomainDisk (g_new0). */
DsnapDomainDef *dsnap_domain_new(void);
void dsnap_def_free(DomainSnapshotDef *def);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainSnapshotDef, dsnap_def_free)

/* Parses a document of len bytes; NULL with *errp set when it is refused.
 * Nothing outside buf is ever read. */
DomainSnapshotDef *dsnap_parse_string(const char *buf, size_t len,
                                      GError **errp);
/* Reads at most DSNAP_MAX_DOC_SIZE bytes of path, then as above. */
DomainSnapshotDef *dsnap_parse_file(const char *path, GError **errp);

/* Fills in what libvirt fills in when it accepts a definition: the name
 * (creation time) and creation time (now), the memory mode (external
 * with a file, none for disk-only or offline states, else internal) and
 * each disk's mode (external with a target or for disk-only, else
 * internal). */
void dsnap_def_fill_defaults(DomainSnapshotDef *def, int64_t now);

/* The document as libvirt writes it: two-space indent, single quotes,
 * <memory> always present.  The definition must satisfy the invariants
 * above (parse and fill_defaults give that). */
char *dsnap_format(const DomainSnapshotDef *def);

/* The <domain> alone, as a document of its own (domain.xml), and back. */
char *dsnap_domain_format(const DsnapDomainDef *dom);
DsnapDomainDef *dsnap_domain_parse(const char *buf, size_t len,
                                   GError **errp);
void dsnap_domain_def_free(DsnapDomainDef *dom);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DsnapDomainDef, dsnap_domain_def_free)

/* A safe file name: not empty, no '/', no leading '.', no control
 * characters, at most 255 bytes, valid UTF-8. */
bool dsnap_name_is_safe(const char *name);

const char *dsnap_mode_name(DsnapMode mode);
const char *dsnap_state_name(DsnapState state);

/* libvirt's RelaxNG schema, loaded once and used for many documents. */
typedef struct DsnapSchema DsnapSchema;
DsnapSchema *dsnap_schema_load(const char *path, GError **errp);
void dsnap_schema_free(DsnapSchema *schema);
/* Validates a document (parsed with the same hardening as above). */
bool dsnap_schema_validate(DsnapSchema *schema, const char *buf, size_t len,
                           GError **errp);

#endif
