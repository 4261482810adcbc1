"""BuildReport: JSON round trip, totals helper, HTML content, graph derived from the report."""

from __future__ import annotations

import dataclasses
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from minibuild.errors import ConfigError, ImageFormatError
from minibuild.teach.report import (
    SCHEMA,
    compute_totals,
    graph_from_report,
    layer_chart_svg,
    render_html,
    report_from_json,
    report_to_json,
    write_report,
)
from tests.teach.samples import d, sample_report


def test_json_round_trip_and_shape(tmp_path: Path) -> None:
    report = sample_report()
    path = tmp_path / "r.json"
    write_report(report, path)
    doc = json.loads(path.read_text())
    assert doc["schema"] == SCHEMA
    assert report_from_json(doc) == report
    assert doc["stages"][1]["status"] == "skipped"
    assert doc["transfers"][0] == {"from_stage": "build", "from_index": 0, "to_stage": 3, "line": 14, "kind": "copy",
                                   "dest": "/app", "bytes": 4_100_000,
                                   "paths": [{"source": "/out/app", "bytes": 4_100_000, "files": 1}]}
    assert doc["layers"][0]["digest"] == d(1).value


def test_report_from_json_rejects_other_documents() -> None:
    with pytest.raises(ImageFormatError, match="not a minibuild build report"):
        report_from_json({"schemaVersion": 2})
    doc = report_to_json(sample_report())
    del doc["stages"][0]["status"]
    with pytest.raises(ImageFormatError, match="malformed"):
        report_from_json(doc)


def test_compute_totals_by_hand() -> None:
    totals = compute_totals(sample_report(), (d(6), d(7)))
    # 70e6 + 20e3 + 9e6 + 3.6e6 + 1024 + 4.2e6 + 512, summed by hand
    assert totals.built_bytes == 86_821_536
    assert totals.final_bytes == 4_200_512
    assert totals.avoided_bytes == 82_621_024
    assert totals.transferred_bytes == 4_100_000
    assert totals.wasted_bytes == 0  # the waste lives in a layer the final image does not keep
    # a final image that shares the layer carrying the waste (a COPY --from of the same bytes) does not carry
    # the build stage's deletion: its own layer stack hides nothing
    assert compute_totals(sample_report(), (d(3),)).wasted_bytes == 0
    # a final image FROM the stage that deleted the bytes does carry them
    from_build = dataclasses.replace(sample_report(), target="test")
    assert compute_totals(from_build, (d(3),)).wasted_bytes == 2_000_000


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_self_contained_and_shows_everything(tmp_path: Path) -> None:
    path = tmp_path / "r.html"
    write_report(sample_report(), path)
    html = path.read_text()
    parser = _Collect()
    parser.feed(html)
    assert "script" not in parser.tags and "link" not in parser.tags and "img" not in parser.tags
    assert not any(v and ("http://" in v or "https://" in v) and k != "xmlns" for k, v in parser.attrs)
    assert parser.tags.count("svg") == 2  # stage graph + layer chart
    text = " ".join(parser.text)
    for needle in ("build (stage 0)", "test (stage 1)", "skipped", "not needed for target 3",
                   "MISS: main.go content changed", "COPY /out/app -> /app", "root/.cache/go-build",
                   "4200512 bytes", "82621024 bytes", "/out/app"):
        assert needle in text, needle


def test_layer_chart_marks_kept_and_dropped_layers() -> None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(layer_chart_svg(sample_report()))
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if (r.get("class") or "").startswith("bar")]
    assert len(bars) == 7
    assert [b.get("class") for b in bars].count("bar kept") == 2
    widths = [float(b.get("width") or 0) for b in bars]
    assert max(widths) == widths[0]  # the 70MB golang layer is the longest bar


def test_graph_from_report_matches_stage_status() -> None:
    g = graph_from_report(sample_report())
    assert g.target == 3
    assert g.skipped == (1,)
    assert [(e.kind, e.source, e.target) for e in g.edges if e.kind == "copy"] == [("copy", "s0", 3),
                                                                                   ("copy", "s2", 3)]
    assert g.stages[0].size == 79_020_000


def test_write_report_needs_known_suffix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=".json or .html"):
        write_report(sample_report(), tmp_path / "r.txt")
    assert render_html(sample_report()).startswith("<!DOCTYPE html>")
