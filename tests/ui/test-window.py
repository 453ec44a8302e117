#!/usr/bin/env python3
"""test-window: the SDL2/GL window of xblk-system (docs/ui.md).

Under Xvfb with Mesa's software GL, the reference guest on a fresh qcow2
hard disk with its disc, driven with xdotool and watched through QMP and
screenshots (imagemagick's import):

- the game frame is drawn (the screenshot is not black), the window's
  title names the disc's title and follows running/paused, the INI file
  is created under $XDG_CONFIG_HOME/xblk/xblk.ini;
- Shift+F5 saves slot 1 and, later, F5 (pressed again past the rollback
  warning) loads it: the stopped machine is back at the saved frame with
  the same state hash (x-query-frame);
- F11 covers the screen and gives the window back; Ctrl+Q ends the
  process with status 0;
- save-on-exit + resume-on-start: quit at frame F, start again, a
  question over the game (the screenshot is dimmed) while the fresh boot
  runs; Return resumes (at F or later at once), Esc starts over (the
  frame keeps counting from 0);
- undo save and undo load (rollback-warning off, one press one load):
  Shift+F5 at A, Shift+F5 at B, F5 is B, Shift+F4 then F5 is A (frame and
  hash), F4 goes back to just before that load; Shift+F6 then a restart:
  F6 still loads it (bindings per title are kept);
- -display sdl without a display fails as QEMU does.

In an ASan build the leak check is off for the windowed program (SDL2,
libdbus and Mesa keep allocations past SDL_Quit, some in unloaded
modules); memory errors still fail it.

Skipped (TAP SKIP) without Xvfb, xdotool, import/convert or qemu-img, or
when the build has no SDL (CONFIG_SDL = no).  The program runs with
LC_ALL=C, so the title is ASCII ("xblk - TITLE - running"): xdotool's
--name cannot read the UTF-8 title of a UTF-8 locale.  Without a window
manager, windowactivate cannot work, so keys go through windowfocus.
"""
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'pylib'))
import qmpclient  # noqa: E402
import xtest  # noqa: E402

SYSTEM = xtest.binary('xblk-system')
DISC = os.path.join(xtest.BUILD, 'guest', 'disc.iso')
SCREEN = (1280, 1024)
TOOLS = ('Xvfb', 'xdotool', 'import', 'convert', 'qemu-img')


def skip_reason():
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        return 'missing %s' % ', '.join(missing)
    try:
        with open(os.path.join(xtest.BUILD, 'config.mak')) as f:
            if 'CONFIG_SDL = yes' not in f.read():
                return 'built without SDL'
    except OSError:
        return 'no config.mak'
    if not os.path.exists(DISC):
        return 'no reference disc'
    return None


SKIP = skip_reason()


