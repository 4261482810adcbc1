"""The build report model (what each stage cost, what the final image kept) and its JSON and HTML writers.

The builder fills a ``BuildReport``; this module only renders it (JSON: ``report_to_json`` /
``report_from_json`` round-trip; HTML: one self-contained file, inline CSS and SVG, no script, no network).

Model (frozen dataclasses, tuples; sizes are bytes; ``line`` is a 1-based Dockerfile line or None)::

    BuildReport
      dockerfile: str               file name as given (e.g. "Dockerfile")
      target: str                   the target stage's ref (name, else index)
      image: str | None             name the final image was tagged with
      image_digest: Digest | None   its manifest digest
      stages: tuple[StageReport]    every stage of the Dockerfile, in order (skipped ones too)
      layers: tuple[LayerReport]    every distinct layer of every built/cached stage image, by first appearance
      transfers: tuple[TransferReport]   every COPY --from (and RUN --mount=from) of the stages that ran
      waste: tuple[WasteEntry]      bytes a later step deleted but an earlier layer still carries
      totals: Totals

    StageReport
      index: int, name: str | None, base: str (FROM word, expanded), base_stage: int | None (FROM <stage>)
      status: "built" | "cached" | "skipped"   built = at least one step ran; cached = every step was a hit
      reason: str                   why skipped ("not needed for target app") or a note ("3 of 5 steps cached")
      steps: tuple[StepReport]
      layers: tuple[Digest]         the stage image's layers, bottom first (base image layers included)
      size: int                     bytes of those layers (compressed/stored size)

    StepReport
      line: int | None, instruction: str (the source text), cache: "hit" | "miss" | "none"
      ("none": the step makes no layer and has no cache key, e.g. ENV), reason: str (MISS cause, "" otherwise),
      layer: Digest | None          the layer it produced (or reused)

    LayerReport
      digest: Digest, diff_id: Digest | None, size: int (stored bytes, = the blob's size),
      uncompressed_size: int | None, stage: int (first stage whose image has it),
      created_by: str (history text), line: int | None (None for base-image layers),
      from_base: bool (came with an external base image), kept: bool (the final image has it)

    TransferReport
      from_stage: str (stage ref or image reference), from_index: int | None (None for an image),
      to_stage: int, line: int | None, kind: "copy" | "mount", dest: str, paths: tuple[TransferPath]
      bytes (property): sum of its paths' bytes
    TransferPath: source: str (path in the source stage), bytes: int (file content bytes), files: int

    WasteEntry
      path: str, bytes: int, layer: Digest (where the bytes still live), created_line: int | None,
      created_by: str, deleted_line: int | None, deleted_by: str, stage: int,
      how: "deleted" (a whiteout or opaque directory) | "overwritten" (a later layer wrote the path again)

    Totals
      final_bytes: int        sum of the final image's layer sizes
      built_bytes: int        sum of the sizes of ``layers`` (every distinct layer of every stage that ran)
      avoided_bytes: int      built_bytes - final_bytes: what multi-stage left behind
      wasted_bytes: int       waste the final image carries: of its own stage and the stages it is FROM
      transferred_bytes: int  sum of transfer bytes
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

from minibuild.digest import Digest
from minibuild.errors import ConfigError, ImageFormatError
from minibuild.record import record
from minibuild.teach.graph import Edge, ImageNode, StageGraph, StageNode
from minibuild.teach.render import SKIP_FILL, SKIP_STROKE, to_svg
from minibuild.units import human_bytes, layer_bytes

SCHEMA = "minibuild.build-report/v1"
StageStatus = Literal["built", "cached", "skipped"]
CacheState = Literal["hit", "miss", "none"]


@record
class StepReport:
    """One instruction of a stage and what the cache did with it."""

    line: int | None
    instruction: str
    cache: CacheState = "none"
    reason: str = ""
    layer: Digest | None = None
    step: str = ""  # "[build 5/6]" as progress names it, "" for a config-only step (not listed there)


@record
class StageReport:
    """One stage: built, cached or skipped (and why), its steps and its image's layers."""

    index: int
    name: str | None
    base: str
    base_stage: int | None = None
    status: StageStatus
    reason: str = ""
    steps: tuple[StepReport, ...] = ()
    layers: tuple[Digest, ...] = ()
    size: int = 0
    vertices: int = 0  # its step count as every view counts it: the M of [stage N/M]

    @property
    def ref(self) -> str:
        return self.name if self.name is not None else str(self.index)


