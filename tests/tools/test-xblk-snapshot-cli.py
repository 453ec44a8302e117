#!/usr/bin/env python3
"""xblk-snapshot against the real engine, end to end.

- Offline (--offline DIR): a stopped machine's catalog whose domain.xml
  names a qcow2 disk.  Through the CLI only: snapshot-create-as and
  snapshot-create (internal and disk-only external), snapshot-list
  (table, --parent, --name, --tree, filters), snapshot-info,
  snapshot-current, snapshot-parent, snapshot-dumpxml, snapshot-edit,
  snapshot-revert (the disk's contents come back, checked with qemu-io)
  and snapshot-delete (--children-only, --metadata then a --redefine);
  qemu-img sees the internal snapshots appear and go, and the image
  stays clean.
- Online (-c unix:PATH): the same create / list / revert / delete cycle
  against a running xblk-system with the reference guest.  Skipped (with
  the reason) while xblk-system does not answer x-xblk-snapshot-list.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

TOOL = xtest.binary('xblk-snapshot')
SYSTEM = xtest.binary('xblk-system')
DISC = os.path.join(xtest.BUILD, 'guest', 'disc.iso')
QEMU_IO = shutil.which('qemu-io')
ASAN_NOISE = re.compile(r"^==\d+==WARNING: ASan doesn't fully support")

DOMAIN_XML = """<domain type='qemu'>
  <name>xbox</name>
  <memory unit='KiB'>65536</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='i686'>hvm</type>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='%s'/>
      <target dev='hda' bus='ide'/>
    </disk>
  </devices>
