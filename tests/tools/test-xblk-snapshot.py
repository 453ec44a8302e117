#!/usr/bin/env python3
"""xblk-snapshot validate over the corpus in tests/snapshot/corpus/.

Valid documents exit 0 and print a normalized document that itself
validates against libvirt's schema (virt-xml-validate if installed, else
xmllint --relaxng; skipped with a message when neither schema nor tool is
there).  Invalid ones exit 1 with the expected reason (the file's
"<!-- expect: ... -->" first line) on stderr and print nothing.

The virsh-style verbs: every verb's --help; bad options and arguments
(virsh's messages, exit 1); snapshot-create-as --print-xml for memspec /
diskspec combinations, exact text and valid against libvirt's schema
(xmllint --relaxng; skipped without the schema); and, against a fake QMP
server in this file (greeting, qmp_capabilities, scripted replies with
events in between, over unix and TCP sockets), the exact JSON each verb
sends and how list (table, --parent, --name, --tree), info, current,
parent, edit, revert, delete and error replies are printed.
"""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import xtest  # noqa: E402

TOOL = xtest.binary('xblk-snapshot')
CORPUS = os.path.join(xtest.ROOT, 'tests', 'snapshot', 'corpus')
SCHEMA = '/usr/share/libvirt/schemas/domainsnapshot.rng'
EXPECT = re.compile(r'^<!-- expect: (.*) -->')
ASAN_NOISE = re.compile(r"^==\d+==WARNING: ASan doesn't fully support")


def snap(*args, env=None):
    e = dict(os.environ, TZ='UTC')
    e.update(env or {})
    p = subprocess.run([TOOL] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, env=e, timeout=60)
    p.stderr = ''.join(l for l in p.stderr.splitlines(True)
                       if not ASAN_NOISE.search(l))
    return p


def schema_validator():
    if shutil.which('virt-xml-validate'):
        return lambda f: ['virt-xml-validate', f, 'domainsnapshot']
    if shutil.which('xmllint') and os.path.exists(SCHEMA):
        return lambda f: ['xmllint', '--noout', '--relaxng', SCHEMA, f]
    return None


class ValidateTest(xtest.TmpDirTestCase):
    def test_valid_corpus(self):
        validator = schema_validator()
        files = sorted(glob.glob(os.path.join(CORPUS, 'valid', '*.xml')))
        self.assertTrue(files)
        for f in files:
            p = snap('validate', f)
            self.assertEqual(p.returncode, 0, '%s: %s' % (f, p.stderr))
            self.assertEqual(p.stderr, '')
            self.assertIn('<memory snapshot=', p.stdout)
            out = self.path(os.path.basename(f))
            with open(out, 'w') as fh:
                fh.write(p.stdout)
            # The normalized output is a fixed point of validate.
            again = snap('validate', out)
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertEqual(again.stdout, p.stdout)
            if validator:
                xtest.run(validator(out))
        if not validator:
            self.skipTest('no virt-xml-validate/xmllint with %s' % SCHEMA)

    def test_invalid_corpus(self):
        files = sorted(glob.glob(os.path.join(CORPUS, 'invalid', '*.xml')))
        self.assertTrue(files)
        for f in files:
            with open(f) as fh:
                expect = EXPECT.match(fh.readline()).group(1)
            p = snap('validate', f)
            self.assertEqual(p.returncode, 1, f)
            self.assertEqual(p.stdout, '')
            self.assertTrue(p.stderr.startswith('xblk-snapshot: '), p.stderr)
            self.assertIn(expect, p.stderr, f)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)

    def test_missing_file_and_usage(self):
        p = snap('validate', self.path('nope.xml'))
        self.assertEqual(p.returncode, 1)
        self.assertIn('could not read', p.stderr)
        self.assertEqual(snap('validate').returncode, 1)
        self.assertEqual(snap('frobnicate').returncode, 1)
        self.assertEqual(snap().returncode, 1)

    def test_help(self):
        p = snap('--help')
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith('Usage: xblk-snapshot'))
        self.assertIn('validate FILE', p.stdout)
        p = snap('validate', '--help')
        self.assertEqual(p.returncode, 0)
        self.assertIn('Usage: xblk-snapshot validate FILE', p.stdout)


# ---- the virsh-style verbs ----

