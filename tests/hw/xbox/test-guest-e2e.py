#!/usr/bin/env python3
"""test-guest-e2e: the console machine end to end, with the reference guest.

Boots the reference guest (build/guest/xboxguest.elf) with build/xblk-system
on a fresh qcow2 hard disk and the built disc, and checks what a player
and a tool can observe: the game saves it writes to the disk (record
format of hw/xbox/guest/README.md), that the real qemu-img finds the
image clean, that a second boot continues the save counter, that runs
are deterministic from the seed (identical frame hashes and disks) while
another seed differs, and the run states over QMP.
"""
import os
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..',
                                'tests', 'pylib'))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
DISC = os.path.join(xtest.BUILD, 'guest', 'disc.iso')
SAVE_BASE = 524288 * 512        # save area: sector 524288 (256 MiB)
SLOT_STRIDE = 1 << 20
SLOTS = 64


def fnv1a(data):
    h = 0x811c9dc5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xffffffff
    return h


def read_image(path, offset, length):
    """Bytes of the guest disk as qemu-io (QEMU's own reader) sees them."""
    p = xtest.run(['qemu-io', '-r', '-f', 'qcow2', '-c',
                   'read -v %d %d' % (offset, length), path])
    out = bytearray()
    for line in p.stdout.splitlines():
        if len(line) > 10 and line[8] == ':':
            hexpart = line[10:10 + 48].split()
            out += bytes(int(x, 16) for x in hexpart)
    assert len(out) == length, (len(out), p.stdout[:200])
    return bytes(out)


def save_record(path, slot):
    """The save record in slot, or None when the slot holds none."""
    sec = read_image(path, SAVE_BASE + slot * SLOT_STRIDE, 512)
    if sec[:4] != b'XSAV' or fnv1a(sec[:508]) != \
            struct.unpack_from('<I', sec, 508)[0]:
        return None
    version, counter, rslot, frame, seed_lo, seed_hi = \
        struct.unpack_from('<IIIIII', sec, 4)
    assert rslot == slot
    return {'version': version, 'counter': counter, 'frame': frame,
            'seed': seed_hi << 32 | seed_lo}


class Machine:
    """xblk-system -machine xbox on a hard disk image and the disc."""

    def __init__(self, test, hd, seed=1, frames=None, extra=(), qmp=False):
        self.dir = test.dir
        argv = [SYSTEM, '-machine', 'xbox,seed=%d' % seed,
                '-drive', 'file=%s,format=qcow2,if=ide,index=0' % hd,
                '-drive', 'file=%s,format=raw,if=ide,index=1,media=cdrom'
                % DISC, '-display', 'none', '-debugcon', 'stdio']
        if frames is not None:
            argv += ['-frames', str(frames)]
        argv += list(extra)
        self.sock = None
        if qmp:
            self.sock = test.path('qmp-%d.sock' % time.monotonic_ns())
            argv += ['-qmp', 'unix:%s,server=on,wait=off' % self.sock]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.qmp = qmpclient.QMPClient(path=self.sock).negotiate() \
            if qmp else None

    def wait(self, timeout=120):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def quit(self):
        r = self.qmp.cmd('quit')
        assert r == {'return': {}}, r
        return self.wait()

    def frame_hash(self, frame):
        """Stops at the end of frame, returns the frame hash there."""
        r = self.qmp.cmd('x-frame-stop', {'frame': frame})
        assert r == {'return': {}}, r
        self.qmp.wait_event('STOP', timeout=120)
        r = self.qmp.cmd('x-query-frame')
        assert r['return']['frame'] == frame, r
        return r['return']['hash']


