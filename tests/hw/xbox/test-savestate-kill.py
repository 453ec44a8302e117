#!/usr/bin/env python3
"""test-savestate-kill: save states under SIGKILL (issue #11, DESIGN rule 2).

The reference guest (build/guest/xboxguest.elf with its disc) runs
unthrottled in build/xblk-system on one persisting 8 GiB qcow2 HDD (and,
in the second case, a persisting 64 MiB qcow2 second hard disk that every
state covers, the VM state on either disk).  The guest writes a game save
(a 64 KiB slot, hw/xbox/guest/save.c) every 180 frames and prints "save N
written" once its FLUSH CACHE completed.  Each
iteration starts the machine on the image, lets it run a random time,
notes the game saves already written (flushed), then either sends a QMP
snapshot-save / snapshot-load / snapshot-delete job or nothing (only the
guest runs), and SIGKILLs the process at a random instant: within 3 ms of
the command (prepare and pause), anywhere in the job's typical duration
(learnt from the jobs seen to conclude), or just after the job's
concluded event.  After every kill:

  1. `qemu-img check` of every image finds no corruption (exit 0, or 3
     for leaks only; the leaks are sometimes repaired with `qemu-img check
     -r leaks`).  The second disk, which the guest never writes, carries
     a stamp of the iteration (written with qemu-io before each start):
     it still shows it, or after a load maybe the loaded state's stamp.
  2. The save area as QEMU reads it (qemu-img dd) still holds every game
     save flushed before the command: each such slot holds exactly that
     record (counter, frame, checksum) and its 127 stamped filler sectors,
     unless a save started after the command went to the same slot, in
     which case each sector is the old or the new version; the newest
     valid record's counter is at least the last flushed one.  The same
     holds for the game saves the guest flushed while the job ran (printed
     on the console before the kill).  A snapshot-load legitimately rolls
     the disk back (and a killed load may or may not have reverted it), so
     for loads only the bound "newest >= min(flushed before the load,
     flushed before the loaded tag's save)" is checked.
  3. Listings: `qemu-img snapshot -l` of every image, then a restart
     (which removes a state a kill left unfinished, with a warning), HMP
     `info snapshots`, and `qemu-img snapshot -l` again.  After the
     restart every state is whole or absent: each tag on any image is
     listed by `info snapshots` (on every disk) with its VM state on
     exactly one disk.  A save whose job concluded before the kill is
     listed; a delete whose job concluded is not, and a tag once found
     absent never comes back; a tag once found listed stays listed until
     a delete of it.
  4. Every listed tag created or confirmed since the last check (and every
     listed tag every third iteration) is loaded with `-loadvm TAG -S`:
     x-query-frame's {frame, hash} equals x-query-save-state's {frame,
     frame-hash}, equals what earlier loads of that tag showed, and the
     frame is not before the frame the save command was sent at; the guest
     then runs on for 10 frames and quits; the disk the state reverted to
     holds the game saves flushed before the tag's save command (the
     per-slot check of 2) and the second disk shows the state's stamp
     (all disks or none, DESIGN rule 3).  `qemu-img check` again
     afterwards.  (The next iteration boots from the reverted disks.)
A job that fails (its concluded event seen before the kill, with an
error in query-jobs) fails the test too.

Cases: one disk, 30 iterations (no new one after 60 s), and two disks, 20
iterations (50 s): about 25 + 20 s here.  The master seed is printed;
XBLK_SEED=<n> replays its choices (the kill instants depend on host
timing, so a replay is close, not exact).  XBLK_LONG=1 runs 300 and 200
iterations (550 + 450 s at most).  XBLK_KEEP_FAILED=<dir> keeps the files
of a failure.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
KERNEL = os.path.join(xtest.BUILD, 'guest', 'xboxguest.elf')
DISC = os.path.join(xtest.BUILD, 'guest', 'disc.iso')
LONG = os.environ.get('XBLK_LONG') == '1'
SEED = int(os.environ.get('XBLK_SEED') or
           random.SystemRandom().randrange(1 << 32))
# Iterations and time budget (s; no new iteration starts after it, on a
# loaded machine) of each case; scripts/run-tests stops a test file after
# 1200 s.
ONE_DISK = (300, 550) if LONG else (30, 60)
TWO_DISKS = (200, 450) if LONG else (20, 50)
MAX_TAGS = 8                    # more listed tags: deletes are preferred
FULL_CHECK_EVERY = 3            # load every listed tag every N iterations

# The guest's save area (hw/xbox/guest/save.c, README.md).
AREA_LBA = 524288
SLOTS = 64
SLOT_STRIDE = 1 << 20
SLOT_BYTES = 64 << 10
SECTOR = 512
AUX_SIZE = '64M'                # the second disk
STAMP = 64 << 10                # two stamped 64 KiB blocks at its start

# Job durations (s) assumed until some were seen.
EST_FLOOR = {'save': 0.12, 'load': 0.04, 'delete': 0.01}


print('# test-savestate-kill: seed %d (XBLK_SEED=%d to replay)' %
      (SEED, SEED), flush=True)


# The save area's records, the console and the listings: shared with
# tests/snapshot/test-crash-torture.py.
import killcheck as kc  # noqa: E402
from killcheck import parse_console, parse_listing  # noqa: E402


Failure = kc.Failure


class Machine:
    """One xblk-system process on the HDD, the disc and, in the two-disk
    case, the second hard disk."""

    def __init__(self, test, name, extra=()):
        self.test = test
        self.name = name
        self.sock = test.path('%s.sock' % name)
        self.console = test.path('%s.con' % name)
        self.errpath = test.path('%s.err' % name)
        argv = [SYSTEM, '-machine', 'xbox,seed=%d' % test.guest_seed,
                '-nodefaults', '-display', 'none', '-kernel', KERNEL,
                '-drive', 'file=%s,format=qcow2,if=ide,index=0' % test.hd,
                '-drive', 'file=%s,format=raw,if=ide,index=1,media=cdrom'
                % DISC,
                '-debugcon', 'file:%s' % self.console,
                '-qmp', 'unix:%s,server=on,wait=off' % self.sock]
        if test.aux:
            argv += ['-drive', 'file=%s,format=qcow2,if=ide,index=2' %
                     test.aux]
        argv += list(extra)
        self.argv = argv
        with open(self.errpath, 'wb') as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=err)
        test.procs.append(self.proc)
        try:
            self.q = qmpclient.QMPClient(path=self.sock, timeout=30)
            self.q.negotiate()
        except Exception as e:
            self.proc.poll()
            raise Failure('%s: no QMP monitor (%s); exit status %s, '
                          'stderr:\n%s' % (name, e, self.proc.returncode,
                                           self.stderr()))

    @staticmethod
    def read(path):
        try:
            with open(path, 'rb') as f:
                return f.read().decode(errors='replace')
        except FileNotFoundError:
            return ''

    def stderr(self):
        return self.read(self.errpath)

    def cmd(self, name, args=None):
        r = self.q.cmd(name, args)
        if 'error' in r:
            raise Failure('%s: %s %s failed: %s' % (self.name, name,
                                                   args, r['error']))
        return r['return']

    def quit(self):
        self.cmd('quit')
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure('%s: quit did not end the process' % self.name)
        self.q.close()
        if self.proc.returncode != 0:
            raise Failure('%s: exit status %d after quit, stderr:\n%s' %
                          (self.name, self.proc.returncode, self.stderr()))

    def kill(self):
        """SIGKILL; returns every QMP message sent before the death."""
        alive = self.proc.poll() is None
        if alive:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        if not alive or self.proc.returncode != -signal.SIGKILL:
            raise Failure('%s: the process ended on its own before the '
                          'kill (status %s), stderr:\n%s' %
                          (self.name, self.proc.returncode, self.stderr()))
        msgs = list(self.q.events)
        self.q.events = []
        self.q.sock.settimeout(10)
        while True:
            try:
                msgs.append(self.q.recv())
            except (EOFError, OSError, socket.timeout, ValueError):
                break
        self.q.close()
        return msgs


class SaveStateKill(xtest.TmpDirTestCase):

    def setUp(self):
        super().setUp()
        for tool in ('qemu-img', 'qemu-io'):
            if not shutil.which(tool):
                self.skipTest('%s not installed' % tool)
        self.procs = []
        self.addCleanup(self.reap)

    def reap(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def keep_failed(self):
        keep = os.environ.get('XBLK_KEEP_FAILED')
        if keep:
            self.reap()
            dst = os.path.join(keep, self.id())
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(self.dir, dst, ignore=shutil.ignore_patterns(
                '*.sock'))
            print('# files kept in %s' % dst, flush=True)

    # ---------------------------------------------------------- checks

    def images(self):
        return [self.hd] + ([self.aux] if self.aux else [])

    def qemu_img_check(self, what, rng=None):
        """qemu-img check of every image: no corruption (exit 0, or 3 for
        leaks only); with rng, sometimes repairs the leaks (xblk then goes
        on with a clean image)."""
        for img in self.images():
            p = xtest.run(['qemu-img', 'check', img], check=False)
            self.n['img-checks'] += 1
            if p.returncode == 3:
                self.n['leaky-checks'] += 1
            elif p.returncode != 0:
                raise Failure('qemu-img check %s after %s: exit %d\n%s%s' %
                              (os.path.basename(img), what, p.returncode,
                               p.stdout, p.stderr))
            if p.returncode == 3 and rng and rng.random() < 0.3:
                p = xtest.run(['qemu-img', 'check', '-r', 'leaks', img],
                              check=False)
                self.n['leak-repairs'] += 1
                if p.returncode != 0:
                    raise Failure('qemu-img check -r leaks %s after %s: '
                                  'exit %d\n%s%s' %
                                  (os.path.basename(img), what,
                                   p.returncode, p.stdout, p.stderr))

    # The second disk: the guest never writes it, so the test stamps it
    # with the iteration number (killcheck.write_stamp/read_stamp).

    def check_stamp(self, allowed, what):
        """The second disk shows the stamp of one of the iterations in
        allowed (mod 62500)."""
        if not self.aux:
            return
        got = kc.read_stamp(self.aux, self.path('stamp.raw'))
        self.n['stamp-checks'] += 1
        if got not in [x % 62500 for x in allowed]:
            raise Failure('%s: the second disk shows the stamp of iteration '
                          '%s, expected %s' % (what, got,
                                               ' or '.join(map(str,
                                                               allowed))))

    def read_area(self):
        """The save area (64 slots at 1 MiB stride) as qemu-img reads it."""
        out = self.path('area.raw')
        if os.path.exists(out):
            os.unlink(out)
        mib = AREA_LBA * SECTOR // (1 << 20)
        # qemu-img 7.2's dd counts the skipped blocks in count.
        xtest.run(['qemu-img', 'dd', '-f', 'qcow2', '-O', 'raw',
                   'bs=1048576', 'skip=%d' % mib,
                   'count=%d' % (mib + SLOTS), 'if=%s' % self.hd,
                   'of=%s' % out])
        with open(out, 'rb') as f:
            raw = f.read()
        os.unlink(out)
        if len(raw) != SLOTS * SLOT_STRIDE:
            raise Failure('qemu-img dd read %d bytes' % len(raw))
        return raw

    def check_flushed(self, raw, written, flushed_max, started_max, what):
        """killcheck.check_flushed, counted."""
        self.n['disk-checks'] += 1
        kc.check_flushed(raw, written, flushed_max, started_max, what)

    # ---------------------------------------------------------- the loop

    def start(self, name, extra=()):
        return Machine(self, name, extra)

    def pick_op(self, rng):
        present = sorted(t for t, i in self.tags.items()
                         if i['state'] == 'present')
        if not present:
            return ('save' if rng.random() < 0.8 else 'none'), None
        if len(present) >= MAX_TAGS:
            weights = [('save', 1), ('load', 3), ('delete', 5), ('none', 1)]
        elif len(present) < 3:
            weights = [('save', 5), ('load', 3), ('delete', 1), ('none', 2)]
        else:
            weights = [('save', 4), ('load', 3), ('delete', 2), ('none', 2)]
        r = rng.uniform(0, sum(w for _, w in weights))
        for op, w in weights:
            r -= w
            if r <= 0:
                break
        return op, (None if op in ('save', 'none') else rng.choice(present))

    def kill_plan(self, rng, op):
        """(mode, delay): kill delay s after sending the command, or for
        mode 'concluded' delay s after the job's concluded event."""
        if op == 'none':
            return 'guest only', 0.0
        est = max(self.durations[op][-5:] or [EST_FLOOR[op]])
        # Few states listed: more saves run to the end, so that loads and
        # deletes get states to work on.
        few = sum(1 for i in self.tags.values() if i['state'] == 'present')
        early, during = (0.15, 0.4) if op == 'save' and few < 3 else \
            (0.2, 0.6)
        r = rng.random()
        if r < early:
            return 'early', rng.uniform(0, 0.003)   # prepare and pause
        if r < during:
            return 'during', rng.uniform(0, est)    # the whole job
        return 'concluded', rng.uniform(0, 0.01)    # once it concluded

    def wait_concluded(self, m, timeout=60):
        """Reads QMP messages (kept in m.q.events) until the job concluded;
        returns its error."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise Failure('%s: job not concluded after %ds' %
                              (m.name, timeout))
            m.q.sock.settimeout(left)
            msg = m.q.recv()
            m.q.events.append(msg)
            if msg.get('event') == 'JOB_STATUS_CHANGE' and \
                    msg['data']['id'] == 'k' and \
                    msg['data']['status'] == 'concluded':
                # The job's error, if any, before the kill.
                jobs = m.cmd('query-jobs')
                return ' '.join(j['error'] for j in jobs if 'error' in j)

    def iteration(self, it, rng):
        name = 'run%d' % it
        if self.aux:
            kc.write_stamp(self.aux, it)
        m = self.start(name)
        run_for = rng.uniform(0.08, 1.0)
        time.sleep(run_for)
        op, tag = self.pick_op(rng)
        mode, delay = self.kill_plan(rng, op)
        f_cmd = m.cmd('x-query-frame')['frame']
        written = parse_console(m.console)
        flushed_max = max(written) if written else 0
        args = None
        if op == 'save':
            tag = 's%d' % it
            vmdev = rng.choice(self.devs)
            args = {'job-id': 'k', 'tag': tag, 'vmstate': vmdev,
                    'devices': self.devs}
            self.tags[tag] = {'state': 'maybe', 'W': flushed_max,
                              'written': dict(written), 'f_cmd': f_cmd,
                              'frame': None, 'hash': None, 'loaded': 0,
                              'verified': False, 'stamp': it,
                              'vmdev': vmdev}
        elif op == 'load':
            args = {'job-id': 'k', 'tag': tag,
                    'vmstate': self.tags[tag]['vmdev'],
                    'devices': self.devs}
        elif op == 'delete':
            args = {'job-id': 'k', 'tag': tag, 'devices': self.devs}
        t_send = time.time()
        if args is not None:
            m.q.send_raw(json.dumps({'execute': 'snapshot-' + op,
                                     'arguments': args}) + '\n')
        job_error = None
        if mode == 'concluded':
            job_error = self.wait_concluded(m)
        if delay:
            time.sleep(delay)
        t_kill = time.time() - t_send
        msgs = m.kill()
        self.n['kills-' + op] += 1

        # What the job got to before the kill.
        statuses, reply, conclude_ts = [], None, None
        for msg in msgs:
            if 'event' in msg:
                if msg['event'] == 'JOB_STATUS_CHANGE' and \
                        msg['data']['id'] == 'k':
                    statuses.append(msg['data']['status'])
                    if msg['data']['status'] == 'concluded':
                        ts = msg['timestamp']
                        conclude_ts = ts['seconds'] + \
                            ts['microseconds'] / 1e6
            elif reply is None and ('return' in msg or 'error' in msg):
                reply = msg
        if reply is not None and 'error' in reply:
            raise Failure('snapshot-%s %s refused: %s' % (op, args,
                                                         reply['error']))
        if 'aborting' in statuses:
            took = ' after %.1f ms' % ((conclude_ts - t_send) * 1e3) \
                if conclude_ts else ''
            raise Failure('snapshot-%s %s failed%s (statuses %s, killed at '
                          '%.1f ms (%s)): %s' %
                          (op, args, took, statuses, t_kill * 1e3, mode,
                           job_error or
                           'error not known (concluded unseen before the '
                           'kill)'))
        concluded = 'concluded' in statuses
        if concluded:
            self.n['concluded-' + op] += 1
            self.durations[op].append(max(0.0, conclude_ts - t_send))
        print('# %d: ran %.2fs, %s%s, kill at %.1f ms (%s); flushed saves '
              '<= %d; job: %s' %
              (it, run_for, op, ' ' + tag if tag else '', t_kill * 1e3, mode,
               flushed_max, ','.join(statuses) or '-'), flush=True)
        if op == 'save' and concluded:
            self.tags[tag]['state'] = 'present'
        elif op == 'delete':
            self.tags[tag]['state'] = 'gone' if concluded else 'maybe'
            self.tags[tag]['verified'] = False
        what = 'iteration %d (%s%s, kill at %.1f ms (%s))' % (
            it, op, ' ' + tag if tag else '', t_kill * 1e3, mode)

        # 1. The images are consistent; the second disk shows the stamp
        # of this iteration or, after a load, maybe the loaded state's.
        self.qemu_img_check(what, rng)
        self.check_stamp([it] + ([self.tags[tag]['stamp']]
                                 if op == 'load' else []), what)

        # 2. Flushed game saves survive.
        written_end = parse_console(m.console)
        started_max = (max(written_end) if written_end else flushed_max) + 1
        if op == 'save':
            self.tags[tag]['started_max'] = started_max
        raw = self.read_area()
        if op == 'load':
            # A load rolls the disk back to the tag (if it got that far)
            # and the guest runs on from there: only a lower bound holds.
            bound = min(flushed_max, self.tags[tag]['W'])
            newest = kc.newest(raw)
            self.n['disk-checks'] += 1
            if newest < bound:
                raise Failure('%s: newest game save on the disk is %d, '
                              'below %d (flushed before the load and before '
                              'the save of %s)' % (what, newest, bound, tag))
        else:
            self.check_flushed(raw, written, flushed_max, started_max, what)
            # Stronger than the issue asks: the game saves the guest
            # flushed while the job ran (printed before the kill) are kept
            # too.
            if started_max - 1 > flushed_max:
                self.check_flushed(raw, written_end, started_max - 1,
                                   started_max, what + ', a game save '
                                   'flushed after the command was sent')

        # 3. Listings.
        self.check_listings(it, what)

        # 4. Load the listed states.
        full = it % FULL_CHECK_EVERY == FULL_CHECK_EVERY - 1
        for t in sorted(self.tags):
            info = self.tags[t]
            if info['state'] == 'present' and (full or not info['verified']):
                self.load_tag(t, it)
        self.qemu_img_check(what + ', after loading states')

    def img_listings(self):
        """{image basename: {tag: VM SIZE}} and the raw text."""
        out, text = {}, ''
        for img in self.images():
            p = xtest.run(['qemu-img', 'snapshot', '-l', img])
            name = os.path.basename(img)
            out[name] = parse_listing(p.stdout)
            text += '%s:\n%s' % (name, p.stdout)
        return out, text

    def check_listings(self, it, what):
        before, before_text = self.img_listings()
        m = self.start('list%d' % it, ['-S'])
        text = m.cmd('human-monitor-command',
                     {'command-line': 'info snapshots'})
        m.quit()
        after, after_text = self.img_listings()
        sys_tags = set(parse_listing(text))
        err = m.stderr()
        self.n['listing-checks'] += 1
        removed = set(re.findall(r"removed the unfinished save state "
                                 r"'([^']*)'", err))
        self.n['unfinished-removed'] += len(removed)
        ctx = '%s:\nqemu-img snapshot -l before the restart:\n%s\n' \
            'info snapshots:\n%s\nqemu-img snapshot -l after it:\n%s\n' \
            'stderr of the restart:\n%s' % (what, before_text, text,
                                             after_text, err)
        img_tags = set()
        for tags in list(before.values()) + list(after.values()):
            img_tags |= set(tags)
        for t in sys_tags | img_tags:
            if t not in self.tags:
                raise Failure('unknown tag %r listed after %s' % (t, ctx))
        # After the start's clean-up a state is whole or absent: on every
        # disk (info snapshots lists it) or on none.
        for name, tags in after.items():
            for t in set(tags) - sys_tags:
                raise Failure('tag %r (VM SIZE %s) is left on %s and not on '
                              'every disk (not a whole state, and the start '
                              'did not remove it) after %s' %
                              (t, tags[t], name, ctx))
        for t in sys_tags:
            vm = [name for name, tags in after.items()
                  if t in tags and not tags[t].startswith('0 ')]
            if len(vm) != 1:
                raise Failure('listed state %r has a VM state on %s after '
                              '%s' % (t, vm or 'no disk', ctx))
        for t, info in self.tags.items():
            st = info['state']
            if st == 'gone' and t in img_tags | sys_tags:
                raise Failure('tag %r was deleted (or found absent) before, '
                              'but is listed again after %s' % (t, ctx))
            if st == 'present' and t not in sys_tags:
                raise Failure('tag %r was listed (or its save concluded) '
                              'before, but is missing after %s' % (t, ctx))
            if st == 'maybe':
                if t in sys_tags:
                    info['state'] = 'present'
                else:
                    info['state'] = 'gone'
                    if t in img_tags:
                        print('# %d: the start removed the unfinished %r' %
                              (it, t), flush=True)
            elif t in img_tags and t not in sys_tags:
                raise Failure('the start removed tag %r, which was not '
                              'unfinished, after %s' % (t, ctx))

    def load_tag(self, t, it):
        info = self.tags[t]
        m = self.start('load%d-%s' % (it, t), ['-loadvm', t, '-S'])
        what = 'load of %r after iteration %d' % (t, it)
        st = m.cmd('query-status')
        fr = m.cmd('x-query-frame')
        ss = m.cmd('x-query-save-state', {'tag': t})
        self.n['tags-loaded'] += 1
        if st['running'] or 'hash' not in fr:
            raise Failure('%s: not stopped after -loadvm -S: %s %s' %
                          (what, st, fr))
        if 'frame-hash' not in ss:
            raise Failure('%s: x-query-save-state has no frame-hash: %s' %
                          (what, {k: v for k, v in ss.items()
                                  if k != 'thumbnail-png'}))
        got = (fr['frame'], fr['hash'])
        rec = (ss['frame'], ss['frame-hash'])
        if got != rec:
            raise Failure('%s: loaded machine shows frame %d hash %s, the '
                          'state recorded frame %d hash %s' %
                          (what, got[0], got[1], rec[0], rec[1]))
        if info['hash'] is not None and (info['frame'], info['hash']) != got:
            raise Failure('%s: frame %d hash %s, an earlier load showed '
                          'frame %d hash %s' % (what, got[0], got[1],
                                                info['frame'], info['hash']))
        if got[0] < info['f_cmd']:
            raise Failure('%s: state frame %d is before the frame %d the '
                          'save was requested at' % (what, got[0],
                                                     info['f_cmd']))
        info['frame'], info['hash'] = got
        info['verified'] = True
        info['loaded'] += 1
        # The guest runs on from the state (a few frames: at most one more
        # game save can start).
        m.cmd('cont')
        end = time.monotonic() + 30
        while m.cmd('x-query-frame')['frame'] < got[0] + 10:
            if time.monotonic() > end:
                raise Failure('%s: the guest does not run on' % what)
            time.sleep(0.002)
        status = m.cmd('query-status')['status']
        if status != 'running':
            raise Failure('%s: status %s after cont' % (what, status))
        m.quit()
        # The disk the state reverted to has the game saves flushed before
        # the save command.
        self.check_flushed(self.read_area(), info['written'], info['W'],
                           info.get('started_max', info['W'] + 1) + 1, what)
        # And every disk went back: the second one to the stamp it had.
        self.check_stamp([info['stamp']], what)

    def run_case(self, case, two_disks, iterations, budget):
        rng = random.Random('%d-%s' % (SEED, case))
        self.guest_seed = rng.randrange(1, 1 << 16)
        self.hd = self.path('hdd.qcow2')
        xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', self.hd, '8G'])
        self.aux = None
        if two_disks:
            self.aux = self.path('aux.qcow2')
            xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', self.aux,
                       AUX_SIZE])
        self.tags = {}
        self.durations = {op: [] for op in EST_FLOOR}
        self.n = {k: 0 for k in (
            'kills-save', 'kills-load', 'kills-delete', 'kills-none',
            'concluded-save', 'concluded-load', 'concluded-delete',
            'img-checks', 'leaky-checks', 'leak-repairs', 'disk-checks',
            'stamp-checks', 'listing-checks', 'tags-loaded',
            'unfinished-removed')}
        # The device names of the hard disks, as query-block shows them.
        m = self.start('probe', ['-S'])
        blocks = m.cmd('query-block')
        m.quit()
        self.devs = []
        for img in self.images():
            devs = [b['device'] for b in blocks
                    if b.get('inserted', {}).get('file') == img]
            self.assertEqual(len(devs), 1, blocks)
            self.devs += devs

        t0 = time.monotonic()
        done = 0
        try:
            for it in range(iterations):
                if time.monotonic() - t0 > budget:
                    print('# %s: time budget of %ds reached after %d '
                          'iterations' % (case, budget, it), flush=True)
                    break
                self.iteration(it, rng)
                done += 1
        except Exception as e:
            self.keep_failed()
            raise Failure('%s: seed %d (XBLK_SEED=%d to replay), iteration '
                          '%d: %s' % (case, SEED, SEED, done, e)) from None
        secs = time.monotonic() - t0
        n = self.n
        print('# %s: iterations %d in %.1fs (guest seed %d, disks %s)' %
              (case, done, secs, self.guest_seed, ', '.join(self.devs)))
        print('# %s: kills: save %d (%d concluded before the kill), load %d '
              '(%d), delete %d (%d), guest only %d' %
              (case, n['kills-save'], n['concluded-save'], n['kills-load'],
               n['concluded-load'], n['kills-delete'], n['concluded-delete'],
               n['kills-none']))
        print('# %s: checks: qemu-img check %d (%d found leaks only, %d '
              'leak repairs), flushed game saves %d, second-disk stamps %d, '
              'listings %d; tags loaded %d; unfinished states removed at '
              'start %d; tags listed at the end %d' %
              (case, n['img-checks'], n['leaky-checks'], n['leak-repairs'],
               n['disk-checks'], n['stamp-checks'], n['listing-checks'],
               n['tags-loaded'], n['unfinished-removed'],
               sum(1 for i in self.tags.values()
                   if i['state'] == 'present')))
        print('# %s: job durations seen (ms): %s' % (case, '; '.join(
            '%s n=%d min %.0f median %.0f max %.0f' %
            (op, len(ds), min(ds) * 1e3, sorted(ds)[len(ds) // 2] * 1e3,
             max(ds) * 1e3)
            for op, ds in self.durations.items() if ds)))
        print('# seed %d' % SEED, flush=True)
        self.assertGreater(done, 0)

    def test_one_disk(self):
        self.run_case('one disk', False, *ONE_DISK)

    def test_two_disks(self):
        """The same with a second qcow2 hard disk in every state (the VM
        state on either disk)."""
        self.run_case('two disks', True, *TWO_DISKS)


if __name__ == '__main__':
    xtest.main()
