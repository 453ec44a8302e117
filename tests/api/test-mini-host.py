#!/usr/bin/env python3
"""test-mini-host: examples/mini-host, an emulator that is not ours, built
outside the tree against the installed libxblk and driven over stdin
(issue "libxblk").

- `make install PREFIX=<tmp>`; examples/mini-host/ copied to another
  folder and built there by its own Makefile with nothing but
  PKG_CONFIG_PATH=<prefix>/lib/pkgconfig;
- a save of a stopped guest and its load: RAM, device and disk checksums
  equal those at the save, after the guest ran on (and changed all
  three); the state's frame hash (RAM streamed copy-on-write) equals the
  RAM checksum; a replay of the guest from its seed matches; qemu-img
  check is clean and `qemu-img snapshot -l` lists the state with a VM
  state size;
- a save while the guest runs, then loads (stopped and running): the
  frame the capture recorded is the device's step after the load, RAM is
  the frame hash, and RAM, device and disk are the replay's at that step
  and after the guest ran on from it;
- SIGUSR1 / SIGUSR2: quick save (overwriting) and quick load;
- bad input: a save while one runs is refused BUSY and leaves no state; a
  load of a missing name fails NOT_FOUND and changes nothing; a taken
  name is refused without overwrite; delete of a missing name is no
  error; a load the device's check hook refuses (a state of another disk
  geometry) changes neither RAM, device nor disk; the program's own
  refusals; and in C, the registration calls' refusals (misaligned or
  overlapping RAM, a field past its struct, a taken device name), a u64
  field ranged to UINT64_MAX accepted, and a load without its snapshot
  failing NOT_FOUND with RAM and device as they were.
Skipped under ASan builds, as test-install.  Each run uses 16 MiB of
guest RAM and a 16 MiB disk.
"""
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'pylib'))
import xtest  # noqa: E402

EXAMPLE = os.path.join(xtest.ROOT, 'examples', 'mini-host')
RAM_MIB = 16
DISK = '16M'
RATE = 20000            # steps/s while the guest runs free (paced)