@record
class LayerReport:
    """One distinct layer: its blob, which step made it, and whether the final image keeps it."""

    digest: Digest
    diff_id: Digest | None = None
    size: int
    uncompressed_size: int | None = None
    stage: int
    created_by: str = ""
    line: int | None = None
    from_base: bool = False
    kept: bool = False


@record
class TransferPath:
    """One source path of a COPY --from and the file bytes it carried."""

    source: str
    bytes: int = 0
    files: int = 0


@record
class TransferReport:
    """A COPY --from (or RUN --mount=from): what crossed from one stage (or image) into another."""

    from_stage: str
    from_index: int | None = None
    to_stage: int
    line: int | None = None
    kind: Literal["copy", "mount"] = "copy"
    dest: str = ""
    paths: tuple[TransferPath, ...] = ()

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.paths)


@record
class WasteEntry:
    """Bytes a later step deleted (or overwrote) that an earlier layer still carries."""

    path: str
    bytes: int
    layer: Digest
    created_line: int | None = None
    created_by: str = ""
    deleted_line: int | None = None
    deleted_by: str = ""
    stage: int = 0
    how: Literal["deleted", "overwritten"] = "deleted"  # a whiteout/opaque dir deletes; a later file overwrites


@record
class Totals:
    """Byte totals of a build (see the module docstring)."""

    final_bytes: int = 0
    built_bytes: int = 0
    avoided_bytes: int = 0
    wasted_bytes: int = 0
    transferred_bytes: int = 0


_TOTALS_FIELDS = frozenset(f.name for f in dataclasses.fields(Totals))


@record
class BuildReport:
    """Everything a build did, per stage, per layer, per COPY --from; see the module docstring."""

    dockerfile: str = "Dockerfile"
    target: str
    image: str | None = None
    image_digest: Digest | None = None
    stages: tuple[StageReport, ...] = ()
    layers: tuple[LayerReport, ...] = ()
    transfers: tuple[TransferReport, ...] = ()
    waste: tuple[WasteEntry, ...] = ()
    totals: Totals = field(default_factory=Totals)

    def layer(self, digest: Digest) -> LayerReport | None:
        for layer in self.layers:
            if layer.digest == digest:
                return layer
        return None


def compute_totals(report: BuildReport, final_layers: tuple[Digest, ...]) -> Totals:
    """Totals from the report's layers/waste/transfers and the final image's layer digests (a helper for builders)."""
    sizes = {layer.digest: layer.size for layer in report.layers}
    final = layer_bytes((d, sizes.get(d, 0)) for d in final_layers)
    built = sum(sizes.values())
    kept = set(final_layers)
    # waste is what the final image's own layer stack hides: a build stage's deletions are not in it, even when
    # the final image shares the layer that carries the bytes (e.g. a COPY --from of the same file)
    by_index = {s.index: s for s in report.stages}
    chain: set[int] = set()
    cur = next((s for s in report.stages if s.ref == report.target), report.stages[-1] if report.stages else None)
    while cur is not None and cur.index not in chain:
        chain.add(cur.index)
        cur = by_index.get(cur.base_stage) if cur.base_stage is not None else None
    return Totals(final_bytes=final, built_bytes=built, avoided_bytes=built - final,
                  wasted_bytes=sum(w.bytes for w in report.waste if w.layer in kept and w.stage in chain),
                  transferred_bytes=sum(t.bytes for t in report.transfers))


# ------------------------------------------------------------------------------------------------------ JSON
def _d(d: Digest | None) -> str | None:
    return None if d is None else d.value


