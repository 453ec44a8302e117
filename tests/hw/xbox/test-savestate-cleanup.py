#!/usr/bin/env python3
"""test-savestate-cleanup: the start's clean-up of unfinished save states
(migration/savestate.c, savestate_cleanup) removes only saves that never
finished, never a whole one whose VM state moved below an overlay.

- A save state 'a' over two qcow2 disks (the VM state on the first), then
  blockdev-snapshot-sync of that disk alone onto an overlay: the first
  disk's active layer no longer has 'a', the second has it without VM
  state but with the machine's clock.  A restart on the overlay must not
  take it for an unfinished save: 'a' stays on both images, and a start
  on the base images lists it (info snapshots, x-query-save-state) and
  loads it (-loadvm a) to the frame and hash it recorded.
- Truly unfinished saves are still removed at start: a tag on the second
  disk only, without a VM state on any disk's backing chain (what a kill
  between the listings leaves), goes - with and without the overlay; and
  snapshot-save jobs SIGKILLed right after the command leave, after a
  restart, each tag whole or absent.
"""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..',
                                'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
DISC = os.path.join(xtest.BUILD, 'guest', 'disc.iso')
HD0, HD1 = 'ide0-hd0', 'ide1-hd0'


def text(out):
    return out.decode() if isinstance(out, bytes) else out


def snaps(image):
    """{tag: vm state size text} of an image, from qemu-img."""
    out = text(xtest.run(['qemu-img', 'snapshot', '-l', '-U',
                          image]).stdout)
    got = {}
    for line in out.splitlines():
        m = re.match(r'^\d+\s+(\S+)\s+(\d+(?:\.\d+)? ?[KMGT]?i?B)\s', line)
        if m:
            got[m.group(1)] = m.group(2)
    return got


def has_vm(size):
    return not re.match(r'^0(\.0+)? ?B$', size)


