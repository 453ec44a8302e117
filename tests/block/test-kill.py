#!/usr/bin/env python3
"""test-kill: crash consistency of the qcow2 driver under SIGKILL (DESIGN
rule 2).

Each round creates an image with build/xblk-img (cluster sizes from 512
bytes to 2 MiB, refcount widths 1 to 64 bits, zlib or zstd, v3 or v2,
without a backing file or over a raw or qcow2 one), then runs
build/tests/block/helper-kill-writer on it several times in a row, each
run SIGKILLed at a random instant.  After every kill:

  1. `qemu-img check` finds no corruption (leaks are allowed; exit 0 or 3),
     and neither does `xblk-img check`;
  2. every sector reads back (through qemu-img, and identically through
     xblk-img) as the newest content that a flush acknowledged, or as the
     content of some request issued after that flush - nothing else;
  3. every snapshot the image lists was started by the writer, is whole
     (`qemu-img snapshot -a` works on a copy, whose check is clean) and
     holds exactly the content at the instant it was taken; a snapshot
     whose creation (deletion) was acknowledged is present (absent).
     The writer also reverts to snapshots: a completed revert is durable
     like a flush, one in progress may have happened or not.

Two cases simulate a power loss instead (helper-kill-writer -P): a
filter under qcow2 journals the writes no flush has made durable and, at
a random write, rewrites each such sector to one of its versions, as a
disk losing its volatile cache may leave it; the same checks follow.

The next run continues on the crashed image from the content found, so
leaked clusters and adopted snapshots are exercised too.  At the end
`xblk-img check -r all` must repair the image to a leak-free state.

The master seed is printed; XBLK_SEED=<n> replays it.  XBLK_LONG=1 runs
many more rounds.  XBLK_KEEP_FAILED=<dir> keeps the files of a failure.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import xtest  # noqa: E402

XIMG = xtest.binary('xblk-img')
HELPER = xtest.binary(os.path.join('tests', 'block', 'helper-kill-writer'))
LONG = os.environ.get('XBLK_LONG') == '1'
SEED = int(os.environ.get('XBLK_SEED') or random.SystemRandom().randrange(1 << 32))
# (images, runs per image) for each test case
IMAGES, GENERATIONS = (12, 4) if LONG else (2, 3)

SECTOR = 512
POWERCUT_EXIT = 99   # helper-kill-writer -P: power lost as simulated
INIT = 0        # content code: what the image showed at creation
ZERO = -1       # content code: zeroes
# positive codes: the sequence number of the write that put the sector down

print('# test-kill: seed %d (XBLK_SEED=%d to replay)' % (SEED, SEED),
      flush=True)


def write_record(seq, sector):
    rec = b'XKW1' + seq.to_bytes(4, 'little') + \
        (sector * SECTOR).to_bytes(8, 'little')
    return rec * (SECTOR // 16)


def base_record(sector):
    rec = b'XKB1' + bytes(4) + (sector * SECTOR).to_bytes(8, 'little')
    return rec * (SECTOR // 16)


ZERO_SECTOR = bytes(SECTOR)


def describe(data):
    """Human-readable guess of what a sector holds."""
    if data == ZERO_SECTOR:
        return 'zeroes'
    tag = bytes(data[:4])
    if tag in (b'XKW1', b'XKB1'):
        seq = int.from_bytes(data[4:8], 'little')
        off = int.from_bytes(data[8:16], 'little')
        whole = bytes(data) == bytes(data[:16]) * (SECTOR // 16)
        return '%s seq=%d off=%d%s' % (tag.decode(), seq, off,
                                       '' if whole else ' (torn)')
    return 'garbage %s...' % bytes(data[:16]).hex()


def runs(state):
    """(code, first, end) for each run of equal codes in a state."""
    out, start = [], 0
    for i in range(1, len(state) + 1):
        if i == len(state) or state[i] != state[start]:
            out.append((state[start], start, i))
            start = i
    return out


def parse_log(path):
    """Returns the list of complete log lines as tuples."""
    with open(path, 'rb') as f:
        text = f.read().decode(errors='replace')
    lines = text.split('\n')
    # The last element is '' after a final newline, else an unfinished
    # line whose request was never issued.
    events = []
    for line in lines[:-1]:
        parts = line.split()
        if not parts:
            continue
        events.append(parts)
    return events


class Config:
    def __init__(self, rnd, cluster_size=None, refcount_bits=None,
                 compression=None, compat='1.1', backing=None):
        self.cs = cluster_size or rnd.choice(
            [512, 1024, 4096, 16384, 65536, 65536, 262144])
        self.rb = refcount_bits or rnd.choice([16, 16, 32, 64, 8])
        self.compression = compression or rnd.choice(['zlib', 'zstd'])
        self.compat = compat
        if compat == '0.10':
            self.rb = 16
            self.compression = 'zlib'
        self.backing = backing        # None, 'raw' or 'qcow2'
        mib = 1 << 20
        self.size = rnd.choice([8, 16, 16, 32]) * mib
        if self.cs >= 2 * mib:
            self.size = max(self.size, 16 * mib)
        if self.cs == 512:
            self.size = min(self.size, 8 * mib)
        self.base_size = self.size - rnd.randrange(0, 64) * 8 * SECTOR

    def __str__(self):
        return ('cluster_size=%d refcount_bits=%d compression=%s compat=%s '
                'backing=%s size=%d' % (self.cs, self.rb, self.compression,
                                        self.compat, self.backing, self.size))

    @property
    def discard_code(self):
        # v3 discards leave zero clusters over a backing file; v2 cannot
        # express them and lets the backing file show through.
        return INIT if (self.compat == '0.10' and self.backing) else ZERO

    @property
    def snapshots_may_fail(self):
        # Shared compressed clusters can reach a narrow refcount's maximum
        # when a snapshot adds references: -ERANGE, as in qemu.
        return self.rb <= 8


def qemu_img(*args, check=False, timeout=300):
    return xtest.run(['qemu-img'] + list(args), check=check, timeout=timeout)


def xblk_img(*args, check=False, timeout=300):
    return xtest.run([XIMG] + list(args), check=check, timeout=timeout)


class KillTest(xtest.TmpDirTestCase):

    def setUp(self):
        super().setUp()
        if not os.path.exists(HELPER):
            self.skipTest('%s not built' % HELPER)

    def keep_failed(self):
        keep = os.environ.get('XBLK_KEEP_FAILED')
        if keep:
            dst = os.path.join(keep, self.id())
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(self.dir, dst)

    # ---- image set-up ----

    def make_base(self, cfg, rnd):
        """Writes the backing file: base records in about half of the
        64 KiB chunks, zeroes elsewhere.  Returns the per-sector bytes."""
        nsect = cfg.base_size // SECTOR
        content = bytearray(cfg.base_size)
        chunk = 128
        for first in range(0, nsect, chunk):
            if rnd.random() < 0.5:
                for s in range(first, min(first + chunk, nsect)):
                    content[s * SECTOR:(s + 1) * SECTOR] = base_record(s)
        raw = self.path('base.raw')
        with open(raw, 'wb') as f:
            f.write(content)
        if cfg.backing == 'raw':
            return raw, 'raw', bytes(content)
        base = self.path('base.qcow2')
        qemu_img('convert', '-f', 'raw', '-O', 'qcow2', '-o',
                 'cluster_size=%d' % rnd.choice([4096, 65536]), raw, base,
                 check=True)
        os.unlink(raw)
        return base, 'qcow2', bytes(content)

    def create_image(self, cfg, rnd):
        img = self.path('img.qcow2')
        opts = 'cluster_size=%d,refcount_bits=%d,compat=%s' % (
            cfg.cs, cfg.rb, cfg.compat)
        if cfg.compat != '0.10':
            opts += ',compression_type=%s' % cfg.compression
        args = ['create', '-q', '-f', 'qcow2', '-o', opts]
        base_bytes = b''
        if cfg.backing:
            base, fmt, base_bytes = self.make_base(cfg, rnd)
            args += ['-b', base, '-F', fmt]
        xblk_img(*(args + [img, str(cfg.size)]), check=True)
        return img, base_bytes

    # ---- checks ----

    def assert_checks_clean(self, img, ctx):
        p = qemu_img('check', '--output=json', img)
        self.assertIn(p.returncode, (0, 3),
                      '%s: qemu-img check exit %d\n%s%s' %
                      (ctx, p.returncode, p.stdout, p.stderr))
        info = json.loads(p.stdout)
        self.assertEqual(info.get('corruptions', 0), 0,
                         '%s: qemu-img check: %s%s' % (ctx, p.stdout,
                                                        p.stderr))
        self.assertEqual(info.get('check-errors', 0), 0, ctx + p.stdout)
        p = xblk_img('check', '--output=json', img)
        self.assertIn(p.returncode, (0, 3),
                      '%s: xblk-img check exit %d\n%s%s' %
                      (ctx, p.returncode, p.stdout, p.stderr))
        self.assertEqual(json.loads(p.stdout).get('corruptions', 0), 0,
                         '%s: xblk-img check: %s' % (ctx, p.stdout))
        return info

    def read_raw(self, img, ctx, snapshot=None):
        """Contents through qemu-img and, for the active layer, xblk-img
        (which must agree)."""
        out = self.path('read.raw')
        p = qemu_img('convert', '-f', 'qcow2', '-O', 'raw', img, out)
        self.assertEqual(p.returncode, 0, '%s: qemu-img convert: %s' %
                         (ctx, p.stderr))
        with open(out, 'rb') as f:
            data = f.read()
        os.unlink(out)
        if snapshot is None:
            p = xblk_img('convert', '-f', 'qcow2', '-O', 'raw', img, out)
            self.assertEqual(p.returncode, 0, '%s: xblk-img convert: %s' %
                             (ctx, p.stderr))
            with open(out, 'rb') as f:
                mine = f.read()
            os.unlink(out)
            if mine != data:
                bad = next(i for i in range(0, len(data), SECTOR)
                           if mine[i:i + SECTOR] != data[i:i + SECTOR])
                self.fail('%s: xblk-img and qemu-img read the image '
                          'differently at byte %d: %s vs %s' %
                          (ctx, bad, describe(mine[bad:bad + SECTOR]),
                           describe(data[bad:bad + SECTOR])))
        return data

    def expected(self, code, sector, base):
        if code > 0:
            return write_record(code, sector)
        if code == INIT and (sector + 1) * SECTOR <= len(base):
            return base[sector * SECTOR:(sector + 1) * SECTOR]
        return ZERO_SECTOR

    def verify_state(self, data, state, later, base, ctx):
        """data must equal `state`, except that sectors covered by a
        request in `later` may hold that request's content instead.
        Returns the resolved per-sector codes."""
        mv = memoryview(data)
        resolved = list(state)
        bad = []
        for i in range(len(state)):
            got = mv[i * SECTOR:(i + 1) * SECTOR]
            if got == self.expected(state[i], i, base):
                continue
            for code, a, b in later:
                if a <= i < b and got == self.expected(code, i, base):
                    resolved[i] = code
                    break
            else:
                bad.append(i)
        if bad:
            msg = ['%s: %d sector(s) hold content no request explains:' %
                   (ctx, len(bad))]
            for i in bad[:8]:
                cands = [c for c, a, b in later if a <= i < b]
                msg.append('  sector %d (byte %d): found %s; flushed '
                           'code %d, later candidates %s' %
                           (i, i * SECTOR, describe(mv[i * SECTOR:
                                                       (i + 1) * SECTOR]),
                            state[i], cands[-6:]))
            self.fail('\n'.join(msg))
        return resolved

    # ---- one run of the writer ----

    def run_writer(self, img, cfg, rnd, gen, state, snapstates, ondisk,
                   seqbase, base, powercut=False):
        nsect = cfg.size // SECTOR
        log = self.path('gen%d.log' % gen)
        errlog = self.path('gen%d.err' % gen)
        wseed = rnd.randrange(1 << 32)
        args = [HELPER, '-s', str(wseed), '-c', str(cfg.cs), '-q',
                str(seqbase), '-p', 'g%d' % gen]
        if cfg.snapshots_may_fail:
            args.append('-f')
        if powercut:
            # The writer loses power after that many writes to the file:
            # often in the first requests, else anywhere in a few hundred.
            cut = rnd.randint(1, 60) if rnd.random() < 0.25 \
                else rnd.randint(1, 4000)
            args += ['-P', str(cut)]
            ctx = 'seed %d, %s, run %d (writer -s %d -P %d)' % (
                SEED, cfg, gen, wseed, cut)
        else:
            # Mostly mid-run kills; a few right after start (during open
            # or the first requests).
            delay = rnd.uniform(0.0, 0.05) if rnd.random() < 0.15 \
                else rnd.uniform(0.05, 0.7)
            ctx = 'seed %d, %s, run %d (writer -s %d, kill after %.3fs)' % (
                SEED, cfg, gen, wseed, delay)
        args.append(img)
        if os.environ.get('XBLK_KEEP_FAILED'):
            # A failed run is kept with the image it started from.
            shutil.copyfile(img, img + '.before')
        with open(log, 'wb') as out, open(errlog, 'wb') as err:
            p = subprocess.Popen(args, stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL)
            if powercut:
                try:
                    p.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    self.fail('%s: no power cut within 120s' % ctx)
            else:
                time.sleep(delay)
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        with open(errlog, 'rb') as f:
            errtext = f.read().decode(errors='replace')
        if powercut:
            self.assertEqual(p.returncode, POWERCUT_EXIT,
                             '%s: the writer exited with %d instead of '
                             'losing power:\n%s' % (ctx, p.returncode,
                                                    errtext))
        else:
            self.assertEqual(p.returncode, -signal.SIGKILL,
                             '%s: the writer exited on its own (%d) before '
                             'the kill:\n%s' % (ctx, p.returncode, errtext))
        self.assertNotIn('AddressSanitizer', errtext, ctx)
        self.assertNotIn('runtime error', errtext, ctx)

        # Replay the log into the model.  A durable point is a flush ("F")
        # or a completed revert ("A"): the disk then holds exactly `cur`.
        events = parse_log(log)
        last_f = max((i for i, e in enumerate(events) if e[0] in 'FA'),
                     default=-1)
        cur = list(state)
        flushed = list(state) if last_f < 0 else None
        later = []          # (code, first sector, end sector) after flush
        reverting = None    # candidates of a revert in progress
        started, created, deleting, deleted, failed = set(), set(), set(), \
            set(), set()
        maxseq = seqbase
        for i, e in enumerate(events):
            kind = e[0]
            if kind in 'WCZT' and len(kind) == 1:
                seq, off, ln = int(e[1]), int(e[2]), int(e[3])
                maxseq = max(maxseq, seq)
                code = seq if kind in 'WC' else \
                    (ZERO if kind == 'Z' else cfg.discard_code)
                a, b = off // SECTOR, (off + ln) // SECTOR
                cur[a:b] = [code] * (b - a)
                if i > last_f:
                    later.append((code, a, b))
            elif kind == 's':
                snapstates[e[1]] = list(cur)
                started.add(e[1])
            elif kind == 'S':
                created.add(e[1])
            elif kind == 'E':
                failed.add(e[1])
            elif kind == 'd':
                deleting.add(e[1])
            elif kind == 'D':
                deleted.add(e[1])
            elif kind == 'a':
                # Until it completes, each sector may hold the snapshot's
                # content (the switch is atomic, but runs are simplest).
                reverting = runs(snapstates[e[1]])
                if i > last_f:
                    later += reverting
            elif kind == 'A':
                cur = list(snapstates[e[1]])
                reverting = None
            elif kind == 'e':
                if i > last_f:
                    later = [x for x in later if x not in reverting]
                reverting = None
            if i == last_f:
                flushed = list(cur)
        self.assertEqual(len(cur), nsect)

        # 1. consistency
        self.assert_checks_clean(img, ctx)
        # 2. data
        data = self.read_raw(img, ctx)
        self.assertEqual(len(data), cfg.size, ctx)
        resolved = self.verify_state(data, flushed, later, base, ctx)
        # 3. snapshots
        info = json.loads(qemu_img('info', '--output=json', img,
                                   check=True).stdout)
        names = [sn['name'] for sn in info.get('snapshots', [])]
        self.assertEqual(len(names), len(set(names)), ctx)
        for name in created | (ondisk - deleting):
            if name not in deleting and name not in deleted:
                self.assertIn(name, names, '%s: snapshot %s was '
                              'acknowledged but is gone' % (ctx, name))
        for name in names:
            self.assertIn(name, snapstates, '%s: snapshot %s was never '
                          'started' % (ctx, name))
            self.assertNotIn(name, deleted, '%s: deleted snapshot %s is '
                             'still listed' % (ctx, name))
            self.assertNotIn(name, failed, '%s: failed snapshot %s is '
                             'listed' % (ctx, name))
            self.check_snapshot(img, name, snapstates[name], base, cfg,
                                '%s, snapshot %s' % (ctx, name))
        return resolved, set(names), maxseq

    def check_snapshot(self, img, name, state, base, cfg, ctx):
        copy = self.path('snap-copy.qcow2')
        shutil.copyfile(img, copy)
        p = qemu_img('snapshot', '-a', name, copy)
        if p.returncode != 0 and cfg.snapshots_may_fail and \
                'Failed to load snapshot' in p.stderr:
            # qemu-img counts a reference for each snapshot L2 table it
            # applies, which a narrow refcount may not hold (it then fails
            # with EINVAL); read the snapshot in place instead.
            out = self.path('read.raw')
            p = qemu_img('convert', '-f', 'qcow2', '-O', 'raw', '-l',
                         'snapshot.name=' + name, img, out)
            self.assertEqual(p.returncode, 0, '%s: qemu-img convert -l: %s' %
                             (ctx, p.stderr))
            with open(out, 'rb') as f:
                data = f.read()
            os.unlink(out)
            self.verify_state(data, state, [], base, ctx + ' (read)')
            os.unlink(copy)
            return
        self.assertEqual(p.returncode, 0, '%s: qemu-img snapshot -a: %s' %
                         (ctx, p.stderr))
        self.assert_checks_clean(copy, ctx + ' (applied)')
        data = self.read_raw(copy, ctx + ' (applied)', snapshot=name)
        self.verify_state(data, state, [], base, ctx + ' (applied)')
        os.unlink(copy)

    def rounds(self, make_cfg, powercut=False):
        rnd = random.Random('%d-%s' % (SEED, self.id()))
        for _ in range(IMAGES):
            cfg = make_cfg(rnd)
            for f in os.listdir(self.dir):
                os.unlink(self.path(f))
            img, base = self.create_image(cfg, rnd)
            state = [INIT] * (cfg.size // SECTOR)
            snapstates, ondisk, seqbase = {}, set(), 0
            for gen in range(GENERATIONS):
                try:
                    state, ondisk, seqbase = self.run_writer(
                        img, cfg, rnd, gen, state, snapstates, ondisk,
                        seqbase, base, powercut)
                except AssertionError:
                    self.keep_failed()
                    raise
            # Repair leaves nothing to repair.
            p = xblk_img('check', '-r', 'all', img)
            self.assertIn(p.returncode, (0,), 'seed %d, %s: check -r all: '
                          '%s%s' % (SEED, cfg, p.stdout, p.stderr))
            info = json.loads(qemu_img('check', '--output=json', img).stdout)
            self.assertEqual(info.get('corruptions', 0), 0, str(info))
            self.assertEqual(info.get('leaks', 0), 0,
                             'seed %d, %s: leaks after repair: %s' %
                             (SEED, cfg, info))

    # ---- the configurations ----

    def test_default_64k(self):
        self.rounds(lambda r: Config(r, cluster_size=65536, refcount_bits=16,
                                     compression='zlib'))

    def test_small_clusters(self):
        self.rounds(lambda r: Config(r, cluster_size=r.choice([512, 1024,
                                                               4096])))

    def test_big_clusters(self):
        self.rounds(lambda r: Config(r, cluster_size=r.choice([262144,
                                                               2 << 20])))

    def test_refcount_widths(self):
        self.rounds(lambda r: Config(r, refcount_bits=r.choice(
            [1, 2, 4, 8, 32, 64])))

    def test_zstd(self):
        self.rounds(lambda r: Config(r, compression='zstd'))

    def test_backing_raw(self):
        self.rounds(lambda r: Config(r, backing='raw'))

    def test_backing_qcow2(self):
        self.rounds(lambda r: Config(r, backing='qcow2'))

    def test_power_loss(self):
        self.rounds(lambda r: Config(r, backing=r.choice([None, None,
                                                          'qcow2'])),
                    powercut=True)

    def test_power_loss_small_clusters(self):
        self.rounds(lambda r: Config(r, cluster_size=r.choice([512, 4096]),
                                     refcount_bits=r.choice([2, 16, 64])),
                    powercut=True)

    def test_compat_v2(self):
        self.rounds(lambda r: Config(r, compat='0.10',
                                     backing=r.choice([None, 'raw'])))


if __name__ == '__main__':
    xtest.main()
