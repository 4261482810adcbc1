"""The kept folded tree (minibuild.store.keptree): found by path, listed by directory, every malformed row refused."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minibuild.digest import Digest
from minibuild.store.keptree import Malformed, TreeFile, encode_tree, row_ok

GOOD = ["usr/bin/env", "file", 0o755, 0, 0, 3, 1700000000, "", None, 0, 0, [["user.a", "eA=="]], [0, 512, 3, False]]


def _with(i: int, value: object) -> list[object]:
    row = copy.deepcopy(GOOD)
    row[i] = value
    return row


def test_a_well_formed_row_is_kept() -> None:
    assert row_ok(GOOD, 1)
    assert row_ok(["etc", "dir", 0o755, 0, 0, 0, 0, "", None, 0, 0, [], None], 1)
    assert row_ok(["a/b", "file", 0o644, 1, 2, 0, -5, "", "a/c", 0, 0, [], None], 1)  # mtime before 1970


@pytest.mark.parametrize("row", [
    "not a list", GOOD[:-1], [*GOOD, None],
    _with(0, ""), _with(0, "/abs"), _with(0, "a//b"), _with(0, "a/"), _with(0, "./a"), _with(0, "a/./b"),
    _with(0, "a/.."), _with(0, "../a"), _with(0, ".."), _with(0, "."), _with(0, "a\0b"), _with(0, 7),
    _with(1, "hardlink"), _with(1, "socket"), _with(1, ["file"]), _with(1, None),
    _with(2, -1), _with(2, 1.0), _with(2, True), _with(3, "0"), _with(4, -2), _with(5, None), _with(9, -1),
    _with(10, False), _with(6, 1.5), _with(6, "0"),
    _with(7, None), _with(8, 3), _with(11, None), _with(11, [["a"]]), _with(11, [["a", 1]]), _with(11, [("a", "b")]),
    _with(12, [0, 512, 3]), _with(12, [1, 512, 3, False]), _with(12, [-1, 512, 3, False]),
    _with(12, [0, 513, 3, False]), _with(12, [0, -512, 3, False]), _with(12, [0, 512, 4, False]),
    _with(12, [0, 512, 3, 0]), _with(12, (0, 512, 3, False)), _with(12, "0:512"),
], ids=repr)
def test_a_malformed_row_is_refused(row: object) -> None:
    assert not row_ok(row, 1)


_NAME = st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1, max_size=6) \
    .filter(lambda n: n not in (".", ".."))


@st.composite
def _trees(draw: st.DrawFn) -> list[list[object]]:
    """A well-formed fold: directories and files, every parent present."""
    paths: set[str] = set()
    for parts in draw(st.lists(st.lists(_NAME, min_size=1, max_size=4), max_size=30)):
        paths.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    leaves = {p for p in paths if not any(q.startswith(p + "/") for q in paths)}
    return [[p, "file" if p in leaves else "dir", 0o644, 0, 0, 0, 0, "", None, 0, 0, [], None] for p in paths]


@given(_trees())
def test_a_kept_tree_finds_every_path_and_lists_every_directory(rows: list[list[object]]) -> None:
    digest = Digest("sha256:" + "ab" * 32)
    tree = TreeFile.of_bytes(encode_tree([digest], rows))
    assert tree.layers == [digest] and tree.count == len(rows)
    by_rel = {r[0]: r for r in rows}
    for rel, row in by_rel.items():
        assert tree.row(str(rel)) == row
        assert tree.row(str(rel) + "x") == by_rel.get(str(rel) + "x")
    for d in ["", *(str(r[0]) for r in rows if r[1] == "dir")]:
        want = sorted(str(r[0]).rpartition("/")[2] for r in rows if str(r[0]).rpartition("/")[0] == d)
        assert sorted(tree.names(d)) == want
    assert sorted(map(str, (r[0] for r in tree.rows()))) == sorted(map(str, by_rel))


def test_hard_link_groups_hold_the_canonical_file_while_it_is_the_same() -> None:
    c = [0, 512, 3, False]
    rows: list[list[object]] = [
        ["a", "file", 0o644, 0, 0, 3, 0, "", None, 0, 0, [], c],
        ["b", "file", 0o644, 0, 0, 3, 0, "", "a", 0, 0, [], c],
        ["c", "file", 0o644, 0, 0, 3, 0, "", "gone", 0, 0, [], [0, 1024, 3, False]],
        ["d", "file", 0o644, 0, 0, 3, 0, "", "gone", 0, 0, [], [0, 1024, 3, False]],
    ]
    tree = TreeFile.of_bytes(encode_tree([Digest("sha256:" + "ab" * 32)], rows))
    assert tree.groups["a"] == tree.groups["b"] == ["a", "b"]
    assert tree.groups["c"] == ["c", "d"] and "gone" not in tree.groups


@pytest.mark.parametrize("cut", [0, 7, 11, 20, -1])
def test_a_truncated_kept_tree_is_malformed_not_a_crash(cut: int) -> None:
    rows: list[list[object]] = [["a", "dir", 0o755, 0, 0, 0, 0, "", None, 0, 0, [], None]]
    data = encode_tree([Digest("sha256:" + "ab" * 32)], rows)
    with pytest.raises(Malformed):
        tree = TreeFile.of_bytes(data[:cut])
        tree.row("a")
