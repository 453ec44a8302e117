#!/usr/bin/env python3
"""test-install: libxblk as an embedder gets it (issue "libxblk").

- `make install PREFIX=<tmp>` (and DESTDIR staging) installs the programs,
  include/xblk/*.h, libxblk.so.0 (+ the libxblk.so link), libxblk.a and
  lib/pkgconfig/xblk.pc;
- `nm -D` of libxblk.so.0 lists only xblk_ symbols (and the version
  node), so nothing internal leaks into a host's namespace;
- the headers compile alone and together as C11 and as C++ with
  -Wall -Wextra -Werror (-pedantic too);
- a host written outside the tree, built with nothing but
  `pkg-config --cflags --libs xblk` against the installed prefix (shared,
  and static with --static), runs: an engine driven by its descriptor, a
  qcow2 disk written, flushed, read back and snapshotted; qemu-img then
  checks the image and lists the snapshot.
"""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'pylib'))
import xtest  # noqa: E402

HEADERS = ('xblk.h', 'xblk-common.h', 'xblk-engine.h', 'xblk-disk.h',
           'xblk-snapshot.h', 'xblk-state.h', 'xblk-monitor.h')

FIELD_TABLE = r'''
#include <xblk/xblk.h>
typedef struct In { uint16_t a; } In;
typedef struct T { uint64_t x; uint32_t n; uint8_t buf[8]; In in[2];
                   bool b; uint8_t arr[4]; } T;
static const XblkField in_f[] = { XBLK_U16(In, a), XBLK_FIELDS_END };
static const XblkDeviceDesc in_d = {
    .size = sizeof(XblkDeviceDesc), .field_size = sizeof(XblkField),
    .name = "in", .version = 1, .struct_size = sizeof(In), .fields = in_f };
static const XblkField f[] = {
    XBLK_U64(T, x), XBLK_U32(T, n, XBLK_MAX(8)), XBLK_VBUFFER(T, buf, n),
    XBLK_STRUCT_ARRAY(T, in, 2, &in_d, In), XBLK_BOOL(T, b, XBLK_SINCE(2)),
    XBLK_U8_ARRAY(T, arr, 4, XBLK_MAX(3)), XBLK_BUFFER(T, arr),
    XBLK_FIELDS_END };
int main(void)
{
    return !(f[0].count == 1 && f[0].elem_size == 8 &&
             f[1].ranged && f[1].max == 8 &&
             f[2].len_offset == offsetof(T, n) && f[2].elem_size == 8 &&
             f[3].count == 2 && f[3].desc == &in_d &&
             f[4].version_added == 2 && f[5].count == 4 && f[5].max == 3 &&
             f[6].elem_size == 4 && f[7].name == NULL);
}
'''

HOST = r'''
#include <xblk/xblk.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pending;

static void done(void *opaque, int ret)
{
    if (ret) {
        fprintf(stderr, "request failed: %d\n", ret);
        exit(1);
    }
    pending--;
}

static void wait_all(XblkEngine *e)
{
    while (pending > 0) {
        struct pollfd p = { .fd = xblk_engine_fd(e), .events = POLLIN };
        int timeout = xblk_engine_prepare(e);
        if (timeout == 0) {
            continue;       /* callbacks ran: look at pending again */
        }
        poll(&p, 1, timeout);
        xblk_engine_dispatch(e);
    }
}

static void die(XblkError *err)
{
    fprintf(stderr, "error %d: %s\n", xblk_error_code(err),
            xblk_error_message(err));
    exit(1);
}

int main(int argc, char **argv)
{
    char opts[4096];
    static unsigned char out[65536], in[65536];
    XblkError *err = NULL;
    XblkEngine *e = xblk_engine_new(NULL, &err);
    if (!e) die(err);
    snprintf(opts, sizeof(opts), "driver=qcow2,node-name=hd,"
             "file.driver=file,file.filename=%s", argv[1]);
    XblkDisk *d = xblk_disk_open(e, opts, &err);
    if (!d) die(err);
    for (size_t i = 0; i < sizeof(out); i++) out[i] = (unsigned char)(i * 7);
    pending++;
    if (!xblk_disk_write(d, 1 << 20, out, sizeof(out), done, NULL, &err))
        die(err);
    wait_all(e);
    pending++;
    if (!xblk_disk_flush(d, done, NULL, &err)) die(err);
    wait_all(e);
    pending++;
    if (!xblk_disk_read(d, 1 << 20, in, sizeof(in), done, NULL, &err))
        die(err);
    wait_all(e);
    if (memcmp(in, out, sizeof(in))) {
        fprintf(stderr, "read back differs\n");
        return 1;
    }
    XblkSnapshotAction a = { sizeof(a), XBLK_SNAPSHOT_INTERNAL, d,
                             "from-host", NULL, NULL };
    if (!xblk_snapshot_transaction(e, &a, 1, &err)) die(err);
    xblk_engine_free(e);
    printf("host ok %s\n", xblk_version_string());
    return 0;
}
'''


@unittest.skipIf(xtest.sanitized_build(), 'a sanitized libxblk needs the '
                 'sanitizer runtime in the host (make check covers it)')
