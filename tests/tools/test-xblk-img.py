#!/usr/bin/env python3
"""Interoperability of xblk-img with the real qemu-img and qemu-io.

Images made by xblk-img (snapshots, both compression types, backing chains,
several cluster sizes and refcount widths) must pass `qemu-img check` and
read back byte-identical through qemu-img/qemu-io; images made by qemu-img
must be read, written, snapshotted and checked by xblk-img.
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import xtest  # noqa: E402

XIMG = xtest.binary('xblk-img')


def qimg(*args, check=True):
    return xtest.run(['qemu-img'] + list(args), check=check)


def ximg(*args, check=True):
    return xtest.run([XIMG] + list(args), check=check)


def qio(path, *cmds, fmt='qcow2', check=True):
    argv = ['qemu-io', '-f', fmt]
    for c in cmds:
        argv += ['-c', c]
    p = xtest.run(argv + [path], check=check)
    if check and ('failed' in p.stdout or 'failed' in p.stderr):
        raise AssertionError('qemu-io: %s%s' % (p.stdout, p.stderr))
    return p


class XblkImgInterop(xtest.TmpDirTestCase):

    def assert_qemu_check_clean(self, path):
        p = qimg('check', '--output=json', path, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        info = json.loads(p.stdout)
        self.assertEqual(info.get('corruptions', 0), 0)
        self.assertEqual(info.get('leaks', 0), 0)

    def test_create_matches_qemu_info(self):
        for cs in ('512', '4k', '64k', '2M'):
            for rb in ('1', '8', '16', '64'):
                img = self.path('c%s-%s.qcow2' % (cs, rb))
                ximg('create', '-q', '-f', 'qcow2', '-o',
                     'cluster_size=%s,refcount_bits=%s' % (cs, rb), img, '1G')
                self.assert_qemu_check_clean(img)
                info = json.loads(qimg('info', '--output=json', img).stdout)
                self.assertEqual(info['virtual-size'], 1 << 30)
                self.assertEqual(info['format-specific']['data']
                                 ['refcount-bits'], int(rb))

    def test_data_written_by_qemu_io_reads_back_in_xblk(self):
        img = self.path('a.qcow2')
        ximg('create', '-q', '-f', 'qcow2', img, '64M')
        qio(img, 'write -P 0x5a 0 1M', 'write -P 0xa5 10M 64k')
        raw = self.path('a.raw')
        ximg('convert', '-O', 'raw', img, raw)
        with open(raw, 'rb') as f:
            data = f.read()
        self.assertEqual(len(data), 64 << 20)
        self.assertEqual(data[:1 << 20], b'\x5a' * (1 << 20))
        self.assertEqual(data[10 << 20:(10 << 20) + 65536], b'\xa5' * 65536)
        self.assertEqual(data[1 << 20:10 << 20].count(0), 9 << 20)

    def test_convert_to_qcow2_is_identical(self):
        raw = self.path('src.raw')
        with open(raw, 'wb') as f:
            for i in range(64):
                f.write(bytes([i]) * 65536 if i % 3 else b'\0' * 65536)
        for ctype in ('zlib', 'zstd'):
            for cflag in ([], ['-c']):
                out = self.path('out-%s-%d.qcow2' % (ctype, len(cflag)))
                ximg('convert', '-O', 'qcow2', '-o',
                     'compression_type=' + ctype, *cflag, raw, out)
                self.assert_qemu_check_clean(out)
                p = qimg('compare', '-f', 'raw', '-F', 'qcow2', raw, out,
                         check=False)
                self.assertEqual(p.returncode, 0, p.stdout)
                if cflag:
                    chk = json.loads(qimg('check', '--output=json',
                                          out).stdout)
                    self.assertGreater(chk.get('compressed-clusters', 0), 0)

    def test_qemu_compressed_images_read_by_xblk(self):
        raw = self.path('src.raw')
        with open(raw, 'wb') as f:
            for i in range(32):
                f.write((b'xblk%04d' % i) * 8192)
        for ctype in ('zlib', 'zstd'):
            q = self.path('q-%s.qcow2' % ctype)
            qimg('convert', '-c', '-O', 'qcow2', '-o',
                 'compression_type=' + ctype, raw, q)
            p = ximg('compare', '-f', 'raw', '-F', 'qcow2', raw, q,
                     check=False)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            p = ximg('check', q, check=False)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_snapshots_roundtrip_with_qemu(self):
        img = self.path('s.qcow2')
        ximg('create', '-q', '-f', 'qcow2', img, '16M')
        qio(img, 'write -P 1 0 1M')
        ximg('snapshot', '-c', 'one', img)
        qio(img, 'write -P 2 0 512k')
        qimg('snapshot', '-c', 'two', img)
        qio(img, 'write -P 3 0 64k')
        self.assert_qemu_check_clean(img)
        names = qimg('snapshot', '-l', img).stdout
        self.assertIn('one', names)
        self.assertIn('two', names)
        ximg('snapshot', '-a', 'one', img)
        self.assert_qemu_check_clean(img)
        qio(img, 'read -P 1 0 1M')
        ximg('snapshot', '-a', 'two', img)
        qio(img, 'read -P 2 0 512k', 'read -P 1 512k 512k')
        ximg('snapshot', '-d', 'one', img)
        self.assert_qemu_check_clean(img)
        qimg('snapshot', '-a', 'two', img)
        qio(img, 'read -P 2 0 512k')
        ximg('snapshot', '-d', 'two', img)
        self.assert_qemu_check_clean(img)
        self.assertNotIn('two', ximg('snapshot', '-l', img).stdout)

    def test_backing_chain(self):
        base = self.path('base.qcow2')
        mid = self.path('mid.qcow2')
        top = self.path('top.qcow2')
        ximg('create', '-q', '-f', 'qcow2', base, '32M')
        qio(base, 'write -P 1 0 4M')
        ximg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
             mid)
        qio(mid, 'write -P 2 1M 1M')
        ximg('create', '-q', '-f', 'qcow2', '-b', mid, '-F', 'qcow2', top,
             '64M')
        qio(top, 'write -P 3 3M 64k', 'write -P 4 40M 64k')
        for p in (base, mid, top):
            self.assert_qemu_check_clean(p)
        info = json.loads(qimg('info', '--output=json', '--backing-chain',
                               top).stdout)
        self.assertEqual(len(info), 3)
        qio(top, 'read -P 1 0 1M', 'read -P 2 1M 1M', 'read -P 1 2M 1M',
            'read -P 3 3M 64k', 'read -P 0 5M 1M', 'read -P 4 40M 64k')
        raw = self.path('flat.raw')
        ximg('convert', '-O', 'raw', top, raw)
        self.assertEqual(qimg('compare', '-F', 'raw', top, raw,
                              check=False).returncode, 0)

    def test_commit_and_rebase(self):
        base = self.path('base.qcow2')
        top = self.path('top.qcow2')
        ximg('create', '-q', '-f', 'qcow2', base, '16M')
        qio(base, 'write -P 1 0 2M')
        ximg('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top)
        qio(top, 'write -P 2 1M 64k')
        ximg('commit', top)
        qio(base, 'read -P 1 0 1M', 'read -P 2 1M 64k')
        self.assert_qemu_check_clean(base)
        self.assert_qemu_check_clean(top)
        # safe rebase onto nothing keeps the visible content
        qio(top, 'write -P 3 4M 64k')
        ximg('rebase', '-b', '', top)
        self.assertNotIn('backing', qimg('info', top).stdout)
        qio(top, 'read -P 1 0 1M', 'read -P 2 1M 64k', 'read -P 3 4M 64k')
        self.assert_qemu_check_clean(top)

    def test_qemu_made_images_written_by_xblk(self):
        img = self.path('q.qcow2')
        qimg('create', '-f', 'qcow2', '-o', 'cluster_size=4k', img, '8M')
        qio(img, 'write -P 7 0 100k')
        qimg('snapshot', '-c', 'qsnap', img)
        raw = self.path('r.raw')
        with open(raw, 'wb') as f:
            f.write(b'\x09' * (8 << 20))
        # overwrite everything through xblk's qcow2 write path
        ximg('convert', '-n', '-f', 'raw', '-O', 'qcow2', raw, img)
        self.assert_qemu_check_clean(img)
        qio(img, 'read -P 9 0 8M')
        qimg('snapshot', '-a', 'qsnap', img)
        qio(img, 'read -P 7 0 100k', 'read -P 0 100k 100k')
        p = ximg('check', img, check=False)
        self.assertEqual(p.returncode, 0, p.stdout)

    def test_resize(self):
        img = self.path('r.qcow2')
        ximg('create', '-q', '-f', 'qcow2', img, '1M')
        ximg('resize', img, '3G')
        self.assertEqual(json.loads(qimg('info', '--output=json', img)
                                    .stdout)['virtual-size'], 3 << 30)
        qio(img, 'write -P 5 2G 64k')
        self.assert_qemu_check_clean(img)
        p = ximg('resize', img, '1M', check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('--shrink', p.stderr)
        ximg('resize', '--shrink', img, '2560M')
        p = ximg('resize', '--shrink', img, '1G', check=False)
        self.assertNotEqual(p.returncode, 0)      # data beyond 1G
        self.assert_qemu_check_clean(img)

    def test_preallocation_modes(self):
        for mode in ('off', 'metadata', 'falloc', 'full'):
            img = self.path('p-%s.qcow2' % mode)
            ximg('create', '-q', '-f', 'qcow2', '-o', 'preallocation=' + mode,
                 img, '4M')
            self.assert_qemu_check_clean(img)
            qio(img, 'write -P 1 1M 64k', 'read -P 0 0 1M')

    def test_check_finds_and_repairs_leak(self):
        img = self.path('leak.qcow2')
        ximg('create', '-q', '-f', 'qcow2', img, '16M')
        qio(img, 'write -P 1 0 64k')
        # Leak a cluster: bump the refcount of an unused cluster at the end.
        info = json.loads(qimg('check', '--output=json', img).stdout)
        end = info['image-end-offset']
        with open(img, 'r+b') as f:
            f.truncate(end + 65536)
        ximg('snapshot', '-c', 'x', img)
        ximg('snapshot', '-d', 'x', img)
        self.assert_qemu_check_clean(img)

    def test_error_messages_and_codes(self):
        p = ximg('info', self.path('missing.qcow2'), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("Could not open '%s'" % self.path('missing.qcow2'),
                      p.stderr)
        p = ximg('create', '-f', 'qcow2', '-o', 'cluster_size=1000',
                 self.path('x.qcow2'), '1M', check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('Cluster size must be a power of two', p.stderr)
        p = ximg('create', '-f', 'qcow2', '-o', 'foo=bar',
                 self.path('x.qcow2'), '1M', check=False)
        self.assertIn("Invalid parameter 'foo'", p.stderr)
        img = self.path('e.qcow2')
        ximg('create', '-q', '-f', 'qcow2', img, '1M')
        p = ximg('snapshot', '-d', 'nope', img, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('snapshot not found', p.stderr)
        for cmd in ('create', 'info', 'check', 'snapshot', 'convert',
                    'commit', 'rebase', 'map', 'compare', 'resize', 'amend',
                    'bench'):
            p = ximg(cmd, '--help')
            self.assertIn('Usage: xblk-img ' + cmd, p.stdout)

    def test_amend(self):
        img = self.path('am.qcow2')
        ximg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', img, '64M')
        qio(img, 'write -P 3 0 1M')
        ximg('snapshot', '-c', 's', img)
        ximg('amend', '-o', 'compat=1.1,refcount_bits=4', img)
        info = json.loads(qimg('info', '--output=json', img).stdout)
        self.assertEqual(info['format-specific']['data']['compat'], '1.1')
        self.assertEqual(info['format-specific']['data']['refcount-bits'], 4)
        self.assert_qemu_check_clean(img)
        qio(img, 'write -z 0 64k')
        p = ximg('amend', '-o', 'compat=0.10', img, check=False)
        self.assertEqual(p.returncode, 1)    # zero cluster in no snapshot,
        self.assertIn('refcount', p.stderr)  # but 4-bit refcounts
        ximg('snapshot', '-d', 's', img)
        ximg('amend', '-o', 'refcount_bits=16,compat=0.10', img)
        self.assert_qemu_check_clean(img)
        info = json.loads(qimg('info', '--output=json', img).stdout)
        self.assertEqual(info['format-specific']['data']['compat'], '0.10')
        qio(img, 'read -P 0 0 64k', 'read -P 3 64k 960k')
        p = ximg('amend', '-o', 'lazy_refcounts=on', img, check=False)
        self.assertEqual(p.returncode, 1)
        ximg('amend', '-o', 'compat=v3,lazy_refcounts=on', img)
        self.assertIn('lazy refcounts: true', qimg('info', img).stdout)
        self.assert_qemu_check_clean(img)

    def test_info_matches_qemu(self):
        os.chdir(self.dir)
        qimg('create', '-f', 'raw', 'r.raw', '10M')
        qimg('create', '-f', 'qcow2', '-o', 'compat=0.10', 'v2.qcow2', '1G')
        qimg('create', '-f', 'qcow2', 'base.qcow2', '10M')
        qimg('create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
             'top.qcow2', '20M')
        qio('top.qcow2', 'write -P 1 0 1M')
        qimg('snapshot', '-c', 'first', 'top.qcow2')
        ximg('snapshot', '-c', 'second', 'top.qcow2')
        qimg('create', '-f', 'qcow2', '-o', 'compression_type=zstd,'
             'cluster_size=4k,refcount_bits=8', 'z.qcow2', '3M')
        for img in ('r.raw', 'v2.qcow2', 'top.qcow2', 'z.qcow2'):
            for extra in ([], ['--backing-chain']):
                for out in ('human', 'json'):
                    args = ['info', '--output=' + out] + extra + [img]
                    self.assertEqual(ximg(*args).stdout, qimg(*args).stdout,
                                     ' '.join(args))
        self.assertEqual(ximg('snapshot', '-l', 'top.qcow2').stdout,
                         qimg('snapshot', '-l', 'top.qcow2').stdout)

    def test_check_matches_qemu(self):
        """check prints what qemu-img prints, byte for byte: statistics
        (fragmentation counted within each L2 table, compressed clusters
        always fragmented), JSON key order, errors and exit code."""
        os.chdir(self.dir)
        # 512-byte clusters: one L2 table maps 32 KiB.  Out-of-order
        # writes leave host clusters discontiguous within tables and
        # across their boundaries.
        ximg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512',
             'frag.qcow2', '1M')
        qio('frag.qcow2', 'write -P 1 31744 512', 'write -P 2 32768 512',
            'write -P 3 0 512', 'write -P 4 1024 1024', 'write -P 5 512 512')
        ximg('create', '-q', '-f', 'qcow2', 'comp.qcow2', '1M')
        qio('comp.qcow2', 'write -c -P 1 0 64k', 'write -c -P 2 64k 64k',
            'write -P 3 128k 64k')
        ximg('snapshot', '-c', 's', 'comp.qcow2')
        qio('comp.qcow2', 'write -P 4 64k 64k')
        # A leak (a cluster past the end with a reference count) and a
        # corruption (the L2 table's count zeroed).
        ximg('create', '-q', '-f', 'qcow2', 'bad.qcow2', '1M')
        qio('bad.qcow2', 'write -P 1 0 128k')
        with open('bad.qcow2', 'r+b') as f:
            hdr = f.read(104)
            l1_off, = struct.unpack('>Q', hdr[40:48])
            rt_off, = struct.unpack('>Q', hdr[48:56])
            f.seek(rt_off)
            rb_off, = struct.unpack('>Q', f.read(8))
            f.seek(l1_off)
            l2_off = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
            end = f.seek(0, 2)
            f.truncate(end + 65536)
            f.seek(rb_off + 2 * (end // 65536))
            f.write(struct.pack('>H', 1))
            f.seek(rb_off + 2 * (l2_off // 65536))
            f.write(struct.pack('>H', 0))
        # Reserved bits in L2 entries: an unallocated one, a zero one and
        # one that maps data.
        ximg('create', '-q', '-f', 'qcow2', 'resv.qcow2', '1M')
        qio('resv.qcow2', 'write -P 7 0 64k')
        with open('resv.qcow2', 'r+b') as f:
            hdr = f.read(104)
            l1_off, = struct.unpack('>Q', hdr[40:48])
            f.seek(l1_off)
            l2_off = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
            f.seek(l2_off)
            data, = struct.unpack('>Q', f.read(8))
            f.seek(l2_off)
            f.write(struct.pack('>Q', data | 0x80))
            f.seek(l2_off + 5 * 8)
            f.write(struct.pack('>QQ', 0x80, 0x101))
        for img in ('frag.qcow2', 'comp.qcow2', 'bad.qcow2', 'resv.qcow2'):
            for out in ('human', 'json'):
                args = ['check', '--output=' + out, img]
                a, b = ximg(*args, check=False), qimg(*args, check=False)
                self.assertEqual((a.returncode, a.stdout, a.stderr),
                                 (b.returncode, b.stdout, b.stderr),
                                 ' '.join(args))
        info = json.loads(qimg('check', '--output=json', 'frag.qcow2').stdout)
        self.assertGreater(info.get('fragmented-clusters', 0), 0)
        # qemu-img cannot repair reserved bits; xblk-img clears them and
        # keeps the mapping.
        self.assertEqual(qimg('check', 'resv.qcow2', check=False).returncode,
                         2)
        ximg('check', '-r', 'all', 'resv.qcow2')
        self.assert_qemu_check_clean('resv.qcow2')
        qio('resv.qcow2', 'read -P 7 0 64k', 'read -P 0 64k 960k')

    def test_map_matches_qemu(self):
        img = self.path('m.qcow2')
        ximg('create', '-q', '-f', 'qcow2', img, '8M')
        qio(img, 'write -P 1 0 64k', 'write -z 1M 64k', 'write -P 2 4M 128k')
        for out in ('json', 'human'):
            a = json.loads(ximg('map', '--output=json', img).stdout) \
                if out == 'json' else ximg('map', img).stdout
            b = json.loads(qimg('map', '--output=json', img).stdout) \
                if out == 'json' else qimg('map', img).stdout
            self.assertEqual(a, b)


if __name__ == '__main__':
    xtest.main()
