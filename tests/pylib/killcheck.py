"""killcheck: what the SIGKILL tests check on the reference guest's disks.

Shared by tests/hw/xbox/test-savestate-kill.py and
tests/snapshot/test-crash-torture.py.

The reference guest (hw/xbox/guest/save.c, its README.md) writes a game
save every 180 frames into a save area at sector 524288 of its first hard
disk: 64 slots 1 MiB apart, each 64 KiB (a record sector and 127 filler
sectors stamped with the save's counter), and prints "save N written"
on the debug console once the FLUSH CACHE that follows completed.  A
save printed as written is durable: no crash may lose it.

Also here: listings of `qemu-img snapshot -l` / HMP `info snapshots`,
the second disk's stamp (the test writes it between runs), and the
frame hash a save-state stream records in its META record.
"""
import hashlib
import os
import re
import struct
import subprocess

# The guest's save area (hw/xbox/guest/save.c, README.md).
AREA_LBA = 524288
SLOTS = 64
SLOT_STRIDE = 1 << 20
SLOT_BYTES = 64 << 10
SECTOR = 512
SAVE_MAGIC = 0x56415358         # "XSAV"
FILL_MAGIC = 0x4C494658         # "XFIL"
STAMP = 64 << 10                # two stamped 64 KiB blocks (second disk)

WRITTEN_RE = re.compile(r'^xboxguest: save (\d+) written \(slot (\d+), '
                        r'frame (\d+)')


class Failure(AssertionError):
    pass


def run(cmd, check=True, timeout=600):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, text=True)
    if check and p.returncode != 0:
        raise Failure('%s failed (%d):\n%s%s' %
                      (' '.join(cmd), p.returncode, p.stdout, p.stderr))
    return p


def fnv1a(data):
    h = 0x811c9dc5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xffffffff
    return h


def _filler_tail(k):
    """Bytes 12..511 of filler sector k of a slot (save.c fill_payload)."""
    return struct.pack('<125I', *[((k * 128 + j) * 2654435761) & 0xffffffff
                                  for j in range(3, 128)])


FILLER_TAIL = [None] + [_filler_tail(k) for k in range(1, SLOT_BYTES //
                                                          SECTOR)]