VERBS = {
    'snapshot-create': ['xmlfile', 'redefine', 'current', 'no-metadata',
                        'disk-only', 'validate', 'atomic'],
    'snapshot-create-as': ['name', 'description', 'print-xml',
                           'no-metadata', 'disk-only', 'validate', 'atomic',
                           'memspec', 'diskspec'],
    'snapshot-list': ['parent', 'roots', 'leaves', 'no-leaves', 'inactive',
                      'active', 'disk-only', 'internal', 'external', 'tree',
                      'from', 'current', 'descendants', 'name'],
    'snapshot-dumpxml': ['snapshotname'],
    'snapshot-info': ['snapshotname', 'current'],
    'snapshot-current': ['name', 'snapshotname'],
    'snapshot-parent': ['snapshotname', 'current'],
    'snapshot-edit': ['snapshotname', 'current', 'rename'],
    'snapshot-revert': ['snapshotname', 'current', 'running', 'paused',
                        'force'],
    'snapshot-delete': ['snapshotname', 'current', 'children',
                        'children-only', 'metadata'],
}


class HelpTest(unittest.TestCase):
    def test_global_help_lists_every_verb(self):
        p = snap('--help')
        self.assertEqual(p.returncode, 0)
        for verb in VERBS:
            self.assertIn('  %s ' % verb, p.stdout)
        for opt in ('--connect', '--offline', '--quiet', '--version'):
            self.assertIn(opt, p.stdout)

    def test_verb_help(self):
        for verb, opts in VERBS.items():
            for form in ([verb, '--help'], ['-c', 'unix:/nonexistent', verb,
                                            '--help']):
                p = snap(*form)
                self.assertEqual(p.returncode, 0, (form, p.stderr))
                self.assertEqual(p.stderr, '')
                self.assertTrue(p.stdout.startswith(
                    'Usage: xblk-snapshot [-c URI | --offline DIR] %s ' %
                    verb), p.stdout)
                for o in opts:
                    self.assertRegex(p.stdout, r'\n  \[?--%s\b' % o,
                                     (verb, o))

    def test_version(self):
        for flag in ('-V', '--version'):
            p = snap(flag)
            self.assertEqual(p.returncode, 0)
            self.assertRegex(p.stdout, r'^xblk-snapshot version \d+\.\d+')


BAD = [
    (['snapshot-list', '--bogus'],
     "error: command 'snapshot-list' doesn't support option --bogus\n"),
    (['snapshot-list', '--parent', '--parent'],
     'error: option --parent already seen\n'),
    (['snapshot-list', '--name=x'],
     "error: invalid '=' after option --name\n"),
    (['snapshot-list', '--tree', '--name'],
     'error: Options --tree and --name are mutually exclusive\n'),
    (['snapshot-list', '--parent', '--roots'],
     'error: Options --parent and --roots are mutually exclusive\n'),
    (['snapshot-list', '--roots', '--current'],
     'error: Options --roots and --current are mutually exclusive\n'),
    (['snapshot-list', '--tree', '--leaves'],
     'error: --leaves and --tree are mutually exclusive\n'),
    (['snapshot-list', '--descendants'],
     'error: --descendants requires either --from or --current\n'),
    (['snapshot-list', '--from', 'a', '--current'],
     'error: --from and --current are mutually exclusive\n'),
    (['snapshot-list', 'a', 'b'], "error: unexpected data 'b'\n"),
    (['snapshot-dumpxml'],
     "error: command 'snapshot-dumpxml' requires <snapshotname> option\n"),
    (['snapshot-info', 'a', 'b'], "error: unexpected data 'b'\n"),
    (['snapshot-info'], 'error: --snapshotname or --current is required\n'),
    (['snapshot-info', 'a', '--current'],
     'error: --snapshotname and --current are mutually exclusive\n'),
    (['snapshot-delete', '--current', 'a'],
     'error: --snapshotname and --current are mutually exclusive\n'),
    (['snapshot-current', '--name', 's1'],
     'error: Options --name and --snapshotname are mutually exclusive\n'),
    (['snapshot-create-as', '--memspec'],
     'error: expected syntax: --memspec <string>\n'),
    (['snapshot-create-as', '--name', ''],
     "error: Failed to get option 'name': Option argument is empty\n"),
    (['snapshot-create-as', '--print-xml', '--memspec', 'rel/mem'],
     'error: unable to parse memspec: rel/mem\n'),
    (['snapshot-create-as', '--print-xml', '--memspec', '/m,snapshot=no,x'],
     'error: unable to parse memspec: /m,snapshot=no,x\n'),
    (['snapshot-create-as', '--print-xml', '--diskspec', 'hda,bogus=1'],
     'error: unable to parse diskspec: hda,bogus=1\n'),
    (['snapshot-create-as', '--print-xml', '--diskspec', 'hda,file=/a,file=/b'],
     'error: unable to parse diskspec: hda,file=/a,file=/b\n'),
    (['snapshot-create-as', '--print-xml', '--diskspec', 'hda,stype=net'],
     "error: Unknown storage type: 'net'\n"
     'error: unable to parse diskspec: hda,stype=net\n'),
    (['snapshot-create', '/nonexistent/s.xml'], None),
    (['frobnicate'], "error: unknown command: 'frobnicate'\n"),
    (['-c', 'unix:/x', '--offline', '/y', 'snapshot-list'],
     'error: Options --connect and --offline are mutually exclusive\n'),
    (['snapshot-list'], None),
    (['-c', 'unix:/nonexistent/qmp.sock', 'snapshot-list'],
     'error: failed to connect to the hypervisor\n'
     "error: Failed to connect socket to '/nonexistent/qmp.sock': "
     'No such file or directory\n'),
    (['-c', 'http://localhost/', 'snapshot-list'], None),
    (['--offline', '/nonexistent/catalog', 'snapshot-list'], None),
    (['--bogus'], None),
    ([], None),
]