class Xvfb:
    """An X server on a free display number (-displayfd picks it)."""

    def __init__(self):
        r, w = os.pipe()
        self.proc = subprocess.Popen(
            ['Xvfb', '-displayfd', str(w), '-screen', '0',
             '%dx%dx24' % SCREEN, '-nolisten', 'tcp'],
            pass_fds=(w,), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(w)
        with os.fdopen(r) as f:
            num = f.readline().strip()
        if not num:
            self.proc.kill()
            raise RuntimeError('Xvfb did not start')
        self.display = ':' + num

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class WindowCase(xtest.TmpDirTestCase):
    """A display, a fresh disk and config per test, and the helpers to
    drive xblk-system's window (tests/ui/test-menu.py builds on it)."""

    @classmethod
    def setUpClass(cls):
        cls.x = Xvfb()

    @classmethod
    def tearDownClass(cls):
        cls.x.stop()

    def setUp(self):
        super().setUp()
        self.hd = self.path('hd.qcow2')
        xtest.run(['qemu-img', 'create', '-q', '-f', 'qcow2', self.hd, '8G'])
        self.config = self.path('config')
        self.proc = None
        self.env = dict(os.environ, DISPLAY=self.x.display,
                        XDG_CONFIG_HOME=self.config, LIBGL_ALWAYS_SOFTWARE='1',
                        LC_ALL='C')
        self.env.pop('WAYLAND_DISPLAY', None)
        if xtest.sanitized_build():
            # SDL2, libdbus and Mesa keep allocations past SDL_Quit, some
            # in modules already unloaded (no name to suppress): leak
            # checking is off for the windowed program; ASan's memory
            # errors still fail it.
            self.env['ASAN_OPTIONS'] = 'detect_leaks=0'

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        super().tearDown()

    # ---- the program ----

    def start(self, machine='xbox,seed=1', display='sdl', disc=DISC):
        sock = self.path('qmp.sock')
        if os.path.exists(sock):
            os.unlink(sock)
        self.err_path = self.path('stderr-%d.txt' % time.monotonic_ns())
        self.proc = subprocess.Popen(
            [SYSTEM, '-machine', machine, '-display', display,
             '-drive', 'file=%s,format=qcow2,if=ide,index=0' % self.hd,
             '-drive', 'file=%s,format=raw,if=ide,index=1,media=cdrom' % disc,
             '-qmp', 'unix:%s,server=on,wait=off' % sock],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.err_path, 'w'))
        self.q = qmpclient.QMPClient(path=sock, timeout=30).negotiate()
        return self.q

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def wait_exit(self, timeout=60):
        rc = self.proc.wait(timeout)
        self.q.close()
        return rc

    def frame(self):
        return self.q.cmd('x-query-frame')['return']

    def wait_frame(self, n, timeout=60):
        end = time.monotonic() + timeout
        while self.frame()['frame'] < n:
            self.assertLess(time.monotonic(), end, 'frame %d not reached' % n)
            time.sleep(0.02)

    def wait_for(self, fn, what, timeout=30):
        end = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            self.assertLess(time.monotonic(), end, what)
            time.sleep(0.1)

    # ---- X ----

    def xdo(self, *args):
        return subprocess.run(['xdotool'] + list(args), env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=30).stdout

    def window(self):
        out = self.xdo('search', '--sync', '--name', '^xblk')
        return out.split()[0]

    def key(self, *keys):
        self.xdo('windowfocus', '--sync', self.window(), 'key', *keys)

    def title(self):
        return self.xdo('getwindowname', self.window()).strip()

    def geometry(self):
        out = self.xdo('getwindowgeometry', '--shell', self.window())
        g = dict(line.split('=', 1) for line in out.split())
        return int(g['WIDTH']), int(g['HEIGHT'])

    def screenshot(self, name):
        png = self.path(name)
        subprocess.run(['import', '-window', 'root', png], env=self.env,
                       check=True, timeout=30)
        out = subprocess.run(['convert', png, '-format', '%[fx:mean]',
                              'info:'], stdout=subprocess.PIPE, text=True,
                             check=True, timeout=30).stdout
        if os.environ.get('XBLK_UI_SHOTS'):
            shutil.copy(png, os.environ['XBLK_UI_SHOTS'])
        return float(out)

    def picture_rect(self, name):
        """The window's picture, trimmed of its black bars: (w, h, x, y)
        of the game's rectangle within the window."""
        png = self.path(name)
        subprocess.run(['import', '-window', self.window(), png],
                       env=self.env, check=True, timeout=30)
        out = subprocess.run(['convert', png, '-fuzz', '10%', '-trim',
                              '-format', '%w %h %X %Y', 'info:'],
                             stdout=subprocess.PIPE, text=True, check=True,
                             timeout=30).stdout
        w, h, x, y = out.split()
        return int(w), int(h), int(x), int(y)

    def snapshots(self):
        return self.q.cmd('human-monitor-command',
                          {'command-line': 'info snapshots'})['return']


