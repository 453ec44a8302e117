/*
 * catalog.h - the snapshot catalog: a folder of libvirt <domainsnapshot>
 * documents, the snapshot tree they form, the current snapshot, the
 * domain definition and intent records.
 *
 * Owns the metadata only: it never opens a disk image or a vmstate file.
 * The snapshot engine (create, revert, delete) and tools/xblk-snapshot
 * call it.  Layout, crash argument and repairs: see catalog.c's opening
 * comment.
 *
 * Invariants after dsnap_catalog_open() and after every call that
 * returns true: every snapshot's name is safe (dsnap_name_is_safe(), at
 * most DSNAP_CATALOG_NAME_MAX bytes, not "domain"), every parent exists,
 * the parent links form a forest (no cycle), the current snapshot is
 * NULL or exists.  Every change is durable when the call returns, and a
 * kill at any instant leaves the folder so that the next open shows the
 * catalog either before or after the interrupted call, never between.
 *
 * Threads: a DsnapCatalog has no lock; use it from one thread at a time.
 * Changes block on fsync (a few milliseconds): DESIGN's main loop must not
 * block on disk I/O, so the engine runs changes on a worker (handing the
 * catalog over, never sharing it) and never inside a snapshot's pause.
 * Queries touch memory only, except the intent and domain readers.
 *
 * Errors: a call that fails before changing anything on disk leaves the
 * catalog as it was.  If a write fails after a change became visible on
 * disk, the object refuses further changes ("reopen the catalog"): the
 * next dsnap_catalog_open() finishes the interrupted change.
 */
#ifndef XBLK_SNAPSHOT_CATALOG_H
#define XBLK_SNAPSHOT_CATALOG_H

#include "snapshot/domainsnapshot.h"
#include <glib.h>
#include <stdbool.h>

/* NAME.xml and .NAME.intent.xml must fit in a 255-byte file name. */
#define DSNAP_CATALOG_NAME_MAX 243

typedef struct DsnapCatalog DsnapCatalog;

/* Opens the catalog in folder dir (created with mode 0700, parents
 * included, when create is true and it does not exist).  Loads every
 * NAME.xml, the current pointer and the intent records, removes leftover
 * temporary files and finishes a change a kill interrupted.  What it had
 * to skip or repair is appended to report (when not NULL), one line
 * each: damaged or misnamed files (skipped, never deleted), a parent
 * that does not exist or a cycle (the snapshot becomes a root, in memory
 * only: its file is rewritten when it next changes), a current snapshot
 * that does not exist (cleared, in memory only), removed temporary
 * files.  Fails only when the folder itself is unusable (missing, not a
 * folder, unreadable) or an interrupted change cannot be finished. */
DsnapCatalog *dsnap_catalog_open(const char *dir, bool create,
                                 GString *report, GError **errp);
void dsnap_catalog_free(DsnapCatalog *cat);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DsnapCatalog, dsnap_catalog_free)
const char *dsnap_catalog_dir(const DsnapCatalog *cat);

/* ---- snapshots ---- */

/* The definition (borrowed: valid until the next change), or NULL. */
const DomainSnapshotDef *dsnap_catalog_lookup(const DsnapCatalog *cat,
                                              const char *name);
guint dsnap_catalog_count(const DsnapCatalog *cat);
/* All names (owned strings) in creation order: creationTime (0 when
 * absent), then name (strcmp). */
GPtrArray *dsnap_catalog_names(const DsnapCatalog *cat);

/* The current snapshot's name (borrowed) or NULL. */
const char *dsnap_catalog_current(const DsnapCatalog *cat);
/* name NULL clears it; an unknown name is refused. */
bool dsnap_catalog_set_current(DsnapCatalog *cat, const char *name,
                               GError **errp);

/* Adds a new snapshot; def is taken (freed on failure too).  Refused:
 * no name, an unsafe or reserved name, a name in use, a parent that does
 * not exist.  def is written as dsnap_format() writes it, so it must
 * satisfy domainsnapshot.h's invariants (fill defaults first). */
bool dsnap_catalog_add(DsnapCatalog *cat, DomainSnapshotDef *def,
                       bool make_current, GError **errp);
/* libvirt's --redefine: replaces the metadata of the snapshot of the same
 * name (its children stay its children) or adds it.  Refused as add, and
 * a parent that is the snapshot itself or one of its descendants. */
bool dsnap_catalog_redefine(DsnapCatalog *cat, DomainSnapshotDef *def,
                            bool make_current, GError **errp);
