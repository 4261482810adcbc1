"""Tests of the build context: visibility through .dockerignore, COPY wildcards, confinement, checksums, stat cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibuild.engine.context import BuildContext, StatCache, resolve_in_root
from minibuild.engine.dockerignore import IgnoreMatcher
from minibuild.errors import ContextError, UnsafePathError


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_excluded_parent_with_reincluded_child_is_walked(tmp_path: Path) -> None:
    make(tmp_path, {"a/b/f": "x", "a/g": "y", "keep/k": "k", "top.txt": "z"})
    ctx = BuildContext(tmp_path, IgnoreMatcher(["a", "!a/b/f"]))
    assert [rel for rel, _ in ctx.walk()] == ["a", "a/b", "a/b/f", "keep", "keep/k", "top.txt"]
    assert ctx.visible("a") and ctx.visible("a/b/f") and not ctx.visible("a/g")


def test_excluded_directory_without_exceptions_is_absent(tmp_path: Path) -> None:
    make(tmp_path, {"node_modules/m/i.js": "x", "src/a": "y"})
    ctx = BuildContext(tmp_path, IgnoreMatcher(["node_modules"]))
    assert [rel for rel, _ in ctx.walk()] == ["src", "src/a"]
    assert ctx.glob("node_modules") == [] and ctx.glob("node_modules/m/i.js") == []


def test_glob_rules_like_buildkit(tmp_path: Path) -> None:
    make(tmp_path, {"foo.go": "", "bar.go": "", "sub/dir1/dir2/foo": "", "sub/x": "", "arr[0].txt": "", "index.js": "", "index.ts": ""})
    ctx = BuildContext(tmp_path)
    assert ctx.glob("*.go") == ["bar.go", "foo.go"]
    assert ctx.glob("sub/*") == ["sub/dir1", "sub/x"]  # a matched directory is not searched further
    assert ctx.glob("sub/*/dir2/foo") == ["sub/dir1/dir2/foo"]
    assert ctx.glob("arr[[]0].txt") == ["arr[0].txt"]
    assert ctx.glob("index.?s") == ["index.js", "index.ts"]
    # without --parents, ** is Go filepath.Match's "*" twice: it does not cross "/"
    assert ctx.glob("**/foo") == []
    assert ctx.glob("*/*/*/foo") == ["sub/dir1/dir2/foo"]
    assert ctx.glob("nomatch*") == []
    assert ctx.glob("/foo.go") == ["foo.go"] and ctx.glob("./sub/../foo.go") == ["foo.go"]


def test_glob_base_through_symlink_stays_in_context(tmp_path: Path) -> None:
    make(tmp_path, {"real/a.txt": "", "real/b.txt": ""})
    (tmp_path / "link").symlink_to("real")
    (tmp_path / "abs").symlink_to("/etc")
    ctx = BuildContext(tmp_path)
    assert ctx.glob("link/*.txt") == ["real/a.txt", "real/b.txt"]
    assert ctx.glob("abs/pass*") == []  # /etc inside the context does not exist: never the host's /etc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.from_regex(r"[a-z]{1,6}(/[a-z]{1,6}){0,2}", fullmatch=True), min_size=1, max_size=6))
def test_glob_of_a_literal_existing_path_returns_it(tmp_path_factory: pytest.TempPathFactory, paths: list[str]) -> None:
    root = tmp_path_factory.mktemp("lit")
    made: list[str] = []
    for p in paths:
        try:
            make(root, {p: "x"})
            made.append(p)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue
    ctx = BuildContext(root)
    for p in made:
        if (root / p).exists():
            assert ctx.glob(p) == [p]
            assert ctx.glob("/" + p) == [p]


def test_resolve_in_root_confines_symlinks(tmp_path: Path) -> None:
    make(tmp_path, {"out/sub/foo": "data"})
    (tmp_path / "sub").symlink_to("/out/sub")
    (tmp_path / "sub2").symlink_to("out/sub")
    (tmp_path / "up").symlink_to("../../../../..")
    (tmp_path / "loop").symlink_to("loop")
    assert resolve_in_root(tmp_path, "/sub/foo") == "out/sub/foo"
    assert resolve_in_root(tmp_path, "sub2/foo") == "out/sub/foo"
    assert resolve_in_root(tmp_path, "up/etc/passwd") == "etc/passwd"
    assert resolve_in_root(tmp_path, "../../x") == "x"
    assert resolve_in_root(tmp_path, "sub", follow_last=False) == "sub"
    with pytest.raises(UnsafePathError):
        resolve_in_root(tmp_path, "loop/x")


def test_symlink_to_ignored_file_resolves_to_nothing(tmp_path: Path) -> None:
    make(tmp_path, {"secret": "s"})
    (tmp_path / "link").symlink_to("secret")
    ctx = BuildContext(tmp_path, IgnoreMatcher(["secret"]))
    assert ctx.lstat(ctx.resolve("link")) is None
    assert ctx.lstat("link") is not None  # the link itself is sent


# ------------------------------------------------------------------------------------------ checksums

def test_checksum_ignores_mtime_and_owner_but_not_content_mode_or_link(tmp_path: Path) -> None:
    make(tmp_path, {"d/a": "one", "d/b": "two"})
    (tmp_path / "d" / "l").symlink_to("a")
    ctx = BuildContext(tmp_path)
    base = ctx.checksum(["d"])
    os.utime(tmp_path / "d" / "a", (1, 1))
    if os.geteuid() == 0:  # an ordinary user cannot give a file of the context another owner
        os.chown(tmp_path / "d" / "b", 1234, 1234)
    assert BuildContext(tmp_path).checksum(["d"]) == base
    os.chmod(tmp_path / "d" / "a", 0o4755)
    assert BuildContext(tmp_path).checksum(["d"]) != base
    os.chmod(tmp_path / "d" / "a", 0o644)
    assert BuildContext(tmp_path).checksum(["d"]) == base
    (tmp_path / "d" / "l").unlink()
    (tmp_path / "d" / "l").symlink_to("b")
    assert BuildContext(tmp_path).checksum(["d"]) != base


def test_checksum_of_missing_path_is_a_context_error(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="nope"):
        BuildContext(tmp_path).checksum(["nope"])


_tree = st.dictionaries(
    st.from_regex(r"[a-c]{1,2}(/[a-c]{1,2})?", fullmatch=True),
    st.tuples(st.binary(max_size=16), st.sampled_from([0o644, 0o755, 0o600])),
    min_size=1,
    max_size=6,
)


def _build(root: Path, tree: dict[str, tuple[bytes, int]], order: list[str]) -> None:
    for rel in order:
        data, mode = tree[rel]
        p = root / rel
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            if p.is_dir():
                continue
            p.write_bytes(data)
            os.chmod(p, mode)
        except (FileExistsError, NotADirectoryError):
            continue


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_tree, st.randoms(use_true_random=False), st.integers(min_value=1, max_value=2**31))
def test_checksum_independent_of_creation_order_and_mtime(
    tmp_path_factory: pytest.TempPathFactory, tree: dict[str, tuple[bytes, int]], rnd, stamp: int  # type: ignore[no-untyped-def]
) -> None:
    order = sorted(tree)
    shuffled = list(order)
    rnd.shuffle(shuffled)
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    _build(a, tree, order)
    _build(b, tree, shuffled)
    # keep only trees where both orders produced the same shape (a file may shadow a directory name)
    shape_a = sorted((str(p.relative_to(a)), p.is_dir()) for p in a.rglob("*"))
    shape_b = sorted((str(p.relative_to(b)), p.is_dir()) for p in b.rglob("*"))
    if shape_a != shape_b:
        return
    for p in b.rglob("*"):
        os.utime(p, (stamp, stamp))
    assert BuildContext(a).checksum([""]) == BuildContext(b).checksum([""])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=64), st.binary(max_size=64))
def test_checksum_changes_with_content(tmp_path_factory: pytest.TempPathFactory, one: bytes, two: bytes) -> None:
    root = tmp_path_factory.mktemp("c")
    (root / "f").write_bytes(one)
    first = BuildContext(root).checksum(["f"])
    (root / "f").write_bytes(two)
    assert (BuildContext(root).checksum(["f"]) == first) == (one == two)


# ------------------------------------------------------------------------------------------ stat cache

def test_stat_cache_persists_and_never_rehashes_unchanged_files(tmp_path: Path) -> None:
    ctx_root = make(tmp_path / "ctx", {"a": "1", "b/c": "2"})
    cache_file = tmp_path / "store" / "statcache.json"
    first = StatCache(cache_file, racy_margin_ns=50_000_000)
    time.sleep(0.1)  # let the files' ctime fall clearly before the hashing moment (racy-clean rule)
    digest = BuildContext(ctx_root, stat_cache=first).checksum([""])
    assert first.hashed == 2 and cache_file.exists()
    second = StatCache(cache_file, racy_margin_ns=50_000_000)
    assert BuildContext(ctx_root, stat_cache=second).checksum([""]) == digest
    assert second.hashed == 0
    (ctx_root / "a").write_text("9")  # same size, new content
    third = StatCache(cache_file, racy_margin_ns=50_000_000)
    assert BuildContext(ctx_root, stat_cache=third).checksum([""]) != digest
    assert third.hashed == 1


def test_stat_cache_distrusts_entries_hashed_in_the_same_tick(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("a")
    cache = StatCache(tmp_path / "cache.json", racy_margin_ns=10 * 1_000_000_000)
    cache.sha256(tmp_path / "f")
    cache.sha256(tmp_path / "f")
    assert cache.hashed == 2  # changed within the margin of hashing: never trusted


def test_stat_cache_survives_a_corrupt_file(tmp_path: Path) -> None:
    (tmp_path / "cache.json").write_text("{not json")
    (tmp_path / "f").write_text("a")
    cache = StatCache(tmp_path / "cache.json")
    assert cache.sha256(tmp_path / "f") == "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    cache.save()
    assert StatCache(tmp_path / "cache.json")._entries  # rewritten in good form


def test_stat_cache_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_ENTRIES, entries of vanished files are dropped first, then the least recently hashed."""
    from minibuild.engine.context import StatCache

    monkeypatch.setattr(StatCache, "MAX_ENTRIES", 3)
    cache_file = tmp_path / "stat-cache.json"
    files = []
    for i in range(5):
        f = tmp_path / f"f{i}"
        f.write_text(str(i))
        files.append(f)
    cache = StatCache(cache_file)
    for f in files[:2]:
        cache.sha256(f)
    cache.save()
    files[0].unlink()  # vanished: must be the first to go
    cache = StatCache(cache_file)
    for f in files[2:]:
        cache.sha256(f)
    cache.save()
    import json

    kept = set(json.loads(cache_file.read_text())["entries"])
    assert kept == {str(f) for f in files[2:]}
