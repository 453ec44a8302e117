#!/usr/bin/env python3
"""test-domain-snapshots: libvirt-style domain snapshots of the running
console machine over QMP (x-xblk-snapshot-*), checked on the artifacts.

Each test starts build/xblk-system with the reference guest on two fresh
qcow2 hard disks (hda, hdb) and its DVD, and a catalog beside hda.

- The combination table (docs/snapshots.md): every valid row for a
  running and a paused machine - memory internal / external / no, each
  disk internal / external / no / manual, --disk-only - checked with
  `qemu-img snapshot -l` (the tag, with a VM state where the memory is),
  `qemu-img info --backing-chain` (overlays), the memory file and the
  catalog's document (validated against libvirt's schema when it is
  installed); each invalid row is refused with an error naming its rule
  and leaves no artifact.
- Reverts: a snapshot of a paused machine, reverted after the guest ran
  on, gives back its frame and state hash (x-query-frame) and, after
  quitting, its disk contents (compared with the snapshot's own image:
  `qemu-img convert -l` of the internal snapshot, the frozen image of an
  external one); reverting to an external snapshot starts a new overlay
  and keeps the branch that was left.
- The tree: three levels with branches, revert to a middle node and a new
  branch, delete with --children, --children-only and --metadata, and a
  redefine after the catalog is removed.
- Kills: SIGKILL during create, revert and delete; the next start repairs
  the catalog (unfinished snapshots removed or finished), the images pass
  `qemu-img check` and every listed snapshot reverts.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import killcheck  # noqa: E402
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
DISC = os.path.join(xtest.BUILD, 'guest', 'disc.iso')
SCHEMA = '/usr/share/libvirt/schemas/domainsnapshot.rng'


def qemu_img(*args):
    r = subprocess.run(['qemu-img'] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    return r.returncode, r.stdout.decode()


def image_digest(path, snapshot=None):
    """SHA-256 of the guest-visible contents (a raw conversion)."""
    out = path + '.raw-digest'
    args = ['convert', '-O', 'raw']
    if snapshot:
        args += ['-l', 'snapshot.name=' + snapshot]
    rc, text = qemu_img(*(args + [path, out]))
    assert rc == 0, text
    h = hashlib.sha256()
    with open(out, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    os.unlink(out)
    return h.hexdigest()


class Machine(xtest.TmpDirTestCase):
    """The reference guest on hda and hdb, its disc in hdc."""

    def setUp(self):
        super().setUp()
        self.hda = self.path('hda.qcow2')
        self.hdb = self.path('hdb.qcow2')
        self.catalog = self.hda + '.snapshots'
        for f in (self.hda, self.hdb):
            xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', f, '1G'])
        self.srv = None

    def tearDown(self):
        if self.srv:
            self.srv.stop()
        super().tearDown()

    def start(self, extra=()):
        self.srv = qmpclient.Server(
            [SYSTEM, '-machine', 'xbox,seed=1', '-display', 'none',
             '-name', 'console',
             '-drive', 'file=%s,format=qcow2,if=ide,index=0' % self.hda,
             '-drive', 'file=%s,format=qcow2,if=ide,index=1' % self.hdb,
             '-drive', 'file=%s,format=raw,if=ide,index=2,media=cdrom'
             % DISC] + list(extra), tmpdir=self.dir)
        self.q = self.srv.client().negotiate()
        return self.q

    def quit(self):
        self.q.cmd('quit')
        rc, out, err = self.srv.stop()
        self.srv = None
        self.assertEqual(rc, 0, err)
        return err

    def ok(self, cmd, **args):
        r = self.q.cmd(cmd, args)
        self.assertIn('return', r, '%s %s: %s' % (cmd, args, r))
        return r['return']

    def err(self, cmd, **args):
        r = self.q.cmd(cmd, args)
        self.assertIn('error', r, '%s %s: %s' % (cmd, args, r))
        return r['error']['desc']

    def create(self, xml, **flags):
        return self.ok('x-xblk-snapshot-create', xml=xml, **flags)

    def frame(self):
        return self.ok('x-query-frame')

    def wait_frame(self, n, timeout=60):
        end = time.monotonic() + timeout
        while self.frame()['frame'] < n:
            self.assertLess(time.monotonic(), end)
            time.sleep(0.02)

    def stop(self):
        self.ok('stop')

    # -U: the image may be in use by the running xblk-system, which holds
    # QEMU's image locks on it.
    def tags(self, image):
        rc, text = qemu_img('snapshot', '-l', '-U', image)
        self.assertEqual(rc, 0, text)
        tags = {}
        for line in text.splitlines()[2:]:
            cols = line.split()
            if len(cols) >= 3:
                tags[cols[1]] = ' '.join(cols[2:4])
        return tags

    def chain(self, image):
        rc, text = qemu_img('info', '-U', '--backing-chain', '--output=json',
                            image)
        self.assertEqual(rc, 0, text)
        return [i['filename'] for i in json.loads(text)]

    def check_clean(self, *images):
        for img in images:
            rc, text = qemu_img('check', img)
            self.assertEqual(rc, 0, text)

    def document(self, name):
        xml = self.ok('x-xblk-snapshot-dumpxml', name=name)['xml']
        if os.path.exists(SCHEMA) and shutil.which('xmllint'):
            p = self.path(name + '.check.xml')
            with open(p, 'w') as f:
                f.write(xml)
            r = subprocess.run(['xmllint', '--noout', '--relaxng', SCHEMA,
                                p], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            self.assertEqual(r.returncode, 0, r.stdout.decode() + xml)
        return xml


def snap(name, memory=None, disks=(), desc=None):
    """A <domainsnapshot> document: memory 'internal' / 'no' / a path
    (external); disks (dev, mode[, file])."""
    x = '<domainsnapshot><name>%s</name>' % name
    if desc:
        x += '<description>%s</description>' % desc
    if memory is not None:
        if memory.startswith('/'):
            x += "<memory snapshot='external' file='%s'/>" % memory
        else:
            x += "<memory snapshot='%s'/>" % memory
    if disks:
        x += '<disks>'
        for d in disks:
            if len(d) == 3:
                x += ("<disk name='%s' snapshot='%s'><source file='%s'/>"
                      "</disk>" % d)
            else:
                x += "<disk name='%s' snapshot='%s'/>" % d
        x += '</disks>'
    return x + '</domainsnapshot>'


class Table(Machine):
    """Each valid row, running and paused; each invalid row refused."""

    def row(self, name, xml, expect, paused=False, **flags):
        """Creates a snapshot and checks its artifacts against expect:
        {'hda': 'internal'|'external'|'none', 'hdb': ..., 'memory':
        'internal'|'external'|'no'}."""
        if paused:
            self.stop()
        hda_top = self.top('hda')
        hdb_top = self.top('hdb')
        r = self.create(xml, **flags)
        self.assertEqual(r['name'], name)
        self.assertGreater(r['guest-pause-ns'], 0)
        doc = self.document(name)
        self.assertIn("<state>%s</state>" % (
            'disk-snapshot' if flags.get('disk-only') else
            'paused' if paused else 'running'), doc)
        mem_in = None
        for dev, before in (('hda', hda_top), ('hdb', hdb_top)):
            mode = expect[dev]
            tags = self.tags(before)
            if mode == 'internal':
                self.assertIn(name, tags, dev)
            if mode == 'external':
                now = self.top(dev)
                self.assertNotEqual(now, before, dev)
                self.assertEqual(self.chain(now)[1], before, dev)
            if mode == 'none':
                self.assertEqual(self.top(dev), before, dev)
                self.assertNotIn(name, tags, dev)
            if name in tags and not tags[name].startswith('0 B'):
                mem_in = dev
        if expect['memory'] == 'internal':
            self.assertIsNotNone(mem_in, 'no VM state for ' + name)
        else:
            self.assertIsNone(mem_in, 'a VM state for ' + name)
        mem = self.path(name + '.mem')
        self.assertEqual(os.path.exists(mem), expect['memory'] == 'external')
        self.assertFalse(os.path.exists(mem + '.part'))
        if paused:
            self.ok('cont')
        return doc

    def top(self, dev):
        for d in self.ok('query-block'):
            if d['device'] == 'ide0-hd%d' % (0 if dev == 'hda' else 1):
                return d['inserted']['file']
        self.fail('no drive ' + dev)

    def rows(self, paused):
        p = self.path
        cases = [
            ('mi', snap('mi'), {'memory': 'internal', 'hda': 'internal',
                                'hdb': 'internal'}, {}),
            ('mi-de', snap('mi-de', 'internal',
                           [('hda', 'external'), ('hdb', 'external')]),
             {'memory': 'internal', 'hda': 'external', 'hdb': 'external'},
             {}),
            ('mi-mix', snap('mi-mix', 'internal',
                            [('hda', 'internal'), ('hdb', 'external')]),
             {'memory': 'internal', 'hda': 'internal', 'hdb': 'external'},
             {}),
            ('me-di', snap('me-di', p('me-di.mem'),
                           [('hda', 'internal'), ('hdb', 'internal')]),
             {'memory': 'external', 'hda': 'internal', 'hdb': 'internal'},
             {}),
            ('me', snap('me', p('me.mem')),
             {'memory': 'external', 'hda': 'external', 'hdb': 'external'},
             {}),
            ('me-mix', snap('me-mix', p('me-mix.mem'),
                            [('hda', 'external'), ('hdb', 'no')]),
             {'memory': 'external', 'hda': 'external', 'hdb': 'none'}, {}),
            ('mn-di', snap('mn-di', 'no'),
             {'memory': 'no', 'hda': 'internal', 'hdb': 'internal'}, {}),
            ('mn-de', snap('mn-de', 'no', [('hda', 'external'),
                                           ('hdb', 'external')]),
             {'memory': 'no', 'hda': 'external', 'hdb': 'external'}, {}),
            ('mi-man', snap('mi-man', 'internal', [('hda', 'internal'),
                                                   ('hdb', 'manual')]),
             {'memory': 'internal', 'hda': 'internal', 'hdb': 'none'}, {}),
            ('do', snap('do'),
             {'memory': 'no', 'hda': 'external', 'hdb': 'external'},
             {'disk-only': True}),
            ('do-di', snap('do-di', None, [('hda', 'internal'),
                                           ('hdb', 'internal')]),
             {'memory': 'no', 'hda': 'internal', 'hdb': 'internal'},
             {'disk-only': True}),
            ('do-mix', snap('do-mix', None, [('hda', 'internal'),
                                             ('hdb', 'external')]),
             {'memory': 'no', 'hda': 'internal', 'hdb': 'external'},
             {'disk-only': True}),
        ]
        self.start()
        self.wait_frame(5)
        for name, xml, expect, flags in cases:
            doc = self.row(name, xml, expect, paused=paused, **flags)
            if name == 'mi-man':
                self.assertIn("<disk name='hdb' snapshot='manual'/>", doc)
        listed = [s['name'] for s in
                  self.ok('x-xblk-snapshot-list')['snapshots']]
        # Creation order: seconds, then names.
        self.assertEqual(sorted(listed), sorted(c[0] for c in cases))
        self.quit()
        self.check_clean(self.hda, self.hdb)

    def test_rows_running(self):
        self.rows(paused=False)

    def test_rows_paused(self):
        self.rows(paused=True)

    def test_invalid_rows(self):
        self.start()
        self.wait_frame(2)
        # The commands are introspectable like compiled ones.
        cmds = {c['name'] for c in self.ok('query-commands')}
        schema = {e['name']: e for e in self.ok('query-qmp-schema')}
        for c in ('create', 'redefine', 'list', 'info', 'dumpxml',
                  'current', 'parent', 'edit', 'revert', 'delete'):
            self.assertIn('x-xblk-snapshot-' + c, cmds)
            self.assertEqual(schema['x-xblk-snapshot-' + c]['meta-type'],
                             'command')
        cases = [
            (snap('x', 'internal'), {'disk-only': True},
             'disk-only snapshot'),
            (snap('x', self.path('x.mem')), {'disk-only': True},
             'cannot include memory'),
            (snap('x', 'no', [('hda', 'no'), ('hdb', 'manual')]), {},
             'nothing selected for snapshot'),
            (snap('x', None, [('hdz', 'internal')]), {},
             "no disk named 'hdz'"),
            (snap('x', None, [('hda', 'internal'), ('hda', 'external')]), {},
             'twice'),
            (snap('x', None, [('hda', 'external', self.hdb)]), {},
             'external snapshot file for disk hda already exists'),
            ('<domainsnapshot><name>../x</name></domainsnapshot>', {},
             'name'),
            ('<domainsnapshot><name>x</name>', {}, ''),
            ('<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
             '<domainsnapshot><name>&e;</name></domainsnapshot>', {}, ''),
        ]
        for xml, flags, words in cases:
            msg = self.err('x-xblk-snapshot-create', xml=xml, **flags)
            self.assertIn(words, msg, xml)
        # --validate: libvirt's schema refuses what the parser ignores.
        if os.path.exists(SCHEMA):
            bogus = '<domainsnapshot><name>x</name><bogus/></domainsnapshot>'
            self.assertIn('bogus', self.err('x-xblk-snapshot-create',
                                            xml=bogus, validate=True))
        self.create(snap('dup', 'no'))
        self.assertIn('already exists', self.err(
            'x-xblk-snapshot-create', xml=snap('dup', 'no')))
        self.assertIn('Parameter', self.err('x-xblk-snapshot-create',
                                            xml=snap('y'), bogus=True))
        self.assertIn("needs 'redefine'", self.err(
            'x-xblk-snapshot-create', xml=snap('y'), current=True))
        names = [s['name'] for s in
                 self.ok('x-xblk-snapshot-list')['snapshots']]
        self.assertEqual(names, ['dup'])
        self.quit()
        self.assertEqual(sorted(self.tags(self.hda)), ['dup'])
        self.assertEqual(self.chain(self.hda), [self.hda])
        self.assertFalse(os.path.exists(self.path('x.mem')))
        self.check_clean(self.hda, self.hdb)


ROWS = [
    # name, memory, disks, disk-only
    ('r1', 'internal', [], False),
    ('r2', 'internal', [('hda', 'external'), ('hdb', 'external')], False),
    ('r3', 'internal', [('hda', 'internal'), ('hdb', 'external')], False),
    ('r4', 'internal', [('hda', 'internal'), ('hdb', 'manual')], False),
    ('r5', 'MEM', [('hda', 'internal'), ('hdb', 'internal')], False),
    ('r6', 'MEM', [], False),
    ('r7', 'MEM', [('hda', 'external'), ('hdb', 'no')], False),
    ('r8', 'no', [], False),
    ('r9', 'no', [('hda', 'external'), ('hdb', 'external')], False),
    ('r10', None, [], True),
    ('r11', None, [('hda', 'internal'), ('hdb', 'internal')], True),
    ('r12', None, [('hda', 'internal'), ('hdb', 'external')], True),
]


class EveryRow(Machine):
    """Each row, taken on a paused machine, reverted after the guest ran
    on: the memory rows give back the frame and the state hash, and every
    disk the row took reads as at the snapshot."""

    SIZE = '128M'

    def setUp(self):
        super().setUp()
        for f in (self.hda, self.hdb):
            xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', f,
                       self.SIZE])

    def run_row(self, name, memory, disks, disk_only):
        if memory == 'MEM':
            memory = self.path(name + '.mem')
        self.start()
        self.wait_frame(10)
        self.stop()
        before = self.frame()
        flags = {'disk-only': True} if disk_only else {}
        self.create(snap(name, memory, disks), **flags)
        info = self.ok('x-xblk-snapshot-info', name=name)
        self.ok('cont')
        self.wait_frame(before['frame'] + 25)
        r = self.ok('x-xblk-snapshot-revert', name=name, paused=True,
                    force=True)
        self.assertEqual(r['state'], 'paused')
        if info['memory'] != 'no':
            self.assertEqual(self.frame(), before, name)
        else:
            self.assertLess(self.frame()['frame'], before['frame'], name)
        xml = self.ok('x-xblk-snapshot-dumpxml', name=name)['xml']
        tops = {d['device']: d['inserted']['file']
                for d in self.ok('query-block') if d.get('inserted')}
        self.quit()
        for dev, image, drive in (('hda', self.hda, 'ide0-hd0'),
                                  ('hdb', self.hdb, 'ide0-hd1')):
            mode = "<disk name='%s' snapshot='" % dev
            mode = xml[xml.index(mode) + len(mode):].split("'")[0]
            if mode == 'internal':
                self.assertEqual(tops[drive], image, name)
                self.assertEqual(image_digest(image),
                                 image_digest(image, name), (name, dev))
            elif mode == 'external':
                self.assertEqual(self.chain(tops[drive])[1], image, name)
                self.assertEqual(image_digest(tops[drive]),
                                 image_digest(image), (name, dev))
            self.check_clean(tops[drive])

    def test_every_row(self):
        for name, memory, disks, disk_only in ROWS:
            with self.subTest(row=name):
                self.run_row(name, memory, disks, disk_only)
            for f in os.listdir(self.dir):
                p = self.path(f)
                if os.path.isdir(p):
                    shutil.rmtree(p)
                else:
                    os.unlink(p)
            for f in (self.hda, self.hdb):
                xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', f,
                           self.SIZE])


class Revert(Machine):
    """Reverts give back the frame, the state hash and the disks."""

    def paused_snapshot(self, name, xml, **flags):
        self.stop()
        before = self.frame()
        self.create(xml, **flags)
        self.ok('cont')
        return before

    def revert_check(self, name, before, **flags):
        self.wait_frame(before['frame'] + 30)
        r = self.ok('x-xblk-snapshot-revert', name=name, paused=True,
                    **flags)
        self.assertEqual(r['state'], 'paused')
        self.assertEqual(self.frame(), before)

    def test_internal_and_external_memory(self):
        self.start()
        self.wait_frame(20)
        a = self.paused_snapshot('a', snap('a'))
        self.wait_frame(a['frame'] + 20)
        b = self.paused_snapshot('b', snap('b', self.path('b.mem'),
                                           [('hda', 'internal'),
                                            ('hdb', 'internal')]))
        self.revert_check('a', a)
        self.ok('cont')
        self.revert_check('b', b)
        self.assertEqual(self.ok('x-xblk-snapshot-current'), {'name': 'b'})
        self.quit()
        # Paused at b since the revert: the disks are b's snapshot.
        self.assertEqual(image_digest(self.hda), image_digest(self.hda, 'b'))
        self.assertEqual(image_digest(self.hdb), image_digest(self.hdb, 'b'))
        self.check_clean(self.hda, self.hdb)

    def test_external_revert_keeps_the_branch(self):
        self.start()
        self.wait_frame(20)
        a = self.paused_snapshot('a', snap('a', self.path('a.mem')))
        frozen = self.chain(self.path('hda.a'))[1]
        self.assertEqual(frozen, self.hda)
        self.revert_check('a', a)
        r = self.ok('query-block')
        tops = sorted(d['inserted']['file'] for d in r
                      if d.get('inserted') and 'hd' in d['device'])
        self.assertEqual(tops, [self.path('hda.a-r1'),
                                self.path('hdb.a-r1')])
        # The branch the revert left is still there, untouched.
        self.assertTrue(os.path.exists(self.path('hda.a')))
        self.quit()
        self.assertEqual(self.chain(self.path('hda.a-r1')),
                         [self.path('hda.a-r1'), self.hda])
        self.assertEqual(image_digest(self.path('hda.a-r1')),
                         image_digest(self.hda))
        self.check_clean(self.path('hda.a-r1'), self.path('hda.a'),
                         self.hda)

    def test_restart_follows_the_catalog(self):
        self.start()
        self.wait_frame(10)
        self.create(snap('d', None), **{'disk-only': True})
        self.quit()
        self.start()
        r = self.ok('query-block')
        tops = [d['inserted']['file'] for d in r
                if d.get('inserted') and d['device'] == 'ide0-hd0']
        self.assertEqual(tops, [self.path('hda.d')])
        self.quit()

    def test_disk_only_revert_needs_force_and_boots(self):
        self.start()
        self.wait_frame(20)
        self.create(snap('d'), **{'disk-only': True})
        self.wait_frame(40)
        self.assertIn('revert requires force',
                      self.err('x-xblk-snapshot-revert', name='d'))
        r = self.ok('x-xblk-snapshot-revert', name='d', force=True)
        self.assertEqual(r['state'], 'paused')
        self.assertLess(self.frame()['frame'], 20)
        self.ok('x-xblk-snapshot-revert', name='d', running=True)
        self.assertTrue(self.ok('query-status')['running'])
        self.quit()


class Tree(Machine):
    """Three levels with branches."""

    def names(self, **f):
        return [s['name'] for s in
                self.ok('x-xblk-snapshot-list', **f)['snapshots']]

    def test_tree_operations(self):
        self.start()
        self.wait_frame(5)
        self.create(snap('root', 'no'))                 # root
        self.create(snap('mid', 'no'))                  # root > mid
        self.create(snap('leaf1', 'no'))                # mid > leaf1
        self.ok('x-xblk-snapshot-revert', name='mid', force=True,
                running=True)
        self.create(snap('leaf2', 'no'))                # mid > leaf2
        self.ok('x-xblk-snapshot-revert', name='root', force=True,
                running=True)
        self.create(snap('side', 'no'))                 # root > side
        info = {s['name']: s for s in
                self.ok('x-xblk-snapshot-list')['snapshots']}
        self.assertEqual(info['leaf2']['parent'], 'mid')
        self.assertEqual(info['side']['parent'], 'root')
        self.assertEqual(info['root']['descendants'], 4)
        self.assertEqual(self.names(roots=True), ['root'])
        self.assertEqual(sorted(self.names(leaves=True)),
                         ['leaf1', 'leaf2', 'side'])
        tree = self.ok('x-xblk-snapshot-list', tree=True)['tree']
        for n in ('root', 'mid', 'leaf1', 'leaf2', 'side'):
            self.assertIn(n, tree)
        self.assertEqual(sorted(self.names(**{'from': 'mid'})),
                         ['leaf1', 'leaf2'])
        self.assertEqual(self.ok('x-xblk-snapshot-parent', name='leaf1'),
                         {'parent': 'mid'})
        # --children-only of mid, then --metadata of side.
        r = self.ok('x-xblk-snapshot-delete', name='mid',
                    **{'children-only': True})
        self.assertEqual(sorted(r['deleted']), ['leaf1', 'leaf2'])
        self.assertNotIn('leaf1', self.tags(self.hda))
        self.ok('x-xblk-snapshot-delete', name='side', metadata=True)
        self.assertIn('side', self.tags(self.hda))
        self.assertEqual(sorted(self.names()), ['mid', 'root'])
        # Edit: description; a rename of an internal one is refused.
        xml = self.ok('x-xblk-snapshot-dumpxml', name='mid')['xml']
        self.ok('x-xblk-snapshot-edit', name='mid', xml=xml.replace(
            '<name>mid</name>',
            '<name>mid</name><description>kept</description>'))
        self.assertEqual(self.ok('x-xblk-snapshot-info',
                                 name='mid')['description'], 'kept')
        self.assertIn('cannot rename', self.err(
            'x-xblk-snapshot-edit', name='mid',
            xml=xml.replace('<name>mid</name>', '<name>m2</name>')))
        # Redefine after the catalog is gone.
        docs = {n: self.ok('x-xblk-snapshot-dumpxml', name=n)['xml']
                for n in ('root', 'mid')}
        self.ok('x-xblk-snapshot-delete', name='root', children=True,
                metadata=True)
        self.assertEqual(self.names(), [])
        self.assertIn('not found', self.err('x-xblk-snapshot-redefine',
                                            xml=docs['mid']))
        self.ok('x-xblk-snapshot-redefine', xml=docs['root'])
        self.ok('x-xblk-snapshot-redefine', xml=docs['mid'], current=True)
        self.assertEqual(self.ok('x-xblk-snapshot-current'),
                         {'name': 'mid'})
        self.ok('x-xblk-snapshot-revert', name='mid', force=True)
        r = self.ok('x-xblk-snapshot-delete', name='root', children=True)
        self.assertEqual(r['deleted'], ['mid', 'root'])
        self.quit()
        # Only the metadata of 'side' went: its internal snapshots stay.
        self.assertEqual(sorted(self.tags(self.hda)), ['side'])
        self.check_clean(self.hda, self.hdb)

    def test_delete_external_merges(self):
        self.start()
        self.wait_frame(5)
        self.create(snap('e1'), **{'disk-only': True})
        self.wait_frame(15)
        self.create(snap('e2'), **{'disk-only': True})
        self.wait_frame(25)
        self.stop()
        # e1's overlay is in the middle: a non-active commit into hda.
        self.ok('x-xblk-snapshot-delete', name='e1')
        self.assertFalse(os.path.exists(self.path('hda.e1')))
        self.assertEqual(self.ok('x-xblk-snapshot-info',
                                 name='e2')['name'], 'e2')
        # e2's overlay is the active layer: an active commit and pivot.
        self.ok('x-xblk-snapshot-delete', name='e2')
        self.assertFalse(os.path.exists(self.path('hda.e2')))
        tops = [d['inserted']['file'] for d in self.ok('query-block')
                if d['device'] == 'ide0-hd0']
        self.assertEqual(tops, [self.hda])
        self.quit()
        self.assertEqual(self.chain(self.hda), [self.hda])
        self.check_clean(self.hda, self.hdb)

    def catalog_files(self):
        out = {}
        for f in sorted(os.listdir(self.catalog)):
            with open(os.path.join(self.catalog, f), 'rb') as fh:
                out[f] = fh.read()
        return out

    def refused_unchanged(self, name, holders, images):
        """Deleting name is refused naming holders; the catalog, the
        images' tags and chains and the intents are as they were."""
        files = self.catalog_files()
        tags = {i: self.tags(i) for i in images}
        chains = {i: self.chain(i) for i in images}
        msg = self.err('x-xblk-snapshot-delete', name=name)
        self.assertIn("cannot delete external snapshot '%s'" % name, msg)
        self.assertIn('would lose', msg)
        for h in holders:
            self.assertIn("'%s'" % h, msg)
        self.assertEqual(self.catalog_files(), files)
        self.assertEqual({i: self.tags(i) for i in images}, tags)
        self.assertEqual({i: self.chain(i) for i in images}, chains)
        return msg

    def test_delete_external_refused_over_internal(self):
        """An external snapshot's overlay holding a later snapshot's
        internal snapshots is not merged away (block-commit would drop
        them): refused before anything changes; --children works."""
        self.start()
        self.wait_frame(5)
        self.create(snap('e1'), **{'disk-only': True})
        self.wait_frame(15)
        self.stop()
        before = self.frame()
        self.create(snap('i1', 'internal', [('hda', 'internal'),
                                            ('hdb', 'internal')]))
        self.ok('cont')
        ovl = [self.path('hda.e1'), self.path('hdb.e1')]
        for o in ovl:
            self.assertIn('i1', self.tags(o))
        self.refused_unchanged('e1', ['i1'], ovl + [self.hda, self.hdb])
        self.assertEqual(sorted(self.names()), ['e1', 'i1'])
        self.assertEqual(self.ok('x-xblk-snapshot-current'), {'name': 'i1'})
        # i1 is whole: it reverts to its frame.
        self.wait_frame(before['frame'] + 30)
        r = self.ok('x-xblk-snapshot-revert', name='i1', paused=True)
        self.assertEqual(r['state'], 'paused')
        self.assertEqual(self.frame(), before)
        # With its descendant i1, e1 goes: i1's tags, then the merge.
        r = self.ok('x-xblk-snapshot-delete', name='e1', children=True)
        self.assertEqual(r['deleted'], ['i1', 'e1'])
        self.assertEqual(self.names(), [])
        for o in ovl:
            self.assertFalse(os.path.exists(o))
        tops = sorted(d['inserted']['file'] for d in self.ok('query-block')
                      if d.get('inserted') and 'hd' in d['device'])
        self.assertEqual(tops, [self.hda, self.hdb])
        self.quit()
        self.assertEqual(self.chain(self.hda), [self.hda])
        self.assertEqual(self.tags(self.hda), {})
        self.check_clean(self.hda, self.hdb)

    def test_delete_external_refused_over_vm_state(self):
        """The same for memory external e1 under e2 (memory internal,
        disks external: its VM state is in e1's overlay of hda) and i1;
        deleting them first lets e1 merge."""
        self.start()
        self.wait_frame(5)
        self.create(snap('e1', self.path('e1.mem')))
        self.wait_frame(15)
        self.create(snap('e2', 'internal', [('hda', 'external'),
                                            ('hdb', 'external')]))
        self.wait_frame(25)
        self.stop()
        self.create(snap('i1', 'internal', [('hda', 'internal'),
                                            ('hdb', 'internal')]))
        # After the first memory snapshot of the stopped machine: taking
        # it delivers a disk request still in flight at the stop (the
        # vCPU runs to its completion, docs/savestate.md), which may
        # change RAM; from here on nothing may.
        before = self.frame()
        images = [self.path(f) for f in ('hda.e1', 'hdb.e1', 'hda.e2',
                                         'hdb.e2')] + [self.hda, self.hdb]
        self.assertIn('e2', self.tags(self.path('hda.e1')))
        self.assertIn('i1', self.tags(self.path('hda.e2')))
        self.refused_unchanged('e1', ['e2'], images)
        self.refused_unchanged('e2', ['i1'], images)
        self.ok('x-xblk-snapshot-delete', name='i1')
        self.assertNotIn('i1', self.tags(self.path('hda.e2')))
        self.ok('x-xblk-snapshot-delete', name='e2')
        self.assertFalse(os.path.exists(self.path('hda.e2')))
        self.assertNotIn('e2', self.tags(self.path('hda.e1')))
        self.ok('x-xblk-snapshot-delete', name='e1')
        self.assertFalse(os.path.exists(self.path('hda.e1')))
        self.assertFalse(os.path.exists(self.path('e1.mem')))
        self.assertEqual(self.names(), [])
        self.assertEqual(self.frame(), before)
        self.quit()
        self.assertEqual(self.chain(self.hda), [self.hda])
        self.assertEqual(self.chain(self.hdb), [self.hdb])
        self.check_clean(self.hda, self.hdb)


