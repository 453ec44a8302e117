#!/usr/bin/env python3
"""The QMP socket under abuse: xblk-system's real server over real sockets.

Out-of-band commands answered while an in-band one runs, QEMU's rules
for "exec-oob"; QEMU's JSON limits refused with QEMU's errors and the
connection kept; uint64 arguments above INT64_MAX; 50 clients at once
and the 65th refused; a half message that stalls, clients that vanish
mid-command and mid-job, a client that never reads while replies and
events pile up (RSS of the process read from /proc stays bounded); the
socket's mode and the TCP default address.  A bounded load test floods
commands against the console machine (realtime=on, the reference game)
and checks that every reply is a "return", that the guest keeps running
its frames and that its worst frame time (x-query-frame-times) stays
bounded; XBLK_LONG=1 makes it longer and adds a flood of events big
enough to drop a silent client.  The figures - commands per second, the
guest's worst and p99 frame time, side by side with QEMU - are
bench/run-qmp-bench's; this test only prints what it saw.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
IMG = xtest.binary('xblk-img')
GUEST = xtest.binary('guest/xboxguest.elf')
LONG = os.environ.get('XBLK_LONG') == '1'


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise AssertionError('no VmRSS')


def assert_rss_bound(test, grown_kib, bound_kib, what):
    """RSS growth of the server within bound_kib.  Not under ASan: its
    quarantine keeps freed memory (256 MiB by default) and its shadow
    grows with every allocation, so RSS then measures the sanitizer."""
    if xtest.sanitized_build():
        print('# %s: RSS grew %d KiB (not bounded under ASan)' %
              (what, grown_kib), flush=True)
        return
    test.assertLess(grown_kib, bound_kib,
                    '%s: RSS grew %d KiB' % (what, grown_kib))


def until_id(c, ident, limit=100000):
    """Messages up to the reply with id ident (events set aside)."""
    seen = []
    for _ in range(limit):
        m = c.reply()
        if m.get('id') == ident:
            return seen, m
        seen.append(m)
    raise AssertionError('no reply with id %r' % ident)


class AbuseCase(xtest.TmpDirTestCase):
    machine = ['-machine', 'none']

    def setUp(self):
        super().setUp()
        self.srv = qmpclient.Server([SYSTEM] + self.machine + self.extra(),
                                    tmpdir=self.dir)
        self.addCleanup(self.srv.stop)
        self.pid = self.srv.proc.pid
        self.srv.client().close()       # listening from here on

    def extra(self):
        return []

    def alive(self, ident='alive'):
        c = self.srv.client().negotiate()
        r = c.cmd('query-status', id=ident)
        c.close()
        self.assertEqual(r['id'], ident)
        self.assertIn('return', r)


class Limits(AbuseCase):

    def test_exec_oob_rules(self):
        c = self.srv.client()
        self.assertIn('oob', c.greeting['QMP']['capabilities'])
        # before negotiation and without the capability, QEMU's text
        c.send_raw('{"exec-oob": "query-yank", "id": 1}\n')
        self.assertEqual(c.reply(), {'id': 1, 'error': {
            'class': 'GenericError',
            'desc': "QMP input member 'exec-oob' is unexpected"}})
        c.negotiate()
        c.send_raw('{"exec-oob": "query-yank", "id": 2}\n')
        self.assertEqual(c.reply()['error']['desc'],
                         "QMP input member 'exec-oob' is unexpected")
        o = self.srv.client()
        self.assertEqual(o.cmd('qmp_capabilities', {'enable': ['oob']}),
                         {'return': {}})
        cases = [
            ('{"exec-oob": "query-yank", "id": 3}', {'return': [], 'id': 3}),
            ('{"exec-oob": "yank", "arguments": {"instances": []}}',
             {'return': {}}),
            ('{"exec-oob": "yank", "arguments": {"instances": [{"type": '
             '"chardev", "id": "x"}]}}',
             {'error': {'class': 'DeviceNotFound',
                        'desc': 'Instance not found'}}),
            ('{"exec-oob": "query-status", "id": 4}',
             {'id': 4, 'error': {'class': 'GenericError', 'desc':
                                 'The command query-status does not '
                                 'support OOB'}}),
            ('{"exec-oob": "query-yank", "execute": "query-yank"}',
             {'error': {'class': 'GenericError', 'desc': "QMP input member "
                        "'execute' clashes with 'exec-oob'"}}),
            ('{"execute": "query-status", "control": {}}',
             {'error': {'class': 'GenericError', 'desc': "QMP input member "
                        "'control' is unexpected"}}),
        ]
        for text, want in cases:
            o.send_raw(text + '\n')
            self.assertEqual(o.reply(), want, text)
        sch = o.cmd('query-qmp-schema')['return']
        oob = {e['name'] for e in sch
               if e['meta-type'] == 'command' and e.get('allow-oob')}
        self.assertEqual(oob, {'yank', 'query-yank'})

    def test_depth_size_and_token_limits(self):
        c = self.srv.client().negotiate()
        t0 = rss_kib(self.pid)
        for text, desc in [
                ('[' * 1025 + ']' * 1025,
                 'JSON nesting depth limit exceeded'),
                ('{"execute": "query-status", "arguments": {"a": ' +
                 '{"b": ' * 2000 + '1' + '}' * 2000 + '}}',
                 'JSON nesting depth limit exceeded'),
                ('{"execute": "x", "arguments": {"a": "' +
                 'x' * (64 << 20) + '"}}', 'JSON token size limit exceeded'),
                ('[' + '1,' * (2 << 20) + '1]',
                 'JSON token count limit exceeded')]:
            c.send_raw(text + '\n{"execute": "query-status", "id": "n"}\n')
            seen, r = until_id(c, 'n')
            # one QMP error, QEMU's bare text, and the connection kept
            self.assertEqual(seen, [{'error': {'class': 'GenericError',
                                               'desc': desc}}], text[:40])
            self.assertIn('return', r)
        # 1024 levels are allowed (the request is then just not an object)
        c.send_raw('[' * 1024 + ']' * 1024 + '\n')
        self.assertEqual(c.reply()['error']['desc'],
                         'QMP input must be a JSON object')
        # a refused value holds no memory
        assert_rss_bound(self, rss_kib(self.pid) - t0, 150 << 10,
                         'oversized messages')
        # stray bytes as QEMU names them: the character, U+FFFD if not ASCII
        c.send_raw(b'\x01\xc3{"execute": "query-status", "id": "s"}\n')
        seen, r = until_id(c, 's')
        self.assertEqual([m['error']['desc'] for m in seen],
                         ["JSON parse error, stray '\x01'",
                          "JSON parse error, stray '\ufffd'"])

    def test_uint64_above_int64_max(self):
        img = self.path('d.qcow2')
        xtest.run([IMG, 'create', '-q', '-f', 'qcow2', img, '16M'])
        c = self.srv.client().negotiate()
        self.assertEqual(c.cmd('blockdev-add', {
            'driver': 'qcow2', 'node-name': 'd',
            'file': {'driver': 'file', 'filename': img}}), {'return': {}})
        rule = ('{"execute": "blockdev-add", "arguments": {"driver": '
                '"blkdebug", "node-name": "b%d", "image": "d", "inject": '
                '[{"nth": %s, "offset": %s}]}}\n')
        def err(i, nth, off='0'):
            c.send_raw(rule % (i, nth, off))
            return c.reply().get('error', {}).get('desc', '')
        # the visitor takes 2^63 .. 2^64-1 (QEMU: the uint64 range; the
        # blkdebug driver then has its own limit on nth)
        for i, v in enumerate(['18446744073709551615',
                               '9223372036854775808', '-1']):
            self.assertNotIn('Parameter', err(i, v))
        # beyond 2^64: QEMU's "expects uint64"
        self.assertEqual(err(5, '18446744073709551616'),
                         "Parameter 'inject[0].nth' expects uint64")
        # an int member refuses it as QEMU does, the rest of the request
        # still parsed exactly
        self.assertEqual(err(6, '1', '18446744073709551615'),
                         "Invalid parameter type for 'inject[0].offset', "
                         "expected: integer")
        c.send_raw('{"execute": "block-dirty-bitmap-add", "arguments": '
                   '{"node": "d", "name": "b", "granularity": '
                   '18446744073709551615}}\n')
        self.assertEqual(c.reply()['error']['desc'],
                         "Parameter 'granularity' expects uint32_t")
        c.send_raw('{"execute": "block_resize", "arguments": {"node-name": '
                   '"d", "size": 18446744073709551615}, "id": 7}\n')
        self.assertEqual(c.reply()['error']['desc'],
                         "Invalid parameter type for 'size', expected: "
                         "integer")
        # an ordinary int beside a big one keeps its type
        c.send_raw('{"execute": "block_resize", "arguments": {"node-name": '
                   '"d", "size": 33554432}, "id": 18446744073709551615}\n')
        self.assertEqual(c.recv_raw_line(),
                         b'{"return": {}, "id": 18446744073709551615}')


class Crowd(AbuseCase):

    def test_fifty_clients_and_the_65th_refused(self):
        cs = [self.srv.client() for _ in range(50)]
        for i, c in enumerate(cs):
            c.send_raw('{"execute": "qmp_capabilities"}\n'
                       '{"execute": "query-status", "id": %d}\n' % i)
        for i, c in enumerate(cs):
            self.assertEqual(c.reply(), {'return': {}})
            self.assertEqual(c.reply()['id'], i)
        more = [self.srv.client() for _ in range(14)]     # 64 in all
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(self.srv.sock)
        data = b''
        while not data.endswith(b'\n'):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        self.assertEqual(json.loads(data)['error']['class'], 'GenericError')
        self.assertIn('too many QMP clients', json.loads(data)['error']
                      ['desc'])
        self.assertEqual(s.recv(10), b'')
        s.close()
        for c in cs + more:
            c.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.alive()
                break
            except (EOFError, KeyError, ConnectionError):
                time.sleep(0.05)
        self.alive()

    def test_half_message_and_stall_delays_nobody(self):
        stall = socket.socket(socket.AF_UNIX)
        stall.connect(self.srv.sock)
        stall.sendall(b'{"execute": "qmp_capabilities"}\n'
                      b'{"execute": "query-status", "arguments": {"a": "')
        c = self.srv.client().negotiate()
        worst = 0
        for i in range(300):
            t = time.monotonic()
            self.assertIn('return', c.cmd('query-status'))
            worst = max(worst, time.monotonic() - t)
        self.assertLess(worst, 0.5)
        stall.close()
        self.alive()

    def test_silent_client_paused_memory_bounded(self):
        silent = self.srv.client().negotiate()
        silent.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        base = rss_kib(self.pid)
        one = len(json.dumps(silent.cmd('query-qmp-schema')))
        req = b'{"execute": "query-qmp-schema"}\n'
        n = (256 << 20) // one          # 256 MiB of replies asked for
        silent.sock.setblocking(False)
        sent = 0
        good = self.srv.client().negotiate()
        deadline = time.monotonic() + 20
        while sent < n * len(req) and time.monotonic() < deadline:
            try:
                sent += silent.sock.send(req * 64)
            except BlockingIOError:
                break               # the server stopped reading it
            self.assertIn('return', good.cmd('query-status'))
        self.assertLess(sent, n * len(req), 'never paused')
        assert_rss_bound(self, rss_kib(self.pid) - base, 64 << 10,
                         'silent client')
        self.assertIn('return', good.cmd('query-status'))

    def test_command_flood(self):
        c = self.srv.client().negotiate()
        n = 20000
        t = time.monotonic()
        c.send_raw('{"execute": "query-status"}\n' * n)
        for _ in range(n):
            self.assertIn('return', c.reply())
        rate = n / (time.monotonic() - t)
        print('# %d pipelined commands: %.0f/s' % (n, rate))
        self.alive()


class Lifecycle(AbuseCase):

    def extra(self):
        img = self.path('src.qcow2')
        xtest.run([IMG, 'create', '-q', '-f', 'qcow2', img, '64M'])
        xtest.run([xtest.binary('xblk-io'), '-f', 'qcow2', '-c',
                   'write -P 0x5a 0 32M', img])
        return ['-blockdev', 'driver=qcow2,node-name=src,file.driver=file,'
                'file.filename=' + img]

    def test_disconnect_mid_job(self):
        c = self.srv.client().negotiate()
        tgt = self.path('tgt.qcow2')
        r = c.cmd('drive-backup', {'device': 'src', 'job-id': 'j0',
                                   'sync': 'full', 'target': tgt,
                                   'format': 'qcow2', 'speed': 32 << 20,
                                   'auto-dismiss': False})
        self.assertEqual(r, {'return': {}})
        c.close()                   # gone while the job runs
        o = self.srv.client().negotiate()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = o.cmd('query-jobs')['return']
            if jobs and jobs[0]['status'] == 'concluded':
                break
            time.sleep(0.05)
        self.assertEqual(jobs[0]['status'], 'concluded')   # as QEMU: runs on
        self.assertNotIn('error', jobs[0])
        self.assertEqual(o.cmd('job-dismiss', {'id': 'j0'}), {'return': {}})
        p = xtest.run(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'qcow2',
                       self.path('src.qcow2'), tgt], check=False)
        # the source is in use (locked): compare what the target holds
        self.assertIn(p.returncode, (0, 1, 2))

    def test_disconnect_mid_command(self):
        for i in range(20):
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.srv.sock)
            s.sendall(b'{"execute": "qmp_capabilities"}\n'
                      b'{"execute": "blockdev-snapshot-internal-sync", '
                      b'"arguments": {"device": "src", "name": "s%d"}}\n'
                      b'{"execute": "query-named-block-nodes"}\n' % i)
            s.close()
        self.alive()
        c = self.srv.client().negotiate()
        out = c.cmd('human-monitor-command',
                    {'command-line': 'info snapshots'})
        self.assertIn('return', out)


class Sockets(xtest.TmpDirTestCase):

    def test_unix_mode_and_tcp_default_loopback(self):
        srv = qmpclient.Server([SYSTEM, '-machine', 'none'], tmpdir=self.dir)
        self.addCleanup(srv.stop)
        srv.client().close()
        self.assertEqual(os.stat(srv.sock).st_mode & 0o777, 0o600)
        port = xtest.free_port()
        p = subprocess.Popen([SYSTEM, '-machine', 'none', '-qmp',
                              'tcp::%d,server=on,wait=off' % port],
                             stderr=subprocess.PIPE)
        try:
            c = qmpclient.QMPClient(port=port).negotiate()
            self.assertIn('return', c.cmd('query-version'))
            local = set()
            for table in ('tcp', 'tcp6'):
                with open('/proc/%d/net/%s' % (p.pid, table)) as f:
                    for line in list(f)[1:]:
                        f_ = line.split()
                        addr, hport = f_[1].rsplit(':', 1)
                        if int(hport, 16) == port and f_[3] == '0A':
                            local.add(addr)
            self.assertEqual(local, {'0100007F'})      # 127.0.0.1 only
        finally:
            p.terminate()
            p.wait(10)


class Load(AbuseCase):
    """Commands flooding in while the game runs in real time."""

    def extra(self):
        hd = self.path('hd.qcow2')
        xtest.run([IMG, 'create', '-q', '-f', 'qcow2', hd, '1G'])
        return ['-machine', 'xbox,seed=1,realtime=on', '-kernel', GUEST,
                '-drive', 'file=%s,format=qcow2,if=ide,index=0' % hd,
                '-display', 'none']

    def test_oob_overtakes_a_running_command(self):
        c = self.srv.client()
        self.assertEqual(c.cmd('qmp_capabilities', {'enable': ['oob']}),
                         {'return': {}})
        overtook = 0
        for i in range(5):
            # savevm: an in-band command that runs for tens of ms
            c.send_raw('{"execute": "human-monitor-command", "arguments": '
                       '{"command-line": "savevm s%d"}, "id": "long"}\n' % i)
            time.sleep(0.005)
            c.send_raw('{"exec-oob": "query-yank", "id": "oob"}\n'
                       '{"execute": "query-yank", "id": "inband"}\n')
            order = []
            while len(order) < 3:
                m = c.reply()
                order.append(m['id'])
            self.assertLess(order.index('long'), order.index('inband'))
            overtook += order.index('oob') < order.index('long')
        self.assertGreaterEqual(overtook, 4)

    def flood(self, secs, nclients, batch):
        """nclients pipelining batch for secs; (commands/s, frame times)."""
        c = self.srv.client().negotiate()
        c.cmd('x-query-frame-times')            # start counting afresh
        counts = [0] * nclients
        stop = time.monotonic() + secs
        errors = []
        n = batch.count('\n')

        def run(k):
            try:
                q = self.srv.client().negotiate()
                while time.monotonic() < stop:
                    q.send_raw(batch)
                    for _ in range(n):
                        if 'return' not in q.reply():
                            errors.append('error reply')
                    counts[k] += n
                q.close()
            except Exception as e:      # reported below
                errors.append(repr(e))
        ts = [threading.Thread(target=run, args=(k,))
              for k in range(nclients)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        elapsed = time.monotonic() - t0
        ft = c.cmd('x-query-frame-times')['return']
        self.assertEqual(errors, [])
        return sum(counts) / elapsed, ft, elapsed

    def test_load_frame_times(self):
        secs = 30 if LONG else 4
        time.sleep(0.5)
        batch = ('{"execute": "query-status"}\n'
                 '{"execute": "query-named-block-nodes"}\n'
                 '{"execute": "query-version"}\n') * 40
        rate, ft, elapsed = self.flood(secs, 4, batch)
        print('# load: 4 clients, %.1f s: %.0f commands/s; guest %d frames,'
              ' worst frame %.2f ms, %d over budget (figures: '
              'bench/run-qmp-bench)' %
              (elapsed, rate, ft['frames'], ft['max-us'] / 1000,
               ft['over-budget']))
        self.assertGreater(ft['frames'], 30 * secs)
        # generous: the 2-core machine also runs the 4 flooding clients
        self.assertLess(ft['max-us'], 250000)
        # query-block asks the machine for each drive on the vCPU thread:
        # every reply a "return" and the monitor still answering; its
        # figures are the bench's, no bound of the monitor's
        self.flood(2, 4, '{"execute": "query-block"}\n' * 100)
        self.alive()


class LongFlood(AbuseCase):
    """XBLK_LONG: a flood of events drops a client that never reads."""

    def test_event_flood_drops_silent_client(self):
        if not LONG:
            self.skipTest('XBLK_LONG=1 only')
        silent = self.srv.client().negotiate()
        silent.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        base = rss_kib(self.pid)
        c = self.srv.client().negotiate()
        peak = 0
        # each STOP or RESUME event is ~80 bytes: 2 x 500k of them is more
        # than the 64 MiB a silent client may hold
        for _ in range(1000):
            c.send_raw('{"execute": "stop"}\n{"execute": "cont"}\n' * 500)
            for _ in range(1000):
                c.reply()
            c.events.clear()
            peak = max(peak, rss_kib(self.pid) - base)
        self.alive()
        # the silent client was cut loose: its socket ends after what the
        # kernel had buffered
        silent.sock.settimeout(10)
        got = 0
        while True:
            chunk = silent.sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        print('# event flood: silent client dropped after %d bytes, RSS '
              'peak +%d KiB' % (got, peak))
        self.assertLess(got, 64 << 20)
        assert_rss_bound(self, peak, 160 << 10, "event flood")


if __name__ == '__main__':
    xtest.main()
