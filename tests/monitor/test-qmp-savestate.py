#!/usr/bin/env python3
"""test-qmp-savestate: save states on the monitor.

- Differential (skipped without qemu-system-x86_64): one script of the
  job commands snapshot-save / snapshot-load / snapshot-delete (success,
  a duplicate tag, an unknown vmstate node, an unknown device, a
  read-only device, an empty device list, a missing tag, a bad job-id),
  query-jobs and job-dismiss, and HMP savevm / loadvm / delvm / info
  snapshots runs against QEMU 7.2 (`-M pc -nodefaults -S -m 64`, a qcow2
  hard disk and a read-only DVD given with -blockdev and -device) and
  against xblk-system -machine xbox -S with the same devices.  Replies,
  the JOB_STATUS_CHANGE sequence of every job, query-jobs (error texts
  included) and the HMP text must be the same; in `info snapshots` the
  VM SIZE, DATE and VM CLOCK columns are masked.
- xblk only, with the reference guest running: a save leaves the guest
  running (no STOP) and its figures in x-query-snapshot-stats; the state
  is listed by qemu-img and the image stays clean; a second save while
  one is running fails its job with a clear error; a cancelled save
  leaves no snapshot; a save of a stopped machine records its frame,
  frame hash, disc, title and a 320x240 PNG thumbnail
  (x-query-save-state), and a restart with -loadvm shows that frame and
  hash again; -loadvm of a
  missing tag exits 1 with QEMU's message; a writable disk left out of
  devices is refused.
"""
import base64
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

QEMU = shutil.which('qemu-system-x86_64')
SYSTEM = xtest.binary('xblk-system')
DISC = os.path.join(xtest.BUILD, 'guest', 'disc.iso')


def blockdevs(d):
    """The same drives for both programs: hd0 (qcow2), cd0 (read-only)."""
    return ['-blockdev', 'driver=qcow2,node-name=hd0,file.driver=file,'
            'file.filename=%s' % os.path.join(d, 'hd.qcow2'),
            '-device', 'ide-hd,drive=hd0,bus=ide.0,unit=0',
            '-blockdev', 'driver=raw,node-name=cd0,read-only=on,'
            'file.driver=file,file.filename=%s' % os.path.join(d, 'cd.img'),
            '-device', 'ide-cd,drive=cd0,bus=ide.1,unit=0']


def make_images(d, size='64M'):
    xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2',
               os.path.join(d, 'hd.qcow2'), size])
    with open(os.path.join(d, 'cd.img'), 'wb') as f:
        f.truncate(1 << 20)


def job(q, name, args, timeout=60):
    """Runs a job command; returns (reply, statuses, query-jobs entry)."""
    q.events = []
    r = q.cmd(name, args)
    if 'error' in r:
        return r, [], None
    statuses = []
    end = time.monotonic() + timeout
    while True:
        for e in q.events:
            if e['event'] == 'JOB_STATUS_CHANGE' and \
                    e['data']['id'] == args['job-id']:
                statuses.append(e['data']['status'])
        q.events = []
        if statuses and statuses[-1] == 'concluded':
            break
        if time.monotonic() > end:
            raise TimeoutError('%s: %s' % (name, statuses))
        q.events.append(q.recv())
    jobs = q.cmd('query-jobs')['return']
    entry = [j for j in jobs if j['id'] == args['job-id']]
    q.cmd('job-dismiss', {'id': args['job-id']})
    return r, statuses, entry[0] if entry else None


