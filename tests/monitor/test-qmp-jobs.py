#!/usr/bin/env python3
"""The job commands over QMP without a running job: empty lists, QEMU's
error classes and texts for jobs that do not exist, argument checking,
and the job types and events in query-qmp-schema.  When
qemu-system-x86_64 is installed, the same requests go to QEMU 7.2 and
the replies must be identical.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
QEMU = shutil.which('qemu-system-x86_64')

REQUESTS = [
    ('query-jobs', None),
    ('query-block-jobs', None),
    ('job-pause', {'id': 'j0'}),
    ('job-resume', {'id': 'j0'}),
    ('job-cancel', {'id': 'j0'}),
    ('job-complete', {'id': 'j0'}),
    ('job-finalize', {'id': 'j0'}),
    ('job-dismiss', {'id': 'j0'}),
    ('job-pause', None),
    ('job-pause', {'id': 1}),
    ('job-pause', {'id': 'j0', 'x': 1}),
    ('block-job-cancel', {'device': 'j0'}),
    ('block-job-cancel', {'device': 'j0', 'force': True}),
    ('block-job-cancel', {'device': ''}),
    ('block-job-cancel', None),
    ('block-job-cancel', {'device': 'j0', 'force': 'yes'}),
    ('block-job-pause', {'device': 'j0'}),
    ('block-job-resume', {'device': 'j0'}),
    ('block-job-set-speed', {'device': 'j0', 'speed': 5}),
    ('block-job-set-speed', {'device': 'j0', 'speed': -5}),
    ('block-job-set-speed', {'device': 'j0'}),
    ('block-job-complete', {'device': 'j0'}),
    ('block-job-finalize', {'id': 'j0'}),
    ('block-job-dismiss', {'id': 'j0'}),
    ('block-job-dismiss', {'device': 'j0'}),
]


def run_requests(argv, tmpdir):
    srv = qmpclient.Server(argv, tmpdir=tmpdir)
    try:
        c = srv.client().negotiate()
        return [c.cmd(name, args) for name, args in REQUESTS]
    finally:
        srv.stop()


class QmpJobs(xtest.TmpDirTestCase):
    maxDiff = None

    def setUp(self):
        super().setUp()
        self.srv = qmpclient.Server([SYSTEM, '-machine', 'none'],
                                    tmpdir=self.dir)
        self.addCleanup(self.srv.stop)
        self.c = self.srv.client().negotiate()

    def test_empty_lists(self):
        self.assertEqual(self.c.cmd('query-jobs'), {'return': []})
        self.assertEqual(self.c.cmd('query-block-jobs'), {'return': []})

    def test_missing_job(self):
        for cmd in ('job-pause', 'job-resume', 'job-cancel', 'job-complete',
                    'job-finalize', 'job-dismiss'):
            r = self.c.cmd(cmd, {'id': 'nope'})
            self.assertEqual(r, {'error': {'class': 'GenericError',
                                           'desc': 'Job not found'}}, cmd)

    def test_missing_block_job(self):
        for cmd, args in (('block-job-cancel', {'device': 'nope'}),
                          ('block-job-cancel', {'device': 'nope',
                                                'force': False}),
                          ('block-job-pause', {'device': 'nope'}),
                          ('block-job-resume', {'device': 'nope'}),
                          ('block-job-complete', {'device': 'nope'}),
                          ('block-job-set-speed', {'device': 'nope',
                                                   'speed': 0}),
                          ('block-job-finalize', {'id': 'nope'}),
                          ('block-job-dismiss', {'id': 'nope'})):
            r = self.c.cmd(cmd, args)
            self.assertEqual(r, {'error': {
                'class': 'DeviceNotActive',
                'desc': "Block job 'nope' not found"}}, cmd)

    def test_bad_arguments(self):
        r = self.c.cmd('job-cancel')
        self.assertEqual(r['error']['desc'], "Parameter 'id' is missing")
        r = self.c.cmd('block-job-set-speed', {'device': 'x'})
        self.assertEqual(r['error']['desc'], "Parameter 'speed' is missing")
        r = self.c.cmd('block-job-cancel', {'device': 'x', 'force': 1})
        self.assertEqual(r['error']['desc'],
                         "Invalid parameter type for 'force', expected: "
                         "boolean")

    def test_schema_lists_jobs(self):
        schema = self.c.cmd('query-qmp-schema')['return']
        names = {e['name'] for e in schema}
        for n in ('query-jobs', 'job-pause', 'job-resume', 'job-cancel',
                  'job-complete', 'job-finalize', 'job-dismiss',
                  'query-block-jobs', 'block-job-cancel', 'block-job-pause',
                  'block-job-resume', 'block-job-set-speed',
                  'block-job-complete', 'block-job-finalize',
                  'block-job-dismiss', 'JOB_STATUS_CHANGE',
                  'BLOCK_JOB_COMPLETED', 'BLOCK_JOB_CANCELLED',
                  'BLOCK_JOB_ERROR', 'BLOCK_JOB_READY', 'BLOCK_JOB_PENDING'):
            self.assertIn(n, names)
        enums = [e['values'] for e in schema if e['meta-type'] == 'enum']
        self.assertIn(['commit', 'stream', 'mirror', 'backup', 'create',
                       'amend', 'snapshot-load', 'snapshot-save',
                       'snapshot-delete'], enums)
        self.assertIn(['undefined', 'created', 'running', 'paused', 'ready',
                       'standby', 'waiting', 'pending', 'aborting',
                       'concluded', 'null'], enums)

    def test_same_replies_as_qemu(self):
        if not QEMU:
            self.skipTest('qemu-system-x86_64 not installed')
        qdir = os.path.join(self.dir, 'q')
        xdir = os.path.join(self.dir, 'x')
        os.makedirs(qdir)
        os.makedirs(xdir)
        q = run_requests([QEMU, '-machine', 'none', '-nodefaults',
                          '-display', 'none'], qdir)
        x = run_requests([SYSTEM, '-machine', 'none'], xdir)
        for (name, args), qr, xr in zip(REQUESTS, q, x):
            self.assertEqual(xr, qr, '%s %s' % (name, args))


if __name__ == '__main__':
    xtest.main()
