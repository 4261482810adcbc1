"""Renderings: golden Mermaid and DOT (hand-checked), SVG well-formed with every stage drawn."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from minibuild.dockerfile import parse_dockerfile
from minibuild.errors import ConfigError
from minibuild.teach.graph import stage_graph
from minibuild.teach.render import human_bytes, layout, render, to_dot, to_mermaid, to_svg
from tests.teach.samples import DOCKERFILE

GOLDEN = Path(__file__).parent / "golden"
SVG = "{http://www.w3.org/2000/svg}"


def sample_graph(**kw: object):  # type: ignore[no-untyped-def]
    return stage_graph(parse_dockerfile(DOCKERFILE), sizes={"build": 79_020_000}, **kw)  # type: ignore[arg-type]


def test_mermaid_golden() -> None:
    assert to_mermaid(sample_graph(), title="Dockerfile (target 3)") == (GOLDEN / "sample.mermaid").read_text()


def test_dot_golden() -> None:
    assert to_dot(sample_graph(), title="Dockerfile (target 3)") == (GOLDEN / "sample.dot").read_text()


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 999, 1000, 1536, 79_020_000, 1_020_000_000)] == [
        "0B", "999B", "1kB", "1.54kB", "79MB", "1.02GB"]


def test_labels_are_escaped() -> None:
    g = stage_graph(parse_dockerfile('FROM busybox AS a\nFROM scratch\nCOPY --from=a ["/a \\"q\\"|<x>", "/b"]\n'))
    mer = to_mermaid(g)
    assert '#quot;q#quot;#124;#lt;x#gt;' in mer
    dot = to_dot(g)
    assert 'label="COPY /a \\"q\\"|<x> -> /b"' in dot
    root = ET.fromstring(to_svg(g))
    texts = [t.text for t in root.iter(SVG + "text")]
    assert 'COPY /a "q"|<x> -> /b' in texts


def text_of(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(SVG + "text")]


def test_svg_is_well_formed_and_draws_every_stage() -> None:
    g = sample_graph()
    root = ET.fromstring(to_svg(g, title="sample"))
    assert root.tag == SVG + "svg"
    texts = text_of(root)
    for label in ("build (stage 0)", "test (stage 1)", "assets (stage 2)", "stage 3", "golang:1.22",
                  "COPY /out/app -> /app", "COPY /static -> /static"):
        assert label in texts
    groups = {g_.get("id"): g_.get("class") for g_ in root.iter(SVG + "g") if g_.get("id")}
    assert groups["s1"] == "node stage skipped"
    assert groups["s0"] == "node stage needed"
    assert groups["i2"] == "node image needed"
    edges = [p for p in root.iter(SVG + "path") if "edge" in (p.get("class") or "")]
    assert len(edges) == len(g.edges)
    grey = [p for p in edges if p.get("stroke") == "#9ca3af"]
    assert len(grey) == 1  # the FROM edge into the skipped test stage
    # no external references, no scripts
    assert not list(root.iter(SVG + "script")) and not list(root.iter(SVG + "image"))


def test_layout_boxes_do_not_overlap_and_edges_point_down() -> None:
    text = ("FROM a AS one\nFROM b AS two\nFROM one AS three\nCOPY --from=two /x /x\nFROM scratch\n"
            "COPY --from=one /1 /1\nCOPY --from=three /3 /3\nCOPY --from=two /2 /2\n")
    g = stage_graph(parse_dockerfile(text))
    lay = layout(g)
    boxes = [b for b in lay.boxes]
    for i, a in enumerate(boxes):
        assert 0 <= a.x and a.x + a.w <= lay.width and 0 <= a.y and a.y + a.h <= lay.height
        for b in boxes[i + 1:]:
            apart = a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y
            assert apart, (a, b)
    for r in lay.routes:
        ys = [p[1] for p in r.points]
        assert ys == sorted(ys)  # every edge flows downwards
        if r.label:
            assert r.label_w / 2 <= r.label_x <= lay.width - r.label_w / 2
    # labels of edges entering one layer sit on distinct rows
    label_ys = [r.label_y for r in lay.routes if r.label]
    assert len(label_ys) == len(set(label_ys))


def test_render_by_name() -> None:
    g = sample_graph()
    assert render(g, "dot") == to_dot(g)
    with pytest.raises(ConfigError, match="unknown graph format"):
        render(g, "png")
