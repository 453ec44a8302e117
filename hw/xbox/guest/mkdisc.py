#!/usr/bin/env python3
"""mkdisc.py - writes the reference guest's disc image (build/guest/disc.iso).

The image is a sequence of 2048-byte sectors:

  sector 0        the guest's header: magic "XBLKDSC1", where the sprite
                  sheet and the level data are, the sheet's geometry and
                  colour key, 32 sprite rectangles, FNV-1a checksum
  sectors 16-20   an ISO 9660 volume (primary volume descriptor, set
                  terminator, path tables, root directory) naming the two
                  data files, so ordinary tools can list and extract them
  sector 24 on    SPRITES.RAW: a 256x256 XRGB8888 sheet drawn here
  after it        LEVEL.DAT: a 40x30 tile level

Everything is drawn procedurally from fixed constants (no randomness from
the host), so every build produces the same bytes.  Python 3 stdlib only.
README.md beside this file documents the formats.
"""

import argparse
import os
import struct
import sys

SECTOR = 2048
HEADER_MAGIC = b"XBLKDSC1"
LEVEL_MAGIC = b"XLVL"

SHEET_W = SHEET_H = 256
SHEET_PITCH = SHEET_W * 4
KEY = 0x00FF00FF                # colour key: magenta
CELL = 16
NUM_SPRITES = 32

LEVEL_W, LEVEL_H = 40, 30
SPAWN = (20, 15)
ENEMIES, GEMS = 6, 4

ISO_PVD_SECTOR = 16
SHEET_LBA = 24
SHEET_BYTES = SHEET_W * SHEET_H * 4
SHEET_SECTORS = SHEET_BYTES // SECTOR
LEVEL_LBA = SHEET_LBA + SHEET_SECTORS

# Sprite numbers, as assets.h names them.
SPR_PLAYER, SPR_ENEMY, SPR_GEM, SPR_DISK, SPR_DIGIT0 = 8, 10, 12, 13, 16


