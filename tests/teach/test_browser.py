"""The HTML report and the SVG graph render in a real headless Chromium; the screenshot shows the graph."""

from __future__ import annotations

import re
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


def screenshot(tmp_path: Path, page: Path, size: tuple[int, int] = (1200, 900)) -> tuple[int, int, list[list[Pixel]]]:
    chromium = require_tool("chromium")
    png = tmp_path / (page.stem + ".png")
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", f"--window-size={size[0]},{size[1]}",
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


# ------------------------------------------------------------------------------------------------ real build
# What the page looks like as laid out by Chromium: a script (in a test-only copy of the page; the report and
# the SVG themselves have none) measures every label, box, bar and edge and writes what overlaps into the DOM,
# which --dump-dom prints.
_MEASURE = """
<pre id="measured"></pre>
<script>
(function () {
  function boxes(sel) {
    return Array.from(document.querySelectorAll(sel)).map(function (e) {
      var r = e.getBoundingClientRect();
      return {x: r.left, y: r.top, w: r.width, h: r.height, t: (e.textContent || e.tagName).slice(0, 50)};
    });
  }
  function meet(a, b) {
    return a.x < b.x + b.w - 0.5 && b.x < a.x + a.w - 0.5 && a.y < b.y + b.h - 0.5 && b.y < a.y + a.h - 0.5;
  }
  function pairs(list, other, out, what) {
    for (var i = 0; i < list.length; i++) {
      for (var j = other ? 0 : i + 1; j < (other || list).length; j++) {
        var b = (other || list)[j];
        if (meet(list[i], b)) out.push(what + ": " + list[i].t + " / " + b.t);
      }
    }
  }
  var res = {labels: 0, nodes: 0, legend: 0, chart: 0, edges: 0, overlaps: [], on_lines: []};
  var labels = boxes(".edge-label rect"), nodes = boxes(".node rect"), legend = boxes("g.legend");
  var chartLabels = boxes(".layer-label"), bars = boxes("rect.bar");
  res.labels = labels.length; res.nodes = nodes.length; res.legend = legend.length; res.chart = chartLabels.length;
  pairs(labels, null, res.overlaps, "label/label");
  pairs(labels, nodes, res.overlaps, "label/box");
  pairs(nodes, null, res.overlaps, "box/box");
  pairs(legend, null, res.overlaps, "legend/legend");
  pairs(chartLabels, null, res.overlaps, "layer label/layer label");
  pairs(chartLabels, bars, res.overlaps, "layer label/bar");
  var paths = document.querySelectorAll("path.edge");
  res.edges = paths.length;
  var rects = document.querySelectorAll(".edge-label rect");
  for (var p = 0; p < paths.length; p++) {
    var path = paths[p], len = path.getTotalLength(), ctm = path.getScreenCTM();
    for (var s = 0; s <= len; s += 1.5) {
      var pt = path.getPointAtLength(s), q = new DOMPoint(pt.x, pt.y).matrixTransform(ctm);
      for (var k = 0; k < rects.length; k++) {
        var r = rects[k].getBoundingClientRect();
        if (q.x > r.left + 1 && q.x < r.right - 1 && q.y > r.top + 1 && q.y < r.bottom - 1) {
          res.on_lines.push(rects[k].parentNode.textContent.slice(0, 50));
          s = len + 1;
          break;
        }
      }
    }
  }
  document.getElementById("measured").textContent = JSON.stringify(res);
})();
</script>
"""