API_C = r'''
#include <xblk/xblk.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct Dev { uint32_t a; uint64_t b; } Dev;
static const XblkField fields[] = {
    XBLK_U32(Dev, a, XBLK_MAX(9)), XBLK_U64(Dev, b, XBLK_MAX(1000)),
    XBLK_FIELDS_END
};
/* The whole u64 range: "[min, max] (unsigned: as uint64)". */
static const XblkField wide_fields[] = {
    XBLK_U64(Dev, b, XBLK_MAX(UINT64_MAX)),
    XBLK_FIELDS_END
};
/* A table whose second field runs past the struct it claims. */
static const XblkField bad_fields[] = {
    XBLK_U32(Dev, a, XBLK_MAX(9)),
    { .name = "past", .type = XBLK_FIELD_U64, .offset = sizeof(Dev),
      .count = 1, .elem_size = 8 },
    XBLK_FIELDS_END
};
static int failures;
static XblkEngine *e;

/* ok: what the call returned; err: what it stored. */
static void expect(bool ok, XblkError *err, XblkErrorCode code,
                   const char *what)
{
    if (ok || !err || xblk_error_code(err) != code) {
        printf("FAIL %s: ok=%d code=%d %s\n", what, ok,
               err ? (int)xblk_error_code(err) : 0,
               err ? xblk_error_message(err) : "");
        failures++;
    }
    xblk_error_free(err);
}

#define EXPECT(call, code, what) do { XblkError *err_ = NULL; \
        bool ok_ = call; expect(ok_, err_, code, what); } while (0)
#define MUST(call, what) do { XblkError *err_ = NULL; \
        if (!(call)) { printf("FAIL %s: %s\n", what, \
                              xblk_error_message(err_)); return 1; } \
    } while (0)

static void on_pause(void *o) { (void)o; xblk_host_paused(e); }
static void on_resume(void *o) { (void)o; }
static int done_calls;
static XblkErrorCode done_code;
static void on_done(void *o, const XblkError *err, const XblkStateStats *s)
{
    (void)o; (void)s;
    done_calls++;
    done_code = err ? xblk_error_code(err) : 0;
}

int main(int argc, char **argv)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t size = 4 << 20;
    char *ram = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char opts[4096];
    Dev dev = { 1, 2 };
    XblkDeviceDesc desc = { .size = sizeof(desc),
        .field_size = sizeof(XblkField), .name = "dev", .version = 1,
        .struct_size = sizeof(Dev), .fields = fields };
    XblkDeviceDesc bad = desc, wide = desc;
    XblkHostOps ops = { .size = sizeof(ops), .machine_type = "api-test",
                        .pause = on_pause, .resume = on_resume };

    (void)argc;
    bad.fields = bad_fields;
    wide.fields = wide_fields;
    wide.name = "wide";
    snprintf(opts, sizeof(opts), "driver=qcow2,node-name=hd,"
             "file.driver=file,file.filename=%s", argv[1]);
    MUST(e = xblk_engine_new(NULL, &err_), "engine");
    MUST(xblk_disk_open(e, opts, &err_), "disk");
    EXPECT(xblk_ram_add(e, "ram", ram + 1, size - page, &err_),
           XBLK_ERROR_INVALID, "misaligned RAM");
    EXPECT(xblk_ram_add(e, "ram", ram, size - 100, &err_),
           XBLK_ERROR_INVALID, "RAM size not a page multiple");
    MUST(xblk_ram_add(e, "ram", ram, size / 2, &err_), "ram_add");
    EXPECT(xblk_ram_add(e, "ram2", ram + page, page, &err_),
           XBLK_ERROR_INVALID, "overlapping RAM");
    EXPECT(xblk_device_add(e, &bad, 0, &dev, &err_), XBLK_ERROR_INVALID,
           "field past the struct");
    MUST(xblk_device_add(e, &desc, 0, &dev, &err_), "device_add");
    {
        XblkError *err = NULL;
        if (!xblk_device_add(e, &wide, 0, &dev, &err)) {
            printf("FAIL a u64 ranged up to UINT64_MAX refused: %s\n",
                   xblk_error_message(err));
            failures++;
        }
        xblk_error_free(err);
    }
    EXPECT(xblk_device_add(e, &desc, 0, &dev, &err_), XBLK_ERROR_EXISTS,
           "device name and instance taken");
    MUST(xblk_engine_set_host(e, &ops, &err_), "set_host");
    /* A load of a missing state: an error, RAM and device unchanged. */
    memset(ram, 0x5a, size / 2);
    {
        XblkError *err = NULL;
        if (xblk_state_load(e, "nosuch", NULL, on_done, NULL, &err)) {
            while (!done_calls) {
                xblk_engine_prepare(e);
                xblk_engine_dispatch(e);
                usleep(1000);
            }
        } else {
            done_code = err ? xblk_error_code(err) : 0;
        }
        xblk_error_free(err);
    }
    if (done_code != XBLK_ERROR_NOT_FOUND) {
        printf("FAIL load of a missing state: code %d, not NOT_FOUND\n",
               (int)done_code);
        failures++;
    }
    for (size_t i = 0; i < size / 2; i++) {
        if (ram[i] != 0x5a) {
            printf("FAIL RAM changed at %zu\n", i);
            failures++;
            break;
        }
    }
    if (dev.a != 1 || dev.b != 2) {
        printf("FAIL device changed\n");
        failures++;
    }
    xblk_engine_free(e);
    printf("api %s\n", failures ? "failed" : "ok");
    return failures != 0;
}
'''


def parse(line):
    """'ok save a k=v ...' -> ('ok', 'save', ['a'], {'k': 'v'})."""
    words = line.split()
    args, kv = [], {}
    for w in words[2:]:
        if '=' in w:
            k, v = w.split('=', 1)
            kv[k] = v
        else:
            args.append(w)
    return words[0], words[1] if len(words) > 1 else '', args, kv