class BadOptionsTest(unittest.TestCase):
    def test_bad_options(self):
        for args, expect in BAD:
            p = snap(*args)
            self.assertEqual(p.returncode, 1, (args, p.stdout, p.stderr))
            self.assertTrue(p.stderr, args)
            if expect is not None:
                self.assertEqual(p.stderr, expect, args)
            else:
                self.assertRegex(p.stderr, r'^(error|xblk-snapshot): ', args)
            self.assertEqual(p.stdout.strip(), '', args)


PRINT_XML = [
    ([], '<domainsnapshot>\n</domainsnapshot>\n'),
    (['--name', 's1', '--description', 'before the boss'],
     '<domainsnapshot>\n  <name>s1</name>\n'
     '  <description>before the boss</description>\n</domainsnapshot>\n'),
    (['s1', 'a <b> & "c" \'d\''],
     '<domainsnapshot>\n  <name>s1</name>\n  <description>a &lt;b&gt; '
     '&amp; &quot;c&quot; &apos;d&apos;</description>\n'
     '</domainsnapshot>\n'),
    (['--memspec', '/var/lib/xblk/s1.mem'],
     "<domainsnapshot>\n  <memory file='/var/lib/xblk/s1.mem'/>\n"
     '</domainsnapshot>\n'),
    (['--memspec', 'snapshot=external,file=/m,,1.mem'],
     "<domainsnapshot>\n  <memory snapshot='external' file='/m,1.mem'/>\n"
     '</domainsnapshot>\n'),
    (['--memspec', 'snapshot=internal'],
     "<domainsnapshot>\n  <memory snapshot='internal'/>\n"
     '</domainsnapshot>\n'),
    (['--name', 'ext', '--memspec', 'file=/srv/ext.mem,snapshot=external',
      '--diskspec', 'hda,snapshot=external,driver=qcow2,'
      'file=/srv/hda.ext.qcow2', '--diskspec', 'hdb,snapshot=no'],
     '<domainsnapshot>\n  <name>ext</name>\n'
     "  <memory snapshot='external' file='/srv/ext.mem'/>\n"
     '  <disks>\n'
     "    <disk name='hda' snapshot='external'>\n"
     "      <driver type='qcow2'/>\n"
     "      <source file='/srv/hda.ext.qcow2'/>\n"
     '    </disk>\n'
     "    <disk name='hdb' snapshot='no'/>\n"
     '  </disks>\n</domainsnapshot>\n'),
    (['--disk-only', '--atomic', '--diskspec', 'hda,file=/srv/a,,b.qcow2',
      '--diskspec', 'hdb'],
     '<domainsnapshot>\n  <disks>\n'
     "    <disk name='hda'>\n      <source file='/srv/a,b.qcow2'/>\n"
     "    </disk>\n    <disk name='hdb'/>\n  </disks>\n</domainsnapshot>\n"),
    (['--memspec', 'snapshot=no', '--diskspec', 'hda,snapshot=internal'],
     "<domainsnapshot>\n  <memory snapshot='no'/>\n  <disks>\n"
     "    <disk name='hda' snapshot='internal'/>\n  </disks>\n"
     '</domainsnapshot>\n'),
    (['--diskspec', 'hda,snapshot=external,stype=block,file=/dev/sdz'],
     "<domainsnapshot>\n  <disks>\n"
     "    <disk name='hda' snapshot='external' type='block'>\n"
     "      <source dev='/dev/sdz'/>\n    </disk>\n  </disks>\n"
     '</domainsnapshot>\n'),
    (['--diskspec', '/srv/hda.qcow2,snapshot=external,stype=file,'
      'file=/srv/hda.2.qcow2,driver=qcow2'],
     "<domainsnapshot>\n  <disks>\n"
     "    <disk name='/srv/hda.qcow2' snapshot='external' type='file'>\n"
     "      <driver type='qcow2'/>\n"
     "      <source file='/srv/hda.2.qcow2'/>\n    </disk>\n  </disks>\n"
     '</domainsnapshot>\n'),
    # NAME DESCRIPTION DISKSPEC... given without their option names.
    (['n', 'd', 'hda,snapshot=external,file=/x.qcow2', 'hdb,snapshot=no'],
     '<domainsnapshot>\n  <name>n</name>\n  <description>d</description>\n'
     "  <disks>\n    <disk name='hda' snapshot='external'>\n"
     "      <source file='/x.qcow2'/>\n    </disk>\n"
     "    <disk name='hdb' snapshot='no'/>\n  </disks>\n"
     '</domainsnapshot>\n'),
]


