"""The stage graph, as BuildKit resolves it: FROM, COPY --from and RUN --mount from= edges, the target and the
stages it needs. The one resolution build, plan and graph use (``minibuild.teach.graph`` only decorates it).

* A FROM word is expanded with the global scope and names a stage when it equals (case-insensitively) the name
  of an EARLIER stage (the latest one of that name); otherwise it is an image (``FROM busybox AS busybox`` too).
* ``COPY --from`` and ``--mount from=`` are never expanded: a word that would change when expanded is BuildKit's
  error. They name a stage (by name, the last stage of that name; COPY also by index) or else an image; a stage
  that is the current one is a circular dependency, a later one is not defined yet: both errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from minibuild.dockerfile import CopyInstruction, Dockerfile, RunInstruction
from minibuild.dockerfile.expand import ShellLexer
from minibuild.dockerfile.godump import go_quote
from minibuild.dockerfile.mounts import mount_from
from minibuild.dockerfile.suggest import search
from minibuild.errors import ConfigError, PlanError, SourceSpan
from minibuild.plan.scope import global_scope, platform_args
from minibuild.plan.steps import vertex_numbers
from minibuild.record import record

EdgeKind = Literal["from", "copy", "mount"]
_INDEX = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.Atoi takes


@record
class Edge:
    """Data flowing into stage ``target``: its base (``from``), files copied (``copy``) or mounted (``mount``)."""

    kind: EdgeKind
    target: int  # the receiving stage
    line: int  # Dockerfile line of the FROM / COPY / RUN
    stage: int | None  # the source stage, None for an image (scratch included)
    image: str = ""  # the image reference (as written, FROM expanded) when ``stage`` is None
    paths: tuple[str, ...] = ()  # COPY sources, or the mount's source, as written
    dest: str = ""  # COPY destination or mount target, as written


@record
class StageNode:
    """One stage as the graph sees it: its expanded base and the edges into it (its FROM first)."""

    index: int
    name: str | None
    base: str  # expanded FROM word
    edges: tuple[Edge, ...]
    line: int = 0  # line of its FROM
    steps: int = 0  # steps as every view counts them: the M of [stage N/M] (FROM + filesystem steps)

    @property
    def base_stage(self) -> int | None:
        """The stage named by FROM, None for an image or scratch."""
        return self.edges[0].stage

    @property
    def copy_from(self) -> tuple[int, ...]:
        """Stages read by COPY --from, in order, without repeats."""
        return tuple(dict.fromkeys(e.stage for e in self.edges if e.kind == "copy" and e.stage is not None))

    @property
    def images(self) -> tuple[str, ...]:
        """Images read by COPY --from, in order, without repeats."""
        return tuple(dict.fromkeys(e.image for e in self.edges if e.kind == "copy" and e.stage is None))

    @property
    def deps(self) -> tuple[int, ...]:
        """Every stage this one reads (FROM, COPY --from, --mount from=), its base first, without repeats."""
        return tuple(dict.fromkeys(e.stage for e in self.edges if e.stage is not None))

    @property
    def label(self) -> str:
        return self.name if self.name is not None else f"stage-{self.index}"


@record
class StageGraph:
    """All stages, the target and the stages it needs (dependencies first)."""

    nodes: tuple[StageNode, ...]
    target: int
    needed: tuple[int, ...]  # build order, the target last
    needed_by: tuple[tuple[int, Edge], ...] = ()  # each needed stage but the target: the first edge reading it

    @property
    def skipped(self) -> tuple[int, ...]:
        return tuple(n.index for n in self.nodes if n.index not in self.needed)

    @property
    def edges(self) -> tuple[Edge, ...]:
        """Every edge, stage by stage in Dockerfile order (each stage's FROM first)."""
        return tuple(e for n in self.nodes for e in n.edges)


def _stage_names(df: Dockerfile) -> list[str]:
    return [s.name for s in df.stages if s.name]


def resolve_target(df: Dockerfile, target: str | None) -> int:
    """Index of the ``--target`` stage (case-insensitive name or index); the last stage when None."""
    if not df.stages:
        raise PlanError(f"{df.filename} has no FROM instruction: it contains no stages to build")
    if target is None or target == "":
        return len(df.stages) - 1
    stage = df.stage(target)
    if stage is None:
        names = _stage_names(df)
        hint = search(target.lower(), names, case_sensitive=False)
        msg = f"target stage {go_quote(target)} could not be found"
        if hint:
            msg += f" (did you mean {hint}?)"
        msg += f"; stages: {', '.join(names) if names else '(none named; use an index 0-' + str(len(df.stages) - 1) + ')'}"
        raise PlanError(msg)
    return stage.index


def unexpanded_from(df: Dockerfile, word: str, span: SourceSpan | None) -> str:
    """A ``COPY --from`` word, which BuildKit never expands: the word itself, or its error when expanding it
    (with no variables set) would change it (``$X``, quotes, escapes)."""
    if ShellLexer(df.escape).process_word(word, {}, span=span) != word:
        raise PlanError("variable expansion is not supported for --from, define a new stage with FROM using ARG "
                        "from global scope as a workaround", span=span)
    return word


def resolve_stage_ref(df: Dockerfile, ref: str, current: int, span: SourceSpan | None, *,
                      mount_target: str | None = None) -> int | None:
    """The stage a ``COPY --from`` (or, with ``mount_target``, a ``--mount from=``) value names in stage
    ``current``, None when it is an image. A name is the last stage of that name (case-insensitive); COPY also
    takes an index. The current stage is a circular dependency and a later one is not defined yet: errors."""
    idx: int | None = None
    if mount_target is None and _INDEX.fullmatch(ref):
        idx = int(ref)
        if not 0 <= idx < len(df.stages):
            raise PlanError(f"invalid stage index {idx}", span=span)
    else:
        low = ref.lower()
        idx = next((s.index for s in reversed(df.stages) if s.name == low), None)
        if idx is None:
            return None
    label = df.stages[current].name or f"stage-{current}"
    if idx == current:
        raise PlanError(f"circular dependency detected on stage: {label}", span=span)
    if idx > current:
        if mount_target is not None:
            raise PlanError(f"cannot mount from stage {go_quote(ref)} to {go_quote(mount_target)}, stage needs to "
                            f"be defined before current command", span=span)
        raise PlanError(f"cannot copy from stage {go_quote(ref)}, it needs to be defined before current stage "
                        f"{go_quote(label)}", span=span)
    return idx


_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def _unset_args(word: str, from_env: Mapping[str, str]) -> str:
    """``; ARG X has no value (...)`` for the variables ``word`` uses that expand to nothing, else ""."""
    unset = sorted({v for v in _VARIABLE.findall(word) if not from_env.get(v)})
    if not unset:
        return ""
    names = ", ".join(unset)
    return (f"; ARG {names} {'has' if len(unset) == 1 else 'have'} no value (declare it before the first FROM "
            f"with a default, or pass --build-arg {unset[0]}=...)")


def check_image_name(word: str, value: str, from_env: Mapping[str, str], span: SourceSpan | None, *,
                     what: str) -> None:
    """The image name a FROM/--from word expanded to must be one (so nothing, e.g. ``node:latest`` for
    ``node:``, is looked up or imported for it); the error names the ARGs that expanded to nothing."""
    from minibuild.oci.reference import parse_reference

    try:
        parse_reference(value)
    except ConfigError:
        raise PlanError(f"{what}: {word!r} expands to {value!r}, which is not a valid image name"
                        f"{_unset_args(word, from_env)}", span=span) from None


def build_graph(df: Dockerfile, target: str | None, from_env: Mapping[str, str]) -> StageGraph:
    """Expand FROM words with the global scope (``from_env``), link stages, and compute what ``target`` needs."""
    lexer = ShellLexer(df.escape)
    earlier: dict[str, int] = {}  # stage names defined so far (FROM can only name those)
    nodes: list[StageNode] = []
    for stage in df.stages:
        span = stage.from_.span
        base = lexer.process_word(stage.base, dict(from_env), span=span)
        if not base:
            raise PlanError("base name (" + stage.base + ") should not be blank" + _unset_args(stage.base, from_env),
                            span=span)
        base_stage = earlier.get(base.lower())
        if base_stage is None and base != "scratch":
            check_image_name(stage.base, base, from_env, span, what="FROM")
        edges = [Edge(kind="from", target=stage.index, line=span.line, stage=base_stage,
                      image="" if base_stage is not None else base)]
        if stage.name:
            earlier[stage.name] = stage.index
        for instr in stage.instructions:
            if isinstance(instr, CopyInstruction) and instr.from_:
                ref = unexpanded_from(df, instr.from_, instr.span)
                idx = resolve_stage_ref(df, ref, stage.index, instr.span)
                if idx is None:
                    check_image_name(instr.from_, ref, from_env, instr.span, what="COPY --from")
                edges.append(Edge(kind="copy", target=stage.index, line=instr.span.line, stage=idx,
                                  image="" if idx is not None else ref, paths=tuple(instr.sources), dest=instr.dest))
            elif isinstance(instr, RunInstruction):
                for raw in instr.mounts:
                    m = mount_from(raw)
                    if m is None:
                        continue
                    idx = resolve_stage_ref(df, m.from_, stage.index, instr.span, mount_target=m.target)
                    edges.append(Edge(kind="mount", target=stage.index, line=instr.span.line, stage=idx,
                                      image="" if idx is not None else m.from_,
                                      paths=(m.source,) if m.source else (), dest=m.target))
        nodes.append(StageNode(index=stage.index, name=stage.name, base=base, edges=tuple(edges),
                               line=span.line, steps=len(vertex_numbers(stage.instructions))))
    tgt = resolve_target(df, target)
    by = _reach(nodes, tgt)
    # references only point backwards, so index order is a valid build order
    return StageGraph(nodes=tuple(nodes), target=tgt, needed=tuple(sorted({tgt, *by})), needed_by=tuple(by.items()))


def _reach(nodes: list[StageNode], target: int) -> dict[int, Edge]:
    """The stages ``target`` reads, directly or not, each with the first edge found reading it (depth first)."""
    by: dict[int, Edge] = {}
    stack = [target]
    while stack:
        cur = stack.pop()
        for e in nodes[cur].edges:
            if e.stage is not None and e.stage != target and e.stage not in by:
                by[e.stage] = e
                stack.append(e.stage)
    return by


def graph_of(df: Dockerfile, target: str | None, build_args: Mapping[str, str]) -> StageGraph:
    """The stage graph a build with these ``--build-arg``s would use: FROM words expanded with the global ARGs
    (a build arg overrides a declared one) and the predefined platform args."""
    return build_graph(df, target, global_scope(df, build_args, platform_args()).from_env())
