#!/usr/bin/env python3
"""scripts/qapi-gen --extern: one schema compiled as two parts.

libxblk carries the code of the engine's schema (qapi/engine-schema.json,
prefix engine-); the emulator compiles only what qapi/qapi-schema.json
adds on top (--extern).  Checked here:

- a small two-part schema: the second part's output defines none of the
  first part's types, visitors, commands or events, includes the first
  part's headers instead, carries no built-ins, and registers only its
  own commands; its introspection covers both parts;
- both parts' C compiles and links as one object without a symbol
  defined twice (the engine's objects and the emulator's in one
  program);
- the real split: every command of qapi/qapi-schema.json is registered by
  exactly one part, and the whole schema's introspection is the one a
  plain run writes;
- the errors: an extern schema the main schema does not include, an
  extern prefix equal to the output's.
"""
import os
import re
import shlex
import subprocess
import sys
import textwrap

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import xtest  # noqa: E402

GEN = os.path.join(xtest.ROOT, 'scripts', 'qapi-gen')
QAPI = os.path.join(xtest.ROOT, 'qapi')


def gen(*args):
    return subprocess.run([sys.executable, GEN] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=120)


def registered(commands_c):
    with open(commands_c) as f:
        return re.findall(r'qmp_register_command\(cmds, "([^"]+)"', f.read())


def cflags():
    """The build's compiler flags for GLib and jansson (config.mak)."""
    flags = []
    with open(os.path.join(xtest.BUILD, 'config.mak')) as f:
        for line in f:
            if line.startswith('LIB_CFLAGS'):
                flags = shlex.split(line.split('=', 1)[1])
    return flags


ENGINE = """
    { 'enum': 'Color', 'data': [ 'red', 'green' ] }
    { 'struct': 'Paint', 'data': { 'color': 'Color', '*coats': 'int' } }
    { 'command': 'get-paint', 'returns': 'Paint' }
    { 'event': 'PAINT_DRY', 'data': { 'paint': 'Paint' } }
    """

HOST = """
    { 'include': 'engine.json' }
    { 'struct': 'Wall', 'data': { 'paint': 'Paint', 'sides': [ 'Color' ],
                                  'names': [ 'str' ] } }
    { 'command': 'paint-wall', 'data': 'Wall', 'returns': 'Paint' }
    { 'command': 'list-walls', 'returns': [ 'Wall' ] }
    { 'event': 'WALL_DONE', 'data': { 'color': 'Color' } }
    """


