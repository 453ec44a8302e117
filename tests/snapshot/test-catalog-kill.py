#!/usr/bin/env python3
"""test-catalog-kill: the snapshot catalog under SIGKILL (DESIGN rule 2).

build/tests/snapshot/helper-catalog-writer loops on random changes to a
catalog (add, rename, remove, set current, set description, redefine
moving a subtree, intent records), printing "B <change>" before each call
and "D" once it returned.  The test SIGKILLs it at random instants, about
40 times in a row on the same folder, and after each kill opens the
catalog with the helper's check mode.  Sometimes it kills the check too,
so that open's own redo of an interrupted change is interrupted as well.
After each kill:

  1. the catalog opens, and open reported nothing but removed temporary
     files and finished or rolled-back changes (no damaged file, no
     missing parent, no loop, no current pointing nowhere);
  2. the catalog (names, parents, descriptions, current, intent records)
     equals a model replaying every change the writer reported done
     ("D"), with the change in flight at the kill either entirely
     applied or not at all - never half;
  3. no .tmp-* file and no .journal remains after open;
  4. every <parent> written in the files names a snapshot file that
     exists (checked on the XML itself, not through the catalog).

The master seed is printed; XBLK_SEED=<n> replays it.  XBLK_LONG=1 runs
more rounds.
"""
import os
import random
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import xtest  # noqa: E402

HELPER = xtest.binary(os.path.join('tests', 'snapshot',
                                   'helper-catalog-writer'))
LONG = os.environ.get('XBLK_LONG') == '1'
SEED = int(os.environ.get('XBLK_SEED') or
           random.SystemRandom().randrange(1 << 32))
ROUNDS = 200 if LONG else 40
# Each writer lives this long before its kill (seconds): ~20 s in all.
LIFETIME = (0.01, 0.8)

print('# test-catalog-kill: seed %d (XBLK_SEED=%d to replay)' % (SEED, SEED),
      flush=True)

# What open may report after a kill: cleanup and the journal's redo only.
ALLOWED_REPORT = ('removed leftover temporary file',
                  'finished defining snapshot',
                  'finished renaming snapshot',
                  'finished removing snapshot',
                  'rolled back renaming snapshot')


class Model:
    """The catalog as the writer's reported changes leave it."""

    def __init__(self):
        self.snaps = {}         # name -> [parent or None, description]
        self.current = None
        self.intents = set()

    def copy(self):
        m = Model()
        m.snaps = {k: list(v) for k, v in self.snaps.items()}
        m.current = self.current
        m.intents = set(self.intents)
        return m

    def state(self):
        return ({k: tuple(v) for k, v in self.snaps.items()},
                self.current, frozenset(self.intents))

    def apply(self, op):
        verb, args = op[0], op[1:]
        dash = (lambda s: None if s == '-' else s)
        if verb == 'add':
            name, parent, make_current, desc = args
            self.snaps[name] = [dash(parent), desc]
            if make_current == '1':
                self.current = name
        elif verb == 'rename':
            old, new = args
            self.snaps[new] = self.snaps.pop(old)
            for v in self.snaps.values():
                if v[0] == old:
                    v[0] = new
            if self.current == old:
                self.current = new
        elif verb == 'remove':
            name, = args
            parent = self.snaps.pop(name)[0]
            for v in self.snaps.values():
                if v[0] == name:
                    v[0] = parent
            if self.current == name:
                self.current = parent
        elif verb == 'current':
            self.current = dash(args[0])
        elif verb == 'desc':
            self.snaps[args[0]][1] = args[1]
        elif verb == 'move':
            self.snaps[args[0]][0] = dash(args[1])
        elif verb == 'intent':
            self.intents.add(args[0])
        elif verb == 'unintent':
            self.intents.discard(args[0])
        else:
            raise AssertionError('unknown change %r' % (op,))


