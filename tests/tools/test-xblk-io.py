#!/usr/bin/env python3
"""xblk-io against the real qemu-io.

Images are made with qemu-img.  Every command of xblk-io is exercised;
data written by xblk-io is verified by qemu-io and the other way round;
every qcow2 image xblk-io wrote must pass `qemu-img check`; and for a set
of command lines both tools must print the same thing (timings and rates
masked) and exit with the same status.
"""
import json
import os
import re
import shutil
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import xtest  # noqa: E402

XIO = xtest.binary('xblk-io')
HAVE_QEMU = all(shutil.which(t) for t in ('qemu-img', 'qemu-io'))

SIZE = r'\d+(\.\d+)? (bytes|KiB|MiB|GiB|TiB|PiB|EiB)'
STATS_RE = re.compile(r'^(?P<size>%s), (?P<ops>\d+) ops; '
                      r'(\d\d\.\d\d sec|\d+:\d\d:\d\d\.\d\d) '
                      r'\(%s/sec and \d+\.\d{4} ops/sec\)$' % (SIZE, SIZE))
USAGE_RE = re.compile(r'^(read|write|aio_read|aio_write|open) \[.* -- ')
CSV_RE = re.compile(r'^(?P<head>\d+,\d+),\d+:\d\d:\d\d\.\d\d,'
                    r'\d+\.\d{3},\d+\.\d{3}$')

# ASan builds warn about coroutine stack switches on stderr at start-up;
# that is not the tool's output.  Real ASan reports still fail the tests
# (they change the exit status and print more than this line).
ASAN_NOISE = re.compile(r"^==\d+==WARNING: ASan doesn't fully support "
                        r"makecontext/swapcontext")


def qimg(*args, check=True):
    return xtest.run(['qemu-img'] + list(args), check=check)


def tool_argv(tool, path, cmds, opts=()):
    argv = [tool] + list(opts)
    for c in cmds:
        argv += ['-c', c]
    return argv + ([path] if path else [])


def xio(path, *cmds, opts=(), check=True, input=None):
    """Runs xblk-io; with check, any failure is an assertion."""
    p = xtest.run(tool_argv(XIO, path, cmds, opts), check=False, input=input)
    p.stderr = '\n'.join(l for l in p.stderr.splitlines()
                          if not ASAN_NOISE.search(l))
    if check and (p.returncode or 'failed' in p.stdout or p.stderr):
        raise AssertionError('xblk-io %s: rc %d\n%s%s' %
                             (cmds, p.returncode, p.stdout, p.stderr))
    return p


def qio(path, *cmds, opts=(), check=True):
    p = xtest.run(tool_argv('qemu-io', path, cmds, opts), check=False)
    if check and (p.returncode or 'failed' in p.stdout):
        raise AssertionError('qemu-io %s: rc %d\n%s%s' %
                             (cmds, p.returncode, p.stdout, p.stderr))
    return p


def mask(text):
    """Hides what differs run to run: times, rates, the program name."""
    out = []
    for line in text.splitlines():
        m = STATS_RE.match(line)
        c = CSV_RE.match(line)
        if m:
            line = '%s, %s ops; TIME (RATE)' % (m.group('size'),
                                               m.group('ops'))
        elif c:
            line = '%s,TIME,RATE' % c.group('head')
        line = line.replace('qemu-io', 'TOOL').replace('xblk-io', 'TOOL')
        # xblk-io lists only the options it has (no -a, -b, -i, -s, ...).
        u = USAGE_RE.match(line)
        if u:
            line = 'USAGE ' + u.group(1)
        if ASAN_NOISE.search(line):
            continue
        out.append(line)
    return out