def mask_info_snapshots(text):
    text = re.sub(r'\d+(\.\d+)? [KMGT]?i?B', 'SIZE', text)
    text = re.sub(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d', 'DATE', text)
    text = re.sub(r'\d\d:\d\d:\d\d\.\d\d\d', 'CLOCK', text)
    text = re.sub(r'vm-\d{14}', 'vm-TIME', text)
    return re.sub(r' +', ' ', text)


SCRIPT = [
    ('job', 'snapshot-save', {'job-id': 'j1', 'tag': 'a', 'vmstate': 'hd0',
                              'devices': ['hd0']}),
    ('job', 'snapshot-save', {'job-id': 'j2', 'tag': 'a', 'vmstate': 'hd0',
                              'devices': ['hd0']}),
    ('job', 'snapshot-save', {'job-id': 'j3', 'tag': 'b',
                              'vmstate': 'nope', 'devices': ['hd0']}),
    ('job', 'snapshot-save', {'job-id': 'j4', 'tag': 'b', 'vmstate': 'hd0',
                              'devices': ['nope']}),
    ('job', 'snapshot-save', {'job-id': 'j5', 'tag': 'b', 'vmstate': 'cd0',
                              'devices': ['cd0']}),
    ('job', 'snapshot-save', {'job-id': 'j6', 'tag': 'b', 'vmstate': 'hd0',
                              'devices': []}),
    ('job', 'snapshot-load', {'job-id': 'j7', 'tag': 'zz', 'vmstate': 'hd0',
                              'devices': ['hd0']}),
    ('job', 'snapshot-load', {'job-id': 'j8', 'tag': 'a', 'vmstate': 'hd0',
                              'devices': ['hd0']}),
    ('job', 'snapshot-delete', {'job-id': 'j9', 'tag': 'zz',
                                'devices': ['hd0']}),
    ('job', 'snapshot-delete', {'job-id': 'j10', 'tag': 'a',
                                'devices': ['hd0']}),
    ('cmd', 'snapshot-save', {'job-id': 'bad id', 'tag': 'a',
                              'vmstate': 'hd0', 'devices': ['hd0']}),
    ('hmp', 'savevm', None), ('hmp', 'savevm x', None),
    ('hmp', 'info snapshots', None), ('hmp', 'savevm x', None),
    ('hmp', 'loadvm', None), ('hmp', 'loadvm nope', None),
    ('hmp', 'delvm nope', None), ('hmp', 'loadvm x', None),
    ('hmp', 'delvm x', None), ('hmp', 'savevm a b', None),
    ('hmp', 'info snapshots', None),
]


def run_script(q):
    out = []
    for kind, name, args in SCRIPT:
        if kind == 'job':
            r, statuses, entry = job(q, name, args)
            # created and running may come before the reply on either side
            statuses = [s for s in statuses if s not in ('created',
                                                         'running')]
            # QEMU counts 1 of 1, xblk stream bytes: both end complete.
            if entry:
                self_total = entry.pop('total-progress')
                entry['complete'] = entry.pop('current-progress') == \
                    self_total
            out.append((name, args.get('job-id'), r, statuses, entry))
        elif kind == 'cmd':
            out.append((name, q.cmd(name, args)))
        else:
            r = q.cmd('human-monitor-command', {'command-line': name})
            if name == 'info snapshots':
                r = {'return': mask_info_snapshots(r['return'])}
            out.append((name, r))
    return out


class Differential(xtest.TmpDirTestCase):
    def run_program(self, argv, sub):
        d = self.path(sub)
        os.makedirs(d)
        make_images(d)
        srv = qmpclient.Server(argv + blockdevs(d), tmpdir=d)
        try:
            q = srv.client().negotiate()
            res = run_script(q)
            q.close()
        finally:
            rc, out, err = srv.stop()
        return res

    def test_same_as_qemu(self):
        if not QEMU:
            self.skipTest('qemu-system-x86_64 not installed')
        want = self.run_program([QEMU, '-M', 'pc', '-nodefaults', '-S',
                                 '-display', 'none', '-m', '64'], 'qemu')
        got = self.run_program([SYSTEM, '-machine', 'xbox', '-S',
                                '-display', 'none', '-m', '64'], 'xblk')
        self.assertEqual(len(want), len(got))
        for w, g in zip(want, got):
            self.assertEqual(w, g)


class Running(xtest.TmpDirTestCase):
    """The reference guest on a fresh 8 GiB HDD with its disc."""

    def start(self, extra=(), check_up=True):
        self.srv = qmpclient.Server(
            [SYSTEM, '-machine', 'xbox,seed=1', '-display', 'none',
             '-drive', 'file=%s,format=qcow2,if=ide,index=0' % self.hd,
             '-drive', 'file=%s,format=raw,if=ide,index=1,media=cdrom'
             % DISC] + list(extra), tmpdir=self.dir)
        self.q = self.srv.client().negotiate()
        return self.q

    def setUp(self):
        super().setUp()
        self.hd = self.path('hd.qcow2')
        xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', self.hd,
                   '8G'])
        self.srv = None

    def tearDown(self):
        if self.srv:
            self.srv.stop()
        super().tearDown()

    def quit(self):
        self.q.cmd('quit')
        rc, out, err = self.srv.stop()
        self.srv = None
        self.assertEqual(rc, 0, err)

    def frame(self):
        return self.q.cmd('x-query-frame')['return']

    def wait_frame(self, n, timeout=60):
        end = time.monotonic() + timeout
        while self.frame()['frame'] < n:
            self.assertLess(time.monotonic(), end)
            time.sleep(0.02)

    def snapshots(self):
        out = xtest.run(['qemu-img', 'snapshot', '-l', self.hd]).stdout
        return out.decode() if isinstance(out, bytes) else out

    def check_clean(self):
        r = subprocess.run(['qemu-img', 'check', self.hd],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn(b'No errors were found', r.stdout)

    def test_save_while_running(self):
        q = self.start()
        self.wait_frame(120)
        args = {'job-id': 's', 'tag': 'run1', 'vmstate': 'ide0-hd0',
                'devices': ['ide0-hd0']}
        r, statuses, entry = job(q, 'snapshot-save', args)
        self.assertEqual(r, {'return': {}})
        self.assertEqual(statuses[-3:], ['waiting', 'pending', 'concluded'])
        self.assertNotIn('error', entry)
        self.assertEqual(entry['current-progress'], entry['total-progress'])
        self.assertNotIn('STOP', [e['event'] for e in q.events])
        self.assertEqual(q.cmd('query-status')['return']['status'],
                         'running')
        st = q.cmd('x-query-snapshot-stats')['return']['save']
        print('# save: %s' % json.dumps(st))
        self.assertEqual(st['tag'], 'run1')
        self.assertGreaterEqual(st['frame'], 120)
        self.assertGreater(st['guest-pause-us'], 0)
        self.assertGreaterEqual(st['durable-ms'], st['guest-pause-us'] / 1e3)
        self.assertGreater(st['vmstate-bytes'], 64 << 20)
        self.assertLess(st['vmstate-compressed-bytes'], st['vmstate-bytes'])
        f0 = self.frame()['frame']
        self.wait_frame(f0 + 30)          # the guest goes on
        self.quit()
        listing = self.snapshots()
        self.assertIn('run1', listing)
        self.check_clean()

    def test_second_save_refused_and_cancel(self):
        q = self.start()
        self.wait_frame(60)
        # Two saves in one write: the second job runs while the first is
        # in progress and fails clearly; the first completes.
        q.events = []
        q.send_raw(json.dumps({'execute': 'snapshot-save', 'arguments': {
            'job-id': 'first', 'tag': 't1', 'vmstate': 'ide0-hd0',
            'devices': ['ide0-hd0']}}) + '\n' + json.dumps({
                'execute': 'snapshot-save', 'arguments': {
                    'job-id': 'second', 'tag': 't2', 'vmstate': 'ide0-hd0',
                    'devices': ['ide0-hd0']}}) + '\n')
        self.assertEqual(q.reply(), {'return': {}})
        self.assertEqual(q.reply(), {'return': {}})
        done = set()
        end = time.monotonic() + 60
        while len(done) < 2 and time.monotonic() < end:
            for e in q.events:
                if e['event'] == 'JOB_STATUS_CHANGE' and \
                        e['data']['status'] == 'concluded':
                    done.add(e['data']['id'])
            q.events = []
            if len(done) < 2:
                q.events.append(q.recv())
        jobs = {j['id']: j for j in q.cmd('query-jobs')['return']}
        self.assertNotIn('error', jobs['first'])
        self.assertEqual(jobs['second']['error'],
                         'a save, load or delete of a state is in progress')

        # A save cancelled at once leaves nothing behind.
        q.events = []
        q.send_raw(json.dumps({'execute': 'snapshot-save', 'arguments': {
            'job-id': 'c', 'tag': 'cancelled', 'vmstate': 'ide0-hd0',
            'devices': ['ide0-hd0']}}) + '\n' + json.dumps({
                'execute': 'job-cancel', 'arguments': {'id': 'c'}}) + '\n')
        self.assertEqual(q.reply(), {'return': {}})
        self.assertEqual(q.reply(), {'return': {}})
        q.wait_event('JOB_STATUS_CHANGE')  # whatever: wait for concluded
        while True:
            j = [x for x in q.cmd('query-jobs')['return'] if x['id'] == 'c']
            if j[0]['status'] == 'concluded':
                break
            time.sleep(0.01)
        self.assertIn('error', j[0])
        print('# cancelled: %s' % j[0]['error'])
        info = q.cmd('human-monitor-command',
                     {'command-line': 'info snapshots'})['return']
        self.assertIn('t1', info)
        self.assertNotIn('cancelled', info)
        self.quit()
        listing = self.snapshots()
        self.assertIn('t1', listing)
        self.assertNotIn('t2', listing)
        self.assertNotIn('cancelled', listing)
        self.check_clean()

    def test_loadvm_on_the_command_line(self):
        q = self.start()
        self.wait_frame(30)
        stop_at = self.frame()['frame'] + 60
        q.cmd('x-frame-stop', {'frame': stop_at})
        q.wait_event('STOP', timeout=60)
        want = self.frame()
        self.assertEqual(want['frame'], stop_at)
        r = q.cmd('human-monitor-command', {'command-line': 'savevm paused'})
        self.assertEqual(r, {'return': ''})
        # Saving a paused machine keeps the paused frame.
        self.assertEqual(self.frame(), want)
        info = q.cmd('x-query-save-state', {'tag': 'paused'})['return']
        self.assertEqual(info['frame'], want['frame'])
        self.assertEqual(info['frame-hash'], want['hash'])
        self.assertEqual(info['title'], 'XBLK_GUEST_DISC')
        self.assertEqual(info['disc-path'], DISC)
        png = base64.b64decode(info['thumbnail-png'])
        self.assertEqual(png[:8], b'\x89PNG\r\n\x1a\n')
        self.assertEqual(struct.unpack('>II', png[16:24]), (320, 240))
        r = q.cmd('x-query-save-state', {'tag': 'nope'})
        self.assertEqual(r['error']['desc'],
                         "Snapshot 'nope' has no VM state on any disk")
        q.cmd('cont')
        self.wait_frame(stop_at + 60)
        self.quit()

        q = self.start(['-loadvm', 'paused', '-S'])
        self.assertEqual(self.frame(), want)
        q.cmd('cont')
        self.wait_frame(stop_at + 10)
        self.quit()

        srv = qmpclient.Server(
            [SYSTEM, '-machine', 'xbox', '-display', 'none',
             '-drive', 'file=%s,format=qcow2,if=ide,index=0' % self.hd,
             '-loadvm', 'nope'], tmpdir=self.dir)
        srv.proc.wait(timeout=30)
        rc, out, err = srv.stop()
        self.assertEqual(rc, 1)
        self.assertEqual(err, "xblk-system: Snapshot 'nope' does not exist "
                         "in one or more devices\n")
        self.check_clean()

    def test_every_writable_disk(self):
        hd2 = self.path('hd2.qcow2')
        xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', hd2, '64M'])
        q = self.start(['-drive', 'file=%s,format=qcow2,if=ide,index=2'
                        % hd2])
        self.wait_frame(10)
        r, _, entry = job(q, 'snapshot-save', {
            'job-id': 'j', 'tag': 'part', 'vmstate': 'ide0-hd0',
            'devices': ['ide0-hd0']})
        self.assertEqual(entry['error'], "Device 'ide1-hd0' is writable but "
                         "not in the list of devices: a save state covers "
                         "every writable disk")
        r, _, entry = job(q, 'snapshot-save', {
            'job-id': 'j', 'tag': 'both', 'vmstate': 'ide1-hd0',
            'devices': ['ide0-hd0', 'ide1-hd0']})
        self.assertNotIn('error', entry)
        self.quit()
        # The VM state is on the disk asked for; both disks have the tag,
        # with the machine's clock of the one instant.
        clock = r' (\d\d:\d\d:\d\d\.\d{3})'
        m1 = re.search(r'both +0 B .*' + clock, self.snapshots())
        out = xtest.run(['qemu-img', 'snapshot', '-l', hd2]).stdout
        out = out.decode() if isinstance(out, bytes) else out
        m2 = re.search(r'both +\d+(\.\d+)? [KM]iB .*' + clock, out)
        self.assertTrue(m1 and m2, out)
        self.assertEqual(m1.group(1), m2.group(2))
        self.assertNotEqual(m1.group(1), '00:00:00.000')

    def test_unfinished_state_removed_at_start(self):
        """A save killed before its VM state's disk listed it leaves the
        tag on the other disks only: the next start removes it there, and
        leaves alone a disk-only snapshot made by qemu-img."""
        hd2 = self.path('hd2.qcow2')
        xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', hd2, '64M'])
        drive2 = ['-drive', 'file=%s,format=qcow2,if=ide,index=2' % hd2]
        q = self.start(drive2)
        self.wait_frame(10)
        for tag in ('kept', 'torn'):
            r, _, entry = job(q, 'snapshot-save', {
                'job-id': 'j', 'tag': tag, 'vmstate': 'ide0-hd0',
                'devices': ['ide0-hd0', 'ide1-hd0']})
            self.assertNotIn('error', entry)
        self.quit()
        # What a kill between the two disks' listings leaves behind.
        xtest.run(['qemu-img', 'snapshot', '-d', 'torn', self.hd])
        xtest.run(['qemu-img', 'snapshot', '-c', 'disk-only', hd2])
        q = self.start(drive2)
        info = q.cmd('human-monitor-command',
                     {'command-line': 'info snapshots'})['return']
        self.assertIn('kept', info)
        self.assertNotIn('torn', info)
        q.cmd('quit')
        rc, out, err = self.srv.stop()
        self.srv = None
        self.assertEqual(rc, 0, err)
        self.assertIn("xblk-system: warning: removed the unfinished save "
                      "state 'torn' from 'ide1-hd0'\n", err)
        out2 = xtest.run(['qemu-img', 'snapshot', '-l', hd2]).stdout
        out2 = out2.decode() if isinstance(out2, bytes) else out2
        self.assertNotIn('torn', out2)
        self.assertIn('kept', out2)
        self.assertIn('disk-only', out2)
        self.check_clean()


if __name__ == '__main__':
    xtest.main()
