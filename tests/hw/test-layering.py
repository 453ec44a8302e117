#!/usr/bin/env python3
"""test-layering: the console machine (hw/) and the front end (ui/) reach
the engine only through its public API, include/xblk/ (issue "libxblk").

Every #include "..." of every C file and header under hw/ and ui/ is
resolved against the tree; a header of the engine's own layers (util/,
block/, migration/, monitor/, qapi/ and the generated QAPI headers, api/)
is an engine-internal header and fails the test.  TRANSITIONAL lists
exceptions while a file moves to the public API (empty now: the machine
reaches the engine only through include/xblk/); an entry whose include is
gone fails the test too, so the list can only shrink.
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'pylib'))
import xtest  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ENGINE_DIRS = ('util/', 'block/', 'migration/', 'monitor/', 'qapi/', 'api/')

# file -> the engine-internal includes it may still have, and why.
TRANSITIONAL = {
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources():
    for top in ('hw', 'ui'):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            if os.sep + 'guest' in dirpath:
                continue        # the guest's own freestanding code
            for f in sorted(files):
                if f.endswith(('.c', '.h')):
                    path = os.path.join(dirpath, f)
                    yield os.path.relpath(path, ROOT), path


def engine_includes(path):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    return {inc for inc in INCLUDE.findall(text)
            if inc.startswith(ENGINE_DIRS)}


class LayeringTest(unittest.TestCase):
    def test_only_public_headers(self):
        bad = []
        seen = 0
        for rel, path in sources():
            seen += 1
            extra = engine_includes(path) - TRANSITIONAL.get(rel, set())
            bad += ['%s includes "%s"' % (rel, inc) for inc in sorted(extra)]
        self.assertGreater(seen, 20, 'no sources found under hw/')
        self.assertEqual(bad, [], 'engine-internal headers in hw/ or ui/ '
                         '(use include/xblk/): ' + '; '.join(bad))

    def test_transitional_list_only_shrinks(self):
        stale = []
        for rel, allowed in sorted(TRANSITIONAL.items()):
            path = os.path.join(ROOT, rel)
            have = engine_includes(path) if os.path.exists(path) else set()
            stale += ['%s no longer includes "%s"' % (rel, inc)
                      for inc in sorted(allowed - have)]
        self.assertEqual(stale, [], 'remove from TRANSITIONAL: ' +
                         '; '.join(stale))

    def test_detects_a_violation(self):
        # The check itself must be able to fail: a file with an internal
        # include is found.
        import tempfile
        with tempfile.NamedTemporaryFile('w', suffix='.c') as f:
            f.write('#include "hw/xbox/machine.h"\n'
                    '#include "block/block_int.h"\n'
                    '#include <xblk/xblk.h>\n')
            f.flush()
            self.assertEqual(engine_includes(f.name), {'block/block_int.h'})


if __name__ == '__main__':
    print('# transitional entries: %d files' % len(TRANSITIONAL))
    xtest.main()
