#!/usr/bin/env python3
"""QMP protocol tests against xblk-system over its real sockets.

Greeting and negotiation, ids of every JSON type echoed verbatim, each
error class, events to every negotiated client, several clients at once,
and a corpus of bad input after which the server still answers.  TCP:
the host given is bound, an interface address or 0.0.0.0 with a warning
(the monitor has no authentication), an empty host binds 127.0.0.1 only
(checked in /proc/net/tcp), a host that is not this machine's fails.
"""
import json
import os
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')


class QmpProtocol(xtest.TmpDirTestCase):

    def setUp(self):
        super().setUp()
        self.srv = qmpclient.Server([SYSTEM, '-machine', 'none'],
                                    tmpdir=self.dir)
        self.addCleanup(self.srv.stop)

    def test_greeting_and_negotiation(self):
        c = self.srv.client()
        g = c.greeting['QMP']
        self.assertEqual(set(g), {'version', 'capabilities'})
        self.assertEqual(set(g['version']['qemu']), {'major', 'minor',
                                                     'micro'})
        r = c.cmd('query-status')
        self.assertEqual(r['error']['class'], 'CommandNotFound')
        self.assertIn('qmp_capabilities', r['error']['desc'])
        c.negotiate()
        r = c.cmd('qmp_capabilities')
        self.assertEqual(r['error']['class'], 'CommandNotFound')
        self.assertEqual(c.cmd('query-status')['return']['status'],
                         'running')

    def test_unix_socket_mode_0600(self):
        self.srv.client().close()
        self.assertEqual(os.stat(self.srv.sock).st_mode & 0o777, 0o600)

    def test_ids_echoed_verbatim(self):
        c = self.srv.client().negotiate()
        for raw in ['1', '-9223372036854775808', '18446744073709551615',
                    '1.5e300', '"str"', '"\\u00e9\\n"', 'null', 'true',
                    '[1, {"a": []}]', '{"nested": {"x": "y"}}']:
            c.send_raw('{"execute": "query-status", "id": %s}\n' % raw)
            line = c.recv_raw_line().decode()
            self.assertTrue(line.endswith(', "id": %s}' % raw), line)
            self.assertIn('"return"', line)

    def test_error_replies(self):
        c = self.srv.client().negotiate()
        cases = [
            ('[1, 2]', 'GenericError', 'QMP input must be a JSON object'),
            ('"str"', 'GenericError', 'QMP input must be a JSON object'),
            ('{"foo": 1}', 'GenericError', "QMP input member 'foo' is "
             "unexpected"),
            ('{"execute": 1}', 'GenericError', "QMP input member 'execute' "
             "must be a string"),
            ('{"execute": "query-status", "arguments": []}', 'GenericError',
             "QMP input member 'arguments' must be an object"),
            ('{"execute": "nope"}', 'CommandNotFound', 'The command nope has '
             'not been found'),
            ('{"execute": "block_resize", "arguments": {"device": "x", '
             '"size": "a"}}', 'GenericError', "Invalid parameter type for "
             "'size', expected: integer"),
            ('{"execute": "block_resize", "arguments": {"device": "x"}}',
             'GenericError', "Parameter 'size' is missing"),
            ('{"execute": "block_resize", "arguments": {"device": "x", '
             '"size": 1, "zz": 2}}', 'GenericError', "Parameter 'zz' is "
             "unexpected"),
            ('{"execute": "block_resize", "arguments": {"device": "x", '
             '"size": 1}}', 'GenericError', "Cannot find device='x' nor "
             "node-name=''"),
        ]
        for text, cls, desc in cases:
            c.send_raw(text + '\n')
            r = c.reply()
            self.assertEqual(r['error'], {'class': cls, 'desc': desc}, text)

    def test_malformed_input_resynchronizes(self):
        c = self.srv.client().negotiate()
        corpus = ['}', '@', '{"a": "\\x"}', '{"execute": }', ']]]',
                  '{"execute":"query-status",\xff']
        for bad in corpus:
            c.send_raw(bad.encode('latin-1') if '\xff' in bad else bad)
            c.send_raw('\n')
            c.send_raw('{"execute": "query-status", "id": 7}\n')
            errors = 0
            while True:
                r = c.reply()
                if r.get('id') == 7:
                    break
                self.assertEqual(r['error']['class'], 'GenericError', bad)
                self.assertTrue(r['error']['desc'].startswith(
                    'JSON parse error'), r)
                errors += 1
            self.assertGreater(errors, 0, bad)
            self.assertIn('return', r)

    def test_deep_nesting_and_huge_message(self):
        c = self.srv.client().negotiate()
        c.send_raw('[' * 5000 + ']' * 5000 + '\n')
        r = c.reply()
        self.assertIn('nesting', r['error']['desc'])
        # the rest of the brackets produce errors, then the server answers
        deadline = time.monotonic() + 10
        c.send_raw('\xff'.encode('latin-1'))
        c.send_raw('{"execute": "query-status", "id": "after"}\n')
        while time.monotonic() < deadline:
            r = c.reply()
            if r.get('id') == 'after':
                break
        self.assertEqual(r['id'], 'after')

    def test_events_reach_every_negotiated_client(self):
        a = self.srv.client().negotiate()
        b = self.srv.client().negotiate()
        quiet = self.srv.client()          # not negotiated: no events
        self.assertEqual(a.cmd('stop'), {'return': {}})
        for c in (a, b):
            ev = c.wait_event('STOP')
            self.assertEqual(set(ev['timestamp']), {'seconds',
                                                    'microseconds'})
        self.assertEqual(b.cmd('query-status')['return']['status'], 'paused')
        self.assertEqual(b.cmd('cont'), {'return': {}})
        a.wait_event('RESUME')
        b.wait_event('RESUME')
        r = quiet.cmd('query-status')
        self.assertEqual(r['error']['class'], 'CommandNotFound')
        self.assertEqual(quiet.events, [])

    def test_vanishing_and_silent_clients_disturb_nobody(self):
        good = self.srv.client().negotiate()
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.srv.sock)
        s.sendall(b'{"execute": "qmp_capa')      # vanishes mid-message
        s.close()
        silent = self.srv.client().negotiate()   # never reads again
        for _ in range(2000):
            silent.send_raw('{"execute": "query-commands"}\n')
        self.assertEqual(good.cmd('query-status')['return']['running'], True)

    def test_quit_emits_shutdown_and_exits(self):
        c = self.srv.client().negotiate()
        self.assertEqual(c.cmd('quit'), {'return': {}})
        ev = c.wait_event('SHUTDOWN')
        self.assertEqual(ev['data'], {'guest': False,
                                      'reason': 'host-qmp-quit'})
        rc, out, err = self.srv.stop()
        self.assertEqual(rc, 0, err)

    def test_sigterm_shuts_down_cleanly(self):
        c = self.srv.client().negotiate()
        self.srv.proc.terminate()
        ev = c.wait_event('SHUTDOWN')
        self.assertEqual(ev['data']['reason'], 'host-signal')
        rc, out, err = self.srv.stop()
        self.assertEqual(rc, 0, err)
        self.assertFalse(os.path.exists(self.srv.sock))

    def test_query_commands_and_schema(self):
        c = self.srv.client().negotiate()
        names = {x['name'] for x in c.cmd('query-commands')['return']}
        for n in ('qmp_capabilities', 'query-version', 'query-commands',
                  'query-qmp-schema', 'query-status', 'stop', 'cont', 'quit',
                  'blockdev-add', 'blockdev-del', 'query-block',
                  'query-named-block-nodes', 'block_resize',
                  'human-monitor-command'):
            self.assertIn(n, names)
        schema = c.cmd('query-qmp-schema')['return']
        cmds = {e['name'] for e in schema if e['meta-type'] == 'command'}
        # Every command of the schema is implemented, and only those.
        self.assertEqual(names - cmds, set())
        self.assertEqual(cmds - names, set())

    def test_blockdev_add_query_resize_del(self):
        img = self.path('d.qcow2')
        xtest.run([xtest.binary('xblk-img'), 'create', '-q', '-f', 'qcow2',
                   img, '16M'])
        c = self.srv.client().negotiate()
        r = c.cmd('blockdev-add', {'driver': 'qcow2', 'node-name': 'disk0',
                                   'file': {'driver': 'file',
                                            'filename': img}})
        self.assertEqual(r, {'return': {}})
        r = c.cmd('blockdev-add', {'driver': 'qcow2', 'node-name': 'disk0',
                                   'file': {'driver': 'file',
                                            'filename': img}})
        self.assertIn('error', r)
        nodes = c.cmd('query-named-block-nodes', {'flat': True})['return']
        d = [n for n in nodes if n['node-name'] == 'disk0'][0]
        self.assertEqual(d['drv'], 'qcow2')
        self.assertEqual(d['image']['virtual-size'], 16 << 20)
        self.assertEqual(c.cmd('block_resize', {'node-name': 'disk0',
                                                'size': 32 << 20}),
                         {'return': {}})
        out = c.cmd('human-monitor-command',
                    {'command-line': 'info block -n'})['return']
        self.assertIn('disk0', out)
        self.assertEqual(c.cmd('blockdev-del', {'node-name': 'disk0'}),
                         {'return': {}})
        info = json.loads(xtest.run(['qemu-img', 'info', '--output=json',
                                     img]).stdout)
        self.assertEqual(info['virtual-size'], 32 << 20)

    def test_hmp(self):
        c = self.srv.client().negotiate()
        hmp = lambda line: c.cmd('human-monitor-command',
                                 {'command-line': line})['return']
        self.assertIn('info', hmp('help'))
        self.assertEqual(hmp('info status'), 'VM status: running\r\n')
        c.cmd('stop')
        self.assertEqual(hmp('info status'), 'VM status: paused\r\n')
        self.assertIn('unknown command', hmp('frobnicate'))
        self.assertIn('no snapshot', hmp('info snapshots'))