def report_to_json(report: BuildReport) -> dict[str, Any]:
    """The report as plain JSON data (digests as "sha256:..." strings), with ``"schema"`` first."""
    return {
        "schema": SCHEMA,
        "dockerfile": report.dockerfile,
        "target": report.target,
        "image": report.image,
        "image_digest": _d(report.image_digest),
        "stages": [{
            "index": s.index, "name": s.name, "base": s.base, "base_stage": s.base_stage, "status": s.status,
            "reason": s.reason, "size": s.size, "layers": [d.value for d in s.layers], "vertices": s.vertices,
            "steps": [{"line": st.line, "instruction": st.instruction, "cache": st.cache, "reason": st.reason,
                       "layer": _d(st.layer), "step": st.step} for st in s.steps],
        } for s in report.stages],
        "layers": [{
            "digest": la.digest.value, "diff_id": _d(la.diff_id), "size": la.size,
            "uncompressed_size": la.uncompressed_size, "stage": la.stage, "created_by": la.created_by,
            "line": la.line, "from_base": la.from_base, "kept": la.kept,
        } for la in report.layers],
        "transfers": [{
            "from_stage": t.from_stage, "from_index": t.from_index, "to_stage": t.to_stage, "line": t.line,
            "kind": t.kind, "dest": t.dest, "bytes": t.bytes,
            "paths": [{"source": p.source, "bytes": p.bytes, "files": p.files} for p in t.paths],
        } for t in report.transfers],
        "waste": [{
            "path": w.path, "bytes": w.bytes, "layer": w.layer.value, "created_line": w.created_line,
            "created_by": w.created_by, "deleted_line": w.deleted_line, "deleted_by": w.deleted_by, "stage": w.stage,
            "how": w.how,
        } for w in report.waste],
        "totals": {
            "final_bytes": report.totals.final_bytes, "built_bytes": report.totals.built_bytes,
            "avoided_bytes": report.totals.avoided_bytes, "wasted_bytes": report.totals.wasted_bytes,
            "transferred_bytes": report.totals.transferred_bytes,
        },
    }


def _digest(value: Any) -> Digest | None:
    return None if value is None else Digest(value)


def report_from_json(doc: Mapping[str, Any]) -> BuildReport:
    """Read back what ``report_to_json`` wrote; ImageFormatError when it is not a report."""
    if doc.get("schema") != SCHEMA:
        raise ImageFormatError(f"not a minibuild build report (schema {doc.get('schema')!r}, expected {SCHEMA!r})")
    try:
        return BuildReport(
            dockerfile=doc["dockerfile"], target=doc["target"], image=doc.get("image"),
            image_digest=_digest(doc.get("image_digest")),
            stages=tuple(StageReport(
                index=s["index"], name=s["name"], base=s["base"], base_stage=s.get("base_stage"),
                status=s["status"], reason=s.get("reason", ""), size=s.get("size", 0),
                vertices=s.get("vertices", 0),
                layers=tuple(Digest(d) for d in s.get("layers", ())),
                steps=tuple(StepReport(line=st.get("line"), instruction=st["instruction"],
                                       cache=st.get("cache", "none"), reason=st.get("reason", ""),
                                       layer=_digest(st.get("layer")), step=st.get("step", ""))
                            for st in s.get("steps", ())),
            ) for s in doc["stages"]),
            layers=tuple(LayerReport(
                digest=Digest(la["digest"]), diff_id=_digest(la.get("diff_id")), size=la["size"],
                uncompressed_size=la.get("uncompressed_size"), stage=la["stage"],
                created_by=la.get("created_by", ""), line=la.get("line"), from_base=la.get("from_base", False),
                kept=la.get("kept", False)) for la in doc.get("layers", ())),
            transfers=tuple(TransferReport(
                from_stage=t["from_stage"], from_index=t.get("from_index"), to_stage=t["to_stage"],
                line=t.get("line"), kind=t.get("kind", "copy"), dest=t.get("dest", ""),
                paths=tuple(TransferPath(source=p["source"], bytes=p.get("bytes", 0), files=p.get("files", 0))
                            for p in t.get("paths", ()))) for t in doc.get("transfers", ())),
            waste=tuple(WasteEntry(
                path=w["path"], bytes=w["bytes"], layer=Digest(w["layer"]), created_line=w.get("created_line"),
                created_by=w.get("created_by", ""), deleted_line=w.get("deleted_line"),
                deleted_by=w.get("deleted_by", ""), stage=w.get("stage", 0),
                how="overwritten" if w.get("how") == "overwritten" else "deleted") for w in doc.get("waste", ())),
            totals=Totals(**{k: int(v) for k, v in doc.get("totals", {}).items() if k in _TOTALS_FIELDS}),
        )
    except (KeyError, TypeError) as err:
        raise ImageFormatError(f"build report is malformed: {err}") from None


