"""The build plan: stage graph, ARG/ENV scope and expanded steps (pure, no I/O)."""

from __future__ import annotations

from minibuild.plan.graph import (
    Edge,
    StageGraph,
    StageNode,
    build_graph,
    graph_of,
    resolve_stage_ref,
    resolve_target,
    unexpanded_from,
)
from minibuild.plan.scope import (
    DEFAULT_PATH,
    PROXY_ARGS,
    GlobalScope,
    StageScope,
    global_scope,
    platform_args,
)
from minibuild.plan.steps import describe, instruction_inputs

__all__ = [
    "DEFAULT_PATH",
    "Edge",
    "PROXY_ARGS",
    "GlobalScope",
    "StageGraph",
    "StageNode",
    "StageScope",
    "build_graph",
    "describe",
    "global_scope",
    "graph_of",
    "instruction_inputs",
    "platform_args",
    "resolve_stage_ref",
    "resolve_target",
    "unexpanded_from",
]