def tcp_listeners(port):
    """Addresses listening on TCP port, read from /proc/net/tcp{,6} (the
    network namespace's table, so a free port names our server only)."""
    found = set()
    for table, family in (('tcp', socket.AF_INET), ('tcp6', socket.AF_INET6)):
        try:
            with open('/proc/net/' + table) as f:
                lines = list(f)[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            addr, hport = fields[1].rsplit(':', 1)
            if int(hport, 16) != port or fields[3] != '0A':     # LISTEN
                continue
            # the kernel prints each 32-bit word in host (little) order
            raw = b''.join(struct.pack('<I', int(addr[i:i + 8], 16))
                           for i in range(0, len(addr), 8))
            found.add(socket.inet_ntop(family, raw))
    return found


def non_loopback_ipv4():
    """An IPv4 address of this machine that is not loopback, or None."""
    try:
        out = subprocess.run(['ip', '-o', '-4', 'addr', 'show'],
                             stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True).stdout
        for line in out.splitlines():
            words = line.split()
            if 'inet' in words:
                a = words[words.index('inet') + 1].split('/')[0]
                if not a.startswith('127.'):
                    return a
    except OSError:             # no iproute2: ask the routing table
        pass
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(('192.0.2.1', 9))     # UDP: picks a source, sends nothing
        a = s.getsockname()[0]
        return None if a.startswith('127.') or a == '0.0.0.0' else a
    except OSError:
        return None
    finally:
        s.close()


class QmpTcp(xtest.TmpDirTestCase):
    """TCP binds the host given, 127.0.0.1 when none is (docs/qmp.md)."""

    def serve(self, host):
        """xblk-system listening on tcp:HOST:PORT; (process, port)."""
        port = xtest.free_port()
        p = subprocess.Popen([SYSTEM, '-machine', 'none', '-qmp',
                              'tcp:%s:%d,server=on,wait=off' % (host, port)],
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.stop, p)
        return p, port

    def stop(self, p):
        """Ends p; its stderr."""
        if p.poll() is None:
            p.terminate()
        try:
            return p.communicate(timeout=20)[1]
        except subprocess.TimeoutExpired:
            p.kill()
            return p.communicate()[1]

    def greet(self, addr, port):
        """Connects to addr:port (retrying while the server starts) and
        checks that QMP answers there."""
        family = socket.AF_INET6 if ':' in addr else socket.AF_INET
        deadline = time.monotonic() + 10
        while True:
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(10)
            try:
                s.connect((addr, port))
                break
            except ConnectionRefusedError:
                s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        f = s.makefile('rwb')
        self.assertIn('QMP', json.loads(f.readline()))
        f.write(b'{"execute": "qmp_capabilities"}\n'
                b'{"execute": "query-version", "id": 1}\n')
        f.flush()
        self.assertEqual(json.loads(f.readline()), {'return': {}})
        self.assertEqual(json.loads(f.readline())['id'], 1)
        f.close()
        s.close()

    def test_loopback_without_warning(self):
        p, port = self.serve('127.0.0.1')
        c = qmpclient.QMPClient(port=port).negotiate()
        self.assertIn('return', c.cmd('query-version'))
        c.close()
        self.assertEqual(tcp_listeners(port), {'127.0.0.1'})
        self.assertNotIn('warning', self.stop(p))

    def test_empty_host_binds_loopback_only(self):
        # QEMU binds every address here; xblk only 127.0.0.1 (issue 14)
        p, port = self.serve('')
        self.greet('127.0.0.1', port)
        self.assertEqual(tcp_listeners(port), {'127.0.0.1'})
        self.assertNotIn('warning', self.stop(p))

    def test_explicit_interface_address_bound_with_warning(self):
        addr = non_loopback_ipv4()
        if addr is None:
            self.skipTest('this machine has no non-loopback IPv4 address '
                          '(0.0.0.0 is tested on its own)')
        p, port = self.serve(addr)
        self.greet(addr, port)
        self.assertEqual(tcp_listeners(port), {addr})
        err = self.stop(p)
        self.assertIn('warning: QMP listens on %s port %d, which is not a '
                      'loopback address' % (addr, port), err)
        self.assertIn('no authentication', err)

    def test_wildcard_bound_with_warning(self):
        p, port = self.serve('0.0.0.0')
        self.greet('127.0.0.1', port)
        addr = non_loopback_ipv4()
        if addr:
            self.greet(addr, port)
        self.assertEqual(tcp_listeners(port), {'0.0.0.0'})
        self.assertIn('warning: QMP listens on 0.0.0.0 port %d, which is '
                      'not a loopback address' % port, self.stop(p))

    def test_foreign_address_refused(self):
        # TEST-NET-3: no interface of this machine has it
        port = xtest.free_port()
        p = xtest.run([SYSTEM, '-machine', 'none', '-qmp',
                       'tcp:203.0.113.7:%d,server=on,wait=off' % port],
                      check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('Failed to bind socket to 203.0.113.7:%d: Cannot '
                      'assign requested address' % port, p.stderr)
        self.assertNotIn('warning', p.stderr)


if __name__ == '__main__':
    xtest.main()