class InstallTest(xtest.TmpDirTestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls._tmp = tempfile.TemporaryDirectory(prefix='xblk-install-')
        cls.prefix = os.path.join(cls._tmp.name, 'prefix')
        xtest.make_install(cls.prefix)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def env(self):
        env = dict(os.environ)
        env['PKG_CONFIG_PATH'] = os.path.join(self.prefix, 'lib',
                                              'pkgconfig')
        return env

    def pkg(self, *args):
        p = subprocess.run(['pkg-config'] + list(args) + ['xblk'],
                           env=self.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, check=True)
        return p.stdout.split()

    def test_layout(self):
        lib = os.path.join(self.prefix, 'lib')
        for h in HEADERS:
            self.assertTrue(os.path.isfile(os.path.join(
                self.prefix, 'include', 'xblk', h)), h)
        real = os.path.realpath(os.path.join(lib, 'libxblk.so'))
        self.assertTrue(os.path.basename(real).startswith('libxblk.so.0.'))
        self.assertEqual(os.path.realpath(os.path.join(lib, 'libxblk.so.0')),
                         real)
        self.assertTrue(os.path.isfile(os.path.join(lib, 'libxblk.a')))
        for prog in ('xblk-img', 'xblk-io', 'xblk-system'):
            path = os.path.join(self.prefix, 'bin', prog)
            self.assertTrue(os.access(path, os.X_OK), prog)
            p = xtest.run([path, '--help'])
            self.assertIn('usage', (p.stdout + p.stderr).lower())
        self.assertEqual(self.pkg('--modversion'),
                         [xtest.run([os.path.join(self.prefix, 'bin',
                                                  'xblk-img'), '--version'])
                          .stdout.split()[-1]])
        soname = xtest.run(['readelf', '-d', real]).stdout
        self.assertIn('Library soname: [libxblk.so.0]', soname)

    def test_destdir(self):
        dest = self.path('stage')
        xtest.run(['make', '-s', '-C', xtest.ROOT,
                   'BUILD=' + os.path.relpath(xtest.BUILD, xtest.ROOT),
                   'install', 'PREFIX=/opt/xblk', 'DESTDIR=' + dest],
                  timeout=1200)
        pc = os.path.join(dest, 'opt', 'xblk', 'lib', 'pkgconfig',
                          'xblk.pc')
        with open(pc) as f:
            self.assertIn('prefix=/opt/xblk\n', f.read())
        self.assertTrue(os.path.isfile(os.path.join(
            dest, 'opt', 'xblk', 'include', 'xblk', 'xblk.h')))

    def test_exports_only_xblk(self):
        so = os.path.join(self.prefix, 'lib', 'libxblk.so.0')
        out = xtest.run(['nm', '-D', '--defined-only', so]).stdout
        names = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == 'A':
                continue            # the version node (XBLK_0)
            names.append(parts[-1])
        self.assertGreater(len(names), 15)
        stray = [n for n in names if not n.startswith('xblk_')]
        self.assertEqual(stray, [], 'non-API symbols exported')

    def compile(self, compiler, std, source, suffix):
        src = self.path('unit' + suffix)
        with open(src, 'w') as f:
            f.write(source)
        xtest.run([compiler, '-std=' + std, '-Wall', '-Wextra', '-Werror',
                   '-pedantic', '-c', '-o', self.path('unit.o'), src] +
                  self.pkg('--cflags'))

    def test_headers_c_and_cxx(self):
        for h in HEADERS:
            body = '#include <xblk/%s>\nint unit_%d;\n' % (h, len(h))
            self.compile('cc', 'c11', body, '.c')
            self.compile('c++', 'c++11', body, '.cc')
        self.compile('c++', 'c++17',
                     '#include <xblk/xblk.h>\n'
                     'unsigned v() { return xblk_version(); }\n', '.cc')

    def test_field_macros_iso_c(self):
        # The device-table macros expand to ISO C even without designators
        # (a variadic macro's arguments may not be missing under
        # -pedantic), and fill the fields they name.
        self.compile('cc', 'c11', FIELD_TABLE, '.c')
        exe = self.path('fields')
        xtest.run(['cc', '-std=c11', '-o', exe, self.path('unit.c')] +
                  self.pkg('--cflags') + self.pkg('--libs'))
        env = self.env()
        env['LD_LIBRARY_PATH'] = os.path.join(self.prefix, 'lib')
        p = subprocess.run([exe], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def run_host(self, static):
        src = self.path('host.c')
        with open(src, 'w') as f:
            f.write(HOST)
        exe = self.path('host-static' if static else 'host')
        libs = self.pkg('--static', '--libs') if static else \
            self.pkg('--libs')
        if static:
            libs = [os.path.join(self.prefix, 'lib', 'libxblk.a') if
                    a == '-lxblk' else a for a in libs]
        xtest.run(['cc', '-std=c11', '-Wall', '-Werror', '-o', exe, src] +
                  self.pkg('--cflags') + libs)
        img = self.path('host.qcow2')
        xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', img, '64M'])
        env = self.env()
        env['LD_LIBRARY_PATH'] = os.path.join(self.prefix, 'lib')
        p = subprocess.run([exe, img], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith('host ok '), p.stdout)
        xtest.run(['qemu-img', 'check', '-q', img])
        self.assertIn('from-host',
                      xtest.run(['qemu-img', 'snapshot', '-l', img]).stdout)
        return exe

    def test_host_shared(self):
        exe = self.run_host(static=False)
        needed = xtest.run(['readelf', '-d', exe]).stdout
        self.assertIn('libxblk.so.0', needed)

    def test_host_static(self):
        exe = self.run_host(static=True)
        needed = xtest.run(['readelf', '-d', exe]).stdout
        self.assertNotIn('libxblk.so', needed)


if __name__ == '__main__':
    xtest.main()
