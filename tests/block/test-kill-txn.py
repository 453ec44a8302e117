#!/usr/bin/env python3
"""test-kill-txn: SIGKILL during a transaction's write-out (DESIGN rule 2).

Each round starts xblk-system on fresh copies of two qcow2 disks (known
content, 4 KiB clusters so that a snapshot has plenty of metadata to
write), sends one QMP `transaction`, and SIGKILLs the process at a random
instant from just after the command was sent to a little after the
moment an undisturbed run replies -- so the kill lands in prepare, in the
drained commit, in the durable write-out or just after it.  Afterwards:

  1. `qemu-img check` finds no corruption in any image (leaks allowed);
  2. every snapshot an image lists was made by this transaction and is
     whole: its content, read by qemu-img, is the disk's content (nothing
     writes to the disks, so that is exactly the content at the commit);
  3. the disks' current content is unchanged;
  4. for blockdev-snapshot-sync, an overlay file that exists and opens is
     an image whose check is clean and whose backing file is the disk.

Internal snapshots over the two disks are whole or absent together
(block/txn-journal.h): after each kill the disks are opened once more by
xblk-system, which finishes or undoes what the transaction's record says,
and then the snapshot is on both disks or on neither, with no record
left behind.  External snapshots are per disk (each overlay whole or
absent).  The test prints how often each outcome occurred.

The seed is printed; XBLK_SEED=<n> replays it, XBLK_LONG=1 runs hundreds
of rounds (make check-long).
"""
import os
import random
import signal
import subprocess
import sys
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
ROUNDS = 200 if LONG else 16
DISK_SIZE = 64 << 20

print('# test-kill-txn: seed %d (XBLK_SEED=%d to replay)' % (SEED, SEED),
      flush=True)


def qimg(*args, check=True):
    return xtest.run(['qemu-img'] + list(args), check=check)


class KillTxnTest(xtest.TmpDirTestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls._base = tempfile.TemporaryDirectory(prefix='xblk-kill-txn-')
        cls.bases, cls.hashes = [], []
        for i in range(2):
            p = os.path.join(cls._base.name, 'base%d.qcow2' % i)
            qimg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096',
                 p, str(DISK_SIZE))
            # scattered data: many L2 entries and refcounts to snapshot
            cmds = []
            for k in range(0, DISK_SIZE, 256 << 10):
                cmds += ['-c', 'write -q -P %d %d 64k' % (0x11 + i + k % 7, k)]
            xtest.run(['qemu-io', '-f', 'qcow2'] + cmds + [p])
            cls.bases.append(p)
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

    def start(self, disks):
        sock = self.path('qmp.sock')
        if os.path.exists(sock):
            os.unlink(sock)
        argv = [SYSTEM, '-machine', 'none']
        for i, d in enumerate(disks):
            argv += ['-blockdev', 'driver=qcow2,node-name=disk%d,'
                     'file.driver=file,file.filename=%s' % (i, d)]
        argv += ['-qmp', 'unix:%s,server=on,wait=off' % sock]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        qmp = QMPClient(path=sock, timeout=20)
        qmp.negotiate()
        return proc, qmp

    def records(self):
        return [f for f in os.listdir(self.dir)
                if f.endswith('.xblk-txn') or f.endswith('.xblk-txn.tmp')]

    def reopen(self, disks):
        """xblk-system opens the disks again (and resolves an interrupted
        transaction's record), then quits."""
        proc, qmp = self.start(disks)
        qmp.cmd('quit')
        proc.wait(timeout=30)
        qmp.close()

    def reply_time(self, actions):
        """How long an undisturbed run takes to reply (median of 3)."""
        times = []
        for _ in range(3):
            disks = self.fresh_disks()
            proc, qmp = self.start(disks)
            t0 = time.monotonic()
            r = qmp.cmd('transaction', {'actions': actions(disks)})
            times.append(time.monotonic() - t0)
            self.assertIn('return', r, r)
            self.assertEqual(self.records(), [])
            qmp.cmd('quit')
            proc.wait(timeout=30)
            qmp.close()
        return sorted(times)[1]

    def kill_round(self, rng, actions, limit):
        disks = self.fresh_disks()
        proc, qmp = self.start(disks)
        req = '{"execute": "transaction", "arguments": {"actions": %s}}\n'
        import json
        qmp.send_raw(req % json.dumps(actions(disks)))
        time.sleep(rng.uniform(0, limit))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        qmp.close()
        return disks

    def check_disks(self, disks, outcome):
        for i, d in enumerate(disks):
            p = qimg('check', d, check=False)
            self.assertIn(p.returncode, (0, 3),
                          'corruption in %s:\n%s' % (d, p.stdout + p.stderr))
            self.assertEqual(content_hash(d), self.hashes[i])
            names = snapshot_names(d)
            for n in names:
                self.assertEqual(n, 'txn', names)
                self.assertEqual(content_hash(d, n), self.hashes[i],
                                 'snapshot %s of %s is not whole' % (n, d))
            outcome.append(bool(names))

    def test_internal_snapshots(self):
        def actions(disks):
            return [{'type': 'blockdev-snapshot-internal-sync',
                     'data': {'device': 'disk%d' % i, 'name': 'txn'}}
                    for i in range(len(disks))]
        limit = self.reply_time(actions) * 1.5
        rng = random.Random(SEED)
        tally = {}
        for _ in range(ROUNDS):
            disks = self.kill_round(rng, actions, limit)
            left = bool(self.records())
            self.reopen(disks)
            self.assertEqual(self.records(), [])
            outcome = []
            self.check_disks(disks, outcome)
            key = '%d of 2 disks' % sum(outcome)
            if left:
                key += ' (record resolved)'
            tally[key] = tally.get(key, 0) + 1
            self.assertIn(sum(outcome), (0, 2),
                          'the snapshot is on one disk only: %s' % tally)
        print('# internal snapshot present on: %s' % tally, flush=True)

    def test_external_snapshots(self):
        def actions(disks):
            return [{'type': 'blockdev-snapshot-sync',
                     'data': {'node-name': 'disk%d' % i,
                              'snapshot-file': self.path('ovl%d.qcow2' % i),
                              'snapshot-node-name': 'ovl%d' % i,
                              'format': 'qcow2'}}
                    for i in range(len(disks))]
        limit = self.reply_time(actions) * 1.5
        rng = random.Random(SEED + 1)
        tally = {}
        for _ in range(ROUNDS):
            for i in range(2):
                ovl = self.path('ovl%d.qcow2' % i)
                if os.path.exists(ovl):
                    os.unlink(ovl)
            disks = self.kill_round(rng, actions, limit)
            outcome = []
            self.check_disks(disks, outcome)
            made = 0
            for i, d in enumerate(disks):
                ovl = self.path('ovl%d.qcow2' % i)
                if not os.path.exists(ovl):
                    continue
                info = qimg('info', '--output=json', ovl, check=False)
                if info.returncode != 0:
                    continue    # killed while the file was being created
                made += 1
                p = qimg('check', ovl, check=False)
                self.assertIn(p.returncode, (0, 3), p.stdout + p.stderr)
                self.assertEqual(content_hash(ovl), self.hashes[i])
            key = '%d overlays' % made
            tally[key] = tally.get(key, 0) + 1
        print('# external snapshot outcomes: %s' % tally, flush=True)


if __name__ == '__main__':
    xtest.main()