# ------------------------------------------------------------------------------------------------------ graph
def graph_from_report(report: BuildReport) -> StageGraph:
    """The stage graph drawn in the HTML report: stages as reported, FROM edges, transfers, sizes."""
    target = next((s.index for s in report.stages if s.ref == report.target), len(report.stages) - 1)
    images: dict[str, int] = {}
    edges: list[Edge] = []
    for s in report.stages:
        needed = s.status != "skipped"
        if s.base_stage is not None:
            edges.append(Edge(kind="from", source=f"s{s.base_stage}", target=s.index, line=0, needed=needed))
        else:
            images.setdefault(s.base, len(images))
            edges.append(Edge(kind="from", source=f"i{images[s.base]}", target=s.index, line=0, needed=needed))
        for t in report.transfers:
            if t.to_stage != s.index:
                continue
            if t.from_index is not None:
                src = f"s{t.from_index}"
            else:
                images.setdefault(t.from_stage, len(images))
                src = f"i{images[t.from_stage]}"
            edges.append(Edge(kind=t.kind, source=src, target=s.index, line=t.line or 0,
                              paths=tuple(p.source for p in t.paths), dest=t.dest, needed=needed))
    stages = tuple(StageNode(
        index=s.index, name=s.name, base=s.base, base_stage=s.base_stage, line=0, steps=s.vertices,
        needed=s.status != "skipped", reason=s.reason or s.status,
        size=s.size if s.status != "skipped" else None) for s in report.stages)
    used = {e.source for e in edges if e.needed}
    image_nodes = tuple(ImageNode(index=i, ref=ref, needed=f"i{i}" in used)
                        for ref, i in sorted(images.items(), key=lambda kv: kv[1]))
    return StageGraph(stages=stages, images=image_nodes, edges=tuple(edges), target=target)


# ------------------------------------------------------------------------------------------------------ HTML
KEPT_COLOR, DROPPED_COLOR, BASE_COLOR, BASE_DROPPED_COLOR = "#2563eb", "#f59e0b", "#94a3b8", "#fcd34d"
CHART_LEGEND = ((KEPT_COLOR, "kept by the final image"), (DROPPED_COLOR, "left behind in a build stage"),
                (BASE_COLOR, "base image layer, kept"), (BASE_DROPPED_COLOR, "base image layer, left behind"))


def _clip(text: str, room: int) -> str:
    """``text`` in at most ``room`` characters, cut at a word boundary with an ellipsis."""
    if len(text) <= room:
        return text
    cut = text[: room - 1].rsplit(" ", 1)[0].rstrip(" ,:;")
    return (cut if len(cut) > room // 2 else text[: room - 1]) + "\u2026"


def _chart_rows(report: BuildReport) -> list[tuple[str, str, LayerReport | None]]:
    """(label, full text, layer) per bar: every layer of every stage image, under its stage (a layer two
    stages share, byte for byte, is drawn in both); a base layer is named by the stage's FROM."""
    rows: list[tuple[str, str, LayerReport | None]] = []
    for s in report.stages:
        if not s.layers:
            continue
        rows.append((f"stage {s.ref}", "", None))
        made = {st.layer: st for st in s.steps if st.layer is not None}
        n_base = sum(1 for d in s.layers if d not in made)
        k = 0
        for d in s.layers:
            la = report.layer(d)
            if la is None:
                continue
            st = made.get(d)
            if st is not None:
                text = (f"L{st.line} " if st.line else "") + st.instruction
                rows.append((text, text, la))
                continue
            k += 1
            rows.append((f"FROM {s.base}: base layer {k}/{n_base}", la.created_by or la.digest.value, la))
    return rows


def layer_chart_svg(report: BuildReport, *, width: int = 1000) -> str:
    """A horizontal bar per layer of each stage image: blue = kept by the final image, amber = left behind,
    grey / light amber = base image layers (kept / left behind); the legend names every colour."""
    bar_h, gap, label_w, right = 18, 6, 380, 90
    rows = _chart_rows(report)
    biggest = max((la.size for la in report.layers), default=1) or 1
    height = max(1, len(rows)) * (bar_h + gap) + 56
    plot_w = width - label_w - right
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, Menlo, monospace" font-size="11" '
           f'role="img"><title>layer sizes</title>',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    y = 8
    for head, full, la in rows:
        if la is None:
            out.append(f'<text x="4" y="{y + 13}" font-weight="bold" fill="#111827">{escape(head)}</text>')
            y += bar_h + gap
            continue
        text = _clip(head, 52)
        color = KEPT_COLOR if la.kept else DROPPED_COLOR
        if la.from_base:
            color = BASE_COLOR if la.kept else BASE_DROPPED_COLOR
        w = max(1.0, plot_w * la.size / biggest)
        out.append(f'<text class="layer-label" x="14" y="{y + 13}" fill="#374151"><title>{escape(full)}</title>'
                   f'{escape(text)}</text>')
        out.append(f'<rect class="bar {"kept" if la.kept else "dropped"}" x="{label_w}" y="{y}" '
                   f'width="{w:.1f}" height="{bar_h}" rx="2" fill="{color}"/>')
        out.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 13}" fill="#111827">{human_bytes(la.size)}</text>')
        y += bar_h + gap
    y += 6
    x = 14.0
    for color, text in CHART_LEGEND:
        if x + 20 + len(text) * 6.7 > width:
            x, y = 14.0, y + 16
        out.append(f'<g class="legend"><rect x="{x:.1f}" y="{y}" width="14" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 20:.1f}" y="{y + 9}" fill="#374151">{escape(text)}</text></g>')
        x += 20 + len(text) * 6.7 + 24
    out.append("</svg>")
    return "\n".join(out) + "\n"