class MachineTest(xtest.TmpDirTestCase):
    def new_disk(self, name='hd.qcow2'):
        path = self.path(name)
        xtest.run([xtest.binary('xblk-img'), 'create', '-q', '-f', 'qcow2',
                   path, '8G'])
        return path

    def qemu_check(self, path):
        p = xtest.run(['qemu-img', 'check', path], check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_boot_saves_and_continue(self):
        hd = self.new_disk()
        rc, out, err = Machine(self, hd, seed=7, frames=600).wait()
        self.assertEqual(rc, 0, err)
        self.assertIn('save: no valid save found, new game', out)
        for n in (1, 2, 3):
            self.assertIn('save %d written' % n, out)
        self.qemu_check(hd)
        recs = [save_record(hd, s) for s in (1, 2, 3)]
        self.assertEqual([r['counter'] for r in recs], [1, 2, 3])
        self.assertEqual([r['frame'] for r in recs], [180, 360, 540])
        self.assertTrue(all(r['seed'] == 7 for r in recs))
        self.assertIsNone(save_record(hd, 4))
        # qcow2 allocated the save slots' clusters: the image grew.
        info = xtest.run(['qemu-img', 'map', '--output=json', hd]).stdout
        self.assertIn('"data": true', info)

        rc, out, err = Machine(self, hd, seed=7, frames=600).wait()
        self.assertEqual(rc, 0, err)
        self.assertNotIn('no valid save found', out)
        self.assertIn('save 4 written', out)
        self.assertEqual(save_record(hd, 4)['counter'], 4)
        self.assertGreater(save_record(hd, 4)['frame'], 540)
        self.qemu_check(hd)

    def test_deterministic_from_seed(self):
        hashes, disks = [], []
        for i, seed in enumerate((3, 3, 4)):
            hd = self.new_disk('hd%d.qcow2' % i)
            m = Machine(self, hd, seed=seed, qmp=True)
            hashes.append(m.frame_hash(400))
            rc, out, err = m.quit()
            self.assertEqual(rc, 0, err)
            disks.append(hd)
        self.assertEqual(hashes[0], hashes[1])
        self.assertNotEqual(hashes[0], hashes[2])
        p = xtest.run(['qemu-img', 'compare', disks[0], disks[1]],
                      check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = xtest.run(['qemu-img', 'compare', disks[0], disks[2]],
                      check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        for hd in disks:
            self.qemu_check(hd)

    def test_screendump(self):
        """QMP screendump writes the picture shown: PPM by default, PNG on
        request; same seed and frame, same picture."""
        pictures = []
        for i in range(2):
            m = Machine(self, self.new_disk('s%d.qcow2' % i), seed=5,
                        qmp=True)
            m.frame_hash(300)
            ppm, png = self.path('f%d.ppm' % i), self.path('f%d.png' % i)
            self.assertEqual(m.qmp.cmd('screendump', {'filename': ppm}),
                             {'return': {}})
            self.assertEqual(m.qmp.cmd('screendump', {'filename': png,
                                                      'format': 'png'}),
                             {'return': {}})
            r = m.qmp.cmd('screendump', {'filename': self.path('no/x.ppm')})
            self.assertEqual(r['error']['class'], 'GenericError')
            r = m.qmp.cmd('screendump', {'filename': ppm, 'device': 'vga'})
            self.assertEqual(r['error'], {'class': 'DeviceNotFound',
                                          'desc': "Device 'vga' not found"})
            m.quit()
            with open(ppm, 'rb') as f:
                data = f.read()
            header = b'P6\n640 480\n255\n'
            self.assertTrue(data.startswith(header))
            self.assertEqual(len(data), len(header) + 640 * 480 * 3)
            # A drawn frame, not a blank one: many distinct colours.
            pixels = {data[j:j + 3] for j in range(len(header), len(data),
                                                   3 * 97)}
            self.assertGreater(len(pixels), 8)
            with open(png, 'rb') as f:
                self.assertEqual(f.read(8), b'\x89PNG\r\n\x1a\n')
            pictures.append(data)
        self.assertEqual(pictures[0], pictures[1])

    def test_run_states(self):
        hd = self.new_disk()
        m = Machine(self, hd, qmp=True, extra=['-S'])
        q = m.qmp
        self.assertEqual(q.cmd('query-status')['return'],
                         {'status': 'prelaunch', 'singlestep': False,
                          'running': False})
        self.assertEqual(q.cmd('x-query-frame')['return']['frame'], 0)
        self.assertEqual(q.cmd('cont'), {'return': {}})
        q.wait_event('RESUME')
        self.assertEqual(q.cmd('query-status')['return']['status'],
                         'running')
        # The guest runs: frames advance on their own.
        deadline = time.monotonic() + 30
        while q.cmd('x-query-frame')['return']['frame'] < 30:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        self.assertEqual(q.cmd('stop'), {'return': {}})
        q.wait_event('STOP')
        f1 = q.cmd('x-query-frame')['return']['frame']
        time.sleep(0.2)
        self.assertEqual(q.cmd('x-query-frame')['return']['frame'], f1)
        self.assertEqual(q.cmd('query-status')['return']['status'],
                         'paused')
        self.assertEqual(q.cmd('system_reset'), {'return': {}})
        q.wait_event('RESET')
        self.assertEqual(q.cmd('cont'), {'return': {}})
        q.wait_event('RESUME')
        # The frame counter restarted with the reset; by frame 60 the
        # guest has booted (it prints first thing).
        deadline = time.monotonic() + 30
        while q.cmd('x-query-frame')['return']['frame'] < 60:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        rc, out, err = m.quit()
        self.assertEqual(rc, 0, err)
        # The guest booted twice: once at power-on, once after the reset.
        self.assertEqual(out.count('xboxguest: boot\n'), 2, out)
        self.qemu_check(hd)

    def test_guest_power_off(self):
        """The pad's back button makes the game power off: SHUTDOWN with
        QEMU's reason guest-shutdown, exit status 0."""
        hd = self.new_disk()
        script = self.path('input.txt')
        with open(script, 'w') as f:
            f.write('# frame buttons\n100 right+a\n250 back\n')
        m = Machine(self, hd, qmp=True, extra=['-input-script', script])
        ev = m.qmp.wait_event('SHUTDOWN', timeout=60)
        self.assertEqual(ev['data'], {'guest': True,
                                      'reason': 'guest-shutdown'})
        rc, out, err = m.wait()
        self.assertEqual(rc, 0, err)
        self.qemu_check(hd)

    def test_locked_disk_unlocked_by_guest(self):
        hd = self.new_disk()
        argv = [SYSTEM, '-machine', 'xbox,seed=1,hdd-password=s3cret',
                '-drive', 'file=%s,format=qcow2,if=ide,index=0,locked=on'
                % hd, '-drive', 'file=%s,format=raw,if=ide,index=1,'
                'media=cdrom' % DISC, '-display', 'none', '-debugcon',
                'stdio', '-frames', '200']
        p = xtest.run(argv, timeout=120)
        self.assertIn('security locked', p.stdout)
        self.assertIn('hdd: unlocked', p.stdout)
        self.assertIn('save 1 written', p.stdout)

    def faulty_disk_machine(self, werror):
        """The HDD behind blkdebug: the first write to its file fails with
        EIO once -- the guest's first game save."""
        hd = self.new_disk()
        blockdev = ('driver=qcow2,node-name=hd,file.driver=blkdebug,'
                    'file.image.driver=file,file.image.filename=%s,'
                    'file.inject.0.op=write,file.inject.0.nth=1,'
                    'file.inject.0.errno=5' % hd)
        argv = [SYSTEM, '-machine', 'xbox,seed=1', '-blockdev', blockdev,
                '-device', 'ide-hd,drive=hd,bus=ide.0,unit=0,werror=%s'
                % werror, '-drive', 'file=%s,format=raw,if=ide,index=1,'
                'media=cdrom' % DISC, '-display', 'none', '-debugcon',
                'stdio', '-frames', '400']
        return hd, qmpclient.Server(argv, tmpdir=self.dir)

    def test_werror_stop_then_cont_retries(self):
        hd, srv = self.faulty_disk_machine('stop')
        q = srv.client().negotiate()
        ev = q.wait_event('BLOCK_IO_ERROR', timeout=60)
        self.assertEqual(ev['data'], {'device': 'ide0-hd0', 'node-name': 'hd',
                                      'operation': 'write', 'action': 'stop',
                                      'reason': 'Input/output error'})
        q.wait_event('STOP')
        self.assertEqual(q.cmd('query-status')['return']['status'],
                         'io-error')
        self.assertEqual(q.cmd('cont'), {'return': {}})
        q.wait_event('SHUTDOWN', timeout=60)     # -frames 400 reached
        rc, out, err = srv.stop()
        self.assertEqual(rc, 0, err)
        # The retried write went through: the guest never saw an error.
        self.assertIn('save 1 written', out)
        self.assertIn('save 2 written', out)
        self.assertNotIn('failed', out)
        self.assertEqual(save_record(hd, 1)['counter'], 1)
        self.qemu_check(hd)

    def test_werror_report_fails_the_guest_write(self):
        hd, srv = self.faulty_disk_machine('report')
        q = srv.client().negotiate()
        ev = q.wait_event('BLOCK_IO_ERROR', timeout=60)
        self.assertEqual(ev['data']['action'], 'report')
        q.wait_event('SHUTDOWN', timeout=60)
        rc, out, err = srv.stop()
        self.assertEqual(rc, 0, err)
        self.assertIn('save 1 failed', out)
        # The next save point reuses the number, and this time it lands.
        self.assertIn('save 1 written', out)
        self.qemu_check(hd)

    def test_bad_options(self):
        cases = [
            (['-machine', 'xbox', '-m', '100'], '-m'),
            (['-machine', 'xbox', '-kernel', self.path('missing.elf')],
             'missing.elf'),
            (['-machine', 'xbox', '-drive', 'file=%s,if=ide,index=7'
              % self.path('x')], 'index'),
        ]
        for args, word in cases:
            p = xtest.run([SYSTEM, '-display', 'none'] + args, check=False)
            self.assertEqual(p.returncode, 1, (args, p.stderr))
            self.assertIn(word, p.stderr)


if __name__ == '__main__':
    xtest.main()
