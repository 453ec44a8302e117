#!/usr/bin/env python3
"""test-job-filter: the filter nodes of backup and commit jobs, as QEMU 7.2
puts them into the graph (filter-node-name).

Against the real xblk-system (and, where qemu-system-x86_64 is installed,
the same command sequence against it, compared):

- -machine none with -blockdev nodes: blockdev-backup, drive-backup, a
  transaction's blockdev-backup, a non-active and an active block-commit,
  each with filter-node-name and a speed limit so that the job stays
  running: query-named-block-nodes lists the filter under that name with
  QEMU's "drv" (copy-before-write, commit_top, mirror_top) and "ro"; the
  overlay above a commit_top filter reads through it (backing_file_depth
  counts it, as QEMU's does); blockdev-del of the filter says it is busy;
  after block-job-cancel and after completion the graph is exactly the one
  before; without filter-node-name the filter is an implicit "#blockNNN"
  node; a name already in use, or not a valid name, is refused with
  QEMU's text and changes nothing (no job, same graph); the image lock
  bytes held while the jobs run are QEMU's.  Everything a client sees
  there equals what qemu-system-x86_64 shows, except the text with which
  blockdev-del refuses the filter.
- -machine xbox with the reference guest writing its saves (and flushing)
  the whole time: a transaction of an internal snapshot and a backup with
  filter-node-name; while the job runs query-block shows the filter as the
  disk's node; the backup equals the internal snapshot taken in the same
  transaction (qemu-img compare against qemu-img convert -l), so the
  guest's writes were copied before they went through the filter; and an
  active commit of an external snapshot's overlay, whose filter is the
  disk's node until block-job-complete pivots the disk onto the base.
  Every save the guest reported written is in the final images, and
  qemu-img check is clean.
"""
import fcntl
import json
import os
import re
import shutil
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
QEMU = shutil.which('qemu-system-x86_64')
QEMU_IMG = shutil.which('qemu-img')
QEMU_IO = shutil.which('qemu-io')
MB = 1024 * 1024

# The reference guest's save area (hw/xbox/guest/README.md, "Saves"): on
# a disk of at least 257 MiB, 64 slots 1 MiB apart from 256 MiB; the
# record is the slot's first sector, its counter at byte 8.
AREA = 256 * MB
SLOTS = 64
WRITTEN_RE = re.compile(r'save (\d+) written \(slot (\d+),')


def shape(nodes, d):
    """What a node list says about the graph, independent of generated
    names: every node as (name or '#', drv, ro, file, depth)."""
    out = []
    for n in nodes:
        name = n['node-name']
        out.append(('#' if name.startswith('#') else name, n['drv'], n['ro'],
                    n['file'].replace(d, '@'), n['backing_file_depth']))
    return sorted(out)


