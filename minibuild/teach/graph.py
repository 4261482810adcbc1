"""The stage graph of a Dockerfile: stages, external images, FROM and COPY --from edges, and what a target needs.

A pure function of the parsed Dockerfile, the build args and the target (no I/O)::

    graph = stage_graph(parse_dockerfile(text), target="builder", build_args={"NODE_VERSION": "20"})
    graph.needed       # stage indexes the target reaches through FROM / COPY --from / RUN --mount=from edges
    graph.skipped      # the others, each StageNode.reason says why ("not needed for target ...")

The stages and edges are resolved once, by the build's own stage graph (``minibuild.plan.graph``: a FROM
names an EARLIER stage, else an image; ``COPY --from`` and ``--mount from=`` are never expanded), so ``graph``,
``plan`` and ``build`` agree; this module adds the drawing's nodes, the reasons and the sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from minibuild.dockerfile import Dockerfile
from minibuild.plan.graph import Edge as PlanEdge
from minibuild.plan.graph import graph_of
from minibuild.record import record

EdgeKind = Literal["from", "copy", "mount"]


@record
class StageNode:
    """One stage of the Dockerfile as a node of the graph."""

    index: int
    name: str | None  # lower-cased AS name
    base: str  # the FROM word after global-ARG expansion
    base_stage: int | None  # index of the stage it builds on (FROM <stage>), else None
    line: int  # line of its FROM
    steps: int  # the M of [stage N/M]: FROM + filesystem steps (minibuild.plan.steps.vertex_numbers)
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


def stage_graph(
    dockerfile: Dockerfile,
    *,
    target: str | None = None,
    build_args: Mapping[str, str] = {},
    sizes: Mapping[str, int] | None = None,
    image_sizes: Mapping[str, int] | None = None,
) -> StageGraph:
    """The stage graph for ``target`` (a stage name, case-insensitive, or index; default the last stage).

    The stages and edges are the build's own (``minibuild.plan.graph.graph_of``); this adds the drawing's
    nodes, why each stage is needed or skipped, and sizes. ``sizes`` maps a stage name or index (as text) to
    its image's bytes; ``image_sizes`` maps an external image reference to its bytes.  Raises PlanError as a
    build would: an unknown target (with a suggestion), a COPY --from of a later stage or of itself, a variable
    in --from, or a Dockerfile without stages.
    """
    plan = graph_of(dockerfile, target, build_args)
    images: dict[str, int] = {}

    def node_id(e: PlanEdge) -> str:
        if e.stage is not None:
            return f"s{e.stage}"
        if e.image not in images:
            images[e.image] = len(images)
        return f"i{images[e.image]}"

    edges = [Edge(kind=e.kind, source=node_id(e), target=e.target, line=e.line, paths=e.paths, dest=e.dest)
             for e in plan.edges]
    target_index = plan.target

    how = {"from": "FROM", "copy": "COPY --from", "mount": "RUN --mount from"}
    reasons = {target_index: "the target"} | {
        i: f"needed by {dockerfile.stages[e.target].ref} ({how[e.kind]}, line {e.line})" for i, e in plan.needed_by}
    target_ref = dockerfile.stages[target_index].ref

    def size_of(st_index: int, name: str | None) -> int | None:
        if not sizes:
            return None
        for key in (name, str(st_index)):
            if key is not None and key in sizes:
                return sizes[key]
        return None

    stages = tuple(
        StageNode(index=n.index, name=n.name, base=n.base, base_stage=n.base_stage, line=n.line, steps=n.steps,
                  needed=n.index in reasons,
                  reason=reasons.get(n.index) or (f"after the target {target_ref}" if n.index > target_index
                                                   else f"not needed for target {target_ref}"),
                  size=size_of(n.index, n.name))
        for n in plan.nodes
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
