"""The stage graph of a Dockerfile: stages, external images, FROM and COPY --from edges, and what a target needs.

A pure function of the parsed Dockerfile, the build args and the target (no I/O)::

    graph = stage_graph(parse_dockerfile(text), target="builder", build_args={"NODE_VERSION": "20"})
    graph.needed       # stage indexes the target reaches through FROM / COPY --from / RUN --mount=from edges
    graph.skipped      # the others, each StageNode.reason says why ("not needed for target ...")

Resolution follows BuildKit: a FROM word is expanded with the global ARGs (defaults overridden by build args
given for declared ARGs) and names a stage when it equals (case-insensitively) the name of an EARLIER stage,
else it is an external image (``scratch`` included, marked as such).  ``COPY --from`` takes a stage name, a
stage index, or an image reference; it must name an earlier stage (a later one or the stage itself is a
PlanError, as in BuildKit), and ``$`` is refused (BuildKit does not expand ``--from``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from minibuild.dockerfile import CopyInstruction, Dockerfile, RunInstruction, expand_word
from minibuild.dockerfile.suggest import with_suggestion
from minibuild.errors import DockerfileError, PlanError, SourceSpan
from minibuild.record import record

EdgeKind = Literal["from", "copy", "mount"]

# the automatic platform ARGs BuildKit defines in the global scope
DEFAULT_PLATFORM_ARGS: Mapping[str, str] = {
    "BUILDPLATFORM": "linux/amd64", "BUILDOS": "linux", "BUILDARCH": "amd64", "BUILDVARIANT": "",
    "TARGETPLATFORM": "linux/amd64", "TARGETOS": "linux", "TARGETARCH": "amd64", "TARGETVARIANT": "",
}


@record
class StageNode:
    """One stage of the Dockerfile as a node of the graph."""

    index: int
    name: str | None  # lower-cased AS name
    base: str  # the FROM word after global-ARG expansion
    base_stage: int | None  # index of the stage it builds on (FROM <stage>), else None
    line: int  # line of its FROM
    steps: int  # instructions after FROM
    needed: bool
    reason: str  # "the target", "needed by final (COPY --from)", "not needed for target final", ...
    size: int | None = None  # bytes of the stage's image, when known

    @property
    def ref(self) -> str:
        """How other stages refer to it: its name, else its index."""
        return self.name if self.name is not None else str(self.index)

    @property
    def node_id(self) -> str:
        return f"s{self.index}"

    @property
    def label(self) -> str:
        """``build (stage 0)`` or ``stage 1``."""
        return f"{self.name} (stage {self.index})" if self.name is not None else f"stage {self.index}"


@record
class ImageNode:
    """An image from outside the Dockerfile (a FROM base or a COPY --from source), or ``scratch``."""

    index: int  # position among the graph's images (first use order)
    ref: str  # the reference as written after expansion, e.g. "node:22"
    needed: bool
    size: int | None = None

    @property
    def scratch(self) -> bool:
        return self.ref.lower() == "scratch"

    @property
    def node_id(self) -> str:
        return f"i{self.index}"


@record
class Edge:
    """Data flowing into stage ``target``: its base (``from``), files copied (``copy``) or mounted (``mount``)."""

    kind: EdgeKind
    source: str  # node id: "s<index>" for a stage, "i<index>" for an image
    target: int  # stage index
    line: int  # Dockerfile line of the FROM / COPY / RUN
    paths: tuple[str, ...] = ()  # source paths as written (COPY sources; the mount's source)
    dest: str = ""  # COPY destination or mount target, as written
    needed: bool = True  # the receiving stage is needed for the target

    @property
    def label(self) -> str:
        """Short text for the edge: ``/app/dist -> /usr/share/nginx/html`` (nothing for FROM)."""
        if self.kind == "from":
            return ""
        src = " ".join(self.paths) if self.paths else "/"
        return f"{src} -> {self.dest}" if self.dest else src


@record
class StageGraph:
    """Stages, external images and edges of a Dockerfile for one target."""

    stages: tuple[StageNode, ...]
    images: tuple[ImageNode, ...]
    edges: tuple[Edge, ...]
    target: int  # index of the target stage

    @property
    def needed(self) -> tuple[int, ...]:
        return tuple(s.index for s in self.stages if s.needed)

    @property
    def skipped(self) -> tuple[int, ...]:
        return tuple(s.index for s in self.stages if not s.needed)

    def node(self, node_id: str) -> StageNode | ImageNode:
        """The stage or image with this node id."""
        table = self.stages if node_id.startswith("s") else self.images
        return table[int(node_id[1:])]

    def node_ids(self) -> tuple[str, ...]:
        """Images first (first-use order), then stages in Dockerfile order."""
        return tuple(i.node_id for i in self.images) + tuple(s.node_id for s in self.stages)


def global_args(dockerfile: Dockerfile, build_args: Mapping[str, str] = {},
                platform_args: Mapping[str, str] = DEFAULT_PLATFORM_ARGS) -> dict[str, str]:
    """The global ARG scope used to expand FROM words: defaults in order, a build arg wins for a declared ARG."""
    env: dict[str, str] = dict(platform_args)
    for instr in dockerfile.meta_args:
        for spec in instr.args:
            if spec.key in build_args:
                env[spec.key] = build_args[spec.key]
            elif spec.value is not None:
                env[spec.key] = expand_word(spec.value, env, dockerfile.escape, span=instr.span)
            else:
                env.setdefault(spec.key, "")
    return env


def _mount_from(raw: str) -> tuple[str, str, str] | None:
    """(from, source, target) of a ``--mount`` value naming ``from=``, else None."""
    fields: dict[str, str] = {}
    for part in raw.split(","):
        key, eq, value = part.partition("=")
        fields[key.strip().lower()] = value.strip() if eq else ""
    if not fields.get("from"):
        return None
    return fields["from"], fields.get("source", fields.get("src", "")), fields.get(
        "target", fields.get("dst", fields.get("destination", "")))


def stage_graph(
    dockerfile: Dockerfile,
    *,
    target: str | None = None,
    build_args: Mapping[str, str] = {},
    sizes: Mapping[str, int] | None = None,
    image_sizes: Mapping[str, int] | None = None,
    platform_args: Mapping[str, str] = DEFAULT_PLATFORM_ARGS,
) -> StageGraph:
    """The stage graph for ``target`` (a stage name, case-insensitive; default the last stage).

    ``sizes`` maps a stage name or index (as text) to its image's bytes; ``image_sizes`` maps an external image
    reference to its bytes.  Raises PlanError for an unknown target (with a suggestion), a COPY --from of a
    later stage or of itself, a ``$`` in --from, or a Dockerfile without stages.
    """
    if not dockerfile.stages:
        raise PlanError("dockerfile contains no stages to build")
    env = global_args(dockerfile, build_args, platform_args)
    names: dict[str, int] = {}
    for st in dockerfile.stages:
        if st.name is not None and st.name not in names:
            names[st.name] = st.index

    images: dict[str, int] = {}

    def image_id(ref: str) -> str:
        if ref not in images:
            images[ref] = len(images)
        return f"i{images[ref]}"

    bases: list[str] = []
    base_stage: list[int | None] = []
    edges: list[Edge] = []
    for st in dockerfile.stages:
        try:
            base = expand_word(st.base, env, dockerfile.escape, span=st.span)
        except DockerfileError as err:
            raise PlanError(err.message, span=st.span) from None
        if not base:
            raise PlanError(f"base name ({st.base}) should not be blank", span=st.span)
        found = names.get(base.lower())
        if found is not None and found < st.index:
            base_stage.append(found)
            edges.append(Edge(kind="from", source=f"s{found}", target=st.index, line=st.span.line))
        else:
            base_stage.append(None)
            edges.append(Edge(kind="from", source=image_id(base), target=st.index, line=st.span.line))
        bases.append(base)
        for instr in st.instructions:
            if isinstance(instr, CopyInstruction) and instr.from_:
                src = _source_node(instr.from_, st.index, st.ref, names, image_id, instr.span)
                edges.append(Edge(kind="copy", source=src, target=st.index, line=instr.span.line,
                                  paths=instr.sources, dest=instr.dest))
            elif isinstance(instr, RunInstruction):
                for raw in instr.mounts:
                    m = _mount_from(raw)
                    if m is not None:
                        src = _source_node(m[0], st.index, st.ref, names, image_id, instr.span)
                        edges.append(Edge(kind="mount", source=src, target=st.index, line=instr.span.line,
                                          paths=(m[1],) if m[1] else (), dest=m[2]))

    if target is None:
        target_index = len(dockerfile.stages) - 1
    else:
        low = target.lower()
        if low not in names:
            raise PlanError(with_suggestion(f'target stage "{target}" could not be found', target,
                                            list(names), case_sensitive=False))
        target_index = names[low]

    # reachability from the target, with the first reason each stage is needed
    reasons: dict[int, str] = {target_index: "the target"}
    stack = [target_index]
    while stack:
        cur = stack.pop()
        for e in edges:
            if e.target != cur or not e.source.startswith("s"):
                continue
            src_index = int(e.source[1:])
            if src_index not in reasons:
                how = {"from": "FROM", "copy": "COPY --from", "mount": "RUN --mount from"}[e.kind]
                reasons[src_index] = f"needed by {dockerfile.stages[cur].ref} ({how}, line {e.line})"
                stack.append(src_index)
    target_ref = dockerfile.stages[target_index].ref

    def size_of(st_index: int, name: str | None) -> int | None:
        if not sizes:
            return None
        for key in (name, str(st_index)):
            if key is not None and key in sizes:
                return sizes[key]
        return None

    stages = tuple(
        StageNode(index=st.index, name=st.name, base=bases[st.index], base_stage=base_stage[st.index],
                  line=st.span.line, steps=len(st.instructions), needed=st.index in reasons,
                  reason=reasons.get(st.index) or (f"after the target {target_ref}" if st.index > target_index
                                                    else f"not needed for target {target_ref}"),
                  size=size_of(st.index, st.name))
        for st in dockerfile.stages
    )
    marked = tuple(Edge(kind=e.kind, source=e.source, target=e.target, line=e.line, paths=e.paths, dest=e.dest,
                        needed=e.target in reasons) for e in edges)
    used_images = {e.source for e in marked if e.needed and e.source.startswith("i")}
    image_nodes = tuple(
        ImageNode(index=i, ref=ref, needed=f"i{i}" in used_images,
                  size=(image_sizes or {}).get(ref))
        for ref, i in sorted(images.items(), key=lambda kv: kv[1])
    )
    return StageGraph(stages=stages, images=image_nodes, edges=marked, target=target_index)


def _source_node(word: str, current: int, current_ref: str, names: Mapping[str, int],
                 image_id: Callable[[str], str], span: SourceSpan) -> str:
    """Node id of a ``--from`` value seen in stage ``current``."""
    if "$" in word:
        raise PlanError("variable expansion is not supported for --from, define a new stage with FROM using "
                        "ARG from global scope as a workaround", span=span)
    found = int(word) if word.isdigit() else names.get(word.lower())
    if found is None:
        return image_id(word)
    if found == current:
        raise PlanError(f"circular dependency detected on stage: {current_ref}", span=span)
    if found > current:
        raise PlanError(f"cannot copy from stage {word!r}, it needs to be defined before current stage "
                        f"{current_ref!r}", span=span)
    return f"s{found}"