class PrintXmlTest(xtest.TmpDirTestCase):
    def test_print_xml(self):
        for args, expect in PRINT_XML:
            p = snap('snapshot-create-as', '--print-xml', *args)
            self.assertEqual(p.returncode, 0, (args, p.stderr))
            self.assertEqual(p.stderr, '')
            # virsh: the document, its newline, the command's newline.
            self.assertEqual(p.stdout, expect + '\n\n', args)
            q = snap('-q', 'snapshot-create-as', '--print-xml', *args)
            self.assertEqual(q.stdout, expect + '\n')

    def test_print_xml_schema(self):
        if not (shutil.which('xmllint') and os.path.exists(SCHEMA)):
            self.skipTest('no xmllint or %s' % SCHEMA)
        for i, (args, _) in enumerate(PRINT_XML):
            p = snap('snapshot-create-as', '--print-xml', *args)
            f = self.path('doc%d.xml' % i)
            with open(f, 'w') as fh:
                fh.write(p.stdout)
            v = xtest.run(['xmllint', '--noout', '--relaxng', SCHEMA, f],
                          check=False)
            self.assertEqual(v.returncode, 0, (args, p.stdout, v.stderr))


# ---- a fake QMP server ----

def info(name, ctime=1700000000, state='running', parent=None,
         current=False, location='internal', children=0, descendants=0):
    d = {'name': name, 'creation-time': ctime, 'state': state,
         'current': current, 'memory': 'internal', 'location': location,
         'children': children, 'descendants': descendants}
    if parent:
        d['parent'] = parent
    return d


DOC = """<domainsnapshot>
  <name>%s</name>
  <state>running</state>
  <creationTime>1700000000</creationTime>
  <memory snapshot='internal'/>
  <disks>
    <disk name='hda' snapshot='internal'/>
  </disks>
  <domain type='qemu'>
    <name>xbox</name>
    <memory unit='KiB'>65536</memory>
    <vcpu>1</vcpu>
    <os>
      <type arch='i686'>hvm</type>
    </os>
    <devices>
      <disk type='file' device='disk'>
        <driver name='qemu' type='qcow2'/>
        <source file='/srv/hda.qcow2'/>
        <target dev='hda' bus='ide'/>
      </disk>
    </devices>
  </domain>
</domainsnapshot>
"""

LIST = [info('b-snap', parent='A', current=True),
        info('A', ctime=1600000000, state='shutoff', children=2,
             descendants=2, location='none'),
        info('c\u00e9', state='disk-snapshot', parent='A',
             location='external')]

TREE = 'A\n  |\n  +- b-snap\n  +- c\u00e9\n    \n'


def ok(value):
    return {'return': value}


def fail(desc):
    return {'error': {'class': 'GenericError', 'desc': desc}}