@unittest.skipUnless(HAVE_QEMU, 'qemu-img and qemu-io are needed')
class XblkIoTest(xtest.TmpDirTestCase):

    def create(self, name, size='4M', fmt='qcow2', opts=None):
        path = self.path(name)
        args = ['create', '-q', '-f', fmt]
        if opts:
            args += ['-o', opts]
        qimg(*(args + [path, size]))
        return path

    def assert_clean(self, path):
        p = qimg('check', '--output=json', path, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        info = json.loads(p.stdout)
        self.assertEqual(info.get('corruptions', 0), 0, p.stdout)
        self.assertEqual(info.get('leaks', 0), 0, p.stdout)

    def assert_same_as_qemu(self, src, cmds, opts=(), no_file=False):
        """Runs cmds with both tools on copies of src and compares."""
        results = []
        # One name for both copies: messages quote it.
        copy = None if no_file else self.path('cmp.img')
        for tool in ('qemu-io', XIO):
            if copy:
                shutil.copyfile(src, copy)
            p = xtest.run(tool_argv(tool, copy, cmds, opts), check=False)
            results.append((p.returncode, mask(p.stdout), mask(p.stderr)))
        q, x = results
        where = 'commands %r' % (cmds,)
        self.assertEqual(x[1], q[1], 'stdout differs for ' + where)
        self.assertEqual(x[2], q[2], 'stderr differs for ' + where)
        self.assertEqual(x[0], q[0], 'exit status differs for ' + where)
        return x

    # ---- data in both directions ----

    def test_write_read_by_qemu_io(self):
        img = self.create('a.qcow2')
        p = xio(img, 'write -P 0xab 0 64k', 'write -P 0x11 100k 10000',
                'write 1M 3', 'write -P 0x22 3M 1M')
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], 'wrote 65536/65536 bytes at offset 0')
        self.assertRegex(lines[1], STATS_RE)
        self.assertEqual(lines[2], 'wrote 10000/10000 bytes at offset 102400')
        self.assertEqual(lines[4], 'wrote 3/3 bytes at offset 1048576')
        self.assertEqual(len(lines), 8)
        self.assert_clean(img)
        qio(img, 'read -P 0xab 0 64k', 'read -P 0 64k 36k',
            'read -P 0x11 100k 10000', 'read -P 0xcd 1M 3',
            'read -P 0 1048579 1M', 'read -P 0x22 3M 1M')

    def test_read_data_of_qemu_io(self):
        img = self.create('a.qcow2')
        qio(img, 'write -P 0x5a 4k 60k', 'write -P 0xa5 2M 1')
        p = xio(img, 'read -P 0x5a 4k 60k', 'read -P 0 0 4k',
                'read -P 0xa5 2M 1', 'read -P 0 2097153 100')
        self.assertEqual(p.stdout.splitlines()[0],
                         'read 61440/61440 bytes at offset 4096')
        bad = xio(img, 'read -P 0x5b 4k 60k', 'read -q -P 0 0 4k',
                  check=False)
        self.assertEqual(bad.returncode, 1)
        self.assertEqual(bad.stdout.splitlines()[0],
                         'Pattern verification failed at offset 4096, '
                         '61440 bytes')
        # The verified range can be narrowed with -s and -l.
        xio(img, 'read -P 0x5a -s 4k -l 60k 0 64k')

    def test_hexdump_matches_qemu_io(self):
        img = self.create('a.qcow2')
        src = self.path('pattern.bin')
        with open(src, 'wb') as f:
            f.write(b'Hello, World! 123\x00\xff\x7f~_-zZ' + bytes(range(256)))
        qio(img, 'write -s %s 60k 8k' % src)
        self.assert_same_as_qemu(img, ['read -v 65530 300', 'read -v 60k 17',
                                       'read -v 0 1'])

    # ---- write variants ----

    def test_write_zeroes(self):
        img = self.create('z.qcow2')
        qio(img, 'write -P 0x77 0 1M')
        xio(img, 'write -z 0 64k', 'write -z -u 128k 128k',
            'write -z 300000 5000', 'write -z -f 512k 64k',
            'write -z -n 640k 64k')
        self.assert_clean(img)
        qio(img, 'read -P 0 0 64k', 'read -P 0x77 64k 64k',
            'read -P 0 128k 128k', 'read -P 0x77 256k 37856',
            'read -P 0 300000 5000', 'read -P 0x77 305000 219288',
            'read -P 0 512k 64k', 'read -P 0x77 576k 64k',
            'read -P 0 640k 64k', 'read -P 0x77 704k 320k')

    def test_write_from_file_and_fua(self):
        img = self.create('s.qcow2')
        src = self.path('src.bin')
        with open(src, 'wb') as f:
            f.write(b'0123456789abcdef' * 3 + b'!')
        xio(img, 'write -s %s 1000 200' % src, 'write -f -P 9 64k 64k',
            'flush')
        self.assert_clean(img)
        self.assert_same_as_qemu(img, ['read -v 1000 200',
                                       'read -P 9 64k 64k'])

    def test_compressed_write(self):
        img = self.create('c.qcow2')
        xio(img, 'write -c 0 128k', 'write -c -P 0x3c 1M 64k',
            'write -c 4M 0')
        self.assert_clean(img)
        qio(img, 'read -P 0xcd 0 128k', 'read -P 0x3c 1M 64k')
        check = qimg('check', '--output=json', img).stdout
        self.assertGreater(json.loads(check)['compressed-clusters'], 0)
        # Not whole clusters, a raw image, -f: refused as qemu-io does.
        self.assert_same_as_qemu(img, ['write -c 512 64k', 'write -c 0 512',
                                       'write -c -f 0 64k'])
        raw = self.create('c.raw', fmt='raw')
        self.assert_same_as_qemu(raw, ['write -c 0 64k'], opts=['-f', 'raw'])

    def test_write_option_errors_match(self):
        img = self.create('e.qcow2')
        for cmd in ('write -z -P 1 0 1', 'write -u 0 1', 'write -n 0 1',
                    'write -c -f 0 64k', 'write -s /nonexistent 0 1',
                    'write -z -s x 0 1', 'write 0 3G', 'write 4M 1',
                    'write -x 0 1', 'write 0', 'write -P 256 0 1',
                    'write -z -n 0 3G'):
            self.assert_same_as_qemu(img, [cmd])

    # ---- discard ----

    def test_discard(self):
        img = self.create('d.qcow2')
        qio(img, 'write -P 0x44 0 1M')
        p = xio(img, 'discard 64k 128k', 'discard 300k 1',
                'discard -C 512k 64k')
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], 'discard 131072/131072 bytes at offset '
                                   '65536')
        self.assertRegex(lines[4], CSV_RE)
        self.assert_clean(img)
        qio(img, 'read -P 0x44 0 64k', 'read -P 0 64k 128k',
            'read -P 0x44 192k 320k', 'read -P 0 512k 64k')
        # Discard on a read-only image, beyond the end, bad arguments.
        for cmds, opts in ((['discard 0 64k'], ['-r']),
                           (['discard 4M 64k', 'discard 0 3G',
                             'discard 0', 'discard -x 0 1'], [])):
            self.assert_same_as_qemu(img, cmds, opts=opts)

    # ---- aio ----

    def test_aio_write_read(self):
        img = self.create('aio.qcow2', '64M')
        cmds = ['aio_write -q -P %d %dk 300k' % (i + 1, i * 300)
                for i in range(100)]
        cmds += ['aio_write -q -z 40M 1M', 'aio_write -q -P 7 41M 4k 4k 8k',
                 'aio_flush']
        cmds += ['aio_read -q -P %d %dk 100k 200k' % (i + 1, i * 300)
                 for i in range(100)]
        cmds += ['aio_flush']
        p = xio(img, *cmds)
        self.assertEqual(p.stdout, '')
        self.assert_clean(img)
        qio(img, *(['read -q -P %d %dk 300k' % (i + 1, i * 300)
                    for i in range(100)] +
                   ['read -q -P 0 40M 1M', 'read -q -P 7 41M 16k']))

    def test_aio_output_matches(self):
        img = self.create('aio.qcow2', '1M')
        self.assert_same_as_qemu(img, [
            'aio_write -P 0x11 0 4k', 'aio_flush',
            'aio_write -P 0x22 4k 4k 4k', 'aio_flush',
            'aio_read -P 0x11 0 4k', 'aio_flush',
            'aio_read -P 0x22 4k 2k 6k', 'aio_flush',
            'aio_read -P 0x33 0 4k', 'aio_flush',     # reported, rc 0
            'aio_read -v 4090 20', 'aio_flush',
            'aio_read -C 0 4k', 'aio_flush',
            'aio_write -C 0 4k', 'aio_flush',
            'aio_read 2M 1', 'aio_flush',            # completion errors
            'aio_write 2M 1', 'aio_flush',
            'aio_read 1 2 3 4 5'])                  # completes at exit
        self.assert_same_as_qemu(img, [
            'aio_read 0 3G', 'aio_read 0 1G 1G 1G', 'aio_read 0 1 x',
            'aio_write -u 0 4k', 'aio_read -q 0', 'aio_flush 1'])

    def test_aio_write_zeroes(self):
        img = self.create('aioz.qcow2', '1M')
        qio(img, 'write -P 0x55 0 1M')
        p = xio(img, 'aio_write -z 0 64k', 'aio_write -z -u 128k 64k',
                'aio_write -z -f 300k 100', 'aio_flush')
        # Completion order is up to the block layer; pair the lines.
        lines = p.stdout.splitlines()
        self.assertEqual(len(lines), 6)
        self.assertEqual(sorted(lines[0::2]), [
            'wrote 100/100 bytes at offset 307200',
            'wrote 65536/65536 bytes at offset 0',
            'wrote 65536/65536 bytes at offset 131072'])
        for line in lines[1::2]:
            self.assertRegex(line, STATS_RE)
        self.assert_clean(img)
        qio(img, 'read -P 0 0 64k', 'read -P 0x55 64k 64k',
            'read -P 0 128k 64k', 'read -P 0x55 192k 108k',
            'read -P 0 300k 100', 'read -P 0x55 307300 741276')

    # ---- flush, map, info, length, help ----

    def test_flush(self):
        img = self.create('f.qcow2')
        p = xio(img, 'write 0 4k', 'flush', 'f')
        self.assertEqual(len(p.stdout.splitlines()), 2)
        self.assert_same_as_qemu(img, ['flush 1'])

    def test_map_matches(self):
        img = self.create('m.qcow2', '8M')
        qio(img, 'write 0 64k', 'write 1M 3M', 'write 7M 100', 'write -c 5M 64k')
        self.assert_same_as_qemu(img, ['map'])
        back = self.create('back.qcow2', '8M')
        qio(back, 'write -P 1 0 8M')
        top = self.path('top.qcow2')
        qimg('create', '-q', '-f', 'qcow2', '-b', back, '-F', 'qcow2', top,
             '8M')
        xio(top, 'write -P 2 1M 64k', 'write -z 2M 64k', 'write 3M 1')
        self.assert_clean(top)
        self.assert_same_as_qemu(top, ['map', 'read -P 1 0 1M',
                                       'read -P 0 2M 64k'])
        raw = self.create('m.raw', fmt='raw')
        self.assert_same_as_qemu(raw, ['map'], opts=['-f', 'raw'])

    def test_info_and_length_match(self):
        cases = [(self.create('v3.qcow2', '3M'), []),
                 (self.create('v2.qcow2', '3M', opts='compat=0.10'), []),
                 (self.create('cs.qcow2', '1G', opts='cluster_size=4k'), []),
                 (self.create('z.qcow2', '5G',
                              opts='compression_type=zstd,'
                                   'lazy_refcounts=on,refcount_bits=8'), []),
                 (self.create('r.raw', '1536k', fmt='raw'), ['-f', 'raw'])]
        bm = self.create('bm.qcow2', '1M')
        qimg('bitmap', '--add', bm, 'b0')
        qimg('bitmap', '--add', '-g', '128k', bm, 'b1')
        cases += [(bm, ['-r']), (bm, [])]    # nested lists and objects
        for img, opts in cases:
            self.assert_same_as_qemu(img, ['info', 'length', 'i', 'l'],
                                     opts=opts)

    def test_help(self):
        p = xio(None, 'help')
        for name in ('read', 'write', 'discard', 'aio_read', 'aio_write',
                     'aio_flush', 'flush', 'map', 'info', 'length', 'help'):
            self.assertRegex(p.stdout, re.compile('^%s .*-- ' % name, re.M))
        p = xio(None, 'help read')
        self.assertTrue(p.stdout.startswith('read [-Cqv] [-P pattern'))
        self.assert_same_as_qemu(None, ['help nosuch', 'help a b'],
                                 no_file=True)

    # ---- parsing, errors and exit status ----

    def test_number_parsing_matches(self):
        img = self.create('n.qcow2', '1M')
        nums = ['1.5k', '0x10', '010', '1.0', '0.5k', '1.k', '2.0b', '1K',
                '+1', '0x1k', '1.0000001k', '7E', '1P', '00',
                '1e3', '1.3', '1.5b', '1kb', '1KiB', '.5k', '0x1.8k', 'abc',
                '-', '0x', '99999999999999999999', '9223372036854775807',
                '9223372036854775808', '8E', '18446744073709551615']
        cmds = ['read -q %s 1' % n for n in nums]
        cmds += ['read -q 0 %s' % n for n in ('3G', '2G', '0x0', '1M')]
        self.assert_same_as_qemu(img, cmds)

    def test_read_errors_match(self):
        img = self.create('r.qcow2', '1M')
        for cmd in ('read 1M 512', 'read 0 2M', 'read -x 0 1', 'read 0',
                    'read 1 2 3', 'read -P 0x1ff 0 1', 'read -P zz 0 1',
                    'read -P -1 0 1', 'read 0 -1', 'read -s 1 0 12',
                    'read -P 0 -s 10 -l 5 0 12', 'read -P 0 -l 20 0 12',
                    'read -P 0 -s x 0 12', 'read -P 0 -s 1 0 12',
                    'nosuchcommand', 'read', 'length 1'):
            self.assert_same_as_qemu(img, [cmd])

    def test_exit_status_and_quit(self):
        img = self.create('x.qcow2', '1M')
        # A failure makes the status 1 but later commands still run.
        p = xio(img, 'read 2M 1', 'write -q -P 3 0 1', check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, 'read failed: Input/output error\n')
        qio(img, 'read -P 3 0 1')
        # quit stops the command list.
        self.assert_same_as_qemu(img, ['length', 'quit', 'read 2M 1'])
        self.assert_same_as_qemu(img, ['length', 'q', 'length'])

    def test_open_errors(self):
        missing = self.path('missing.qcow2')
        p = xio(missing, 'length', check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr.strip(),
                         "xblk-io: can't open device %s: Could not open "
                         "'%s': No such file or directory" % (missing, missing))
        self.assertEqual(p.stdout, '')
        raw = self.create('o.raw', fmt='raw')
        for opts in (['-f', 'qcow2'], ['-f', 'nosuchfmt'],
                     ['-t', 'nosuchmode'], ['-d', 'nosuchmode']):
            self.assert_same_as_qemu(raw, ['length'], opts=opts)
        self.assert_same_as_qemu(None, ['read 0 1', 'close', 'open',
                                        'length'], no_file=True)

    def test_read_only(self):
        img = self.create('ro.qcow2', '1M')
        self.assert_same_as_qemu(img, ['write 0 1', 'write -z 0 64k',
                                       'aio_write 0 1', 'discard 0 64k',
                                       'write', 'read -P 0 0 1', 'flush'],
                                 opts=['-r'])

    def test_open_close_commands(self):
        img = self.create('oc.qcow2', '1M')
        p = xio(None, 'open -o driver=qcow2 %s' % img, 'write -P 6 0 1',
                'close', 'open -r %s' % img, 'read -P 6 0 1', 'length',
                'close')
        self.assertIn('1 MiB', p.stdout)
        self.assert_clean(img)
        self.assert_same_as_qemu(img, ['open %s' % img, 'close', 'close',
                                       'read 0 1'])

    def test_interactive(self):
        img = self.create('i.qcow2', '1M')
        p = xio(img, input='write -P 0x21 0 512\n\n  length  \nquit\n'
                           'write 0 1\n')
        self.assertEqual(p.returncode, 0)
        self.assertIn('wrote 512/512 bytes at offset 0\n', p.stdout)
        self.assertIn('1 MiB\n', p.stdout)
        self.assertEqual(p.stdout.count('wrote'), 1)
        qio(img, 'read -P 0x21 0 512', 'read -P 0 512 1')
        p = xio(img, check=False, input='read 2M 1\n')
        self.assertEqual(p.returncode, 1)

    def test_cache_and_discard_modes(self):
        img = self.create('t.qcow2', '2M')
        modes = [['-n'], ['-t', 'none'], ['-t', 'writeback'],
                 ['-t', 'writethrough'], ['-t', 'unsafe'],
                 ['-t', 'directsync'], ['-d', 'ignore'], ['-d', 'unmap']]
        for i, opts in enumerate(modes):
            off = 100000 * i + 513    # unaligned, for O_DIRECT bounces
            xio(img, 'write -P %d %d 70001' % (i + 1, off),
                'aio_write -P %d %d 999' % (i + 101, off + 80000),
                'aio_flush', 'read -P %d %d 70001' % (i + 1, off),
                'discard 1536k 64k', opts=opts)
        self.assert_clean(img)
        for i in range(len(modes)):
            off = 100000 * i + 513
            qio(img, 'read -q -P %d %d 70001' % (i + 1, off),
                'read -q -P %d %d 999' % (i + 101, off + 80000))
        raw = self.create('t.raw', '1M', fmt='raw')
        xio(raw, 'write -P 8 1 4095', opts=['-f', 'raw', '-n'])
        qio(raw, 'read -P 8 1 4095', 'read -P 0 0 1', opts=['-f', 'raw'])


if __name__ == '__main__':
    xtest.main()
