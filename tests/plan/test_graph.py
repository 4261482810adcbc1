"""Stage graph: FROM / COPY --from edges, reachability from the target, forward references, did-you-mean."""

from __future__ import annotations

import pytest

from minibuild.dockerfile import parse_dockerfile
from minibuild.errors import PlanError
from minibuild.plan import build_graph, resolve_target

DF = """\
FROM alpine AS base
RUN true
FROM base AS build
RUN make
FROM alpine AS unused
RUN echo never
FROM scratch AS Final
COPY --from=BUILD /out /out
COPY --from=1 /x /x
COPY --from=nginx:alpine /etc/nginx /etc/nginx
"""


def test_edges_and_reachability() -> None:
    df = parse_dockerfile(DF)
    g = build_graph(df, None, {})
    assert g.target == 3
    assert g.nodes[1].base_stage == 0
    assert g.nodes[3].copy_from == (1,)  # by name (case-insensitive) and by index: one dependency
    assert g.nodes[3].images == ("nginx:alpine",)
    assert g.needed == (0, 1, 3)
    assert g.skipped == (2,)


def test_target_case_insensitive_and_index() -> None:
    df = parse_dockerfile(DF)
    assert build_graph(df, "BUILD", {}).needed == (0, 1)
    assert build_graph(df, "final", {}).target == 3
    assert build_graph(df, "2", {}).needed == (2,)


def test_unknown_target_suggests() -> None:
    df = parse_dockerfile(DF)
    with pytest.raises(PlanError) as info:
        resolve_target(df, "biuld")
    assert "did you mean build?" in str(info.value)
    assert "base, build, unused, final" in str(info.value)


def test_from_uses_global_args() -> None:
    df = parse_dockerfile("ARG V=22\nFROM node:${V} AS a\nFROM a\n")
    g = build_graph(df, None, {"V": "20"})
    assert g.nodes[0].base == "node:20"
    assert g.nodes[1].base_stage == 0


@pytest.mark.parametrize("text, needle", [
    ("FROM alpine AS a\nCOPY --from=b /x /x\nFROM alpine AS b\n", "later stage"),
    ("FROM alpine AS a\nCOPY --from=a /x /x\n", "itself"),
    ("FROM alpine\nCOPY --from=1 /x /x\nFROM alpine\n", "not defined before"),
    ("FROM b AS a\nFROM alpine AS b\n", "later stage"),
])
def test_forward_references_and_cycles_are_errors(text: str, needle: str) -> None:
    with pytest.raises(PlanError) as info:
        build_graph(parse_dockerfile(text), None, {})
    assert needle in str(info.value)
    assert str(info.value).startswith("Dockerfile:")


def test_no_stages() -> None:
    with pytest.raises(Exception):
        resolve_target(parse_dockerfile("ARG X=1\n"), None)
