#!/usr/bin/env python3
"""test-fuzz-corpus: every seed of the fuzz targets and every input that
once crashed one, replayed through the target's replay build.

For each target of tests/fuzz/ (docs/fuzzing.md), runs
BUILD/tests/fuzz/replay-<target> over tests/fuzz/corpus/<target>/ and
tests/fuzz/regressions/<target>/ and asserts it exits 0: no crash, no
assertion, no sanitizer report (under `make check-asan` the replay
binaries are ASan/UBSan builds; LeakSanitizer runs at exit).  So
`make check` keeps every past finding fixed without clang or libFuzzer.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import xtest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = ['qcow2', 'qmp', 'domainsnapshot', 'savestream', 'ide', 'config']


class FuzzCorpus(unittest.TestCase):

    def replay(self, target):
        binary = xtest.binary(os.path.join('tests', 'fuzz',
                                           'replay-' + target))
        if not os.path.exists(binary):
            self.fail('%s not built (make all builds it)' % binary)
        dirs = [d for d in (os.path.join(HERE, 'corpus', target),
                            os.path.join(HERE, 'regressions', target))
                if os.path.isdir(d) and os.listdir(d)]
        self.assertTrue(dirs, 'no corpus for ' + target)
        p = xtest.run([binary, '-v'] + dirs, check=False, timeout=900)
        self.assertEqual(p.returncode, 0, '%s failed (%d):\n%s%s' % (
            binary, p.returncode, p.stdout, p.stderr[-8000:]))
        self.assertNotIn('runtime error:', p.stderr)
        self.assertNotIn('ERROR: AddressSanitizer', p.stderr)
        n = sum(len(os.listdir(d)) for d in dirs)
        self.assertIn('replayed %d inputs' % n, p.stdout)


def _add(target):
    def test(self):
        self.replay(target)
    test.__name__ = 'test_' + target
    setattr(FuzzCorpus, test.__name__, test)


for _t in TARGETS:
    _add(_t)

if __name__ == '__main__':
    xtest.main()