</domain>
"""


def cli(*args, env=None, check=True):
    e = dict(os.environ, TZ='UTC')
    e.update(env or {})
    p = subprocess.run([TOOL] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, env=e, timeout=300)
    p.stderr = ''.join(l for l in p.stderr.splitlines(True)
                       if not ASAN_NOISE.search(l))
    if check and p.returncode != 0:
        raise AssertionError('xblk-snapshot %s failed (%d):\n%s%s' %
                             (' '.join(args), p.returncode, p.stdout,
                              p.stderr))
    return p


def image_snapshots(path):
    out = xtest.run(['qemu-img', 'snapshot', '-l', '-U', path]).stdout
    return [line.split()[1] for line in out.splitlines()[2:]]


def write_pattern(path, pattern, fmt='qcow2'):
    xtest.run([QEMU_IO, '-f', fmt, '-c', 'write -P %d 0 64k' % pattern,
               path])


def has_pattern(path, pattern):
    p = xtest.run([QEMU_IO, '-r', '-U', '-c',
                   'read -P %d 0 64k' % pattern, path], check=False)
    return p.returncode == 0 and 'Pattern verification failed' not in \
        p.stdout


class Offline(xtest.TmpDirTestCase):
    def setUp(self):
        super().setUp()
        self.hd = self.path('hd.qcow2')
        xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', self.hd, '16M'])
        self.cat = self.path('catalog')
        os.mkdir(self.cat)
        with open(os.path.join(self.cat, 'domain.xml'), 'w') as f:
            f.write(DOMAIN_XML % self.hd)

    def snap(self, *args, **kw):
        return cli('--offline', self.cat, *args, **kw)

    def test_create_list_info(self):
        self.assertEqual(self.snap('snapshot-list').stdout,
                         ' Name   Creation Time   State\n'
                         '-------------------------------\n\n')
        self.assertEqual(self.snap('snapshot-create-as', 's1', 'first').stdout,
                         'Domain snapshot s1 created\n')
        self.assertEqual(self.snap('snapshot-create-as', '--name',
                                   'S2').stdout,
                         'Domain snapshot S2 created\n')
        self.assertEqual(image_snapshots(self.hd), ['s1', 'S2'])
        table = self.snap('snapshot-list', '--parent').stdout
        rows = table.splitlines()
        self.assertEqual(rows[0].split(), ['Name', 'Creation', 'Time',
                                           'State', 'Parent'])
        self.assertEqual(set(rows[1]), {'-'})
        # Columns as wide as "Name", "Creation Time" and "State" need.
        self.assertRegex(rows[2], r'^ s1     \d{4}-\d\d-\d\d \d\d:\d\d:\d\d '
                         r'\+0000   shutoff   $')
        self.assertRegex(rows[3], r'^ S2     .* \+0000   shutoff   s1$')
        self.assertEqual(rows[4:], [''])
        self.assertEqual(self.snap('snapshot-list', '--name').stdout,
                         's1\nS2\n\n')
        self.assertEqual(self.snap('snapshot-list', '--roots',
                                   '--name').stdout, 's1\n\n')
        self.assertEqual(self.snap('snapshot-list', '--leaves',
                                   '--name').stdout, 'S2\n\n')
        self.assertEqual(self.snap('snapshot-list', '--from', 's1',
                                   '--name').stdout, 'S2\n\n')
        self.assertEqual(self.snap('snapshot-list', '--tree').stdout,
                         's1\n  |\n  +- S2\n    \n\n')
        self.assertEqual(self.snap('snapshot-current', '--name').stdout,
                         'S2\n')
        self.assertEqual(self.snap('snapshot-parent', '--current').stdout,
                         's1\n')
        self.assertEqual(self.snap('snapshot-info', 's1').stdout,
                         'Name:           s1\n'
                         'Domain:         xbox\n'
                         'Current:        no\n'
                         'State:          shutoff\n'
                         'Location:       internal\n'
                         'Parent:         -\n'
                         'Children:       1\n'
                         'Descendants:    1\n'
                         'Metadata:       yes\n\n')
        xml = self.snap('snapshot-dumpxml', 's1').stdout
        self.assertIn('<description>first</description>', xml)
        self.assertIn("<disk name='hda' snapshot='internal'/>", xml)
        p = self.snap('snapshot-parent', 's1', check=False)
        self.assertEqual((p.returncode, p.stderr),
                         (1, "error: snapshot 's1' has no parent\n"))

    @unittest.skipUnless(QEMU_IO, 'qemu-io not installed')
    def test_revert_brings_contents_back(self):
        write_pattern(self.hd, 0x11)
        self.snap('snapshot-create-as', 'ones')
        write_pattern(self.hd, 0x22)
        self.snap('snapshot-create-as', 'twos')
        self.assertEqual(self.snap('snapshot-revert', 'ones').stdout,
                         'Domain snapshot ones reverted\n\n')
        self.assertTrue(has_pattern(self.hd, 0x11))
        self.assertEqual(self.snap('snapshot-current', '--name').stdout,
                         'ones\n')
        self.snap('snapshot-revert', 'twos')
        self.assertTrue(has_pattern(self.hd, 0x22))
        xtest.run(['qemu-img', 'check', '-q', self.hd])

    def test_delete(self):
        for name in ('a', 'b', 'c'):
            self.snap('snapshot-create-as', name)
        self.snap('snapshot-current', 'a')
        self.assertEqual(self.snap('snapshot-delete', 'a',
                                   '--children-only').stdout,
                         'Domain snapshot a children deleted\n\n')
        self.assertEqual(image_snapshots(self.hd), ['a'])
        saved = self.snap('snapshot-dumpxml', 'a').stdout
        self.assertEqual(self.snap('snapshot-delete', '--current',
                                   '--metadata').stdout,
                         'Domain snapshot a deleted\n\n')
        self.assertEqual(self.snap('snapshot-list', '--name').stdout, '\n')
        self.assertEqual(image_snapshots(self.hd), ['a'])
        doc = self.path('a.xml')
        with open(doc, 'w') as f:
            f.write(saved)
        self.assertEqual(self.snap('snapshot-create', doc, '--redefine',
                                   '--current').stdout,
                         "Domain snapshot a created from '%s'\n" % doc)
        self.assertEqual(self.snap('snapshot-current', '--name').stdout,
                         'a\n')
        self.assertEqual(self.snap('snapshot-delete', 'a').stdout,
                         'Domain snapshot a deleted\n\n')
        self.assertEqual(image_snapshots(self.hd), [])
        p = self.snap('snapshot-delete', 'a', check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, "error: Failed to delete snapshot a\n"
                         "error: Domain snapshot not found: no domain "
                         "snapshot with matching name 'a'\n")
        xtest.run(['qemu-img', 'check', '-q', self.hd])

    def test_edit(self):
        self.snap('snapshot-create-as', 'e1', 'old words')
        env = {'VISUAL': '', 'EDITOR': "sed -i -e 's/old words/new words/'"}
        self.assertEqual(self.snap('snapshot-edit', 'e1', env=env).stdout,
                         'Snapshot e1 edited.\n\n')
        self.assertIn('<description>new words</description>',
                      self.snap('snapshot-dumpxml', 'e1').stdout)
        self.assertEqual(self.snap('snapshot-edit', '--current',
                                   env={'VISUAL': 'true'}).stdout,
                         'Snapshot e1 XML configuration not changed.\n\n')
        # A rename needs a snapshot whose name no image carries: an
        # external one.
        self.snap('snapshot-create-as', 'x1', '--disk-only', '--diskspec',
                  'hda,file=' + self.path('hd.x1.qcow2'))
        env = {'VISUAL': '', 'EDITOR': "sed -i -e 's|<name>x1<|<name>x2<|'"}
        p = self.snap('snapshot-edit', 'x1', env=env, check=False)
        self.assertEqual((p.returncode, p.stderr),
                         (1, 'error: Must use --rename to change x1 to x2\n'
                             'error: Failed to update x1\n'))
        self.assertEqual(self.snap('snapshot-edit', 'x1', '--rename',
                                   env=env).stdout, '\n')
        self.assertEqual(self.snap('snapshot-list', '--name').stdout,
                         'e1\nx2\n\n')

    def test_disk_only_external(self):
        overlay = self.path('hd.ext.qcow2')
        self.assertEqual(self.snap('snapshot-create-as', 'ext', '--disk-only',
                                   '--diskspec',
                                   'hda,snapshot=external,file=' + overlay,
                                   '--atomic').stdout,
                         'Domain snapshot ext created\n')
        info = json.loads(xtest.run(['qemu-img', 'info', '-U',
                                     '--output=json', overlay]).stdout)
        self.assertEqual(info['backing-filename'], self.hd)
        self.assertEqual(self.snap('snapshot-list', '--external', '--disk-only',
                                   '--name').stdout, 'ext\n\n')
        self.assertIn('Location:       external\n',
                      self.snap('snapshot-info', 'ext').stdout)
        self.assertIn('disk-snapshot', self.snap('snapshot-list').stdout)

    def test_stopped_machine_rows(self):
        """docs/snapshots.md rows 13-14 and the stopped machine's refusal:
        internal and external disk snapshots through the image layer; an
        external one reverted onto a new overlay and deleted by an offline
        merge; memory refused."""
        r = self.snap('snapshot-create-as', 'm', '--memspec',
                      'file=' + self.path('m.mem') + ',snapshot=external',
                      check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('cannot take the memory of a stopped machine',
                      r.stderr)
        r = self.snap('snapshot-create-as', 'm2', '--memspec',
                      'snapshot=internal', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists(self.path('m.mem')))
        write_pattern(self.hd, 1)
        self.snap('snapshot-create-as', 'int')              # row 13
        self.assertEqual(image_snapshots(self.hd), ['int'])
        overlay = self.path('hd.ext')
        self.snap('snapshot-create-as', 'ext', '--disk-only')  # row 14
        self.assertTrue(os.path.exists(overlay))
        write_pattern(overlay, 2)
        # Back to ext: a new overlay over hd.qcow2, the branch kept.
        self.snap('snapshot-revert', 'ext')
        with open(os.path.join(self.cat, 'domain.xml')) as f:
            dom = f.read()
        self.assertIn(self.path('hd.ext-r1'), dom)
        self.assertTrue(has_pattern(self.path('hd.ext-r1'), 1))
        self.assertTrue(has_pattern(overlay, 2))
        # The internal snapshot under the external layer goes offline too.
        self.snap('snapshot-delete', 'int', '--metadata')
        self.snap('snapshot-create-as', 'int2', '--disk-only',
                  '--diskspec', 'hda,snapshot=internal')
        # ext's overlay is a branch nothing reads: removed; ext's image
        # is the disk's backing file and stays.
        self.snap('snapshot-delete', 'ext')
        self.assertFalse(os.path.exists(overlay))
        self.assertEqual(self.snap('snapshot-list', '--name').stdout,
                         'int2\n\n')
        for img in (self.hd, self.path('hd.ext-r1')):
            xtest.run(['qemu-img', 'check', img])

    def test_offline_merge(self):
        """Deleting an external snapshot whose overlay is the disk's active
        layer merges it into the frozen image (an offline commit)."""
        write_pattern(self.hd, 1)
        self.snap('snapshot-create-as', 'e', '--disk-only')
        overlay = self.path('hd.e')
        write_pattern(overlay, 3)
        self.snap('snapshot-delete', 'e')
        self.assertFalse(os.path.exists(overlay))
        self.assertTrue(has_pattern(self.hd, 3))
        with open(os.path.join(self.cat, 'domain.xml')) as f:
            self.assertIn("file='%s'" % self.hd, f.read())
        xtest.run(['qemu-img', 'check', self.hd])


def snapshot_dir_option():
    p = subprocess.run([SYSTEM, '-help'], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    return '-snapshot-dir' in p.stdout


class Online(xtest.TmpDirTestCase):
    def setUp(self):
        if not os.path.exists(SYSTEM):
            self.skipTest('%s not built' % SYSTEM)
        super().setUp()
        self.hd = self.path('hd.qcow2')
        xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', self.hd, '8G'])
        extra = ['-name', 'guest=cli-test']
        if snapshot_dir_option():
            extra += ['-snapshot-dir', self.path('catalog')]
        self.srv = qmpclient.Server(
            [SYSTEM, '-machine', 'xbox,seed=1', '-display', 'none',
             '-drive', 'file=%s,format=qcow2,if=ide,index=0' % self.hd,
             '-drive', 'file=%s,format=raw,if=ide,index=1,media=cdrom'
             % DISC] + extra, tmpdir=self.dir)
        self.q = self.srv.client().negotiate()
        r = self.q.cmd('x-xblk-snapshot-list')
        if 'error' in r:
            self.skipTest('xblk-system: x-xblk-snapshot-list: %s' %
                          r['error']['desc'])

    def tearDown(self):
        if getattr(self, 'srv', None):
            self.srv.stop()
        super().tearDown()

    def snap(self, *args, **kw):
        return cli('-c', 'unix:' + self.srv.sock, *args, **kw)

    def test_create_list_revert_delete(self):
        self.assertEqual(self.snap('snapshot-create-as', 'on1').stdout,
                         'Domain snapshot on1 created\n')
        self.assertEqual(self.snap('snapshot-create-as', '--name', 'on2',
                                   '--description', 'second').stdout,
                         'Domain snapshot on2 created\n')
        self.assertEqual(self.snap('snapshot-list', '--name').stdout,
                         'on1\non2\n\n')
        self.assertEqual(self.snap('snapshot-list', '--tree').stdout,
                         'on1\n  |\n  +- on2\n    \n\n')
        info = self.snap('snapshot-info', 'on1').stdout
        self.assertIn('Domain:         cli-test\n', info)
        self.assertIn('State:          running\n', info)
        self.assertEqual(self.snap('snapshot-revert', 'on1',
                                   '--paused').stdout,
                         'Domain snapshot on1 reverted\n\n')
        st = self.q.cmd('query-status')['return']
        self.assertEqual(st['status'], 'paused')
        self.assertEqual(self.snap('snapshot-current', '--name').stdout,
                         'on1\n')
        self.assertEqual(self.snap('snapshot-delete', 'on1',
                                   '--children').stdout,
                         'Domain snapshot on1 deleted\n\n')
        self.assertEqual(self.snap('snapshot-list', '--name').stdout, '\n')
        p = self.snap('snapshot-info', 'on1', check=False)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.startswith('error: '), p.stderr)


if __name__ == '__main__':
    xtest.main()
