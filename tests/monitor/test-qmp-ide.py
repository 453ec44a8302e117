#!/usr/bin/env python3
"""test-qmp-ide: the monitor side of the machine's IDE drives.

- Differential (skipped without qemu-system-x86_64): one script of
  query-block, HMP info block / eject / change / info status, eject,
  blockdev-open-tray / -close-tray, blockdev-remove-medium / -insert-medium
  and blockdev-change-medium (good and bad files, read-only modes, the
  hard disk, unknown devices), and block commands by device name
  (internal snapshots, resize, bitmaps, backups and snapshots of an empty
  drive: "has no medium") runs against QEMU 7.2
  (`-M pc -nodefaults -S`, a qcow2 hard disk and a raw DVD) and against
  xblk-system -machine xbox -S with the same drives.  Error classes and
  texts, HMP text, the DEVICE_TRAY_MOVED events (data included) and the
  reply shapes must be the same once device paths and node names are
  normalized.
- xblk only: a test guest that locks the tray, opens and closes it with
  START STOP UNIT (events from the guest, QEMU's locked-tray semantics);
  empty DVD drives of -drive and -device; the reference guest running on
  while its disc is ejected and changed; io-status after a werror=stop
  error; block commands by device name; -machine none; -version.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

QEMU = shutil.which('qemu-system-x86_64')
SYSTEM = xtest.binary('xblk-system')
DISC = os.path.join(xtest.BUILD, 'guest', 'disc.iso')
TRAY_GUEST = os.path.join(xtest.BUILD, 'tests', 'hw', 'xbox', 'guests',
                          'tray.elf')
LOCKED = ("Device 'ide0-cd1' is locked and force was not specified, wait "
          "for tray to open and try again")


def shape(v):
    """Keys and JSON types, recursively."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(x) for x in v]
    if isinstance(v, bool):
        return 'bool'
    if isinstance(v, (int, float)):
        return 'number'
    if v is None:
        return 'null'
    return 'str'


class Norm:
    """Replaces what legitimately differs between the two programs: the
    folder of the images, device paths, generated node names."""

    def __init__(self, folder):
        self.folder = folder
        self.paths = {}

    def learn(self, blocks):
        for b in blocks:
            self.paths[b['qdev']] = '<%s>' % b['device']

    def text(self, s):
        s = s.replace(self.folder + '/', '')
        for p, name in self.paths.items():
            s = s.replace(p, name)
        return re.sub(r'#block\d+', '#block', s)

    def value(self, v):
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, str):
            return self.text(v)
        return v


def block_summary(blocks):
    """What query-block must say alike for each drive."""
    out = []
    for b in blocks:
        d = {k: b.get(k) for k in ('device', 'qdev', 'type', 'removable',
                                   'locked', 'tray_open', 'io-status')}
        d['keys'] = sorted(b)
        ins = b.get('inserted')
        if ins:
            d['inserted'] = {k: ins[k] for k in ('ro', 'drv', 'file',
                                                 'backing_file_depth',
                                                 'encrypted')}
            d['inserted']['cache'] = ins['cache']
            d['inserted']['keys'] = sorted(ins)
            d['inserted']['image'] = sorted(ins['image'])
        out.append(d)
    return out


