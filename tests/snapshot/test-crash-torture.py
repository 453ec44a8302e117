#!/usr/bin/env python3
"""test-crash-torture: SIGKILL at random instants of every snapshot
operation of the console machine (issue #14, DESIGN rules 2 and 3).

One machine, kept for the whole run: the reference guest
(build/guest/xboxguest.elf, its disc) in build/xblk-system on two qcow2
hard disks - hda (8 GiB), where the guest writes a game save every 180
frames and prints "save N written" once it is flushed, and hdb (64 MiB),
which the guest never writes and the test stamps with the iteration
number (qemu-io, before each start) - and a domain-snapshot catalog
(-snapshot-dir).  Each iteration starts xblk-system on the current files
(the catalog's domain.xml decides which overlay each disk opens), lets
the guest run a random short time, sends ONE operation picked at random
and SIGKILLs the process at a random instant:

  guest      nothing: the guest writes and flushes game saves
  save       QMP snapshot-save job (tag sN, VM state on either disk)
  load       QMP snapshot-load job of a listed save state
  delete     QMP snapshot-delete job of a save state or a transaction's
             snapshot
  txn        QMP transaction: blockdev-snapshot-internal-sync on both disks
  dcreate    x-xblk-snapshot-create, one of the rows of docs/snapshots.md:
             mi (memory internal, disks internal), mimix (memory internal,
             hda internal + hdb external), medi (memory external, disks
             internal), me (memory external, disks external), do
             (disk-only external), dodi (disk-only internal)
  drevert    x-xblk-snapshot-revert (--force)
  ddelete    x-xblk-snapshot-delete (an external one merges its overlays
             with block-commit, active or not)
  commit     QMP block-commit of an overlay chain the test made itself
             (blockdev-snapshot-sync of both disks, op 'overlay'): active
             commit with job-complete, or non-active of the middle layer

The kill lands within 3 ms of the command, anywhere in the operation's
typical duration (learnt from the operations seen to finish), or just
after it finished.  The amount of state is bounded (4 save states, 3
transaction snapshots, 4 domain snapshots, 2 overlays per disk): over a
bound, deletes and commits are picked.

After EACH kill:
  1. `qemu-img check` of every image file (exit 0, or 3 = leaks only;
     the leaks are sometimes repaired).  A file is skipped when it is
     byte-for-byte unchanged since its last clean check (same size and
     mtime): the result could not differ.
  2. A restart of xblk-system (-S) on the same files finishes or undoes
     what the kill left (catalog intents, transaction records, unfinished
     save states); then: no intent, journal or .part file is left; the
     catalog (x-xblk-snapshot-list, dumpxml) agrees with the images
     (`qemu-img info` of every file: internal snapshots, backing files):
     each listed domain snapshot has its internal snapshots on the images
     its record names, its external overlays exist and have the image it
     froze in their backing chain, its memory file exists; every internal
     snapshot on any image belongs to a save state, a transaction or a
     listed domain snapshot; save states and transaction snapshots are on
     both disks or neither (a save state with its VM state on exactly
     one); what finished before the kill is there, what was deleted is
     not, nothing comes back.
  3. No game save the guest had flushed is lost: the save area of the
     disk the restart opened (qemu-img dd) holds every save printed as
     written before the command (and those printed while it ran), as
     test-savestate-kill checks it.  A load or a revert legitimately rolls
     the disk back: then only "newest save >= min(flushed before the
     command, flushed before the snapshot was taken)" holds.  hdb shows
     this iteration's stamp, or after a load/revert maybe the snapshot's.
  4. Every listed save state and every domain snapshot with memory loads
     and reproduces its recorded frame hash: x-query-frame's {frame,
     hash} equals x-query-save-state's {frame, frame-hash} for save states
     and internal memory, the memory file's META record for external
     memory (docs/savestate.md), and what earlier checks saw.  The loads
     run in ONE more process per iteration, started with -S on COPIES of
     all the files: the files live in a folder reached through a symlink
     (every path xblk-system sees, and so every backing file and catalog
     path it records, goes through it); for the check the folder is
     copied (cp --sparse=always) and the symlink pointed at the copy, so
     loads and reverts (which change images and the catalog) leave the
     torture's files alone.  Save states are loaded first (HMP loadvm),
     then domain snapshots reverted (--paused), snapshots with internal
     disks first: a revert to an external snapshot moves the disks to a
     new overlay, after which internal snapshots below are refused by
     rule ("backing file of later external"), as they are when a later
     external snapshot already froze them (counted as not revertable).

Counts: XBLK_KILLS=N kills in all (default 300; XBLK_LONG=1: 10000), shared
by this file and test-crash-torture-2.py (XBLK_TORTURE_PART=i/n picks a
share; run-tests runs the two side by side), in cases of at most 2500
kills each.  The master seed is printed; XBLK_SEED=<n>
replays its choices (the kill instants depend on host timing, so a replay
is close, not exact).  XBLK_KEEP_FAILED=<dir> keeps a failing iteration's
files.  At the end a table: kills per operation (killed mid-operation /
after it finished), checks, loads, qemu-img checks, leaks, failures.
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
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'pylib'))
import killcheck as kc  # noqa: E402
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
KERNEL = os.path.join(xtest.BUILD, 'guest', 'xboxguest.elf')
DISC = os.path.join(xtest.BUILD, 'guest', 'disc.iso')
LONG = os.environ.get('XBLK_LONG') == '1'
SEED = int(os.environ.get('XBLK_SEED') or
           random.SystemRandom().randrange(1 << 32))
TOTAL_KILLS = int(os.environ.get('XBLK_KILLS') or (10000 if LONG else 300))
# The kills are shared by PARTS files (this one and
# test-crash-torture-2.py, which sets XBLK_TORTURE_PART=1/2) so that
# scripts/run-tests, which schedules whole files, runs them side by side.
_part = os.environ.get('XBLK_TORTURE_PART', '0/2').split('/')
PART, PARTS = int(_part[0]), int(_part[1])
KILLS = TOTAL_KILLS // PARTS + (PART < TOTAL_KILLS % PARTS)
CASE_KILLS = 2500               # kills per test case
DISKS = ('hda', 'hdb')
DEVS = {'hda': 'ide0-hd0', 'hdb': 'ide0-hd1'}
MAX_STATES, MAX_TXN, MAX_DSNAPS, MAX_OVERLAYS = 4, 3, 4, 2
MAX_FILES = 16                  # image files (reverts leave branches)
RUN_FOR = (0.02, 0.25)          # guest run before the command (s)

# Durations (s) assumed until some were seen.
EST_FLOOR = {'save': 0.12, 'load': 0.04, 'delete': 0.02, 'txn': 0.03,
             'dcreate': 0.12, 'drevert': 0.06, 'ddelete': 0.05,
             'overlay': 0.03, 'commit': 0.05}
OPS = ('guest', 'save', 'load', 'delete', 'txn', 'dcreate', 'drevert',
       'ddelete', 'overlay', 'commit')
ROWS = ('mi', 'mimix', 'medi', 'me', 'do', 'dodi')
# Rows with memory more often: their loads are the strongest check.
ROW_WEIGHTS = {'mi': 3, 'mimix': 2, 'medi': 3, 'me': 3, 'do': 1, 'dodi': 1}

# Refusals that are the documented rules, not failures.
RULE_REFUSALS = ('backing file of later external',  # revert
                 # delete: merging the overlay would lose another listed
                 # snapshot's internal snapshot (libvirt refuses too)
                 'would lose',
                 # delete: the overlay is a branch that a snapshot reads
                 "is not in the disk's chain", 'another branch',
                 'would change')

print('# test-crash-torture part %d/%d: %d kills, seed %d (XBLK_SEED=%d '
      'XBLK_TORTURE_PART=%d/%d to replay)' %
      (PART, PARTS, KILLS, SEED, SEED, PART, PARTS), flush=True)

Failure = kc.Failure


def snap_xml(name, row, img_dir):
    """The <domainsnapshot> document of a row; (xml, flags, memory mode,
    {disk: mode})."""
    mem = os.path.join(img_dir, name + '.mem')
    rows = {
        'mi': ("<memory snapshot='internal'/>",
               {'hda': 'internal', 'hdb': 'internal'}, 'internal', False),
        'mimix': ("<memory snapshot='internal'/>",
                  {'hda': 'internal', 'hdb': 'external'}, 'internal', False),
        'medi': ("<memory snapshot='external' file='%s'/>" % mem,
                 {'hda': 'internal', 'hdb': 'internal'}, 'external', False),
        'me': ("<memory snapshot='external' file='%s'/>" % mem,
               {'hda': 'external', 'hdb': 'external'}, 'external', False),
        'do': ('', {'hda': 'external', 'hdb': 'external'}, 'no', True),
        'dodi': ('', {'hda': 'internal', 'hdb': 'internal'}, 'no', True),
    }
    memx, disks, memory, disk_only = rows[row]
    x = '<domainsnapshot><name>%s</name>%s<disks>' % (name, memx)
    for d in DISKS:
        x += "<disk name='%s' snapshot='%s'/>" % (d, disks[d])
    x += '</disks></domainsnapshot>'
    return x, ({'disk-only': True} if disk_only else {}), memory, disks


class Machine:
    """One xblk-system process on the torture's disks (through the
    symlink), the disc, and the catalog."""

    def __init__(self, t, name, extra=()):
        self.t = t
        self.name = name
        self.sock = os.path.join(t.dir, '%s.sock' % name)
        self.console = os.path.join(t.dir, '%s.con' % name)
        self.errpath = os.path.join(t.dir, '%s.err' % name)
        for p in (self.sock, self.console, self.errpath):
            if os.path.exists(p):
                os.unlink(p)
        argv = [SYSTEM, '-machine', 'xbox,seed=%d' % t.guest_seed,
                '-nodefaults', '-display', 'none', '-kernel', KERNEL,
                '-snapshot-dir', t.lpath('catalog')]
        for i, d in enumerate(DISKS):
            argv += ['-drive', 'file=%s,format=qcow2,if=ide,index=%d' %
                     (t.lpath(t.drive[d]), i)]
        argv += ['-drive', 'file=%s,format=raw,if=ide,index=2,media=cdrom'
                 % DISC, '-debugcon', 'file:%s' % self.console,
                 '-qmp', 'unix:%s,server=on,wait=off' % self.sock]
        argv += list(extra)
        self.argv = argv
        with open(self.errpath, 'wb') as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=err)
        t.procs.append(self.proc)
        t.n['processes'] += 1
        try:
            self.q = qmpclient.QMPClient(path=self.sock, timeout=30)
            self.q.negotiate()
        except Exception as e:
            self.proc.poll()
            raise Failure('%s: no QMP monitor (%s); exit status %s, '
                          'stderr:\n%s' % (name, e, self.proc.returncode,
                                           self.stderr()))

    def stderr(self):
        try:
            with open(self.errpath, 'rb') as f:
                return f.read().decode(errors='replace')
        except FileNotFoundError:
            return ''

    def cmd(self, name, args=None):
        r = self.q.cmd(name, args)
        if 'error' in r:
            raise Failure('%s: %s %s failed: %s' % (self.name, name,
                                                   args, r['error']))
        return r['return']

    def hmp(self, line):
        return self.cmd('human-monitor-command', {'command-line': line})

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

    def wait_done(self, kind, timeout=60):
        """Reads messages (kept in q.events) until the command's reply
        (kind 'reply') or job k's concluded event (kind 'job') or the
        block job's end (kind 'blockjob')."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise Failure('%s: operation not done after %ds' %
                              (self.name, timeout))
            self.q.sock.settimeout(left)
            msg = self.q.recv()
            self.q.events.append(msg)
            if kind == 'reply' and ('return' in msg or 'error' in msg):
                return
            if kind == 'job' and msg.get('event') == 'JOB_STATUS_CHANGE' \
                    and msg['data']['id'] == 'k' and \
                    msg['data']['status'] == 'concluded':
                return
            if kind == 'blockjob' and msg.get('event') in (
                    'BLOCK_JOB_COMPLETED', 'BLOCK_JOB_ERROR'):
                return
            if kind == 'blockjob' and msg.get('event') == \
                    'BLOCK_JOB_READY':
                self.job_complete()

    def job_complete(self):
        # An active commit is ready: pivot now.
        self.q.send_raw(json.dumps({'execute': 'job-complete',
                                    'arguments': {'id': 'k'}}) + '\n')

    def pump(self, until):
        """Until time.time() reaches until: reads messages (kept in
        q.events) and completes an active commit once it is ready."""
        while True:
            left = until - time.time()
            if left <= 0:
                return
            self.q.sock.settimeout(left)
            try:
                msg = self.q.recv()
            except socket.timeout:
                return
            self.q.events.append(msg)
            if msg.get('event') == 'BLOCK_JOB_READY':
                self.job_complete()


