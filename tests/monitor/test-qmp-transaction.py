#!/usr/bin/env python3
"""QMP `transaction` and the standalone commands of its actions, over the
real socket against xblk-system (issue 4, "Atomic transactions").

Actions covered: blockdev-snapshot-sync (modes absolute-paths and
existing, format, snapshot-node-name), blockdev-snapshot (an overlay
added with "backing": null), blockdev-snapshot-internal-sync, abort and
the six block-dirty-bitmap-* actions, plus the standalone
blockdev-snapshot-delete-internal-sync.

 * success: each action alone, as a standalone command, and mixed in
   multi-action transactions over several disks; the new graph
   (query-named-block-nodes: backing_file, backing-image, depth), the
   bitmaps (dirty-bitmaps, and qemu-img info after quit for persistent
   ones), internal snapshot lists, x-query-transaction-stats;
 * failure: every action rolled back when a later one fails (abort, a
   missing node, an injected fault through a blkdebug node: EIO on flush,
   ENOSPC on write), overlay creation failing, duplicate names, missing
   and read-only nodes.  After each: query-named-block-nodes identical,
   no new file in the folder (hidden ones included); after quit: guest
   content hashes, snapshot lists and bitmaps as before, qemu-img check
   clean;
 * the error class and text of a table of failing requests equal
   QEMU 7.2's (qemu-system-x86_64 -machine none), when it is installed.

The disks hang under a raw front end node (raw -> qcow2 -> file), which
stands in for the guest's device: it is the parent that keeps a new
overlay in the graph, in QEMU as in xblk.  Internal snapshots need a root
node (as in QEMU), so they go to i0 and i1, which have no front end.
-machine none has no guest, so image contents are written with qemu-io
before the emulator starts.

Not asserted (xblk differs from QEMU 7.2 there): the old top's "ro"
after an external snapshot (QEMU reopens it read-only, xblk keeps it
writable), and the front end's "file" (QEMU rebuilds a json: filename
naming the new chain, xblk keeps the name it had when opened).
"""
import hashlib
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
QEMU = shutil.which('qemu-system-x86_64')
QEMU_IMG = shutil.which('qemu-img')
QEMU_IO = shutil.which('qemu-io')
DISKS = ('d0', 'd1')


def act(kind, **data):
    return {'type': kind, 'data': data}


def ssync(node, path, **kw):
    kw.setdefault('snapshot-node-name', 'ov-' + node)
    return act('blockdev-snapshot-sync', **dict({'node-name': node,
                                                 'snapshot-file': path}, **kw))


def isnap(dev, name):
    return act('blockdev-snapshot-internal-sync', device=dev, name=name)


ABORT = act('abort')


