"""build --report: byte counts equal the store's blobs and the final manifest; waste is found at its lines."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from minibuild.api import build
from minibuild.store import Store

DF = """\
FROM busybox:latest AS build
COPY a.txt /src/a.txt
RUN seq 1 200000 > /big.txt
RUN rm /big.txt
COPY b.txt /src/b.txt
FROM scratch AS unused
COPY a.txt /x
FROM scratch
COPY --from=build /src /app
"""


def _ctx(tmp: Path) -> Path:
    ctx = tmp / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a" * 1000)
    (ctx / "b.txt").write_text("b" * 2345)
    (ctx / "Dockerfile").write_text(DF)
    return ctx


def _blob(store: Path, digest: str) -> Path:
    algo, _, hexd = digest.partition(":")
    return store / "blobs" / algo / hexd


def test_report_bytes_match_store_and_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0")  # RUN needs a /bin/sh: the busybox stand-in, unpadded
    ctx = _ctx(tmp_path)
    store_dir = tmp_path / "store"
    out = tmp_path / "r.json"
    res = build(ctx, store=Store.open(store_dir), report=out, executor="emulate")
    doc = json.loads(out.read_text())
    # the final manifest, read from the store's blob file
    manifest = json.loads(_blob(store_dir, res.digest.value).read_bytes())
    final = [(layer["digest"], layer["size"]) for layer in manifest["layers"]]
    for d, size in final:
        assert _blob(store_dir, d).stat().st_size == size
    assert doc["totals"]["final_bytes"] == sum(s for _, s in final)
    # every reported layer: its size is its blob file's size; kept iff the final stage has it. The report is of
    # the build's (store) layers; the manifest lists the same layers with mtimes clamped (docs/file-times.md):
    # other digests, the same sizes
    (target,) = [s for s in doc["stages"] if s["index"] == 2]
    final_digests = set(target["layers"])
    assert [_blob(store_dir, d).stat().st_size for d in target["layers"]] == [s for _, s in final]
    assert doc["layers"], doc
    for layer in doc["layers"]:
        assert layer["size"] == _blob(store_dir, layer["digest"]).stat().st_size
        assert layer["kept"] == (layer["digest"] in final_digests)
    built = sum(_blob(store_dir, layer["digest"]).stat().st_size for layer in doc["layers"])
    assert doc["totals"]["built_bytes"] == built
    assert doc["totals"]["avoided_bytes"] == built - sum(s for _, s in final)
    # stages: build and the final one ran, unused was skipped
    status = {s["index"]: (s["status"], s["reason"]) for s in doc["stages"]}
    assert status[0][0] == "built" and status[2][0] == "built"
    assert status[1][0] == "skipped" and "not needed" in status[1][1]
    for s in doc["stages"]:
        if s["status"] != "skipped":
            assert s["size"] == sum(_blob(store_dir, d).stat().st_size for d in s["layers"])
    # COPY --from carried /src: a.txt + b.txt
    (t,) = doc["transfers"]
    assert t["from_stage"] == "build" and t["to_stage"] == 2 and t["line"] == 9 and t["dest"] == "/app"
    assert [(p["source"], p["bytes"], p["files"]) for p in t["paths"]] == [("/src", 1000 + 2345, 2)]
    # waste: /big.txt made at line 3, deleted at line 4, its bytes = the file in the line-3 layer's tar
    (w,) = [w for w in doc["waste"] if w["path"] == "/big.txt"]
    assert (w["created_line"], w["deleted_line"], w["stage"]) == (3, 4, 0)
    with tarfile.open(fileobj=io.BytesIO(_blob(store_dir, w["layer"]).read_bytes())) as tf:
        size = tf.getmember("big.txt").size
    assert w["bytes"] == size >= 1_000_000
    assert doc["totals"]["wasted_bytes"] == 0  # the final image does not keep that layer


def test_report_html_via_cli(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    out = tmp_path / "r.html"
    env = {**os.environ, "MINIBUILD_FIXTURE_PADDING": "0"}
    p = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(tmp_path / "s"), "build", str(ctx),
                        "--progress", "plain", "--report", str(out)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html") or html.lower().startswith("<!doctype html")
    for name in ("build", "unused", "/big.txt"):
        assert name in html
    bad = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(tmp_path / "s"), "build", str(ctx),
                          "--report", str(tmp_path / "r.txt")], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "must end in .json or .html" in bad.stderr