@unittest.skipIf(SKIP, SKIP)
class Window(WindowCase):

    def test_frame_drawn_title_and_ini(self):
        self.start()
        self.wait_frame(120)
        ini = os.path.join(self.config, 'xblk', 'xblk.ini')
        self.assertTrue(os.path.exists(ini))
        self.wait_for(lambda: 'running' in self.title(), 'title: running')
        self.assertEqual(self.title(), 'xblk - XBLK_GUEST_DISC - running')
        mean = self.screenshot('frame.png')
        print('# screenshot mean %.3f' % mean)
        self.assertGreater(mean, 0.05)      # black would be 0
        self.q.cmd('stop')
        self.wait_for(lambda: self.title().endswith('paused'),
                      'title: paused')
        self.q.cmd('quit')
        self.assertEqual(self.wait_exit(), 0, self.stderr())

    def test_slot_save_then_load(self):
        q = self.start()
        self.wait_frame(120)
        q.cmd('stop')
        saved = self.frame()
        self.key('shift+F5')
        self.wait_for(lambda: 'Slot 1' in self.snapshots() or
                      len(self.snapshots().splitlines()) > 2,
                      'the slot state is listed')
        q.cmd('cont')
        self.wait_frame(saved['frame'] + 300)
        q.cmd('stop')
        self.assertNotEqual(self.frame()['frame'], saved['frame'])
        # The first press may only warn (rollback); the second loads.
        self.key('F5')
        time.sleep(0.5)
        self.key('F5')
        self.wait_for(lambda: self.frame()['frame'] == saved['frame'],
                      'back at the saved frame %d' % saved['frame'])
        self.assertEqual(self.frame(), saved)
        self.screenshot('loaded.png')
        self.key('ctrl+q')
        self.assertEqual(self.wait_exit(), 0, self.stderr())

    def test_fullscreen_and_quit(self):
        self.start()
        self.wait_frame(30)
        windowed = self.geometry()
        self.assertNotEqual(windowed, SCREEN)
        self.key('F11')
        self.wait_for(lambda: self.geometry() == SCREEN, 'fullscreen')
        self.key('F11')
        self.wait_for(lambda: self.geometry() == windowed, 'windowed again')
        self.key('ctrl+q')
        self.assertEqual(self.wait_exit(), 0, self.stderr())

    def scaled_rect(self, integer):
        self.write_ini('[window]\ninteger-scale = %s\n' %
                       ('true' if integer else 'false'))
        self.start(machine='xbox,seed=1,realtime=on')
        self.wait_frame(30)
        self.xdo('windowsize', '--sync', self.window(), '1000', '900')
        self.wait_for(lambda: self.geometry() == (1000, 900), 'resized')
        time.sleep(1)                       # a few frames at the new size
        rect = self.picture_rect('scaled.png')
        self.q.cmd('quit')
        self.assertEqual(self.wait_exit(), 0, self.stderr())
        return rect

    def test_aspect_and_integer_scaling(self):
        """A 1000x900 window: the 640x480 picture fits at 4:3 (1000x750,
        bars above and below), or with integer-scale at the largest whole
        multiple (1x: 640x480, centred)."""
        self.assertEqual(self.scaled_rect(False), (1000, 750, 0, 75))
        self.assertEqual(self.scaled_rect(True), (640, 480, 180, 210))

    def write_ini(self, text):
        os.makedirs(os.path.join(self.config, 'xblk'), exist_ok=True)
        with open(os.path.join(self.config, 'xblk', 'xblk.ini'), 'w') as f:
            f.write(text)

    def quit_for_resume(self):
        """A first session paced at 60 frames/s, quit by Ctrl+Q at frame
        F (saving the resume state); the second one started.  Returns
        F and the screenshot mean of the plain game."""
        self.write_ini('[states]\nresume-on-start = true\n'
                       'save-on-exit = true\n')
        # Paced: reaching F by itself would take F/60 s.
        self.start(machine='xbox,seed=1,realtime=on')
        self.wait_frame(240)
        plain = self.screenshot('plain.png')
        quit_frame = self.frame()['frame']
        self.key('ctrl+q')
        self.assertEqual(self.wait_exit(), 0, self.stderr())
        self.start(machine='xbox,seed=1,realtime=on')
        # The question is over the game; the fresh boot runs meanwhile
        # and nothing is loaded until the answer.
        self.wait_frame(30)
        self.window()
        time.sleep(0.5)
        asked = self.screenshot('asked.png')
        print('# plain %.3f, asked %.3f' % (plain, asked))
        self.assertLess(asked, plain * 0.85)    # dimmed, the dialog
        self.assertLess(self.frame()['frame'], quit_frame)
        return quit_frame, asked

    def test_resume_on_start_offers(self):
        quit_frame, _ = self.quit_for_resume()
        self.key('Return')
        t0 = time.monotonic()
        self.wait_for(lambda: self.frame()['frame'] >= quit_frame,
                      'resumed at frame %d or later' % quit_frame,
                      timeout=20)
        # Resumed, not counted up: 240 frames take 4 s paced.
        self.assertLess(time.monotonic() - t0, 2.5)
        self.q.cmd('quit')
        self.assertEqual(self.wait_exit(), 0, self.stderr())

    def test_resume_on_start_start_over(self):
        quit_frame, asked = self.quit_for_resume()
        self.key('Escape')
        time.sleep(0.5)
        f0 = self.frame()['frame']
        self.assertLess(f0, quit_frame)
        self.wait_frame(f0 + 30)                # still counting from 0
        self.assertLess(self.frame()['frame'], quit_frame)
        self.assertGreater(self.screenshot('over.png'), asked)
        self.q.cmd('quit')
        self.assertEqual(self.wait_exit(), 0, self.stderr())

    # Hotkeys with rollback-warning off: one press is one load.
    def start_hotkeys(self, disc=DISC):
        self.write_ini('[states]\nrollback-warning = false\n')
        return self.start(disc=disc)

    def press_until(self, key, fn, what, timeout=30):
        """Presses key every 2 s until fn() holds.  A press that comes
        while the library is still busy (a load finishing, under ASan on
        a loaded host for many seconds) is refused and must be repeated."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.key(key)
            retry = time.monotonic() + 2
            while time.monotonic() < retry:
                if fn():
                    return
                time.sleep(0.05)
        self.fail(what)

    def wait_states(self, n):
        self.wait_for(lambda: len(self.snapshots().splitlines()) - 1 >= n,
                      '%d states listed' % n)

    @staticmethod
    def quiet_frame(n):
        """The first frame from n on that is well away from the game's
        disk writes (a save every 180 frames, done within a few frames).
        A state saved while the machine is stopped with a disk request in
        flight first takes in its completion (docs/savestate.md), so
        `frame == before` comparisons stop away from them."""
        return n if 30 <= n % 180 <= 140 else (n // 180 + 1) * 180 + 30

    def test_undo_save_and_undo_load(self):
        q = self.start_hotkeys()
        self.wait_frame(60)
        q.cmd('stop')
        first = self.frame()
        self.key('shift+F5')
        self.wait_states(1)
        listed = len(self.snapshots().splitlines())
        q.cmd('cont')
        self.wait_frame(first['frame'] + 60)
        q.cmd('stop')
        second = self.frame()
        self.key('shift+F5')                    # replaces, keeps a backup
        self.wait_for(lambda: self.snapshots().splitlines() and
                      len(self.snapshots().splitlines()) > listed,
                      'the backup is kept')
        # F5 loads the second save...
        q.cmd('cont')
        self.wait_frame(self.quiet_frame(second['frame'] + 30))
        q.cmd('stop')
        self.key('F5')
        self.wait_for(lambda: self.frame() == second, 'the second save')
        # ...undo save brings the first back into slot 1.
        self.key('shift+F4')
        time.sleep(1.0)
        q.cmd('cont')
        self.wait_frame(self.quiet_frame(second['frame'] + 30))
        q.cmd('stop')
        before = self.frame()
        self.key('F5')
        self.wait_for(lambda: self.frame() == first,
                      'back at the first save %d' % first['frame'])
        # Undo load: back to the moment before that load.  The load may
        # still be finishing (busy: F4 refused); again is harmless (the
        # undo state goes once used: "No load to undo").
        self.press_until('F4', lambda: self.frame() == before,
                         'back before the load at %d' % before['frame'])
        self.q.cmd('quit')
        self.assertEqual(self.wait_exit(), 0, self.stderr())

    def test_binding_survives_restart(self):
        q = self.start_hotkeys()
        self.wait_frame(60)
        q.cmd('stop')
        saved = self.frame()
        self.key('shift+F6')
        self.wait_states(1)
        self.key('ctrl+q')
        self.assertEqual(self.wait_exit(), 0, self.stderr())
        q = self.start()
        self.wait_frame(saved['frame'] + 30)
        q.cmd('stop')
        self.key('F6')
        self.wait_for(lambda: self.frame() == saved,
                      'slot 2 loaded at %d' % saved['frame'])
        self.q.cmd('quit')
        self.assertEqual(self.wait_exit(), 0, self.stderr())

    def disc(self):
        for dev in self.q.cmd('query-block')['return']:
            if dev['device'] == 'ide0-cd1':
                return dev.get('inserted', {}).get('file')

    def change_disc(self, path):
        self.q.cmd('blockdev-change-medium',
                   {'device': 'ide0-cd1', 'filename': path, 'format': 'raw'})
        self.assertEqual(self.disc(), path)

    def test_disc_mismatch(self):
        """A state saved with disc A, loaded by F5 with disc B inserted:
        the question comes first; "Insert that disc and load" puts A back
        and loads, "Cancel" leaves everything, "Load anyway" loads with B."""
        a, b = self.path('a.iso'), self.path('b.iso')
        shutil.copy(DISC, a)
        shutil.copy(DISC, b)
        q = self.start_hotkeys(disc=a)
        self.wait_frame(120)
        q.cmd('stop')
        saved = self.frame()
        self.key('shift+F5')
        self.wait_states(1)
        self.change_disc(b)
        q.cmd('cont')
        self.wait_frame(saved['frame'] + 60)
        q.cmd('stop')
        later = self.frame()
        plain = self.screenshot('plain.png')

        # Cancel (Esc): nothing loaded, B stays.
        self.key('F5')
        time.sleep(1)
        self.assertLess(self.screenshot('asked.png'), plain * 0.85)
        self.assertEqual(self.frame(), later)
        self.key('Escape')
        time.sleep(0.5)
        self.assertEqual(self.frame(), later)
        self.assertEqual(self.disc(), b)

        # Load anyway (the middle choice): loaded, B stays.
        self.key('F5')
        time.sleep(0.5)
        self.key('Left')
        self.key('Return')
        self.wait_for(lambda: self.frame() == saved, 'loaded with disc B')
        self.assertEqual(self.disc(), b)

        # Insert that disc and load (the first): A is back, loaded.
        q.cmd('cont')
        self.wait_frame(saved['frame'] + 60)
        q.cmd('stop')
        self.key('F5')
        time.sleep(0.5)
        self.key('Left', 'Left')
        self.key('Return')
        self.wait_for(lambda: self.frame() == saved, 'loaded with disc A')
        self.assertEqual(self.disc(), a)
        # The same state now loads without a question.
        q.cmd('cont')
        self.wait_frame(saved['frame'] + 60)
        q.cmd('stop')
        self.key('F5')
        self.wait_for(lambda: self.frame() == saved, 'loaded at once')
        self.q.cmd('quit')
        self.assertEqual(self.wait_exit(), 0, self.stderr())

    def test_display_sdl_needs_a_display(self):
        env = dict(self.env)
        env.pop('DISPLAY')
        p = subprocess.run([SYSTEM, '-machine', 'xbox', '-display', 'sdl'],
                           env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, 'xblk-system: Could not initialize '
                         'SDL(No available video device) - exiting\n')


if __name__ == '__main__':
    xtest.main()