class CrashTorture(xtest.TmpDirTestCase):

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

    # ------------------------------------------------------------ files

    def lpath(self, base):
        """A file as xblk-system sees it: through the symlink."""
        return os.path.join(self.link, base)

    def wpath(self, base):
        return os.path.join(self.work, base)

    def point_link(self, target):
        tmp = self.link + '.new'
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, self.link)

    def image_files(self):
        out = []
        for f in sorted(os.listdir(self.work)):
            if f.startswith(('hda.', 'hdb.')) and \
                    not f.endswith(('.xblk-txn', '.tmp', '.part')) and \
                    os.path.isfile(self.wpath(f)):
                out.append(f)
        return out

    def info(self, base):
        """qemu-img info of one file (None if it does not open)."""
        p = kc.run(['qemu-img', 'info', '--output=json', self.wpath(base)],
                   check=False)
        if p.returncode != 0:
            return None
        info = json.loads(p.stdout)
        # Every image here is qcow2: a file qemu-img probes as raw is an
        # overlay killed before its header was written (zeroes so far).
        return info if info.get('format') == 'qcow2' else None

    def infos(self):
        """{base: {'snaps': {tag: vm-state-size}, 'backing': base or
        None}} of every image file that opens; and the ones that do
        not."""
        out, bad = {}, []
        for f in self.image_files():
            i = self.info(f)
            if i is None:
                bad.append(f)
                continue
            b = i.get('full-backing-filename') or i.get('backing-filename')
            out[f] = {'snaps': {s['name']: s['vm-state-size']
                                for s in i.get('snapshots', [])},
                      'backing': os.path.basename(b) if b else None}
        return out, bad

    @staticmethod
    def chain(infos, top):
        out = []
        while top and top in infos and top not in out:
            out.append(top)
            top = infos[top]['backing']
        return out

    def qemu_img_check(self, what, rng):
        for f in self.image_files():
            path = self.wpath(f)
            st = os.stat(path)
            key = (st.st_size, st.st_mtime_ns, st.st_ino)
            if self.checked.get(f) == key:
                self.n['qemu-img checks skipped (unchanged)'] += 1
                continue
            if self.info(f) is None:
                # A kill before or while the overlay's header was
                # written: not an image yet; the restart must remove it.
                self.n['files not opening after a kill'] += 1
                continue
            p = kc.run(['qemu-img', 'check', path], check=False)
            self.n['qemu-img checks'] += 1
            if p.returncode == 3:
                self.n['qemu-img checks with leaks'] += 1
            elif p.returncode != 0:
                raise Failure('qemu-img check %s after %s: exit %d\n%s%s' %
                              (f, what, p.returncode, p.stdout, p.stderr))
            if p.returncode == 3 and rng.random() < 0.3:
                p = kc.run(['qemu-img', 'check', '-r', 'leaks', path],
                           check=False)
                self.n['leak repairs'] += 1
                if p.returncode != 0:
                    raise Failure('qemu-img check -r leaks %s after %s: '
                                  'exit %d\n%s%s' % (f, what, p.returncode,
                                                     p.stdout, p.stderr))
            st = os.stat(path)
            self.checked[f] = (st.st_size, st.st_mtime_ns, st.st_ino)

    # ------------------------------------------------------------ picking

    def live(self, kind):
        return [t for t, i in self.tags.items()
                if i['kind'] == kind and i['state'] != 'gone']

    def on_tops(self, t):
        return self.tags[t]['layers'] == self.tops

    def overlays(self, d):
        """Layers above the base in d's active chain."""
        return len(self.top_chain[d]) - 1

    def pick_op(self, rng):
        states = self.live('save')
        txns = self.live('txn')
        present_states = [t for t in states if self.tags[t]['state'] ==
                          'present' and self.on_tops(t)]
        deletable = [t for t in states + txns
                     if self.tags[t]['state'] == 'present' and
                     self.on_tops(t)]
        dsnaps = [n for n, i in self.dsnaps.items() if i['state'] !=
                  'gone']
        present_ds = [n for n in dsnaps
                      if self.dsnaps[n]['state'] == 'present']
        ext_ds = [n for n in present_ds if 'external' in
                  self.dsnaps[n]['disks'].values()]
        deep = max(self.overlays(d) for d in DISKS)
        files = len(self.image_files())
        w = {'guest': 1.0}
        if self.own:
            # Our own overlays (op 'overlay') are on top: only block-commit
            # and the operations that do not involve the catalog.
            w['commit'] = 4.0
            if len(states) < MAX_STATES:
                w['save'] = 1.0
            if present_states:
                w['load'] = 1.0
            if len(txns) < MAX_TXN:
                w['txn'] = 0.5
            if deletable:
                w['delete'] = 1.0
            if deep < MAX_OVERLAYS:
                w['overlay'] = 1.0
        else:
            if len(states) < MAX_STATES:
                w['save'] = 3.0
            if present_states:
                w['load'] = 2.0
            if deletable:
                w['delete'] = 6.0 if len(states) >= MAX_STATES or \
                    len(txns) >= MAX_TXN else 1.5
            if len(txns) < MAX_TXN:
                w['txn'] = 1.5
            if len(dsnaps) < MAX_DSNAPS:
                w['dcreate'] = 3.0
            if present_ds:
                w['drevert'] = 2.0
                w['ddelete'] = 1.5
                if len(dsnaps) >= MAX_DSNAPS or (ext_ds and (
                        deep >= MAX_OVERLAYS or files > MAX_FILES)):
                    w['ddelete'] = 8.0
            if deep < MAX_OVERLAYS and not dsnaps:
                # Our own overlays only beside an empty catalog: our
                # block-commit bypasses the domain layer, so it would
                # merge away internal snapshots the catalog lists (as a
                # raw block-commit under libvirt would).
                w['overlay'] = 1.0
        r = rng.uniform(0, sum(w.values()))
        for op, x in sorted(w.items()):
            r -= x
            if r <= 0:
                break
        target = None
        if op == 'load':
            target = rng.choice(sorted(present_states))
        elif op == 'delete':
            target = rng.choice(sorted(deletable))
        elif op == 'drevert':
            target = rng.choice(sorted(present_ds))
        elif op == 'ddelete':
            # Mostly leaves of the tree: an inner snapshot's overlay is
            # often read by its children, and its delete refused by rule.
            pool = ext_ds if ext_ds and w['ddelete'] >= 8.0 and \
                len(dsnaps) < MAX_DSNAPS else present_ds
            leaves = [n for n in pool if not self.ds_children.get(n)]
            if leaves and (w['ddelete'] >= 8.0 or rng.random() < 0.8):
                pool = leaves
            target = rng.choice(sorted(pool))
        elif op == 'dcreate':
            rows = [r for r in ROWS if deep < MAX_OVERLAYS and
                    files <= MAX_FILES or r in ('mi', 'medi', 'dodi')]
            target = rng.choices(rows, [ROW_WEIGHTS[r] for r in rows])[0]
        return op, target

    def kill_plan(self, rng, op):
        """(mode, delay): kill delay s after sending the command, or for
        mode 'after' delay s after it finished."""
        if op == 'guest':
            return 'guest only', rng.uniform(0, 0.05)
        est = max(self.durations[op][-5:] or [EST_FLOOR[op]])
        r = rng.random()
        if r < 0.2:
            return 'early', rng.uniform(0, 0.003)
        if r < 0.65:
            return 'during', rng.uniform(0, est)
        return 'after', rng.uniform(0, 0.01)

    # ------------------------------------------------------------ one kill

    def iteration(self, it, rng):
        self.t_lap = time.monotonic()
        kc.write_stamp(self.wpath(self.tops['hdb']), it)
        m = Machine(self, 'run')
        time.sleep(rng.uniform(*RUN_FOR))
        op, target = self.pick_op(rng)
        mode, delay = self.kill_plan(rng, op)
        f_cmd = m.cmd('x-query-frame')['frame']
        # What must survive: the whole game saves on the disk when this
        # run started (read by the last check; the kill of a process
        # loses no data that reached the image file), and those the guest
        # printed as written (flushed) since.
        written = dict(self.disk_saves)
        written.update(kc.parse_console(m.console))
        flushed = max(written) if written else 0
        snap_info = {'W': flushed, 'written': dict(written), 'f_cmd': f_cmd,
                     'stamp': it, 'frame': None, 'hash': None}
        cmd, args, wait = None, None, 'reply'
        if op == 'save':
            target = 's%d' % it
            vmdev = DEVS[rng.choice(DISKS)]
            cmd, wait = 'snapshot-save', 'job'
            args = {'job-id': 'k', 'tag': target, 'vmstate': vmdev,
                    'devices': [DEVS[d] for d in DISKS]}
            self.tags[target] = dict(snap_info, kind='save', state='maybe',
                                     layers=dict(self.tops), vmdev=vmdev)
        elif op == 'load':
            cmd, wait = 'snapshot-load', 'job'
            args = {'job-id': 'k', 'tag': target,
                    'vmstate': self.tags[target]['vmdev'],
                    'devices': [DEVS[d] for d in DISKS]}
        elif op == 'delete':
            cmd, wait = 'snapshot-delete', 'job'
            args = {'job-id': 'k', 'tag': target,
                    'devices': [DEVS[d] for d in DISKS]}
        elif op == 'txn':
            target = 't%d' % it
            cmd = 'transaction'
            args = {'actions': [
                {'type': 'blockdev-snapshot-internal-sync',
                 'data': {'device': DEVS[d], 'name': target}}
                for d in DISKS]}
            self.tags[target] = dict(snap_info, kind='txn', state='maybe',
                                     layers=dict(self.tops))
        elif op == 'dcreate':
            row = target
            target = 'd%d' % it
            xml, flags, memory, disks = snap_xml(target, row, self.link)
            cmd = 'x-xblk-snapshot-create'
            args = dict(flags, xml=xml)
            self.dsnaps[target] = dict(snap_info, row=row, state='maybe',
                                       memory=memory, disks=disks,
                                       layers=dict(self.tops))
        elif op == 'drevert':
            cmd = 'x-xblk-snapshot-revert'
            args = {'name': target, 'force': True}
        elif op == 'ddelete':
            cmd = 'x-xblk-snapshot-delete'
            args = {'name': target}
        elif op == 'overlay':
            target = 'm%d' % it
            cmd = 'transaction'
            args = {'actions': [
                {'type': 'blockdev-snapshot-sync',
                 'data': {'device': DEVS[d],
                          'snapshot-file': self.lpath('%s.%s' %
                                                      (d, target)),
                          'format': 'qcow2'}} for d in DISKS]}
            self.pending_own = {d: '%s.%s' % (d, target) for d in DISKS}
        elif op == 'commit':
            cmd, wait = 'block-commit', 'blockjob'
            d = rng.choice(sorted(self.own))
            chain = self.top_chain[d]
            own = self.own[d]
            if len(own) >= 2 and rng.random() < 0.5:
                # Non-active: the lowest own overlay into its base.
                top, base = own[0], chain[chain.index(own[0]) + 1]
                args = {'job-id': 'k', 'device': DEVS[d],
                        'top': self.lpath(top), 'base': self.lpath(base)}
                kind = 'non-active'
            else:
                top, base = own[-1], chain[1]
                args = {'job-id': 'k', 'device': DEVS[d],
                        'base': self.lpath(base)}
                kind = 'active'
            target = '%s %s %s->%s' % (d, kind, top, base)
            self.commit = {'disk': d, 'top': top, 'base': base,
                           'kind': kind}
        t_send = time.time()
        if cmd:
            m.q.send_raw(json.dumps({'execute': cmd, 'arguments': args}) +
                         '\n')
        dur = None
        if mode == 'after':
            m.wait_done(wait)
            dur = time.time() - t_send
        if delay and op == 'commit':
            m.pump(time.time() + delay)
        elif delay:
            time.sleep(delay)
        t_kill = time.time() - t_send
        msgs = m.kill()
        self.n['kills'] += 1

        # What the operation got to before the kill.
        reply, statuses, events = None, [], []
        for msg in msgs:
            if 'event' in msg:
                events.append(msg['event'])
                if msg['event'] == 'JOB_STATUS_CHANGE' and \
                        msg['data']['id'] == 'k':
                    statuses.append(msg['data']['status'])
            elif reply is None and ('return' in msg or 'error' in msg):
                reply = msg
        done = False
        refused = None
        if cmd is None:
            done = True
        elif wait == 'reply':
            if reply is not None and 'error' in reply:
                refused = reply['error']['desc']
            done = reply is not None and 'return' in reply
        else:
            if reply is not None and 'error' in reply:
                refused = reply['error']['desc']
            done = 'concluded' in statuses
            if 'aborting' in statuses or 'BLOCK_JOB_ERROR' in events:
                jerr = [msg['data'].get('error') for msg in msgs
                        if msg.get('event') == 'BLOCK_JOB_COMPLETED']
                raise Failure('%s %s failed (statuses %s, %s), killed at '
                              '%.1f ms (%s)' % (op, target, statuses, jerr,
                                                t_kill * 1e3, mode))
        if refused is not None:
            if not any(r in refused for r in RULE_REFUSALS):
                raise Failure('%s %s refused: %s' % (cmd, args, refused))
            self.n['refused by rule'] += 1
            self.refusals.add(refused)
            done = False
        label = op if op != 'dcreate' else 'dcreate ' + \
            self.dsnaps[target]['row']
        self.kill_counts.setdefault(label, [0, 0])
        self.kill_counts[label][1 if done else 0] += 1
        if done and dur is not None:
            # From the command to its reply or end (host side).
            self.durations[op].append(dur)
        print('# %d: %s %s, kill at %.1f ms (%s), %s; flushed <= %d' %
              (it, op, target or '', t_kill * 1e3, mode,
               'done' if done else ('refused' if refused else 'mid-op'),
               flushed), flush=True)
        what = 'kill %d (%s %s, kill at %.1f ms (%s), %s)' % (
            it, op, target or '', t_kill * 1e3, mode,
            'done' if done else 'mid-op')

        # The model: what must be there now.
        rollback = None
        if op == 'save' and done:
            self.tags[target]['state'] = 'present'
        elif op == 'txn':
            self.tags[target]['state'] = 'present' if done else 'maybe'
        elif op == 'delete' and refused is None:
            self.tags[target]['state'] = 'gone' if done else 'maybe'
        elif op == 'load':
            rollback = self.tags[target]
        elif op == 'dcreate' and done:
            self.dsnaps[target]['state'] = 'present'
        elif op == 'drevert' and refused is None:
            rollback = self.dsnaps[target]
        elif op == 'ddelete' and refused is None:
            self.dsnaps[target]['state'] = 'gone' if done else 'maybe'

        self.lap('run + operation')
        self.cur = (op, target, done)
        # 1. Every image consistent, as the kill left it.
        self.qemu_img_check(what, rng)
        self.lap('1 qemu-img check')
        # Our own overlays: the drives open what the test, as the
        # manager, recorded (docs: -blockdev/-drive name their files).
        self.settle_own(op, done, msgs)
        # 2. Restart: repairs, then the catalog against the images.
        self.check_restart(it, what, op)
        self.lap('2 restart + catalog')
        # The restart wrote the catalog's domain.xml naming the disks'
        # files: without our own overlays, the drives name the base
        # images again and xblk-system follows domain.xml from there.
        for d in DISKS:
            if not self.own.get(d):
                self.drive[d] = self.base[d]
        # 3. Flushed game saves and the second disk's stamp.
        self.check_data(it, what, written, flushed, m.console, rollback,
                        op, target)
        self.lap('3 data')
        # 4. Loads of everything listed, on copies.
        self.check_loads(it, what)
        self.lap('4 loads')

    def lap(self, name):
        now = time.monotonic()
        self.laps[name] = self.laps.get(name, 0.0) + now - self.t_lap
        self.t_lap = now

    # Our own overlays (blockdev-snapshot-sync, op 'overlay'): the test
    # keeps the drive's file itself, as libvirt keeps its domain XML.
    # The transaction creates both files before it switches either disk
    # to them: when both exist and open they are used (an overlay reads
    # through to the image below, so whether the kill came before or
    # after the switch, nothing is lost); otherwise the switch cannot
    # have happened and what a kill left is removed.
    def settle_own(self, op, done, msgs):
        if op == 'overlay':
            made = {}
            for d, f in self.pending_own.items():
                if os.path.exists(self.wpath(f)) and \
                        self.info(f) is not None:
                    made[d] = f
            if len(made) != len(DISKS):
                for f in self.pending_own.values():
                    if os.path.exists(self.wpath(f)):
                        os.unlink(self.wpath(f))
                        self.n['own overlays of an unfinished '
                               'transaction removed'] += 1
                made = {}
            for d, f in made.items():
                self.own.setdefault(d, []).append(f)
                self.drive[d] = f
            self.own = {d: v for d, v in self.own.items() if v} or {}
            if done and len(made) != 2:
                raise Failure('transaction of blockdev-snapshot-sync '
                              'returned, overlays made: %s' % made)
        elif op == 'commit':
            c = self.commit
            d = c['disk']
            completed = any(msg.get('event') == 'BLOCK_JOB_COMPLETED' and
                            'error' not in msg['data'] for msg in msgs)
            if c['kind'] == 'active':
                if completed:
                    # Pivoted: the drive is the base; the overlay goes.
                    os.unlink(self.wpath(c['top']))
                    self.own[d].remove(c['top'])
                    self.drive[d] = c['base']
                # else: the overlay is still the top (a commit that was
                # not completed leaves it whole; the base got copies of
                # some of its clusters, which the overlay hides).
            else:
                if completed:
                    # The layer above now reads the base: drop the file.
                    os.unlink(self.wpath(c['top']))
                    self.own[d].remove(c['top'])
                # else: the base may hold part of the layer's data, which
                # the layer (still in the chain) hides.
            if not self.own[d]:
                del self.own[d]

    def check_restart(self, it, what, op):
        m = Machine(self, 'chk', ['-S'])
        err = m.stderr()
        blocks = m.cmd('query-block')
        info_snaps = kc.parse_listing(m.hmp('info snapshots'))
        listed = m.cmd('x-xblk-snapshot-list')['snapshots']
        self.ds_children = {s['name']: s.get('children', 0) for s in listed}
        docs = {s['name']: m.cmd('x-xblk-snapshot-dumpxml',
                                 {'name': s['name']})['xml']
                for s in listed}
        m.quit()
        err += m.stderr()
        self.n['restarts'] += 1
        for line in err.splitlines():
            if line.strip() and 'follows its snapshots' not in line:
                self.n['repairs reported at start'] += 1
                key = ' '.join(w for w in line.split()
                               if not any(c.isdigit() for c in w))[:80]
                self.start_reports[key] = self.start_reports.get(key, 0) + 1
        tops = {}
        for b in blocks:
            for d in DISKS:
                if b['device'] == DEVS[d]:
                    tops[d] = os.path.basename(b['inserted']['file'])
        self.tops = tops
        infos, bad = self.infos()
        self.infos_now = infos
        self.top_chain = {d: self.chain(infos, tops[d]) for d in DISKS}
        ctx = '%s:\nstart report:\n%s\nimages: %s\ncatalog: %s' % (
            what, err, json.dumps(infos, sort_keys=True),
            sorted(docs))
        # Nothing half-done left.
        if bad:
            raise Failure('files that are not images after the restart: '
                          '%s; %s' % (bad, ctx))
        left = [f for f in os.listdir(self.wpath('catalog'))
                if f.endswith(('.intent.xml', '.journal')) or
                f.startswith('.tmp-')]
        left += [f for f in os.listdir(self.work)
                 if f.endswith(('.xblk-txn', '.xblk-txn.tmp', '.part'))]
        if left:
            raise Failure('left after the restart: %s; %s' % (left, ctx))
        for d in DISKS:
            if len(self.top_chain[d]) < 1 or \
                    self.top_chain[d][-1] != self.base[d]:
                raise Failure('%s opened %s, whose chain %s does not end '
                              'in %s; %s' % (d, tops[d], self.top_chain[d],
                                             self.base[d], ctx))
            if self.own.get(d) and tops[d] != self.own[d][-1]:
                raise Failure('%s opened %s, not the test\'s overlay %s; '
                              '%s' % (d, tops[d], self.own[d][-1], ctx))
        self.n['catalog checks'] += 1

        # Save states and transaction snapshots: whole or absent.
        removed = set(re.findall(r"removed the unfinished save state "
                                 r"'([^']*)'", err))
        tag_files = {}
        for f, i in infos.items():
            for t in i['snaps']:
                tag_files.setdefault(t, []).append(f)
        for t, info in self.tags.items():
            layers = [info['layers'][d] for d in DISKS]
            on = [f for f in tag_files.get(t, []) if f in layers]
            stray = [f for f in tag_files.get(t, []) if f not in layers]
            if stray:
                raise Failure('tag %r is on %s, not on the layers it was '
                              'taken on (%s); %s' % (t, stray, layers, ctx))
            if not all(f in infos for f in layers):
                # A layer was merged away (a domain snapshot's delete or
                # our commit removed the overlay): the snapshot went
                # with it.  What is left on the other layer is an orphan.
                if info['state'] != 'gone':
                    self.n['snapshots gone with a merged layer'] += 1
                self.drop_orphan(t, on, info)
                continue
            on_tops = layers == [tops[d] for d in DISKS]
            if t in removed and not on_tops and info['state'] != 'gone':
                # A whole save state whose layers are no longer the active
                # layer of every disk (one disk moved on to an overlay)
                # must not be taken for an unfinished save at start (the
                # bug this torture found in savestate_cleanup).
                raise Failure('save state %r, whole on %s, was removed at '
                              'start (tops now %s); %s' % (t, layers, tops,
                                                          ctx))
            whole = len(on) == 2
            if on and not whole:
                raise Failure('%s %r is on %s only (not whole); %s' %
                              (info['kind'], t, on, ctx))
            vm = [f for f in on if infos[f]['snaps'][t]]
            if whole and info['kind'] == 'save' and len(vm) != 1:
                raise Failure('save state %r has a VM state on %s; %s' %
                              (t, vm, ctx))
            if whole and info['kind'] == 'txn' and vm:
                raise Failure('transaction snapshot %r has a VM state on '
                              '%s; %s' % (t, vm, ctx))
            if info['state'] == 'present' and not whole:
                raise Failure('%s %r finished (or was seen) before, but is '
                              'missing; %s' % (info['kind'], t, ctx))
            if info['state'] == 'gone' and on:
                raise Failure('%s %r was deleted (or found absent), but is '
                              'back; %s' % (info['kind'], t, ctx))
            if info['state'] == 'maybe':
                info['state'] = 'present' if whole else 'gone'
            if on_tops and info['kind'] == 'save' and \
                    (t in info_snaps) != whole:
                raise Failure('save state %r: on the disks %s, info '
                              'snapshots %s; %s' % (t, whole,
                                                    t in info_snaps, ctx))

        # Domain snapshots: the catalog against the images.
        names = set(docs)
        for n in names:
            if n not in self.dsnaps:
                raise Failure('unknown domain snapshot %r listed; %s' %
                              (n, ctx))
        for n, ds in self.dsnaps.items():
            if ds['state'] == 'present' and n not in names:
                raise Failure('domain snapshot %r was created, but is not '
                              'listed; %s' % (n, ctx))
            if ds['state'] == 'gone' and n in names:
                raise Failure('domain snapshot %r was deleted (or found '
                              'absent), but is listed; %s' % (n, ctx))
            if ds['state'] == 'maybe':
                ds['state'] = 'present' if n in names else 'gone'
        for t, fs in tag_files.items():
            if t[0] in 'st' and t in self.tags:
                continue
            if t[0] == 'd' and t in names:
                continue
            raise Failure('internal snapshot %r on %s belongs to no save '
                          'state, transaction or listed domain snapshot; %s'
                          % (t, fs, ctx))
        for n in sorted(names):
            self.check_doc(n, docs[n], infos, tag_files, ctx)

    def drop_orphan(self, t, files, info):
        """The test removes what a merge left of snapshot t (its half on
        the layer that stayed; with qemu-img, no process running), so
        that it does not pile up."""
        for f in files:
            kc.run(['qemu-img', 'snapshot', '-d', t, self.wpath(f)])
            self.infos_now[f]['snaps'].pop(t, None)
        info['state'] = 'gone'

    def check_doc(self, n, doc, infos, tag_files, ctx):
        root = ET.fromstring(doc)
        ds = self.dsnaps[n]
        frozen = {}
        dom = root.find('domain')
        for disk in (dom.findall('devices/disk') if dom is not None
                     else []):
            tgt = disk.find('target').get('dev')
            src = disk.find('source')
            if src is not None and tgt in DISKS:
                frozen[tgt] = os.path.basename(src.get('file'))
        ctx = 'domain snapshot %r:\n%s\n%s' % (n, doc, ctx)
        vm_on = []
        for disk in root.findall('disks/disk'):
            d, mode = disk.get('name'), disk.get('snapshot')
            if d not in DISKS:
                continue
            if mode != ds['disks'][d]:
                raise Failure('%s: disk %s is %s, created %s; %s' %
                              (n, d, mode, ds['disks'][d], ctx))
            img = frozen.get(d)
            if img not in infos:
                raise Failure('%s: the image of %s (%s) is missing; %s' %
                              (n, d, img, ctx))
            if mode == 'internal':
                was = ds.get('frozen', {}).get(d)
                if n not in infos[img]['snaps']:
                    raise Failure('%s: no internal snapshot on %s; %s' %
                                  (n, img, ctx))
                if infos[img]['snaps'][n]:
                    vm_on.append(img)
            elif mode == 'external':
                src = os.path.basename(disk.find('source').get('file'))
                if src not in infos:
                    raise Failure('%s: overlay %s of %s is missing; %s' %
                                  (n, src, d, ctx))
                ch = self.chain(infos, src)
                if img not in ch[1:]:
                    raise Failure('%s: overlay %s of %s does not read %s '
                                  '(chain %s); %s' % (n, src, d, img, ch,
                                                      ctx))
        mem = root.find('memory')
        mode = mem.get('snapshot') if mem is not None else 'no'
        if mode != ds['memory']:
            raise Failure('%s: memory %s, created %s; %s' %
                          (n, mode, ds['memory'], ctx))
        if mode == 'internal' and len(vm_on) != 1:
            raise Failure('%s: internal memory on %s; %s' %
                          (n, vm_on or 'no image', ctx))
        if mode == 'external':
            f = mem.get('file')
            if not os.path.exists(f):
                raise Failure('%s: memory file %s is missing; %s' %
                              (n, f, ctx))
            ds['mem_meta'] = kc.stream_meta(f)
        if mode == 'internal':
            ds['vm_image'] = vm_on[0]
        ds['frozen'] = frozen

    def check_data(self, it, what, written, flushed, console, rollback,
                   op, target):
        written_end = dict(written)
        written_end.update(kc.parse_console(console))
        started_max = max(list(written_end) + [flushed]) + 1
        raw = kc.parse_area(kc.read_area(self.wpath(self.tops['hda']),
                                         os.path.join(self.dir,
                                                      'area.raw')))
        self.n['flushed-data checks'] += 1
        if rollback is not None:
            bound = min(flushed, rollback['W'])
            top = kc.newest(raw)
            if top < bound:
                raise Failure('%s: newest game save on the disk is %d, '
                              'below %d (flushed before the command and '
                              'before the snapshot)' % (what, top, bound))
        else:
            kc.check_flushed(raw, written, flushed, started_max, what)
            if started_max - 1 > flushed:
                kc.check_flushed(raw, written_end, started_max - 1,
                                 started_max, what + ', a game save '
                                 'flushed after the command was sent')
        self.disk_saves = kc.whole_saves(raw)
        got = kc.read_stamp(self.wpath(self.tops['hdb']),
                            os.path.join(self.dir, 'stamp.raw'))
        allowed = [it] + ([rollback['stamp']] if rollback else [])
        if got not in [x % 62500 for x in allowed]:
            raise Failure('%s: hdb shows the stamp of iteration %s, '
                          'expected %s' % (what, got, allowed))
        self.n['stamp checks'] += 1

    def check_loads(self, it, what):
        states = sorted(t for t, i in self.tags.items()
                        if i['kind'] == 'save' and i['state'] == 'present'
                        and self.on_tops(t))
        ds = [n for n, i in self.dsnaps.items()
              if i['state'] == 'present' and i['memory'] != 'no']
        # Internal disks first (see the header), then mixed, external.
        ds.sort(key=lambda n: (-list(self.dsnaps[n]['disks'].values())
                               .count('internal'), n))
        if not states and not ds:
            return
        copy = os.path.join(self.dir, 'copy')
        shutil.rmtree(copy, ignore_errors=True)
        kc.run(['cp', '-a', '--sparse=always', self.work, copy])
        self.point_link(copy)
        try:
            m = Machine(self, 'load', ['-S'])
            recorded = {}
            for t in states:
                ss = m.cmd('x-query-save-state', {'tag': t})
                recorded[t] = (ss['frame'], ss.get('frame-hash'))
            for n in ds:
                info = self.dsnaps[n]
                if info['memory'] == 'external':
                    recorded[n] = info['mem_meta']
                elif info['vm_image'] in self.tops.values():
                    ss = m.cmd('x-query-save-state', {'tag': n})
                    recorded[n] = (ss['frame'], ss.get('frame-hash'))
            for t in states:
                out = m.hmp('loadvm %s' % t)
                if out.strip():
                    raise Failure('loadvm %s: %s' % (t, out))
                self.compare_frame(m, t, self.tags[t], recorded[t], what)
                self.n['save states loaded'] += 1
            moved = False
            for n in ds:
                info = self.dsnaps[n]
                r = m.q.cmd('x-xblk-snapshot-revert',
                            {'name': n, 'paused': True, 'force': True})
                if 'error' in r:
                    desc = r['error']['desc']
                    buried = any(
                        info['frozen'].get(d) != self.tops[d]
                        for d in DISKS if info['disks'][d] == 'internal')
                    if 'backing file of later external' in desc and \
                            (buried or moved):
                        self.n['not revertable by rule (internal below '
                               'an external)'] += 1
                        continue
                    raise Failure('%s: revert of %r refused: %s' %
                                  (what, n, desc))
                if 'external' in info['disks'].values():
                    moved = True
                if n not in recorded:
                    raise Failure('%s: %r reverted, but its VM state is '
                                  'not on the active layer' % (what, n))
                self.compare_frame(m, n, info, recorded[n], what)
                self.n['domain snapshots reverted'] += 1
            m.quit()
        finally:
            self.point_link(self.work)
        self.n['load checks'] += 1

    def compare_frame(self, m, name, info, rec, what):
        st = m.cmd('query-status')
        fr = m.cmd('x-query-frame')
        if st['running']:
            raise Failure('%s: %r loaded, the machine runs: %s' %
                          (what, name, st))
        got = (fr['frame'], fr.get('hash'))
        if rec[1] is None or got != tuple(rec):
            raise Failure('%s: %r loaded shows frame %d hash %s, it '
                          'recorded frame %s hash %s' %
                          (what, name, got[0], got[1], rec[0], rec[1]))
        if info['hash'] is not None and (info['frame'], info['hash']) != got:
            raise Failure('%s: %r loaded shows frame %d hash %s, an '
                          'earlier load showed frame %d hash %s' %
                          (what, name, got[0], got[1], info['frame'],
                           info['hash']))
        if got[0] < info['f_cmd']:
            raise Failure('%s: %r has frame %d, before the frame %d it '
                          'was requested at' % (what, name, got[0],
                                                info['f_cmd']))
        info['frame'], info['hash'] = got

    # ------------------------------------------------------------ the run

    def keep_failed(self):
        keep = os.environ.get('XBLK_KEEP_FAILED')
        if keep:
            self.reap()
            if os.path.islink(self.link):
                self.point_link(self.work)
            dst = os.path.join(keep, self.id())
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(self.dir, dst, symlinks=True,
                            ignore=shutil.ignore_patterns('*.sock', 'copy'))
            print('# files kept in %s' % dst, flush=True)

    def run_case(self, case, kills):
        rng = random.Random('%d-%d-%s' % (SEED, PART, case))
        self.guest_seed = rng.randrange(1, 1 << 16)
        self.work = os.path.join(self.dir, 'w')
        self.link = os.path.join(self.dir, 'img')
        os.mkdir(self.work)
        os.mkdir(self.wpath('catalog'))
        self.point_link(self.work)
        self.base = {'hda': 'hda.qcow2', 'hdb': 'hdb.qcow2'}
        kc.run(['qemu-img', 'create', '-q', '-f', 'qcow2',
                self.wpath('hda.qcow2'), '8G'])
        kc.run(['qemu-img', 'create', '-q', '-f', 'qcow2',
                self.wpath('hdb.qcow2'), '64M'])
        self.drive = dict(self.base)
        self.tops = dict(self.base)
        self.top_chain = {d: [self.base[d]] for d in DISKS}
        self.own = {}
        self.tags, self.dsnaps, self.checked = {}, {}, {}
        self.disk_saves = {}
        self.ds_children = {}
        self.refusals = set()
        self.laps = {}
        self.start_reports = {}
        self.kill_counts = {}
        self.durations = {op: [] for op in OPS}
        self.n = {k: 0 for k in (
            'kills', 'processes', 'restarts', 'qemu-img checks',
            'qemu-img checks with leaks', 'qemu-img checks skipped '
            '(unchanged)', 'leak repairs', 'catalog checks',
            'flushed-data checks', 'stamp checks', 'load checks',
            'save states loaded', 'domain snapshots reverted',
            'repairs reported at start', 'refused by rule')}
        from collections import defaultdict
        self.n = defaultdict(int, self.n)
        t0 = time.monotonic()
        done = 0
        try:
            for it in range(kills):
                self.iteration(it, rng)
                done += 1
        except Exception as e:
            self.keep_failed()
            raise Failure('%s: seed %d (XBLK_SEED=%d to replay), kill %d: '
                          '%s: %s' % (case, SEED, SEED, done,
                                      type(e).__name__, e)) from None
        secs = time.monotonic() - t0
        self.report(case, secs, done)

    def report(self, case, secs, done):
        print('# %s: %d kills in %.1f s (%.2f s per kill), guest seed %d' %
              (case, done, secs, secs / max(done, 1), self.guest_seed))
        print('# %-34s %8s %8s' % ('kills per operation', 'mid-op',
                                   'after'))
        tot = [0, 0]
        for op in sorted(self.kill_counts):
            a, b = self.kill_counts[op]
            tot[0] += a
            tot[1] += b
            print('#   %-32s %8d %8d' % (op, a, b))
        print('#   %-32s %8d %8d' % ('total', tot[0], tot[1]))
        for k in sorted(self.n):
            print('# %-50s %8d' % (k, self.n[k]))
        print('# %-50s %8d' % ('failures', 0))
        print('# time per phase (s per kill): %s' % ', '.join(
            '%s %.3f' % (k, v / max(done, 1))
            for k, v in sorted(self.laps.items())))
        for k, v in sorted(self.start_reports.items()):
            print('# reported at start (%dx): %s' % (v, k))
        if self.refusals:
            print('# refusals by rule seen: %s' % sorted(self.refusals))
        print('# durations seen (ms): %s' % '; '.join(
            '%s n=%d median %.0f max %.0f' %
            (op, len(ds), sorted(ds)[len(ds) // 2] * 1e3, max(ds) * 1e3)
            for op, ds in sorted(self.durations.items()) if ds))
        print('# seed %d' % SEED, flush=True)


def _make_cases():
    n_cases = max(1, -(-KILLS // CASE_KILLS))
    for i in range(n_cases):
        kills = min(CASE_KILLS, KILLS - i * CASE_KILLS)

        def test(self, i=i, kills=kills):
            self.run_case('case %d' % i, kills)
        test.__name__ = 'test_kills_%d' % i
        setattr(CrashTorture, test.__name__, test)


_make_cases()

if __name__ == '__main__':
    xtest.main()
