"""The kept folded tree's row check: every malformed row refused, a well-formed one kept."""

from __future__ import annotations

import copy

import pytest

from minibuild.store.layerindex import _row_ok

GOOD = ["usr/bin/env", "file", 0o755, 0, 0, 3, 1700000000, "", None, 0, 0, [["user.a", "eA=="]], [0, 512, 3, False]]


def _with(i: int, value: object) -> list[object]:
    row = copy.deepcopy(GOOD)
    row[i] = value
    return row


def test_a_well_formed_row_is_kept() -> None:
    assert _row_ok(GOOD, 1)
    assert _row_ok(["etc", "dir", 0o755, 0, 0, 0, 0, "", None, 0, 0, [], None], 1)
    assert _row_ok(["a/b", "file", 0o644, 1, 2, 0, -5, "", "a/c", 0, 0, [], None], 1)  # mtime before 1970


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
    assert not _row_ok(row, 1)
