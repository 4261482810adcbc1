"""Tests of .dockerignore reading and matching.

The tables are moby/patternmatcher's own test tables (patternmatcher_test.go, ignorefile_test.go; Apache-2.0,
Copyright Docker, Inc.), which in turn carry Go's filepath.Match tests (BSD-style, The Go Authors).
"""

from __future__ import annotations

import posixpath
import subprocess
from pathlib import Path

import pytest

from minibuild.engine.context import BuildContext
from minibuild.engine.dockerignore import (
    BadPatternError,
    IgnoreMatcher,
    clean_path,
    go_match,
    ignore_file_for,
    load_ignore,
    read_patterns,
)
from minibuild.errors import ContextError

# (pattern, path, matches) from patternmatcher's TestMatches
MATCHES = [
    ("**", "file", True), ("**", "file/", True), ("**/", "file", True), ("**/", "file/", True), ("**", "/", True),
    ("**/", "/", True), ("**", "dir/file", True), ("**/", "dir/file", True), ("**", "dir/file/", True),
    ("**/", "dir/file/", True), ("**/**", "dir/file", True), ("**/**", "dir/file/", True), ("dir/**", "dir/file", True),
    ("dir/**", "dir/file/", True), ("dir/**", "dir/dir2/file", True), ("dir/**", "dir/dir2/file/", True),
    ("**/dir", "dir", True), ("**/dir", "dir/file", True), ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True), ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file/", True), ("**file", "file", True), ("**file", "dir/file", True),
    ("**/file", "dir/file", True), ("**file", "dir/dir/file", True), ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True), ("**/file*", "dir/dir/file.txt", True), ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True), ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True), ("**/**/*.txt2", "dir/dir/file.txt", False), ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True), ("a**/*.txt", "a/file.txt", True), ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True), ("a/*.txt", "a/dir/file.txt", False), ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True), ("a[b-d]e", "ae", False), ("a[b-d]e", "ace", True), ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True), (".*", ".foo", True), (".*", "foo", False), ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True), ("abc.def", "abcZdef", False), ("abc?def", "abcZdef", True), ("abc?def", "abcdef", False),
    ("a\\\\", "a\\", True), ("**/foo/bar", "foo/bar", True), ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True), ("abc/**", "abc", False), ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True), ("**/.foo", ".foo", True), ("**/.foo", "bar.foo", False), ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False), ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True), ("a\\*b", "a*b", True),
]

MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    # the small named tests of patternmatcher_test.go
    (["*"], "fileutils.go", True),
    (["*.go"], "fileutils.go", True),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    ([], "any/path/there", False),
    (["  !docs/README.md", "docs"], "docs/README.md", True),
]

# Go's filepath.Match table as carried by patternmatcher_test.go: (pattern, name, match, bad_pattern)
GO_MATCH = [
    ("abc", "abc", True, False), ("*", "abc", True, False), ("*c", "abc", True, False), ("a*", "a", True, False),
    ("a*", "abc", True, False), ("a*", "ab/c", False, False), ("a*/b", "abc/b", True, False), ("a*/b", "a/c/b", False, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True, False), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False, False), ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False, False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True, False), ("a*b?c*x", "abxbbxdbxebxczzy", False, False),
    ("ab[c]", "abc", True, False), ("ab[b-d]", "abc", True, False), ("ab[e-g]", "abc", False, False),
    ("ab[^c]", "abc", False, False), ("ab[^b-d]", "abc", False, False), ("ab[^e-g]", "abc", True, False),
    ("a\\*b", "a*b", True, False), ("a\\*b", "ab", False, False), ("a?b", "a☺b", True, False), ("a[^a]b", "a☺b", True, False),
    ("a???b", "a☺b", False, False), ("a[^a][^a][^a]b", "a☺b", False, False), ("[a-ζ]*", "α", True, False),
    ("*[a-ζ]", "A", False, False), ("a?b", "a/b", False, False), ("a*b", "a/b", False, False), ("[\\]a]", "]", True, False),
    ("[\\-]", "-", True, False), ("[x\\-]", "x", True, False), ("[x\\-]", "-", True, False), ("[x\\-]", "z", False, False),
    ("[\\-x]", "x", True, False), ("[\\-x]", "-", True, False), ("[\\-x]", "a", False, False),
    ("[]a]", "]", False, True), ("[-]", "-", False, True), ("[x-]", "x", False, True), ("[x-]", "-", False, True),
    ("[x-]", "z", False, True), ("[-x]", "x", False, True), ("[-x]", "-", False, True), ("[-x]", "a", False, True),
    ("\\", "a", False, True), ("[a-b-c]", "a", False, True), ("[", "a", False, True), ("[^", "a", False, True),
    ("[^bc", "a", False, True), ("a[", "a", False, True), ("a[", "ab", False, True), ("*x", "xxx", True, False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), MATCHES)