def held_bytes(path):
    """The image-locking bytes (QEMU's 100+i / 200+i, docs/locking.md)
    that another open file description holds on path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        held = []
        for b in (100, 101, 102, 103, 200, 201, 202, 203):
            fl = struct.pack('hhqqi4x', fcntl.F_WRLCK, os.SEEK_SET, b, 1, 0)
            r = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, fl)
            if struct.unpack('hhqqi4x', r)[0] != fcntl.F_UNLCK:
                held.append(b)
        return held
    finally:
        os.close(fd)


def locks(d, *names):
    return {n: held_bytes(os.path.join(d, n)) for n in names}


def fnv1a(data):
    h = 0x811c9dc5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xffffffff
    return h


class Monitor:
    """One QMP server (xblk-system or QEMU) and helpers around it."""

    def __init__(self, test, argv, d):
        self.d = d
        self.srv = qmpclient.Server(argv, tmpdir=d)
        test.addCleanup(self.srv.stop)
        self.c = self.srv.client().negotiate()

    def cmd(self, name, **args):
        # QMP spells arguments with dashes: job_id= is "job-id".
        args = {k.replace('_', '-'): v for k, v in args.items()}
        r = self.c.cmd(name, args)
        if 'error' in r:
            r['error']['desc'] = r['error']['desc'].replace(self.d, '@')
        return r

    def ok(self, name, **args):
        r = self.cmd(name, **args)
        assert 'return' in r, '%s %s: %s' % (name, args, r)
        return r['return']

    def nodes(self):
        return self.ok('query-named-block-nodes')

    def node(self, name):
        for n in self.nodes():
            if n['node-name'] == name:
                return n
        return None

    def shape(self):
        return shape(self.nodes(), self.d)

    def jobs(self):
        return [j['id'] for j in self.ok('query-jobs')]

    def wait_event(self, name, job, timeout=60):
        end = time.monotonic() + timeout
        while True:
            e = self.c.wait_event(name, timeout=max(0.1, end -
                                                   time.monotonic()))
            if e['data'].get('device') == job or e['data'].get('id') == job:
                return e

    def wait_gone(self, job, timeout=60):
        end = time.monotonic() + timeout
        while job in self.jobs():
            if time.monotonic() > end:
                raise AssertionError('job %s still there' % job)
            time.sleep(0.02)

    def cancel(self, job):
        self.ok('block-job-cancel', device=job, force=True)
        self.wait_gone(job)

    def finish(self, job):
        """Lifts the speed limit and waits for the job to go."""
        self.ok('block-job-set-speed', device=job, speed=0)
        self.wait_gone(job)


def make_images(d):
    def create(name, size='4M', backing=None):
        cmd = [QEMU_IMG, 'create', '-q', '-f', 'qcow2']
        if backing:
            cmd += ['-b', os.path.join(d, backing), '-F', 'qcow2']
        xtest.run(cmd + [os.path.join(d, name), size])
    create('src.qcow2')
    create('src2.qcow2')
    create('tgt.qcow2')
    create('tgt2.qcow2')
    create('base.qcow2')
    create('mid.qcow2', backing='base.qcow2')
    create('top.qcow2', backing='mid.qcow2')
    for name, io in (('src.qcow2', ['write -P 0x11 0 1M',
                                    'write -P 0x12 2M 1M']),
                     ('base.qcow2', ['write -P 1 0 3M']),
                     ('mid.qcow2', ['write -P 2 512k 1M']),
                     ('top.qcow2', ['write -P 3 1M 256k',
                                    'write -P 4 3584k 512k'])):
        cmd = [QEMU_IO, '-f', 'qcow2']
        for c in io:
            cmd += ['-c', c]
        xtest.run(cmd + [os.path.join(d, name)])


def blockdevs(d):
    def bd(name, f, backing=None):
        o = {'driver': 'qcow2', 'node-name': name,
             'file': {'driver': 'file', 'filename': os.path.join(d, f)}}
        if backing is not False:
            o['backing'] = backing
        return ['-blockdev', json.dumps(o)]
    return (bd('src', 'src.qcow2') + bd('src2', 'src2.qcow2') +
            bd('tgt', 'tgt.qcow2') + bd('tgt2', 'tgt2.qcow2') +
            bd('base', 'base.qcow2') + bd('mid', 'mid.qcow2', 'base') +
            bd('top', 'top.qcow2', 'mid'))


def backup_scenario(test, prog, d):
    """The backup steps on prog; returns what a client sees."""
    m = Monitor(test, prog + blockdevs(d), d)
    seen = {'before': m.shape()}
    bk = dict(device='src', target='tgt', sync='full', speed=1)
    # Refused names: nothing changes, no job.
    for name in ('tgt', '1x', ''):
        seen['bad ' + name] = m.cmd('blockdev-backup', job_id='b0',
                                    filter_node_name=name, **bk)
    seen['bad drive-backup'] = m.cmd(
        'drive-backup', device='src', target=os.path.join(d, 'db.qcow2'),
        format='qcow2', sync='full', job_id='b0', filter_node_name='src2')
    seen['bad transaction'] = m.cmd('transaction', actions=[
        {'type': 'blockdev-backup',
         'data': dict(bk, **{'job-id': 'b0', 'filter-node-name': 'src'})}])
    seen['after refusals'] = m.shape()
    seen['jobs after refusals'] = m.jobs()
    # Named, running (speed 1 B/s: it copies one cluster and sleeps).
    seen['start'] = m.cmd('blockdev-backup', job_id='b1',
                          filter_node_name='cbw', **bk)
    seen['during'] = m.shape()
    seen['locks during'] = locks(d, 'src.qcow2', 'tgt.qcow2')
    seen['del filter'] = m.cmd('blockdev-del', node_name='cbw')
    seen['filter after del'] = m.node('cbw') is not None
    seen['dup while running'] = m.cmd(
        'blockdev-backup', device='src2', target='tgt2', sync='full',
        job_id='b2', filter_node_name='cbw')
    m.cancel('b1')
    seen['after cancel'] = m.shape()
    # Implicit, to completion.
    seen['start implicit'] = m.cmd('blockdev-backup', job_id='b3', **bk)
    seen['during implicit'] = m.shape()
    m.finish('b3')
    seen['after completion'] = m.shape()
    # A transaction's action, named, to completion.
    seen['start txn'] = m.cmd('transaction', actions=[
        {'type': 'blockdev-backup',
         'data': {'device': 'src2', 'target': 'tgt2', 'sync': 'full',
                  'job-id': 'b4', 'speed': 1,
                  'filter-node-name': 'cbw4'}}])
    seen['during txn'] = m.shape()
    m.finish('b4')
    seen['after txn'] = m.shape()
    return seen


def commit_scenario(test, prog, d):
    """The commit steps on prog; returns what a client sees."""
    m = Monitor(test, prog + blockdevs(d), d)
    seen = {'before': m.shape()}
    passive = dict(device='top', top_node='mid', base_node='base', speed=1)
    for name in ('base', '1x'):
        seen['bad passive ' + name] = m.cmd('block-commit', job_id='c0',
                                            filter_node_name=name, **passive)
        seen['bad active ' + name] = m.cmd('block-commit', device='top',
                                           job_id='c0', speed=1,
                                           filter_node_name=name)
    seen['after refusals'] = m.shape()
    seen['jobs after refusals'] = m.jobs()
    seen['start passive'] = m.cmd('block-commit', job_id='c1',
                                  filter_node_name='ct', **passive)
    seen['during passive'] = m.shape()
    # (Not mid's: QEMU's commit job also unshares consistent read on the
    # layers it drops, byte 200, which xblk's jobs do not take.)
    seen['locks during passive'] = locks(d, 'top.qcow2', 'base.qcow2')
    seen['del passive filter'] = m.cmd('blockdev-del', node_name='ct')
    seen['filter after del'] = m.node('ct') is not None
    m.cancel('c1')
    seen['after passive cancel'] = m.shape()
    seen['start active'] = m.cmd('block-commit', device='top', job_id='c2',
                                 speed=1, filter_node_name='mt')
    seen['during active'] = m.shape()
    seen['locks during active'] = locks(d, 'top.qcow2', 'base.qcow2')
    seen['second commit'] = m.cmd('block-commit', device='top', job_id='c3')
    m.cancel('c2')
    seen['after active cancel'] = m.shape()
    # Active, implicit, to the pivot.
    seen['start active implicit'] = m.cmd('block-commit', device='top',
                                          job_id='c4', speed=1)
    seen['during active implicit'] = m.shape()
    m.ok('block-job-set-speed', device='c4', speed=0)
    m.wait_event('BLOCK_JOB_READY', 'c4')
    m.ok('block-job-complete', device='c4')
    m.wait_gone('c4')
    seen['after pivot'] = m.shape()
    return seen


class JobFilterNone(xtest.TmpDirTestCase):
    """Graph and errors on -machine none, compared with QEMU."""
    maxDiff = None

    def setUp(self):
        super().setUp()
        if not (QEMU_IMG and QEMU_IO):
            self.skipTest('qemu-img / qemu-io not installed')
        make_images(self.dir)

    def fresh(self, name):
        """A copy of the images in a folder of its own (one per run)."""
        d = self.path(name)
        os.mkdir(d)
        make_images(d)
        return d

    def assert_same_qemu(self, scenario, ours):
        if not QEMU:
            return
        d = self.fresh('qemu')
        theirs = scenario(self, [QEMU, '-machine', 'none', '-nodefaults',
                                 '-display', 'none'], d)
        # Everything a client saw, graphs included (the filter's row and
        # the depth of the layers above it are QEMU's), except the text of
        # the refused blockdev-del of the filter: QEMU checks its op
        # blockers first ("Node 'X' is busy: ..."), xblk's blockdev-del
        # first whether the monitor owns the node.
        keys = [k for k in ours if not k.startswith('del')]
        self.assertEqual({k: ours[k] for k in keys},
                         {k: theirs[k] for k in keys})

    def test_backup(self):
        seen = backup_scenario(self, [SYSTEM, '-machine', 'none'], self.dir)
        before = seen['before']
        dup = "Could not create node: Duplicate nodes with node-name='%s'"
        self.assertEqual(seen['bad tgt']['error']['desc'], dup % 'tgt')
        self.assertEqual(seen['bad 1x']['error']['desc'],
                         "Could not create node: Invalid node-name: '1x'")
        self.assertEqual(seen['bad drive-backup']['error']['desc'],
                         dup % 'src2')
        self.assertEqual(seen['bad transaction']['error']['desc'],
                         dup % 'src')
        self.assertEqual(seen['after refusals'], before)
        self.assertEqual(seen['jobs after refusals'], [])
        self.assertEqual(seen['start'], {'return': {}})
        self.assertIn(('cbw', 'copy-before-write', False, '@/src.qcow2', 1),
                      seen['during'])
        self.assertIn('error', seen['del filter'])
        self.assertTrue(seen['filter after del'])
        self.assertEqual(seen['dup while running']['error']['desc'],
                         dup % 'cbw')
        self.assertEqual(seen['after cancel'], before)
        self.assertIn(('#', 'copy-before-write', False, '@/src.qcow2', 1),
                      seen['during implicit'])
        self.assertEqual(seen['after completion'], before)
        self.assertIn(('cbw4', 'copy-before-write', False, '@/src2.qcow2',
                       1), seen['during txn'])
        self.assertEqual(seen['after txn'], before)
        for img in ('src.qcow2', 'src2.qcow2', 'tgt.qcow2', 'tgt2.qcow2'):
            xtest.run([QEMU_IMG, 'check', '-U', self.path(img)])
        p = xtest.run([QEMU_IMG, 'compare', '-U', self.path('src.qcow2'),
                       self.path('tgt.qcow2')])
        self.assertIn('Images are identical', p.stdout)
        self.assert_same_qemu(backup_scenario, seen)

    def test_commit(self):
        seen = commit_scenario(self, [SYSTEM, '-machine', 'none'], self.dir)
        before = seen['before']
        self.assertEqual(seen['bad passive base']['error']['desc'],
                         "Duplicate nodes with node-name='base'")
        self.assertEqual(seen['bad active base']['error']['desc'],
                         "Duplicate nodes with node-name='base'")
        self.assertEqual(seen['bad passive 1x']['error']['desc'],
                         "Invalid node-name: '1x'")
        self.assertEqual(seen['after refusals'], before)
        self.assertEqual(seen['jobs after refusals'], [])
        during = seen['during passive']
        # commit_top between top and mid: read-only, mid's file name, and
        # top's chain now counts it (top -> ct -> mid -> base), as QEMU.
        self.assertIn(('ct', 'commit_top', True, '@/mid.qcow2', 2), during)
        self.assertIn(('top', 'qcow2', False, '@/top.qcow2', 3), during)
        self.assertIn('error', seen['del passive filter'])
        self.assertTrue(seen['filter after del'])
        self.assertEqual(seen['after passive cancel'], before)
        self.assertIn(('mt', 'mirror_top', False, '@/top.qcow2', 3),
                      seen['during active'])
        self.assertEqual(seen['second commit']['error']['desc'],
                         'Need a root block node')
        self.assertEqual(seen['after active cancel'], before)
        self.assertIn(('#', 'mirror_top', False, '@/top.qcow2', 3),
                      seen['during active implicit'])
        after = seen['after pivot']
        self.assertFalse([r for r in after if r[1] in ('commit_top',
                                                       'mirror_top')])
        self.assertEqual(len(after), len(before))
        for img in ('base.qcow2', 'mid.qcow2', 'top.qcow2'):
            xtest.run([QEMU_IMG, 'check', '-U', self.path(img)])
        self.assert_same_qemu(commit_scenario, seen)


class JobFilterGuest(xtest.TmpDirTestCase):
    """The reference guest writes through the filters."""

    def setUp(self):
        super().setUp()
        if not (QEMU_IMG and QEMU_IO):
            self.skipTest('qemu-img / qemu-io not installed')
        self.hda = self.path('hda.qcow2')
        xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', self.hda, '1G'])
        self.con = self.path('debugcon.txt')

    def start(self, drive):
        self.m = Monitor(self, [SYSTEM, '-machine', 'xbox,seed=1',
                                '-display', 'none', '-debugcon',
                                'file:' + self.con, '-drive',
                                'file=%s,format=qcow2,if=ide,index=0' % drive],
                         self.dir)
        return self.m

    def written(self):
        """{slot: newest save counter the guest reported written}."""
        out = {}
        try:
            with open(self.con, errors='replace') as f:
                for line in f:
                    mt = WRITTEN_RE.search(line)
                    if mt:
                        out[int(mt.group(2))] = int(mt.group(1))
        except FileNotFoundError:
            pass
        return out

    def newest_written(self):
        w = self.written()
        return max(w.values()) if w else 0

    def wait_saves(self, n, timeout=120):
        """Until the guest has written n more saves."""
        goal = self.newest_written() + n
        end = time.monotonic() + timeout
        while self.newest_written() < goal:
            self.assertLess(time.monotonic(), end, 'the guest stopped saving')
            time.sleep(0.05)

    def inserted(self):
        for b in self.m.ok('query-block'):
            if b['device'] == 'ide0-hd0':
                return b['inserted']
        self.fail('no ide0-hd0')

    def quit(self):
        self.m.ok('quit')
        rc, out, err = self.m.srv.stop()
        self.assertEqual(rc, 0, err)

    def records(self, image, snapshot=None):
        """{slot: counter} of the valid save records in image."""
        raw = self.path('area.raw')
        cmd = [QEMU_IMG, 'convert', '-O', 'raw']
        if snapshot:
            cmd += ['-l', 'snapshot.name=' + snapshot]
        xtest.run(cmd + [image, raw])
        out = {}
        with open(raw, 'rb') as f:
            for s in range(SLOTS):
                f.seek(AREA + s * MB)
                sec = f.read(512)
                if len(sec) < 512 or fnv1a(sec[:508]) != \
                        struct.unpack_from('<I', sec, 508)[0]:
                    continue
                magic, version, counter, slot = struct.unpack_from('<4I',
                                                                   sec)
                if magic == 0x56415358 and version == 1 and slot == s:
                    out[s] = counter
        os.unlink(raw)
        return out

    def assert_saves_landed(self, image):
        """Every slot holds the newest save the guest reported written
        (or a newer one that was in flight at quit)."""
        recs = self.records(image)
        for slot, counter in self.written().items():
            self.assertIn(slot, recs)
            self.assertGreaterEqual(recs[slot], counter, 'slot %d' % slot)

    def test_backup_under_guest_writes(self):
        m = self.start(self.hda)
        self.wait_saves(2)
        node = self.inserted()['node-name']
        xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2',
                   self.path('tgt.qcow2'), '1G'])
        m.ok('blockdev-add', driver='qcow2', node_name='tgt',
             file={'driver': 'file', 'filename': self.path('tgt.qcow2')})
        # The point in time is one for both: the internal snapshot is the
        # reference the backup must equal.  4 MiB/s: the job runs for
        # minutes unless the limit goes, while the guest saves.
        m.ok('transaction', actions=[
            {'type': 'blockdev-snapshot-internal-sync',
             'data': {'device': 'ide0-hd0', 'name': 'pit'}},
            {'type': 'blockdev-backup',
             'data': {'device': 'ide0-hd0', 'target': 'tgt', 'sync': 'full',
                      'job-id': 'bk', 'speed': 4 * MB,
                      'filter-node-name': 'cbw'}}])
        ins = self.inserted()
        self.assertEqual((ins['node-name'], ins['drv']),
                         ('cbw', 'copy-before-write'))
        self.assertEqual(m.node('cbw')['file'], self.hda)
        self.wait_saves(3)
        self.assertIn('bk', m.jobs())
        m.finish('bk')
        self.assertIsNone(m.node('cbw'))
        self.assertEqual(self.inserted()['node-name'], node)
        self.assertFalse([n for n in m.nodes()
                          if n['drv'] == 'copy-before-write'])
        self.wait_saves(1)
        self.quit()
        xtest.run([QEMU_IMG, 'check', self.hda])
        xtest.run([QEMU_IMG, 'check', self.path('tgt.qcow2')])
        pit = self.path('pit.raw')
        xtest.run([QEMU_IMG, 'convert', '-O', 'raw', '-l',
                   'snapshot.name=pit', self.hda, pit])
        p = xtest.run([QEMU_IMG, 'compare', '-f', 'raw', '-F', 'qcow2', pit,
                       self.path('tgt.qcow2')])
        self.assertIn('Images are identical', p.stdout)
        # The guest saved on during the backup: the image moved on.
        self.assertNotEqual(self.records(self.hda),
                            self.records(self.hda, 'pit'))
        self.assert_saves_landed(self.hda)

    def test_active_commit_under_guest_writes(self):
        m = self.start(self.hda)
        self.wait_saves(2)
        base = self.inserted()['node-name']
        m.ok('blockdev-snapshot-sync', device='ide0-hd0',
             snapshot_file=self.path('overlay.qcow2'), format='qcow2')
        self.wait_saves(2)
        m.ok('block-commit', device='ide0-hd0', job_id='cm', speed=4 * MB,
             filter_node_name='mt')
        ins = self.inserted()
        self.assertEqual((ins['node-name'], ins['drv']), ('mt', 'mirror_top'))
        self.assertEqual(ins['file'], self.path('overlay.qcow2'))
        self.wait_saves(3)
        m.ok('block-job-set-speed', device='cm', speed=0)
        m.wait_event('BLOCK_JOB_READY', 'cm')
        self.wait_saves(1)
        m.ok('block-job-complete', device='cm')
        m.wait_gone('cm')
        ins = self.inserted()
        self.assertEqual((ins['node-name'], ins['file']), (base, self.hda))
        self.assertIsNone(m.node('mt'))
        self.wait_saves(2)
        self.quit()
        for img in ('hda.qcow2', 'overlay.qcow2'):
            xtest.run([QEMU_IMG, 'check', self.path(img)])
        self.assert_saves_landed(self.hda)


    def test_implicit_filter_hidden_in_query_block(self):
        """QEMU's query-block shows what is below an implicit mirror_top
        (no filter-node-name): the overlay, while the filter is listed by
        query-named-block-nodes as "#blockNNN"."""
        m = self.start(self.hda)
        m.ok('blockdev-snapshot-sync', device='ide0-hd0',
             snapshot_file=self.path('overlay.qcow2'), format='qcow2')
        top = self.inserted()
        m.ok('block-commit', device='ide0-hd0', job_id='cm', speed=1)
        self.assertTrue([n for n in m.nodes() if n['drv'] == 'mirror_top'
                         and n['node-name'].startswith('#block')])
        ins = self.inserted()
        self.assertEqual((ins['node-name'], ins['drv'], ins['file']),
                         (top['node-name'], 'qcow2',
                          self.path('overlay.qcow2')))
        m.ok('block-job-cancel', device='cm', force=True)
        m.wait_gone('cm')
        self.assertEqual(self.inserted()['node-name'], top['node-name'])
        self.quit()


if __name__ == '__main__':
    xtest.main()