class FakeQmp:
    """A QMP server thread: the greeting, qmp_capabilities, then for each
    command the reply replies[name] (a dict, or a function of the
    arguments), an event sent before each reply.  Every request is kept
    in self.requests.  dribble: write replies a byte at a time."""

    def __init__(self, path=None, replies=None, dribble=False):
        if path:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(path)
            self.uri = 'unix:' + path
        else:
            self.sock = socket.socket(socket.AF_INET)
            self.sock.bind(('127.0.0.1', 0))
            self.uri = 'tcp:127.0.0.1:%d' % self.sock.getsockname()[1]
        self.sock.listen(4)
        self.replies = replies or {}
        self.dribble = dribble
        self.requests = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def send(self, conn, msg):
        data = (json.dumps(msg) + '\r\n').encode()
        if not self.dribble:
            conn.sendall(data)
            return
        for i in range(len(data)):
            conn.sendall(data[i:i + 1])
            time.sleep(0.0005)

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    self.session(conn)
                except (BrokenPipeError, ConnectionResetError):
                    pass        # the client has what it needed

    def session(self, conn):
        self.send(conn, {'QMP': {'version': {'qemu': {
            'major': 7, 'minor': 2, 'micro': 0}, 'package': ''},
            'capabilities': []}})
        for line in conn.makefile('rb'):
            msg = json.loads(line)
            self.requests.append(msg)
            name = msg.get('execute')
            if name == 'qmp_capabilities':
                self.send(conn, ok({}))
                continue
            self.send(conn, {'event': 'SOMETHING', 'data': {},
                             'timestamp': {'seconds': 0, 'microseconds': 0}})
            r = self.replies.get(name, {'error': {
                'class': 'CommandNotFound',
                'desc': 'The command %s has not been found' % name}})
            if callable(r):
                r = r(msg.get('arguments', {}))
            self.send(conn, r)

    def commands(self):
        """What was sent after qmp_capabilities, as (name, arguments)."""
        self.thread.join(0.1)
        assert self.requests[0] == {'execute': 'qmp_capabilities'}, \
            self.requests
        out = [(m['execute'], m.get('arguments'))
               for m in self.requests[1:]]
        self.requests = []
        return out

    def close(self):
        # shutdown() wakes the thread blocked in accept(); a bare close()
        # would leave it there, and its fd number to the next server.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(10)
        self.sock.close()


def default_replies():
    return {
        'x-xblk-snapshot-list': lambda a: ok(
            dict({'snapshots': LIST}, **({'tree': TREE} if a.get('tree')
                                         else {}))),
        'x-xblk-snapshot-info': lambda a: ok(
            [i for i in LIST if i['name'] == a['name']][0]),
        'x-xblk-snapshot-dumpxml': lambda a: ok({'xml': DOC % a['name']}),
        'x-xblk-snapshot-current': lambda a: ok({'name': a.get('name',
                                                               'b-snap')}),
        'x-xblk-snapshot-parent': lambda a: ok(
            {'parent': 'A'} if a['name'] != 'A' else {}),
        'x-xblk-snapshot-create': lambda a: ok(
            {'name': 'made', 'guest-pause-ns': 1000}),
        'x-xblk-snapshot-edit': lambda a: ok(
            {'name': re.search(r'<name>([^<]*)</name>', a['xml']).group(1)}),
        'x-xblk-snapshot-revert': lambda a: ok(
            {'state': 'running', 'guest-pause-ns': 1000}),
        'x-xblk-snapshot-delete': lambda a: ok({'deleted': [a['name']]}),
    }


TABLE = (
    ' Name     Creation Time               State\n'
    '-----------------------------------------------------\n'
    ' A        2020-09-13 12:26:40 +0000   shutoff\n'
    ' b-snap   2023-11-14 22:13:20 +0000   running\n'
    ' c\u00e9       2023-11-14 22:13:20 +0000   disk-snapshot\n'
    '\n')

TABLE_PARENT = (
    ' Name     Creation Time               State           Parent\n'
    '--------------------------------------------------------------\n'
    ' A        2020-09-13 12:26:40 +0000   shutoff         \n'
    ' b-snap   2023-11-14 22:13:20 +0000   running         A\n'
    ' c\u00e9       2023-11-14 22:13:20 +0000   disk-snapshot   A\n'
    '\n')

INFO_B = (
    'Name:           b-snap\n'
    'Domain:         xbox\n'
    'Current:        yes\n'
    'State:          running\n'
    'Location:       internal\n'
    'Parent:         A\n'
    'Children:       0\n'
    'Descendants:    0\n'
    'Metadata:       yes\n'
    '\n')