def test_patternmatcher_table(pattern: str, path: str, expected: bool) -> None:
    m = IgnoreMatcher([pattern])
    # MatchesOrParentMatches (no walk context) and the walk-style parents-first evaluation must agree
    # raw text, as the Go test passes it (MatchesOrParentMatches / MatchesUsingParentResults with no context)
    assert m.match(path, None)[0] is expected
    # parents first, as the Go test's MatchesUsingParentResults case does (parent = filepath.Dir(text))
    parent_path = clean_path(posixpath.dirname(path) or ".")
    parent = None
    if parent_path != ".":
        parts = parent_path.split("/")
        for k in range(1, len(parts) + 1):
            _, parent = m.match("/".join(parts[:k]), parent)
    assert m.match(path, parent)[0] is expected


@pytest.mark.parametrize(("patterns", "path", "expected"), MULTI)
def test_patternmatcher_multi(patterns: list[str], path: str, expected: bool) -> None:
    assert IgnoreMatcher(patterns).ignored(path) is expected


@pytest.mark.parametrize(("pattern", "name", "expected", "bad"), GO_MATCH)
def test_go_filepath_match_table(pattern: str, name: str, expected: bool, bad: bool) -> None:
    if bad:
        with pytest.raises(BadPatternError):
            go_match(pattern, name)
        with pytest.raises(ContextError, match="syntax error in pattern"):
            IgnoreMatcher([pattern])
    else:
        assert go_match(pattern, name) is expected


def test_single_exclamation_is_an_error() -> None:
    with pytest.raises(ContextError, match="illegal exclusion pattern"):
        IgnoreMatcher(["!"])


def test_reversed_range_rejected_like_go_regexp() -> None:
    # patternmatcher issue moby/moby#52203: "[Local-Only]" passes filepath.Match but fails when compiled
    with pytest.raises(ContextError):
        IgnoreMatcher(["[Local-Only]/"])


def test_read_patterns_like_ignorefile_readall() -> None:
    text = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! "
    assert read_patterns(text) == ("test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!")


def test_read_patterns_bom_clean_and_indented_comment() -> None:
    text = "\ufeffa/../b/./c//\n  # not a comment: only column 0 starts one\n  spaced  \n"
    assert read_patterns(text) == ("b/c", "# not a comment: only column 0 starts one", "spaced")


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [("", "."), ("a/../..", ".."), ("/../x", "/x"), ("a//b/./c/", "a/b/c"), ("/", "/"), ("./", "."), ("../a/../b", "../b")],
)
def test_clean_path_is_go_path_clean(raw: str, cleaned: str) -> None:
    assert clean_path(raw) == cleaned


def test_last_match_wins_and_parent_carry() -> None:
    m = IgnoreMatcher(["*.md", "!README.md", "README.md"])
    assert m.ignored("README.md")
    m = IgnoreMatcher(["*.md", "!README*.md"])
    assert not m.ignored("README-secret.md") and m.ignored("CHANGES.md")
    m = IgnoreMatcher(["build", "!build/keep"])
    assert m.ignored("build/x") and not m.ignored("build/keep") and not m.ignored("build/keep/deep")


