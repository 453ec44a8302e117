#!/usr/bin/env python3
"""test-menu: the save-state menu of xblk-system (docs/ui.md, "The
save-state menu"), under Xvfb with Mesa's software GL, as test-window.py
(whose Xvfb and skip rules it reuses).

One run of the reference guest, stopped between steps so that frames and
screenshots are deterministic:

- three states saved by hotkey (Shift+F5, Shift+F6, F2);
- F1 opens the menu: the screenshot differs from the game's, and each
  of the three rows has a thumbnail that is not one flat colour;
- typing "ot 2" leaves one row (the other thumbnails are gone);
- F2 renames it inline to "Boss": states.ini says so;
- Esc clears the search; Delete, Left, Return deletes the quick save
  (QMP's "info snapshots" loses it);
- End, Return (and "Load anyway" if the rollback question comes) loads
  'Slot 1': x-query-frame is back at its frame and hash;
- F1 then Esc: the picture is the game's again.

Screenshots are copied to $XBLK_UI_SHOTS when set.
"""
import importlib.util
import math
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import xtest  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    'test_window', os.path.join(os.path.dirname(__file__), 'test-window.py'))
tw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tw)

# ui/sdl/render.c's layout, in window pixels (no HiDPI under Xvfb).
MARGIN, PAD, LINE, ROW_H = 24, 12, 28, 80
THUMB = (96, 72)
ROWS_Y = MARGIN + PAD + 2 * LINE + PAD


@unittest.skipIf(tw.SKIP, tw.SKIP)
class Menu(tw.WindowCase):

    def shot(self, name):
        png = self.path(name)
        subprocess.run(['import', '-window', self.window(), png],
                       env=self.env, check=True, timeout=30)
        if os.environ.get('XBLK_UI_SHOTS'):
            subprocess.run(['cp', png, os.environ['XBLK_UI_SHOTS']])
        return png

    def stddev(self, png, w, h, x, y):
        out = subprocess.run(
            ['convert', png, '-crop', '%dx%d+%d+%d' % (w, h, x, y),
             '+repage', '-format', '%[fx:standard_deviation]', 'info:'],
            stdout=subprocess.PIPE, text=True, check=True).stdout
        v = float(out)
        return 0.0 if math.isnan(v) else v  # a flat area rounds to -nan

    def differ(self, a, b, crop):
        """Pixels that differ between a and b within crop (WxH+X+Y)."""
        p = subprocess.run(
            ['compare', '-metric', 'AE', a + '[%s]' % crop,
             b + '[%s]' % crop, 'null:'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return float(p.stderr.split()[0])

    def thumb_stddev(self, png, row):
        x = MARGIN + PAD
        y = ROWS_Y + row * ROW_H + 3
        return self.stddev(png, THUMB[0] - 4, THUMB[1] - 4, x + 2, y + 2)

    def n_states(self):
        # Rows of HMP's table start with "--" (no per-disk ID).
        return len([line for line in self.snapshots().splitlines()
                    if line.startswith('--')])

    def save(self, keys, n):
        self.key(keys)
        self.wait_for(lambda: self.n_states() >= n, 'state %d listed' % n)

    def states_ini(self):
        with open(os.path.join(self.config, 'xblk', 'states.ini')) as f:
            return f.read()

    def test_menu(self):
        q = self.start()
        self.wait_frame(120)
        q.cmd('stop')
        slot1 = self.frame()
        self.save('shift+F5', 1)
        for keys, n in (('shift+F6', 2), ('F2', 3)):
            q.cmd('cont')
            self.wait_frame(self.frame()['frame'] + 120)
            q.cmd('stop')
            self.save(keys, n)
        time.sleep(4.5)             # the OSD's messages fade
        game = self.shot('game.png')

        self.key('F1')
        time.sleep(1.0)
        menu = self.shot('menu.png')
        w, h = 1280, 960
        self.assertGreater(self.differ(game, menu, '%dx%d+0+0' % (w, h)),
                           w * h / 2, 'the menu is drawn')
        for row in range(3):
            self.assertGreater(self.thumb_stddev(menu, row), 0.02,
                               'row %d has a thumbnail' % row)

        self.xdo('windowfocus', '--sync', self.window(), 'type', 'ot 2')
        time.sleep(0.8)
        found = self.shot('search.png')
        self.assertGreater(self.thumb_stddev(found, 0), 0.02)
        self.assertLess(self.thumb_stddev(found, 1), 0.01, 'one row left')

        self.key('F2')
        self.key(*['BackSpace'] * 6)
        self.xdo('windowfocus', '--sync', self.window(), 'type', 'Boss')
        self.key('Return')
        self.wait_for(lambda: 'Boss' in self.states_ini(),
                      'the new name in states.ini')

        self.key('Escape')          # clears the search
        self.key('Home', 'Delete')  # the quick save is the newest
        time.sleep(0.5)
        self.shot('delete.png')
        self.key('Left', 'Return')
        self.wait_for(lambda: self.n_states() == 2, 'the state deleted')
        # The library updates its index after the image lost the state;
        # a load asked for before that is refused as busy.
        time.sleep(1.5)

        self.key('End', 'Return')   # 'Slot 1', the oldest
        time.sleep(0.8)
        if self.frame() != slot1:
            self.shot('rollback.png')
            self.key('Left', 'Return')  # "Load anyway"
        self.wait_for(lambda: self.frame() == slot1,
                      'back at frame %d' % slot1['frame'])

        time.sleep(4.5)
        before = self.shot('before.png')
        self.key('F1')
        time.sleep(0.8)
        opened = self.shot('reopened.png')
        self.key('Escape')
        time.sleep(0.8)
        closed = self.shot('closed.png')
        top = '%dx%d+0+0' % (w, h // 2)     # the OSD is at the bottom
        self.assertGreater(self.differ(before, opened, top), 1000)
        self.assertEqual(self.differ(before, closed, top), 0, 'Esc closes')

        q.cmd('quit')
        self.assertEqual(self.wait_exit(), 0, self.stderr())
        out = xtest.run(['qemu-img', 'snapshot', '-l', self.hd]).stdout
        print('# ' + out.strip().replace('\n', '\n# '))


if __name__ == '__main__':
    xtest.main()
