"""The stage graph: FROM and COPY --from edges, target resolution, reachability, cycles and forward references."""

from __future__ import annotations

import re
from collections.abc import Mapping

from minibuild.dockerfile import CopyInstruction, Dockerfile, OnbuildInstruction
from minibuild.dockerfile.expand import ShellLexer
from minibuild.dockerfile.suggest import search
from minibuild.errors import ConfigError, PlanError, SourceSpan
from minibuild.record import record


@record
class StageNode:
    """One stage as the graph sees it: its expanded base, the stage it builds FROM (if any) and its --from deps."""

    index: int
    name: str | None
    base: str  # expanded FROM word
    base_stage: int | None  # index of the stage named by FROM, None for an image or scratch
    copy_from: tuple[int, ...]  # stages read by COPY --from, in order, without repeats
    images: tuple[str, ...]  # images read by COPY --from

    @property
    def deps(self) -> tuple[int, ...]:
        return ((self.base_stage,) if self.base_stage is not None else ()) + tuple(
            i for i in self.copy_from if i != self.base_stage)

    @property
    def label(self) -> str:
        return self.name if self.name is not None else f"stage-{self.index}"


@record
class StageGraph:
    """All stages, the target and the stages it needs (dependencies first)."""

    nodes: tuple[StageNode, ...]
    target: int
    needed: tuple[int, ...]  # build order, the target last

    @property
    def skipped(self) -> tuple[int, ...]:
        return tuple(n.index for n in self.nodes if n.index not in self.needed)


def _stage_names(df: Dockerfile) -> list[str]:
    return [s.name for s in df.stages if s.name]


def resolve_target(df: Dockerfile, target: str | None) -> int:
    """Index of the ``--target`` stage (case-insensitive name or index); the last stage when None."""
    if not df.stages:
        raise PlanError(f"{df.filename} has no FROM instruction: nothing to build")
    if target is None or target == "":
        return len(df.stages) - 1
    stage = df.stage(target)
    if stage is None:
        names = _stage_names(df)
        hint = search(target.lower(), names, case_sensitive=False)
        msg = f"target stage {target!r} could not be found"
        if hint:
            msg += f" (did you mean {hint}?)"
        msg += f"; stages: {', '.join(names) if names else '(none named; use an index 0-' + str(len(df.stages) - 1) + ')'}"
        raise PlanError(msg)
    return stage.index


def resolve_stage_ref(df: Dockerfile, ref: str, current: int, span: SourceSpan | None, *, what: str) -> int | None:
    """The earlier stage ``ref`` names (name, case-insensitive, or index), None when it is an image name.

    A name or index of the current or a later stage is an error (BuildKit builds stages in order; such a
    reference is a cycle or a forward reference)."""
    low = ref.lower()
    if low.isdigit():
        idx = int(low)
        if idx >= current:
            raise PlanError(f"{what} refers to stage {idx}, which is not defined before stage {current} "
                            f"(a stage can only use earlier stages)", span=span)
        return idx
    for s in df.stages:
        if s.name == low:
            if s.index >= current:
                kind = "itself" if s.index == current else f"a later stage ({s.index})"
                raise PlanError(f"{what} refers to stage {ref!r}, which is {kind}: a stage can only use "
                                f"earlier stages (circular dependency)", span=span)
            return s.index
    return None


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
    """Expand FROM/--from words with the global scope, link stages, and compute what ``target`` needs."""
    lexer = ShellLexer(df.escape)
    nodes: list[StageNode] = []
    for stage in df.stages:
        base = lexer.process_word(stage.base, dict(from_env), span=stage.from_.span)
        if not base:
            raise PlanError("base name (" + stage.base + ") should not be blank" + _unset_args(stage.base, from_env),
                            span=stage.from_.span)
        base_stage = None if base == "scratch" else resolve_stage_ref(
            df, base, stage.index, stage.from_.span, what=f"FROM {base}")
        if base_stage is None and base != "scratch":
            check_image_name(stage.base, base, from_env, stage.from_.span, what="FROM")
        copy_from: list[int] = []
        images: list[str] = []
        for instr in stage.instructions:
            if isinstance(instr, OnbuildInstruction):
                continue
            if isinstance(instr, CopyInstruction) and instr.from_:
                ref = lexer.process_word(instr.from_, dict(from_env), span=instr.span)
                idx = resolve_stage_ref(df, ref, stage.index, instr.span, what=f"COPY --from={ref}")
                if idx is None:
                    check_image_name(instr.from_, ref, from_env, instr.span, what="COPY --from")
                    if ref not in images:
                        images.append(ref)
                elif idx not in copy_from:
                    copy_from.append(idx)
        nodes.append(StageNode(index=stage.index, name=stage.name, base=base, base_stage=base_stage,
                               copy_from=tuple(copy_from), images=tuple(images)))
    tgt = resolve_target(df, target)
    seen: set[int] = set()
    stack = [tgt]
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        stack.extend(nodes[i].deps)
    # references only point backwards, so index order is a valid build order
    return StageGraph(nodes=tuple(nodes), target=tgt, needed=tuple(sorted(seen)))