def test_walk_quirk_of_skipped_patterns_matches_moby() -> None:
    # MatchesUsingParentResults does not record patterns it skipped for the parent, so "d" (3rd) never carries to
    # "d/x": moby and BuildKit keep d/x although a naive "ancestor matches" reading would exclude it.
    m = IgnoreMatcher(["d", "!d/x", "d"])
    assert not m.ignored("d/x")
    assert m.ignored("d/y")


def test_must_descend_only_when_an_exception_may_lie_below() -> None:
    assert not IgnoreMatcher(["node_modules", "!README.md"]).must_descend("node_modules")
    assert IgnoreMatcher(["node_modules", "!node_modules/keep/*"]).must_descend("node_modules")
    assert IgnoreMatcher(["node_modules", "!**/keep"]).must_descend("node_modules")
    assert not IgnoreMatcher(["node_modules"]).must_descend("node_modules")


def test_dockerfile_specific_ignore_file_is_preferred(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    (tmp_path / ".dockerignore").write_text("general\n")
    df = tmp_path / "build" / "app.Dockerfile"
    df.write_text("FROM scratch\n")
    assert ignore_file_for(tmp_path, df) == tmp_path / ".dockerignore"
    (tmp_path / "build" / "app.Dockerfile.dockerignore").write_text("specific\n")
    assert ignore_file_for(tmp_path, df) == tmp_path / "build" / "app.Dockerfile.dockerignore"
    m = load_ignore(tmp_path, df)
    assert m.ignored("specific") and not m.ignored("general")
    assert not load_ignore(tmp_path / "build", None)  # no ignore file at all: empty matcher


# -------------------------------------------------------------------------------- against the classic builder

CONTEXT_FILES = (
    "Dockerfile", ".dockerignore", "a.md", "README.md", "docs/x.md", "docs/keep.txt", "src/a.go", "src/deep/b.go",
    "src/deep/c.txt", "build/out.bin", "build/keep/k", "node_modules/m/index.js", "x[1].txt", "sp ace.txt",
)
CLASSIC_CASES = {
    # each checked against `DOCKER_BUILDKIT=0 docker build` (moby 20.10) in test_matches_classic_builder below
    "md-exception": "*.md\n!README.md\n",
    "dir-reinclude": "build\n!build/keep\ndocs\n!docs/keep.txt\n",
    "doublestar": "**/*.txt\n!docs/keep.txt\n**/deep\n",
    "self-and-dockerfile": "Dockerfile\n.dockerignore\nnode_modules\n/src/*.go\n",
    "charclass-escape": "x\\[1\\].txt\nsp?ace.txt\n# comment\n\n[a-b].md\n",
}


def _make_context(root: Path, ignore_text: str) -> None:
    for rel in CONTEXT_FILES:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"content of {rel}\n")
    (root / "Dockerfile").write_text("FROM minibuild-test/busybox:latest\nCOPY . /out/\n")
    (root / ".dockerignore").write_text(ignore_text)


def _expected_by_minibuild(root: Path) -> set[str]:
    ctx = BuildContext(root, load_ignore(root, root / "Dockerfile"))
    return {rel for rel, _ in ctx.walk("")}


@pytest.mark.interop
def test_matches_classic_builder(tmp_path: Path, docker, busybox_image) -> None:  # type: ignore[no-untyped-def]
    for name, text in CLASSIC_CASES.items():
        root = tmp_path / name
        root.mkdir()
        _make_context(root, text)
        tag = f"minibuild-test/dockerignore-{name}"
        env = dict(docker.env, DOCKER_BUILDKIT="0")  # the classic builder, on purpose
        subprocess.run(["docker", "build", "-q", "-t", tag, str(root)], env=env, check=True, capture_output=True, timeout=300)
        cid = docker.run("create", tag).stdout.decode().strip()
        try:
            tar = docker.run("export", cid).stdout
        finally:
            docker.run("rm", cid, check=False)
            docker.run("rmi", tag, check=False)
        names = subprocess.run(["tar", "-t"], input=tar, capture_output=True, check=True).stdout.decode().splitlines()
        got = {n.rstrip("/")[len("out/"):] for n in names if n.startswith("out/") and n.rstrip("/") != "out"}
        assert got == _expected_by_minibuild(root), name