class Cleanup(xtest.TmpDirTestCase):

    def setUp(self):
        super().setUp()
        self.hd = self.path('hd.qcow2')
        self.hd2 = self.path('hd2.qcow2')
        xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', self.hd, '8G'])
        xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', self.hd2,
                   '64M'])
        self.srv = None

    def tearDown(self):
        if self.srv:
            self.srv.stop()
        super().tearDown()

    def start(self, hd=None, extra=()):
        self.srv = qmpclient.Server(
            [SYSTEM, '-machine', 'xbox,seed=1', '-display', 'none',
             '-drive', 'file=%s,format=qcow2,if=ide,index=0' %
             (hd or self.hd),
             '-drive', 'file=%s,format=raw,if=ide,index=1,media=cdrom' % DISC,
             '-drive', 'file=%s,format=qcow2,if=ide,index=2' % self.hd2] +
            list(extra), tmpdir=self.dir)
        self.q = self.srv.client().negotiate()
        return self.q

    def quit(self):
        self.q.cmd('quit')
        rc, out, err = self.srv.stop()
        self.srv = None
        self.assertEqual(rc, 0, err)
        return err

    def frame(self):
        return self.q.cmd('x-query-frame')['return']

    def wait_frame(self, n, timeout=60):
        end = time.monotonic() + timeout
        while self.frame()['frame'] < n:
            self.assertLess(time.monotonic(), end)
            time.sleep(0.02)

    def hmp(self, line):
        return self.q.cmd('human-monitor-command',
                          {'command-line': line})['return']

    def check_clean(self, *images, leaks=False):
        """qemu-img check finds no corruption (leaks: allowed, as after
        a kill - DESIGN rule 2)."""
        for f in images:
            r = xtest.run(['qemu-img', 'check', f], check=False)
            self.assertIn(r.returncode, (0, 3) if leaks else (0,),
                          r.stdout + r.stderr)

    def save_paused(self, tag):
        """Saves tag with the machine stopped at a frame; returns the
        {frame, hash} it shows."""
        stop_at = self.frame()['frame'] + 20
        self.q.cmd('x-frame-stop', {'frame': stop_at})
        self.q.wait_event('STOP', timeout=60)
        want = self.frame()
        self.assertEqual(self.hmp('savevm %s' % tag), '')
        info = self.q.cmd('x-query-save-state', {'tag': tag})['return']
        self.assertEqual((info['frame'], info['frame-hash']),
                         (want['frame'], want['hash']))
        self.q.cmd('cont')
        return want

    def test_state_below_an_overlay_is_kept(self):
        q = self.start()
        self.wait_frame(20)
        want = self.save_paused('a')
        self.wait_frame(want['frame'] + 10)
        # Where the VM state went: the first disk (HMP savevm's choice).
        s1, s2 = snaps(self.hd), snaps(self.hd2)
        self.assertTrue(has_vm(s1['a']), s1)
        self.assertFalse(has_vm(s2['a']), s2)
        # The disk holding the VM state alone moves onto an overlay.
        ov = self.path('hd.ov.qcow2')
        r = q.cmd('blockdev-snapshot-sync', {'device': HD0,
                                             'snapshot-file': ov,
                                             'format': 'qcow2'})
        self.assertEqual(r, {'return': {}})
        self.wait_frame(want['frame'] + 20)
        self.quit()

        # A start on the overlay: 'a' is whole (its VM state is in hd0's
        # backing file), nothing is removed.
        self.start(hd=ov)
        self.wait_frame(5)
        err = self.quit()
        self.assertNotIn('unfinished', err)
        self.assertIn('a', snaps(self.hd2))
        self.assertTrue(has_vm(snaps(self.hd)['a']))
        self.assertNotIn('a', snaps(ov))

        # A start on the base images: listed, and it loads to its frame.
        q = self.start(extra=['-loadvm', 'a', '-S'])
        self.assertEqual(self.frame(), want)
        self.assertIn(' a ', self.hmp('info snapshots'))
        info = q.cmd('x-query-save-state', {'tag': 'a'})['return']
        self.assertEqual((info['frame'], info['frame-hash']),
                         (want['frame'], want['hash']))
        err = self.quit()
        self.assertNotIn('unfinished', err)
        self.check_clean(self.hd, self.hd2, ov)

    def test_unfinished_still_removed(self):
        """Without and with the overlay: a tag with no VM state on any
        disk's chain goes at start; a whole state stays."""
        q = self.start()
        self.wait_frame(10)
        for tag in ('kept', 'torn', 'torn2'):
            self.assertEqual(self.hmp('savevm %s' % tag), '')
        self.quit()
        # What a kill between the two disks' listings leaves behind.
        xtest.run(['qemu-img', 'snapshot', '-d', 'torn', self.hd])
        self.start()
        err = self.quit()
        self.assertIn("removed the unfinished save state 'torn' from '%s'"
                      % HD1, err)
        self.assertNotIn('torn', snaps(self.hd2))
        self.assertIn('kept', snaps(self.hd2))

        # The same below an overlay of the VM state's disk: 'torn2' lacks
        # its VM state in the whole chain, 'kept' has it below.
        xtest.run(['qemu-img', 'snapshot', '-d', 'torn2', self.hd])
        ov = self.path('hd.ov.qcow2')
        xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2',
                   '-b', self.hd, ov])
        self.start(hd=ov)
        err = self.quit()
        self.assertIn("removed the unfinished save state 'torn2' from '%s'"
                      % HD1, err)
        self.assertNotIn("'kept'", err)
        self.assertEqual(sorted(snaps(self.hd2)), ['kept'])
        self.assertEqual(sorted(snaps(self.hd)), ['kept'])
        self.check_clean(self.hd, self.hd2, ov)

    def test_killed_saves(self):
        """snapshot-save jobs SIGKILLed right after the command, at
        growing delays: after a restart every tag is whole or absent."""
        delays = [0, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3]
        partial_seen = 0
        for i, delay in enumerate(delays):
            tag = 'k%d' % i
            q = self.start()
            self.wait_frame(5)
            q.send_raw('{"execute": "snapshot-save", "arguments": '
                       '{"job-id": "j", "tag": "%s", "vmstate": "%s", '
                       '"devices": ["%s", "%s"]}}\n' % (tag, HD0, HD0, HD1))
            time.sleep(delay)
            self.srv.proc.send_signal(signal.SIGKILL)
            self.srv.stop()
            self.srv = None
            s1, s2 = snaps(self.hd), snaps(self.hd2)
            partial_seen += (tag in s2) != (tag in s1)
            self.start()
            err = self.quit()
            s1, s2 = snaps(self.hd), snaps(self.hd2)
            self.assertEqual(tag in s1, tag in s2,
                             'delay %s: %s / %s\n%s' % (delay, s1, s2, err))
            if tag in s1:
                self.assertTrue(has_vm(s1[tag]), s1)
            self.check_clean(self.hd, self.hd2, leaks=True)
        print('# %d of %d kills left a partial tag (removed at start)' %
              (partial_seen, len(delays)))


if __name__ == '__main__':
    xtest.main()
