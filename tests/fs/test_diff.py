"""Tree diffs: what each change emits, and apply(diff(A, B)) on A == B for random trees (hypothesis)."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibuild.fs.diff import diff_snapshot, diff_trees, entries_for_paths, snapshot
from minibuild.fs.rootfs import apply_layer
from minibuild.errors import BuildError
from minibuild.store.tarlayer import Entry, write_layer
from minibuild.store.tarread import check_layer

IS_ROOT = os.geteuid() == 0


def summary(entries: list[Entry]) -> list[tuple[str, str]]:
    return [(e.path, e.type) for e in entries]


def tar_of(entries: list[Entry], **kw: Any) -> io.BytesIO:
    buf = io.BytesIO()
    write_layer(entries, buf, **kw)
    buf.seek(0)
    return buf


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    t = tmp_path / "t"
    (t / "etc" / "sub").mkdir(parents=True)
    (t / "etc" / "a").write_bytes(b"a")
    (t / "etc" / "sub" / "x").write_bytes(b"x")
    (t / "keep").write_bytes(b"k")
    (t / "link").symlink_to("keep")
    return t


def test_added_modified_metadata_deleted(tree: Path) -> None:
    before = snapshot(tree)
    (tree / "etc" / "a").write_bytes(b"A")          # content
    os.chmod(tree / "keep", 0o600)                   # metadata only
    (tree / "etc" / "new").write_bytes(b"n")         # added
    shutil.rmtree(tree / "etc" / "sub")              # deleted dir: one whiteout
    (tree / "link").unlink()
    (tree / "link").symlink_to("etc/a")              # symlink target
    assert summary(diff_snapshot(tree, before)) == [
        ("etc", "dir"), ("etc/.wh.sub", "file"), ("etc/a", "file"), ("etc/new", "file"),
        ("keep", "file"), ("link", "symlink"),
    ]


def test_unchanged_tree_gives_empty_diff(tree: Path) -> None:
    before = snapshot(tree)
    assert diff_snapshot(tree, before) == []
    assert diff_trees(tree, tree) == []


def test_same_size_rewrite_right_after_snapshot_is_seen(tree: Path) -> None:
    (tree / "fast").write_bytes(b"1")
    before = snapshot(tree)
    with open(tree / "fast", "r+b") as f:  # same size, same coarse timestamp tick
        f.write(b"2")
    st_ = (tree / "fast").stat()
    rec = before.records["fast"]
    os.utime(tree / "fast", ns=(st_.st_atime_ns, rec.mtime_ns))
    assert ("fast", "file") in summary(diff_snapshot(tree, before))


def test_type_changes_need_no_whiteout(tree: Path) -> None:
    before = snapshot(tree)
    shutil.rmtree(tree / "etc" / "sub")
    (tree / "etc" / "sub").write_bytes(b"now a file")
    (tree / "keep").unlink()
    (tree / "keep").mkdir()
    (tree / "keep" / "inside").write_bytes(b"")
    got = summary(diff_snapshot(tree, before))
    assert got == [("etc", "dir"), ("etc/sub", "file"), ("keep", "dir"), ("keep/inside", "file")]


def test_replaced_directory_is_opaque(tree: Path) -> None:
    before = snapshot(tree)
    shutil.rmtree(tree / "etc")
    (tree / "placeholder").mkdir()  # keeps the old inode number from being reused for the new directory
    (tree / "etc").mkdir()
    (tree / "etc" / "b").write_bytes(b"b")
    os.rmdir(tree / "placeholder")
    got = summary(diff_snapshot(tree, before))
    assert got == [("etc", "dir"), ("etc/.wh..wh..opq", "file"), ("etc/b", "file")]


def test_parents_are_emitted_with_real_attributes(tmp_path: Path) -> None:
    t = tmp_path / "t"
    (t / "home" / "u").mkdir(parents=True)
    from minibuild.fs.ownership import overlay_of

    overlay_of(t).set_mode(t / "home" / "u", 0o700)
    overlay_of(t).set_owner(t / "home" / "u", 1000, 1000)  # as RUN chown does, as root and as any user
    before = snapshot(t)
    (t / "home" / "u" / ".profile").write_bytes(b"p")
    (t / "home" / "u" / "gone").write_bytes(b"")
    before2 = snapshot(t)
    entries = {e.path: e for e in diff_snapshot(t, before)}
    assert (entries["home"].type, entries["home/u"].mode) == ("dir", 0o700)
    assert (entries["home/u"].uid, entries["home/u"].gid) == (1000, 1000)
    os.unlink(t / "home" / "u" / "gone")
    wh = {e.path: e for e in diff_snapshot(t, before2)}
    assert set(wh) == {"home", "home/u", "home/u/.wh.gone"} and wh["home/u"].mode == 0o700


def test_new_hardlink_to_unchanged_file_carries_the_target(tree: Path) -> None:
    before = snapshot(tree)
    os.link(tree / "etc" / "a", tree / "hl")
    entries = diff_snapshot(tree, before)
    assert summary(entries) == [("etc", "dir"), ("etc/a", "file"), ("hl", "hardlink")]
    assert entries[-1].linkname == "etc/a"
    check_layer(tar_of(entries))


def test_whiteout_named_files_cannot_be_stored(tree: Path) -> None:
    before = snapshot(tree)
    (tree / ".wh.sneaky").write_bytes(b"")
    with pytest.raises(BuildError, match=".wh."):
        diff_snapshot(tree, before)


def test_entries_for_paths_with_parents_and_links(tree: Path) -> None:
    os.link(tree / "etc" / "a", tree / "etc" / "sub" / "a2")
    os.chmod(tree / "etc", 0o750)
    entries = entries_for_paths(tree, ["/etc/sub", "etc/a"])
    assert summary(entries) == [("etc", "dir"), ("etc/a", "file"), ("etc/sub", "dir"), ("etc/sub/a2", "hardlink"),
                                ("etc/sub/x", "file")]
    assert entries[0].mode == 0o750 and entries[3].linkname == "etc/a"
    assert summary(entries_for_paths(tree, ["etc/sub"], recursive=False)) == [("etc", "dir"), ("etc/sub", "dir")]
    with pytest.raises(BuildError, match="does not exist"):
        entries_for_paths(tree, ["nope"])


def test_diff_layer_round_trip_through_a_real_tar_engine(tree: Path, tmp_path: Path) -> None:
    """GNU tar (independent extractor) reads the layer with the same names and link targets."""
    before = snapshot(tree)
    (tree / "etc" / "deep" / "er").mkdir(parents=True)
    (tree / "etc" / "deep" / "er" / "f").write_bytes(b"f")
    data = tar_of(diff_snapshot(tree, before)).getvalue()
    out = subprocess.run(["tar", "-tf", "-"], input=data, capture_output=True, check=True).stdout.decode().split()
    assert out == ["etc/", "etc/deep/", "etc/deep/er/", "etc/deep/er/f"]


# -- property: apply(diff(A, B)) on A == B --------------------------------------------------------------------

NAMES = ["a", "b", "c", "é"]
FILE_MODES = [0o644, 0o755, 0o600, 0o4755, 0o444]
DIR_MODES = [0o755, 0o700, 0o1777, 0o555]
OWNERS = [0, 1000, 65534]  # held by the ownership overlay: the same as root and as any user


def node_st(depth: int) -> st.SearchStrategy[Any]:
    file = st.tuples(st.just("file"), st.sampled_from([b"", b"x", b"y", b"xy" * 300]), st.sampled_from(FILE_MODES),
                     st.sampled_from(OWNERS))
    link = st.tuples(st.just("symlink"), st.sampled_from(["a", "../b", "/c/a", "nowhere"]))
    leaf = st.one_of(file, link)
    if depth == 0:
        return leaf
    d = st.tuples(st.just("dir"), st.dictionaries(st.sampled_from(NAMES), node_st(depth - 1), max_size=3),
                  st.sampled_from(DIR_MODES), st.sampled_from(OWNERS))
    return st.one_of(leaf, d)


tree_st = st.tuples(
    st.dictionaries(st.sampled_from(NAMES), node_st(2), max_size=4),
    st.lists(st.integers(0, 50), max_size=3),  # hardlinks: index into the list of files
)


def materialise(root: Path, spec: Any, rnd: random.Random | None = None) -> None:
    """Create the tree (in a random order when ``rnd`` is given; directory modes last so 0555 dirs can be filled),
    its owners and modes recorded in the root's ownership overlay as minibuild's writers do."""
    from minibuild.fs.ownership import overlay_of

    overlay = overlay_of(root)
    nodes, links = spec
    ops: list[tuple[str, Any]] = []
    files: list[str] = []

    def walk(prefix: str, children: dict[str, Any]) -> None:
        for name, node in children.items():
            path = f"{prefix}{name}"
            ops.append((path, node))
            if node[0] == "file":
                files.append(path)
            if node[0] == "dir":
                walk(path + "/", node[1])

    walk("", nodes)
    order = list(ops)
    if rnd is not None:
        rnd.shuffle(order)
    root.mkdir(exist_ok=True)
    for path, node in order:
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        if node[0] == "file":
            p.write_bytes(node[1])
            overlay.created(p, node[3], node[3])
            overlay.set_mode(p, node[2])
        elif node[0] == "symlink":
            p.symlink_to(node[1])
            overlay.created(p)
        else:
            p.mkdir(exist_ok=True)
            overlay.created(p)
    for i, idx in enumerate(links):
        if files:
            os.link(root / files[idx % len(files)], root / f"hl{i}")
    for path, node in sorted(ops, key=lambda x: -x[0].count("/")):
        if node[0] == "dir":
            overlay.set_owner(root / path, node[3], node[3])
            overlay.set_mode(root / path, node[2])
            if rnd is not None:
                t = rnd.randrange(10**6, 2**31)  # later than the SOURCE_DATE_EPOCH used below
                os.utime(root / path, (t, t))
    if rnd is not None:
        for path, node in ops:
            if node[0] == "file":
                t = rnd.randrange(10**6, 2**31)  # later than the SOURCE_DATE_EPOCH used below
                os.utime(root / path, (t, t))


def fingerprint(root: Path) -> tuple[dict[str, tuple[Any, ...]], set[frozenset[str]]]:
    from minibuild.fs.ownership import overlay_of

    overlay = overlay_of(root)  # the image's owners and modes, as root and as any user
    out: dict[str, tuple[Any, ...]] = {}
    inodes: dict[int, set[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            s = overlay.lstat(full)
            body: Any = None
            if stat.S_ISLNK(s.st_mode):
                body = os.readlink(full)
            elif stat.S_ISREG(s.st_mode):
                body = hashlib.sha256(Path(full).read_bytes()).hexdigest()
                inodes.setdefault(s.st_ino, set()).add(rel)
            owner = (s.st_uid, s.st_gid)
            perm = None if stat.S_ISLNK(s.st_mode) else stat.S_IMODE(s.st_mode)
            out[rel] = (stat.S_IFMT(s.st_mode), perm, owner, body)
    return out, {frozenset(v) for v in inodes.values() if len(v) > 1}


def _rm(d: Path) -> None:
    for dirpath, dirnames, _ in os.walk(d):
        for n in dirnames:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                os.chmod(p, 0o755)
    shutil.rmtree(d, ignore_errors=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree_st, tree_st, st.sampled_from(["none", "gzip"]))
def test_apply_diff_trees_gives_b(spec_a: Any, spec_b: Any, compression: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    try:
        a, b, work = tmp / "a", tmp / "b", tmp / "work"
        materialise(a, spec_a)
        materialise(b, spec_b)
        materialise(work, spec_a)  # a copy of A, owners and modes included
        layer = tar_of(diff_trees(a, b), compression=compression)
        check_layer(layer)
        layer.seek(0)
        apply_layer(work, layer)
        assert fingerprint(work) == fingerprint(b)
    finally:
        _rm(tmp)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree_st, tree_st)
def test_apply_diff_snapshot_gives_the_new_state(spec_a: Any, spec_b: Any) -> None:
    """Same tree mutated in place (B's top-level names replace A's; others deleted), diffed by snapshot."""
    tmp = Path(tempfile.mkdtemp())
    try:
        live, base = tmp / "live", tmp / "base"
        materialise(live, spec_a)
        materialise(base, spec_a)  # a copy of A, owners and modes included
        before = snapshot(live)
        for child in list(live.iterdir()):
            if child.is_dir() and not child.is_symlink():
                _rm(child)
            else:
                child.unlink()
        materialise(live, spec_b)
        layer = tar_of(diff_snapshot(live, before))
        apply_layer(base, layer)
        assert fingerprint(base) == fingerprint(live)
    finally:
        _rm(tmp)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree_st, st.randoms(use_true_random=False), st.randoms(use_true_random=False))
def test_same_tree_any_order_any_time_same_digest(spec: Any, r1: random.Random, r2: random.Random) -> None:
    tmp = Path(tempfile.mkdtemp())
    try:
        materialise(tmp / "one", spec, r1)
        materialise(tmp / "two", spec, r2)
        digests = set()
        for name in ("one", "two"):
            out = io.BytesIO()
            digests.add(write_layer(entries_for_paths(tmp / name, [""]), out, source_date_epoch=86400).diff_id)
        assert len(digests) == 1
    finally:
        _rm(tmp)
