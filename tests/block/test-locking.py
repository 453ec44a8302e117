#!/usr/bin/env python3
"""test-locking: image locking interoperates with QEMU in both directions.

xblk takes QEMU's OFD byte-range locks on the images it opens (bytes
100+i while holding permission i, 200+i while not sharing it; see
docs/locking.md).  Against the real qemu-img, qemu-io and
qemu-system-x86_64 (skipped, with the reason, when they are missing):

- the lock bytes xblk holds are the very ones QEMU holds in the same role
  (read-write qcow2, read-only qcow2, -U, raw, the old top after an
  external snapshot), probed with F_OFD_GETLK from this process;
- an image xblk-system uses is refused by qemu-img info / qemu-io write /
  qemu-system with QEMU's messages, while qemu-img info -U and read-only
  sharing keep working; and the other way round for xblk-img, xblk-io and
  xblk-system against an image QEMU holds;
- file.locking=off takes and checks nothing; a bad value is refused;
- a second xblk-system on the same image is refused before it touches it
  (the image's bytes are unchanged), raw images too: the IDE device
  shares what QEMU's ide-hd shares (not write, unless share-rw=on);
- after blockdev-snapshot-sync the old top keeps only the read locks of a
  backing file (qemu-img info works without -U), the overlay stays locked;
  with a persistent dirty bitmap too (stored first, in use again when
  block-commit writes into the node).
"""
import fcntl
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
IMG = xtest.binary('xblk-img')
IO = xtest.binary('xblk-io')
LOOP = os.path.join(xtest.BUILD, 'tests', 'hw', 'xbox', 'guests', 'loop.elf')
QEMU_IMG = shutil.which('qemu-img')
QEMU_IO = shutil.which('qemu-io')
QEMU_SYS = shutil.which('qemu-system-x86_64')

# What QEMU 7.2 holds (observed with /proc/locks): qcow2 read-write takes
# consistent read, write, resize and shares neither write nor resize.
RW_QCOW2 = {100, 101, 103, 201, 203}
RO_QCOW2 = {100, 201, 203}
FORCE_SHARE = {100}
RAW_RW = {100, 101}
# A raw disk under QEMU's ide-hd: the device does not share write.
RAW_IDE_HD = {100, 101, 201}
LOCK_BYTES = [100, 101, 102, 103, 200, 201, 202, 203]


