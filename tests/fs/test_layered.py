"""A layer applied onto a layered root (minibuild.fs.layered) gives the tree of the same layer applied onto the
extracted lower layers: whiteouts, opaque markers in any order, replaced and merged directories."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from minibuild.fs.layered import LayeredRoot
from minibuild.fs.confine import fill_on_touch
from minibuild.fs.rootfs import apply_layer
from minibuild.store.tarlayer import Entry, opaque, whiteout
from tests.fs.test_rootfs import hand_tar, layer


class DirLower:
    """Lower layers read from an extracted directory (the seam LayeredRoot reads through)."""

    def __init__(self, top: Path) -> None:
        self.top = top

    def entry(self, rel: str) -> Entry | None:
        p = self.top / rel
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return None
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            return Entry(path=rel, type="dir", mode=mode, mtime=int(st.st_mtime))
        if stat.S_ISLNK(st.st_mode):
            return Entry(path=rel, type="symlink", linkname=os.readlink(p), mtime=int(st.st_mtime))
        return Entry(path=rel, type="file", mode=mode, size=st.st_size, mtime=int(st.st_mtime))

    def names(self, rel: str) -> list[str]:
        p = self.top / rel
        return sorted(os.listdir(p)) if p.is_dir() and not p.is_symlink() else []

    def links(self, rel: str) -> list[str]:
        return [rel]

    def open(self, rel: str) -> BinaryIO:
        return io.BytesIO((self.top / rel).read_bytes())


def _tree(root: Path) -> list[tuple[str, str]]:
    out = []
    for p in sorted(root.rglob("*")):
        kind = "link" if p.is_symlink() else "dir" if p.is_dir() else "file"
        out.append((str(p.relative_to(root)), p.read_text() if kind == "file" else os.readlink(p) if kind == "link"
                    else ""))
    return out


BASE = [Entry(path="etc/keep", type="file", data=b"k"), Entry(path="etc/gone", type="file", data=b"g"),
        Entry(path="var/cache/a", type="file", data=b"a"), Entry(path="var/cache/sub/b", type="file", data=b"b"),
        Entry(path="olddir/x", type="file", data=b"x"), Entry(path="d/lower", type="file", data=b"l"),
        Entry(path="d/sub/old", type="file", data=b"o"), Entry(path="x", type="file", data=b""),
        Entry(path="f/inner", type="file", data=b"i"), Entry(path="s", type="symlink", linkname="etc")]

TOPS: list[Callable[[], BinaryIO]] = [
    lambda: layer([whiteout("etc/gone"), whiteout("olddir"), opaque("var/cache"),
                   Entry(path="var/cache/new", type="file", data=b"n"), Entry(path="var/cache", type="dir")]),
    # foreign ordering: the opaque marker after this layer's own children, a whiteout after the file it names
    lambda: hand_tar([("d/", "dir", ""), ("d/sub/", "dir", ""), ("d/sub/new", "file", ""),
                      ("d/.wh..wh..opq", "file", ""), ("x", "file", ""), (".wh.x", "file", "")]),
    # a directory replaced by a file, a file by a directory, a directory merged, a write through a symlink
    lambda: layer([Entry(path="f", type="file", data=b"now a file"), Entry(path="x", type="dir"),
                   Entry(path="x/in", type="file", data=b"y"), Entry(path="var", type="dir", mode=0o700),
                   Entry(path="var/more", type="file", data=b"m"), Entry(path="s/added", type="file", data=b"s")]),
]


@pytest.mark.parametrize("top", TOPS, ids=["whiteouts-and-opaque", "foreign-order", "replaced-and-merged"])
def test_a_layer_applied_onto_a_layered_root_gives_the_extracted_tree(tmp_path: Path,
                                                                      top: Callable[[], BinaryIO]) -> None:
    lower, plain, upper = tmp_path / "lower", tmp_path / "plain", tmp_path / "upper"
    for d in (lower, plain, upper):
        d.mkdir()
    apply_layer(lower, layer(BASE))
    apply_layer(plain, layer(BASE))
    apply_layer(plain, top())
    root = LayeredRoot(upper, DirLower(lower))
    try:
        apply_layer(upper, top())
        root.ensure_all()
    finally:
        fill_on_touch(upper, None)
    assert _tree(upper) == _tree(plain)