def media_script(disc, hd_img):
    """(command, arguments) pairs; CD and HD stand for the drives' device
    paths, filled in per program."""
    nope = disc + '.missing'
    hmp = lambda line: ('human-monitor-command', {'command-line': line})
    return [
        ('query-block', None),
        hmp('info block'),
        hmp('info block ide0-cd1'),
        hmp('info block nope'),
        hmp('info status'),
        ('eject', {'device': 'ide0-cd1'}),
        ('query-block', None),
        hmp('info block'),
        ('eject', {'device': 'ide0-cd1'}),
        ('blockdev-close-tray', {'device': 'ide0-cd1'}),
        ('blockdev-close-tray', {'device': 'ide0-cd1'}),
        ('query-block', None),
        hmp('info block'),
        ('blockdev-change-medium', {'device': 'ide0-cd1', 'filename': disc,
                                    'format': 'raw'}),
        ('query-block', None),
        ('blockdev-change-medium', {'device': 'ide0-cd1', 'filename': nope,
                                    'format': 'raw'}),
        ('blockdev-change-medium', {'device': 'ide0-cd1', 'filename': nope}),
        ('blockdev-change-medium', {'device': 'ide0-cd1', 'filename': disc,
                                    'format': 'bogus'}),
        ('blockdev-change-medium', {'device': 'ide0-cd1', 'filename': disc,
                                    'read-only-mode': 'bogus'}),
        ('blockdev-change-medium', {'device': 'ide0-hd0', 'filename': disc,
                                    'format': 'raw'}),
        ('blockdev-change-medium', {'device': 'ide0-hd0', 'filename': nope}),
        ('blockdev-change-medium', {'device': 'nope', 'filename': disc}),
        ('blockdev-change-medium', {'id': 'nope', 'filename': disc}),
        ('blockdev-change-medium', {'filename': disc}),
        ('blockdev-change-medium', {'device': 'ide0-cd1', 'id': 'CD',
                                    'filename': disc}),
        ('eject', {'device': 'ide0-hd0'}),
        ('eject', {'id': 'HD'}),
        ('eject', {'device': 'nope'}),
        ('eject', {'id': 'nope'}),
        ('eject', {}),
        ('blockdev-open-tray', {'id': 'nope'}),
        ('blockdev-open-tray', {'device': 'nope'}),
        ('blockdev-open-tray', {'device': 'ide0-hd0'}),
        ('blockdev-close-tray', {'id': 'HD'}),
        ('blockdev-close-tray', {}),
        ('blockdev-open-tray', {'id': 'CD'}),
        ('blockdev-open-tray', {'id': 'CD'}),
        ('query-block', None),
        hmp('info block'),
        ('blockdev-remove-medium', {'id': 'HD'}),
        ('blockdev-remove-medium', {'id': 'nope'}),
        ('blockdev-remove-medium', {'device': 'ide0-cd1'}),
        ('blockdev-remove-medium', {'id': 'CD'}),
        ('blockdev-remove-medium', {'id': 'CD'}),
        ('query-block', None),
        # Block commands by device name, on the disk and the empty drive.
        ('blockdev-snapshot-internal-sync', {'device': 'ide0-hd0',
                                             'name': 's1'}),
        ('blockdev-snapshot-internal-sync', {'device': 'ide0-hd0',
                                             'name': 's1'}),
        ('blockdev-snapshot-delete-internal-sync', {'device': 'ide0-hd0',
                                                    'name': 's1'}),
        ('block_resize', {'device': 'ide0-hd0', 'size': 128 << 20}),
        ('query-named-block-nodes', {'flat': True}),
        ('block-dirty-bitmap-add', {'node': 'ide0-hd0', 'name': 'b0'}),
        ('block-dirty-bitmap-remove', {'node': 'ide0-hd0', 'name': 'b0'}),
        ('blockdev-snapshot-internal-sync', {'device': 'ide0-cd1',
                                             'name': 's1'}),
        ('blockdev-snapshot-delete-internal-sync', {'device': 'ide0-cd1',
                                                    'name': 's1'}),
        ('block-dirty-bitmap-add', {'node': 'ide0-cd1', 'name': 'b0'}),
        ('blockdev-snapshot-sync', {'device': 'ide0-cd1',
                                    'snapshot-file': hd_img + '.ov'}),
        ('blockdev-backup', {'device': 'ide0-cd1', 'target': 'ide0-hd0',
                             'sync': 'full'}),
        ('transaction', {'actions': [
            {'type': 'blockdev-snapshot-internal-sync',
             'data': {'device': 'ide0-cd1', 'name': 's1'}}]}),
        ('block_resize', {'device': 'ide0-cd1', 'size': 1 << 20}),
        ('blockdev-insert-medium', {'id': 'CD', 'node-name': 'm1'}),
        ('blockdev-add', {'driver': 'raw', 'node-name': 'm1',
                          'read-only': True,
                          'file': {'driver': 'file', 'filename': disc}}),
        ('blockdev-insert-medium', {'id': 'HD', 'node-name': 'm1'}),
        ('blockdev-insert-medium', {'id': 'nope', 'node-name': 'm1'}),
        ('blockdev-insert-medium', {'id': 'CD', 'node-name': 'm1'}),
        ('blockdev-insert-medium', {'id': 'CD', 'node-name': 'm1'}),
        ('blockdev-del', {'node-name': 'm1'}),
        ('query-block', None),
        ('blockdev-close-tray', {'id': 'CD'}),
        ('blockdev-remove-medium', {'id': 'CD'}),
        ('blockdev-insert-medium', {'id': 'CD', 'node-name': 'm1'}),
        ('blockdev-open-tray', {'id': 'CD'}),
        ('blockdev-remove-medium', {'id': 'CD'}),
        ('blockdev-del', {'node-name': 'm1'}),
        ('blockdev-change-medium', {'id': 'CD', 'filename': disc,
                                    'read-only-mode': 'read-write'}),
        ('query-block', None),
        ('blockdev-change-medium', {'id': 'CD', 'filename': disc,
                                    'read-only-mode': 'retain'}),
        ('query-block', None),
        ('blockdev-change-medium', {'id': 'CD', 'filename': disc,
                                    'format': 'raw',
                                    'read-only-mode': 'read-only',
                                    'force': True}),
        ('query-block', None),
        hmp('eject ide0-cd1'),
        hmp('eject ide0-cd1'),
        hmp('eject -f ide0-cd1'),
        hmp('eject ide0-hd0'),
        hmp('eject nope'),
        hmp('eject'),
        hmp('eject ide0-cd1 extra'),
        hmp('change ide0-cd1 %s' % disc),
        hmp('change ide0-cd1 %s raw' % disc),
        hmp('change ide0-cd1 -f %s raw read-only' % disc),
        hmp('change ide0-cd1 %s raw' % nope),
        hmp('change ide0-cd1 %s raw bogus' % disc),
        hmp('change nope %s' % disc),
        hmp('change ide0-hd0 %s raw' % disc),
        hmp('change'),
        hmp('change ide0-cd1'),
        hmp('help eject'),
        hmp('help change'),
        ('stop', None),
        hmp('info status'),
        ('query-block', None),
        hmp('info block'),
    ]


