/*
 * domain.h - libvirt-style domain snapshots of one machine: create (every
 * row of libvirt's memory x disk combination table, each in one guest
 * pause), revert, delete and the tree, over the snapshot catalog
 * (catalog.h) and the save-state coordinator (migration/savestate.h).
 *
 * A domain is online - a running or paused machine, reached through its
 * save-state host and DsnapHostOps - or offline: a stopped machine,
 * whose disks the catalog's domain.xml names; they are opened here and
 * changed through the image layer (what qemu-img snapshot / create -b
 * would do).  docs/snapshots.md has the table: row -> mechanism -> test.
 *
 * Invariants (DESIGN rules 1-3):
 *  - a snapshot is listed in the catalog only once every artifact is
 *    durable (internal snapshots, overlays, memory file);
 *  - an intent record (catalog.h) is durable before the first artifact is
 *    made and removed after the listing, so that dsnap_domain_open() can
 *    finish or undo whatever a kill interrupted;
 *  - domain.xml always names, for each disk, an image that holds every
 *    write the guest made: it is rewritten before an external snapshot's
 *    overlays exist (a missing overlay falls back to its backing image,
 *    dsnap_drive_source()) and after a revert's new overlays are in use.
 *
 * Main loop only.
 */
#ifndef XBLK_SNAPSHOT_DOMAIN_H
#define XBLK_SNAPSHOT_DOMAIN_H

#include "migration/savestate.h"
#include "snapshot/catalog.h"
#include "snapshot/domainsnapshot.h"

typedef struct DsnapDomain DsnapDomain;

/* The machine's side of an online domain. */
typedef struct DsnapHostOps {
    /* DSNAP_STATE_RUNNING or DSNAP_STATE_PAUSED. */
    DsnapState (*run_state)(void *opaque);
    /* Stops (false) or continues (true) the machine, as QMP stop/cont. */
    bool (*set_running)(void *opaque, bool running, GError **errp);
    /* Resets the machine: a revert to a snapshot without memory boots
     * from the reverted disks. */
    bool (*reset)(void *opaque, GError **errp);
    /* The machine in libvirt's domain vocabulary: name, memory, vcpus,
     * os type and its IDE disks (target dev "hda".."hdd", source = the
     * active layer's file); drive_names gets, for each of dom->disks in
     * order, the host's name of that disk (its save-state name). */
    void (*describe)(void *opaque, DsnapDomainDef *dom,
                     GPtrArray *drive_names);
    /* Optional: around each save-state operation (the engine's busy
     * flag, api/internal.h); begin may refuse. */
    bool (*begin)(void *opaque, GError **errp);
    void (*end)(void *opaque);
} DsnapHostOps;

/*
 * An online domain: the catalog in catalog_dir (created with the first
 * snapshot), the machine's save-state host and ops.  Finishes or undoes
 * what a kill interrupted (intents), then writes domain.xml; one line
 * per repair goes to report.
 */
DsnapDomain *dsnap_domain_open(const char *catalog_dir,
                               const SavestateHost *sh,
                               const DsnapHostOps *ops, void *opaque,
                               GString *report, GError **errp);
/* A stopped machine's domain: catalog_dir must hold domain.xml. */
DsnapDomain *dsnap_domain_open_offline(const char *catalog_dir,
                                       GString *report, GError **errp);
void dsnap_domain_free(DsnapDomain *d);
DsnapCatalog *dsnap_domain_catalog(DsnapDomain *d);
bool dsnap_domain_is_offline(const DsnapDomain *d);

/*
 * The image the machine's drive `target` ("hda") opens at start when its
 * -drive names drive_file: the catalog's domain.xml may have moved the
 * disk to an overlay (an external snapshot or a revert).  Followed only
 * when drive_file is in that overlay's backing chain; an overlay that a
 * kill left uncreated falls back to the image below it.  Returns a new
 * string (drive_file itself when nothing applies).
 */
char *dsnap_drive_source(const char *catalog_dir, const char *target,
                         const char *drive_file);

enum {
    DSNAP_CREATE_DISK_ONLY   = 1 << 0,
    DSNAP_CREATE_NO_METADATA = 1 << 1,
    DSNAP_CREATE_REDEFINE    = 1 << 2,
    DSNAP_CREATE_CURRENT     = 1 << 3,
    DSNAP_CREATE_VALIDATE    = 1 << 4,
};

/* Creates (or with REDEFINE records) the snapshot xml describes;
 * *name_out gets its name, *pause_ns (may be NULL) how long the guest
 * was held (0 offline and for metadata). */
bool dsnap_domain_create(DsnapDomain *d, const char *xml, unsigned flags,
                         char **name_out, int64_t *pause_ns, GError **errp);

enum {
    DSNAP_REVERT_RUNNING = 1 << 0,
    DSNAP_REVERT_PAUSED  = 1 << 1,
    DSNAP_REVERT_FORCE   = 1 << 2,
};

/* Brings the machine back to snapshot name; *state_out the run state
 * after it (DSNAP_STATE_SHUTOFF offline). */
bool dsnap_domain_revert(DsnapDomain *d, const char *name, unsigned flags,
                         DsnapState *state_out, int64_t *pause_ns,
                         GError **errp);

enum {
    DSNAP_DELETE_CHILDREN      = 1 << 0,
    DSNAP_DELETE_CHILDREN_ONLY = 1 << 1,
    DSNAP_DELETE_METADATA      = 1 << 2,
};

/* Deletes snapshot name (and/or its descendants); deleted gets the
 * names removed, in order. */
bool dsnap_domain_delete(DsnapDomain *d, const char *name, unsigned flags,
                         GPtrArray *deleted, GError **errp);

/* virsh snapshot-edit: xml is the edited document of snapshot name;
 * only its name and description may differ. */
bool dsnap_domain_edit(DsnapDomain *d, const char *name, const char *xml,
                       char **name_out, GError **errp);

#endif
