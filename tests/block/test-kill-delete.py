#!/usr/bin/env python3
"""test-kill-delete: SIGKILL during snapshot-delete over two disks
(DESIGN rules 2 and 3).

A snapshot without VM state on two qcow2 disks - made by a QMP
`transaction` of blockdev-snapshot-internal-sync, so nothing at start
(savestate_cleanup) would ever tidy up half of it - is deleted with the
QMP job snapshot-delete (tag + both devices).  The delete is recorded
beside both images before the first disk's delete (block/txn-journal.h,
"op": "delete") and the record goes after the last one; the next open of
either image finishes an interrupted delete.

Each round starts xblk-system (-machine xbox -S) on fresh copies of the
two disks (4 KiB clusters and scattered data, so that a delete has
refcounts to update), sends snapshot-delete and SIGKILLs the process at a
random instant from just after the command to a little after the moment
an undisturbed run's job concludes.  Then xblk-system opens the disks once
more (which resolves a record) and:

  1. no record is left beside the images;
  2. `qemu-img check` finds no corruption (leaks allowed);
  3. the tag is on both disks or on neither - and on neither if the job
     had concluded (its JOB_STATUS_CHANGE reached the client) before the
     kill;
  4. the disks' current content is unchanged, and a snapshot still there
     still holds the content it was taken with.

The seed is printed; XBLK_SEED=<n> replays it, XBLK_LONG=1 runs hundreds
of rounds (make check-long).
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import xtest  # noqa: E402
from killcheck import image_content_hash as content_hash  # noqa: E402
from killcheck import image_snapshot_names as snapshot_names  # noqa: E402
from qmpclient import QMPClient  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
LONG = os.environ.get('XBLK_LONG') == '1'
SEED = int(os.environ.get('XBLK_SEED') or
           random.SystemRandom().randrange(1 << 32))
ROUNDS = 200 if LONG else 30
DISK_SIZE = 64 << 20
TAG = 'txn'

print('# test-kill-delete: seed %d (XBLK_SEED=%d to replay)' % (SEED, SEED),
      flush=True)


def qimg(*args, check=True):
    return xtest.run(['qemu-img'] + list(args), check=check)


def start(d, disks, machine='xbox'):
    sock = os.path.join(d, 'qmp.sock')
    if os.path.exists(sock):
        os.unlink(sock)
    argv = [SYSTEM, '-machine', machine, '-display', 'none']
    if machine == 'xbox':
        argv += ['-S']
    for i, f in enumerate(disks):
        argv += ['-blockdev', 'driver=qcow2,node-name=hd%d,'
                 'file.driver=file,file.filename=%s' % (i, f)]
        if machine == 'xbox':
            argv += ['-device', 'ide-hd,drive=hd%d,bus=ide.%d,unit=0'
                     % (i, i)]
    argv += ['-qmp', 'unix:%s,server=on,wait=off' % sock]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    qmp = QMPClient(path=sock, timeout=20)
    qmp.negotiate()
    return proc, qmp


def quit(proc, qmp):
    qmp.cmd('quit')
    _, err = proc.communicate(timeout=30)
    qmp.close()
    return err.decode()


def delete_cmd(job_id='del'):
    return json.dumps({'execute': 'snapshot-delete', 'arguments': {
        'job-id': job_id, 'tag': TAG, 'devices': ['hd0', 'hd1']}}) + '\n'


def drain(sock):
    """Everything the server wrote before it died."""
    sock.settimeout(5)
    data = b''
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


class KillDeleteTest(xtest.TmpDirTestCase):
    @classmethod
    def setUpClass(cls):
        cls._base = tempfile.TemporaryDirectory(prefix='xblk-kill-del-')
        d = cls._base.name
        cls.bases, cls.hashes = [], []
        for i in range(2):
            p = os.path.join(d, 'base%d.qcow2' % i)
            qimg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096',
                 p, str(DISK_SIZE))
            cmds = []
            for k in range(0, DISK_SIZE, 256 << 10):
                cmds += ['-c', 'write -q -P %d %d 64k' % (0x11 + i + k % 7, k)]
            xtest.run(['qemu-io', '-f', 'qcow2'] + cmds + [p])
            cls.bases.append(p)
        # The snapshot, made by xblk's transaction; then the disks change
        # on so that the snapshot's clusters are its own.
        proc, qmp = start(d, cls.bases, machine='none')
        r = qmp.cmd('transaction', {'actions': [
            {'type': 'blockdev-snapshot-internal-sync',
             'data': {'device': 'hd%d' % i, 'name': TAG}} for i in range(2)]})
        assert 'return' in r, r
        quit(proc, qmp)
        cls.snap_hashes = []
        for i, p in enumerate(cls.bases):
            cls.snap_hashes.append(content_hash(p, TAG))
            cmds = []
            for k in range(0, DISK_SIZE, 512 << 10):
                cmds += ['-c', 'write -q -P %d %d 4k' % (0x61 + i, k)]
            xtest.run(['qemu-io', '-f', 'qcow2'] + cmds + [p])
            cls.hashes.append(content_hash(p))

    @classmethod
    def tearDownClass(cls):
        cls._base.cleanup()

    def fresh_disks(self):
        disks = []
        for i, b in enumerate(self.bases):
            d = self.path('disk%d.qcow2' % i)
            xtest.run(['cp', b, d])
            disks.append(d)
        return disks

    def records(self):
        return [f for f in os.listdir(self.dir)
                if f.endswith('.xblk-txn') or f.endswith('.xblk-txn.tmp')]

    def job_time(self):
        """How long an undisturbed delete job takes to conclude (median
        of 3); checks that it deletes both and leaves no record."""
        times = []
        for _ in range(3):
            disks = self.fresh_disks()
            proc, qmp = start(self.dir, disks)
            t0 = time.monotonic()
            qmp.send_raw(delete_cmd())
            while True:
                m = qmp.recv()
                if m.get('event') == 'JOB_STATUS_CHANGE' and \
                        m['data']['status'] == 'concluded':
                    break
            times.append(time.monotonic() - t0)
            job = qmp.cmd('query-jobs')['return'][0]
            self.assertNotIn('error', job)
            self.assertEqual(self.records(), [])
            quit(proc, qmp)
            for d in disks:
                self.assertEqual(snapshot_names(d), [])
        return sorted(times)[1]

    def test_kill_during_delete(self):
        limit = self.job_time() * 1.5
        print('# undisturbed delete job: %.1f ms' % (limit / 1.5 * 1e3),
              flush=True)
        rng = random.Random(SEED)
        tally = {}
        for _ in range(ROUNDS):
            disks = self.fresh_disks()
            proc, qmp = start(self.dir, disks)
            qmp.send_raw(delete_cmd())
            # Early instants more often: the deletes themselves take a
            # small part of the job's time, after its start.
            time.sleep(limit * rng.random() ** 2)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            out = qmp.buf + drain(qmp.sock)
            qmp.close()
            concluded = b'"concluded"' in out
            left = [len(snapshot_names(d)) for d in disks]
            # A record under its name (not a .tmp cut short while made).
            recorded = any(f.endswith('.xblk-txn') for f in self.records())
            # Opening the disks again resolves a record.
            proc, qmp = start(self.dir, disks, machine='none')
            quit(proc, qmp)
            self.assertEqual(self.records(), [])
            on = []
            for i, d in enumerate(disks):
                p = qimg('check', d, check=False)
                self.assertIn(p.returncode, (0, 3),
                              'corruption in %s:\n%s' % (d, p.stdout +
                                                         p.stderr))
                self.assertEqual(content_hash(d), self.hashes[i])
                names = snapshot_names(d)
                self.assertIn(names, ([], [TAG]))
                if names:
                    self.assertEqual(content_hash(d, TAG),
                                     self.snap_hashes[i])
                on.append(bool(names))
            key = '%s on %d of 2 disks%s' % (
                'concluded,' if concluded else 'killed,', sum(on),
                ' (killed with %d+%d, record finished it)' % tuple(left)
                if recorded else '')
            tally[key] = tally.get(key, 0) + 1
            self.assertIn(sum(on), (0, 2),
                          'the snapshot is on one disk only: %s' % key)
            if concluded:
                self.assertEqual(sum(on), 0, key)
        for k in sorted(tally):
            print('# %3d  %s' % (tally[k], k), flush=True)


if __name__ == '__main__':
    xtest.main()