class FakeQmpTest(xtest.TmpDirTestCase):
    def setUp(self):
        super().setUp()
        self.qmp = FakeQmp(self.path('qmp.sock'), default_replies())

    def tearDown(self):
        self.qmp.close()
        super().tearDown()

    def run_cli(self, *args, env=None):
        return snap('-c', self.qmp.uri, *args, env=env)

    def check(self, args, stdout, commands, stderr='', rc=0, env=None):
        p = self.run_cli(*args, env=env)
        self.assertEqual(p.stderr, stderr, args)
        self.assertEqual(p.stdout, stdout, args)
        self.assertEqual(p.returncode, rc, args)
        self.assertEqual(self.qmp.commands(), commands, args)

    def test_list_table(self):
        self.check(['snapshot-list'], TABLE, [('x-xblk-snapshot-list', {})])
        self.check(['snapshot-list', '--parent'], TABLE_PARENT,
                   [('x-xblk-snapshot-list', {})])
        p = self.run_cli('-q', 'snapshot-list')
        self.assertEqual(p.stdout, ''.join(TABLE.splitlines(True)[2:-1]))
        self.qmp.commands()

    def test_list_local_time(self):
        p = self.run_cli('snapshot-list', env={'TZ': 'Asia/Kolkata'})
        self.assertIn(' A        2020-09-13 17:56:40 +0530   shutoff\n',
                      p.stdout)
        self.qmp.commands()

    def test_list_names_and_filters(self):
        self.check(['snapshot-list', '--name', '--leaves', '--external',
                    '--disk-only'], 'A\nb-snap\nc\u00e9\n\n',
                   [('x-xblk-snapshot-list', {'leaves': True,
                                              'external': True,
                                              'disk-only': True})])
        self.check(['snapshot-list', '--roots', '--no-leaves', '--active',
                    '--inactive', '--internal', '--name'],
                   'A\nb-snap\nc\u00e9\n\n',
                   [('x-xblk-snapshot-list', {
                       'roots': True, 'no-leaves': True, 'active': True,
                       'inactive': True, 'internal': True})])
        self.check(['snapshot-list', 'A', '--descendants', '--name'],
                   'A\nb-snap\nc\u00e9\n\n',
                   [('x-xblk-snapshot-list', {'from': 'A',
                                              'descendants': True})])
        self.check(['snapshot-list', '--current', '--name'],
                   'A\nb-snap\nc\u00e9\n\n',
                   [('x-xblk-snapshot-list', {'current': True})])

    def test_list_tree(self):
        self.check(['snapshot-list', '--tree'], TREE + '\n',
                   [('x-xblk-snapshot-list', {'tree': True})])
        self.check(['snapshot-list', '--tree', '--from', 'A'], TREE + '\n',
                   [('x-xblk-snapshot-list', {'tree': True, 'from': 'A'})])

    def test_info(self):
        self.check(['snapshot-info', 'b-snap'], INFO_B,
                   [('x-xblk-snapshot-info', {'name': 'b-snap'}),
                    ('x-xblk-snapshot-dumpxml', {'name': 'b-snap'})])
        self.check(['snapshot-info', '--current'], INFO_B,
                   [('x-xblk-snapshot-current', {}),
                    ('x-xblk-snapshot-info', {'name': 'b-snap'}),
                    ('x-xblk-snapshot-dumpxml', {'name': 'b-snap'})])
        p = self.run_cli('snapshot-info', '--snapshotname=c\u00e9')
        self.assertIn('Location:       external\n', p.stdout)
        self.assertIn('Current:        no\n', p.stdout)
        p = self.run_cli('snapshot-info', 'A')
        self.assertIn('Parent:         -\nChildren:       2\n'
                      'Descendants:    2\n', p.stdout)
        # virsh knows internal and external only.
        self.assertIn('Location:       internal\n', p.stdout)
        self.qmp.commands()

    def test_current_dumpxml_parent(self):
        self.check(['snapshot-current'], DOC % 'b-snap' + '\n',
                   [('x-xblk-snapshot-current', {}),
                    ('x-xblk-snapshot-dumpxml', {'name': 'b-snap'})])
        self.check(['snapshot-current', '--name'], 'b-snap\n',
                   [('x-xblk-snapshot-current', {})])
        self.check(['-q', 'snapshot-current', '--name'], 'b-snap',
                   [('x-xblk-snapshot-current', {})])
        self.check(['snapshot-current', 'A'], 'Snapshot A set as current\n',
                   [('x-xblk-snapshot-current', {'name': 'A'})])
        self.check(['snapshot-dumpxml', 'A'], DOC % 'A' + '\n',
                   [('x-xblk-snapshot-dumpxml', {'name': 'A'})])
        self.check(['snapshot-parent', 'b-snap'], 'A\n',
                   [('x-xblk-snapshot-parent', {'name': 'b-snap'})])
        self.check(['snapshot-parent', '--current'], 'A\n',
                   [('x-xblk-snapshot-current', {}),
                    ('x-xblk-snapshot-parent', {'name': 'b-snap'})])
        self.check(['snapshot-parent', 'A'], '\n',
                   [('x-xblk-snapshot-parent', {'name': 'A'})],
                   stderr="error: snapshot 'A' has no parent\n", rc=1)

    def test_no_current(self):
        self.qmp.replies['x-xblk-snapshot-current'] = lambda a: ok({})
        self.check(['snapshot-current'], '\n',
                   [('x-xblk-snapshot-current', {})],
                   stderr='error: domain has no current snapshot\n', rc=1)
        self.check(['snapshot-delete', '--current'], '\n',
                   [('x-xblk-snapshot-current', {})],
                   stderr='error: Domain snapshot not found: the domain does '
                   'not have a current snapshot\n', rc=1)

    def test_create(self):
        f = self.path('s.xml')
        with open(f, 'w') as fh:
            fh.write(DOC % 'old')
        self.check(['snapshot-create'], 'Domain snapshot made created\n',
                   [('x-xblk-snapshot-create',
                     {'xml': '<domainsnapshot/>'})])
        self.check(['snapshot-create', f, '--redefine', '--current',
                    '--validate', '--atomic'],
                   "Domain snapshot made created from '%s'\n" % f,
                   [('x-xblk-snapshot-create',
                     {'xml': DOC % 'old', 'redefine': True, 'current': True,
                      'validate': True})])
        self.check(['snapshot-create', '--xmlfile', f, '--disk-only',
                    '--no-metadata'],
                   "Domain snapshot made created from '%s'\n" % f,
                   [('x-xblk-snapshot-create',
                     {'xml': DOC % 'old', 'disk-only': True,
                      'no-metadata': True})])
        self.check(['-q', 'snapshot-create'], '',
                   [('x-xblk-snapshot-create',
                     {'xml': '<domainsnapshot/>'})])

    def test_create_as(self):
        self.check(['snapshot-create-as', '--name', 's1', '--disk-only',
                    '--atomic', '--diskspec', 'hda,file=/srv/h.qcow2'],
                   'Domain snapshot made created\n',
                   [('x-xblk-snapshot-create', {
                       'xml': "<domainsnapshot>\n  <name>s1</name>\n"
                              "  <disks>\n    <disk name='hda'>\n"
                              "      <source file='/srv/h.qcow2'/>\n"
                              "    </disk>\n  </disks>\n"
                              "</domainsnapshot>\n",
                       'disk-only': True})])
        self.check(['snapshot-create-as', 's2', 'desc', '--no-metadata',
                    '--validate', '--memspec', '/srv/s2.mem'],
                   'Domain snapshot made created\n',
                   [('x-xblk-snapshot-create', {
                       'xml': "<domainsnapshot>\n  <name>s2</name>\n"
                              "  <description>desc</description>\n"
                              "  <memory file='/srv/s2.mem'/>\n"
                              "</domainsnapshot>\n",
                       'no-metadata': True, 'validate': True})])
        # --print-xml never connects.
        p = self.run_cli('snapshot-create-as', '--print-xml')
        self.assertEqual(p.returncode, 0)
        self.assertEqual(self.qmp.requests, [])

    def test_revert_delete(self):
        self.check(['snapshot-revert', 'A', '--running', '--force'],
                   'Domain snapshot A reverted\n\n',
                   [('x-xblk-snapshot-revert',
                     {'name': 'A', 'running': True, 'force': True})])
        self.check(['snapshot-revert', '--current', '--paused'],
                   'Domain snapshot b-snap reverted\n\n',
                   [('x-xblk-snapshot-current', {}),
                    ('x-xblk-snapshot-revert',
                     {'name': 'b-snap', 'paused': True})])
        self.check(['snapshot-delete', 'A', '--children', '--metadata'],
                   'Domain snapshot A deleted\n\n',
                   [('x-xblk-snapshot-delete',
                     {'name': 'A', 'children': True, 'metadata': True})])
        self.check(['snapshot-delete', '--snapshotname', 'A',
                    '--children-only'],
                   'Domain snapshot A children deleted\n\n',
                   [('x-xblk-snapshot-delete',
                     {'name': 'A', 'children-only': True})])
        self.check(['-q', 'snapshot-delete', 'A'], '',
                   [('x-xblk-snapshot-delete', {'name': 'A'})])

    def test_error_replies(self):
        gone = ("Domain snapshot not found: no domain snapshot with "
                "matching name 'zz'")
        for name in ('x-xblk-snapshot-info', 'x-xblk-snapshot-dumpxml',
                     'x-xblk-snapshot-delete', 'x-xblk-snapshot-revert',
                     'x-xblk-snapshot-create', 'x-xblk-snapshot-list',
                     'x-xblk-snapshot-parent'):
            self.qmp.replies[name] = fail(gone)
        for args in (['snapshot-info', 'zz'], ['snapshot-dumpxml', 'zz'],
                     ['snapshot-parent', 'zz'], ['snapshot-list'],
                     ['snapshot-create-as', 'zz']):
            p = self.run_cli(*args)
            self.assertEqual(p.returncode, 1, args)
            self.assertEqual(p.stderr, 'error: %s\n' % gone, args)
            self.assertEqual(p.stdout, '\n', args)
        p = self.run_cli('snapshot-delete', 'zz')
        self.assertEqual(p.stderr, 'error: Failed to delete snapshot zz\n'
                         'error: %s\n' % gone)
        self.assertEqual(p.returncode, 1)
        p = self.run_cli('snapshot-revert', 'zz')
        self.assertEqual(p.stderr, 'error: Failed to revert snapshot zz\n'
                         'error: %s\n' % gone)
        self.assertEqual(p.returncode, 1)
        self.qmp.commands()

    def editor(self, script):
        """An $EDITOR that runs sed script on the file."""
        return {'EDITOR': "sed -i -e '%s'" % script, 'VISUAL': ''}

    def test_edit(self):
        self.check(['snapshot-edit', 'A'],
                   'Snapshot A XML configuration not changed.\n\n',
                   [('x-xblk-snapshot-dumpxml', {'name': 'A'})],
                   env={'EDITOR': 'true', 'VISUAL': ''})
        edited = (DOC % 'A').replace('<state>', '<description>new'
                                     '</description>\n  <state>')
        self.check(['snapshot-edit', 'A'], 'Snapshot A edited.\n\n',
                   [('x-xblk-snapshot-dumpxml', {'name': 'A'}),
                    ('x-xblk-snapshot-edit', {'name': 'A', 'xml': edited})],
                   env=self.editor(r'/<state>/i\  <description>new'
                                   r'</description>'))
        # VISUAL wins over EDITOR.
        self.check(['snapshot-edit', '--current'],
                   'Snapshot b-snap XML configuration not changed.\n\n',
                   [('x-xblk-snapshot-current', {}),
                    ('x-xblk-snapshot-dumpxml', {'name': 'b-snap'})],
                   env={'EDITOR': 'false', 'VISUAL': 'true'})

    def test_edit_rename(self):
        rename = self.editor('s|<name>A</name>|<name>Z</name>|')
        self.check(['snapshot-edit', 'A'], '\n',
                   [('x-xblk-snapshot-dumpxml', {'name': 'A'})],
                   stderr='error: Must use --rename to change A to Z\n'
                          'error: Failed to update A\n', rc=1, env=rename)
        self.check(['snapshot-edit', 'A', '--rename'], '\n',
                   [('x-xblk-snapshot-dumpxml', {'name': 'A'}),
                    ('x-xblk-snapshot-edit',
                     {'name': 'A', 'xml': DOC % 'Z'})], env=rename)
        # An editor that fails leaves the snapshot alone.
        p = self.run_cli('snapshot-edit', 'A',
                         env={'EDITOR': 'false', 'VISUAL': ''})
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.endswith('error: Failed to update A\n'),
                        p.stderr)
        self.assertEqual(self.qmp.commands(),
                         [('x-xblk-snapshot-dumpxml', {'name': 'A'})])