_CSS = f"""
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #111827;
       background: #ffffff; max-width: 1100px; }}
h1 {{ font-size: 22px; margin: 0 0 4px 0; }} h2 {{ font-size: 17px; margin-top: 28px;
       border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; }}
.totals {{ display: flex; gap: 12px; flex-wrap: wrap; margin: 14px 0; }}
.total {{ border: 1px solid #e5e7eb; border-radius: 8px; padding: 8px 14px; min-width: 150px; }}
.total b {{ display: block; font-size: 20px; }}
table {{ border-collapse: collapse; width: 100%; font-size: 13px; }}
th, td {{ text-align: left; padding: 4px 8px; border-bottom: 1px solid #f3f4f6; vertical-align: top; }}
td.num, th.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
code {{ font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 12px; }}
.status {{ border-radius: 10px; padding: 1px 8px; font-size: 12px; }}
.built {{ background: #dbeafe; }} .cached {{ background: #dcfce7; }}
.skipped {{ background: {SKIP_FILL}; color: {SKIP_STROKE}; }}
.hit {{ color: #15803d; }} .miss {{ color: #b45309; }}
.graph {{ overflow-x: auto; border: 1px solid #e5e7eb; border-radius: 8px; padding: 8px; }}
"""


def _cell(text: object, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f"<td{c}>{escape(str(text))}</td>"


def render_html(report: BuildReport, *, graph: StageGraph | None = None, title: str | None = None) -> str:
    """One self-contained HTML page: totals, stage graph (SVG), layer-size chart (SVG), stages, transfers, waste."""
    g = graph if graph is not None else graph_from_report(report)
    heading = title or f"Build report: {report.dockerfile} (target {report.target})"
    t = report.totals
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(heading)}</title>", f"<style>{_CSS}</style></head><body>",
        f"<h1>{escape(heading)}</h1>",
    ]
    if report.image or report.image_digest:
        parts.append(f"<p>Final image: <code>{escape(report.image or '')}</code> "
                     f"<code>{escape(_d(report.image_digest) or '')}</code></p>")
    parts.append('<div class="totals">')
    for label, value in (("final image", t.final_bytes), ("built in all stages", t.built_bytes),
                         ("left behind (avoided)", t.avoided_bytes), ("copied between stages", t.transferred_bytes),
                         ("wasted in the final image", t.wasted_bytes)):
        parts.append(f'<div class="total"><b>{human_bytes(value)}</b>{escape(label)}'
                     f"<br><small>{value} bytes</small></div>")
    parts.append("</div>")
    parts.append("<h2>Stage graph</h2>")
    parts.append(f'<div class="graph">{to_svg(g)}</div>')
    parts.append("<h2>Layers</h2>")
    parts.append(f'<div class="graph">{layer_chart_svg(report)}</div>')
    parts.append("<h2>Stages</h2>")
    for s in report.stages:
        label = f"{s.name} (stage {s.index})" if s.name else f"stage {s.index}"
        parts.append(f'<h3>{escape(label)} <span class="status {s.status}">{s.status}</span> '
                     f"<small>FROM <code>{escape(s.base)}</code>"
                     f"{', ' + human_bytes(s.size) if s.status != 'skipped' else ''}"
                     f"{' &mdash; ' + escape(s.reason) if s.reason else ''}</small></h3>")
        if s.steps:
            parts.append("<table><tr><th>step</th><th>line</th><th>instruction</th><th>cache</th><th>layer</th>"
                         "<th class='num'>size</th></tr>")
            for st in s.steps:
                la = report.layer(st.layer) if st.layer is not None else None
                cache = "" if st.cache == "none" else st.reason if st.reason.startswith(st.cache.upper()) else \
                    st.cache.upper() + (f": {st.reason}" if st.reason else "")  # the builder's reason says MISS: itself
                parts.append("<tr>" + _cell(st.step) + _cell(st.line or "")
                             + f"<td><code>{escape(st.instruction)}</code></td>"
                             + _cell(cache, st.cache) + _cell(st.layer.short if st.layer else "")
                             + _cell(human_bytes(la.size) if la else "", "num") + "</tr>")
            parts.append("</table>")
    if report.transfers:
        parts.append("<h2>COPY --from transfers</h2><table><tr><th>line</th><th>from</th><th>to</th>"
                     "<th>paths</th><th class='num'>files</th><th class='num'>bytes</th></tr>")
        for tr in report.transfers:
            to = next((s.ref for s in report.stages if s.index == tr.to_stage), str(tr.to_stage))
            paths = "<br>".join(f"<code>{escape(p.source)}</code> ({p.bytes} bytes)" for p in tr.paths)
            parts.append("<tr>" + _cell(tr.line or "") + _cell(tr.from_stage) + _cell(f"{to}:{tr.dest}")
                         + f"<td>{paths}</td>" + _cell(sum(p.files for p in tr.paths), "num")
                         + _cell(tr.bytes, "num") + "</tr>")
        parts.append("</table>")
    if report.waste:
        parts.append("<h2>Waste: deleted or overwritten later, still carried by an earlier layer</h2>"
                     "<table><tr><th>stage</th><th>path</th><th>created</th><th>then</th>"
                     "<th>by</th><th class='num'>bytes</th></tr>")
        refs = {s.index: s.ref for s in report.stages}
        for w in report.waste:
            parts.append("<tr>" + _cell(refs.get(w.stage, w.stage)) + f"<td><code>{escape(w.path)}</code></td>"
                         + _cell(f"line {w.created_line}: {w.created_by}" if w.created_line else w.created_by)
                         + _cell(w.how)
                         + _cell(f"line {w.deleted_line}: {w.deleted_by}" if w.deleted_line else w.deleted_by)
                         + _cell(w.bytes, "num") + "</tr>")
        parts.append("</table>")
    parts.append("<h2>All layers</h2><table><tr><th>digest</th><th>stage</th><th>created by</th>"
                 "<th>kept</th><th class='num'>bytes</th></tr>")
    for la in report.layers:
        parts.append("<tr>" + f"<td><code>{escape(la.digest.short)}</code></td>" + _cell(la.stage)
                     + _cell((f"line {la.line}: " if la.line else "") + la.created_by)
                     + _cell("yes" if la.kept else "no") + _cell(la.size, "num") + "</tr>")
    parts.append("</table>")
    parts.append("<p><small>Written by minibuild. This page needs no network and no script.</small></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(report: BuildReport, path: Path, *, graph: StageGraph | None = None) -> None:
    """Write ``report`` as JSON (``*.json``) or HTML (``*.html``/``*.htm``), chosen by the file suffix."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps(report_to_json(report), indent=2) + "\n"
    elif suffix in (".html", ".htm"):
        text = render_html(report, graph=graph)
    else:
        raise ConfigError(f"report file {path} must end in .json or .html")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot write report {path}: {err.strerror or err}") from None
