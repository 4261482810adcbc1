"""COPY --from checksums read from a stage's layer tars equal those of the extracted root, and read only what they need."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest

from minibuild.engine.copy import source_checksum
from minibuild.engine.explain import source_files
from minibuild.engine.layertree import LayerTree
from minibuild.fs.rootfs import apply_layer
from minibuild.errors import ContextError
from minibuild.oci.image import Image
from minibuild.oci.model import History
from minibuild.store import Store
from minibuild.store.tarlayer import Entry, opaque, whiteout, write_layer


def f(path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path=path, type="file", data=data, size=len(data), mode=mode, uid=uid, gid=gid)


def d(path: str, mode: int = 0o755, uid: int = 0) -> Entry:
    return Entry(path=path, type="dir", mode=mode, uid=uid, gid=uid)


def sym(path: str, target: str) -> Entry:
    return Entry(path=path, type="symlink", linkname=target, mode=0o777)


LAYERS: list[list[Entry]] = [
    [d("app"), f("app/a.txt", b"A"), f("app/old.txt", b"OLD"), d("app/cache"), f("app/cache/x", b"X"),
     d("app/dist", uid=1000), f("app/dist/main.js", b"main", uid=1000, gid=1000), f("app/dist/x.map", b"map"),
     d("app/dist/sub"), f("app/dist/sub/deep.js", b"deep", 0o4755), f("app/empty", b""),
     sym("app/etclink", "/etc"), d("etc"), f("etc/passwd", b"root:x:0:0\n"), d("keep"), f("keep/k", b"K"),
     d("usr"), d("usr/lib"), f("usr/lib/libz.so.1.2", b"zlib"), sym("usr/lib/libz.so", "libz.so.1.2"),
     sym("lib", "usr/lib")],
    [d("app"), whiteout("app/old.txt"), d("app/cache"), opaque("app/cache"), f("app/cache/y", b"Y"),
     f("app/b.txt", b"BBBB", 0o755), Entry(path="app/b2", type="hardlink", linkname="app/b.txt"),
     d("app/dist"), whiteout("app/dist/x.map"), f("app/dist/new.css", b"css")],
    [d("app"), f("app/a.txt", b"A2"), f("keep", b"now a file"), sym("app/dist/up", "../../etc/passwd"),
     d("usr/lib/extra"), f("usr/lib/extra/e.so", b"E")],
]

SOURCES: list[tuple[Sequence[str], dict[str, object]]] = [
    (["/app/dist"], {}),
    (["/app/dist/"], {"exclude": ["*.css"]}),
    (["/app/*.txt"], {}),
    (["/app/*"], {}),
    (["/app/dist/*.js", "/etc/passwd"], {}),
    (["/app/etclink"], {}),  # a top-level symlink source is followed
    (["/app/etclink/passwd"], {}),
    (["/lib/libz.so"], {}),
    (["/lib/"], {}),
    (["/lib/extra"], {}),
    (["/app/cache", "/keep"], {}),
    (["/app/b2", "/app/empty"], {}),
    (["/app/./dist/**/*.js"], {"parents": True}),
    (["/"], {}),
    (["/nothing*"], {}),
]


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Image, Path]:
    base = tmp_path_factory.mktemp("lt")
    store = Store.open(base / "store")
    image = Image.scratch()
    root = base / "root"
    root.mkdir()
    for n, entries in enumerate(LAYERS):
        buf = io.BytesIO()
        info = write_layer(entries, buf, compression="gzip" if n == 1 else "none")
        assert store.blobs.put_bytes(buf.getvalue()) == info.digest
        image = image.append_layer(info, history=History(created_by=f"step {n}"))
        apply_layer(root, io.BytesIO(buf.getvalue()))
    return store, image, root


@pytest.mark.parametrize(("sources", "opts"), SOURCES, ids=[" ".join(s) for s, _ in SOURCES])
def test_checksum_from_layers_equals_checksum_of_extracted_root(stage, sources, opts) -> None:  # type: ignore[no-untyped-def]
    store, image, root = stage
    on_disk = source_checksum(root, sources, from_context=False, **opts)  # type: ignore[arg-type]
    in_place = source_checksum(LayerTree(store.blobs, image), sources, from_context=False, **opts)  # type: ignore[arg-type]
    assert in_place == on_disk
    files_disk = source_files(root, sources, from_context=False, **opts)  # type: ignore[arg-type]
    files_layers = source_files(LayerTree(store.blobs, image), sources, from_context=False, **opts)  # type: ignore[arg-type]
    assert files_layers == files_disk
    assert all(r.get("sha256") != "pending" for r in files_layers.values())


def test_checksum_sees_content_and_owner_changes(stage) -> None:  # type: ignore[no-untyped-def]
    store, image, _root = stage
    a = source_checksum(LayerTree(store.blobs, image), ["/app/dist"], from_context=False)
    buf = io.BytesIO()
    info = write_layer([d("app"), d("app/dist"), f("app/dist/new.css", b"CSS")], buf, compression="none")
    store.blobs.put_bytes(buf.getvalue())
    changed = image.append_layer(info, history=History(created_by="edit"))
    assert source_checksum(LayerTree(store.blobs, changed), ["/app/dist"], from_context=False) != a
    assert source_checksum(LayerTree(store.blobs, image), ["/app/a.txt"], from_context=False) != \
        source_checksum(LayerTree(store.blobs, image), ["/app/b.txt"], from_context=False)


def test_only_needed_members_are_hashed(stage) -> None:  # type: ignore[no-untyped-def]
    store, image, _root = stage
    tree = LayerTree(store.blobs, image)
    source_checksum(tree, ["/app/dist"], from_context=False)
    # main.js, sub/deep.js (layer 0) and new.css (layer 1); nothing of etc, usr, keep, cache
    assert tree.members_read == 3
    assert {m for _, m in tree.hashes} == {"app/dist/main.js", "app/dist/sub/deep.js", "app/dist/new.css"}
    # the two uncompressed layers were indexed by seeking; the gzip one (index 1) was streamed
    assert set(tree._members) == {image.layers[0].digest, image.layers[2].digest}


def test_missing_source_is_the_same_error(stage) -> None:  # type: ignore[no-untyped-def]
    store, image, root = stage
    with pytest.raises(ContextError) as disk:
        source_checksum(root, ["/app/old.txt"], from_context=False)
    with pytest.raises(ContextError) as layers:
        source_checksum(LayerTree(store.blobs, image), ["/app/old.txt"], from_context=False)
    assert str(layers.value) == str(disk.value)


@pytest.mark.parametrize("path", ["app/a.txt", "app/b.txt", "app/b2", "usr/lib/libz.so.1.2", "app/empty"])
def test_head_reads_a_file_s_first_bytes_as_the_extracted_root_has_them(stage, path: str) -> None:  # type: ignore[no-untyped-def]
    """An uncompressed layer's member by a seek, the gzip layer's (app/b.txt, its hard link) by a read up to it."""
    store, image, root = stage
    tree = LayerTree(store.blobs, image)
    fi = tree.merged.nodes[path]
    assert tree.head(fi, 2) == (root / path).read_bytes()[:2]
    assert fi.head(2) == (root / path).read_bytes()[:2]
