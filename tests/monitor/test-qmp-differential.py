#!/usr/bin/env python3
"""The same QMP script against QEMU 7.2 and xblk-system: every reply must
have the same shape (keys, JSON types, error classes).

QEMU runs as `qemu-system-x86_64 -machine none -nodefaults -display none`
from Debian's qemu-system-x86; the test is skipped when it is missing.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

QEMU = shutil.which('qemu-system-x86_64')


def shape(v):
    """Keys and JSON types, recursively."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        # Short lists element by element (nodes); long ones by their first.
        if len(v) <= 16:
            return [shape(x) for x in v]
        return [shape(v[0])]
    if isinstance(v, bool):
        return 'bool'
    if isinstance(v, (int, float)):
        return 'number'
    if v is None:
        return 'null'
    return 'str'


def error_shape(r):
    if 'error' in r:
        return {'error-class': r['error']['class']}
    return shape(r)


class Differential(xtest.TmpDirTestCase):
    maxDiff = None

    def run_script(self, argv, img):
        d = os.path.join(self.dir, os.path.basename(argv[0]))
        os.makedirs(d, exist_ok=True)
        srv = qmpclient.Server(argv, tmpdir=d)
        results = []
        try:
            c = srv.client()
            results.append(('greeting', shape(c.greeting)))
            script = [
                ('query-status', None),
                ('qmp_capabilities', None),
                ('qmp_capabilities', None),
                ('query-version', None),
                ('query-status', None),
                ('no-such-command', None),
                ('query-block', None),
                ('blockdev-add', {'driver': 'qcow2', 'node-name': 'd0',
                                  'file': {'driver': 'file',
                                           'filename': img}}),
                ('blockdev-add', {'driver': 'qcow2', 'node-name': 'd0',
                                  'file': {'driver': 'file',
                                           'filename': img}}),
                ('query-named-block-nodes', {'flat': True}),
                ('block_resize', {'node-name': 'd0', 'size': 32 << 20}),
                ('block_resize', {'node-name': 'd0'}),
                ('block_resize', {'node-name': 'd0', 'size': 'big'}),
                ('block_resize', {'node-name': 'nope', 'size': 1}),
                ('human-monitor-command', {'command-line': 'info status'}),
                ('stop', None),
                ('query-status', None),
                ('cont', None),
                ('blockdev-add', {'driver': 'qcow2', 'node-name': 'd1',
                                  'file': 'nope'}),
                ('blockdev-add', {'driver': 'qcow2', 'node-name': 'd2',
                                  'file': {'driver': 'file',
                                           'filename': img + '.missing'}}),
                ('blockdev-add', {'driver': 'qcow2',
                                  'file': {'driver': 'file',
                                           'filename': img}}),
                ('blockdev-add', {'driver': 'nonsense', 'node-name': 'd3'}),
                ('cont', None),
                ('blockdev-del', {'node-name': 'd0'}),
                ('blockdev-del', {'node-name': 'd0'}),
                ('query-named-block-nodes', None),
            ]
            for name, args in script:
                r = c.cmd(name, args, id='x')
                results.append((name, error_shape(r)))
            for ev in ('STOP', 'RESUME'):
                results.append((ev, shape(c.wait_event(ev))))
            r = c.cmd('quit')
            results.append(('quit', shape(r)))
            results.append(('SHUTDOWN', shape(c.wait_event('SHUTDOWN'))))
        finally:
            srv.stop()
        return results

    def test_same_shapes_as_qemu(self):
        if not QEMU:
            self.skipTest('qemu-system-x86_64 not installed')
        imgs = []
        for who in ('q', 'x'):
            img = self.path('%s.qcow2' % who)
            xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', img, '16M'])
            imgs.append(img)
        q = self.run_script([QEMU, '-machine', 'none', '-nodefaults',
                             '-display', 'none'], imgs[0])
        x = self.run_script([xtest.binary('xblk-system'), '-machine', 'none',
                             '-nodefaults', '-display', 'none'], imgs[1])
        self.assertEqual(len(q), len(x))
        for (qn, qs), (xn, xs) in zip(q, x):
            self.assertEqual(qn, xn)
            self.assertEqual(xs, qs, 'reply to %s differs' % qn)


if __name__ == '__main__':
    xtest.main()