class Extern(xtest.TmpDirTestCase):

    def write(self, name, text):
        with open(self.path(name), 'w') as f:
            f.write(textwrap.dedent(text))
        return self.path(name)

    def read(self, name):
        with open(os.path.join(self.out, name)) as f:
            return f.read()

    def generate(self):
        engine = self.write('engine.json', ENGINE)
        host = self.write('host.json', HOST)
        self.out = self.path('qapi')
        p = gen('-o', self.out, '-p', 'engine-', engine)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = gen('-o', self.out, '--extern', engine, '--extern-prefix',
                'engine-', host)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, '')

    def test_second_part_only(self):
        self.generate()
        files = set(os.listdir(self.out))
        # built-ins once, from the first part
        self.assertEqual(sorted(f for f in files if 'builtin' in f), [
            'qapi-builtin-types.c', 'qapi-builtin-types.h',
            'qapi-builtin-visit.c', 'qapi-builtin-visit.h'])
        with open(os.path.join(self.out, 'qapi-gen.stamp')) as f:
            self.assertNotIn('builtin', f.read())
        types = self.read('qapi-types.h')
        self.assertIn('#include "qapi/engine-qapi-types.h"', types)
        self.assertIn('struct Wall {', types)
        self.assertNotIn('struct Paint {', types)
        self.assertNotIn('typedef enum Color', types)
        self.assertNotIn('struct PaintList {', types)
        self.assertNotIn('struct ColorList {', types)
        self.assertNotIn('qapi_free_Paint(', types)
        # every type's list goes with the type
        self.assertIn('struct WallList {', types)
        self.assertIn('struct ColorList {', self.read('engine-qapi-types.h'))
        self.assertIn('typedef enum Color', self.read('engine-qapi-types.h'))
        visit = self.read('qapi-visit.h')
        self.assertIn('#include "qapi/engine-qapi-visit.h"', visit)
        self.assertIn('visit_Wall_from_json', visit)
        self.assertNotIn('visit_Paint_from_json', visit)
        self.assertNotIn('visit_Color_from_json', visit)
        cmds = self.read('qapi-commands.h')
        self.assertIn('#include "qapi/engine-qapi-commands.h"', cmds)
        self.assertIn('qmp_paint_wall(', cmds)
        self.assertNotIn('qmp_get_paint(', cmds)
        self.assertEqual(registered(os.path.join(self.out,
                                                 'qapi-commands.c')),
                         ['paint-wall', 'list-walls'])
        self.assertEqual(registered(os.path.join(self.out,
                                                 'engine-qapi-commands.c')),
                         ['get-paint'])
        self.assertIn('void engine_qmp_init_marshal(QmpCommandList *cmds);',
                      self.read('engine-qapi-commands.h'))
        events = self.read('qapi-events.h')
        self.assertIn('#include "qapi/engine-qapi-events.h"', events)
        self.assertIn('qapi_event_send_wall_done(', events)
        self.assertNotIn('qapi_event_send_paint_dry(', events)
        # the introspection of the second part describes both
        names = re.findall(r'\\"name\\": \\"([^\\]+)\\"',
                           self.read('qapi-introspect.c'))
        for n in ('get-paint', 'paint-wall', 'list-walls', 'PAINT_DRY',
                  'WALL_DONE'):
            self.assertIn(n, names)
        names = re.findall(r'\\"name\\": \\"([^\\]+)\\"',
                           self.read('engine-qapi-introspect.c'))
        self.assertIn('get-paint', names)
        self.assertNotIn('paint-wall', names)

    def test_parts_link_together(self):
        self.generate()
        objs = []
        for c in sorted(f for f in os.listdir(self.out) if f.endswith('.c')):
            o = self.path(c[:-2] + '.o')
            xtest.run(['cc', '-std=gnu11', '-c', '-o', o,
                       os.path.join(self.out, c), '-I', xtest.ROOT,
                       '-I', self.dir, '-I', self.out] + cflags())
            objs.append(o)
        # one relocatable object: a symbol defined in both parts fails
        p = xtest.run(['cc', '-r', '-nostdlib', '-o', self.path('all.o')] +
                      objs, check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn('multiple definition', p.stderr)

    def test_real_split(self):
        out = self.path('out')
        engine = os.path.join(QAPI, 'engine-schema.json')
        full = os.path.join(QAPI, 'qapi-schema.json')
        self.assertEqual(gen('-o', out, '-p', 'engine-', engine).returncode,
                         0)
        p = gen('-o', out, '--extern', engine, '--extern-prefix', 'engine-',
                full)
        self.assertEqual(p.returncode, 0, p.stderr)
        plain = self.path('plain')
        self.assertEqual(gen('-o', plain, full).returncode, 0)
        eng = registered(os.path.join(out, 'engine-qapi-commands.c'))
        host = registered(os.path.join(out, 'qapi-commands.c'))
        self.assertEqual(set(eng) & set(host), set())
        self.assertEqual(sorted(eng + host),
                         sorted(registered(os.path.join(plain,
                                                        'qapi-commands.c'))))
        # the engine's part needs no machine; the host's has the machine's
        for n in ('blockdev-add', 'query-block', 'query-named-block-nodes',
                  'transaction', 'query-jobs', 'block-dirty-bitmap-add',
                  'blockdev-backup', 'query-version', 'query-commands',
                  'qmp_capabilities'):
            self.assertIn(n, eng)
        for n in ('quit', 'stop', 'cont', 'query-status', 'x-query-frame',
                  'screendump', 'eject', 'snapshot-save',
                  'human-monitor-command'):
            self.assertIn(n, host)
        with open(os.path.join(out, 'qapi-introspect.c')) as a, \
                open(os.path.join(plain, 'qapi-introspect.c')) as b:
            self.assertEqual(a.read(), b.read())

    def test_extern_not_included(self):
        engine = self.write('engine.json', ENGINE)
        other = self.write('other.json', """
            { 'struct': 'Lone', 'data': { 'a': 'int' } }
            """)
        p = gen('-o', self.path('out'), '--extern', engine,
                '--extern-prefix', 'engine-', other)
        self.assertEqual(p.returncode, 1)
        self.assertIn('%s: extern schema %s is not included' % (other,
                                                                engine),
                      p.stderr)
        self.assertFalse(os.path.exists(self.path('out')))

    def test_extern_needs_own_prefix(self):
        engine = self.write('engine.json', ENGINE)
        host = self.write('host.json', HOST)
        p = gen('-o', self.path('out'), '-p', 'x-', '--extern', engine,
                '--extern-prefix', 'x-', host)
        self.assertEqual(p.returncode, 2)
        self.assertIn('the extern schema needs a prefix of its own',
                      p.stderr)


if __name__ == '__main__':
    xtest.main()
