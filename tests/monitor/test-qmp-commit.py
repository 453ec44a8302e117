#!/usr/bin/env python3
"""block-commit over QMP against the real xblk-system: a 3-image chain
made with qemu-img and filled with qemu-io; a commit of the middle layer
(the job ends by itself, the top's header then names the base); an
active commit that becomes ready and pivots on block-job-complete; a soft
cancel of a ready active commit; pause, resume, speed and manual
finalize/dismiss; and the argument errors, which must equal QEMU 7.2's
when qemu-system-x86_64 is installed.  Images are checked afterwards with
qemu-img check, info --backing-chain and compare.  Guest writes during
an active commit are in tests/block/test-commit.c (-machine none has no
guest).
"""
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
QEMU = shutil.which('qemu-system-x86_64')
QEMU_IMG = shutil.which('qemu-img')
QEMU_IO = shutil.which('qemu-io')
MB = 1024 * 1024

# Each layer writes its own pattern and zeroes part of the layers below.
LAYER_IO = {
    'base.qcow2': ['write -P 1 0 3M'],
    'mid.qcow2': ['write -P 2 512k 1M', 'write -z 2M 128k'],
    'top.qcow2': ['write -P 3 1M 256k', 'write -z 64k 64k',
                  'write -P 4 3584k 512k'],
}

# block-commit arguments on the named chain base <- mid <- top, plus a
# lone image; '@' stands for the test folder.
ERROR_CASES = [
    {'device': 'nope'},
    {'device': 'mid', 'job-id': 'j'},
    {'device': 'top', 'job-id': 'j', 'top-node': 'mid', 'top': 'x'},
    {'device': 'top', 'job-id': 'j', 'top-node': 'zz'},
    {'device': 'top', 'job-id': 'j', 'top-node': 'lone'},
    {'device': 'top', 'job-id': 'j', 'top': '@/none.qcow2'},
    {'device': 'top', 'job-id': 'j', 'base-node': 'base', 'base': 'x'},
    {'device': 'top', 'job-id': 'j', 'base-node': 'zz'},
    {'device': 'top', 'job-id': 'j', 'top-node': 'mid', 'base-node': 'top'},
    {'device': 'top', 'job-id': 'j', 'base': '@/none.qcow2'},
    {'device': 'top', 'job-id': 'j', 'top-node': 'mid', 'base-node': 'mid'},
    {'device': 'lone', 'job-id': 'j'},
    {'device': 'top', 'job-id': 'j', 'backing-file': 'b.qcow2'},
    {'device': 'top', 'job-id': '1j'},
    {'device': 'top', 'job-id': 'j', 'speed': -1},
    {'device': 'top', 'job-id': 'j', 'on-error': 'never'},
]


def make_chain(d):
    prev = None
    for name in ('base.qcow2', 'mid.qcow2', 'top.qcow2'):
        cmd = [QEMU_IMG, 'create', '-q', '-f', 'qcow2']
        if prev:
            cmd += ['-b', os.path.join(d, prev), '-F', 'qcow2']
        xtest.run(cmd + [os.path.join(d, name), '4M'])
        io = [QEMU_IO, '-f', 'qcow2']
        for c in LAYER_IO[name]:
            io += ['-c', c]
        xtest.run(io + [os.path.join(d, name)])
        prev = name
    xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2',
               os.path.join(d, 'lone.qcow2'), '4M'])


def flatten(d, name, out):
    """The guest view of name (with its backing files) as a raw file."""
    xtest.run([QEMU_IMG, 'convert', '-O', 'raw', os.path.join(d, name),
               os.path.join(d, out)])


def named_blockdevs(d):
    def bd(name, f, backing):
        return ['-blockdev', json.dumps({
            'driver': 'qcow2', 'node-name': name, 'backing': backing,
            'file': {'driver': 'file', 'filename': os.path.join(d, f)}})]
    return (bd('base', 'base.qcow2', None) + bd('mid', 'mid.qcow2', 'base')
            + bd('top', 'top.qcow2', 'mid') + bd('lone', 'lone.qcow2', None))


def error_replies(prog, d):
    srv = qmpclient.Server(prog + named_blockdevs(d), tmpdir=d)
    try:
        c = srv.client().negotiate()
        out = []
        for args in ERROR_CASES:
            args = {k: v.replace('@', d) if isinstance(v, str) else v
                    for k, v in args.items()}
            r = c.cmd('block-commit', args)
            if 'error' in r:
                r['error']['desc'] = r['error']['desc'].replace(d, '@')
            out.append(r)
        return out
    finally:
        srv.stop()


