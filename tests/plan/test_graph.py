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
    ("FROM alpine AS a\nCOPY --from=b /x /x\nFROM alpine AS b\n",
     'Dockerfile:2: cannot copy from stage "b", it needs to be defined before current stage "a"'),
    ("FROM alpine AS a\nCOPY --from=a /x /x\n", "Dockerfile:2: circular dependency detected on stage: a"),
    ("FROM alpine\nCOPY --from=0 /x /x\n", "Dockerfile:2: circular dependency detected on stage: stage-0"),
    ("FROM alpine\nCOPY --from=1 /x /x\nFROM alpine\n",
     'Dockerfile:2: cannot copy from stage "1", it needs to be defined before current stage "stage-0"'),
    ("FROM alpine\nCOPY --from=2 /x /x\nFROM alpine\n", "Dockerfile:2: invalid stage index 2"),
    ("FROM alpine AS a\nRUN --mount=from=b,target=/m true\nFROM alpine AS b\n",
     'Dockerfile:2: cannot mount from stage "b" to "/m", stage needs to be defined before current command'),
])
def test_forward_references_and_cycles_are_errors(text: str, needle: str) -> None:
    with pytest.raises(PlanError) as info:
        build_graph(parse_dockerfile(text), None, {})
    assert str(info.value) == needle


@pytest.mark.parametrize("text", [
    "FROM busybox AS busybox\nRUN true\n",  # BuildKit and the classic builder: the image, not itself
    "FROM b AS a\nFROM alpine AS b\n",  # only an EARLIER stage is a FROM reference
])
def test_from_names_only_an_earlier_stage(text: str) -> None:
    g = build_graph(parse_dockerfile(text), "0", {})
    assert g.nodes[0].base_stage is None and g.nodes[0].base in ("busybox", "b")
    assert g.needed == (0,)


def test_from_names_the_latest_earlier_stage_of_that_name() -> None:
    df = parse_dockerfile("FROM alpine AS x\nFROM busybox AS x\nFROM x\nFROM alpine AS x\n")
    assert build_graph(df, "2", {}).nodes[2].base_stage == 1


def test_copy_from_names_the_last_stage_of_that_name() -> None:
    """BuildKit looks COPY --from names up once every stage is known: a later redefinition is the one meant."""
    df = parse_dockerfile("FROM alpine AS x\nFROM alpine\nCOPY --from=x /a /a\nFROM alpine AS x\n")
    with pytest.raises(PlanError, match="needs to be defined before current stage"):
        build_graph(df, "1", {})


@pytest.mark.parametrize("word", ["$SRC", "${SRC}", "a$SRC", "'$SRC'"])
def test_copy_from_is_never_expanded(word: str) -> None:
    """testDockerfileCopyFromArgs: not even with a global ARG of that name, and in a stage the target skips."""
    df = parse_dockerfile(f"ARG SRC=a\nFROM alpine AS a\nFROM alpine AS b\nCOPY --from={word} /x /y\nFROM a\n")
    with pytest.raises(PlanError) as info:
        build_graph(df, None, {"SRC": "a"})
    assert str(info.value) == ("Dockerfile:4: variable expansion is not supported for --from, define a new stage "
                               "with FROM using ARG from global scope as a workaround")


def test_run_mount_from_is_a_dependency() -> None:
    df = parse_dockerfile("FROM alpine AS deps\nFROM alpine AS other\nFROM alpine\n"
                          "RUN --mount=type=bind,from=deps,source=/x,target=/y true\n")
    g = build_graph(df, None, {})
    assert g.needed == (0, 2)
    assert [(e.kind, e.stage, e.paths, e.dest) for e in g.nodes[2].edges] == [
        ("from", None, (), ""), ("mount", 0, ("/x",), "/y")]


def test_no_stages() -> None:
    with pytest.raises(Exception):
        resolve_target(parse_dockerfile("ARG X=1\n"), None)


