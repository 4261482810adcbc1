"""Cache keys of build steps: sha256 of the canonical JSON of a step's plain inputs (kept for "explain")."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from minibuild.digest import canonical_json

KEY_VERSION = 1


def key_of(inputs: Mapping[str, Any]) -> str:
    """The cache key of a step: ``sha256:<hex>`` of its inputs in canonical JSON (with the key version)."""
    doc = {"v": KEY_VERSION, **inputs}
    return "sha256:" + hashlib.sha256(canonical_json(doc)).hexdigest()


def base_key(diff_ids: Iterable[object]) -> str:
    """The filesystem state key of a base image or stage: its layer contents (diff_ids), nothing else.

    Keying on content means an image or stage rebuilt to the same layers keeps every later step cached."""
    return key_of({"kind": "base", "diff_ids": [str(d) for d in diff_ids]})


def step_inputs(*, parent: str, kind: str, instruction: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The plain inputs of one step: the parent filesystem state, what kind of step, the expanded instruction,
    and whatever else the step can see (env, user, workdir, shell, source checksums ...)."""
    return {"parent": parent, "kind": kind, "instruction": dict(instruction), **extra}


def layer_step_inputs(*, parent: str, kind: str, instruction: Mapping[str, Any], source_date_epoch: int | None,
                      executor: str | None = None, **extra: Any) -> dict[str, Any]:
    """The inputs of a step that writes a layer (WORKDIR, RUN, COPY, ADD): ``step_inputs`` plus what shapes the
    layer besides the step itself. ``source_date_epoch`` is the build's SOURCE_DATE_EPOCH (None: unset), which
    the layer writer clamps every mtime to and a RUN sees as its clock; ``executor`` is the name of the executor
    a RUN actually runs with (emulate, chroot: they are different programs), None for steps that run nothing."""
    out = step_inputs(parent=parent, kind=kind, instruction=instruction, source_date_epoch=source_date_epoch,
                      **extra)
    if executor is not None:
        out["executor"] = executor
    return out


def diff_inputs(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The input paths that differ between two steps' inputs (for an explain view): ``env``, ``instruction.dest``..."""
    out: list[str] = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if va == vb:
            continue
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += diff_inputs(va, vb, f"{prefix}{k}.")
        else:
            out.append(prefix + k)
    return out
