"""Stage graph: edges, target selection, needed vs skipped stages, COPY --from by index/name/image."""

from __future__ import annotations

import pytest

from minibuild.dockerfile import parse_dockerfile
from minibuild.errors import PlanError
from minibuild.teach.graph import stage_graph
from tests.teach.samples import DOCKERFILE


def graph(text: str, **kw: object):  # type: ignore[no-untyped-def]
    return stage_graph(parse_dockerfile(text), **kw)  # type: ignore[arg-type]


def test_default_target_is_last_stage_and_skips_unreferenced() -> None:
    g = graph(DOCKERFILE)
    assert g.target == 3
    assert g.needed == (0, 2, 3)
    assert g.skipped == (1,)
    assert g.stages[1].reason == "not needed for target 3"
    assert g.stages[0].reason == "needed by 3 (COPY --from, line 14)"
    assert g.stages[3].reason == "the target"


def test_edges_carry_kind_paths_and_lines() -> None:
    g = graph(DOCKERFILE)
    summary = [(e.kind, e.source, e.target, e.line, e.paths, e.dest, e.needed) for e in g.edges]
    assert summary == [
        ("from", "i0", 0, 2, (), "", True),
        ("from", "s0", 1, 7, (), "", False),
        ("from", "i1", 2, 10, (), "", True),
        ("from", "i2", 3, 13, (), "", True),
        ("copy", "s0", 3, 14, ("/out/app",), "/app", True),
        ("copy", "s2", 3, 15, ("/static",), "/static", True),
    ]
    assert [(i.ref, i.scratch) for i in g.images] == [("golang:1.22", False), ("alpine:3.20", False),
                                                       ("scratch", True)]
    assert g.stages[1].base_stage == 0 and g.stages[0].base_stage is None


def test_target_selection_is_case_insensitive_and_stages_after_it_are_skipped() -> None:
    g = graph(DOCKERFILE, target="TEST")
    assert g.target == 1
    assert g.needed == (0, 1)
    assert g.stages[2].reason == "after the target test"
    assert g.stages[3].reason == "after the target test"
    assert [i.needed for i in g.images] == [True, False, False]


def test_target_through_from_chain() -> None:
    text = "FROM busybox AS a\nFROM a AS b\nFROM b AS c\nFROM busybox AS other\nRUN true\n"
    g = graph(text, target="c")
    assert g.needed == (0, 1, 2)
    assert g.stages[0].reason == "needed by b (FROM, line 2)"


def test_unknown_target_suggests() -> None:
    with pytest.raises(PlanError, match='target stage "bulid" could not be found.*build'):
        graph("FROM busybox AS build\nFROM scratch\n", target="bulid")


def test_copy_from_index_name_and_image() -> None:
    text = ("FROM busybox AS one\nRUN true\nFROM busybox\nRUN true\n"
            "FROM scratch\nCOPY --from=0 /a /a\nCOPY --from=1 /b /b\nCOPY --from=alpine:3.20 /etc/os-release /c\n")
    g = graph(text)
    copies = [(e.source, e.paths) for e in g.edges if e.kind == "copy"]
    assert copies == [("s0", ("/a",)), ("s1", ("/b",)), ("i2", ("/etc/os-release",))]
    assert g.images[2].ref == "alpine:3.20" and g.images[2].needed
    assert g.needed == (0, 1, 2)


def test_stage_name_masks_image_of_same_name() -> None:
    g = graph("FROM busybox AS golang\nRUN true\nFROM scratch\nCOPY --from=golang /usr/bin/go go\n")
    assert [e.source for e in g.edges if e.kind == "copy"] == ["s0"]


def test_from_with_global_arg_and_build_arg() -> None:
    text = "ARG BASE=build\nFROM busybox AS build\nFROM alpine AS other\nFROM ${BASE}\n"
    assert graph(text).stages[2].base_stage == 0
    g = graph(text, build_args={"BASE": "other"})
    assert g.stages[2].base_stage == 1
    assert g.needed == (1, 2)
    g = graph(text, build_args={"BASE": "ubuntu:24.04"})
    assert g.stages[2].base_stage is None and g.stages[2].base == "ubuntu:24.04"
    # a build arg for an ARG not declared globally does not reach FROM
    assert graph("FROM ${X:-busybox}\n", build_args={"X": "alpine"}).stages[0].base == "busybox"


def test_forward_and_self_references_are_errors() -> None:
    with pytest.raises(PlanError, match="needs to be defined before current stage"):
        graph("FROM busybox AS target\nCOPY --from=build / /out\nFROM alpine AS build\n")
    with pytest.raises(PlanError, match="circular dependency detected on stage: stage0"):
        graph("FROM busybox AS stage0\nCOPY --from=stage0 /a /b\n")
    with pytest.raises(PlanError, match="variable expansion is not supported for --from"):
        graph("FROM busybox\nCOPY --from=$FOO . .\n")
    with pytest.raises(PlanError, match="no stages"):
        graph("ARG foo=bar\n")


def test_run_mount_from_is_an_edge() -> None:
    text = "FROM busybox AS deps\nRUN true\nFROM busybox\nRUN --mount=type=bind,from=deps,source=/x,target=/y cat /y\n"
    g = graph(text)
    mount = [e for e in g.edges if e.kind == "mount"]
    assert [(e.source, e.paths, e.dest) for e in mount] == [("s0", ("/x",), "/y")]
    assert g.needed == (0, 1)


def test_sizes_by_name_or_index() -> None:
    g = graph(DOCKERFILE, sizes={"build": 10, "3": 20}, image_sizes={"golang:1.22": 30})
    assert [s.size for s in g.stages] == [10, None, None, 20]
    assert g.images[0].size == 30 and g.images[1].size is None
