"""Steps as executed: the display text of an expanded instruction and its canonical inputs for cache keys."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from minibuild.dockerfile import (
    AddInstruction,
    ArgInstruction,
    CmdInstruction,
    CopyInstruction,
    EntrypointInstruction,
    EnvInstruction,
    ExposeInstruction,
    HealthcheckInstruction,
    Instruction,
    LabelInstruction,
    MaintainerInstruction,
    OnbuildInstruction,
    RunInstruction,
    ShellInstruction,
    StopsignalInstruction,
    UserInstruction,
    VolumeInstruction,
    WorkdirInstruction,
)

_SKIP_FIELDS = frozenset({"span", "original", "comments"})


_NAMES: dict[type, tuple[str, ...] | None] = {}


def _names(cls: type) -> tuple[str, ...] | None:
    """The compared, non-source field names of a dataclass type (None for other types), looked up once per type."""
    try:
        return _NAMES[cls]
    except KeyError:
        pass
    names = None
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name not in _SKIP_FIELDS and f.compare)
    _NAMES[cls] = names
    return names


def _plain(value: Any) -> Any:
    cls = type(value)
    if cls is str or value is None or cls is bool or cls is int:
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    names = _names(cls)
    if names is None:
        return value
    out = {"type": cls.__name__}
    for name in names:
        out[name] = _plain(getattr(value, name))
    return out


def instruction_inputs(instr: Instruction) -> dict[str, Any]:
    """The instruction as a plain JSON-able dict (keyword and every compared field; no span, no source text)."""
    out = _plain(instr)
    out["keyword"] = instr.keyword
    return out  # type: ignore[no-any-return]


def _cmd(instr: RunInstruction | CmdInstruction | EntrypointInstruction) -> str:
    if instr.prepend_shell:
        return " ".join(instr.command)
    return json.dumps(list(instr.command))


def _flags(instr: CopyInstruction | AddInstruction) -> str:
    parts = []
    if isinstance(instr, CopyInstruction) and instr.from_:
        parts.append(f"--from={instr.from_}")
    if instr.chown:
        parts.append(f"--chown={instr.chown}")
    if instr.chmod:
        parts.append(f"--chmod={instr.chmod}")
    if instr.link:
        parts.append("--link")
    if isinstance(instr, CopyInstruction) and instr.parents:
        parts.append("--parents")
    parts += [f"--exclude={e}" for e in instr.exclude]
    return " ".join(parts) + (" " if parts else "")


FS_KINDS = (WorkdirInstruction, RunInstruction, CopyInstruction, AddInstruction)


def vertex_numbers(instructions: Sequence[Instruction]) -> dict[int, int]:
    """THE step numbering of a stage, BuildKit's ``[stage N/M]``: step index (0 = FROM, i = the i-th instruction
    after it) -> N. FROM is 1, then each filesystem step (RUN, COPY, ADD, WORKDIR) in order; config-only steps
    (ENV, LABEL, CMD, ARG ...) get no number. M, the stage's step count, is ``len`` of the result."""
    out = {0: 1}
    for i, instr in enumerate(instructions, 1):
        if isinstance(instr, FS_KINDS):
            out[i] = len(out) + 1
    return out


def step_label(prefix: str, vertex: int, vertices: int) -> str:
    """How every view names a step: ``[build 5/6]`` (``[5/6]`` when ``prefix`` is "": a single-stage build)."""
    return f"[{prefix + ' ' if prefix else ''}{vertex}/{vertices}]"


def _run_flags(instr: RunInstruction) -> str:
    parts = [f"--mount={m}" for m in instr.mounts]
    if instr.network:
        parts.append(f"--network={instr.network}")
    if instr.security:
        parts.append(f"--security={instr.security}")
    return " ".join(parts) + (" " if parts else "")


def progress_text(instr: Instruction) -> str:
    """The progress line of a step: ``describe``, with a RUN's flags (``--mount=...``, ``--network=...``) kept,
    as BuildKit names the step; the history's ``created_by`` stays ``describe`` (BuildKit drops the flags)."""
    if isinstance(instr, RunInstruction):
        return f"RUN {_run_flags(instr)}{_cmd(instr)}"
    return describe(instr)


def describe(instr: Instruction) -> str:
    """One line for progress output and history: the instruction as executed (words expanded)."""
    match instr:
        case RunInstruction() | CmdInstruction() | EntrypointInstruction():
            return f"{instr.keyword} {_cmd(instr)}"
        case CopyInstruction() | AddInstruction():
            srcs = list(instr.sources) + [f"<<{c.path}" for c in instr.contents]
            return f"{instr.keyword} {_flags(instr)}{' '.join(srcs)} {instr.dest}"
        case EnvInstruction():
            return "ENV " + " ".join(f"{kv.key}={kv.value}" for kv in instr.env)
        case LabelInstruction():
            return "LABEL " + " ".join(f"{kv.key}={kv.value}" for kv in instr.labels)
        case ArgInstruction():
            return "ARG " + " ".join(a.key if a.value is None else f"{a.key}={a.value}" for a in instr.args)
        case WorkdirInstruction():
            return f"WORKDIR {instr.path}"
        case UserInstruction():
            return f"USER {instr.user}"
        case ExposeInstruction():
            return "EXPOSE " + " ".join(instr.ports)
        case VolumeInstruction():
            return "VOLUME " + json.dumps(list(instr.volumes))
        case ShellInstruction():
            return "SHELL " + json.dumps(list(instr.shell))
        case StopsignalInstruction():
            return f"STOPSIGNAL {instr.signal}"
        case HealthcheckInstruction():
            return "HEALTHCHECK " + " ".join(instr.test)
        case OnbuildInstruction():
            return f"ONBUILD {instr.expression}"
        case MaintainerInstruction():
            return f"MAINTAINER {instr.maintainer}"
        case _:
            return instr.original or instr.keyword
