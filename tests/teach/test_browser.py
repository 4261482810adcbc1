"""The HTML report and the SVG graph render in a real headless Chromium; the screenshot shows the graph."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

from minibuild.dockerfile import parse_dockerfile
from minibuild.teach.graph import stage_graph
from minibuild.teach.render import IMAGE_FILL, SKIP_FILL, STAGE_FILL, TARGET_FILL, to_svg
from minibuild.teach.report import write_report
from tests.support import require_tool
from tests.teach.samples import DOCKERFILE, sample_report

Pixel = tuple[int, int, int]


def decode_png(data: bytes) -> tuple[int, int, list[list[Pixel]]]:
    """(width, height, rows of RGB) of an 8-bit RGB/RGBA PNG, decoded with zlib only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    bpp = 4 if ctype == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[list[Pixel]] = []
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ftype == 2:  # Up: no dependency inside the row
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif ftype != 0:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                if ftype == 1:
                    line[i] = (line[i] + a) & 0xFF
                elif ftype == 3:
                    line[i] = (line[i] + (a + b) // 2) & 0xFF
                else:
                    c = prev[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(list(zip(line[0::bpp], line[1::bpp], line[2::bpp])))
        prev = line
    return width, height, rows


def rgb(color: str) -> Pixel:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def screenshot(tmp_path: Path, page: Path) -> tuple[int, int, list[list[Pixel]]]:
    chromium = require_tool("chromium")
    png = tmp_path / (page.stem + ".png")
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1200,900",
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and png.exists(), proc.stderr[-2000:]
    return decode_png(png.read_bytes())


def count(rows: list[list[Pixel]], color: Pixel, region: tuple[int, int, int, int]) -> int:
    """Pixels in region (x0, y0, x1, y1) within 3 levels per channel of ``color``."""
    x0, y0, x1, y1 = region
    near = {(color[0] + i, color[1] + j, color[2] + k)
            for i in range(-3, 4) for j in range(-3, 4) for k in range(-3, 4)}
    return sum(1 for row in rows[y0:y1] for px in row[x0:x1] if px in near)


def test_decode_png_helper_on_a_hand_made_png() -> None:
    # 2x1 RGB: red, green; filter type 1 (Sub) on the only row
    raw = bytes([1, 255, 0, 0, (0 - 255) & 0xFF, 255, 0])
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    assert decode_png(png) == (2, 1, [[(255, 0, 0), (0, 255, 0)]])


def test_svg_graph_renders_in_chromium(tmp_path: Path) -> None:
    svg = tmp_path / "graph.svg"
    svg.write_text(to_svg(stage_graph(parse_dockerfile(DOCKERFILE)), title="sample graph"))
    width, height, rows = screenshot(tmp_path, svg)
    assert (width, height) == (1200, 900)
    whole = (0, 0, width, height)
    non_white = sum(1 for row in rows for px in row if px != (255, 255, 255))
    assert non_white > 5000, non_white
    # each kind of box was painted with its fill colour (boxes are ~150x60 px)
    assert count(rows, rgb(STAGE_FILL), whole) > 3000
    assert count(rows, rgb(TARGET_FILL), whole) > 1500
    assert count(rows, rgb(IMAGE_FILL), whole) > 1500
    assert count(rows, rgb(SKIP_FILL), whole) > 1500


def test_html_report_renders_in_chromium_with_the_graph(tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    write_report(sample_report(), html)
    width, height, rows = screenshot(tmp_path, html)
    # the stage graph comes right after the headline and the totals: within the first screen
    graph_region = (0, 200, width, height)
    stage_px = count(rows, rgb(STAGE_FILL), graph_region)
    assert stage_px > 3000, stage_px
    assert count(rows, rgb(IMAGE_FILL), graph_region) > 1500
    assert count(rows, rgb(SKIP_FILL), graph_region) > 1500
    top = sum(1 for row in rows[:200] for px in row if px != (255, 255, 255))
    assert top > 2000  # the headline and the totals were drawn too