class Kills(Machine):
    """SIGKILL during create, revert and delete; the next start repairs."""

    ROUNDS = 24 if os.environ.get('XBLK_LONG') else 6
    repairs = 0

    def kill_during(self, cmd, args, rnd):
        """Sends cmd and kills the process a little later."""
        self.q.send_raw(json.dumps({'execute': cmd,
                                    'arguments': args}) + '\n')
        time.sleep(rnd.uniform(0.0, 0.12))
        self.srv.proc.send_signal(signal.SIGKILL)
        self.srv.stop()
        self.srv = None

    def images(self):
        return sorted(os.path.join(self.dir, f) for f in os.listdir(self.dir)
                      if f.startswith(('hda.', 'hdb.')) and
                      not f.endswith(('.snapshots', '.mem', '.part')))

    def check_after(self):
        """Restarted: no intent left, every image clean, every listed
        snapshot's artifacts there and every one reverts."""
        self.start()
        left = [f for f in os.listdir(self.catalog)
                if f.endswith('.intent.xml')]
        self.assertEqual(left, [])
        listed = self.ok('x-xblk-snapshot-list')['snapshots']
        for s in listed:
            doc = self.ok('x-xblk-snapshot-dumpxml', name=s['name'])['xml']
            if s['memory'] == 'external':
                self.assertTrue(os.path.exists(
                    self.path(s['name'] + '.mem')), doc)
        for s in listed:
            r = self.q.cmd('x-xblk-snapshot-revert',
                           {'name': s['name'], 'force': True,
                            'paused': True})
            if 'error' in r:
                # Internal snapshots under a later external layer are
                # refused by rule; nothing else may fail.
                self.assertIn('backing file of later external',
                              r['error']['desc'])
        self.repairs += self.quit().count('snapshots: ')
        for img in self.images():
            # A kill may leak clusters (exit 3); corruption is exit 2.
            rc, text = qemu_img('check', img)
            self.assertIn(rc, (0, 3), text)
        return [s['name'] for s in listed]

    # ---- kills at each durable step, made exact with strace ----

    UNLINKS = ('unlink', 'unlinkat')
    RENAMES = ('rename', 'renameat', 'renameat2')

    def kill_at_syscall(self, cmd, args, syscalls, nth):
        """Sends cmd with xblk-system under strace, which SIGKILLs it on
        entering its nth call of syscalls (before that call does
        anything).  True: killed; False: cmd finished first (its reply
        checked; the machine still runs)."""
        calls = ','.join(syscalls)
        st = subprocess.Popen(
            ['strace', '-f', '-p', str(self.srv.proc.pid),
             '-e', 'trace=' + calls,
             '-e', 'inject=%s:signal=KILL:when=%d' % (calls, nth)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while b'attached' not in st.stderr.readline():
                self.assertIsNone(st.poll(), 'strace could not attach')
            self.q.send_raw(json.dumps({'execute': cmd,
                                        'arguments': args}) + '\n')
            try:
                r = self.q.reply()
            except (EOFError, ConnectionResetError):
                r = None
        finally:
            if r is not None:
                st.terminate()      # detaches; the machine runs on
            st.communicate()
        if r is not None:
            self.assertIn('return', r, '%s %s: %s' % (cmd, args, r))
            return False
        self.srv.proc.wait()
        self.srv.stop()
        self.srv = None
        return True

    def snapshot_files(self, into):
        os.mkdir(into)
        for f in os.listdir(self.dir):
            src = self.path(f)
            if f.startswith(('hda.', 'hdb.')):
                (shutil.copytree if os.path.isdir(src) else shutil.copy2)(
                    src, os.path.join(into, f))

    def restore_files(self, frm):
        for f in os.listdir(self.dir):
            if f.startswith(('hda.', 'hdb.')):
                p = self.path(f)
                (shutil.rmtree if os.path.isdir(p) else os.unlink)(p)
        for f in os.listdir(frm):
            src = os.path.join(frm, f)
            (shutil.copytree if os.path.isdir(src) else shutil.copy2)(
                src, self.path(f))

    def kill_at_each_step(self, cmd, args, check):
        """Runs cmd on copies of the files as they are now, killed at
        its 1st, 2nd, ... unlink, then at each rename (the catalog's
        atomic writes, the removal of files), until it finishes; after
        each, a start (the repairs) and check(where, hdb_top, names,
        start_report); every image passes qemu-img check."""
        if not shutil.which('strace'):
            self.skipTest('needs strace')
        pristine = self.path('pristine')
        self.snapshot_files(pristine)
        kills = 0
        for syscalls in (self.UNLINKS, self.RENAMES):
            for nth in range(1, 40):
                self.restore_files(pristine)
                self.start()
                self.wait_frame(3)
                killed = self.kill_at_syscall(cmd, args, syscalls, nth)
                if killed:
                    kills += 1
                    self.start()
                where = '%s killed at %s call %d%s' % (
                    cmd, syscalls[0], nth, '' if killed else
                    ' (not reached)')
                self.assertEqual(
                    [f for f in os.listdir(self.catalog)
                     if f.endswith('.intent.xml')], [], where)
                top = [d['inserted']['file'] for d in self.ok('query-block')
                       if d['device'] == 'ide0-hd1'][0]
                names = sorted(s['name'] for s in
                               self.ok('x-xblk-snapshot-list')['snapshots'])
                check(where, top, names, self.quit())
                for f in os.listdir(self.dir):
                    if f.startswith(('hda.', 'hdb.')) and \
                            not f.endswith('.snapshots'):
                        # A kill may leak clusters (3), never corrupt (2).
                        rc, text = qemu_img('check', self.path(f))
                        self.assertIn(rc, (0, 3), '%s: %s' % (where, text))
                if not killed:
                    break
        self.assertGreater(kills, 4)
        print('# %s killed at %d unlinks and renames' % (cmd, kills))

    def stamp_of(self, where, top, start_report):
        return killcheck.read_stamp(top, self.path('stamp.raw')), \
            '%s: hdb opened %s (chain %s); start: %s' % (
                where, top, self.chain(top), start_report)

    def test_delete_killed_at_each_step(self):
        """A delete of an external snapshot killed at every unlink and
        every rename it makes loses no data: hdb is on hdb.qcow2 <- a
        revert's overlay <- the snapshot's overlay, stamped as the crash
        torture stamps it, and the next start opens an image showing the
        newest stamp (the torture saw a start fall back two layers, to
        hdb.qcow2: the overlay was removed and the intent cleared while
        domain.xml still named the overlay)."""
        killcheck.write_stamp(self.hdb, 1)
        self.start()
        self.wait_frame(3)
        self.create(snap('e1'), **{'disk-only': True})
        self.ok('x-xblk-snapshot-revert', name='e1', force=True)
        self.quit()
        r1 = self.path('hdb.e1-r1')
        killcheck.write_stamp(r1, 2)
        self.start()
        self.wait_frame(3)
        self.create(snap('e2'), **{'disk-only': True})
        self.quit()
        killcheck.write_stamp(self.path('hdb.e2'), 3)

        def check(where, top, names, report):
            stamp, msg = self.stamp_of(where, top, report)
            self.assertEqual(stamp, 3, msg)
            # Finished at the start, or (killed before its intent) not
            # begun: e2 and its overlay, hdb's top, stay.
            e2 = [self.path('hdb.e2')] if 'e2' in names else []
            self.assertEqual(self.chain(top), e2 + [r1, self.hdb], where)
            self.assertEqual(os.path.exists(self.path('hdb.e2')), bool(e2),
                             where)
        self.kill_at_each_step('x-xblk-snapshot-delete', {'name': 'e2'},
                               check)

    def test_revert_killed_at_each_step(self):
        """The same for a revert to an external snapshot: the next start
        has hdb on the image it had (newest stamp) or on the revert's new
        overlay (the snapshot's stamp), and the branch left stays."""
        killcheck.write_stamp(self.hdb, 1)
        self.start()
        self.wait_frame(3)
        self.create(snap('e1'), **{'disk-only': True})
        self.quit()
        e1 = self.path('hdb.e1')
        killcheck.write_stamp(e1, 2)

        def check(where, top, names, report):
            stamp, msg = self.stamp_of(where, top, report)
            self.assertEqual(names, ['e1'], where)
            self.assertEqual(self.chain(top)[-1], self.hdb, where)
            if top == e1:
                self.assertEqual(stamp, 2, msg)
            else:
                self.assertEqual(stamp, 1, msg)
                self.assertEqual(self.chain(top), [top, self.hdb], where)
                self.assertEqual(killcheck.read_stamp(
                    e1, self.path('stamp.raw')), 2, where)
        self.kill_at_each_step('x-xblk-snapshot-revert',
                               {'name': 'e1', 'force': True}, check)

    def test_kills(self):
        import random
        rnd = random.Random(12)
        counts = {'create': 0, 'revert': 0, 'delete': 0}
        for i in range(self.ROUNDS):
            name = 'k%d' % i
            mem = self.path(name + '.mem')
            xml = [snap(name), snap(name, mem),
                   snap(name, 'internal', [('hda', 'internal'),
                                           ('hdb', 'external')])][i % 3]
            self.start()
            self.wait_frame(3 + i)
            self.kill_during('x-xblk-snapshot-create', {'xml': xml}, rnd)
            counts['create'] += 1
            names = self.check_after()
            if not names:
                continue
            self.start()
            self.wait_frame(3)
            self.kill_during('x-xblk-snapshot-revert',
                             {'name': rnd.choice(names), 'force': True},
                             rnd)
            counts['revert'] += 1
            names = self.check_after()
            self.start()
            self.kill_during('x-xblk-snapshot-delete',
                             {'name': rnd.choice(names)}, rnd)
            counts['delete'] += 1
            self.check_after()
        print('# kills: %(create)d during create, %(revert)d during revert, '
              '%(delete)d during delete; ' % counts +
              '%d repairs at the next start' % self.repairs)


if __name__ == '__main__':
    xtest.main()
