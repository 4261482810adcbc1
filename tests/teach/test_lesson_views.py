"""One build, one story: build --explain, plan, graph, the report (JSON and HTML) and history name and count
the steps the same way ([stage N/M], FROM = 1 of M), on the node-nginx example and on a multi-stage build
with a cache miss in the middle."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from minibuild.store import Store
from minibuild.teach.report import layer_chart_svg, render_html, report_from_json
from minibuild.view import ImageView

NODE_NGINX = Path(__file__).resolve().parents[2] / "examples" / "node-nginx"
ENV = {**os.environ, "MINIBUILD_FIXTURE_PADDING": "0"}

# ENV lines between the filesystem steps: a step's place in the Dockerfile is not its [stage N/M] number
LESSON = """\
FROM node:22 AS build
ENV CI=1
WORKDIR /app
COPY package.json /app/
ENV APP_MODE=lesson
RUN npm install
COPY . .
RUN npm run build
RUN rm -rf /app/src

FROM nginx:alpine
WORKDIR /app
COPY --from=build /app/package.json /app/
COPY nginx.conf /etc/nginx/conf.d/site.conf.bak
RUN rm /etc/nginx/conf.d/site.conf.bak
COPY --from=build /app/dist /usr/share/nginx/html
EXPOSE 80
"""

STEP = re.compile(r"#(\d+) (\[[^\]]+\]) (.*)")


def _mb(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(store), *args], capture_output=True,
                       text=True, env=ENV, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def _blocks(text: str) -> tuple[list[tuple[int, str, str]], dict[int, str]]:
    """(#N, [label], instruction) of every listed step, and the HIT/MISS line of each #N."""
    steps, why = [], {}
    for line in text.splitlines():
        m = STEP.fullmatch(line)
        if m:
            steps.append((int(m.group(1)), m.group(2), m.group(3)))
            continue
        m = re.fullmatch(r"#(\d+) ((?:HIT|MISS).*)", line)
        if m:
            why[int(m.group(1))] = m.group(2)
    return steps, why


def _check_one_story(tmp_path: Path, ctx: Path, dockerfile: str) -> tuple[Path, dict[str, object]]:
    store = tmp_path / "s"
    _mb(store, "build", str(ctx), "-f", dockerfile, "--progress", "plain")
    app = ctx / "src" / "App.jsx"
    app.write_text(app.read_text() + "\n// one edit\n")  # COPY . . misses, the npm step before it still hits
    planned, plan_why = _blocks(_mb(store, "plan", str(ctx), "-f", dockerfile).stdout)
    plan_doc = json.loads(_mb(store, "plan", str(ctx), "-f", dockerfile, "--json").stdout)
    built = _mb(store, "build", str(ctx), "-f", dockerfile, "--progress", "plain", "--explain", "-t", "lesson:1",
                "--report", str(tmp_path / "r.json"))
    steps, why = _blocks(built.stderr)
    # plan lists the same steps under the same #N and [stage N/M] as the build
    assert planned == steps
    numbered = [s for s in plan_doc["steps"] if s["vertex"] is not None]
    assert [(f"[{s['prefix'] + ' ' if s['prefix'] else ''}{s['vertex']}/{s['vertices']}]", s["instruction"])
            for s in numbered] == [(lab, ins) for _n, lab, ins in steps]
    # [stage N/M]: per stage N runs 1..M, FROM first, numbered in order
    stages: dict[str, list[tuple[int, int, str]]] = {}
    for _n, label, instr in steps:
        m = re.fullmatch(r"\[(?:(\S+) )?(\d+)/(\d+)\]", label)
        assert m, label
        stages.setdefault(m.group(1) or "", []).append((int(m.group(2)), int(m.group(3)), instr))
    for rows in stages.values():
        total = rows[0][1]
        assert [r[0] for r in rows] == list(range(1, total + 1)) and {r[1] for r in rows} == {total}
        assert rows[0][2].startswith("FROM ")
    # the step a cascade blames is one the build listed, named with its own [stage N/M] and instruction
    cascades = 0
    for n, label, _instr in steps:
        m = re.fullmatch(r"MISS: parent step (\d+)/(\d+) \((.*)\) missed", why[n])
        if not m:
            continue
        cascades += 1
        prefix = label[1:].rsplit(" ", 1)[0] + " " if " " in label else ""
        blamed = f"[{prefix}{m.group(1)}/{m.group(2)}]"
        assert (blamed, m.group(3)) in {(lab, ins) for _n, lab, ins in steps}, (why[n], steps)
        assert why[next(k for k, lab, _i in steps if lab == blamed)].startswith("MISS")
        assert plan_why[n] == why[n]
    assert cascades >= 1
    copy = next(n for n, _l, instr in steps if instr == "COPY . .")
    assert why[copy].startswith("MISS: src/App.jsx content changed")
    npm = next(n for n, _l, instr in steps if instr.startswith("RUN npm"))
    assert why[npm] == plan_why[npm] == "HIT"
    # graph: "M steps" in each stage box, the same M
    mermaid = _mb(store, "graph", str(ctx), "-f", dockerfile).stdout
    boxes = re.findall(r's\d+\["([^"]+)"\]', mermaid)
    counted = [int(m.group(1)) for b in boxes if (m := re.search(r"<br/>(\d+) steps?", b))]
    assert counted == [rows[0][1] for rows in stages.values()], (mermaid, stages)
    # the report: each stage's step count and the step labels of its rows are the build's
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [s["vertices"] for s in doc["stages"]] == counted
    assert [st["step"] for s in doc["stages"] for st in s["steps"] if st["step"]] == [lab for _n, lab, _i in steps]
    assert [st["instruction"] for s in doc["stages"] for st in s["steps"] if st["step"]] == [
        i for _n, _l, i in steps]
    html = tmp_path / "r.html"
    _mb(store, "build", str(ctx), "-f", dockerfile, "--progress", "plain", "--report", str(html))
    page = html.read_text()
    missed = render_html(report_from_json(doc))  # the page of the build with the miss in the middle
    assert "MISS: src/App.jsx content changed" in missed
    assert "MISS: MISS" not in missed and "HIT: HIT" not in missed  # the cache column says it once
    for _n, label, _i in steps:
        assert f"<td>{label}</td>" in page
    for m_steps in counted:
        assert f"{m_steps} steps" in page
    # history: the base layer's description is a whole sentence; the layers' texts are the steps'
    hist = json.loads(_mb(store, "history", "lesson:1", "--json", "--no-trunc").stdout)
    base = hist[0]["created_by"]
    assert base.startswith("minibuild fixture ") and base.endswith("."), base
    listed = {i for _n, _l, i in steps}
    assert all(h["created_by"] in listed for h in hist[1:] if not h["empty_layer"])
    return store, doc


def test_node_nginx_example_one_numbering_everywhere(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    shutil.copytree(NODE_NGINX, ctx)
    _check_one_story(tmp_path, ctx, str(ctx / "Dockerfile"))


def test_multi_stage_lesson_one_numbering_and_an_honest_report(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    shutil.copytree(NODE_NGINX, ctx)
    (ctx / "Dockerfile.lesson").write_text(LESSON)
    store, doc = _check_one_story(tmp_path, ctx, str(ctx / "Dockerfile.lesson"))
    report = report_from_json(doc)
    build, final = report.stages
    # the COPY --from of package.json makes a layer with the files of the build stage's COPY of it; not byte-identical
    # in the store, which keeps real mtimes (docs/file-times.md): /app has the time its stage's WORKDIR made it
    from minibuild.store.tarread import read_entries

    def files(digest: object) -> list[tuple[str, str, int, bytes | None]]:
        with Store.open(store).blobs.open(digest) as fh:  # type: ignore[arg-type]
            return [(e.path, e.type, e.mode, e.linkname.encode()) for e in read_entries(fh)]

    (copied,) = [st.layer for st in build.steps if st.instruction == "COPY package.json /app/"]
    (carried,) = [st.layer for st in final.steps if st.instruction == "COPY --from=build /app/package.json /app/"]
    assert copied is not None and carried is not None
    assert files(copied) == files(carried) != []
    chart = layer_chart_svg(report)
    texts = re.findall(r'<text (?:class="layer-label" )?[^>]*>(?:<title>[^<]*</title>)?([^<]*)</text>', chart)
    final_rows = texts[texts.index("stage 1") + 1:]
    assert "L13 COPY --from=build /app/package.json /app/" in final_rows, final_rows
    assert "L12 WORKDIR /app" in final_rows
    # every bar colour has a legend entry
    bar_fills = set(re.findall(r'<rect class="bar [a-z]+"[^>]* fill="(#[0-9a-f]{6})"', chart))
    legend_fills = set(re.findall(r'<g class="legend"><rect [^>]* fill="(#[0-9a-f]{6})"', chart))
    assert bar_fills and bar_fills <= legend_fills
    # a base layer is named by its FROM, and its full description is kept (no cut sentence)
    assert "FROM node:22: base layer 1/1" in texts and "FROM nginx:alpine: base layer 1/1" in texts
    # waste: a file written again by a later layer is overwritten; a whiteout deletes
    how = {(w.stage, w.path): w.how for w in report.waste}
    assert how[(0, "/app/package.json")] == "overwritten"  # COPY . . writes it again
    assert how[(0, "/app/src/App.jsx")] == "deleted"  # RUN rm -rf /app/src
    assert how[(1, "/etc/nginx/conf.d/site.conf.bak")] == "deleted"
    assert how[(1, "/usr/share/nginx/html/index.html")] == "overwritten"
    # wasted in kept layers: the final image's own (the .bak file and the base's index.html), not the build
    # stage's, although the final image keeps the layer that holds the build stage's overwritten package.json
    base_index = ImageView.from_store(Store.open(store), "nginx:alpine").stat("/usr/share/nginx/html/index.html")
    assert base_index is not None
    expected = (ctx / "nginx.conf").stat().st_size + base_index.size
    assert report.totals.wasted_bytes == expected
    html = (tmp_path / "r.html").read_text()
    assert "overwritten" in html and "deleted" in html