class FakeQmpTransportTest(xtest.TmpDirTestCase):
    def test_tcp_and_dribbled_replies(self):
        """TCP, and replies written a byte at a time (a read can end in
        the middle of a UTF-8 sequence or a \\u escape)."""
        for path in (None, self.path('qmp.sock')):
            qmp = FakeQmp(path, default_replies(), dribble=True)
            try:
                p = snap('-c', qmp.uri, 'snapshot-list', '--name')
                self.assertEqual(p.stderr, '')
                self.assertEqual(p.stdout, 'A\nb-snap\nc\u00e9\n\n')
                self.assertEqual(qmp.commands(),
                                 [('x-xblk-snapshot-list', {})])
            finally:
                qmp.close()

    def test_not_a_monitor(self):
        srv = socket.socket(socket.AF_UNIX)
        path = self.path('junk.sock')
        srv.bind(path)
        srv.listen(1)

        def junk():
            conn, _ = srv.accept()
            conn.sendall(b'{"hello": 1}\r\n')
            conn.close()
        t = threading.Thread(target=junk, daemon=True)
        t.start()
        p = snap('-c', 'unix:' + path, 'snapshot-list')
        t.join(5)
        srv.close()
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, 'error: failed to connect to the '
                         "hypervisor\nerror: 'unix:%s' is not a QMP monitor "
                         '(no greeting)\n' % path)


if __name__ == '__main__':
    xtest.main()