/* Renames; children follow (<parent> rewritten), the current pointer
 * too.  Intent records keep their name. */
bool dsnap_catalog_rename(DsnapCatalog *cat, const char *old_name,
                          const char *new_name, GError **errp);
/* description NULL removes <description>. */
bool dsnap_catalog_set_description(DsnapCatalog *cat, const char *name,
                                   const char *description, GError **errp);
/* Removes one snapshot's metadata as libvirt deletes one snapshot: its
 * children get its parent (or become roots), and if it was current its
 * parent becomes current (or none). */
bool dsnap_catalog_remove(DsnapCatalog *cat, const char *name,
                          GError **errp);

/* ---- the tree ---- */

/* The parent's name (borrowed) or NULL for a root or an unknown name. */
const char *dsnap_catalog_parent(const DsnapCatalog *cat, const char *name);
/* Direct children (owned names, creation order); NULL if name unknown. */
GPtrArray *dsnap_catalog_children(const DsnapCatalog *cat, const char *name);
/* Everything below name, each snapshot after all of its own descendants,
 * so removing them in this order always removes a leaf (what a delete
 * with --children needs before removing name itself); NULL if unknown. */
GPtrArray *dsnap_catalog_descendants(const DsnapCatalog *cat,
                                     const char *name);
/* True when ancestor is a proper ancestor of name. */
bool dsnap_catalog_is_descendant(const DsnapCatalog *cat, const char *name,
                                 const char *ancestor);

/* libvirt's location: external when the memory or any disk is. */
bool dsnap_catalog_def_is_external(const DomainSnapshotDef *def);

/* virsh snapshot-list's filters.  Within a group the set flags are OR-ed
 * and a group with no flag set (or all set) does not filter, as libvirt
 * does; groups are AND-ed. */
typedef struct DsnapListFilter {
    const char *from;       /* --from: children of this snapshot only */
    bool from_current;      /* --current: as from = the current snapshot */
    bool descendants;       /* --descendants: with from, all below it */
    bool roots;             /* --roots (not with from / from_current) */
    bool leaves;            /* --leaves: without children */
    bool no_leaves;         /* --no-leaves: with children */
    bool active;            /* --active: state neither shutoff nor
                               disk-snapshot (taken while running) */
    bool inactive;          /* --inactive: state shutoff */
    bool disk_only;         /* --disk-only: state disk-snapshot */
    bool internal;          /* --internal: not external */
    bool external;          /* --external: dsnap_catalog_def_is_external */
} DsnapListFilter;

/* Names (owned) in creation order; filter NULL lists everything.
 * virsh's --parent, --name and --tree only change the presentation:
 * dsnap_catalog_parent() and dsnap_catalog_format_tree() serve them. */
GPtrArray *dsnap_catalog_list(const DsnapCatalog *cat,
                              const DsnapListFilter *filter, GError **errp);

/* Exactly what `virsh snapshot-list --tree` prints (trailing spaces
 * included): each root's tree in turn, siblings sorted by name ignoring
 * case, "+- " before a child, "|" continuing a branch; with from, the
 * tree below that snapshot only.  "" for an empty catalog, NULL when
 * from is unknown. */
char *dsnap_catalog_format_tree(const DsnapCatalog *cat, const char *from);

/* ---- intent records ---- */

/* An intent record (.NAME.intent.xml) is written before an operation that
 * creates artifacts and cleared after it, so that after a crash the
 * caller finds the operations to finish or undo.  The contents are
 * opaque (at most DSNAP_MAX_DOC_SIZE bytes); name must be a snapshot
 * name (safe) but need not be in the catalog. */
bool dsnap_catalog_intent_write(DsnapCatalog *cat, const char *name,
                                const char *xml, GError **errp);
/* The record's contents, or NULL with *errp set (absent, unreadable). */
char *dsnap_catalog_intent_read(DsnapCatalog *cat, const char *name,
                                GError **errp);
/* Clearing an absent record succeeds. */
bool dsnap_catalog_intent_clear(DsnapCatalog *cat, const char *name,
                                GError **errp);
/* Names (owned, sorted) of the records present. */
GPtrArray *dsnap_catalog_intents(const DsnapCatalog *cat);

/* ---- the domain definition (domain.xml, opaque to the catalog) ---- */

bool dsnap_catalog_write_domain(DsnapCatalog *cat, const char *xml,
                                GError **errp);
/* NULL with *errp set when absent or unreadable. */
char *dsnap_catalog_read_domain(DsnapCatalog *cat, GError **errp);

#endif