SAME_NAME = """\
FROM busybox AS busybox
RUN mark
FROM alpine AS a
COPY --from=busybox /etc/passwd /p
FROM busybox AS c
"""


def test_build_plan_and_graph_resolve_from_alike(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`FROM busybox AS busybox` is the busybox image (not a cycle); the later `FROM busybox` is that stage, and
    `COPY --from=busybox` reads the stage: build, plan and graph say the same."""
    from minibuild.api import build, plan
    from minibuild.executors.executor import FakeEffect, FakeExecutor
    from minibuild.teach.graph import stage_graph

    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(SAME_NAME)
    g = stage_graph(parse_dockerfile(SAME_NAME))
    assert [s.base_stage for s in g.stages] == [None, None, 0]
    assert [(e.kind, e.source) for e in g.edges] == [("from", "i0"), ("from", "i1"), ("copy", "s0"), ("from", "s0")]
    p = plan(ctx, store=tmp_path / "s")
    assert [(s.label, s.status == "skipped", s.base_stage) for s in p.stages] == [
        ("busybox", False, None), ("a", True, None), ("c", False, 0)]
    ex = FakeExecutor({"mark": FakeEffect(writes=(("/marked", b"1"),))})
    r = build(ctx, store=tmp_path / "s", executor=ex, target="a")
    assert [s.status for s in r.stages] == ["built", "built", "skipped"] and ex.commands == ("/bin/sh -c mark",)
    r = build(ctx, store=tmp_path / "s", executor=ex)
    # c is the busybox stage: its store layers are stage 0's (the exported image has them with clamped mtimes)
    assert dict(r.stage_images)[2].layers[-1].digest.value in {d for d, _ in r.stages[0].image_layers}


def test_from_a_name_defined_only_later_is_the_image_in_every_view(  # type: ignore[no-untyped-def]
        tmp_path, monkeypatch) -> None:
    from minibuild.api import plan
    from minibuild.teach.graph import stage_graph

    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0")
    text = "FROM busybox AS first\nFROM alpine AS busybox\n"
    (tmp_path / "Dockerfile").write_text(text)
    assert stage_graph(parse_dockerfile(text), target="first").stages[0].base_stage is None
    p = plan(tmp_path, store=tmp_path / "s", target="first")
    assert [(s.base, s.status, s.base_stage) for s in p.stages] == [("busybox", "built", None),
                                                                  ("alpine", "skipped", None)]


@pytest.mark.parametrize(("text", "line"), [
    # BuildKit's testDockerfileCopyFromArgs: a global ARG does not reach --from (the build used to build stage
    # `a`, expand $SRC to "" and fail on the context; graph refused it)
    ("ARG SRC=a\nFROM busybox AS a\nRUN true\nFROM busybox\nCOPY --from=$SRC /etc/passwd /p\n",
     "error: Dockerfile:5: variable expansion is not supported for --from, define a new stage with FROM using ARG "
     "from global scope as a workaround"),
    ("FROM busybox AS a\nFROM busybox\nRUN --mount=from=$A,target=/m true\n",
     "error: Dockerfile:3: 'from' doesn't support variable expansion, define alias stage instead"),
    ("FROM busybox AS busybox\nCOPY --from=busybox /a /b\n",
     "error: Dockerfile:2: circular dependency detected on stage: busybox"),
])
def test_build_plan_and_graph_give_the_same_error(  # type: ignore[no-untyped-def]
        tmp_path, capsys, monkeypatch, text, line) -> None:
    from minibuild.cli import main

    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0")
    (tmp_path / "Dockerfile").write_text(text)
    for command in ("build", "plan", "graph"):
        with pytest.raises(SystemExit) as exit_:
            main(["--store", str(tmp_path / "s"), command, str(tmp_path)])
        out, err = capsys.readouterr()
        assert (command, exit_.value.code, err.strip().splitlines()) == (command, 1, [line])
