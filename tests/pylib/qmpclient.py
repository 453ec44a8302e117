"""qmpclient: a minimal QMP client over the real socket (stdlib only).

Used by the monitor tests against xblk-system and, for differential
tests, against qemu-system-x86_64.
"""
import json
import os
import socket
import subprocess
import tempfile
import time


class QMPClient:
    def __init__(self, path=None, port=None, timeout=10):
        family = socket.AF_UNIX if path else socket.AF_INET
        addr = path if path else ('127.0.0.1', port)
        deadline = time.monotonic() + timeout
        while True:
            # A failed connect can leave the socket unusable: new one each try.
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(addr)
                break
            except (FileNotFoundError, ConnectionRefusedError,
                    ConnectionAbortedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.buf = b''
        self.events = []
        self.greeting = self.recv()

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def recv(self):
        """Next JSON message (one per line)."""
        while b'\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('connection closed')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def recv_raw_line(self):
        while b'\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('connection closed')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return line.rstrip(b'\r')

    def reply(self):
        """Next non-event message; events are kept in self.events."""
        while True:
            m = self.recv()
            if 'event' in m:
                self.events.append(m)
                continue
            return m

    def cmd(self, name, args=None, **extra):
        req = {'execute': name}
        if args is not None:
            req['arguments'] = args
        req.update(extra)
        self.send_raw(json.dumps(req) + '\n')
        return self.reply()

    def negotiate(self):
        r = self.cmd('qmp_capabilities')
        assert r == {'return': {}}, r
        return self

    def wait_event(self, name, timeout=10):
        end = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e['event'] == name:
                    return self.events.pop(i)
            if time.monotonic() > end:
                raise TimeoutError(name)
            m = self.recv()
            if 'event' in m:
                self.events.append(m)

    def close(self):
        self.sock.close()


class Server:
    """Starts a QMP server process (xblk-system or QEMU) on a unix socket."""

    def __init__(self, argv_prefix, extra=(), tmpdir=None):
        self.dir = tmpdir or tempfile.mkdtemp(prefix='xblk-qmp-')
        self.sock = os.path.join(self.dir, 'qmp.sock')
        argv = list(argv_prefix) + ['-qmp', 'unix:%s,server=on,wait=off' %
                                    self.sock] + list(extra)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def client(self):
        return QMPClient(path=self.sock)

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out.decode(), err.decode()
