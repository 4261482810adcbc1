"""`minibuild history`, `du`, `cp` and `graph` through the CLI entry point, on images made in the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minibuild.cli import main
from minibuild.store import Store
from minibuild.store.tarlayer import Entry
from minibuild.teach.storeview import disk_usage, history_rows
from tests.teach.conftest import MakeImage, blob_size
from tests.teach.samples import DOCKERFILE


def f(path: str, data: bytes) -> Entry:
    return Entry(path=path, type="file", data=data, size=len(data))


def run(capsys: pytest.CaptureFixture[str], store: Store, *args: str, ok: bool = True) -> str:
    code = 0
    try:
        main(["--store", str(store.root), *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert (code == 0) == ok, (code, out, err)
    return out if ok else err


def test_history_pairs_layers_and_finds_cache_keys(store: Store, make_image: MakeImage,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    image = make_image("demo:1", [("COPY a /a", [f("a", b"a" * 3000)]), ("ENV A=1", None),
                                  ("RUN make", [f("b", b"b" * 10)])], comments={2: "minibuild cache key: k-run"})
    store.cache.put("k-copy", {"note": "copy step"}, refs=(image.layers[0].digest,))
    rows = history_rows(store, image)
    assert [(r.created_by, r.empty_layer, r.layer) for r in rows] == [
        ("COPY a /a", False, image.layers[0].digest), ("ENV A=1", True, None),
        ("RUN make", False, image.layers[1].digest)]
    assert rows[0].size == blob_size(store, image.layers[0].digest)
    assert rows[0].cache_keys == ("k-copy",)
    assert rows[2].cache_keys == ("k-run",)
    out = run(capsys, store, "history", "demo:1")
    lines = out.splitlines()
    assert lines[0].split() == ["LAYER", "CREATED", "CREATED", "BY", "SIZE", "CACHE", "KEY", "COMMENT"]
    assert "RUN make" in lines[1] and "k-run" in lines[1]  # newest first
    assert "<empty>" in lines[2] and "ENV A=1" in lines[2]
    assert "COPY a /a" in lines[3] and "k-copy" in lines[3] and image.layers[0].digest.hex[:12] in lines[3]
    doc = json.loads(run(capsys, store, "history", "--json", "demo:1"))
    assert doc[0]["size"] == blob_size(store, image.layers[0].digest)


def test_history_files_shows_whiteouts(store: Store, make_image: MakeImage,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from minibuild.store.tarlayer import opaque, whiteout

    make_image("wh:1", [("ADD", [f("d/x", b"1"), f("y", b"2")]),
                        ("RUN rm", [Entry(path="d", type="dir", mode=0o755), opaque("d"), whiteout("y")])])
    out = run(capsys, store, "history", "--files", "wh:1")
    assert "opaque   /d/" in out and "deleted  /y" in out and "file     /d/x" in out


def test_du_unique_shared_cache_and_prune(store: Store, make_image: MakeImage,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    base = make_image(None, [("base", [f("base", b"B" * 5000)])])
    one = make_image("one:1", [("one", [f("one", b"1" * 700)])], base=base)
    two = make_image("two:1", [("two", [f("two", b"2" * 900)])], base=base)
    cached = store.blobs.put_bytes(b"cache-only blob")
    store.blobs.put_bytes(b"garbage blob, nothing refers to it")
    store.cache.put("step", {"layer": cached.value}, refs=(cached,))

    def blobs_of(image):  # type: ignore[no-untyped-def]
        return {image.digest, image.config_digest, *(layer.digest for layer in image.layers)}

    size = {d: blob_size(store, d) for d in blobs_of(one) | blobs_of(two) | {cached}}
    shared_layer = base.layers[0].digest
    usage = disk_usage(store)
    by_name = {u.names[0]: u for u in usage.images}
    assert by_name["one:1"].shared == size[shared_layer]
    assert by_name["one:1"].unique == size[one.layers[1].digest]  # layers only: config and manifest apart
    assert by_name["two:1"].size == size[shared_layer] + size[two.layers[1].digest]
    assert by_name["two:1"].metadata == size[two.digest] + size[two.config_digest]
    assert [s.digest for s in usage.shared_layers] == [shared_layer]
    assert usage.cache_records == 1 and usage.cache_only_bytes == size[cached]
    garbage = len(b"garbage blob, nothing refers to it")
    base_only = blob_size(store, base.digest) + blob_size(store, base.config_digest)  # the untagged base image
    assert usage.prune_bytes == garbage + base_only
    assert usage.prune_all_bytes == garbage + base_only + size[cached]
    assert usage.blob_bytes == sum(p.stat().st_size for p in (store.root / "blobs" / "sha256").iterdir())
    out = run(capsys, store, "du")
    assert "one:1" in out and "Shared layers:" in out and shared_layer.hex[:12] in out
    assert f"`minibuild prune` would delete 3 blobs and free " in out and f"({usage.prune_bytes} bytes)" in out
    # prune frees exactly what du predicted
    assert store.prune().freed_bytes == usage.prune_bytes


def test_du_and_images_agree_on_image_size(store: Store, make_image: MakeImage,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    base = make_image("base:1", [("base", [f("base", b"B" * 4321)])])
    make_image("app:1", [("app", [f("app", b"A" * 1234)]), ("ENV X=1", None)], base=base)
    images_out = run(capsys, store, "images").splitlines()
    assert images_out[0].split()[-1] == "SIZE"
    from_images = {line.split()[0]: line.split()[-1] for line in images_out[1:]}
    du_out = run(capsys, store, "du").splitlines()
    start = next(i for i, line in enumerate(du_out) if line.startswith("IMAGE"))
    du_header = du_out[start].split()
    from_du = {}
    for line in du_out[start + 1:]:
        if not line.strip() or line.startswith("images use"):
            break
        from_du[line.split()[0]] = line.split()[du_header.index("SIZE")]
    assert set(from_du) == set(from_images) == {"base:1", "app:1"}
    assert from_du == from_images
    doc = json.loads(run(capsys, store, "du", "--json"))
    app = store.resolve("app:1")
    by_name = {i["names"][0]: i for i in doc["images"]}
    layer_bytes = sum(blob_size(store, layer.digest) for layer in app.layers)
    assert by_name["app:1"]["size"] == layer_bytes
    assert by_name["app:1"]["metadata"] == blob_size(store, app.digest) + blob_size(store, app.config_digest)


def test_cp_command_and_errors(store: Store, make_image: MakeImage, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    make_image("app:2", [("COPY", [Entry(path="srv", type="dir", mode=0o755), f("srv/index.html", b"<h1>hi</h1>")])])
    out = run(capsys, store, "cp", "app:2:/srv", str(tmp_path / "site"))
    assert "1 files" in out and (tmp_path / "site" / "index.html").read_bytes() == b"<h1>hi</h1>"
    err = run(capsys, store, "cp", "app:2:/srv/index.htm", str(tmp_path / "x"), ok=False)
    assert err.startswith("error: '/srv/index.htm' does not exist in app:2; nearest existing paths: /srv/index.html")
    err = run(capsys, store, "cp", "app:2", str(tmp_path / "x"), ok=False)
    assert "expected NAME:/PATH" in err
    err = run(capsys, store, "cp", "nope:1:/x", str(tmp_path / "x"), ok=False)
    assert "no image 'nope:1'" in err


def test_graph_command(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    out = run(capsys, store, "graph", str(tmp_path))
    assert out.startswith("%% ") and "flowchart TD" in out and "class s1 skipped" in out
    out = run(capsys, store, "graph", str(tmp_path), "--format", "dot", "--target", "test", "--build-arg", "GO=1.21")
    assert 'i0 [label="golang:1.21"' in out and "after the target" not in out and "skipped" in out
    run(capsys, store, "graph", str(tmp_path), "--format", "svg", "-o", str(tmp_path / "g.svg"))
    assert (tmp_path / "g.svg").read_text().startswith("<svg")
    err = run(capsys, store, "graph", str(tmp_path), "--target", "tset", ok=False)
    assert 'target stage "tset" could not be found' in err and "test" in err


def test_graph_reads_the_dockerfile_from_stdin(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(DOCKERFILE.encode())))  # read as bytes
    out = run(capsys, store, "graph", str(tmp_path), "-f", "-")
    assert out.startswith("%% ") and "flowchart TD" in out and "class s1 skipped" in out
