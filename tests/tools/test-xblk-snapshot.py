#!/usr/bin/env python3
"""xblk-snapshot validate over the corpus in tests/snapshot/corpus/.

Valid documents exit 0 and print a normalized document that itself
validates against libvirt's schema (virt-xml-validate if installed, else
xmllint --relaxng; skipped with a message when neither schema nor tool is
there).  Invalid ones exit 1 with the expected reason (the file's
"<!-- expect: ... -->" first line) on stderr and print nothing.
"""
import glob
import os
import re
import shutil
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import xtest  # noqa: E402

TOOL = xtest.binary('xblk-snapshot')
CORPUS = os.path.join(xtest.ROOT, 'tests', 'snapshot', 'corpus')
SCHEMA = '/usr/share/libvirt/schemas/domainsnapshot.rng'
EXPECT = re.compile(r'^<!-- expect: (.*) -->')
ASAN_NOISE = re.compile(r"^==\d+==WARNING: ASan doesn't fully support")


def snap(*args):
    p = xtest.run([TOOL] + list(args), check=False)
    p.stderr = '\n'.join(l for l in p.stderr.splitlines()
                         if not ASAN_NOISE.search(l))
    return p


def schema_validator():
    if shutil.which('virt-xml-validate'):
        return lambda f: ['virt-xml-validate', f, 'domainsnapshot']
    if shutil.which('xmllint') and os.path.exists(SCHEMA):
        return lambda f: ['xmllint', '--noout', '--relaxng', SCHEMA, f]
    return None


class ValidateTest(xtest.TmpDirTestCase):
    def test_valid_corpus(self):
        validator = schema_validator()
        files = sorted(glob.glob(os.path.join(CORPUS, 'valid', '*.xml')))
        self.assertTrue(files)
        for f in files:
            p = snap('validate', f)
            self.assertEqual(p.returncode, 0, '%s: %s' % (f, p.stderr))
            self.assertEqual(p.stderr, '')
            self.assertIn('<memory snapshot=', p.stdout)
            out = self.path(os.path.basename(f))
            with open(out, 'w') as fh:
                fh.write(p.stdout)
            # The normalized output is a fixed point of validate.
            again = snap('validate', out)
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertEqual(again.stdout, p.stdout)
            if validator:
                xtest.run(validator(out))
        if not validator:
            self.skipTest('no virt-xml-validate/xmllint with %s' % SCHEMA)

    def test_invalid_corpus(self):
        files = sorted(glob.glob(os.path.join(CORPUS, 'invalid', '*.xml')))
        self.assertTrue(files)
        for f in files:
            with open(f) as fh:
                expect = EXPECT.match(fh.readline()).group(1)
            p = snap('validate', f)
            self.assertEqual(p.returncode, 1, f)
            self.assertEqual(p.stdout, '')
            self.assertTrue(p.stderr.startswith('xblk-snapshot: '), p.stderr)
            self.assertIn(expect, p.stderr, f)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)

    def test_missing_file_and_usage(self):
        p = snap('validate', self.path('nope.xml'))
        self.assertEqual(p.returncode, 1)
        self.assertIn('could not read', p.stderr)
        self.assertEqual(snap('validate').returncode, 1)
        self.assertEqual(snap('frobnicate').returncode, 1)
        self.assertEqual(snap().returncode, 1)

    def test_help(self):
        p = snap('--help')
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith('Usage: xblk-snapshot'))
        self.assertIn('validate FILE', p.stdout)
        p = snap('validate', '--help')
        self.assertEqual(p.returncode, 0)
        self.assertIn('Usage: xblk-snapshot validate FILE', p.stdout)


if __name__ == '__main__':
    xtest.main()
