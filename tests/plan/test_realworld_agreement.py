"""Development check: `graph` and `plan` agree on the stages a build needs and skips, for every Dockerfile of the
real-world corpus (../shared/conformance/realworld, reference data users do not have: skipped without it).

Every base a Dockerfile names is tagged in the test's store (one empty image under each name) and every file its
COPY/ADD instructions name from the context is made (empty), so that the plan gets as far as the Dockerfile
lets it. Then, for the last stage and for the first named stage as --target:
- when the graph refuses the Dockerfile (a blank base, a variable in --from, ...), the plan refuses it with the
  same message;
- when the plan succeeds, its skipped stages are the graph's skipped stages, and its built or cached stages the
  graph's needed ones;
- when the plan fails at a step (an ADD of a URL offline, a file the corpus's context would hold), that step is
  in a stage the graph says is needed: no stage the graph skips is ever looked at.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from minibuild.api import plan
from minibuild.dockerfile.convert import parse_dockerfile
from minibuild.dockerfile.instructions import AddInstruction, CopyInstruction, Dockerfile
from minibuild.errors import MinibuildError
from minibuild.oci.image import Image
from minibuild.plan.graph import StageGraph, graph_of
from minibuild.store import Store
from minibuild.digest import Digest

REALWORLD = Path(os.environ.get("MINIBUILD_REALWORLD_CORPUS")
                 or Path(__file__).resolve().parents[3] / "shared" / "conformance" / "realworld")
_GLOB = re.compile(r"\[[^]]*\]|[*?]")


def _corpus() -> list[Path]:
    return [f for d in (REALWORLD / "corpus", REALWORLD / "inline" / "corpus") if d.is_dir() for f in sorted(d.iterdir())]


def _make_context(df: Dockerfile, ctx: Path) -> None:
    """An empty file (or directory, for a source ending in /) for every context source a COPY/ADD names."""
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir()
    for stage in df.stages:
        for ins in stage.instructions:
            if not isinstance(ins, (CopyInstruction, AddInstruction)) or getattr(ins, "from_", ""):
                continue
            for src in ins.sources:
                if "$" in src or "://" in src or src.startswith("git@"):
                    continue
                rel = _GLOB.sub("x", src).lstrip("/").removeprefix("./")
                target = (ctx / rel).resolve()
                if rel in ("", ".") or not target.is_relative_to(ctx):
                    continue
                try:
                    if src.endswith("/"):
                        target.mkdir(parents=True, exist_ok=True)
                    else:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.touch()
                except OSError:
                    pass  # a name that is a directory in one COPY and a file in another: the plan says so


def _tag_bases(store: Store, graph: StageGraph, empty: Digest) -> None:
    for edge in graph.edges:
        if edge.stage is None and edge.image and edge.image != "scratch":
            try:
                store.tag(edge.image, empty)
            except MinibuildError:
                pass  # a reference no store can name (the plan then says the base is missing)


def _stage_of_line(graph: StageGraph, line: int) -> int:
    return max((n.index for n in graph.nodes if n.line <= line), default=0)


def _targets(df: Dockerfile) -> list[str | None]:
    named = [s.name for s in df.stages[:-1] if s.name]
    return [None, named[0]] if named else [None]


@pytest.mark.skipif(not REALWORLD.is_dir(), reason=f"the real-world corpus is reference data of the development "
                                                   f"machine ({REALWORLD} is absent); users do not have it")
def test_graph_and_plan_agree_on_the_realworld_corpus(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    empty = store.put_image(Image.scratch())
    ctx = tmp_path / "ctx"
    counts = {"agree": 0, "refused alike": 0, "step failed in a needed stage": 0}
    bad: list[str] = []
    for f in _corpus():
        text = f.read_text(encoding="utf-8", errors="replace")
        try:
            df = parse_dockerfile(text)
        except MinibuildError:
            continue  # the front end's answers are checked against BuildKit's elsewhere
        _make_context(df, ctx)
        for target in _targets(df):
            try:
                graph: StageGraph | MinibuildError = graph_of(df, target, {})
            except MinibuildError as exc:
                graph = exc
            if isinstance(graph, StageGraph):
                _tag_bases(store, graph, empty)
            try:
                result = plan(ctx, dockerfile_text=text, store=store, target=target, executor="emulate")
            except MinibuildError as exc:
                if isinstance(graph, MinibuildError):
                    ok = str(exc) == str(graph)
                    counts["refused alike"] += ok
                else:
                    ok = exc.span is None or _stage_of_line(graph, exc.span.line) in graph.needed
                    counts["step failed in a needed stage"] += ok
                if not ok:
                    bad.append(f"{f.name} target={target}: graph {graph!s:.200} / plan {exc!s:.200}")
                continue
            if isinstance(graph, MinibuildError):
                bad.append(f"{f.name} target={target}: graph refused ({graph}) but the plan succeeded")
                continue
            skipped = {s.index for s in result.stages if s.status == "skipped"}
            built = {s.index for s in result.stages if s.status != "skipped"}
            if skipped == set(graph.skipped) and built == set(graph.needed):
                counts["agree"] += 1
            else:
                bad.append(f"{f.name} target={target}: plan skips {sorted(skipped)}, graph {sorted(graph.skipped)}")
    assert not bad, f"{len(bad)} disagreements; the first: " + "\n".join(bad[:10])
    assert counts["agree"] > 1000, counts  # the check reached most of the corpus
