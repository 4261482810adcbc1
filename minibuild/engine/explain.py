"""Cache explanations: the step-identity history record and the words for why a step hit or missed."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from minibuild.engine.cachekey import diff_inputs
from minibuild.digest import canonical_json

HISTORY_PREFIX = "step-history:"


def history_key(*, dockerfile: str, stage: str, index: int, kind: str) -> str:
    """The cache-record key of a step's identity (where it is in which Dockerfile), not of its inputs."""
    doc = {"dockerfile": dockerfile, "stage": stage, "index": index, "kind": kind}
    return HISTORY_PREFIX + "sha256:" + hashlib.sha256(canonical_json(doc)).hexdigest()


def source_files(src_root: Any, sources: Sequence[str], *, ignore: Any = None, exclude: Sequence[str] = (),
                 parents: bool = False, from_context: bool = True, stat_cache: Any = None,
                 instruction: str = "COPY") -> dict[str, dict[str, Any]]:
    """What a COPY/ADD reads, one record per source path (type, mode, link target, content sha256): the
    per-file detail behind ``source_checksum``, kept so the next build can name the file that changed.
    ``src_root`` is a directory (Path) or a ready BuildContext (e.g. a LayerTree: no extraction)."""
    from minibuild.engine.context import BuildContext
    from minibuild.engine.copy import source_records

    tree = src_root if isinstance(src_root, BuildContext) else \
        BuildContext(Path(src_root), ignore if from_context else None, stat_cache=stat_cache)
    _items, records = source_records(tree, sources, exclude=exclude, parents=parents, from_context=from_context,
                                     instruction=instruction)
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        rec = dict(r.record)
        path = str(rec.pop("path")) or "."
        out[path if from_context else "/" + path.lstrip("/")] = rec
    return out


def _short(digest: object) -> str:
    text = str(digest)
    algo, _, hexpart = text.rpartition(":")
    return f"{algo or 'sha256'}:{hexpart[:8]}.."


def _files_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        if a == b:
            continue
        if a is None:
            out.append(f"{path} added")
        elif b is None:
            out.append(f"{path} removed")
        elif a.get("sha256") != b.get("sha256") and a.get("type") == b.get("type") == "file":
            out.append(f"{path} content changed ({_short(a['sha256'])} -> {_short(b['sha256'])})")
        else:
            what = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            out.append(f"{path} {'/'.join(what)} changed")
    return out


def _env_diff(before: Sequence[str], after: Sequence[str], args: frozenset[str]) -> list[str]:
    a = dict(item.partition("=")[::2] for item in before)
    b = dict(item.partition("=")[::2] for item in after)
    out: list[str] = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) == b.get(k):
            continue
        label = "build arg" if k in args else "env"
        out.append(f"{label} {k} {a.get(k, '(unset)')} -> {b.get(k, '(unset)')}")
    return out


def explain_miss(
    *,
    previous: Mapping[str, Any] | None,
    inputs: Mapping[str, Any],
    files: Mapping[str, Any] | None,
    args: frozenset[str],
    parent_step: int,
    parent_missed: bool,
    base: str,
    parent: str,
) -> str:
    """Why a step missed, given the inputs of the nearest earlier build of the same step (``previous``: the
    history record, with ``inputs`` and maybe ``files``). ``parent_step`` is the index of the step that made
    this step's parent filesystem (0 = FROM); ``parent_missed`` says whether it missed in this build; ``parent``
    names that step for the words (``5/6 (COPY . .)``: its ``[stage 5/6]`` in progress)."""
    if previous is None or not isinstance(previous.get("inputs"), Mapping):
        return "MISS: never built"
    changed = diff_inputs(previous["inputs"], inputs)
    if not changed:
        return "MISS: cache record gone (pruned?)"
    own = [c for c in changed if c != "parent"]
    if not own:
        if parent_step == 0:
            prev_base = previous.get("base")
            if isinstance(prev_base, str) and prev_base and prev_base != base:
                return f"MISS: base {prev_base} -> {base}"
            return f"MISS: base {base} changed"
        if parent_missed:
            return f"MISS: parent step {parent} missed"
        return f"MISS: parent step {parent} changed"
    if any(c.startswith("instruction") for c in own):  # argv follows from the instruction: say it once, first
        own = ["instruction", *(c for c in own if not c.startswith("instruction") and c != "argv")]
    words: list[str] = []
    for c in own:
        if c == "sources":
            before = previous.get("files")
            fdiff = _files_diff(before, files) if isinstance(before, Mapping) and files is not None else []
            if fdiff:
                words += fdiff if len(fdiff) <= 4 else [*fdiff[:3], f"and {len(fdiff) - 3} more paths changed"]
            else:
                words.append(f"sources changed ({_short(previous['inputs'].get('sources'))} -> "
                             f"{_short(inputs.get('sources'))})")
        elif c == "env":
            words += _env_diff(previous["inputs"].get("env") or (), inputs.get("env") or (), args) or ["env changed"]
        elif c in ("source_date_epoch", "executor"):
            name = "SOURCE_DATE_EPOCH" if c == "source_date_epoch" else "executor"
            was, now = previous["inputs"].get(c), inputs.get(c)
            words.append(f"{name} {'(unset)' if was is None else was} -> {'(unset)' if now is None else now}")
        elif c.startswith("instruction"):
            if "instruction changed" not in words:
                words.append("instruction changed")
        else:
            words.append(f"{c} changed")
    return "MISS: " + "; ".join(words)
