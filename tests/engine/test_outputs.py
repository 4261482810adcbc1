"""minibuild.engine.outputs.final_members: which layer's member is each path's final version (OCI whiteouts)."""

from __future__ import annotations

from minibuild.engine.outputs import final_members, parse_output
from minibuild.store.tarlayer import Entry


def _f(path: str) -> Entry:
    return Entry(path=path, type="file")


def _d(path: str) -> Entry:
    return Entry(path=path, type="dir")


def test_whiteouts_opaque_dirs_and_replaced_directories() -> None:
    layers = [
        [_d("a"), _f("a/x"), _f("a/y"), _d("b"), _f("b/z"), _d("c"), _f("c/w"), _f("keep")],
        [_f("a/.wh.x"), _d("b"), _f("b/.wh..wh..opq"), _f("b/new"), _f("c"), _f(".wh.keep")],
        [_f("keep")],
    ]
    assert final_members(layers) == {"a": 0, "a/y": 0, "b": 1, "b/new": 1, "c": 1, "keep": 2}


def test_whiteout_does_not_hide_its_own_layer() -> None:
    assert final_members([[_f("x")], [_f("x"), _f(".wh.x")]]) == {"x": 1}


def test_plain_path_and_typed_forms() -> None:
    assert parse_output("out.tar").type == "docker"
    assert parse_output("type=local,dest=d").dest.name == "d"