class IdeDifferential(xtest.TmpDirTestCase):
    maxDiff = None

    def run_script(self, name, argv_prefix, hd_img, disc):
        folder = os.path.dirname(hd_img)
        srv = qmpclient.Server(argv_prefix + [
            '-display', 'none', '-S',
            '-drive', 'file=%s,format=qcow2,if=ide,index=0' % hd_img,
            '-drive', 'file=%s,format=raw,if=ide,index=1,media=cdrom' % disc],
            tmpdir=folder)
        results = []
        try:
            c = srv.client().negotiate()
            blocks = c.cmd('query-block')['return']
            ids = {b['device']: b['qdev'] for b in blocks}
            norm = Norm(folder)
            norm.learn(blocks)
            ids = {'CD': ids['ide0-cd1'], 'HD': ids['ide0-hd0']}
            for cmd, args in media_script(disc, hd_img):
                if args:
                    args = {k: ids.get(v, v) if k == 'id' else v
                            for k, v in args.items()}
                r = c.cmd(cmd, args)
                time.sleep(0.02)    # events the command caused come first
                events = [(e['event'], norm.value(e.get('data')))
                          for e in c.events]
                c.events.clear()
                if 'error' in r:
                    reply = {'class': r['error']['class'],
                             'desc': norm.text(r['error']['desc'])}
                elif cmd == 'query-block':
                    reply = norm.value(block_summary(r['return']))
                elif cmd == 'human-monitor-command':
                    reply = norm.text(r['return'])
                else:
                    reply = shape(r)
                results.append(((cmd, args), reply, events))
            c.cmd('quit')
        finally:
            srv.stop()
        return results

    def test_same_as_qemu(self):
        if not QEMU:
            self.skipTest('qemu-system-x86_64 not installed')
        runs = []
        for who, argv in (('q', [QEMU, '-M', 'pc', '-nodefaults']),
                          ('x', [SYSTEM, '-machine', 'xbox'])):
            d = self.path(who)
            os.makedirs(d)
            hd = os.path.join(d, 'hd.qcow2')
            xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', hd, '64M'])
            disc = os.path.join(d, 'disc.iso')
            shutil.copyfile(DISC, disc)
            runs.append(self.run_script(who, argv, hd, disc))
        q, x = runs
        self.assertEqual(len(q), len(x))
        for (qc, qr, qe), (xc, xr, xe) in zip(q, x):
            self.assertEqual(xr, qr, 'reply to %s' % (xc,))
            self.assertEqual(xe, qe, 'events of %s' % (xc,))
        # The script did what it is meant to: errors, events and HMP text.
        events = [e for _, _, evs in x for e in evs]
        self.assertGreater(len(events), 10)
        self.assertTrue(all(e[0] == 'DEVICE_TRAY_MOVED' and
                            sorted(e[1]) == ['device', 'id', 'tray-open']
                            for e in events), events)
        descs = [r['desc'] for _, r, _ in x if isinstance(r, dict) and
                 'desc' in r]
        for want in ("Device 'ide0-hd0' is not removable",
                     "Device 'nope' not found",
                     "Need exactly one of 'device' and 'id'",
                     "Tray of device '<ide0-cd1>' is not open",
                     "Device is not removable",
                     "Node 'm1' is already in use",
                     "Unknown driver 'bogus'"):
            self.assertIn(want, descs)
        self.assertTrue(any('Could not open' in d for d in descs), descs)