def parse_slot(raw, s):
    """(record, fills) of slot s in the save area bytes raw (the whole
    area, or only its slots one after the other as read_area returns
    them): record is {'counter', 'frame'} or None (no valid record);
    fills[k - 1] is the counter stamped in filler sector k, or None if it
    is not a filler."""
    stride = SLOT_STRIDE if len(raw) == SLOTS * SLOT_STRIDE else SLOT_BYTES
    base = s * stride
    sec = raw[base:base + SECTOR]
    rec = None
    if len(sec) == SECTOR and \
            fnv1a(sec[:508]) == struct.unpack_from('<I', sec, 508)[0]:
        magic, version, counter, slot, frame = struct.unpack_from('<5I', sec)
        if magic == SAVE_MAGIC and version == 1 and slot == s and counter:
            rec = {'counter': counter, 'frame': frame}
    fills = []
    for k in range(1, SLOT_BYTES // SECTOR):
        off = base + k * SECTOR
        magic, counter, kk = struct.unpack_from('<3I', raw, off)
        ok = magic == FILL_MAGIC and kk == k and \
            raw[off + 12:off + SECTOR] == FILLER_TAIL[k]
        fills.append(counter if ok else None)
    return rec, fills


def describe_slot(rec, fills):
    stamps = sorted(set(fills), key=lambda x: (x is None, x or 0))
    return 'record %s, filler stamps %s' % (rec, stamps)


def parse_console(path):
    """{counter: (slot, frame)} of the saves printed as written."""
    out = {}
    try:
        with open(path, 'rb') as f:
            text = f.read().decode(errors='replace')
    except FileNotFoundError:
        return out
    for line in text.split('\n')[:-1]:       # whole lines only
        m = WRITTEN_RE.match(line)
        if m:
            out[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
    return out


def parse_listing(text):
    """{tag: VM SIZE text} of a `qemu-img snapshot -l` or `info
    snapshots` listing."""
    tags = {}
    lines = text.replace('\r', '').split('\n')
    seen_header = False
    for line in lines:
        if line.startswith('List of partial'):
            break               # info snapshots: tags not on every disk
        parts = line.split()
        if not parts:
            continue
        if parts[0] == 'ID' and len(parts) > 1 and parts[1] == 'TAG':
            seen_header = True
            continue
        if seen_header and len(parts) >= 4:
            tags[parts[1]] = ' '.join(parts[2:4])
    return tags


def read_area(image, scratch):
    """The 64 slots of the save area (64 KiB each, one after the other) of
    a qcow2 image as qemu-img reads it (through its backing chain);
    scratch is a file name to use.  The area is converted to a sparse raw
    file (qemu-img convert of a raw node with offset and size over the
    image: ~10x faster than qemu-img dd, which writes every zero)."""
    if os.path.exists(scratch):
        os.unlink(scratch)
    run(['qemu-img', 'convert', '-O', 'raw', '--image-opts',
         'driver=raw,offset=%d,size=%d,file.driver=qcow2,'
         'file.file.driver=file,file.file.filename=%s' %
         (AREA_LBA * SECTOR, SLOTS * SLOT_STRIDE,
          image.replace(',', ',,')), scratch])
    out = []
    with open(scratch, 'rb') as f:
        for s in range(SLOTS):
            f.seek(s * SLOT_STRIDE)
            out.append(f.read(SLOT_BYTES))
    os.unlink(scratch)
    raw = b''.join(out)
    if len(raw) != SLOTS * SLOT_BYTES:
        raise Failure('qemu-img convert gave %d bytes of slots' % len(raw))
    return raw


def parse_area(raw):
    """[parse_slot(raw, s) for every slot]; the functions below take raw
    bytes or this list."""
    if isinstance(raw, list):
        return raw
    return [parse_slot(raw, s) for s in range(SLOTS)]


def newest(raw):
    """The highest counter of a valid record in the save area."""
    best = 0
    for rec, _ in parse_area(raw):
        if rec and rec['counter'] > best:
            best = rec['counter']
    return best


def whole_saves(raw):
    """{counter: (slot, frame)} of the slots whose record and 127 fillers
    are all of one save."""
    out = {}
    for s, (rec, fills) in enumerate(parse_area(raw)):
        if rec and all(x == rec['counter'] for x in fills):
            out[rec['counter']] = (s, rec['frame'])
    return out


def check_flushed(raw, written, flushed_max, started_max, what):
    """Every save of written (counter -> (slot, frame)) up to flushed_max
    is in the save area raw; saves flushed_max+1..started_max may have
    been started after the command (their slots may hold either version
    of each sector).  Raises Failure."""
    raw = parse_area(raw)
    top = newest(raw)
    if top < flushed_max:
        raise Failure('%s: game save %d was flushed, but the newest valid '
                      'record on the disk is %d' % (what, flushed_max, top))
    for c in sorted(written):
        if c > flushed_max or c <= flushed_max - SLOTS:
            continue
        slot, frame = written[c]
        if slot != c % SLOTS:
            raise Failure('%s: the guest put save %d in slot %d, the test '
                          'expects %d' % (what, c, slot, c % SLOTS))
        later = [x for x in range(flushed_max + 1, started_max + 1)
                 if x % SLOTS == slot]
        ok_counters = set([c] + later)
        rec, fills = raw[slot]
        bad = None
        if later:
            # Overwritten (or being overwritten) after the command: each
            # sector old or new, nothing else.
            if rec is None or rec['counter'] not in ok_counters or \
                    (rec['counter'] == c and rec['frame'] != frame):
                bad = 'record'
            elif any(x not in ok_counters for x in fills):
                bad = 'filler'
        else:
            if rec is None or rec['counter'] != c or rec['frame'] != frame:
                bad = 'record'
            elif any(x != c for x in fills):
                bad = 'filler'
        if bad:
            raise Failure(
                '%s: game save %d (slot %d, frame %d) was flushed but its %s '
                'is lost: the slot holds %s (allowed counters %s)' %
                (what, c, slot, frame, bad, describe_slot(rec, fills),
                 sorted(ok_counters)))


# The second disk: the guest never writes it, so the test stamps its first
# two 64 KiB blocks with the iteration number (qemu-io, between runs).  A
# snapshot holds the stamp of the iteration it was taken in; a load or a
# revert (all disks or none, DESIGN rule 3) brings it back.

def stamp_bytes(it):
    return ((it % 250) + 1, (it // 250) % 250 + 1)


def write_stamp(image, it):
    b = stamp_bytes(it)
    run(['qemu-io', '-f', 'qcow2', '-c', 'write -P %d 0 %d' % (b[0], STAMP),
         '-c', 'write -P %d %d %d' % (b[1], STAMP, STAMP), image])


def read_stamp(image, scratch):
    """The iteration whose stamp image shows (mod 62500), or a description
    of what it holds instead."""
    if os.path.exists(scratch):
        os.unlink(scratch)
    run(['qemu-img', 'dd', '-f', 'qcow2', '-O', 'raw', 'bs=%d' % STAMP,
         'count=2', 'if=%s' % image, 'of=%s' % scratch])
    with open(scratch, 'rb') as f:
        raw = f.read()
    os.unlink(scratch)
    blocks = [raw[:STAMP], raw[STAMP:2 * STAMP]]
    if len(raw) == 2 * STAMP and \
            all(blk == blk[:1] * STAMP for blk in blocks):
        b = (blocks[0][0], blocks[1][0])
        if all(1 <= x <= 250 for x in b):
            return (b[0] - 1) + 250 * (b[1] - 1)
    return 'no stamp (first bytes %s / %s)' % (blocks[0][:8].hex(),
                                               blocks[1][:8].hex())


def stream_meta(path):
    """(frame, frame hash) from the META record of a save-state stream
    file (docs/savestate.md, "The stream, byte by byte"): an external
    memory file of a domain snapshot.  Raises Failure if there is none."""
    with open(path, 'rb') as f:
        data = f.read()
    if data[:8] != b'XBSS\r\n\x1a\n':
        raise Failure('%s: not a save-state stream' % path)
    off = struct.unpack_from('<I', data, 12)[0]
    while off + 25 <= len(data):
        tag = data[off:off + 4]
        length = struct.unpack_from('<Q', data, off + 12)[0]
        n = data[off + 24]
        payload = off + 29 + n
        if tag == b'META':
            frame = struct.unpack_from('<Q', data, payload)[0]
            hl = struct.unpack_from('<H', data, payload + 8)[0]
            return frame, data[payload + 10:payload + 10 + hl].decode()
        if tag == b'ENDM':
            break
        off = payload + length
    raise Failure('%s: no META record' % path)


# ---- images (qemu-img) ----

def image_content_hash(path, snapshot=None):
    """sha256 of the guest-visible content of a qcow2 image (of one of its
    internal snapshots if named), read through qemu-img convert."""
    out = path + '.raw'
    args = ['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw']
    if snapshot:
        args += ['-l', 'snapshot.name=%s' % snapshot]
    run(args + [path, out])
    h = hashlib.sha256()
    with open(out, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    os.unlink(out)
    return h.hexdigest()


def image_snapshot_names(path):
    """The internal snapshots' names, as qemu-img snapshot -l lists them."""
    p = run(['qemu-img', 'snapshot', '-l', path])
    names = []
    for line in p.stdout.splitlines()[2:]:
        parts = line.split()
        if len(parts) >= 2:
            names.append(parts[1])
    return names