def parse_log(text):
    """(done changes, change in flight or None) from the writer's log."""
    done, pending = [], None
    lines = text.split('\n')
    for line in lines[:-1]:         # the last one may be cut by the kill
        parts = line.split()
        if not parts or parts[0] == 'O':
            continue
        if parts[0] == 'B':
            assert pending is None, 'B after B without D'
            pending = parts[1:]
        elif parts[0] == 'D':
            assert pending is not None, 'D without B'
            done.append(pending)
            pending = None
    return done, pending


def parse_check(out):
    m, report = Model(), []
    for line in out.splitlines():
        tag, _, rest = line.partition(' ')
        if tag == 'R':
            report.append(rest)
        elif tag == 'S':
            name, parent, desc = rest.split(' ')
            m.snaps[name] = [None if parent == '-' else parent,
                             None if desc == '-' else desc]
        elif tag == 'C':
            m.current = None if rest == '-' else rest
        elif tag == 'I':
            m.intents.add(rest)
    return m, report


def files_parents(folder):
    """{snapshot name: parent or None} read from the XML files."""
    out = {}
    for f in os.listdir(folder):
        if f.endswith('.xml') and not f.startswith('.') and \
                f != 'domain.xml':
            root = ET.parse(os.path.join(folder, f)).getroot()
            out[f[:-4]] = root.findtext('parent/name')
    return out


class CatalogKillTest(xtest.TmpDirTestCase):

    def check(self, folder, rnd, context):
        """Runs the check mode (maybe killed once first); returns
        (model, report)."""
        if rnd.random() < 0.25:
            p = subprocess.Popen([HELPER, 'check', folder],
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            time.sleep(rnd.uniform(0, 0.004))
            p.send_signal(signal.SIGKILL)
            p.wait()
        p = xtest.run([HELPER, 'check', folder], check=False, timeout=60)
        self.assertEqual(p.returncode, 0, '%s: check failed: %s' %
                         (context, p.stderr))
        return parse_check(p.stdout)

    def test_kill(self):
        rnd = random.Random(SEED)
        folder = self.path('catalog')
        model = Model()
        total_done = 0
        redone = 0
        for run in range(1, ROUNDS + 1):
            log_path = self.path('log-%d' % run)
            with open(log_path, 'wb') as log, \
                    open(self.path('err-%d' % run), 'wb') as err:
                w = subprocess.Popen(
                    [HELPER, 'write', folder, str(rnd.randrange(1 << 32)),
                     str(run)], stdout=log, stderr=err)
                time.sleep(rnd.uniform(*LIFETIME))
                w.send_signal(signal.SIGKILL)
                rc = w.wait()
            with open(self.path('err-%d' % run)) as f:
                errors = f.read()
            context = 'seed %d run %d' % (SEED, run)
            self.assertEqual(rc, -signal.SIGKILL,
                             '%s: writer exited by itself (%d): %s' %
                             (context, rc, errors))
            with open(log_path) as f:
                done, pending = parse_log(f.read())
            for op in done:
                model.apply(op)
            total_done += len(done)

            found, report = self.check(folder, rnd, context)
            for line in report:
                self.assertTrue(line.startswith(ALLOWED_REPORT),
                                '%s: open reported: %s' % (context, line))
                redone += line.startswith('finished')
            after = model
            if pending:
                after = model.copy()
                after.apply(pending)
            self.assertIn(found.state(), (model.state(), after.state()),
                          '%s: catalog is neither before nor after %r:\n'
                          'found %r\nbefore %r\nafter %r' %
                          (context, pending, found.state(), model.state(),
                           after.state()))
            model = found

            leftovers = [f for f in os.listdir(folder)
                         if f.startswith('.tmp-') or f == '.journal']
            self.assertEqual(leftovers, [], context)
            parents = files_parents(folder)
            self.assertEqual(set(parents), set(model.snaps), context)
            for name, parent in parents.items():
                self.assertTrue(parent is None or parent in parents,
                                '%s: %s.xml names parent %s, which has no '
                                'file' % (context, name, parent))
        print('# %d rounds, %d changes completed, %d redone by open, '
              '%d snapshots at the end' % (ROUNDS, total_done, redone,
                                           len(model.snaps)), flush=True)
        self.assertGreater(total_done, ROUNDS)


if __name__ == '__main__':
    xtest.main()
