#!/usr/bin/env python3
"""test-damaged: xblk's tools on damaged qcow2 images (DESIGN rule 5).

Builds a few images rich in structure (data, internal snapshots,
compressed clusters, zero clusters, a backing file, persistent bitmaps
added by `qemu-img bitmap --add`, cluster sizes 512 B to 64 KiB, v2 and
v3), locates their metadata with a small parser of its own, and damages
copies of them: targeted values in header fields, header extensions, L1
and L2 entries, the refcount table and blocks, the snapshot table and
snapshot L1 tables and the bitmap directory, random byte flips inside
metadata or anywhere, and truncations.  On each damaged copy it runs

    xblk-img info / check / snapshot -l / convert -O raw   (read-only)
    xblk-img check -r all                                   (on a copy)
    xblk-io -c 'read 0 1M' ... (read-write open, on a copy; if built)

each under a timeout, and asserts: no death by a signal, no hang, no
ASan/UBSan report, a known exit status, and when a command fails a clear
"<program>: <message>" on stderr.  The read-only commands must not change
a byte of the image.  When `qemu-img check -r all` repairs a copy to a
clean state, `xblk-img check -r all` must too (judged by qemu-img check).

The seed is printed; XBLK_SEED=<n> replays it, XBLK_LONG=1 runs many more
cases, XBLK_KEEP_FAILED=<dir> keeps the image of the first failure.
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import xtest  # noqa: E402

XIMG = xtest.binary('xblk-img')
XIO = xtest.binary('xblk-io')
LONG = os.environ.get('XBLK_LONG') == '1'
SEED = int(os.environ.get('XBLK_SEED') or
           random.SystemRandom().randrange(1 << 32))
CASES = 40 if LONG else 4        # damaged copies per source image and test
TIMEOUT = 60

print('# test-damaged: seed %d (XBLK_SEED=%d to replay)' % (SEED, SEED),
      flush=True)

OFFSET_MASK = 0x00fffffffffffe00
COPIED = 1 << 63
COMPRESSED = 1 << 62
EXT_BACKING_FORMAT = 0xe2792aca
EXT_FEATURE_TABLE = 0x6803f857
EXT_BITMAPS = 0x23852875


def be(data, off, n):
    return int.from_bytes(data[off:off + n], 'big')


def rup(x, a):
    return (x + a - 1) // a * a


class Layout:
    """Where the metadata of a (healthy) qcow2 image lives."""

    def __init__(self, path):
        with open(path, 'rb') as f:
            d = f.read()
        self.path = path
        self.file_size = len(d)
        self.version = be(d, 4, 4)
        self.backing_off = be(d, 8, 8)
        self.backing_len = be(d, 16, 4)
        self.cluster_bits = be(d, 20, 4)
        cs = self.cs = 1 << self.cluster_bits
        self.size = be(d, 24, 8)
        self.l1_size = be(d, 36, 4)
        self.l1_off = be(d, 40, 8)
        self.rt_off = be(d, 48, 8)
        self.rt_clusters = be(d, 56, 4)
        self.nb_snap = be(d, 60, 4)
        self.snap_off = be(d, 64, 8)
        self.hdr_len = be(d, 100, 4) if self.version >= 3 else 72
        self.meta = set([0])           # cluster indexes holding metadata

        def add_meta(off, nbytes):
            for c in range(off // cs, (off + max(nbytes, 1) - 1) // cs + 1):
                self.meta.add(c)

        # header extensions: (pos, type, len)
        self.exts = []
        pos, end = self.hdr_len, self.backing_off or cs
        while pos + 8 <= end:
            t, ln = be(d, pos, 4), be(d, pos + 4, 4)
            self.exts.append((pos, t, ln))
            if t == 0:
                break
            pos += 8 + rup(ln, 8)

        def l2_tables_of(l1_off, l1_size):
            tables = []
            for i in range(l1_size):
                e = be(d, l1_off + 8 * i, 8) & OFFSET_MASK
                if e:
                    tables.append(e)
            return tables

        self.l1_entries = [self.l1_off + 8 * i for i in range(self.l1_size)]
        add_meta(self.l1_off, self.l1_size * 8)
        self.l2_tables = l2_tables_of(self.l1_off, self.l1_size)
        self.rt_entries = [self.rt_off + 8 * i
                           for i in range(self.rt_clusters * cs // 8)]
        add_meta(self.rt_off, self.rt_clusters * cs)
        self.refblocks = [be(d, p, 8) & ~0x1ff for p in self.rt_entries
                          if be(d, p, 8)]
        # snapshot table: one dict per entry with field positions
        self.snaps = []
        self.snap_l1_entries = []
        pos = self.snap_off
        for _ in range(self.nb_snap):
            sn = {'pos': pos, 'l1_off': be(d, pos, 8),
                  'l1_size': be(d, pos + 8, 4)}
            id_size, name_size = be(d, pos + 12, 2), be(d, pos + 14, 2)
            extra = be(d, pos + 36, 4)
            sn['name'] = d[pos + 40 + extra + id_size:
                           pos + 40 + extra + id_size + name_size].decode()
            self.snaps.append(sn)
            self.snap_l1_entries += [sn['l1_off'] + 8 * i
                                     for i in range(sn['l1_size'])]
            add_meta(sn['l1_off'], sn['l1_size'] * 8)
            self.l2_tables += l2_tables_of(sn['l1_off'], sn['l1_size'])
            pos += rup(40 + extra + id_size + name_size, 8)
        if self.nb_snap:
            add_meta(self.snap_off, pos - self.snap_off)
        self.snap_table_end = pos
        self.l2_tables = sorted(set(self.l2_tables))
        for t in self.l2_tables:
            add_meta(t, cs)
        for b in self.refblocks:
            add_meta(b, cs)
        # persistent bitmaps
        self.bitmap_ext = None
        self.bitmap_entries = []       # directory entry positions
        self.bitmap_table_entries = []
        for pos, t, ln in self.exts:
            if t == EXT_BITMAPS and ln >= 24:
                self.bitmap_ext = pos
                nb = be(d, pos + 8, 4)
                dsize, doff = be(d, pos + 16, 8), be(d, pos + 24, 8)
                add_meta(doff, dsize)
                p = doff
                for _ in range(nb):
                    self.bitmap_entries.append(p)
                    toff, tsize = be(d, p, 8), be(d, p + 8, 4)
                    add_meta(toff, tsize * 8)
                    self.bitmap_table_entries += [toff + 8 * i
                                                  for i in range(tsize)]
                    name_size, extra = be(d, p + 18, 2), be(d, p + 20, 4)
                    p += rup(24 + extra + name_size, 8)
        self.data = d

    def entry(self, pos):
        return be(self.data, pos, 8)


class Damage:
    """A list of byte writes and an optional truncation."""

    def __init__(self, what):
        self.what = what
        self.writes = []
        self.truncate = None

    def put(self, pos, value, width):
        value &= (1 << (8 * width)) - 1
        self.writes.append((pos, value.to_bytes(width, 'big')))
        return self

    def raw(self, pos, data):
        self.writes.append((pos, bytes(data)))
        return self

    def apply(self, path):
        with open(path, 'r+b') as f:
            for pos, data in self.writes:
                f.seek(pos)
                f.write(data)
            if self.truncate is not None:
                f.truncate(self.truncate)

    def __str__(self):
        s = self.what
        if self.writes:
            s += ' [' + ', '.join('%#x:=%s%s' % (p, b[:16].hex(),
                                                 '..' if len(b) > 16 else '')
                                  for p, b in self.writes[:6])
            s += ', ...]' if len(self.writes) > 6 else ']'
        if self.truncate is not None:
            s += ' [truncate to %d]' % self.truncate
        return s


def bad_offsets(rnd, lay, orig):
    """Offsets a pointer should never hold (or that test a boundary)."""
    cs = lay.cs
    end = rup(lay.file_size, cs)
    cands = [0, cs // 2 if cs > 512 else 8, orig + 512 if cs > 512 else orig + 8,
             orig ^ (1 << rnd.randrange(9, 56)), end, end + 7 * cs,
             (1 << 55) - cs, 1 << 56, lay.l1_off or cs, lay.rt_off,
             rnd.randrange(1 << 56) & ~(cs - 1), orig + cs, orig - cs]
    if lay.l2_tables:
        cands.append(rnd.choice(lay.l2_tables))
    if lay.refblocks:
        cands.append(rnd.choice(lay.refblocks))
    if lay.nb_snap:
        cands.append(lay.snap_off)
    return max(0, rnd.choice(cands))


def wild_value(rnd, orig, width):
    bits = 8 * width
    return rnd.choice([0, 1, orig + 1, orig - 1, orig * 2, orig ^ 1,
                       orig ^ (1 << rnd.randrange(bits)),
                       (1 << bits) - 1, (1 << (bits - 1)),
                       (1 << (bits - 1)) - 1, rnd.randrange(1 << bits),
                       rnd.randrange(1 << min(bits, 24))])


# ---- damage generators: (rnd, layout) -> Damage ----

HEADER_FIELDS = [   # (name, offset, width, v3 only)
    ('magic', 0, 4, False), ('version', 4, 4, False),
    ('backing_file_offset', 8, 8, False), ('backing_file_size', 16, 4, False),
    ('cluster_bits', 20, 4, False), ('size', 24, 8, False),
    ('crypt_method', 32, 4, False), ('l1_size', 36, 4, False),
    ('l1_table_offset', 40, 8, False), ('refcount_table_offset', 48, 8, False),
    ('refcount_table_clusters', 56, 4, False), ('nb_snapshots', 60, 4, False),
    ('snapshots_offset', 64, 8, False),
    ('incompatible_features', 72, 8, True),
    ('compatible_features', 80, 8, True), ('autoclear_features', 88, 8, True),
    ('refcount_order', 96, 4, True), ('header_length', 100, 4, True),
    ('compression_type', 104, 1, True),
]


def damage_header(rnd, lay):
    fields = [f for f in HEADER_FIELDS if lay.version >= 3 or not f[3]]
    name, off, width, _ = rnd.choice(fields)
    orig = be(lay.data, off, width)
    if name.endswith('offset') and rnd.random() < 0.6:
        v = bad_offsets(rnd, lay, orig)
    elif name == 'cluster_bits':
        v = rnd.choice([0, 8, 9, lay.cluster_bits - 1, lay.cluster_bits + 1,
                        21, 22, 31, 63, 0xffffffff])
    elif name == 'size' and rnd.random() < 0.6:
        v = rnd.choice([0, 511, lay.size + 512, lay.size * 2, lay.size << 20,
                        (1 << 62) + 512, (1 << 63), lay.size - 512])
    elif name == 'refcount_order':
        v = rnd.choice([0, 3, 5, 6, 7, 31, 0xffffffff])
    elif name == 'header_length':
        v = rnd.choice([0, 72, 100, 104, 105, 112, 120, lay.cs, lay.cs + 8,
                        0xffffffff])
    elif name == 'incompatible_features':
        v = orig | (1 << rnd.choice([0, 1, 2, 3, 4, 5, 17, 63]))
    else:
        v = wild_value(rnd, orig, width)
    return Damage('header %s %#x -> %#x' % (name, orig, v)).put(off, v,
                                                                  width)


def damage_extension(rnd, lay):
    if not lay.exts:
        return damage_header(rnd, lay)
    pos, t, ln = rnd.choice(lay.exts)
    kind = rnd.choice(['type', 'len', 'len', 'data', 'end', 'backing'])
    d = Damage('extension %#x at %d: %s' % (t, pos, kind))
    if kind == 'type':
        d.put(pos, rnd.choice([0, EXT_BITMAPS, EXT_BACKING_FORMAT,
                               EXT_FEATURE_TABLE, rnd.randrange(1 << 32)]), 4)
    elif kind == 'len':
        d.put(pos + 4, rnd.choice([0, 1, 7, ln + 8, ln - 1, lay.cs,
                                   lay.cs - pos, 0xffffffff, 0x7ffffff8,
                                   rnd.randrange(1 << 32)]), 4)
    elif kind == 'data':
        for _ in range(rnd.randint(1, 4)):
            p = pos + 8 + rnd.randrange(max(ln, 1))
            d.put(p, rnd.randrange(256), 1)
    elif kind == 'end':
        # Drop the end marker: parsing must stop at the cluster's end.
        last = lay.exts[-1][0]
        d.raw(last, bytes(rnd.randrange(256) for _ in range(8)))
    else:
        # A backing-format extension naming an unknown or empty format.
        d.put(pos, EXT_BACKING_FORMAT, 4).put(pos + 4, min(ln, 5) or 5, 4)
        d.raw(pos + 8, b'\xffbad\x00')
    return d


def damage_backing_name(rnd, lay):
    if not lay.backing_off:
        return damage_header(rnd, lay)
    kind = rnd.choice(['self', 'missing', 'long', 'garbage'])
    d = Damage('backing name: %s' % kind)
    if kind == 'self':
        name = b'dmg.qcow2'       # the damaged copy names itself
    elif kind == 'missing':
        name = b'no-such-base.qcow2'
    elif kind == 'long':
        name = b'x' * 1100
    else:
        name = bytes(rnd.randrange(1, 256) for _ in range(rnd.randint(1, 40)))
    room = lay.cs - lay.backing_off
    name = name[:room]
    d.raw(lay.backing_off, name).put(16, len(name) if kind != 'long' else
                                     1100, 4)
    return d


def damage_l1(rnd, lay):
    entries = lay.l1_entries or [lay.l1_off]
    pos = rnd.choice(entries)
    orig = lay.entry(pos)
    kind = rnd.choice(['offset', 'offset', 'reserved', 'copied', 'wild',
                       'table'])
    if kind == 'offset':
        v = (orig & COPIED) | bad_offsets(rnd, lay, orig & OFFSET_MASK)
    elif kind == 'reserved':
        v = orig | (1 << rnd.choice([0, 1, 8, 56, 60, 62]))
    elif kind == 'copied':
        v = orig ^ COPIED
    elif kind == 'table':
        # Fill the whole table with one bad value.
        d = Damage('L1 table filled')
        v = rnd.choice([0xffffffffffffffff, COPIED | lay.l1_off,
                        COPIED | 0x200])
        for p in entries:
            d.put(p, v, 8)
        return d
    else:
        v = wild_value(rnd, orig, 8)
    return Damage('L1 entry at %d %#x -> %#x' % (pos, orig, v)).put(pos, v, 8)


def damage_l2(rnd, lay):
    if not lay.l2_tables:
        return damage_l1(rnd, lay)
    t = rnd.choice(lay.l2_tables)
    n = lay.cs // 8
    # Prefer allocated entries.
    used = [i for i in range(n) if lay.entry(t + 8 * i)]
    i = rnd.choice(used) if used and rnd.random() < 0.8 else rnd.randrange(n)
    pos = t + 8 * i
    orig = lay.entry(pos)
    cs, cb = lay.cs, lay.cluster_bits
    x = 62 - (cb - 8)
    kind = rnd.choice(['offset', 'offset', 'compressed', 'compressed',
                       'zero', 'reserved', 'copied', 'wild', 'flip'])
    if kind == 'offset':
        v = (orig & COPIED) | bad_offsets(rnd, lay, orig & OFFSET_MASK)
    elif kind == 'compressed':
        host = rnd.choice([lay.file_size - 100, lay.file_size + cs, 0, 100,
                           lay.l1_off, rnd.randrange(lay.file_size),
                           (1 << x) - 1])
        sectors = rnd.choice([0, 1, (1 << (cb - 8)) - 1,
                              rnd.randrange(1 << (cb - 8))])
        v = COMPRESSED | ((sectors & ((1 << (cb - 8)) - 1)) << x) | \
            (host & ((1 << x) - 1))
        if rnd.random() < 0.2:
            v |= COPIED
    elif kind == 'zero':
        v = 1 | rnd.choice([orig & OFFSET_MASK, bad_offsets(rnd, lay, 0)])
    elif kind == 'reserved':
        v = orig | (1 << rnd.choice([1, 2, 8, 56, 61]))
    elif kind == 'copied':
        v = orig ^ COPIED
    elif kind == 'flip':
        v = orig ^ (1 << rnd.randrange(64))
    else:
        v = wild_value(rnd, orig, 8)
    return Damage('L2 %#x entry %d %#x -> %#x' % (t, i, orig, v)).put(pos, v,
                                                                        8)


def damage_reftable(rnd, lay):
    pos = rnd.choice(lay.rt_entries[:max(8, len(lay.refblocks) + 2)])
    orig = lay.entry(pos)
    kind = rnd.choice(['offset', 'offset', 'zero', 'reserved', 'wild',
                       'dup'])
    if kind == 'offset':
        v = bad_offsets(rnd, lay, orig)
    elif kind == 'zero':
        v = 0
    elif kind == 'reserved':
        v = orig | rnd.choice([1, 0x100, 0x1ff])
    elif kind == 'dup':
        v = rnd.choice(lay.refblocks) if lay.refblocks else orig
    else:
        v = wild_value(rnd, orig, 8)
    return Damage('refcount table entry at %d %#x -> %#x' %
                  (pos, orig, v)).put(pos, v, 8)


def damage_refblock(rnd, lay):
    if not lay.refblocks:
        return damage_reftable(rnd, lay)
    b = rnd.choice(lay.refblocks)
    kind = rnd.choice(['bytes', 'bytes', 'zero-block', 'ones-block',
                       'random-block'])
    d = Damage('refcount block %#x: %s' % (b, kind))
    if kind == 'bytes':
        # Mostly the counts of clusters in use (the start of the block).
        limit = min(lay.cs, max(64, lay.file_size // lay.cs * 8 + 8))
        for _ in range(rnd.randint(1, 6)):
            d.put(b + rnd.randrange(limit), rnd.choice([0, 0xff, 1, 2, 0x80,
                                                        rnd.randrange(256)]),
                  1)
    elif kind == 'zero-block':
        d.raw(b, bytes(lay.cs))
    elif kind == 'ones-block':
        d.raw(b, b'\xff' * lay.cs)
    else:
        d.raw(b, bytes(rnd.randrange(256) for _ in range(lay.cs)))
    return d


def damage_snapshot_table(rnd, lay):
    if not lay.snaps:
        return damage_header(rnd, lay)
    sn = rnd.choice(lay.snaps)
    p = sn['pos']
    fields = [('l1_table_offset', 0, 8), ('l1_size', 8, 4), ('id_size', 12, 2),
              ('name_size', 14, 2), ('date', 16, 4), ('vm_state_size', 32, 4),
              ('extra_data_size', 36, 4), ('vm_state_size_large', 40, 8),
              ('disk_size', 48, 8)]
    name, off, width = rnd.choice(fields)
    orig = be(lay.data, p + off, width)
    if name == 'l1_table_offset':
        v = bad_offsets(rnd, lay, orig)
    elif name == 'l1_size':
        v = rnd.choice([0, orig + 1, orig * 1000, 0xffffffff, 1 << 22,
                        (1 << 22) + 1])
    elif name == 'extra_data_size':
        v = rnd.choice([0, 7, 8, 15, 16, 1024, 1025, 0xffffffff])
    elif name == 'disk_size':
        v = rnd.choice([0, orig * 2, orig << 24, 1 << 62, orig + 512])
    else:
        v = wild_value(rnd, orig, width)
    return Damage('snapshot %s %s %#x -> %#x' % (sn['name'], name, orig,
                                                 v)).put(p + off, v, width)


def damage_snapshot_l1(rnd, lay):
    if not lay.snap_l1_entries:
        return damage_l1(rnd, lay)
    pos = rnd.choice(lay.snap_l1_entries)
    orig = lay.entry(pos)
    v = rnd.choice([bad_offsets(rnd, lay, orig & OFFSET_MASK),
                    orig | COPIED, orig | 1, wild_value(rnd, orig, 8)])
    return Damage('snapshot L1 entry at %d %#x -> %#x' %
                  (pos, orig, v)).put(pos, v, 8)


def damage_bitmaps(rnd, lay):
    if lay.bitmap_ext is None:
        return damage_extension(rnd, lay)
    choices = ['ext'] * 2 + (['dir'] * 3 if lay.bitmap_entries else []) + \
        (['table'] if lay.bitmap_table_entries else [])
    kind = rnd.choice(choices)
    if kind == 'ext':
        pos = lay.bitmap_ext + 8
        name, off, width = rnd.choice([('nb_bitmaps', 0, 4),
                                       ('reserved', 4, 4),
                                       ('directory_size', 8, 8),
                                       ('directory_offset', 16, 8)])
        orig = be(lay.data, pos + off, width)
        v = bad_offsets(rnd, lay, orig) if name == 'directory_offset' \
            else wild_value(rnd, orig, width)
        return Damage('bitmaps extension %s %#x -> %#x' %
                      (name, orig, v)).put(pos + off, v, width)
    if kind == 'dir':
        p = rnd.choice(lay.bitmap_entries)
        name, off, width = rnd.choice([
            ('table_offset', 0, 8), ('table_size', 8, 4), ('flags', 12, 4),
            ('type', 16, 1), ('granularity_bits', 17, 1),
            ('name_size', 18, 2), ('extra_data_size', 20, 4)])
        orig = be(lay.data, p + off, width)
        v = bad_offsets(rnd, lay, orig) if name == 'table_offset' \
            else wild_value(rnd, orig, width)
        return Damage('bitmap directory %s %#x -> %#x' %
                      (name, orig, v)).put(p + off, v, width)
    pos = rnd.choice(lay.bitmap_table_entries)
    orig = lay.entry(pos)
    v = rnd.choice([bad_offsets(rnd, lay, orig), 1, orig | 1,
                    wild_value(rnd, orig, 8)])
    return Damage('bitmap table entry at %d %#x -> %#x' %
                  (pos, orig, v)).put(pos, v, 8)


def damage_random_meta(rnd, lay):
    d = Damage('random flips in metadata')
    meta = sorted(c for c in lay.meta if c * lay.cs < lay.file_size)
    for _ in range(rnd.randint(1, 12)):
        c = rnd.choice(meta)
        # Most structures are small: favour the start of each cluster.
        span = lay.cs if rnd.random() < 0.3 else min(lay.cs, 512)
        pos = c * lay.cs + rnd.randrange(span)
        if pos < lay.file_size:
            d.put(pos, lay.data[pos] ^ (1 << rnd.randrange(8)), 1)
    return d


def damage_random_any(rnd, lay):
    d = Damage('random bytes anywhere')
    for _ in range(rnd.randint(1, 32)):
        pos = rnd.randrange(lay.file_size)
        d.put(pos, rnd.randrange(256), 1)
    return d


def damage_truncate(rnd, lay):
    cs = lay.cs
    points = [rnd.randrange(lay.file_size), rnd.randrange(min(cs, 4096)),
              lay.l1_off + rnd.randrange(max(lay.l1_size * 8, 1)),
              lay.rt_off + rnd.randrange(8 * max(len(lay.refblocks), 1)),
              lay.file_size - rnd.randrange(1, cs + 1), 0, 72, 104]
    if lay.l2_tables:
        points.append(rnd.choice(lay.l2_tables) + rnd.randrange(cs))
    if lay.refblocks:
        points.append(rnd.choice(lay.refblocks) + rnd.randrange(cs))
    if lay.nb_snap:
        points.append(lay.snap_off + rnd.randrange(
            max(lay.snap_table_end - lay.snap_off, 1)))
    d = Damage('truncation')
    d.truncate = max(0, min(rnd.choice(points), lay.file_size - 1))
    return d


# ---- running the tools ----

def run_tool(argv, timeout=TIMEOUT):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return (p.returncode, p.stdout.decode(errors='replace'),
            p.stderr.decode(errors='replace'))


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


class Sources:
    """The healthy images, built once per run."""
    dir = None
    images = []

    @classmethod
    def build(cls):
        if cls.dir:
            return
        cls.tmp = tempfile.TemporaryDirectory(prefix='xblk-damaged-')
        cls.dir = d = cls.tmp.name
        p = lambda n: os.path.join(d, n)  # noqa: E731

        def qio(img, *cmds, fmt='qcow2'):
            argv = ['qemu-io', '-f', fmt]
            for c in cmds:
                argv += ['-c', c]
            r = xtest.run(argv + [img])
            if 'failed' in r.stdout + r.stderr:
                raise AssertionError('qemu-io %s: %s%s' % (cmds, r.stdout,
                                                           r.stderr))

        def bitmaps(img, *names):
            r = xtest.run(['qemu-img', 'bitmap', '--help'], check=False)
            if r.returncode != 0:
                return False
            for i, n in enumerate(names):
                xtest.run(['qemu-img', 'bitmap', '--add', '-g',
                           str(65536 << i), img, n])
            xtest.run(['qemu-img', 'bitmap', '--disable', img, names[-1]])
            return True

        # (qemu-img 7.2's `check -r all` drops every internal snapshot of
        # an image that also has persistent bitmaps, so no image here has
        # both: its repairs are the reference for ours.)
        # 1: 64 KiB clusters over a qcow2 backing file; data, compressed
        #    and zero clusters, two snapshots.
        base = p('base.qcow2')
        xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', base, '4M'])
        qio(base, 'write -P 0x11 0 1M', 'write -P 0x22 2M 512k')
        a = p('a.qcow2')
        xtest.run([XIMG, 'create', '-q', '-f', 'qcow2', '-b', base, '-F',
                   'qcow2', a, '4M'])
        qio(a, 'write -P 0x33 64k 192k', 'write -c -P 0x44 1M 128k',
            'write -z 2M 64k')
        xtest.run([XIMG, 'snapshot', '-c', 's1', a])
        qio(a, 'write -P 0x55 0 100k', 'write -c -P 0x66 3M 64k')
        xtest.run(['qemu-img', 'snapshot', '-c', 's2', a])
        qio(a, 'write -P 0x77 1536k 64k', 'discard 2M 64k')
        # 2: 4 KiB clusters, zstd, 8-bit refcounts, no backing file, many
        #    L2 tables, three snapshots.
        b = p('b.qcow2')
        xtest.run([XIMG, 'create', '-q', '-f', 'qcow2', '-o',
                   'cluster_size=4096,compression_type=zstd,refcount_bits=8',
                   b, '16M'])
        qio(b, 'write -P 0x21 0 20k', 'write -P 0x22 3M 8k',
            'write -c -P 0x23 7M 16k', 'write -P 0x24 12M 4k')
        xtest.run([XIMG, 'snapshot', '-c', 'first', b])
        qio(b, 'write -P 0x25 4k 4k', 'write -c -P 0x26 15M 8k',
            'write -z 3M 4k')
        xtest.run([XIMG, 'snapshot', '-c', 'second', b])
        qio(b, 'write -P 0x27 8M 64k')
        xtest.run([XIMG, 'snapshot', '-c', 'third', b])
        qio(b, 'write -P 0x28 8M 4k')
        # 3: v2, 512-byte clusters over a raw backing file, snapshots.
        raw = p('base.raw')
        with open(raw, 'wb') as f:
            f.write(bytes(range(256)) * 4096)
        c = p('c.qcow2')
        xtest.run([XIMG, 'create', '-q', '-f', 'qcow2', '-o',
                   'compat=0.10,cluster_size=512', '-b', raw, '-F', 'raw',
                   c, '1M'])
        qio(c, 'write -P 0x31 0 3k', 'write -P 0x32 100k 40k',
            'write -c -P 0x33 200k 2k')
        xtest.run([XIMG, 'snapshot', '-c', 'old', c])
        qio(c, 'write -P 0x34 1k 1k', 'write -P 0x35 900k 64k')
        xtest.run([XIMG, 'snapshot', '-c', 'new', c])
        qio(c, 'write -P 0x36 120k 1k')
        # 4: 16 KiB clusters, zstd, compressed and plain data, three
        #    persistent bitmaps (one disabled).
        e = p('e.qcow2')
        xtest.run([XIMG, 'create', '-q', '-f', 'qcow2', '-o',
                   'cluster_size=16k,compression_type=zstd', e, '8M'])
        cls.have_bitmaps = bitmaps(e, 'bm0', 'bm1', 'bm2')
        # (written after the bitmaps, so the enabled ones have data)
        qio(e, 'write -P 0x41 0 40k', 'write -c -P 0x42 1M 32k',
            'write -P 0x43 5M 16k', 'write -z 6M 32k')
        cls.images = [a, b, c, e]
        cls.layouts = [Layout(i) for i in cls.images]


def setUpModule():
    Sources.build()


def tearDownModule():
    if Sources.tmp:
        Sources.tmp.cleanup()


class DamagedImages(xtest.TmpDirTestCase):

    def test_sources_are_healthy(self):
        """The images to damage pass both checks and hold what the damage
        cases aim at."""
        for img, lay in zip(Sources.images, Sources.layouts):
            for tool in ('qemu-img', XIMG):
                r = run_tool([tool, 'check', '--output=json', img])
                self.assertEqual(r[0], 0, '%s check %s: %s%s' %
                                 (tool, img, r[1], r[2]))
            if img.endswith('e.qcow2'):
                if Sources.have_bitmaps:
                    self.assertEqual(len(lay.bitmap_entries), 3, img)
                    self.assertTrue(any(lay.entry(p) for p in
                                        lay.bitmap_table_entries), img)
            else:
                self.assertGreater(len(lay.snaps), 1, img)
                self.assertGreater(len(lay.l2_tables), 1, img)
            info = json.loads(run_tool(['qemu-img', 'check', '--output=json',
                                        img])[1])
            self.assertGreater(info.get('compressed-clusters', 0), 0, img)
        self.assertTrue(Sources.layouts[0].backing_off)

    def assert_sane(self, argv, r, ok_codes, ctx):
        cmd = ' '.join(os.path.basename(a) if a.startswith('/') else a
                       for a in argv)
        self.assertIsNotNone(r, '%s: %s hung (no exit within %ds)' %
                             (ctx, cmd, TIMEOUT))
        rc, out, err = r
        self.assertGreaterEqual(rc, 0, '%s: %s died by signal %d:\n%s' %
                                (ctx, cmd, -rc, err[-3000:]))
        for marker in ('AddressSanitizer', 'runtime error:',
                       'LeakSanitizer', 'Assertion', 'GLib-CRITICAL',
                       'GLib-ERROR', '** ERROR'):
            self.assertNotIn(marker, err, '%s: %s:\n%s' % (ctx, cmd,
                                                          err[-3000:]))
        self.assertIn(rc, ok_codes, '%s: %s exited %d:\n%s%s' %
                      (ctx, cmd, rc, out[-2000:], err[-2000:]))
        if rc != 0 and rc in (1,):
            prog = os.path.basename(argv[0])
            # (xblk-io, like qemu-io, reports failed commands on stdout,
            # and check its summary)
            lines = [l for l in (err + '\n' + out).splitlines()
                     if l.strip()]
            self.assertTrue(lines, '%s: %s failed (%d) without a message' %
                            (ctx, cmd, rc))
            # "prog: message", or qemu-io's "read failed: message" for a
            # failed command of xblk-io
            def clear(line):
                if line.startswith(prog + ': '):
                    return len(line) > len(prog) + 6
                if prog == 'xblk-img' and argv[1] == 'check':
                    # qemu-img's summary of a check it could not finish
                    return 'errors have occurred during the check' in line
                return prog == 'xblk-io' and ' failed: ' in line
            self.assertTrue(any(clear(l) for l in lines),
                            '%s: %s failed without a "%s: <message>" line:'
                            '\n%s' % (ctx, cmd, prog, err[-2000:]))
        for text in (out, err):
            self.assertNotIn('(null)', text, ctx + ': ' + cmd)

    def run_case(self, src, dmg_desc, damage):
        ctx = 'seed %d, %s, %s' % (SEED, os.path.basename(src), dmg_desc)
        img = self.path('dmg.qcow2')
        shutil.copyfile(src, img)
        damage.apply(img)
        before = sha(img)
        out = self.path('out.raw')
        try:
            # read-only commands: must leave the image as it is
            for argv, codes in (
                    ([XIMG, 'info', '--output=json', img], (0, 1)),
                    ([XIMG, 'check', img], (0, 1, 2, 3, 63)),
                    ([XIMG, 'snapshot', '-l', img], (0, 1)),
                    ([XIMG, 'convert', '-O', 'raw', img, out], (0, 1))):
                r = run_tool(argv)
                self.assert_sane(argv, r, codes, ctx)
                if os.path.exists(out):
                    os.unlink(out)
            self.assertEqual(sha(img), before, '%s: a read-only command '
                             'modified the image' % ctx)
            # repair on a copy
            rep = self.path('rep.qcow2')
            shutil.copyfile(img, rep)
            argv = [XIMG, 'check', '-r', 'all', rep]
            xr = run_tool(argv)
            self.assert_sane(argv, xr, (0, 1, 2, 3, 63), ctx)
            self.compare_repair(img, rep, xr, ctx)
            # read-write open and I/O on a copy
            if os.path.exists(XIO):
                rw = self.path('rw.qcow2')
                shutil.copyfile(img, rw)
                argv = [XIO, '-c', 'read 0 1M', '-c', 'write -P 0x5a 64k 4k',
                        '-c', 'read -P 0x5a 64k 4k', '-c', 'flush', rw]
                self.assert_sane(argv, run_tool(argv), (0, 1), ctx)
        except AssertionError:
            keep = os.environ.get('XBLK_KEEP_FAILED')
            if keep:
                os.makedirs(keep, exist_ok=True)
                shutil.copyfile(img, os.path.join(keep, 'dmg.qcow2'))
                shutil.copyfile(src, os.path.join(keep, 'src.qcow2'))
            raise

    def compare_repair(self, img, rep, xr, ctx):
        """If qemu-img repairs a copy to a clean state, xblk-img's repair
        must leave a copy that qemu-img finds clean too."""
        q = self.path('qrep.qcow2')
        shutil.copyfile(img, q)
        qr = run_tool(['qemu-img', 'check', '-r', 'all', q])
        if qr is None or qr[0] != 0:
            return          # qemu-img could not repair it either
        qc = run_tool(['qemu-img', 'check', '--output=json', q])
        if qc is None or qc[0] not in (0, 3):
            return
        mine = run_tool(['qemu-img', 'check', '--output=json', rep])
        self.assertIsNotNone(mine, ctx)
        want = (0,) if qc[0] == 0 else (0, 3)
        self.assertIn(mine[0], want,
                      '%s: qemu-img check -r all repairs this image, but '
                      'after xblk-img check -r all (exit %d: %s%s) qemu-img '
                      'check says (exit %d):\n%s%s' %
                      (ctx, xr[0], xr[1][-1500:], xr[2][-800:], mine[0],
                       mine[1][-1500:], mine[2][-800:]))

    def cases(self, gen):
        rnd = random.Random('%d-%s' % (SEED, self.id()))
        for src, lay in zip(Sources.images, Sources.layouts):
            for _ in range(CASES):
                d = gen(rnd, lay)
                self.run_case(src, str(d), d)

    def test_header_fields(self):
        self.cases(damage_header)

    def test_header_extensions(self):
        self.cases(damage_extension)

    def test_backing_file_name(self):
        self.cases(damage_backing_name)

    def test_l1_table(self):
        self.cases(damage_l1)

    def test_l2_tables(self):
        self.cases(damage_l2)

    def test_refcount_table(self):
        self.cases(damage_reftable)

    def test_refcount_blocks(self):
        self.cases(damage_refblock)

    def test_snapshot_table(self):
        self.cases(damage_snapshot_table)

    def test_snapshot_l1_tables(self):
        self.cases(damage_snapshot_l1)

    def test_bitmaps(self):
        self.cases(damage_bitmaps)

    def test_bitmap_directory_without_padding(self):
        # Found by test_bitmaps (seed 2085849875): a directory size that
        # stops inside the last entry's padding to 8 bytes was accepted,
        # and the close then copied the padded entry past the directory.
        done = 0
        for src, lay in zip(Sources.images, Sources.layouts):
            if lay.bitmap_ext is None:
                continue
            pos = lay.bitmap_ext + 8 + 8
            orig = be(lay.data, pos, 8)
            d = Damage('bitmaps extension directory_size %#x -> %#x' %
                       (orig, orig - 1)).put(pos, orig - 1, 8)
            self.run_case(src, str(d), d)
            done += 1
        self.assertGreater(done, 0, 'no source image has bitmaps')

    def test_reserved_reftable_entry_naming_shared_data(self):
        # Found by test_random_bytes (seed 321015548): an unused refcount
        # table entry turned into a reserved-bit value whose offset names
        # a data cluster the active and a snapshot's L2 table share.  The
        # rebuild took back a reference for that entry that had never
        # been counted, wrote refcount 1 for the shared cluster, and the
        # double check found it referenced twice.
        done = 0
        for src, lay in zip(Sources.images, Sources.layouts):
            shared = self.shared_data_cluster(lay)
            used = len(lay.refblocks)
            if shared is None or used >= len(lay.rt_entries):
                continue
            pos = lay.rt_entries[used]            # the first unused entry
            d = Damage('refcount table entry at %d 0 -> %#x' %
                       (pos, shared | 0x100)).put(pos, shared | 0x100, 8)
            self.run_case(src, str(d), d)
            done += 1
        self.assertGreater(done, 0, 'no source image shares data clusters')

    @staticmethod
    def shared_data_cluster(lay):
        """A plain data cluster that more than one L2 table maps, or
        None."""
        seen = {}
        for t in lay.l2_tables:
            for i in range(lay.cs // 8):
                e = lay.entry(t + 8 * i)
                if e & COMPRESSED:
                    continue
                off = e & OFFSET_MASK
                if off and off % lay.cs == 0:
                    seen.setdefault(off, set()).add(t)
        for off, tables in sorted(seen.items()):
            if len(tables) > 1:
                return off
        return None

    def test_random_metadata_flips(self):
        self.cases(damage_random_meta)

    def test_random_bytes(self):
        self.cases(damage_random_any)

    def test_truncation(self):
        self.cases(damage_truncate)


if __name__ == '__main__':
    xtest.main()