class QmpCommit(xtest.TmpDirTestCase):
    maxDiff = None

    def setUp(self):
        super().setUp()
        if not (QEMU_IMG and QEMU_IO):
            self.skipTest('qemu-img / qemu-io not installed')
        make_chain(self.dir)
        flatten(self.dir, 'top.qcow2', 'top.raw')
        flatten(self.dir, 'mid.qcow2', 'mid.raw')

    def start(self):
        """The top opened as -blockdev node disk0; mid and base come from
        the headers, read-only, as a -drive chain would."""
        self.srv = qmpclient.Server(
            [SYSTEM, '-machine', 'none', '-blockdev',
             'driver=qcow2,node-name=disk0,file.driver=file,'
             'file.filename=%s' % self.path('top.qcow2')], tmpdir=self.dir)
        self.addCleanup(self.srv.stop)
        self.c = self.srv.client().negotiate()

    def nodes(self):
        return {n['node-name']: n for n in
                self.c.cmd('query-named-block-nodes')['return']}

    def node_by_file(self, name):
        for n, info in self.nodes().items():
            if info['file'] == self.path(name):
                return n
        self.fail('no node for %s' % name)

    def job_events(self, job):
        out = []
        for e in self.c.events:
            d = e.get('data', {})
            if d.get('id') == job or d.get('device') == job:
                out.append(d['status'] if e['event'] == 'JOB_STATUS_CHANGE'
                           else e['event'])
        return out

    def wait_gone(self, job, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not any(j['id'] == job for j in
                       self.c.cmd('query-jobs')['return']):
                return
            time.sleep(0.02)
        self.fail('job %s still there' % job)

    def check_images(self, *names):
        for n in names:
            xtest.run([QEMU_IMG, 'check', self.path(n)])

    def chain_of(self, name):
        p = xtest.run([QEMU_IMG, 'info', '--backing-chain', '--output=json',
                       self.path(name)])
        return json.loads(p.stdout)

    def assert_same(self, img, raw):
        p = xtest.run([QEMU_IMG, 'compare', self.path(img), self.path(raw)])
        self.assertIn('Images are identical', p.stdout)

    def test_commit_middle_layer(self):
        self.start()
        base = self.node_by_file('base.qcow2')
        r = self.c.cmd('block-commit', {
            'device': 'disk0', 'job-id': 'c1',
            'top': self.path('mid.qcow2'), 'base': self.path('base.qcow2')})
        self.assertEqual(r, {'return': {}})
        done = self.c.wait_event('BLOCK_JOB_COMPLETED')
        self.assertEqual(done['data'], {'type': 'commit', 'device': 'c1',
                                        'len': 4 * MB, 'offset': 4 * MB,
                                        'speed': 0})
        self.c.events.append(done)
        self.wait_gone('c1')
        self.assertEqual(self.job_events('c1'),
                         ['created', 'running', 'waiting', 'pending',
                          'BLOCK_JOB_COMPLETED', 'concluded', 'null'])
        nodes = self.nodes()
        self.assertEqual(nodes['disk0']['backing_file'],
                         self.path('base.qcow2'))
        # The base keeps its node name, now writable, at the top's back.
        self.assertEqual(nodes[base]['file'], self.path('base.qcow2'))
        self.assertFalse(nodes[base]['ro'])
        self.srv.stop()
        self.check_images('base.qcow2', 'mid.qcow2', 'top.qcow2')
        chain = self.chain_of('top.qcow2')
        self.assertEqual([i['filename'] for i in chain],
                         [self.path('top.qcow2'), self.path('base.qcow2')])
        self.assert_same('top.qcow2', 'top.raw')
        self.assert_same('base.qcow2', 'mid.raw')

    def test_active_commit_pivot(self):
        self.start()
        r = self.c.cmd('block-commit', {'device': 'disk0', 'job-id': 'a1'})
        self.assertEqual(r, {'return': {}})
        ready = self.c.wait_event('BLOCK_JOB_READY')
        self.assertEqual(ready['data']['type'], 'commit')
        self.assertEqual(ready['data']['len'], ready['data']['offset'])
        self.c.events.append(ready)
        j = self.c.cmd('query-block-jobs')['return'][0]
        self.assertEqual((j['device'], j['type'], j['ready'], j['status']),
                         ('a1', 'commit', True, 'ready'))
        j = self.c.cmd('query-jobs')['return'][0]
        self.assertEqual(j['current-progress'], j['total-progress'])
        self.assertGreater(j['total-progress'], 0)
        self.assertEqual(self.c.cmd('block-job-complete', {'device': 'a1'}),
                         {'return': {}})
        done = self.c.wait_event('BLOCK_JOB_COMPLETED')
        self.assertNotIn('error', done['data'])
        self.c.events.append(done)
        self.wait_gone('a1')
        self.assertEqual(self.job_events('a1'),
                         ['created', 'running', 'ready', 'BLOCK_JOB_READY',
                          'waiting', 'pending', 'BLOCK_JOB_COMPLETED',
                          'concluded', 'null'])
        self.srv.stop()
        self.check_images('base.qcow2', 'mid.qcow2', 'top.qcow2')
        self.assertEqual(len(self.chain_of('base.qcow2')), 1)
        self.assert_same('base.qcow2', 'top.raw')

    def test_active_commit_soft_cancel(self):
        self.start()
        mid = self.node_by_file('mid.qcow2')
        r = self.c.cmd('block-commit', {'device': 'disk0', 'job-id': 'a2',
                                        'base-node': mid})
        self.assertEqual(r, {'return': {}})
        self.c.wait_event('BLOCK_JOB_READY')
        self.assertEqual(self.c.cmd('block-job-cancel', {'device': 'a2'}),
                         {'return': {}})
        self.c.wait_event('BLOCK_JOB_COMPLETED')
        self.wait_gone('a2')
        self.assertEqual(self.nodes()['disk0']['backing_file'],
                         self.path('mid.qcow2'))
        self.srv.stop()
        self.check_images('base.qcow2', 'mid.qcow2', 'top.qcow2')
        self.assertEqual(len(self.chain_of('top.qcow2')), 3)
        self.assert_same('top.qcow2', 'top.raw')

    def test_pause_speed_manual_finalize(self):
        self.start()
        r = self.c.cmd('block-commit', {
            'device': 'disk0', 'job-id': 'c2', 'top': self.path('mid.qcow2'),
            'speed': 256 * 1024, 'auto-finalize': False,
            'auto-dismiss': False, 'filter-node-name': 'cf'})
        self.assertEqual(r, {'return': {}})
        r = self.c.cmd('block-commit', {'device': 'disk0', 'job-id': 'c3'})
        self.assertEqual(r['error']['desc'], "Node 'disk0' is busy: block "
                         "device is in use by block job: commit")
        self.assertEqual(self.c.cmd('job-pause', {'id': 'c2'}),
                         {'return': {}})
        end = time.monotonic() + 10
        while self.c.cmd('query-jobs')['return'][0]['status'] != 'paused':
            self.assertLess(time.monotonic(), end)
            time.sleep(0.02)
        j = self.c.cmd('query-jobs')['return'][0]
        self.assertEqual(j['total-progress'], 4 * MB)
        self.assertLess(j['current-progress'], 4 * MB)
        self.assertEqual(self.c.cmd('job-resume', {'id': 'c2'}),
                         {'return': {}})
        self.assertEqual(self.c.cmd('block-job-set-speed',
                                    {'device': 'c2', 'speed': 0}),
                         {'return': {}})
        self.c.wait_event('BLOCK_JOB_PENDING')
        # Nothing changed in the chain before finalization.
        self.assertEqual(self.nodes()['disk0']['backing_file'],
                         self.path('mid.qcow2'))
        self.assertEqual(self.c.cmd('job-finalize', {'id': 'c2'}),
                         {'return': {}})
        self.c.wait_event('BLOCK_JOB_COMPLETED')
        j = self.c.cmd('query-jobs')['return'][0]
        self.assertEqual((j['status'], j['current-progress']),
                         ('concluded', 4 * MB))
        self.assertEqual(self.c.cmd('job-dismiss', {'id': 'c2'}),
                         {'return': {}})
        self.assertEqual(self.c.cmd('query-jobs'), {'return': []})
        self.assertEqual(self.nodes()['disk0']['backing_file'],
                         self.path('base.qcow2'))
        self.srv.stop()
        self.check_images('base.qcow2', 'mid.qcow2', 'top.qcow2')
        self.assertEqual(len(self.chain_of('top.qcow2')), 2)
        self.assert_same('top.qcow2', 'top.raw')

    def test_errors_match_qemu(self):
        mine = error_replies([SYSTEM, '-machine', 'none'], self.dir)
        for r in mine:
            self.assertIn('error', r)
        self.assertEqual(mine[0]['error']['class'], 'DeviceNotFound')
        self.assertEqual(mine[0]['error']['desc'], "Device 'nope' not found")
        if not QEMU:
            self.skipTest('qemu-system-x86_64 not installed')
        theirs = error_replies([QEMU, '-machine', 'none', '-nodefaults',
                                '-display', 'none'], self.dir)
        self.assertEqual(mine, theirs)


if __name__ == '__main__':
    xtest.main()