class MiniHost:
    """A running mini-host: commands on stdin, answers read by a thread
    (answers of long commands may come after later ones)."""

    def __init__(self, exe, img, *opts):
        self.proc = subprocess.Popen(
            [exe, '--ram-mib', str(RAM_MIB)] + list(opts) + [img],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines = queue.Queue()
        self.pending = []
        self.log = []
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.wait('ok', 'ready')

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip('\n'))
        self.lines.put(None)

    def send(self, *cmds):
        """One write for all: the program sees them in one read."""
        self.proc.stdin.write(''.join(c + '\n' for c in cmds))
        self.proc.stdin.flush()

    def wait(self, status, cmd, name=None, timeout=30):
        """The first answer (status or error) to cmd [name]; fails on
        the other status."""
        end = time.monotonic() + timeout
        while True:
            for i, line in enumerate(self.pending):
                st, c, args, kv = parse(line)
                if c == cmd and (name is None or args[:1] == [name]) and \
                        st in ('ok', 'error'):
                    del self.pending[i]
                    if st != status:
                        raise AssertionError('%s %s: got "%s"' %
                                             (cmd, name or '', line))
                    return kv if st == 'ok' else line
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError('no answer to %s %s; seen %s; stderr %s'
                                     % (cmd, name or '', self.log[-10:],
                                        self.stderr()))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError('mini-host exited (%s); seen %s' % (
                    self.stderr(), self.log[-10:]))
            self.log.append(line)
            self.pending.append(line)

    @staticmethod
    def key(cmd):
        """The command and, for the named ones, the name its answer
        repeats."""
        w = cmd.split()
        named = w[0] in ('save', 'load', 'delete', 'info') and len(w) > 1
        return w[0], w[1] if named else None

    def call(self, cmd, timeout=30):
        """Sends one command and returns its ok answer's key=values."""
        self.send(cmd)
        return self.wait('ok', *self.key(cmd), timeout=timeout)

    def error(self, cmd, timeout=30):
        """Sends one command and returns its error line."""
        self.send(cmd)
        return self.wait('error', *self.key(cmd), timeout=timeout)

    def checksum(self):
        kv = self.call('checksum')
        return {k: kv[k] for k in ('step', 'ram', 'device', 'disk',
                                   'disk_bytes')}

    def quit(self):
        self.send('quit')
        self.wait('ok', 'quit')
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=30)
        if rc != 0:
            raise AssertionError('exit status %d: %s' % (rc, self.stderr()))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stderr(self):
        if self.proc.poll() is None:
            return '(running)'
        return self.proc.stderr.read()[-2000:]


@unittest.skipIf(xtest.sanitized_build(), 'a sanitized libxblk needs the '
                 'sanitizer runtime in the host (make check covers it)')