def held_bytes(path):
    """The lock bytes some other open file description holds on path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        held = set()
        for b in LOCK_BYTES:
            fl = struct.pack('hhqqi4x', fcntl.F_WRLCK, os.SEEK_SET, b, 1, 0)
            r = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, fl)
            if struct.unpack('hhqqi4x', r)[0] != fcntl.F_UNLCK:
                held.add(b)
        return held
    finally:
        os.close(fd)


def lock_records(path):
    """How many OFD lock records /proc/locks lists on path's inode (one
    per process and range, so a new holder adds to it even where the
    bytes it locks are already held)."""
    st = os.stat(path)
    dev = '%02x:%02x:%d' % (os.major(st.st_dev), os.minor(st.st_dev),
                            st.st_ino)
    with open('/proc/locks') as f:
        return sum(1 for line in f
                   if 'OFDLCK' in line and (' %s ' % dev) in line)


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def lock_msg(perm, path, shared=False):
    return 'Failed to get %s"%s" lock\nIs another process using the ' \
           'image [%s]?' % ('shared ' if shared else '', perm, path)


class LockingTest(xtest.TmpDirTestCase):
    def setUp(self):
        missing = [n for n, p in (('qemu-img', QEMU_IMG), ('qemu-io', QEMU_IO),
                                  ('qemu-system-x86_64', QEMU_SYS)) if not p]
        if missing:
            self.skipTest('%s not installed' % ', '.join(missing))
        super().setUp()
        self.img = self.path('disk.qcow2')
        xtest.run([IMG, 'create', '-q', '-f', 'qcow2', self.img, '16M'])
        # Some data, so that the hash compares real content.
        xtest.run([QEMU_IO, '-c', 'write -P 0x5a 0 64k', self.img])

    # ---- processes that hold an image ----

    def reap(self, proc):
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    def wait_held(self, path, proc, want=None):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            held = held_bytes(path)
            if (want is None and held) or held == want:
                return held
            if proc.poll() is not None:
                out, err = proc.communicate()
                self.fail('holder exited (%s): %s%s' %
                          (proc.returncode, out, err))
            time.sleep(0.05)
        self.fail('%s: lock bytes %s, expected %s' %
                  (path, sorted(held_bytes(path)), want))

    def xblk_system(self, *drive_args, wait_for=None):
        """xblk-system -machine xbox with -drive args (QMP client too)."""
        sock = self.path('qmp-%d.sock' % time.monotonic_ns())
        argv = [SYSTEM, '-machine', 'xbox', '-display', 'none', '-S',
                '-kernel', LOOP, '-qmp', 'unix:%s,server=on,wait=off' % sock]
        for d in drive_args:
            argv += ['-drive', d]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.reap, proc)
        q = qmpclient.QMPClient(path=sock).negotiate()
        return proc, q

    def xblk_system_blockdev(self):
        """xblk-system with the image as -blockdev node d0 under the
        device disk0 (libvirt's way), and a QMP client."""
        sock = self.path('bd-%d.sock' % time.monotonic_ns())
        argv = [SYSTEM, '-machine', 'xbox', '-display', 'none', '-S',
                '-kernel', LOOP, '-qmp', 'unix:%s,server=on,wait=off' % sock,
                '-blockdev', 'driver=qcow2,node-name=d0,file.driver=file,'
                'file.filename=%s' % self.img,
                '-device', 'ide-hd,drive=d0,id=disk0']
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.reap, proc)
        return proc, qmpclient.QMPClient(path=sock).negotiate()

    def qemu_io_holder(self, path, *opts):
        """qemu-io kept open in interactive mode on a pipe."""
        proc = subprocess.Popen([QEMU_IO] + list(opts) + [path],
                                stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.reap, proc)
        return proc

    def qemu_sys_holder(self, drive):
        proc = subprocess.Popen([QEMU_SYS, '-nodefaults', '-display', 'none',
                                 '-machine', 'none', '-drive', drive],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.reap, proc)
        return proc

    def refused(self, argv, *msgs):
        p = xtest.run(argv, check=False, timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        for m in msgs:
            self.assertIn(m, p.stderr)
        return p

    def works(self, argv):
        return xtest.run(argv, timeout=60)

    # ---- same bytes as QEMU ----

    def test_same_lock_bytes_as_qemu(self):
        cases = [
            ([], RW_QCOW2),
            (['-r'], RO_QCOW2),
            (['-r', '-U'], FORCE_SHARE),
        ]
        for opts, want in cases:
            for tool in (QEMU_IO, IO):
                with self.subTest(tool=os.path.basename(tool), opts=opts):
                    proc = subprocess.Popen([tool] + opts + [self.img],
                                            stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE,
                                            text=True)
                    try:
                        self.assertEqual(self.wait_held(self.img, proc, want),
                                         want)
                    finally:
                        proc.communicate('quit\n', timeout=30)
                    self.assertEqual(held_bytes(self.img), set())
        raw = self.path('disk.raw')
        with open(raw, 'wb') as f:
            f.truncate(1 << 20)
        for tool in (QEMU_IO, IO):
            proc = subprocess.Popen([tool, '-f', 'raw', raw],
                                    stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            try:
                self.assertEqual(self.wait_held(raw, proc, RAW_RW), RAW_RW)
            finally:
                proc.communicate('quit\n', timeout=30)

    # ---- xblk holds, QEMU is refused ----

    def test_xblk_system_holds(self):
        proc, q = self.xblk_system('file=%s,format=qcow2,index=0' % self.img)
        self.assertEqual(held_bytes(self.img), RW_QCOW2)
        self.refused([QEMU_IMG, 'info', self.img],
                     lock_msg('write', self.img, shared=True))
        info = self.works([QEMU_IMG, 'info', '-U', self.img]).stdout
        self.assertIn('file format: qcow2', info)
        self.refused([QEMU_IO, '-c', 'write 0 512', self.img],
                     lock_msg('write', self.img))
        self.refused([QEMU_IO, '-r', '-c', 'read 0 512', self.img],
                     lock_msg('write', self.img, shared=True))
        self.works([QEMU_IO, '-r', '-U', '-c', 'read -P 0x5a 0 512',
                    self.img])
        self.refused([QEMU_SYS, '-nodefaults', '-display', 'none',
                      '-machine', 'none', '-drive',
                      'file=%s,if=none' % self.img],
                     lock_msg('write', self.img))
        # xblk's own tools too.
        self.refused([IMG, 'info', self.img],
                     lock_msg('write', self.img, shared=True))
        self.works([IMG, 'info', '-U', self.img])
        self.works([IMG, 'check', '-U', self.img])
        self.refused([IMG, 'check', '-U', '-r', 'all', self.img],
                     'force-share=on can only be used with read-only images')
        self.assertEqual(q.cmd('quit'), {'return': {}})
        proc.communicate(timeout=60)
        self.assertEqual(held_bytes(self.img), set())
        self.works([QEMU_IMG, 'check', self.img])

    # ---- QEMU holds, xblk is refused ----

    def test_qemu_system_holds(self):
        before = digest(self.img)
        proc = self.qemu_sys_holder('file=%s,if=none,id=d0' % self.img)
        self.wait_held(self.img, proc, RW_QCOW2)
        self.refused([IMG, 'info', self.img],
                     lock_msg('write', self.img, shared=True))
        self.assertIn('file format: qcow2',
                      self.works([IMG, 'info', '-U', self.img]).stdout)
        self.refused([IO, '-c', 'write 0 512', self.img],
                     lock_msg('write', self.img))
        self.works([IO, '-r', '-U', '-c', 'read -P 0x5a 0 512', self.img])
        self.refused([IMG, 'create', '-q', '-f', 'qcow2', self.img, '1M'],
                     lock_msg('write', self.img))
        self.refused([SYSTEM, '-machine', 'xbox', '-display', 'none', '-S',
                      '-kernel', LOOP, '-drive',
                      'file=%s,format=qcow2' % self.img],
                     lock_msg('write', self.img))
        self.reap(proc)
        self.assertEqual(digest(self.img), before)

    def test_read_only_sharing(self):
        # QEMU reads, xblk reads: both fine; writers are refused.
        holder = self.qemu_io_holder(self.img, '-r')
        self.wait_held(self.img, holder, RO_QCOW2)
        self.works([IMG, 'info', self.img])
        self.works([IO, '-r', '-c', 'read -P 0x5a 0 512', self.img])
        self.refused([IO, '-c', 'write 0 512', self.img],
                     lock_msg('write', self.img))
        proc, q = self.xblk_system('file=%s,format=qcow2,readonly=on' %
                                   self.img)
        self.assertEqual(q.cmd('quit'), {'return': {}})
        proc.communicate(timeout=60)
        self.reap(holder)
        # xblk reads, QEMU reads.
        proc, q = self.xblk_system('file=%s,format=qcow2,readonly=on' %
                                   self.img)
        self.assertEqual(held_bytes(self.img), RO_QCOW2)
        self.works([QEMU_IMG, 'info', self.img])
        self.works([QEMU_IO, '-r', '-c', 'read -P 0x5a 0 512', self.img])
        self.refused([QEMU_IO, '-c', 'write 0 512', self.img],
                     lock_msg('write', self.img))
        self.assertEqual(q.cmd('quit'), {'return': {}})
        proc.communicate(timeout=60)

    # ---- locking=off ----

    def test_locking_off(self):
        proc, q = self.xblk_system('file=%s,format=qcow2,file.locking=off' %
                                   self.img)
        self.assertEqual(held_bytes(self.img), set())
        self.works([QEMU_IMG, 'info', self.img])
        self.assertEqual(q.cmd('quit'), {'return': {}})
        proc.communicate(timeout=60)
        for value in ('on', 'auto'):
            proc, q = self.xblk_system(
                'file=%s,format=qcow2,file.locking=%s' % (self.img, value))
            self.assertEqual(held_bytes(self.img), RW_QCOW2)
            self.assertEqual(q.cmd('quit'), {'return': {}})
            proc.communicate(timeout=60)
        holder = self.qemu_sys_holder('file=%s,if=none,id=d0' % self.img)
        self.wait_held(self.img, holder, RW_QCOW2)
        # Even a writer gets in with locking=off, as with QEMU.
        self.works([IO, '-o', 'file.locking=off', '-c', 'read 0 512',
                    self.img])
        self.reap(holder)
        self.refused([IO, '-o', 'file.locking=maybe', '-c', 'read 0 512',
                      self.img],
                     "Parameter 'locking' does not accept value 'maybe'")

    # ---- a second xblk-system ----

    def test_second_xblk_system_refused(self):
        drive = 'file=%s,format=qcow2,index=0' % self.img
        proc, q = self.xblk_system(drive)
        self.assertEqual(q.cmd('stop'), {'return': {}})
        before = digest(self.img)
        p = self.refused([SYSTEM, '-machine', 'xbox', '-display', 'none',
                          '-kernel', LOOP, '-drive', drive],
                         lock_msg('write', self.img))
        self.assertEqual(digest(self.img), before, p.stderr)
        self.assertEqual(held_bytes(self.img), RW_QCOW2)
        self.assertEqual(q.cmd('quit'), {'return': {}})
        proc.communicate(timeout=60)

    def test_raw_disk_device_shares_like_qemu(self):
        raw = self.path('disk.raw')
        with open(raw, 'wb') as f:
            f.write(b'\xa5' * 65536)
            f.truncate(1 << 20)
        qemu = subprocess.Popen([QEMU_SYS, '-nodefaults', '-display', 'none',
                                 '-machine', 'pc', '-accel', 'tcg', '-S',
                                 '-drive', 'file=%s,format=raw,if=ide' % raw],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.reap, qemu)
        self.assertEqual(self.wait_held(raw, qemu, RAW_IDE_HD), RAW_IDE_HD)
        self.refused([SYSTEM, '-machine', 'xbox', '-display', 'none', '-S',
                      '-kernel', LOOP, '-drive',
                      'file=%s,format=raw,index=0' % raw],
                     lock_msg('write', raw))
        self.reap(qemu)
        drive = 'file=%s,format=raw,index=0' % raw
        proc, q = self.xblk_system(drive)
        self.assertEqual(held_bytes(raw), RAW_IDE_HD)
        before = digest(raw)
        p = self.refused([SYSTEM, '-machine', 'xbox', '-display', 'none',
                          '-kernel', LOOP, '-drive', drive],
                         lock_msg('write', raw))
        self.assertEqual(digest(raw), before, p.stderr)
        self.refused([QEMU_IO, '-f', 'raw', '-c', 'write 0 512', raw],
                     lock_msg('write', raw))
        self.works([QEMU_IO, '-f', 'raw', '-r', '-c', 'read -P 0xa5 0 512',
                    raw])
        self.assertEqual(q.cmd('quit'), {'return': {}})
        proc.communicate(timeout=60)
        # share-rw=on lets a second writer in, as QEMU's property does.
        sock = self.path('qmp-share.sock')
        proc = subprocess.Popen(
            [SYSTEM, '-machine', 'xbox', '-display', 'none', '-S', '-kernel',
             LOOP, '-qmp', 'unix:%s,server=on,wait=off' % sock,
             '-blockdev', 'driver=raw,node-name=d0,file.driver=file,'
             'file.filename=%s' % raw,
             '-device', 'ide-hd,drive=d0,share-rw=on'],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.reap, proc)
        q = qmpclient.QMPClient(path=sock).negotiate()
        self.assertEqual(held_bytes(raw), RAW_RW)
        self.works([QEMU_IO, '-f', 'raw', '-c', 'write -P 0x11 4096 512',
                    raw])
        self.assertEqual(q.cmd('quit'), {'return': {}})
        proc.communicate(timeout=60)
        self.refused([SYSTEM, '-machine', 'xbox', '-display', 'none', '-S',
                      '-kernel', LOOP, '-blockdev',
                      'driver=raw,node-name=d0,file.driver=file,'
                      'file.filename=%s' % raw,
                      '-device', 'ide-hd,drive=d0,share-rw=maybe'],
                     "share-rw")

    # ---- external snapshot: the old top drops its write lock ----

    def snapshot_sync(self, q, device, ov):
        """blockdev-snapshot-sync onto ov: the old top then holds what a
        read-only qcow2 holds, the overlay what a writable one does."""
        r = q.cmd('blockdev-snapshot-sync', {'device': device,
                                             'snapshot-file': ov,
                                             'format': 'qcow2'})
        self.assertEqual(r, {'return': {}})
        self.assertEqual(held_bytes(self.img), RO_QCOW2)
        self.assertEqual(held_bytes(ov), RW_QCOW2)

    def test_snapshot_sync_old_top_read_only(self):
        ov = self.path('overlay.qcow2')
        proc, q = self.xblk_system('file=%s,format=qcow2,index=0' % self.img)
        # Exactly what QEMU holds on each after the same command.
        self.snapshot_sync(q, 'ide0-hd0', ov)
        info = self.works([QEMU_IMG, 'info', self.img]).stdout
        self.assertIn('file format: qcow2', info)
        self.refused([QEMU_IMG, 'info', ov],
                     lock_msg('write', ov, shared=True))
        self.refused([QEMU_IO, '-c', 'write 0 512', self.img],
                     lock_msg('write', self.img))
        self.assertEqual(q.cmd('quit'), {'return': {}})
        proc.communicate(timeout=60)
        self.works([QEMU_IMG, 'check', self.img])
        self.works([QEMU_IMG, 'check', ov])

    def bitmap_flags(self, path, force_share=False):
        argv = [QEMU_IMG, 'info', '--output=json'] + \
            (['-U'] if force_share else []) + [path]
        info = json.loads(self.works(argv).stdout)
        bitmaps = info.get('format-specific', {}).get('data', {}) \
            .get('bitmaps', [])
        return {b['name']: sorted(b['flags']) for b in bitmaps}

    def test_snapshot_sync_persistent_bitmap(self):
        """A top with a persistent dirty bitmap is made read-only too, as
        QEMU does: the bitmap is stored first (no longer in use on disk),
        and marked in use again when block-commit makes the node writable
        again."""
        ov = self.path('overlay.qcow2')
        proc, q = self.xblk_system_blockdev()
        r = q.cmd('block-dirty-bitmap-add', {'node': 'd0', 'name': 'b0',
                                             'persistent': True})
        self.assertEqual(r, {'return': {}})
        r = q.cmd('blockdev-snapshot-sync', {'node-name': 'd0',
                                             'snapshot-file': ov,
                                             'snapshot-node-name': 'ov',
                                             'format': 'qcow2'})
        self.assertEqual(r, {'return': {}})
        self.assertEqual(held_bytes(self.img), RO_QCOW2)
        self.assertEqual(self.bitmap_flags(self.img), {'b0': ['auto']})
        self.refused([QEMU_IO, '-c', 'write 0 512', self.img],
                     lock_msg('write', self.img))
        r = q.cmd('block-commit', {'device': 'disk0', 'job-id': 'c1'})
        self.assertEqual(r, {'return': {}})
        q.wait_event('BLOCK_JOB_READY', timeout=30)
        self.assertEqual(held_bytes(self.img), RW_QCOW2)
        self.assertEqual(self.bitmap_flags(self.img, force_share=True),
                         {'b0': ['auto', 'in-use']})
        self.assertEqual(q.cmd('block-job-complete', {'device': 'c1'}),
                         {'return': {}})
        q.wait_event('BLOCK_JOB_COMPLETED', timeout=30)
        self.assertEqual(q.cmd('quit'), {'return': {}})
        proc.communicate(timeout=60)
        self.assertEqual(self.bitmap_flags(self.img), {'b0': ['auto']})
        self.works([QEMU_IMG, 'check', self.img])

    def test_snapshot_then_active_commit(self):
        """libvirt's flow on -blockdev nodes: the read-only former top
        takes its write lock again when block-commit writes into it."""
        ov = self.path('overlay.qcow2')
        proc, q = self.xblk_system_blockdev()
        self.assertEqual(held_bytes(self.img), RW_QCOW2)
        r = q.cmd('blockdev-snapshot-sync', {'node-name': 'd0',
                                             'snapshot-file': ov,
                                             'snapshot-node-name': 'ov',
                                             'format': 'qcow2'})
        self.assertEqual(r, {'return': {}})
        self.assertEqual(held_bytes(self.img), RO_QCOW2)
        # Another process reading the backing file does not stop the
        # commit (it shares write, as qemu-img info -U does) ...
        self.works([QEMU_IMG, 'info', '-U', self.img])
        r = q.cmd('block-commit', {'device': 'disk0', 'job-id': 'c1'})
        self.assertEqual(r, {'return': {}})
        q.wait_event('BLOCK_JOB_READY', timeout=30)
        self.assertEqual(held_bytes(self.img), RW_QCOW2)
        self.refused([QEMU_IMG, 'info', self.img],
                     lock_msg('write', self.img, shared=True))
        self.assertEqual(q.cmd('block-job-complete', {'device': 'c1'}),
                         {'return': {}})
        q.wait_event('BLOCK_JOB_COMPLETED', timeout=30)
        self.assertEqual(held_bytes(self.img), RW_QCOW2)
        # The overlay's node goes when the job's last reference does,
        # just after the event.
        end = time.monotonic() + 10
        while held_bytes(ov) and time.monotonic() < end:
            time.sleep(0.05)
        self.assertEqual(held_bytes(ov), set())
        self.assertEqual(q.cmd('quit'), {'return': {}})
        proc.communicate(timeout=60)
        self.works([QEMU_IMG, 'check', self.img])

    def test_commit_refused_while_qemu_reads_old_top(self):
        """A reader that does not share write (qemu-io -r) keeps the
        former top read-only: block-commit fails with QEMU's error."""
        ov = self.path('overlay.qcow2')
        proc, q = self.xblk_system('file=%s,format=qcow2,index=0' % self.img)
        r = q.cmd('blockdev-snapshot-sync', {'device': 'ide0-hd0',
                                             'snapshot-file': ov,
                                             'format': 'qcow2'})
        self.assertEqual(r, {'return': {}})
        records = lock_records(self.img)
        holder = self.qemu_io_holder(self.img, '-r')
        deadline = time.monotonic() + 20
        while lock_records(self.img) < records + 3:
            self.assertLess(time.monotonic(), deadline)
            self.assertIsNone(holder.poll())
            time.sleep(0.05)
        r = q.cmd('block-commit', {'device': 'ide0-hd0', 'job-id': 'c1'})
        self.assertIn('error', r, r)
        self.assertIn(lock_msg('write', self.img), r['error']['desc'])
        self.reap(holder)
        self.assertEqual(held_bytes(self.img), RO_QCOW2)
        self.assertEqual(q.cmd('quit'), {'return': {}})
        proc.communicate(timeout=60)

    def test_snapshot_sync_matches_qemu(self):
        """The same command under QEMU leaves the same locks."""
        sock = self.path('qemu.sock')
        ov = self.path('qemu-ov.qcow2')
        proc = subprocess.Popen([QEMU_SYS, '-nodefaults', '-display', 'none',
                                 '-machine', 'none', '-drive',
                                 'file=%s,if=none,id=d0' % self.img, '-qmp',
                                 'unix:%s,server=on,wait=off' % sock],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.reap, proc)
        q = qmpclient.QMPClient(path=sock).negotiate()
        self.snapshot_sync(q, 'd0', ov)
        # xblk's tools see QEMU's backing file as QEMU's would.
        self.works([IMG, 'info', self.img])
        self.refused([IMG, 'info', ov], lock_msg('write', ov, shared=True))
        q.cmd('quit')
        proc.communicate(timeout=60)


if __name__ == '__main__':
    xtest.main()