def measure(tmp_path: Path, page_text: str, name: str) -> tuple[dict[str, object], str]:
    """(what _MEASURE found, Chromium's console/log output) for ``page_text`` (HTML, or an SVG put in a page)."""
    import html as html_mod
    import json

    chromium = require_tool("chromium")
    if page_text.lstrip().startswith("<svg"):
        page_text = f"<!DOCTYPE html><html><body style='margin:0'>{page_text}</body></html>"
    page = tmp_path / f"{name}.html"
    page.write_text(page_text.replace("</body>", _MEASURE + "</body>"))
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", "--enable-logging=stderr", "--v=0",
         f"--user-data-dir={tmp_path / ('profile-' + name)}", "--window-size=1200,2000", "--dump-dom",
         page.resolve().as_uri()], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'<pre id="measured">(.*?)</pre>', proc.stdout, re.S)
    assert m and m.group(1), proc.stdout[-2000:]
    return json.loads(html_mod.unescape(m.group(1))), proc.stderr


def console_messages(log: str) -> list[str]:
    """Chromium's log lines for the page's console (errors, failed loads, uncaught exceptions)."""
    return [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_measuring_finds_a_label_on_a_line_and_a_console_error(tmp_path: Path) -> None:
    bad = ('<svg xmlns="http://www.w3.org/2000/svg" width="300" height="200">'
           '<path class="edge" d="M150,10 L150,190" stroke="#000" fill="none"/>'
           '<g class="edge-label"><rect x="100" y="90" width="100" height="16" fill="#fff"/>'
           '<text x="150" y="102" text-anchor="middle">COPY on the line</text></g>'
           '<g class="node"><rect x="110" y="95" width="60" height="30"/></g></svg>')
    found, log = measure(tmp_path, bad.replace("</svg>", "</svg><script>console.error('boom')</script>"), "bad")
    assert found["on_lines"] == ["COPY on the line"]
    assert any("label/box" in o for o in found["overlaps"])  # type: ignore[union-attr]
    assert any("boom" in line for line in console_messages(log)), log[-2000:]


def test_real_report_and_graph_in_chromium_no_overlaps_no_console_errors(tmp_path: Path) -> None:
    import shutil

    from minibuild.api import build
    from minibuild.teach.discard import build_report
    from minibuild.store import Store
    from minibuild.teach.report import CHART_LEGEND, render_html
    from tests.teach.test_lesson_views import LESSON, NODE_NGINX

    require_tool("chromium")
    ctx = tmp_path / "ctx"
    shutil.copytree(NODE_NGINX, ctx)
    store = tmp_path / "s"
    result = build(ctx, dockerfile_text=LESSON, store=store)
    df = parse_dockerfile(LESSON)
    report = build_report(Store.open(store), result, df, dockerfile_name="Dockerfile.lesson")
    page = render_html(report)
    svg = to_svg(stage_graph(df), title="Dockerfile.lesson")
    for name, text, labels in (("report", page, 2), ("graph", svg, 2)):
        found, log = measure(tmp_path, text, name)
        assert found["labels"] == labels and found["nodes"] == 4 and found["edges"] == 4, found
        assert found["legend"] >= 4, found
        assert found["overlaps"] == [] and found["on_lines"] == [], found
        assert console_messages(log) == [], log[-2000:]
    # the screenshot is not blank, and every colour of the layer chart is painted in its legend too
    (tmp_path / "report.html").write_text(page)
    width, height, rows = screenshot(tmp_path, tmp_path / "report.html", size=(1200, 2000))
    non_white = sum(1 for row in rows for px in row if px != (255, 255, 255))
    assert non_white > 20000, non_white
    legend_y = _legend_row(rows, [rgb(c) for c, _ in CHART_LEGEND])
    assert legend_y is not None, "no row of the screenshot shows all the chart's legend colours"
    (tmp_path / "graph.svg").write_text(svg)
    _w, _h, grows = screenshot(tmp_path, tmp_path / "graph.svg")
    assert count(grows, rgb(STAGE_FILL), (0, 0, _w, _h)) > 3000


def _legend_row(rows: list[list[Pixel]], colors: list[Pixel]) -> int | None:
    """The first y where a 14x10 swatch of every colour sits side by side (the chart's legend)."""
    for y, row in enumerate(rows):
        present = {c for c in colors if sum(1 for px in row if px == c) >= 12}
        if len(present) == len(colors):
            return y
    return None
