"""xtest: shared helpers for xblk's Python integration tests.

Runs unittest test cases and prints one TAP line per case ("ok N - name"
or "not ok N - name"), which scripts/run-tests counts.  Also locates the
built binaries and offers small wrappers around the tools.
"""
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.environ.get('XBLK_ROOT') or \
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get('XBLK_BUILD', 'build'))


def binary(name):
    """Path of a built program, e.g. binary('xblk-img')."""
    return os.path.join(BUILD, name)


def run(cmd, check=True, input=None, timeout=600):
    """Runs cmd; returns CompletedProcess with text stdout/stderr."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       input=input, timeout=timeout, text=True)
    if check and p.returncode != 0:
        raise AssertionError('%s failed (%d):\n%s%s' %
                             (' '.join(cmd), p.returncode, p.stdout, p.stderr))
    return p


def free_port():
    """A loopback TCP port nobody listens on just now."""
    import socket
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sanitized_build():
    """True for an ASan/UBSan build: its libxblk needs the sanitizer
    runtime loaded first, which a plain host program does not do."""
    try:
        with open(os.path.join(BUILD, 'config.mak')) as f:
            return 'SANITIZERS = yes' in f.read()
    except OSError:
        return False


def make_install(prefix):
    """`make install PREFIX=prefix` of the build under test."""
    run(['make', '-s', '-C', ROOT, 'BUILD=' + os.path.relpath(BUILD, ROOT),
         'install', 'PREFIX=' + prefix], timeout=1200)


class TmpDirTestCase(unittest.TestCase):
    """A test case with a fresh temporary folder in self.dir."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix='xblk-test-')
        self.dir = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)


class _TapResult(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.n = 0

    def _line(self, ok, test, extra=''):
        self.n += 1
        print('%s %d - %s%s' % ('ok' if ok else 'not ok', self.n,
                                test.id(), extra), flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line(True, test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(False, test)
        print(self._exc_info_to_string(err, test), flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        self._line(False, test)
        print(self._exc_info_to_string(err, test), flush=True)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(True, test, ' # SKIP %s' % reason)


def main():
    """Runs the calling module's tests with TAP output."""
    suite = unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules['__main__'])
    runner = unittest.TextTestRunner(stream=open(os.devnull, 'w'),
                                     resultclass=_TapResult, verbosity=0)
    result = runner.run(suite)
    print('1..%d' % result.testsRun)
    sys.exit(0 if result.wasSuccessful() else 1)
