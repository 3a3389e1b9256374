#!/usr/bin/env python3
"""probe_png.py OUT.png [--x X0:X1] [--min F] [--ink Y0:Y1 ...] [--blank Y0:Y1 ...]

Probe a screenshot (render.sh) for where things were drawn, not for how they
look: a pixel is ink when some channel differs from white by more than 40
(light grid lines are not ink). The page must hold ink at all; each --ink band
of rows (y from Y0 to Y1, exclusive) must be at least F ink (default 0.2) over
the columns X0 to X1 (default: all); each --blank band at most 0.01. Prints
each band's share of ink; exit 0 when every band is as expected, 1 otherwise.
A PNG reader of its own (8-bit RGB or RGBA, non-interlaced): only the
standard library."""
import struct
import sys
import zlib


def read_png(path):
    """The image as (width, height, rows of (r, g, b) tuples)."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, head = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    width, height, depth, color, _, _, interlace = head
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError("only 8-bit RGB(A), non-interlaced PNGs")
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(width)])
        prev = line
    return width, height, rows


def ink_share(rows, y0, y1, x0, x1):
    """The share of ink pixels in rows [y0, y1), columns [x0, x1)."""
    total = ink = 0
    for row in rows[y0:y1]:
        for r, g, b in row[x0:x1]:
            total += 1
            ink += max(255 - r, 255 - g, 255 - b) > 40
    return ink / total if total else 0.0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    width, height, rows = read_png(argv[1])
    x0, x1, least, bands, i = 0, width, 0.2, [], 2
    while i < len(argv):
        opt, val = argv[i], argv[i + 1] if i + 1 < len(argv) else ""
        if opt == "--x":
            x0, x1 = (int(v) for v in val.split(":"))
        elif opt == "--min":
            least = float(val)
        elif opt in ("--ink", "--blank"):
            y0, y1 = (int(v) for v in val.split(":"))
            bands.append((opt[2:], y0, y1))
        else:
            print("probe_png.py: unknown option " + opt, file=sys.stderr)
            return 2
        i += 2
    ok = True
    page = ink_share(rows, 0, height, 0, width)
    print("page %dx%d: %.3f ink" % (width, height, page))
    if page < 0.01:
        print("probe_png.py: the page is blank", file=sys.stderr)
        ok = False
    for kind, y0, y1 in bands:
        share = ink_share(rows, y0, y1, x0, x1)
        good = share >= least if kind == "ink" else share <= 0.01
        print("%s rows %d-%d, columns %d-%d: %.3f ink%s" % (kind, y0, y1, x0, x1, share, "" if good else "  <- wrong"))
        ok = ok and good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