class Transaction(xtest.TmpDirTestCase):
    maxDiff = None

    # ---- images and sessions ----

    def setUp(self):
        super().setUp()
        if not (QEMU_IMG and QEMU_IO):
            self.skipTest('qemu-img / qemu-io not installed')
        self.img = self.path('img')
        os.makedirs(self.img)

    def ip(self, name):
        return os.path.join(self.img, name)

    def make_disks(self):
        """d0, d1: data, d0 also a persistent bitmap 'pb' with dirty bits;
        i0, i1: data, i0 also an internal snapshot 'pre'; dbg (over
        blkdebug), ro (opened read-only), r (raw format)."""
        for n, pat in (('d0', 0x11), ('d1', 0x22), ('dbg', 0x33),
                       ('ro', 0x44), ('i0', 0x66), ('i1', 0x77)):
            p = self.ip(n + '.qcow2')
            xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', p, '16M'])
            xtest.run([QEMU_IO, '-c', 'write -P %d 0 1M' % pat,
                       '-c', 'write -P %d 5M 64k' % (pat + 1), p])
        d0 = self.ip('d0.qcow2')
        xtest.run([QEMU_IMG, 'snapshot', '-c', 'pre', self.ip('i0.qcow2')])
        xtest.run([QEMU_IMG, 'bitmap', '--add', d0, 'pb'])
        xtest.run([QEMU_IO, '-c', 'write -P 0x55 2M 128k', d0])
        xtest.run([QEMU_IMG, 'create', '-q', '-f', 'raw', self.ip('r.raw'),
                   '16M'])

    def graph_args(self, dbg_rules=None):
        nodes = []
        for n in DISKS:
            nodes += [{'driver': 'file', 'node-name': n + '-file',
                       'filename': self.ip(n + '.qcow2')},
                      {'driver': 'qcow2', 'node-name': n, 'file': n + '-file'},
                      {'driver': 'raw', 'node-name': 'fe-' + n, 'file': n}]
        # Internal snapshots need a root node (as in QEMU): i0 and i1
        # have no front end.
        for n in ('i0', 'i1'):
            nodes += [{'driver': 'qcow2', 'node-name': n,
                       'file': {'driver': 'file', 'node-name': n + '-file',
                                'filename': self.ip(n + '.qcow2')}}]
        nodes += [{'driver': 'qcow2', 'node-name': 'ro', 'read-only': True,
                   'file': {'driver': 'file',
                            'filename': self.ip('ro.qcow2')}},
                  {'driver': 'raw', 'node-name': 'r',
                   'file': {'driver': 'file', 'filename': self.ip('r.raw')}}]
        if dbg_rules is not None:
            nodes += [{'driver': 'qcow2', 'node-name': 'dbg',
                       'file': {'driver': 'blkdebug', 'node-name': 'dbg-dbg',
                                'inject': dbg_rules,
                                'image': {'driver': 'file',
                                          'filename': self.ip('dbg.qcow2')}}}]
        args = []
        for n in nodes:
            args += ['-blockdev', json.dumps(n)]
        return args

    def start(self, prog=SYSTEM, dbg_rules=None, tag=None):
        tag = tag or os.path.basename(self.img)
        argv = [prog, '-machine', 'none']
        if prog == QEMU:
            argv += ['-nodefaults', '-display', 'none']
        run = self.path('run-' + tag)    # the socket lives outside img/
        os.makedirs(run, exist_ok=True)
        srv = qmpclient.Server(argv, extra=self.graph_args(dbg_rules),
                               tmpdir=run)
        self.addCleanup(srv.stop)
        try:
            c = srv.client().negotiate()
        except OSError:
            self.fail('%s did not start: %s' % (prog, srv.stop()))
        return srv, c

    def quit(self, srv, c):
        self.assertEqual(c.cmd('quit'), {'return': {}})
        srv.proc.wait(timeout=30)
        rc, _, err = srv.stop()
        self.assertEqual(rc, 0, err)
        self.assertNotIn('rror', err)

    # ---- observations ----

    def nodes(self, c, flat=True):
        r = c.cmd('query-named-block-nodes', {'flat': flat})
        return r['return']

    def node(self, c, name, flat=False):
        for n in self.nodes(c, flat):
            if n['node-name'] == name:
                return n
        self.fail('no node %s' % name)

    def graph(self, c):
        """Both listings, less what a rollback may legitimately change:
        space allocated in a file (an internal snapshot written out in
        finish and deleted again by undo leaves its clusters free, not
        returned: "actual-size", and the length of the file node)."""
        def strip(img, drv):
            img.pop('actual-size', None)
            if drv in ('file', 'blkdebug'):
                img.pop('virtual-size', None)
            if 'backing-image' in img:
                strip(img['backing-image'], None)
            return img
        out = []
        for flat in (True, False):
            nodes = self.nodes(c, flat)
            for n in nodes:
                strip(n['image'], n['drv'])
            out.append(nodes)
        return tuple(out)

    def listing(self):
        return sorted(os.listdir(self.img))

    def stats(self, c):
        return c.cmd('x-query-transaction-stats')['return']

    def info(self, path):
        out = xtest.run([QEMU_IMG, 'info', '--output=json', '-U',
                         path]).stdout
        return json.loads(out)

    def image_facts(self, path):
        """What a transaction must leave alone, as qemu-img sees it."""
        i = self.info(path)
        spec = i.get('format-specific', {}).get('data', {})
        return {'snapshots': sorted((s['id'], s['name'])
                                    for s in i.get('snapshots', [])),
                'bitmaps': spec.get('bitmaps', []),
                'backing': i.get('backing-filename'),
                'size': i['virtual-size']}

    def content_hash(self, path):
        out = self.path('content.raw')
        xtest.run([QEMU_IMG, 'convert', '-U', '-O', 'raw', path, out])
        with open(out, 'rb') as f:
            h = hashlib.sha256(f.read()).hexdigest()
        os.unlink(out)
        return h

    def check(self, path):
        if path.endswith('.qcow2'):
            xtest.run([QEMU_IMG, 'check', '-q', path])

    def baseline(self):
        """Facts and content of every image in the folder now."""
        base = {}
        for n in self.listing():
            p = self.ip(n)
            fmt = 'qcow2' if n.endswith('.qcow2') else 'raw'
            base[n] = (self.image_facts(p) if fmt == 'qcow2' else None,
                       self.content_hash(p))
        return base

    def assert_images(self, base, changed=()):
        """After quit: the folder holds exactly base's images (plus any
        named in changed), each checks clean; untouched ones have the
        same facts and content as before."""
        self.assertEqual(self.listing(), sorted(set(base) | set(changed)))
        for n, (facts, h) in base.items():
            p = self.ip(n)
            self.check(p)
            if n in changed:
                continue
            if facts is not None:
                self.assertEqual(self.image_facts(p), facts, n)
            self.assertEqual(self.content_hash(p), h, n)

    def assert_stats(self, c, kinds):
        st = self.stats(c)
        self.assertTrue(st['committed'], st)
        self.assertEqual([a['type'] for a in st['actions']], kinds)
        # Guest I/O held for the commit only: well under 50 ms.
        self.assertGreater(st['drained-ns'], 0)
        self.assertLess(st['drained-ns'], 50 * 1000 * 1000)
        for a in st['actions']:
            self.assertGreaterEqual(a['commit-ns'], 0)
            self.assertLessEqual(a['commit-ns'], st['drained-ns'])
        self.assertGreaterEqual(st['total-ns'],
                                st['prepare-ns'] + st['drained-ns'])
        return st

    def bitmaps(self, c, node):
        n = self.node(c, node, flat=True)
        return {b['name']: b for b in n.get('dirty-bitmaps', [])}

    def txn(self, c, actions):
        return c.cmd('transaction', {'actions': actions})

    def assert_fails(self, c, cmd, args, desc=None, cls='GenericError'):
        """cmd must fail and change nothing: graph, folder, bitmaps."""
        g, files = self.graph(c), self.listing()
        r = c.cmd(cmd, args)
        self.assertIn('error', r, (cmd, args))
        self.assertEqual(r['error']['class'], cls, r)
        if desc is not None:
            if isinstance(desc, re.Pattern):
                self.assertRegex(r['error']['desc'], desc)
            else:
                self.assertEqual(r['error']['desc'], desc)
        self.assertEqual(self.graph(c), g, (cmd, args))
        self.assertEqual(self.listing(), files, (cmd, args))
        return r['error']['desc']

    # ---- success paths ----

    def test_external_snapshots(self):
        """blockdev-snapshot-sync (absolute-paths, existing, format) and
        blockdev-snapshot, standalone and as transactions."""
        self.make_disks()
        base = self.baseline()
        srv, c = self.start()
        o0 = self.ip('o0.qcow2')
        # standalone, mode absolute-paths, default format
        self.assertEqual(c.cmd('blockdev-snapshot-sync', {
            'node-name': 'd0', 'snapshot-file': o0,
            'snapshot-node-name': 'ov0'}), {'return': {}})
        self.assert_stats(c, ['blockdev-snapshot-sync'])
        ov = self.node(c, 'ov0')
        self.assertEqual(ov['backing_file'], self.ip('d0.qcow2'))
        self.assertEqual(ov['backing_file_depth'], 1)
        self.assertEqual(ov['image']['backing-filename'], self.ip('d0.qcow2'))
        self.assertEqual(ov['image']['backing-image']['filename'],
                         self.ip('d0.qcow2'))
        self.assertEqual(ov['file'], o0)
        self.assertFalse(ov['ro'])
        # QEMU 7.2 also reopens the old top read-only ("ro": true); xblk
        # keeps it writable for now (issue 4's known gap): not asserted.

        # transaction, mode existing with an explicit format: d1's overlay
        # made beforehand by qemu-img
        o1 = self.ip('o1.qcow2')
        xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', '-b',
                   self.ip('d1.qcow2'), '-F', 'qcow2', o1])
        r = self.txn(c, [ssync('d1', o1, mode='existing', format='qcow2',
                               **{'snapshot-node-name': 'ov1'})])
        self.assertEqual(r, {'return': {}})
        self.assert_stats(c, ['blockdev-snapshot-sync'])
        ov = self.node(c, 'ov1')
        self.assertEqual(ov['backing_file'], self.ip('d1.qcow2'))
        self.assertEqual(ov['image']['backing-image']['filename'],
                         self.ip('d1.qcow2'))

        # blockdev-snapshot: overlay added with "backing": null, on top of
        # ov0 (a chain of three), standalone
        o2 = self.ip('o2.qcow2')
        xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', o2, '16M'])
        self.assertEqual(c.cmd('blockdev-add', {
            'driver': 'qcow2', 'node-name': 'ov2', 'backing': None,
            'file': {'driver': 'file', 'filename': o2}}), {'return': {}})
        self.assertEqual(c.cmd('blockdev-snapshot', {
            'node': 'ov0', 'overlay': 'ov2'}), {'return': {}})
        self.assert_stats(c, ['blockdev-snapshot'])
        ov = self.node(c, 'ov2')
        self.assertEqual(ov['backing_file'], o0)
        self.assertEqual(ov['backing_file_depth'], 2)
        self.assertNotIn('backing-filename', ov['image'])  # header: none
        chain = ov['image']['backing-image']
        self.assertEqual(chain['filename'], o0)
        self.assertEqual(chain['backing-image']['filename'],
                         self.ip('d0.qcow2'))

        # blockdev-snapshot inside a transaction, with a second disk's
        # snapshot-sync and a format given explicitly
        o3 = self.ip('o3.qcow2')
        o4 = self.ip('o4.qcow2')
        xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', o3, '16M'])
        self.assertEqual(c.cmd('blockdev-add', {
            'driver': 'qcow2', 'node-name': 'ov3', 'backing': None,
            'file': {'driver': 'file', 'filename': o3}}), {'return': {}})
        r = self.txn(c, [act('blockdev-snapshot', node='ov2', overlay='ov3'),
                         ssync('ov1', o4, format='qcow2',
                               mode='absolute-paths',
                               **{'snapshot-node-name': 'ov4'})])
        self.assertEqual(r, {'return': {}})
        self.assert_stats(c, ['blockdev-snapshot', 'blockdev-snapshot-sync'])
        self.assertEqual(self.node(c, 'ov3')['backing_file_depth'], 3)
        self.assertEqual(self.node(c, 'ov4')['backing_file'], o1)
        self.quit(srv, c)

        new = ('o0.qcow2', 'o1.qcow2', 'o2.qcow2', 'o3.qcow2', 'o4.qcow2')
        self.assert_images(base, new)
        self.assertEqual(self.info(o0)['backing-filename'],
                         self.ip('d0.qcow2'))
        self.assertEqual(self.info(o4)['backing-filename'], o1)
        # blockdev-snapshot does not write the backing name into the header
        self.assertNotIn('backing-filename', self.info(o3))
        # guest content seen through each new top is the old disk's
        self.assertEqual(self.content_hash(o0), base['d0.qcow2'][1])
        self.assertEqual(self.content_hash(o4), base['d1.qcow2'][1])

    def test_internal_snapshots(self):
        """blockdev-snapshot-internal-sync standalone and over two disks,
        blockdev-snapshot-delete-internal-sync standalone."""
        self.make_disks()
        base = self.baseline()
        srv, c = self.start()
        self.assertEqual(c.cmd('blockdev-snapshot-internal-sync', {
            'device': 'i0', 'name': 's1'}), {'return': {}})
        self.assert_stats(c, ['blockdev-snapshot-internal-sync'])
        r = self.txn(c, [isnap('i0', 's2'), isnap('i1', 's2')])
        self.assertEqual(r, {'return': {}})
        self.assert_stats(c, ['blockdev-snapshot-internal-sync'] * 2)
        names = [s['name'] for s in
                 self.node(c, 'i0')['image']['snapshots']]
        self.assertEqual(names, ['pre', 's1', 's2'])
        r = c.cmd('blockdev-snapshot-delete-internal-sync',
                  {'device': 'i0', 'name': 's1'})['return']
        self.assertEqual(r['name'], 's1')
        self.assertEqual(r['id'], '2')
        self.assertEqual(r['vm-state-size'], 0)
        r = c.cmd('blockdev-snapshot-delete-internal-sync',
                  {'device': 'i0', 'id': '1'})['return']
        self.assertEqual(r['name'], 'pre')
        names = [s['name'] for s in
                 self.node(c, 'i0')['image']['snapshots']]
        self.assertEqual(names, ['s2'])
        self.quit(srv, c)
        self.assert_images(base, ('i0.qcow2', 'i1.qcow2'))
        self.assertEqual(self.image_facts(self.ip('i0.qcow2'))['snapshots'],
                         [('3', 's2')])
        self.assertEqual(self.image_facts(self.ip('i1.qcow2'))['snapshots'],
                         [('1', 's2')])
        for n in ('i0', 'i1'):
            self.assertEqual(self.content_hash(self.ip(n + '.qcow2')),
                             base[n + '.qcow2'][1])

    def test_bitmap_actions(self):
        """The six bitmap actions, standalone and in one transaction over
        two disks; persistent ones in qemu-img info after quit."""
        self.make_disks()
        base = self.baseline()
        srv, c = self.start()
        pb = self.bitmaps(c, 'd0')['pb']
        self.assertTrue(pb['persistent'])
        self.assertGreater(pb['count'], 0)
        dirty = pb['count']
        ok = {'return': {}}
        # standalone
        self.assertEqual(c.cmd('block-dirty-bitmap-add', {
            'node': 'd0', 'name': 'a', 'granularity': 65536}), ok)
        self.assert_stats(c, ['block-dirty-bitmap-add'])
        self.assertEqual(c.cmd('block-dirty-bitmap-disable',
                               {'node': 'd0', 'name': 'a'}), ok)
        self.assertFalse(self.bitmaps(c, 'd0')['a']['recording'])
        self.assertEqual(c.cmd('block-dirty-bitmap-enable',
                               {'node': 'd0', 'name': 'a'}), ok)
        self.assertTrue(self.bitmaps(c, 'd0')['a']['recording'])
        self.assertEqual(c.cmd('block-dirty-bitmap-merge', {
            'node': 'd0', 'target': 'a', 'bitmaps': ['pb']}), ok)
        self.assertEqual(self.bitmaps(c, 'd0')['a']['count'], dirty)
        self.assertEqual(c.cmd('block-dirty-bitmap-clear',
                               {'node': 'd0', 'name': 'a'}), ok)
        self.assertEqual(self.bitmaps(c, 'd0')['a']['count'], 0)
        self.assertEqual(c.cmd('block-dirty-bitmap-remove',
                               {'node': 'd0', 'name': 'a'}), ok)
        self.assertNotIn('a', self.bitmaps(c, 'd0'))
        self.assert_stats(c, ['block-dirty-bitmap-remove'])
        # all six in one transaction over two disks
        r = self.txn(c, [
            act('block-dirty-bitmap-add', node='d1', name='p1',
                persistent=True, granularity=131072),
            act('block-dirty-bitmap-add', node='d1', name='t1',
                disabled=True),
            act('block-dirty-bitmap-merge', node='d1', target='p1',
                bitmaps=[{'node': 'd0', 'name': 'pb'}]),
            act('block-dirty-bitmap-enable', node='d1', name='t1'),
            act('block-dirty-bitmap-disable', node='d0', name='pb'),
            act('block-dirty-bitmap-add', node='d0', name='gone'),
            act('block-dirty-bitmap-remove', node='d0', name='gone'),
            act('block-dirty-bitmap-clear', node='d0', name='pb')])
        self.assertEqual(r, ok)
        self.assert_stats(c, ['block-dirty-bitmap-add'] * 2 + [
            'block-dirty-bitmap-merge', 'block-dirty-bitmap-enable',
            'block-dirty-bitmap-disable', 'block-dirty-bitmap-add',
            'block-dirty-bitmap-remove', 'block-dirty-bitmap-clear'])
        b1 = self.bitmaps(c, 'd1')
        self.assertEqual(set(b1), {'p1', 't1'})
        self.assertTrue(b1['p1']['persistent'])
        self.assertEqual(b1['p1']['granularity'], 131072)
        self.assertGreater(b1['p1']['count'], 0)
        self.assertTrue(b1['t1']['recording'])
        b0 = self.bitmaps(c, 'd0')
        self.assertEqual(set(b0), {'pb'})
        self.assertEqual(b0['pb']['count'], 0)
        self.assertFalse(b0['pb']['recording'])
        self.quit(srv, c)
        self.assert_images(base, ('d0.qcow2', 'd1.qcow2'))
        bm = {b['name']: b for b in
              self.image_facts(self.ip('d1.qcow2'))['bitmaps']}
        self.assertEqual(set(bm), {'p1'})       # t1 was not persistent
        self.assertEqual(bm['p1']['granularity'], 131072)
        self.assertIn('auto', bm['p1']['flags'])
        bm = {b['name']: b for b in
              self.image_facts(self.ip('d0.qcow2'))['bitmaps']}
        self.assertEqual(set(bm), {'pb'})
        self.assertNotIn('auto', bm['pb']['flags'])   # disabled now

    def test_mixed_multi_disk(self):
        """Every kind in one transaction over three disks."""
        self.make_disks()
        base = self.baseline()
        srv, c = self.start(dbg_rules=[])
        o0 = self.ip('o0.qcow2')
        o2 = self.ip('o2.qcow2')
        xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', o2, '16M'])
        self.assertEqual(c.cmd('blockdev-add', {
            'driver': 'qcow2', 'node-name': 'ov-dbg', 'backing': None,
            'file': {'driver': 'file', 'filename': o2}}), {'return': {}})
        actions = [ssync('d0', o0),
                   isnap('i1', 'm1'),
                   act('block-dirty-bitmap-add', node='d1', name='m1',
                       persistent=True),
                   act('block-dirty-bitmap-clear', node='d0', name='pb'),
                   act('blockdev-snapshot', node='dbg', overlay='ov-dbg'),
                   isnap('i0', 'm1')]
        self.assertEqual(self.txn(c, actions), {'return': {}})
        self.assert_stats(c, [a['type'] for a in actions])
        self.assertEqual(self.node(c, 'ov-d0')['backing_file'],
                         self.ip('d0.qcow2'))
        self.assertEqual(self.node(c, 'ov-dbg')['backing_file'],
                         self.ip('dbg.qcow2'))
        self.assertEqual(self.bitmaps(c, 'd0')['pb']['count'], 0)
        self.assertIn('m1', self.bitmaps(c, 'd1'))
        self.quit(srv, c)
        self.assert_images(base, ('d0.qcow2', 'd1.qcow2', 'i0.qcow2',
                                  'i1.qcow2', 'o0.qcow2', 'o2.qcow2'))
        self.assertEqual(self.image_facts(self.ip('i0.qcow2'))['snapshots'],
                         [('1', 'pre'), ('2', 'm1')])
        self.assertEqual(self.image_facts(self.ip('i1.qcow2'))['snapshots'],
                         [('1', 'm1')])
        self.assertEqual([b['name'] for b in self.image_facts(
            self.ip('d1.qcow2'))['bitmaps']], ['m1'])
        self.assertEqual(self.content_hash(o0), base['d0.qcow2'][1])
        for n in ('d0', 'd1', 'i0', 'i1'):
            self.assertEqual(self.content_hash(self.ip(n + '.qcow2')),
                             base[n + '.qcow2'][1])

    # ---- failures and rollback ----

    def every_action(self, tag):
        """One succeeding action of every kind (disks d0 and d1)."""
        return [ssync('d0', self.ip('new-%s.qcow2' % tag)),
                act('blockdev-snapshot', node='d1', overlay='spare'),
                isnap('i0', 'n-' + tag),
                act('block-dirty-bitmap-add', node='d0', name='n-' + tag,
                    persistent=True),
                act('block-dirty-bitmap-add', node='d1', name='t1'),
                act('block-dirty-bitmap-remove', node='d1', name='gone'),
                act('block-dirty-bitmap-clear', node='d0', name='pb'),
                act('block-dirty-bitmap-disable', node='d0', name='pb'),
                act('block-dirty-bitmap-enable', node='d1', name='off'),
                act('block-dirty-bitmap-merge', node='d1', target='off',
                    bitmaps=[{'node': 'd0', 'name': 'pb'}])]

    def prepare_failure_session(self, rules):
        self.make_disks()
        xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2',
                   self.ip('spare.qcow2'), '16M'])
        base = self.baseline()
        srv, c = self.start(dbg_rules=rules)
        ok = {'return': {}}
        self.assertEqual(c.cmd('blockdev-add', {
            'driver': 'qcow2', 'node-name': 'spare', 'backing': None,
            'file': {'driver': 'file',
                     'filename': self.ip('spare.qcow2')}}), ok)
        for name, dis in (('gone', False), ('off', True)):
            self.assertEqual(c.cmd('block-dirty-bitmap-add', {
                'node': 'd1', 'name': name, 'disabled': dis}), ok)
        return base, srv, c

    def assert_rolled_back(self, c, actions, desc, committed=False):
        """The transaction fails with desc and changes nothing; each
        action alone (but the failing one) would have succeeded."""
        self.assert_fails(c, 'transaction', {'actions': actions}, desc)
        st = self.stats(c)
        self.assertEqual(st['committed'], committed, st)
        if not committed:
            self.assertEqual(st['drained-ns'], 0)

    def test_rollback_abort_and_missing_node(self):
        base, srv, c = self.prepare_failure_session(None)
        bm = (self.bitmaps(c, 'd0'), self.bitmaps(c, 'd1'))
        every = self.every_action('a')
        # each action, then abort; then all of them, then abort
        for a in every:
            self.assert_rolled_back(c, [a, ABORT],
                                    'Transaction aborted using Abort action')
        self.assert_rolled_back(c, every + [ABORT],
                                'Transaction aborted using Abort action')
        # abort first: nothing else even prepared
        self.assert_rolled_back(c, [ABORT] + every,
                                'Transaction aborted using Abort action')
        # a missing node last, for each kind of action that names one
        missing = [
            (ssync('nope', self.ip('x.qcow2')),
             "Cannot find device='' nor node-name='nope'"),
            (act('blockdev-snapshot', node='nope', overlay='spare'),
             "Cannot find device='nope' nor node-name='nope'"),
            (act('blockdev-snapshot', node='d0', overlay='nope'),
             "Cannot find device='nope' nor node-name='nope'"),
            (isnap('nope', 'x'),
             "Cannot find device='nope' nor node-name='nope'"),
            (act('block-dirty-bitmap-add', node='nope', name='x'),
             "Cannot find device='nope' nor node-name='nope'"),
            (act('block-dirty-bitmap-clear', node='nope', name='x'),
             "Node 'nope' not found"),
            (act('block-dirty-bitmap-merge', node='d1', target='off',
                 bitmaps=[{'node': 'nope', 'name': 'pb'}]),
             "Node 'nope' not found"),
        ]
        for a, desc in missing:
            self.assert_rolled_back(c, every + [a], desc)
        self.assertEqual((self.bitmaps(c, 'd0'), self.bitmaps(c, 'd1')), bm)
        self.quit(srv, c)
        self.assert_images(base)

    def test_rollback_duplicates_and_read_only(self):
        base, srv, c = self.prepare_failure_session(None)
        every = self.every_action('b')
        cases = [
            # the same internal snapshot name twice on one node
            ([isnap('i1', 'twice'), isnap('i1', 'twice')],
             "Snapshot with name 'twice' already exists on device 'i1'"),
            (every + [isnap('i0', 'pre')],
             "Snapshot with name 'pre' already exists on device 'i0'"),
            (every + [isnap('d0', 'x')], 'Need a root block node'),
            # one snapshot-node-name for two overlays
            (every + [ssync('d1', self.ip('y.qcow2'),
                            **{'snapshot-node-name': 'ov-d0'})],
             'New overlay node-name already in use'),
            (every + [ssync('d1', self.ip('y.qcow2'),
                            **{'snapshot-node-name': 'd0'})],
             'New overlay node-name already in use'),
            # a bitmap name taken, or added twice in one transaction
            (every + [act('block-dirty-bitmap-add', node='d0', name='pb')],
             "Bitmap already exists: pb"),
            (every + [act('block-dirty-bitmap-add', node='d1', name='t1')],
             "Bitmap already exists: t1"),
            # bitmaps that do not exist
            (every + [act('block-dirty-bitmap-clear', node='d0',
                          name='nope')],
             "Dirty bitmap 'nope' not found"),
            # read-only nodes
            (every + [isnap('ro', 'x')], "Device 'ro' is read only"),
            # no internal snapshots on raw
            (every + [isnap('r', 'x')],
             "Block format 'raw' used by device 'r' does not support "
             "internal snapshots"),
            # overlay creation fails: no such folder
            (every + [ssync('d1', self.ip('nodir/y.qcow2'))],
             re.compile(r"^Could not create .*nodir/y\.qcow2.*No such file")),
            # mode existing, file missing
            (every + [ssync('d1', self.ip('y.qcow2'), mode='existing')],
             re.compile(r"^Could not open .*y\.qcow2.*No such file")),
            # an invalid node name, caught before any file is made
            (every + [ssync('d1', self.ip('y.qcow2'),
                            **{'snapshot-node-name': '#bad'})],
             "Invalid node-name: '#bad'"),
            # a format that cannot have a backing file
            (every + [ssync('d1', self.ip('y.raw'), format='raw')],
             re.compile(r"[Bb]acking file")),
            # the overlay file named twice
            (every + [ssync('d1', self.ip('new-b.qcow2'))], None),
            # a node already used as backing cannot get an overlay
            (every + [act('blockdev-snapshot', node='d1', overlay='d0')],
             None),
        ]
        for actions, desc in cases:
            self.assert_rolled_back(c, actions, desc)
        self.quit(srv, c)
        self.assert_images(base)

    def test_injected_faults(self):
        """An injected fault on the blkdebug disk, last in a transaction of
        every other kind of action: EIO on the flush of the old top,
        ENOSPC while an internal snapshot allocates."""
        for i, (rules, actions, desc) in enumerate((
                ([{'op': 'flush', 'errno': 5}],
                 [ssync('dbg', 'SELF/f.qcow2')], 'An IO error has occurred'),
                ([{'op': 'flush', 'errno': 5}],
                 [act('blockdev-snapshot', node='dbg', overlay='spare')],
                 'An IO error has occurred'),
                ([{'op': 'write', 'errno': 28}],
                 [isnap('dbg', 'full')], re.compile('No space left')),
                ([{'op': 'flush', 'errno': 5}],
                 [isnap('dbg', 'eio')], None))):
            self.img = self.path('img%d' % i)
            os.makedirs(self.img)
            base, srv, c = self.prepare_failure_session(rules)
            for a in actions:
                if a['data'].get('snapshot-file', '').startswith('SELF'):
                    a['data']['snapshot-file'] = self.ip('f.qcow2')
            every = [a for a in self.every_action('c')
                     if a['type'] != 'blockdev-snapshot']
            what = json.dumps((rules, actions))
            for acts in (every + actions, actions + every):
                self.assert_fails(c, 'transaction', {'actions': acts}, desc)
                st = self.stats(c)
                self.assertEqual(len(st['actions']), len(acts), what)
            self.quit(srv, c)
            self.assert_images(base)

    # ---- the same failing requests against QEMU ----

    def failing_requests(self):
        o = self.ip('q.qcow2')
        return [
            ('transaction', {'actions': [ABORT]}),
            ('transaction', {'actions': [ssync('d0', o), ABORT]}),
            ('transaction', {'actions': []}),
            ('transaction', {'actions': [isnap('i0', 'pre')]}),
            ('transaction', {'actions': [isnap('nope', 'x')]}),
            ('transaction', {'actions': [isnap('r', 'x')]}),
            ('transaction', {'actions': [isnap('ro', 'x')]}),
            ('transaction', {'actions': [isnap('i0', '')]}),
            ('transaction', {'actions': [isnap('i1', 'x'),
                                         isnap('i1', 'x')]}),
            ('transaction', {'actions': [isnap('d1', 'x')]}),
            ('blockdev-snapshot-internal-sync', {'device': 'i0',
                                                 'name': 'pre'}),
            ('blockdev-snapshot-internal-sync', {'device': 'nope',
                                                 'name': 'x'}),
            ('blockdev-snapshot-internal-sync', {'device': 'ro',
                                                 'name': 'x'}),
            ('blockdev-snapshot-delete-internal-sync', {'device': 'i0',
                                                        'name': 'nope'}),
            ('blockdev-snapshot-delete-internal-sync', {'device': 'i0',
                                                        'id': '9'}),
            ('blockdev-snapshot-delete-internal-sync', {'device': 'i0'}),
            ('blockdev-snapshot-delete-internal-sync', {'device': 'd0',
                                                        'name': 'x'}),
            ('blockdev-snapshot-delete-internal-sync', {'device': 'nope',
                                                        'name': 'x'}),
            ('blockdev-snapshot-delete-internal-sync', {'device': 'r',
                                                        'name': 'x'}),
            ('transaction', {'actions': [ssync('nope', o)]}),
            ('blockdev-snapshot-sync', {'device': 'nope',
                                        'snapshot-file': o}),
            ('blockdev-snapshot-sync', {'node-name': 'd0',
                                        'snapshot-file': o}),
            ('transaction', {'actions': [ssync(
                'd0', o, **{'snapshot-node-name': 'd1'})]}),
            ('transaction', {'actions': [ssync(
                'd0', self.ip('nodir/q.qcow2'))]}),
            ('transaction', {'actions': [ssync('d0', o, mode='existing')]}),
            ('transaction', {'actions': [ssync('d0', o,
                                               format='nonsense')]}),
            # Same error as QEMU, but QEMU 7.2 has created the overlay file
            # by then and leaves it behind; xblk checks the name before
            # creating anything (like every row here: no file left).
            ('transaction', {'actions': [ssync(
                'd0', o, **{'snapshot-node-name': '#bad'})]}),
            ('transaction', {'actions': [ssync(
                'd0', o, **{'snapshot-node-name': ''})]}),
            ('transaction', {'actions': [ssync('d0', o, format='raw')]}),
            # The same new file for two overlays.  QEMU's image locking
            # refuses the second creation; xblk has no image locks, and its
            # creation (under a temporary name, then renamed without
            # replacing) refuses a file that appeared since the check.
            # Either way nothing is created and nothing changes.
            ('transaction', {'actions': [ssync('d0', o),
                                         ssync('d1', o)]},
             "Could not create '$DIR/q.qcow2': File exists"),
            ('transaction', {'actions': [ssync('d0', o),
                                         ssync('d1', self.ip('q1.qcow2'),
                                               **{'snapshot-node-name':
                                                  'ov-d0'})]}),
            ('transaction', {'actions': [act('blockdev-snapshot', node='d0',
                                             overlay='nope')]}),
            ('blockdev-snapshot', {'node': 'nope', 'overlay': 'd1'}),
            ('blockdev-snapshot', {'node': 'i0', 'overlay': 'i0'}),
            ('transaction', {'actions': [act('block-dirty-bitmap-add',
                                             node='d0', name='pb')]}),
            ('transaction', {'actions': [act('block-dirty-bitmap-add',
                                             node='nope', name='x')]}),
            ('transaction', {'actions': [act('block-dirty-bitmap-add',
                                             node='r', name='x',
                                             persistent=True)]}),
            ('transaction', {'actions': [act('block-dirty-bitmap-add',
                                             node='ro', name='x',
                                             persistent=True)]}),
            ('transaction', {'actions': [act('block-dirty-bitmap-add',
                                             node='d1', name='x'),
                                         act('block-dirty-bitmap-add',
                                             node='d1', name='x')]}),
            ('transaction', {'actions': [act('block-dirty-bitmap-remove',
                                             node='d0', name='nope')]}),
            ('transaction', {'actions': [act('block-dirty-bitmap-clear',
                                             node='d0', name='nope')]}),
            ('block-dirty-bitmap-enable', {'node': 'd0', 'name': 'nope'}),
            ('block-dirty-bitmap-disable', {'node': 'nope', 'name': 'pb'}),
            ('transaction', {'actions': [act('block-dirty-bitmap-merge',
                                             node='d0', target='nope',
                                             bitmaps=['pb'])]}),
            ('transaction', {'actions': [act('block-dirty-bitmap-merge',
                                             node='d0', target='pb',
                                             bitmaps=['nope'])]}),
            ('transaction', {'actions': [
                act('block-dirty-bitmap-add', node='d1', name='y'),
                act('block-dirty-bitmap-remove', node='d1', name='y')]}),
            ('transaction', {'actions': [
                act('block-dirty-bitmap-add', node='d1', name='y'),
                ssync('d0', o), isnap('i1', 'y'), ABORT]}),
            # An overlay that is already another node's child (d1 under
            # fe-d1): QEMU 7.2 only refuses one attached to a device and
            # goes ahead (last in this table because it succeeds there);
            # xblk refuses, as the overlay would end up under two front
            # ends at once.
            ('transaction', {'actions': [act('blockdev-snapshot', node='d0',
                                             overlay='d1')]},
             'The overlay is already in use'),
        ]

    def run_failing(self, prog, tag):
        srv, c = self.start(prog, tag=tag)
        replies = []
        for req in self.failing_requests():
            cmd, args = req[:2]
            files = self.listing()
            r = c.cmd(cmd, args)
            left = sorted(set(self.listing()) - set(files))
            replies.append((r, left))
            # QEMU keeps an overlay it created when the transaction rolls
            # back; xblk removes it (DESIGN rule 3).  Clear QEMU's so that
            # the next request meets the same folder.
            for n in left:
                p = self.ip(n)
                shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
        c.cmd('quit')
        srv.proc.wait(timeout=30)
        return replies

    def test_same_errors_as_qemu(self):
        if not QEMU:
            self.skipTest('qemu-system-x86_64 not installed')
        self.make_disks()
        norm = re.compile(r'#block\d+')

        def clean(r):
            return json.loads(norm.sub('#blockN', json.dumps(r).replace(
                self.img, '$DIR')))
        q = self.run_failing(QEMU, 'q')
        x = self.run_failing(SYSTEM, 'x')
        for req, (qr, qleft), (xr, xleft) in zip(
                self.failing_requests(), q, x):
            what = '%s %s' % (req[0], json.dumps(req[1]))
            self.assertEqual(xleft, [], 'xblk left a file: ' + what)
            if len(req) > 2:        # a deliberate difference, see above
                self.assertEqual(clean(xr), {'error': {
                    'class': 'GenericError', 'desc': req[2]}}, what)
                continue
            self.assertEqual(clean(xr), clean(qr), what)


if __name__ == '__main__':
    xtest.main()
