#!/usr/bin/env python3
"""test-xblk-system: the host program's machine options and QMP commands.

Runs build/xblk-system -machine xbox on the small test guests
(tests/hw/xbox/guests/) and checks the command line (-m, -kernel, -drive
with QEMU's default IDs, -blockdev with -device, -debugcon, -frames, and
clear errors for bad values), the QMP side of the machine (x-frame-stop,
x-query-frame with identical hashes across processes, system_reset and
RESET, GUEST_PANICKED and the guest-panicked state, SHUTDOWN with reason
guest-shutdown) and that -machine none behaves as before.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')


def guest(name):
    return os.path.join(xtest.BUILD, 'tests', 'hw', 'xbox', 'guests', name)


class XboxSystemTest(xtest.TmpDirTestCase):
    def start(self, *args, qmp=True):
        argv = [SYSTEM, '-machine', 'xbox', '-display', 'none'] + list(args)
        sock = None
        if qmp:
            sock = self.path('qmp-%d.sock' % time.monotonic_ns())
            argv += ['-qmp', 'unix:%s,server=on,wait=off' % sock]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.reap, proc)
        q = qmpclient.QMPClient(path=sock).negotiate() if qmp else None
        return proc, q

    @staticmethod
    def reap(proc):
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    def quit(self, proc, q):
        self.assertEqual(q.cmd('quit'), {'return': {}})
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)
        return out, err

    def fails(self, *args):
        p = xtest.run([SYSTEM] + list(args), check=False, timeout=60)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        return p.stderr

    def test_bad_options(self):
        k = ['-kernel', guest('loop.elf')]
        self.assertIn('64 or 128 MiB',
                      self.fails('-machine', 'xbox', '-m', '256', *k))
        self.assertIn('not a size', self.fails('-machine', 'xbox', '-m',
                                               'lots', *k))
        self.assertIn('/nonexistent.elf', self.fails(
            '-machine', 'xbox', '-kernel', '/nonexistent.elf'))
        bad = self.path('bad.elf')
        with open(bad, 'wb') as f:
            f.write(b'\x7fELF' + b'\x02' * 60)
        self.assertIn('only 32-bit ELF', self.fails('-machine', 'xbox',
                                                    '-kernel', bad))
        self.assertIn('unsupported machine type',
                      self.fails('-machine', 'pc', *k))
        self.assertIn("invalid parameter 'speed'",
                      self.fails('-machine', 'xbox,speed=9', *k))
        self.assertIn('longer than 32 bytes', self.fails(
            '-machine', 'xbox,hdd-password=' + 'x' * 33, *k))
        self.assertIn('need -machine xbox', self.fails(
            '-machine', 'none', '-kernel', guest('loop.elf')))
        disk = self.path('d.raw')
        with open(disk, 'wb') as f:
            f.truncate(1 << 20)
        self.assertIn('index', self.fails(
            '-machine', 'xbox', *k, '-drive',
            'file=%s,format=raw,index=4' % disk))
        self.assertIn('already in use', self.fails(
            '-machine', 'xbox', *k,
            '-drive', 'file=%s,format=raw,index=0' % disk,
            '-drive', 'file=%s,format=raw,index=0,readonly=on' % disk))
        self.assertIn("invalid write error action", self.fails(
            '-machine', 'xbox', *k,
            '-drive', 'file=%s,format=raw,werror=panic' % disk))
        self.assertIn("can't find value 'nosuch'", self.fails(
            '-machine', 'xbox', *k, '-device', 'ide-hd,drive=nosuch'))
        self.assertIn('file:PATH', self.fails(
            '-machine', 'xbox', *k, '-debugcon', 'tcp:1234'))

    def test_machine_none_unchanged(self):
        sock = self.path('none.sock')
        proc = subprocess.Popen([SYSTEM, '-machine', 'none', '-qmp',
                                 'unix:%s,server=on,wait=off' % sock],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.reap, proc)
        q = qmpclient.QMPClient(path=sock).negotiate()
        r = q.cmd('x-query-frame')
        self.assertIn('needs a machine', r['error']['desc'])
        r = q.cmd('system_reset')
        self.assertIn('needs a machine', r['error']['desc'])
        self.assertEqual(q.cmd('query-status')['return']['status'],
                         'running')
        self.quit(proc, q)

    def test_drives_and_devices(self):
        hd = self.path('hd.raw')
        cd = self.path('cd.iso')
        hd2 = self.path('hd2.qcow2')
        for path, size in ((hd, 8 << 20), (cd, 2 << 20)):
            with open(path, 'wb') as f:
                f.truncate(size)
        xtest.run([xtest.binary('xblk-img'), 'create', '-q', '-f', 'qcow2',
                   hd2, '16M'])
        p, q = self.start(
            '-S', '-m', '128M', '-kernel', guest('loop.elf'),
            '-drive', 'file=%s,format=raw,if=ide,index=0' % hd,
            '-drive', 'file=%s,format=raw,media=cdrom,index=1' % cd,
            '-blockdev', 'driver=qcow2,node-name=disk2,file.driver=file,'
                         'file.filename=%s' % hd2,
            '-device', 'ide-hd,drive=disk2,bus=ide.1,unit=0,serial=S1,'
                       'model=M1',
            '-device', 'ide-cd,bus=ide.1,unit=1,id=emptycd')
        names = {b['device']: b for b in q.cmd('query-block')['return']}
        self.assertIn('ide0-hd0', names)
        self.assertIn('ide0-cd1', names)
        self.assertIn('ide1-hd0', names)
        # An empty CD drive has a backend without a medium, as in QEMU.
        self.assertIn('emptycd', names)
        self.assertNotIn('inserted', names['emptycd'])
        self.assertEqual(names['emptycd']['qdev'], 'emptycd')
        self.assertTrue(names['ide0-cd1']['inserted']['ro'])
        self.assertEqual(names['ide1-hd0']['inserted']['node-name'],
                         'disk2')
        self.assertEqual(q.cmd('query-status')['return']['status'],
                         'prelaunch')
        self.quit(p, q)

    def frame_hash(self, q, frame):
        r = q.cmd('x-frame-stop', {'frame': frame})
        self.assertEqual(r, {'return': {}})
        if q.cmd('query-status')['return']['status'] != 'running':
            self.assertEqual(q.cmd('cont'), {'return': {}})
        q.wait_event('STOP', timeout=60)
        r = q.cmd('x-query-frame')['return']
        self.assertEqual(r['frame'], frame)
        self.assertEqual(len(r['hash']), 32)
        return r['hash']

    def test_frames_and_reset(self):
        hashes = []
        for _ in range(2):
            p, q = self.start('-S', '-kernel', guest('frames.elf'))
            h = self.frame_hash(q, 12)
            hashes.append(h)
            self.assertEqual(q.cmd('query-status')['return']['status'],
                             'paused')
            r = q.cmd('x-frame-stop', {'frame': 5})
            self.assertIn('already ended', r['error']['desc'])
            # Running: the frame counter without a hash.
            self.assertEqual(q.cmd('cont'), {'return': {}})
            self.assertNotIn('hash', q.cmd('x-query-frame')['return'])
            self.assertEqual(q.cmd('stop'), {'return': {}})
            q.wait_event('STOP')
            # system_reset from paused: RESET, prelaunch, frame 0; the
            # power-on run replays exactly.
            self.assertEqual(q.cmd('system_reset'), {'return': {}})
            ev = q.wait_event('RESET')
            self.assertEqual(ev['data'], {'guest': False,
                                          'reason': 'host-qmp-system-reset'})
            self.assertEqual(q.cmd('query-status')['return']['status'],
                             'prelaunch')
            self.assertEqual(q.cmd('x-query-frame')['return']['frame'], 0)
            self.assertEqual(self.frame_hash(q, 12), h)
            self.quit(p, q)
        self.assertEqual(hashes[0], hashes[1])

    def test_frames_limit_and_debugcon(self):
        log = self.path('con.txt')
        p, _ = self.start('-kernel', guest('timer.elf'), '-frames', '30',
                          '-debugcon', 'file:%s' % log, qmp=False)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertTrue(os.path.exists(log))

    def test_guest_panicked(self):
        p, q = self.start('-S', '-kernel', guest('exc.elf'))
        self.assertEqual(q.cmd('cont'), {'return': {}})
        ev = q.wait_event('GUEST_PANICKED', timeout=30)
        self.assertEqual(ev['data'], {'action': 'pause'})
        q.wait_event('STOP')
        self.assertEqual(q.cmd('query-status')['return'],
                         {'status': 'guest-panicked', 'singlestep': False,
                          'running': False})
        out, err = self.quit(p, q)
        self.assertIn('gate of vector 49 is not present', err)

    def test_guest_power_off(self):
        p, q = self.start('-S', '-kernel', guest('poweroff.elf'))
        self.assertEqual(q.cmd('cont'), {'return': {}})
        ev = q.wait_event('SHUTDOWN', timeout=30)
        self.assertEqual(ev['data'], {'guest': True,
                                      'reason': 'guest-shutdown'})
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)


if __name__ == '__main__':
    xtest.main()
