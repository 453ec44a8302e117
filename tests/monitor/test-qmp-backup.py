#!/usr/bin/env python3
"""blockdev-backup, drive-backup and their transaction actions over QMP:
the event sequence of a successful job, query-jobs progress, sync=none
ending in BLOCK_JOB_CANCELLED, drive-backup with an incremental chain,
and the argument
errors, which must equal QEMU 7.2's when qemu-system-x86_64 is
installed.  Results are checked with qemu-img check and compare.
Grouped completion under an injected fault is in tests/block/test-backup.c.
"""
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
MB = 1024 * 1024

# (command, arguments); TGT8 is a target of the wrong size, TRO read-only.
ERROR_CASES = [
    ('blockdev-backup', {'device': 'nope', 'target': 'tgt', 'sync': 'full'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'nope',
                         'sync': 'full'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt', 'sync': 'full'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'disk0',
                         'sync': 'full', 'job-id': 'j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt8',
                         'sync': 'full', 'job-id': 'j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tro',
                         'sync': 'full', 'job-id': 'j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt',
                         'sync': 'incremental', 'job-id': 'j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt',
                         'sync': 'bitmap', 'job-id': 'j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt', 'sync': 'full',
                         'bitmap-mode': 'always', 'job-id': 'j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt', 'sync': 'full',
                         'bitmap': 'b0', 'job-id': 'j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt', 'sync': 'full',
                         'bitmap': 'zz', 'bitmap-mode': 'always',
                         'job-id': 'j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt', 'sync': 'none',
                         'bitmap': 'b0', 'bitmap-mode': 'always',
                         'job-id': 'j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt', 'sync': 'full',
                         'bitmap': 'b0', 'bitmap-mode': 'never',
                         'job-id': 'j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt',
                         'sync': 'incremental', 'bitmap': 'b0',
                         'bitmap-mode': 'never', 'job-id': 'j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt', 'sync': 'full',
                         'job-id': '1j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'traw', 'sync': 'full',
                         'job-id': 'j', 'compress': True}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt',
                         'sync': 'bitmap', 'bitmap': 'bdis', 'job-id': 'j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt', 'sync': 'fast',
                         'job-id': 'j'}),
    ('blockdev-backup', {'device': 'disk0', 'target': 'tgt',
                         'job-id': 'j'}),
    ('drive-backup', {'device': 'nope', 'target': '@/x.qcow2',
                      'sync': 'full'}),
    ('drive-backup', {'device': 'disk0', 'target': '@/nodir/x.qcow2',
                      'sync': 'full', 'job-id': 'j4'}),
    ('drive-backup', {'device': 'disk0', 'target': '@/y.qcow2',
                      'sync': 'full', 'job-id': 'j5', 'format': 'nofmt'}),
    ('drive-backup', {'device': 'disk0', 'target': '@/none.qcow2',
                      'sync': 'full', 'job-id': 'j6', 'mode': 'existing'}),
]


def make_images(d):
    xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2',
               os.path.join(d, 'd.qcow2'), '4M'])
    xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2',
               os.path.join(d, 't.qcow2'), '4M'])
    xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2',
               os.path.join(d, 't8.qcow2'), '8M'])
    xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2',
               os.path.join(d, 'tro.qcow2'), '4M'])
    xtest.run([QEMU_IMG, 'create', '-q', '-f', 'raw',
               os.path.join(d, 'r.raw'), '4M'])
    xtest.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 1 0 1M', '-c',
               'write -P 2 2M 512k', os.path.join(d, 'd.qcow2')])


def blockdevs(d):
    def bd(name, f, extra='', drv='qcow2'):
        return ['-blockdev', 'driver=%s,node-name=%s%s,file.driver=file,'
                'file.filename=%s' % (drv, name, extra, os.path.join(d, f))]
    return (bd('disk0', 'd.qcow2') + bd('tgt', 't.qcow2') +
            bd('tgt8', 't8.qcow2') + bd('tro', 'tro.qcow2', ',read-only=on') +
            bd('traw', 'r.raw', drv='raw'))


def error_replies(prog, d):
    srv = qmpclient.Server(prog + blockdevs(d), tmpdir=d)
    try:
        c = srv.client().negotiate()
        c.cmd('block-dirty-bitmap-add', {'node': 'disk0', 'name': 'b0'})
        out = []
        for name, args in ERROR_CASES:
            args = dict(args)
            if args['target'].startswith('@'):
                args['target'] = d + args['target'][1:]
            r = c.cmd(name, args)
            if 'error' in r:
                r['error']['desc'] = r['error']['desc'].replace(d, '@')
            out.append(r)
        return out
    finally:
        srv.stop()