class MiniHostTest(xtest.TmpDirTestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix='xblk-mini-host-')
        cls.prefix = os.path.join(cls._tmp.name, 'prefix')
        xtest.make_install(cls.prefix)
        cls.src = os.path.join(cls._tmp.name, 'mini-host')
        shutil.copytree(EXAMPLE, cls.src,
                        ignore=shutil.ignore_patterns('mini-host', '*.o'))
        env = cls.env()
        p = subprocess.run(['make', '-C', cls.src], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=300)
        if p.returncode != 0:
            raise AssertionError('building mini-host:\n' + p.stdout)
        cls.exe = os.path.join(cls.src, 'mini-host')

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    @classmethod
    def env(cls):
        """Only PKG_CONFIG_PATH points at the install."""
        env = {k: v for k, v in os.environ.items()
               if k not in ('PKG_CONFIG_PATH', 'LD_LIBRARY_PATH',
                            'C_INCLUDE_PATH', 'LIBRARY_PATH', 'CFLAGS')}
        env['PKG_CONFIG_PATH'] = os.path.join(cls.prefix, 'lib',
                                              'pkgconfig')
        return env

    def image(self, name='hd.qcow2'):
        img = self.path(name)
        xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', img, DISK])
        return img

    def start(self, img, *opts):
        h = MiniHost(self.exe, img, *opts)
        self.addCleanup(h.kill)
        return h

    def snapshots(self, img):
        """{tag: VM SIZE column} of `qemu-img snapshot -l`."""
        out = xtest.run(['qemu-img', 'snapshot', '-l', img]).stdout
        tags = {}
        for line in out.splitlines():
            m = re.match(r'^\s*\d+\s+(\S+)\s+(\d+(?:\.\d+)?\s+\S+)\s', line)
            if m:
                tags[m.group(1)] = m.group(2)
        return tags

    def check_image(self, img):
        xtest.run(['qemu-img', 'check', '-q', img])

    # ------------------------------------------------------------ tests

    def test_help(self):
        p = xtest.run([self.exe, '--help'])
        for word in ('NAME', 'SYNOPSIS', 'COMMANDS', 'SIGNALS', 'SIGUSR1',
                     '--ram-mib'):
            self.assertIn(word, p.stdout)
        p = xtest.run([self.exe], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn('usage', p.stderr)

    def test_built_from_the_install(self):
        needed = xtest.run(['readelf', '-d', self.exe]).stdout
        self.assertIn('libxblk.so.0', needed)
        self.assertIn(os.path.join(self.prefix, 'lib'), needed)  # run path
        self.assertNotIn('glib', needed)

    def test_save_stopped_run_on_load(self):
        img = self.image()
        h = self.start(img, '--stopped', '--rate', str(RATE))
        self.assertEqual(h.ready['running'], '0')
        h.call('run 3000')
        h.call('cont')
        time.sleep(0.2)                     # a while, paced
        h.call('stop')
        before = h.checksum()
        self.assertGreaterEqual(int(before['step']), 3000)
        self.assertGreater(int(before['disk_bytes']), 0)
        save = h.call('save s1')
        self.assertEqual(int(save['frame']), int(before['step']))
        self.assertEqual(save['guest_stop_us'], '-1')   # it was stopped
        self.assertGreater(int(save['size']), RAM_MIB << 20)
        self.assertEqual(h.checksum(), before)   # a save changes nothing
        info = h.call('info s1')
        self.assertEqual(info['frame'], before['step'])
        self.assertEqual(info['frame_hash'], before['ram'])
        h.call('cont')
        time.sleep(0.3)
        h.call('run 2000')                  # at least 2000 more steps
        after = h.checksum()
        for k in ('step', 'ram', 'device', 'disk', 'disk_bytes'):
            self.assertNotEqual(after[k], before[k], k)
        load = h.call('load s1')
        self.assertEqual(load['frame'], before['step'])
        self.assertEqual(load['step'], before['step'])
        self.assertEqual(h.checksum(), before)
        self.assertEqual(h.call('verify')['ram'], 'match')
        h.quit()
        self.check_image(img)
        snaps = self.snapshots(img)
        self.assertIn('s1', snaps)
        self.assertNotRegex(snaps['s1'], r'^0(\.0+)? ', snaps)
        info = json.loads(xtest.run(['qemu-img', 'info', '--output=json',
                                     img]).stdout)
        sizes = {s['name']: s.get('vm-state-size', 0)
                 for s in info.get('snapshots', [])}
        self.assertGreater(sizes['s1'], RAM_MIB << 20)

    def test_save_while_running(self):
        img = self.image()
        # Unpaced, a record each step: the guest is as fast as the disk,
        # so every pause meets records queued and writes in flight.
        h = self.start(img, '--rate', '0', '--record-every', '1')
        self.assertEqual(h.ready['running'], '1')
        time.sleep(0.3)
        save = h.call('save r1')
        frame = int(save['frame'])
        self.assertGreater(frame, 0)
        # The vCPU was parked for this save: the host saw a stop.
        self.assertGreaterEqual(int(save['guest_stop_us']), 0)
        time.sleep(0.2)
        stats = h.call('stats')
        self.assertGreater(int(stats['step']), frame)   # it ran on
        self.assertEqual(stats['running'], '1')
        h.call('stop')
        load = h.call('load r1')
        self.assertEqual(int(load['frame']), frame)
        self.assertEqual(int(load['step']), frame)
        sums = h.checksum()
        self.assertEqual(int(sums['step']), frame)
        # RAM as the save streamed it while the guest ran on.
        self.assertEqual(h.call('info r1')['frame_hash'], sums['ram'])
        v = h.call('verify')
        self.assertEqual((v['ram'], v['device'], v['disk']),
                         ('match',) * 3)
        # A load while the guest runs: it goes on from the frame.
        h.call('cont')
        time.sleep(0.2)
        load = h.call('load r1')
        self.assertEqual(int(load['step']), frame)
        self.assertGreaterEqual(int(load['guest_stop_us']), 0)
        time.sleep(0.1)
        h.call('stop')
        v = h.call('verify')
        self.assertGreater(int(v['step']), frame)
        self.assertEqual((v['ram'], v['device'], v['disk']),
                         ('match',) * 3)
        h.quit()
        self.check_image(img)

    def test_signals_quick_save_and_load(self):
        img = self.image()
        h = self.start(img, '--rate', str(RATE))
        time.sleep(0.2)
        for _ in range(2):                  # the second overwrites
            h.proc.send_signal(signal.SIGUSR1)
            save = h.wait('ok', 'save', 'quick')
        frame = int(save['frame'])
        time.sleep(0.2)
        h.call('stop')
        self.assertGreater(int(h.checksum()['step']), frame)
        h.proc.send_signal(signal.SIGUSR2)
        load = h.wait('ok', 'load', 'quick')
        self.assertEqual(int(load['step']), frame)
        sums = h.checksum()
        self.assertEqual(int(sums['step']), frame)
        self.assertEqual(h.call('info quick')['frame_hash'], sums['ram'])
        self.assertEqual(h.call('verify')['disk'], 'match')
        h.proc.send_signal(signal.SIGTERM)
        h.wait('ok', 'quit')
        self.assertEqual(h.proc.wait(timeout=30), 0)
        self.check_image(img)
        self.assertEqual(list(self.snapshots(img)), ['quick'])

    def test_bad_input(self):
        img = self.image()
        h = self.start(img, '--stopped', '--rate', '0')
        h.call('run 2000')
        before = h.checksum()
        # The first save in the background: the second starts while it
        # runs.
        h.send('save a &', 'save b')
        busy = h.wait('error', 'save', 'b')
        self.assertIn(' BUSY ', busy)
        h.wait('ok', 'save', 'a')
        # A missing state: an error, nothing changed.
        line = h.error('load nosuch')
        self.assertIn(' NOT_FOUND ', line)
        self.assertEqual(h.checksum(), before)
        # A taken name needs overwrite.
        self.assertIn(' EXISTS ', h.error('save a'))
        h.call('save a overwrite')
        h.call('delete nosuch')             # nowhere: no error
        # The program's own refusals.
        h.call('cont')
        self.assertIn(' BUSY ', h.error('checksum'))
        h.call('stop')
        self.assertIn(' INVALID ', h.error('frobnicate'))
        self.assertIn(' INVALID ', h.error('run -3'))
        self.assertIn(' INVALID ', h.error('load'))
        h.call('delete a')
        self.assertIn('error', h.error('load a'))
        stats = h.call('stats')
        self.assertEqual(stats['saves'], '2')
        self.assertEqual(stats['loads'], '0')
        h.quit()
        self.check_image(img)
        self.assertEqual(self.snapshots(img), {})

    def test_load_refused_by_the_device_check(self):
        """The device's check hook refuses a state of another geometry
        (the disk grew by 1 MiB: more record slots) inside the load's
        pause: RAM, device and disk stay as they were."""
        img = self.image()
        h = self.start(img, '--stopped', '--rate', '0')
        h.call('run 3000')
        h.call('save a')
        h.quit()
        xtest.run(['qemu-img', 'resize', '-q', img, '+1M'])
        h = self.start(img, '--stopped', '--rate', '0')
        h.call('run 5000')
        before = h.checksum()
        line = h.error('load a')
        self.assertIn('4096 disk slots', line)      # the hook's own text
        self.assertEqual(h.checksum(), before)
        self.assertEqual(h.call('verify')['disk'], 'match')
        h.quit()
        self.check_image(img)

    def test_api_refusals_in_c(self):
        src = self.path('api.c')
        with open(src, 'w') as f:
            f.write(API_C)
        exe = self.path('api')
        pkg = subprocess.run(['pkg-config', '--cflags', '--libs', 'xblk'],
                             env=self.env(), stdout=subprocess.PIPE,
                             text=True, check=True).stdout.split()
        xtest.run(['cc', '-std=gnu11', '-Wall', '-o', exe, src] + pkg +
                  ['-Wl,-rpath,' + os.path.join(self.prefix, 'lib')])
        img = self.image('api.qcow2')
        p = xtest.run([exe, img], check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('api ok', p.stdout)


if __name__ == '__main__':
    xtest.main()
