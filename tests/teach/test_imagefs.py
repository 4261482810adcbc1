"""The final filesystem of an image (whiteouts, opaque dirs, replaced dirs) and `cp` out of it, safely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minibuild.errors import StoreError, UnsafePathError
from minibuild.store import Store
from minibuild.store.tarlayer import Entry, opaque, whiteout
from minibuild.teach.imagefs import copy_out, fold_layers, image_tree
from tests.teach.conftest import MakeImage


def f(path: str, data: bytes, mode: int = 0o644) -> Entry:
    return Entry(path=path, type="file", data=data, size=len(data), mode=mode)


def dr(path: str) -> Entry:
    return Entry(path=path, type="dir", mode=0o755)


def sym(path: str, target: str) -> Entry:
    return Entry(path=path, type="symlink", linkname=target, mode=0o777)


LAYER1 = [dr("app"), f("app/a.txt", b"A"), f("app/old.txt", b"OLD"), dr("app/cache"), f("app/cache/x", b"X"),
          sym("app/link", "/etc"), dr("etc"), f("etc/passwd", b"root:x:0:0\n"), dr("keep"), f("keep/k", b"K")]
LAYER2 = [dr("app"), whiteout("app/old.txt"), dr("app/cache"), opaque("app/cache"), f("app/cache/y", b"Y"),
          f("app/b.txt", b"BBBB", 0o755), Entry(path="app/b2", type="hardlink", linkname="app/b.txt")]
LAYER3 = [dr("app"), f("app/a.txt", b"A2"), f("keep", b"now a file")]


@pytest.fixture
def app(make_image: MakeImage):  # type: ignore[no-untyped-def]
    return make_image("app:1", [("COPY . /", LAYER1), ("RUN rm old; ...", LAYER2), ("ENV X=1", None),
                                ("COPY a.txt /app/", LAYER3)])


def test_fold_honours_whiteouts_opaque_and_replacement(store: Store, app) -> None:  # type: ignore[no-untyped-def]
    tree = image_tree(store.blobs, app)
    assert sorted(tree.entries) == ["app", "app/a.txt", "app/b.txt", "app/b2", "app/cache", "app/cache/y",
                                    "app/link", "etc", "etc/passwd", "keep"]
    assert tree.entries["app/a.txt"].layer == 2 and tree.entries["app/a.txt"].entry.size == 2
    assert tree.entries["keep"].entry.type == "file"  # the directory and its child keep/k are gone
    assert tree.resolve("/app/link/passwd") == "etc/passwd"
    assert tree.resolve("/app/link") == "app/link"
    assert tree.resolve("/app/link", follow_final=True) == "etc"
    assert tree.resolve("/app/old.txt") is None
    assert tree.resolve("/keep/k") is None


def test_fold_whiteout_does_not_remove_what_the_same_layer_adds() -> None:
    tree = fold_layers([[f("a", b"1")], [whiteout("a"), f("a", b"22")], [opaque(""), f("b", b"3")]])
    # layer 3's opaque root marker hides everything below, keeps its own b
    assert sorted(tree) == ["b"]
    tree = fold_layers([[f("a", b"1")], [f("a", b"22"), whiteout("a")]])
    assert tree["a"].entry.size == 2


def test_cp_directory_into_existing_dir(store: Store, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dest = tmp_path / "out"
    dest.mkdir()
    result = copy_out(store.blobs, app, "/app", dest)
    root = dest / "app"
    assert result.written_to == root
    assert (root / "a.txt").read_bytes() == b"A2"
    assert not (root / "old.txt").exists()
    assert sorted(os.listdir(root / "cache")) == ["y"]
    assert os.readlink(root / "link") == "/etc"  # copied as a link, never followed
    assert (root / "b.txt").read_bytes() == b"BBBB" and (root / "b.txt").stat().st_mode & 0o777 == 0o755
    assert (root / "b2").stat().st_ino == (root / "b.txt").stat().st_ino
    assert result.bytes == 2 + 4 + 1  # a.txt, b.txt, cache/y
    assert not (dest / "etc").exists()


def test_cp_to_new_name_and_contents_only(store: Store, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy_out(store.blobs, app, "/app/cache", tmp_path / "c")
    assert sorted(os.listdir(tmp_path / "c")) == ["y"]
    (tmp_path / "d").mkdir()
    copy_out(store.blobs, app, "/app/.", tmp_path / "d")
    assert "a.txt" in os.listdir(tmp_path / "d")
    copy_out(store.blobs, app, "/app/link/passwd", tmp_path / "pw")
    assert (tmp_path / "pw").read_bytes() == b"root:x:0:0\n"
    (tmp_path / "pw").write_bytes(b"old")
    copy_out(store.blobs, app, "/app/a.txt", tmp_path / "pw")  # overwrite a file
    assert (tmp_path / "pw").read_bytes() == b"A2"


def test_cp_hardlink_whose_target_is_not_copied(store: Store, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy_out(store.blobs, app, "/app/b2", tmp_path / "b2")
    assert (tmp_path / "b2").read_bytes() == b"BBBB"


def test_cp_missing_path_lists_nearest(store: Store, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StoreError) as err:
        copy_out(store.blobs, app, "/app/a.tx", tmp_path / "x", image_name="app:1")
    msg = str(err.value)
    assert "'/app/a.tx' does not exist in app:1" in msg and "/app/a.txt" in msg
    with pytest.raises(StoreError, match="/app/cache"):
        copy_out(store.blobs, app, "/app/old.txt", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cp_never_writes_through_symlinks(store: Store, make_image: MakeImage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    evil = make_image("evil:1", [("a", [sym("evil", str(outside))]), ("b", [dr("evil"), f("evil/pwn", b"x")])])
    # the second layer's directory replaced the link: the honest reading of the layers
    dest = tmp_path / "d1"
    dest.mkdir()
    copy_out(store.blobs, evil, "/", dest)
    assert (dest / "evil" / "pwn").read_bytes() == b"x" and not (dest / "evil").is_symlink()
    # a destination that already holds a symlink to elsewhere is not followed
    dest2 = tmp_path / "d2"
    dest2.mkdir()
    (dest2 / "evil").symlink_to(outside)
    copy_out(store.blobs, evil, "/evil", dest2)
    assert not (dest2 / "evil").is_symlink() and (dest2 / "evil" / "pwn").exists()
    assert os.listdir(outside) == []


def test_writer_refuses_component_that_is_a_symlink(tmp_path: Path) -> None:
    from minibuild.teach.imagefs import _Writer

    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "d").symlink_to(outside)
    w = _Writer(dest, archive=False)
    with pytest.raises(UnsafePathError, match="symlink"):
        w.write("d/pwn", f("d/pwn", b"x"), None)
    w.close()
    assert os.listdir(outside) == []



def _raw_layer(store: Store, members: list[tuple[str, bytes | None, str]]):  # type: ignore[no-untyped-def]
    """A layer stored as written here (write_layer would add parent directories): (path, data, hardlink target)."""
    import dataclasses
    import io
    import tarfile

    from minibuild.digest import Digest
    from tests.teach.conftest import put_layer

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, data, link in members:
            ti = tarfile.TarInfo(path)
            if link:
                ti.type, ti.linkname = tarfile.LNKTYPE, link
                tf.addfile(ti)
            else:
                ti.size = len(data or b"")
                tf.addfile(ti, io.BytesIO(data or b""))
    raw = buf.getvalue()
    digest = store.blobs.put_bytes(raw)
    assert digest == Digest.of_bytes(raw)
    return dataclasses.replace(put_layer(store, [dr("tmp")]), diff_id=digest, digest=digest, size=len(raw),
                               uncompressed_size=len(raw))


def test_fold_puts_entries_below_a_symlinked_parent_where_extraction_does(store: Store, make_image: MakeImage,
                                                                          tmp_path: Path) -> None:
    # the second layer writes lib/x while lib is a symlink to usr/lib: extraction (and the view) put it at usr/lib/x
    tree = fold_layers([[dr("usr"), dr("usr/lib"), sym("lib", "usr/lib")], [f("lib/x", b"XX")]])
    assert "usr/lib/x" in tree and "lib/x" not in tree and tree["lib"].entry.type == "symlink"
    assert tree["usr/lib/x"].entry.path == "lib/x" and tree["usr/lib/x"].layer == 1
    from minibuild.oci.model import History

    base = make_image(None, [("a", [dr("usr"), dr("usr/lib"), sym("lib", "usr/lib")])])
    img = base.append_layer(_raw_layer(store, [("lib/x", b"XX", ""), ("lib/hl", None, "lib/x")]),
                            history=History(created_by="b"))
    assert image_tree(store.blobs, img).resolve("/lib/x") == "usr/lib/x"
    copy_out(store.blobs, img, "/lib/x", tmp_path / "x")
    assert (tmp_path / "x").read_bytes() == b"XX"
    # a hardlink copied without its target gets the bytes it shares, read from the member as the layer names it
    copy_out(store.blobs, img, "/usr/lib/hl", tmp_path / "hl")
    assert (tmp_path / "hl").read_bytes() == b"XX"
    (tmp_path / "d").mkdir()
    copy_out(store.blobs, img, "/usr/lib", tmp_path / "d")
    assert sorted(os.listdir(tmp_path / "d" / "lib")) == ["hl", "x"]
    assert (tmp_path / "d" / "lib" / "hl").stat().st_ino == (tmp_path / "d" / "lib" / "x").stat().st_ino
