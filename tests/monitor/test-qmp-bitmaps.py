#!/usr/bin/env python3
"""Dirty bitmaps over QMP against xblk-system, cross-checked with QEMU.

block-dirty-bitmap-add/-remove/-clear/-enable/-disable/-merge and their
errors (texts compared with qemu-system-x86_64 on the same requests when
it is installed), the bitmaps in query-block and query-named-block-nodes,
transactions of bitmap actions, and persistence: a persistent bitmap is
listed by qemu-img info after quit, accepted by qemu-img check, loaded
again after a restart, and its bits agree with what QEMU reads.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
QEMU = shutil.which('qemu-system-x86_64')
QEMU_IMG = shutil.which('qemu-img')
QEMU_IO = shutil.which('qemu-io')


def blockdev(node, path, fmt='qcow2'):
    return ['-blockdev', json.dumps({'driver': fmt, 'node-name': node,
                                     'file': {'driver': 'file',
                                              'filename': path}})]


class Bitmaps(xtest.TmpDirTestCase):

    def img(self, name, size='64M', fmt='qcow2', opts=None):
        p = self.path(name)
        cmd = [xtest.binary('xblk-img'), 'create', '-q', '-f', fmt]
        if opts:
            cmd += ['-o', opts]
        xtest.run(cmd + [p, size])
        return p

    def start(self, prog, extra):
        argv = [prog, '-machine', 'none']
        if prog == QEMU:
            argv += ['-nodefaults', '-display', 'none']
        srv = qmpclient.Server(argv, extra=extra, tmpdir=self.dir)
        self.addCleanup(srv.stop)
        for _ in range(100):
            try:
                return srv, srv.client().negotiate()
            except OSError:
                time.sleep(0.05)
        self.fail('%s did not start: %s' % (prog, srv.stop()))

    def quit(self, srv, c):
        c.cmd('quit')
        srv.proc.wait(timeout=30)   # bitmaps are stored on the way out
        rc, _, err = srv.stop()
        self.assertEqual(rc, 0, err)

    def bitmaps(self, c, node):
        for n in c.cmd('query-named-block-nodes', {'flat': True})['return']:
            if n['node-name'] == node:
                return {b.get('name'): b for b in n.get('dirty-bitmaps', [])}
        self.fail('no node ' + node)

    def ok(self, c, cmd, **args):
        r = c.cmd(cmd, args)
        self.assertEqual(r, {'return': {}}, (cmd, args))

    def err(self, c, cmd, **args):
        r = c.cmd(cmd, args)
        self.assertIn('error', r, (cmd, args))
        self.assertEqual(r['error']['class'], 'GenericError')
        return r['error']['desc']

    def info_bitmaps(self, path):
        # -U: the image may be open in the running xblk-system, which
        # holds QEMU's image locks on it.
        out = xtest.run([QEMU_IMG or xtest.binary('xblk-img'), 'info', '-U',
                         '--output=json', path]).stdout
        spec = json.loads(out)['format-specific']['data']
        return spec.get('bitmaps', [])

    def qemu_check(self, path):
        if QEMU_IMG:
            xtest.run([QEMU_IMG, 'check', path])

    # ---- commands and errors ----

    def common_disks(self):
        return (blockdev('a', self.img('a.qcow2')) +
                blockdev('b', self.img('b.qcow2')) +
                blockdev('c', self.img('c.qcow2', '32M')) +
                blockdev('v2', self.img('v2.qcow2', opts='compat=0.10')) +
                blockdev('r', self.img('r.raw', fmt='raw'), 'raw'))

    SCRIPT = [
        ('block-dirty-bitmap-add', {'node': 'nope', 'name': 'x'}),
        ('block-dirty-bitmap-add', {'node': 'a', 'name': ''}),
        ('block-dirty-bitmap-add', {'node': 'a', 'name': 'x',
                                    'granularity': 100}),
        ('block-dirty-bitmap-add', {'node': 'a', 'name': 'x',
                                    'granularity': 1536}),
        ('block-dirty-bitmap-add', {'node': 'a', 'name': 'n' * 1024}),
        ('block-dirty-bitmap-add', {'node': 'a', 'name': 'x'}),
        ('block-dirty-bitmap-add', {'node': 'a', 'name': 'x'}),
        ('block-dirty-bitmap-add', {'node': 'r', 'name': 'p',
                                    'persistent': True}),
        ('block-dirty-bitmap-add', {'node': 'r', 'name': 'rr'}),
        ('block-dirty-bitmap-add', {'node': 'v2', 'name': 'p',
                                    'persistent': True}),
        ('block-dirty-bitmap-add', {'node': 'a', 'name': 'p',
                                    'persistent': True, 'disabled': True}),
        ('block-dirty-bitmap-add', {'node': 'b', 'name': 'y',
                                    'granularity': 512}),
        ('block-dirty-bitmap-add', {'node': 'c', 'name': 'z'}),
        ('block-dirty-bitmap-remove', {'node': 'nope', 'name': 'x'}),
        ('block-dirty-bitmap-remove', {'node': 'a', 'name': 'nope'}),
        ('block-dirty-bitmap-clear', {'node': 'a', 'name': 'nope'}),
        ('block-dirty-bitmap-enable', {'node': 'a', 'name': 'p'}),
        ('block-dirty-bitmap-disable', {'node': 'a', 'name': 'p'}),
        ('block-dirty-bitmap-merge', {'node': 'a', 'target': 'x',
                                      'bitmaps': ['nope']}),
        ('block-dirty-bitmap-merge', {'node': 'a', 'target': 'x',
                                      'bitmaps': [{'node': 'b',
                                                   'name': 'nope'}]}),
        ('block-dirty-bitmap-merge', {'node': 'a', 'target': 'x',
                                      'bitmaps': [{'node': 'nope',
                                                   'name': 'y'}]}),
        ('block-dirty-bitmap-merge', {'node': 'a', 'target': 'x',
                                      'bitmaps': [{'node': 'c',
                                                   'name': 'z'}]}),
        ('block-dirty-bitmap-merge', {'node': 'a', 'target': 'x',
                                      'bitmaps': ['p', {'node': 'b',
                                                        'name': 'y'}]}),
        ('block-dirty-bitmap-merge', {'node': 'a', 'target': 'nope',
                                      'bitmaps': ['p']}),
        ('block-dirty-bitmap-clear', {'node': 'a', 'name': 'x'}),
        ('block-dirty-bitmap-remove', {'node': 'a', 'name': 'x'}),
        ('block-dirty-bitmap-remove', {'node': 'a', 'name': 'x'}),
        ('transaction', {'actions': [
            {'type': 'block-dirty-bitmap-add',
             'data': {'node': 'b', 'name': 't1'}},
            {'type': 'block-dirty-bitmap-disable',
             'data': {'node': 'b', 'name': 'y'}},
            {'type': 'abort', 'data': {}}]}),
        ('transaction', {'actions': [
            {'type': 'block-dirty-bitmap-add',
             'data': {'node': 'b', 'name': 't1', 'disabled': True}},
            {'type': 'block-dirty-bitmap-merge',
             'data': {'node': 'b', 'target': 't1', 'bitmaps': ['y']}},
            {'type': 'block-dirty-bitmap-disable',
             'data': {'node': 'b', 'name': 'y'}}]}),
    ]

    def run_script(self, prog):
        srv, c = self.start(prog, self.common_disks())
        replies = [c.cmd(cmd, args) for cmd, args in self.SCRIPT]
        nodes = {n: self.bitmaps(c, n) for n in ('a', 'b', 'c', 'r', 'v2')}
        self.quit(srv, c)
        return replies, nodes

    def test_commands_and_errors(self):
        replies, nodes = self.run_script(SYSTEM)
        for (cmd, args), r in zip(self.SCRIPT, replies):
            self.assertIn('return' if 'error' not in r else 'error', r)
        self.assertEqual(set(nodes['a']), {'p'})
        self.assertEqual(nodes['a']['p'], {
            'name': 'p', 'count': 0, 'granularity': 65536,
            'recording': False, 'busy': False, 'persistent': True})
        self.assertEqual(set(nodes['b']), {'y', 't1'})
        self.assertFalse(nodes['b']['y']['recording'])
        self.assertEqual(nodes['b']['y']['granularity'], 512)
        self.assertEqual(nodes['r']['rr']['granularity'], 65536)
        self.assertEqual(nodes['v2'], {})
        desc = {i: r['error']['desc'] for i, r in enumerate(replies)
                if 'error' in r}
        self.assertEqual(desc[0], "Cannot find device='nope' nor "
                         "node-name='nope'")
        self.assertEqual(desc[7], "Can't store persistent bitmaps to r: "
                         "Operation not supported")
        self.assertEqual(desc[6], 'Bitmap already exists: x')
        if QEMU:
            # The same requests against QEMU: identical replies.
            for p in ('a.qcow2', 'b.qcow2', 'c.qcow2', 'v2.qcow2', 'r.raw'):
                os.unlink(self.path(p))
            qreplies, qnodes = self.run_script(QEMU)
            for (cmd, args), mine, theirs in zip(self.SCRIPT, replies,
                                                 qreplies):
                self.assertEqual(mine, theirs, (cmd, args))
            for n in nodes:
                self.assertEqual(nodes[n], qnodes[n], n)

    def test_busy_inconsistent_and_query_block(self):
        # A bitmap left in_use by a "crash" (a copy taken while open
        # read-write) is inconsistent: listed so, only removable.
        p = self.img('d.qcow2')
        srv, c = self.start(SYSTEM, blockdev('d', p))
        self.ok(c, 'block-dirty-bitmap-add', node='d', name='keep',
                persistent=True)
        self.quit(srv, c)
        srv, c = self.start(SYSTEM, blockdev('d', p))
        self.assertIn('keep', self.bitmaps(c, 'd'))     # open: in_use set
        crash = self.path('crash.qcow2')
        shutil.copy(p, crash)
        self.quit(srv, c)
        self.assertEqual(self.info_bitmaps(crash),
                         [{'flags': ['in-use', 'auto'], 'name': 'keep',
                           'granularity': 65536}])
        srv, c = self.start(SYSTEM, blockdev('d', crash))
        b = self.bitmaps(c, 'd')['keep']
        self.assertTrue(b['inconsistent'])
        self.assertFalse(b['recording'])
        self.assertEqual(self.err(c, 'block-dirty-bitmap-enable', node='d',
                                  name='keep'),
                         "Bitmap 'keep' is inconsistent and cannot be used")
        self.assertIn('inconsistent', self.err(
            c, 'block-dirty-bitmap-merge', node='d', target='keep',
            bitmaps=[]))
        self.ok(c, 'block-dirty-bitmap-remove', node='d', name='keep')
        self.assertEqual(self.info_bitmaps(crash), [])
        self.quit(srv, c)
        self.qemu_check(crash)

    def test_query_block_with_device(self):
        p = self.img('q.qcow2')
        srv, c = self.start(SYSTEM, blockdev('q', p))
        self.ok(c, 'block-dirty-bitmap-add', node='q', name='b1',
                granularity=4096)
        nodes = c.cmd('query-named-block-nodes')['return']
        q = [n for n in nodes if n['node-name'] == 'q'][0]
        self.assertEqual(q['dirty-bitmaps'], [{
            'name': 'b1', 'count': 0, 'granularity': 4096,
            'recording': True, 'busy': False, 'persistent': False}])
        files = [n for n in nodes if n['node-name'] != 'q']
        self.assertTrue(all('dirty-bitmaps' not in n for n in files))
        self.quit(srv, c)

    # ---- persistence ----

    def test_persistent_across_restart(self):
        p = self.img('p.qcow2')
        srv, c = self.start(SYSTEM, blockdev('p', p))
        self.ok(c, 'block-dirty-bitmap-add', node='p', name='on',
                persistent=True)
        self.ok(c, 'block-dirty-bitmap-add', node='p', name='off',
                persistent=True, disabled=True, granularity=4096)
        self.ok(c, 'block-dirty-bitmap-add', node='p', name='gone')
        self.quit(srv, c)
        self.assertEqual(sorted(self.info_bitmaps(p), key=lambda b: b['name']),
                         [{'flags': [], 'name': 'off', 'granularity': 4096},
                          {'flags': ['auto'], 'name': 'on',
                           'granularity': 65536}])
        self.qemu_check(p)
        # Offline writes: xblk-io loads, marks and stores the bitmaps.
        xtest.run([xtest.binary('xblk-io'), '-c', 'write 1M 4k', '-c',
                   'write 63M 1M', p])
        self.qemu_check(p)
        srv, c = self.start(SYSTEM, blockdev('p', p))
        bm = self.bitmaps(c, 'p')
        self.assertEqual(set(bm), {'on', 'off'})
        self.assertEqual(bm['on']['count'], 65536 + 1024 * 1024)
        self.assertEqual(bm['off']['count'], 0)
        self.assertTrue(bm['on']['persistent'])
        self.quit(srv, c)
        if QEMU:
            srv, c = self.start(QEMU, blockdev('p', p))
            qbm = self.bitmaps(c, 'p')
            self.quit(srv, c)
            self.assertEqual(qbm, bm)

    @staticmethod
    def sorted_bitmaps(d):
        return {k: v for k, v in sorted(d.items())}

    def test_qemu_bitmaps_load(self):
        if not (QEMU_IMG and QEMU_IO):
            self.skipTest('qemu-img/qemu-io not installed')
        p = self.img('qm.qcow2')
        xtest.run([QEMU_IMG, 'bitmap', '--add', '--enable', '-g', '65536', p,
                   'b0'])
        xtest.run([QEMU_IMG, 'bitmap', '--add', '-g', '512', p, 'b1'])
        xtest.run([QEMU_IO, '-c', 'write 0 64k', '-c', 'write 10M 1M',
                   '-c', 'write 63M 512', p])
        xtest.run([QEMU_IMG, 'bitmap', '--enable', p, 'b1'])
        xtest.run([QEMU_IO, '-c', 'write 1M 8k', '-c', 'write 3000 1', p])
        mine = self.run_info('qm.qcow2')
        self.assertEqual(mine['b0']['count'], 65536 * 19 + 0)
        # b1 records from its creation (--add enables it): 64k, 1M, one
        # 512-byte chunk and 8k at 512-byte granularity.
        self.assertEqual(mine['b1']['count'], 65536 + 1024 * 1024 + 512 +
                         8192)
        if QEMU:
            srv, c = self.start(QEMU, blockdev('qm', p))
            theirs = self.bitmaps(c, 'qm')
            self.quit(srv, c)
            self.assertEqual(mine, theirs)
        # xblk-img info prints the directory as qemu-img does.
        for fmt in (['--output=json'], []):
            a = xtest.run([QEMU_IMG, 'info'] + fmt + [p]).stdout
            b = xtest.run([xtest.binary('xblk-img'), 'info'] + fmt +
                          [p]).stdout
            if fmt:
                a, b = json.loads(a), json.loads(b)
                a = a['format-specific']['data']['bitmaps']
                b = b['format-specific']['data']['bitmaps']
            else:
                a = a[a.index('bitmaps:'):a.index('refcount bits')]
                b = b[b.index('bitmaps:'):b.index('refcount bits')]
            self.assertEqual(a, b)

    def run_info(self, name):
        srv, c = self.start(SYSTEM, blockdev('qm', self.path(name)))
        bm = self.bitmaps(c, 'qm')
        self.quit(srv, c)
        self.qemu_check(self.path(name))
        return bm


if __name__ == '__main__':
    xtest.main()