class QmpBackup(xtest.TmpDirTestCase):
    maxDiff = None

    def setUp(self):
        super().setUp()
        if not QEMU_IMG:
            self.skipTest('qemu-img not installed')
        make_images(self.dir)

    def start(self):
        self.srv = qmpclient.Server([SYSTEM, '-machine', 'none'] +
                                    blockdevs(self.dir), tmpdir=self.dir)
        self.addCleanup(self.srv.stop)
        self.c = self.srv.client().negotiate()

    def wait_gone(self, job, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not any(j['id'] == job for j in
                       self.c.cmd('query-jobs')['return']):
                return
            time.sleep(0.02)
        self.fail('job %s still there' % job)

    def job_events(self, job):
        out = []
        for e in self.c.events:
            d = e.get('data', {})
            if d.get('id') == job or d.get('device') == job:
                out.append(d['status'] if e['event'] == 'JOB_STATUS_CHANGE'
                           else e['event'])
        return out

    def test_blockdev_backup_full(self):
        self.start()
        r = self.c.cmd('blockdev-backup', {'device': 'disk0', 'target': 'tgt',
                                           'sync': 'full', 'job-id': 'j1'})
        self.assertEqual(r, {'return': {}})
        done = self.c.wait_event('BLOCK_JOB_COMPLETED')
        self.assertEqual(done['data'], {'type': 'backup', 'device': 'j1',
                                        'len': 4 * MB, 'offset': 4 * MB,
                                        'speed': 0})
        self.c.events.append(done)
        self.wait_gone('j1')
        self.assertEqual(self.job_events('j1'),
                         ['created', 'running', 'waiting', 'pending',
                          'BLOCK_JOB_COMPLETED', 'concluded', 'null'])
        self.c.cmd('blockdev-del', {'node-name': 'tgt'})
        xtest.run([QEMU_IMG, 'check', self.path('t.qcow2')])
        p = xtest.run([QEMU_IMG, 'compare', '-U', self.path('d.qcow2'),
                       self.path('t.qcow2')])
        self.assertIn('Images are identical', p.stdout)

    def test_progress_and_manual_finalize(self):
        self.start()
        r = self.c.cmd('blockdev-backup', {
            'device': 'disk0', 'target': 'tgt', 'sync': 'full',
            'job-id': 'j1', 'speed': 256 * 1024, 'auto-finalize': False,
            'auto-dismiss': False})
        self.assertEqual(r, {'return': {}})
        time.sleep(0.2)
        j = self.c.cmd('query-jobs')['return'][0]
        self.assertEqual((j['id'], j['type'], j['status']),
                         ('j1', 'backup', 'running'))
        self.assertEqual(j['total-progress'], 4 * MB)
        self.assertLess(j['current-progress'], 4 * MB)
        self.assertEqual(self.c.cmd('block-job-set-speed',
                                    {'device': 'j1', 'speed': 0}),
                         {'return': {}})
        self.c.wait_event('BLOCK_JOB_PENDING')
        self.assertEqual(self.c.cmd('job-finalize', {'id': 'j1'}),
                         {'return': {}})
        self.c.wait_event('BLOCK_JOB_COMPLETED')
        j = self.c.cmd('query-jobs')['return'][0]
        self.assertEqual((j['status'], j['current-progress']),
                         ('concluded', 4 * MB))
        self.assertEqual(self.c.cmd('job-dismiss', {'id': 'j1'}),
                         {'return': {}})
        self.assertEqual(self.c.cmd('query-jobs'), {'return': []})

    def test_sync_none_ends_cancelled(self):
        self.start()
        r = self.c.cmd('blockdev-backup', {'device': 'disk0', 'target': 'tgt',
                                           'sync': 'none', 'job-id': 'j2'})
        self.assertEqual(r, {'return': {}})
        j = self.c.cmd('query-jobs')['return'][0]
        self.assertEqual((j['status'], j['current-progress'],
                          j['total-progress']), ('running', 0, 4 * MB))
        r = self.c.cmd('blockdev-backup', {'device': 'disk0', 'target': 'tgt',
                                           'sync': 'full', 'job-id': 'j3'})
        self.assertEqual(r['error']['desc'], "Node 'tgt' is busy: block "
                         "device is in use by block job: backup")
        self.assertEqual(self.c.cmd('job-cancel', {'id': 'j2'}),
                         {'return': {}})
        self.c.events.append(self.c.wait_event('BLOCK_JOB_CANCELLED'))
        self.wait_gone('j2')
        self.assertEqual(self.job_events('j2'),
                         ['created', 'running', 'aborting',
                          'BLOCK_JOB_CANCELLED', 'concluded', 'null'])

    def test_drive_backup_and_incremental(self):
        self.start()
        full = self.path('full.qcow2')
        r = self.c.cmd('transaction', {'actions': [
            {'type': 'block-dirty-bitmap-add',
             'data': {'node': 'disk0', 'name': 'b0'}},
            {'type': 'drive-backup',
             'data': {'device': 'disk0', 'target': full, 'sync': 'full',
                      'job-id': 'f'}}]})
        self.assertEqual(r, {'return': {}})
        self.c.wait_event('BLOCK_JOB_COMPLETED')
        self.wait_gone('f')
        xtest.run([QEMU_IMG, 'check', full])
        inc = self.path('inc.qcow2')
        xtest.run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', '-b', full,
                   '-F', 'qcow2', inc])
        r = self.c.cmd('drive-backup', {'device': 'disk0', 'target': inc,
                                        'sync': 'incremental', 'bitmap': 'b0',
                                        'mode': 'existing', 'job-id': 'i'})
        self.assertEqual(r, {'return': {}})
        done = self.c.wait_event('BLOCK_JOB_COMPLETED')
        self.assertEqual(done['data']['len'], 0)     # nothing written
        self.wait_gone('i')
        p = xtest.run([QEMU_IMG, 'compare', '-U', inc,
                       self.path('d.qcow2')])
        self.assertIn('Images are identical', p.stdout)

    def test_errors_match_qemu(self):
        mine = error_replies([SYSTEM, '-machine', 'none'], self.dir)
        for r in mine:
            self.assertIn('error', r)
        # a failed drive-backup leaves no file behind
        self.assertFalse(os.path.exists(self.path('y.qcow2')))
        if not QEMU:
            self.skipTest('qemu-system-x86_64 not installed')
        theirs = error_replies([QEMU, '-machine', 'none', '-nodefaults',
                                '-display', 'none'], self.dir)
        self.assertEqual(mine, theirs)


if __name__ == '__main__':
    xtest.main()