class XblkMachine:
    """xblk-system -machine xbox with a QMP client."""

    def __init__(self, test, *args, debugcon=None, machine='xbox'):
        self.dir = test.dir
        argv = [SYSTEM, '-machine', machine, '-display', 'none'] + list(args)
        if debugcon:
            argv += ['-debugcon', 'file:' + debugcon]
        self.srv = qmpclient.Server(argv, tmpdir=test.dir)
        test.addCleanup(self.srv.stop)
        self.q = self.srv.client().negotiate()

    def cmd(self, name, args=None):
        return self.q.cmd(name, args)

    def ok(self, name, args=None):
        r = self.q.cmd(name, args)
        assert r == {'return': {}}, (name, args, r)

    def err(self, name, args=None):
        r = self.q.cmd(name, args)
        assert 'error' in r, (name, args, r)
        return r['error']

    def block(self, device):
        for b in self.q.cmd('query-block')['return']:
            if b['device'] == device:
                return b
        raise KeyError(device)

    def hmp(self, line):
        return self.q.cmd('human-monitor-command',
                          {'command-line': line})['return']

    def tray_events(self):
        time.sleep(0.05)
        evs = [e['data'] for e in self.q.events
               if e['event'] == 'DEVICE_TRAY_MOVED']
        self.q.events = [e for e in self.q.events
                         if e['event'] != 'DEVICE_TRAY_MOVED']
        return evs

    def run_to_frame(self, frame):
        self.ok('x-frame-stop', {'frame': frame})
        if self.cmd('query-status')['return']['status'] != 'running':
            self.ok('cont')
        self.q.wait_event('STOP', timeout=60)

    def quit(self):
        self.ok('quit')
        rc, out, err = self.srv.stop(timeout=60)
        assert rc == 0, (rc, err)
        return out, err