def fnv1a(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


class Lcg:
    """A fixed 32-bit LCG: the same numbers on every Python version."""

    def __init__(self, seed):
        self.s = seed & 0xFFFFFFFF

    def below(self, n):
        self.s = (self.s * 1664525 + 1013904223) & 0xFFFFFFFF
        return (self.s >> 16) * n >> 16


def rgb(r, g, b):
    return (max(0, min(255, int(r))) << 16 | max(0, min(255, int(g))) << 8 |
            max(0, min(255, int(b))))


# ---- the sprite sheet ---------------------------------------------------

class Sheet:
    def __init__(self):
        self.px = [KEY] * (SHEET_W * SHEET_H)

    def put(self, x, y, c):
        if 0 <= x < SHEET_W and 0 <= y < SHEET_H:
            self.px[y * SHEET_W + x] = c

    def cell_origin(self, n):
        return (n % 16) * CELL, (n // 16) * CELL

    def to_bytes(self):
        return struct.pack("<%dI" % len(self.px), *self.px)


def draw_floor(sheet):
    ox, oy = sheet.cell_origin(0)
    for y in range(CELL):
        for x in range(CELL):
            shade = 34 + ((x * 7 + y * 13) % 5) + (4 if (x + y) % 8 == 0 else 0)
            sheet.put(ox + x, oy + y, rgb(shade, shade + 6, shade + 22))


WALL_COLOURS = [
    (150, 100, 60), (120, 80, 50), (100, 120, 140), (80, 140, 90),
    (160, 80, 80), (120, 120, 120), (70, 70, 160),
]


def draw_wall(sheet, n, colour):
    """Tile n (1-7): bricks with a bevel, each kind its own colour."""
    ox, oy = sheet.cell_origin(n)
    r, g, b = colour
    for y in range(CELL):
        for x in range(CELL):
            row = y // 4
            mortar = y % 4 == 3 or (x + (row % 2) * 4) % 8 == 7
            f = 0.55 if mortar else 1.0 + 0.08 * ((x * 3 + y * 5 + n) % 3 - 1)
            if x == 0 or y == 0:
                f *= 1.25
            if x == CELL - 1 or y == CELL - 1:
                f *= 0.7
            sheet.put(ox + x, oy + y, rgb(r * f, g * f, b * f))


def draw_player(sheet, n, frame):
    """A round cyan figure; the second frame blinks and shifts its feet."""
    ox, oy = sheet.cell_origin(n)
    for y in range(CELL):
        for x in range(CELL):
            dx, dy = x - 7.5, y - 7.0
            d2 = dx * dx + dy * dy
            if d2 <= 36:
                light = 1.0 - (dx + dy) / 24.0
                sheet.put(ox + x, oy + y, rgb(40 * light, 190 * light, 240 * light))
            elif d2 <= 49:
                sheet.put(ox + x, oy + y, rgb(10, 60, 90))
    eye_h = 1 if frame else 2
    for ex in (5, 9):
        for ey in range(5, 5 + eye_h):
            sheet.put(ox + ex, oy + ey, rgb(255, 255, 255))
            sheet.put(ox + ex + 1, oy + ey, rgb(0, 0, 0))
    for fx in ((4, 10) if frame == 0 else (5, 9)):
        for x in range(fx, fx + 2):
            sheet.put(ox + x, oy + 14, rgb(20, 80, 120))
            sheet.put(ox + x, oy + 15, rgb(20, 80, 120))


def draw_enemy(sheet, n, frame):
    """A red spiky blob whose spikes alternate between frames."""
    ox, oy = sheet.cell_origin(n)
    for y in range(CELL):
        for x in range(CELL):
            dx, dy = x - 7.5, y - 7.5
            d2 = dx * dx + dy * dy
            spike = ((x + y + frame) % 4 == 0) and d2 <= 56
            if d2 <= 30 or spike:
                shade = 1.0 - d2 / 90.0
                sheet.put(ox + x, oy + y, rgb(240 * shade, 50 * shade, 40 * shade))
    for ex in (5, 9):
        sheet.put(ox + ex, oy + 6, rgb(255, 240, 80))
        sheet.put(ox + ex + 1, oy + 6, rgb(255, 240, 80))


def draw_gem(sheet, n):
    """A yellow diamond with a highlight."""
    ox, oy = sheet.cell_origin(n)
    for y in range(CELL):
        for x in range(CELL):
            d = abs(x - 7.5) + abs(y - 7.5)
            if d <= 7:
                f = 1.2 if (x < 8 and y < 8) else 0.85
                sheet.put(ox + x, oy + y, rgb(250 * f, 210 * f, 40 * f))
    sheet.put(ox + 5, oy + 5, rgb(255, 255, 255))
    sheet.put(ox + 6, oy + 5, rgb(255, 255, 255))


def draw_disk(sheet, n):
    """A green floppy disk: the "saving" indicator."""
    ox, oy = sheet.cell_origin(n)
    for y in range(1, 15):
        for x in range(1, 15):
            c = rgb(40, 170, 60)
            if 2 <= y <= 6 and 4 <= x <= 11:
                c = rgb(200, 200, 210)
            if 10 <= y <= 13 and 3 <= x <= 12:
                c = rgb(240, 240, 240)
            sheet.put(ox + x, oy + y, c)


# Seven-segment patterns of 0-9: segments a-g as bits 0-6.
SEGMENTS = [0x3F, 0x06, 0x5B, 0x4F, 0x66, 0x6D, 0x7D, 0x07, 0x7F, 0x6F]
SEG_RECTS = [(2, 1, 8, 2), (9, 2, 2, 6), (9, 8, 2, 6), (2, 13, 8, 2),
             (1, 8, 2, 6), (1, 2, 2, 6), (2, 7, 8, 2)]


def draw_digit(sheet, n, d):
    """A 12x16 seven-segment digit, white with a dark shadow."""
    ox, oy = sheet.cell_origin(n)
    for shadow, colour in ((1, rgb(20, 20, 30)), (0, rgb(245, 245, 235))):
        for s, (x0, y0, w, h) in enumerate(SEG_RECTS):
            if SEGMENTS[d] & (1 << s):
                for y in range(y0, y0 + h):
                    for x in range(x0, x0 + w):
                        sheet.put(ox + x + shadow, oy + y + shadow, colour)


def make_sheet():
    sheet = Sheet()
    draw_floor(sheet)
    for i, colour in enumerate(WALL_COLOURS):
        draw_wall(sheet, 1 + i, colour)
    draw_player(sheet, SPR_PLAYER, 0)
    draw_player(sheet, SPR_PLAYER + 1, 1)
    draw_enemy(sheet, SPR_ENEMY, 0)
    draw_enemy(sheet, SPR_ENEMY + 1, 1)
    draw_gem(sheet, SPR_GEM)
    draw_disk(sheet, SPR_DISK)
    for d in range(10):
        draw_digit(sheet, SPR_DIGIT0 + d, d)
    return sheet.to_bytes()


def sprite_rects():
    rects = []
    for i in range(NUM_SPRITES):
        w = 12 if SPR_DIGIT0 <= i < SPR_DIGIT0 + 10 else CELL
        rects.append(((i % 16) * CELL, (i // 16) * CELL, w, CELL))
    return rects


# ---- the level ----------------------------------------------------------

def make_level():
    """Border walls, a few long platforms and scattered pillars; the spawn
    area stays open."""
    rng = Lcg(0x584C564C)
    t = [[0] * LEVEL_W for _ in range(LEVEL_H)]
    for x in range(LEVEL_W):
        t[0][x] = t[LEVEL_H - 1][x] = 1
    for y in range(LEVEL_H):
        t[y][0] = t[y][LEVEL_W - 1] = 1
    for i in range(8):
        y = 3 + rng.below(LEVEL_H - 6)
        x = 2 + rng.below(LEVEL_W - 14)
        kind = 2 + rng.below(6)
        for dx in range(4 + rng.below(8)):
            t[y][x + dx] = kind
    for i in range(14):
        x = 2 + rng.below(LEVEL_W - 4)
        y = 2 + rng.below(LEVEL_H - 6)
        kind = 2 + rng.below(6)
        for dy in range(1 + rng.below(3)):
            t[y + dy][x] = kind
    sx, sy = SPAWN
    for y in range(sy - 2, sy + 3):
        for x in range(sx - 3, sx + 4):
            t[y][x] = 0
    head = LEVEL_MAGIC + struct.pack("<8H4x", LEVEL_W, LEVEL_H, CELL, CELL,
                                     sx, sy, ENEMIES, GEMS)
    return head + bytes(v for row in t for v in row)


# ---- the guest's header -------------------------------------------------

def make_header(level_bytes):
    h = bytearray(SECTOR)
    struct.pack_into("<8sIIIIIIIIIII", h, 0, HEADER_MAGIC, 1, SECTOR,
                     SHEET_LBA, SHEET_BYTES, SHEET_W, SHEET_H, SHEET_PITCH,
                     KEY, LEVEL_LBA, level_bytes, NUM_SPRITES)
    for i, r in enumerate(sprite_rects()):
        struct.pack_into("<4H", h, 64 + i * 8, *r)
    struct.pack_into("<I", h, SECTOR - 4, fnv1a(bytes(h[:SECTOR - 4])))
    return bytes(h)


# ---- ISO 9660 -----------------------------------------------------------

def both16(v):
    return struct.pack("<H", v) + struct.pack(">H", v)


def both32(v):
    return struct.pack("<I", v) + struct.pack(">I", v)


# A fixed date keeps the image reproducible: 2024-01-01 00:00:00 UTC.
DIR_DATE = bytes([124, 1, 1, 0, 0, 0, 0])
VOL_DATE = b"2024010100000000\x00"
NO_DATE = b"0000000000000000\x00"


def dir_record(name, lba, size, is_dir):
    n = len(name)
    rec = (bytes([0, 0]) + both32(lba) + both32(size) + DIR_DATE +
           bytes([2 if is_dir else 0, 0, 0]) + both16(1) + bytes([n]) + name)
    if n % 2 == 0:
        rec += b"\x00"
    return bytes([len(rec)]) + rec[1:]


def text(s, n):
    return s.encode("ascii").ljust(n, b" ")


def make_iso_sectors(total_sectors, files):
    """PVD (16), terminator (17), L and M path tables (18, 19) and the
    root directory (20); files: [(name, lba, size)]."""
    root_lba, lpt_lba, mpt_lba = 20, 18, 19
    root = dir_record(b"\x00", root_lba, SECTOR, True)
    root_dir = bytearray(root + dir_record(b"\x01", root_lba, SECTOR, True))
    for name, lba, size in sorted(files):
        root_dir += dir_record(name.encode("ascii") + b";1", lba, size, False)
    root_dir = bytes(root_dir).ljust(SECTOR, b"\x00")
    ptable_l = bytes([1, 0]) + struct.pack("<IH", root_lba, 1) + b"\x00\x00"
    ptable_m = bytes([1, 0]) + struct.pack(">IH", root_lba, 1) + b"\x00\x00"

    pvd = bytearray(SECTOR)
    pvd[0:8] = b"\x01CD001\x01\x00"
    pvd[8:40] = text("XBLK", 32)
    pvd[40:72] = text("XBLK_GUEST_DISC", 32)
    pvd[80:88] = both32(total_sectors)
    pvd[120:124] = both16(1)
    pvd[124:128] = both16(1)
    pvd[128:132] = both16(SECTOR)
    pvd[132:140] = both32(len(ptable_l))
    pvd[140:144] = struct.pack("<I", lpt_lba)
    pvd[148:152] = struct.pack(">I", mpt_lba)
    pvd[156:190] = root
    pvd[190:318] = text("", 128)
    pvd[318:446] = text("XBLK", 128)
    pvd[446:574] = text("", 128)
    pvd[574:702] = text("XBLK MKDISC.PY", 128)
    pvd[702:813] = text("", 111)
    pvd[813:830] = VOL_DATE
    pvd[830:847] = VOL_DATE
    pvd[847:864] = NO_DATE
    pvd[864:881] = NO_DATE
    pvd[881] = 1

    term = bytearray(SECTOR)
    term[0:7] = b"\xffCD001\x01"
    return {
        16: bytes(pvd), 17: bytes(term),
        lpt_lba: ptable_l.ljust(SECTOR, b"\x00"),
        mpt_lba: ptable_m.ljust(SECTOR, b"\x00"),
        root_lba: root_dir,
    }


def make_image():
    sheet = make_sheet()
    level = make_level()
    level_sectors = (len(level) + SECTOR - 1) // SECTOR
    total = LEVEL_LBA + level_sectors
    sectors = {0: make_header(len(level))}
    sectors.update(make_iso_sectors(total, [
        ("SPRITES.RAW", SHEET_LBA, len(sheet)),
        ("LEVEL.DAT", LEVEL_LBA, len(level)),
    ]))
    image = bytearray(total * SECTOR)
    for lba, data in sectors.items():
        assert len(data) == SECTOR
        assert not (SHEET_LBA <= lba < total), "metadata overlaps data"
        image[lba * SECTOR:(lba + 1) * SECTOR] = data
    image[SHEET_LBA * SECTOR:SHEET_LBA * SECTOR + len(sheet)] = sheet
    image[LEVEL_LBA * SECTOR:LEVEL_LBA * SECTOR + len(level)] = level
    return bytes(image)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", required=True, help="image to write")
    args = ap.parse_args()
    image = make_image()
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(image)
    os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