class IdeXblk(xtest.TmpDirTestCase):
    maxDiff = None

    def new_disk(self, name='hd.qcow2', size='64M'):
        path = self.path(name)
        xtest.run([xtest.binary('xblk-img'), 'create', '-q', '-f', 'qcow2',
                   path, size])
        return path

    def drives(self, hd, disc=DISC):
        return ['-drive', 'file=%s,format=qcow2,if=ide,index=0' % hd,
                '-drive', 'file=%s,format=raw,if=ide,index=1,media=cdrom'
                % disc]

    def test_guest_locks_and_moves_the_tray(self):
        """The tray guest: PREVENT at once, eject at A (frame 60), load and
        lock again at B (frame 120)."""
        script = self.path('input.txt')
        with open(script, 'w') as f:
            f.write('60 a\n120 b\n')
        con = self.path('debugcon.txt')
        m = XblkMachine(self, '-S', '-kernel', TRAY_GUEST, '-input-script',
                        script, *self.drives(self.new_disk()),
                        debugcon=con)
        m.run_to_frame(30)
        with open(con) as f:
            self.assertEqual(f.read(), 'L\n')
        cd = m.block('ide0-cd1')
        self.assertEqual((cd['locked'], cd['tray_open'], 'inserted' in cd),
                         (True, False, True))
        self.assertIn('Removable device: locked, tray closed',
                      m.hmp('info block'))
        # QEMU's locked tray: eject and change fail, open-tray asks the
        # guest and succeeds; the tray stays shut, no event.
        self.assertEqual(m.err('eject', {'device': 'ide0-cd1'}),
                         {'class': 'GenericError', 'desc': LOCKED})
        self.assertEqual(m.err('blockdev-change-medium',
                               {'device': 'ide0-cd1', 'filename': DISC}),
                         {'class': 'GenericError', 'desc': LOCKED})
        self.assertEqual(m.hmp('eject ide0-cd1'), 'Error: %s\r\n' % LOCKED)
        m.ok('blockdev-open-tray', {'device': 'ide0-cd1'})
        self.assertEqual(m.tray_events(), [])
        self.assertFalse(m.block('ide0-cd1')['tray_open'])
        # The guest opens the tray (START STOP UNIT): DEVICE_TRAY_MOVED.
        m.run_to_frame(90)
        with open(con) as f:
            self.assertEqual(f.read(), 'L\nE\n')
        qdev = m.block('ide0-cd1')['qdev']
        self.assertEqual(m.tray_events(), [{'device': 'ide0-cd1',
                                            'id': qdev, 'tray-open': True}])
        cd = m.block('ide0-cd1')
        self.assertEqual((cd['locked'], cd['tray_open']), (False, True))
        # ... and closes and locks it again.
        m.run_to_frame(150)
        with open(con) as f:
            self.assertEqual(f.read(), 'L\nE\nK\n')
        self.assertEqual(m.tray_events(), [{'device': 'ide0-cd1',
                                            'id': qdev, 'tray-open': False}])
        self.assertTrue(m.block('ide0-cd1')['locked'])
        # Forced: the tray opens, unlocked, the medium goes.
        m.ok('eject', {'device': 'ide0-cd1', 'force': True})
        self.assertEqual(m.tray_events(), [{'device': 'ide0-cd1',
                                            'id': qdev, 'tray-open': True}])
        cd = m.block('ide0-cd1')
        self.assertEqual((cd['locked'], cd['tray_open'], 'inserted' in cd),
                         (False, True, False))
        m.quit()

    def test_forced_open_tray_unlocks(self):
        script = self.path('input.txt')
        with open(script, 'w') as f:
            f.write('500 a\n')
        m = XblkMachine(self, '-S', '-kernel', TRAY_GUEST, '-input-script',
                        script, *self.drives(self.new_disk()))
        m.run_to_frame(30)
        self.assertTrue(m.block('ide0-cd1')['locked'])
        m.ok('blockdev-open-tray', {'device': 'ide0-cd1', 'force': True})
        self.assertEqual([e['tray-open'] for e in m.tray_events()], [True])
        cd = m.block('ide0-cd1')
        self.assertEqual((cd['locked'], cd['tray_open'], 'inserted' in cd),
                         (False, True, True))
        m.quit()

    def test_empty_drives(self):
        """-drive media=cdrom without file= and an empty -device ide-cd
        are listed, without "inserted", and take a medium."""
        hd = self.new_disk()
        m = XblkMachine(self, '-S', '-drive',
                        'file=%s,format=qcow2,if=ide,index=0' % hd,
                        '-drive', 'if=ide,index=1,media=cdrom',
                        '-device', 'ide-cd,bus=ide.1,unit=0,id=cd0',
                        '-device', 'ide-cd,bus=ide.1,unit=1')
        blocks = m.cmd('query-block')['return']
        self.assertEqual([b['device'] for b in blocks],
                         ['ide0-hd0', 'ide0-cd1', 'cd0', 'ide1-cd1'])
        self.assertEqual([b['qdev'] for b in blocks],
                         ['/machine/unattached/device[7]',
                          '/machine/unattached/device[8]', 'cd0',
                          '/machine/peripheral-anon/device[0]'])
        for b in blocks[1:]:
            self.assertEqual((b['removable'], b['tray_open'], b['locked'],
                              b['io-status']), (True, False, False, 'ok'))
            self.assertNotIn('inserted', b)
        self.assertEqual(m.hmp('info block cd0'),
                         '\r\ncd0: [not inserted]\r\n'
                         '    Attached to:      cd0\r\n'
                         '    Removable device: not locked, tray closed\r\n')
        # By id, by "/machine/peripheral/ID", by device name.
        m.ok('blockdev-change-medium', {'id': 'cd0', 'filename': DISC})
        self.assertEqual([e['tray-open'] for e in m.tray_events()],
                         [True, False])
        self.assertTrue(m.block('cd0')['inserted']['ro'])
        # As in QEMU the event comes before the reply.
        m.q.send_raw(json.dumps({'execute': 'eject', 'arguments':
                                 {'id': '/machine/peripheral/cd0'}}) + '\n')
        ev, reply = m.q.recv(), m.q.recv()
        self.assertEqual((ev['event'], ev['data']),
                         ('DEVICE_TRAY_MOVED', {'device': 'cd0', 'id': 'cd0',
                                                'tray-open': True}))
        self.assertEqual(reply, {'return': {}})
        m.ok('blockdev-change-medium', {'device': 'ide0-cd1',
                                        'filename': DISC, 'format': 'raw'})
        ins = m.block('ide0-cd1')['inserted']
        self.assertEqual((ins['ro'], ins['drv'], ins['file']),
                         (True, 'raw', DISC))
        self.assertIn('ide0-cd1 (%s): %s (raw, read-only)'
                      % (ins['node-name'], DISC), m.hmp('info block'))
        m.ok('blockdev-change-medium',
             {'id': '/machine/peripheral-anon/device[0]', 'filename': DISC})
        self.assertIn('inserted', m.block('ide1-cd1'))
        m.quit()

    def test_change_disc_while_the_game_runs(self):
        """The reference guest keeps running while its disc is ejected and
        another copy put in; query-block shows the new medium."""
        hd = self.new_disk(size='8G')
        disc2 = self.path('disc2.iso')
        shutil.copyfile(DISC, disc2)
        m = XblkMachine(self, *self.drives(hd), machine='xbox,seed=5')
        deadline = time.monotonic() + 60
        while m.cmd('x-query-frame')['return']['frame'] < 120:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        m.ok('eject', {'device': 'ide0-cd1'})
        m.ok('blockdev-change-medium', {'device': 'ide0-cd1',
                                        'filename': disc2, 'format': 'raw'})
        self.assertEqual([e['tray-open'] for e in m.tray_events()],
                         [True, False])
        f1 = m.cmd('x-query-frame')['return']['frame']
        deadline = time.monotonic() + 60
        while m.cmd('x-query-frame')['return']['frame'] < f1 + 120:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        self.assertEqual(m.cmd('query-status')['return']['status'],
                         'running')
        cd = m.block('ide0-cd1')
        self.assertEqual((cd['inserted']['file'], cd['tray_open']),
                         (disc2, False))
        self.assertFalse([e for e in m.q.events
                          if e['event'] in ('GUEST_PANICKED', 'STOP')])
        m.quit()
        p = xtest.run(['qemu-img', 'check', hd], check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_io_status_after_a_stop_error(self):
        """werror=stop: io-status "failed" and "I/O status" in info block
        until cont, "paused (io-error)" in info status."""
        hd = self.new_disk(size='8G')
        blockdev = ('driver=qcow2,node-name=hd,file.driver=blkdebug,'
                    'file.image.driver=file,file.image.filename=%s,'
                    'file.inject.0.op=write,file.inject.0.nth=1,'
                    'file.inject.0.errno=5' % hd)
        m = XblkMachine(self, '-blockdev', blockdev, '-device',
                        'ide-hd,drive=hd,bus=ide.0,unit=0,werror=stop',
                        '-drive', 'file=%s,format=raw,if=ide,index=1,'
                        'media=cdrom' % DISC, machine='xbox,seed=1')
        m.q.wait_event('BLOCK_IO_ERROR', timeout=60)
        m.q.wait_event('STOP')
        hd0 = m.block('ide0-hd0')
        self.assertEqual(hd0['io-status'], 'failed')
        self.assertEqual(m.block('ide0-cd1')['io-status'], 'ok')
        self.assertEqual(m.hmp('info status'), 'VM status: paused '
                         '(io-error)\r\n')
        self.assertIn('ide0-hd0 (hd): %s (qcow2)\r\n'
                      '    Attached to:      /machine/peripheral-anon/'
                      'device[0]\r\n' % hd +
                      '    I/O status:       failed\r\n'
                      '    Cache mode:       writeback\r\n',
                      m.hmp('info block'))
        m.ok('cont')
        m.q.wait_event('RESUME')
        self.assertEqual(m.block('ide0-hd0')['io-status'], 'ok')
        m.quit()

    def test_block_commands_by_device_name(self):
        hd = self.new_disk()
        m = XblkMachine(self, '-S', *self.drives(hd))
        m.ok('blockdev-snapshot-internal-sync', {'device': 'ide0-hd0',
                                                 'name': 's1'})
        self.assertIn('already exists',
                      m.err('blockdev-snapshot-internal-sync',
                            {'device': 'ide0-hd0', 'name': 's1'})['desc'])
        self.assertEqual(m.err('blockdev-snapshot-internal-sync',
                               {'device': 'ide0-cd1', 'name': 's1'})['desc'],
                         "Device 'ide0-cd1' is read only")
        r = m.cmd('blockdev-snapshot-delete-internal-sync',
                  {'device': 'ide0-hd0', 'name': 's1'})
        self.assertEqual(r['return']['name'], 's1')
        m.ok('block_resize', {'device': 'ide0-hd0', 'size': 128 << 20})
        self.assertEqual(m.block('ide0-hd0')['inserted']['image']
                         ['virtual-size'], 128 << 20)
        nodes = [n['node-name'] for n in
                 m.cmd('query-named-block-nodes')['return']]
        self.assertIn(m.block('ide0-hd0')['inserted']['node-name'], nodes)
        self.assertIn(m.block('ide0-cd1')['inserted']['node-name'], nodes)
        m.ok('block-dirty-bitmap-add', {'node': 'ide0-hd0', 'name': 'b0'})
        m.ok('eject', {'device': 'ide0-cd1'})
        self.assertEqual(m.err('block_resize', {'device': 'ide0-cd1',
                                                'size': 1 << 20}),
                         {'class': 'GenericError',
                          'desc': "Device 'ide0-cd1' has no medium"})
        m.quit()
        info = json.loads(xtest.run(['qemu-img', 'info', '--output=json',
                                     hd]).stdout)
        self.assertEqual(info['virtual-size'], 128 << 20)

    def test_machine_none(self):
        srv = qmpclient.Server([SYSTEM, '-machine', 'none'],
                               tmpdir=self.dir)
        self.addCleanup(srv.stop)
        q = srv.client().negotiate()
        self.assertEqual(q.cmd('query-block'), {'return': []})
        self.assertEqual(q.cmd('eject', {'device': 'ide0-cd1'}),
                         {'error': {'class': 'DeviceNotFound',
                                    'desc': "Device 'ide0-cd1' not found"}})
        self.assertEqual(q.cmd('blockdev-remove-medium', {'id': 'x'})
                         ['error']['class'], 'DeviceNotFound')
        self.assertEqual(q.cmd('human-monitor-command',
                               {'command-line': 'info block'}),
                         {'return': ''})

    def test_version(self):
        p = xtest.run([SYSTEM, '-version'])
        self.assertRegex(p.stdout, r'^xblk-system version \d+\.\d+\.\d+ '
                         r'\(Unicorn \d+\.\d+\.\d+\)\n$')


if __name__ == '__main__':
    xtest.main()
