"""``minibuild parse``: show a Dockerfile's stages and instructions, its BuildKit AST, or JSON."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from minibuild.dockerfile import (
    CopyInstruction,
    Dockerfile,
    Instruction,
    OnbuildInstruction,
    decode_dockerfile,
    to_dockerfile,
)
from minibuild.dockerfile import (
    parse as parse_syntax,
)
from minibuild.errors import ConfigError


def _read(path: str) -> tuple[str, str]:
    """Return (text, name shown in messages) for a path or ``-`` (stdin)."""
    if path == "-":
        return decode_dockerfile(sys.stdin.buffer.read()), "Dockerfile"
    from minibuild.fs.confine import read_build_file

    data = read_build_file(None, path, what=path, error=ConfigError)
    if data is None:
        raise ConfigError(f"cannot read {path}: No such file or directory")
    return decode_dockerfile(data), path


def _plain(value: Any) -> Any:
    if isinstance(value, Instruction):
        return instruction_json(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def instruction_json(instr: Instruction) -> dict[str, Any]:
    """A JSON-ready dict of one instruction: keyword, lines, flags and its own fields."""
    out: dict[str, Any] = {
        "instruction": instr.keyword,
        "line": instr.span.line,
        "end_line": instr.span.end_line or instr.span.line,
        "original": instr.original,
        "flags": list(instr.flags),
    }
    for f in dataclasses.fields(instr):
        if f.name in ("span", "original", "flags", "comments"):
            continue
        out[f.name] = _plain(getattr(instr, f.name))
    return out


def dockerfile_json(df: Dockerfile) -> dict[str, Any]:
    """The machine-readable form printed by ``minibuild parse --json``."""
    return {
        "file": df.filename,
        "escape": df.escape,
        "directives": dict(df.directives),
        "warnings": list(df.warnings),
        "meta_args": [instruction_json(a) for a in df.meta_args],
        "stages": [
            {
                "index": s.index,
                "name": s.name,
                "base": s.base,
                "platform": s.platform,
                "line": s.span.line,
                "end_line": s.span.end_line or s.span.line,
                "from": instruction_json(s.from_),
                "instructions": [instruction_json(i) for i in s.instructions],
            }
            for s in df.stages
        ],
    }


def _stage_label(df: Dockerfile, ref: str) -> str | None:
    stage = df.stage(ref)
    if stage is None:
        return None
    return f"stage {stage.index}" + (f" ({stage.name})" if stage.name else "")


def teaching_view(df: Dockerfile) -> str:
    """Stages, their bases, their instructions, and which stages feed which."""
    lines: list[str] = []
    n = len(df.stages)
    lines.append(f"{df.filename}: {n} stage{'s' if n != 1 else ''}, {len(df.meta_args)} global ARG(s)")
    for key, value in df.directives:
        lines.append(f"  directive {key}={value}")
    for arg in df.meta_args:
        for spec in arg.args:
            default = "" if spec.value is None else f"={spec.value}"
            lines.append(f"  global ARG {spec.key}{default}  (line {arg.span.line})")
    edges: list[str] = []
    for stage in df.stages:
        lines.append("")
        title = f"stage {stage.index}" + (f" ({stage.name})" if stage.name else "")
        base = stage.base
        earlier = df.stage(base)
        if earlier is not None and earlier.index < stage.index and earlier.name == base.lower():
            base_text = f"{base}  <- built on stage {earlier.index}"
            edges.append(f"  {earlier.ref} -> {stage.ref}  (FROM, line {stage.from_.span.line})")
        else:
            base_text = f"image {base}"
        if stage.platform:
            base_text += f"  --platform={stage.platform}"
        final = "  [final]" if stage.index == n - 1 else ""
        end = stage.span.end_line or stage.span.line
        lines.append(f"{title}: FROM {base_text}  (lines {stage.span.line}-{end}){final}")
        for instr in stage.instructions:
            first = instr.original.split("\n", 1)[0]
            text = first if len(first) <= 100 else first[:97] + "..."
            note = ""
            target = instr.trigger if isinstance(instr, OnbuildInstruction) else instr
            if isinstance(target, CopyInstruction) and target.from_:
                label = _stage_label(df, target.from_)
                if label is not None and isinstance(instr, CopyInstruction):
                    note = f"   <- from {label}"
                    src = df.stage(target.from_)
                    assert src is not None
                    edges.append(f"  {src.ref} -> {stage.ref}  (COPY --from, line {instr.span.line})")
                elif label is None:
                    note = f"   <- from image {target.from_}"
            lines.append(f"  {instr.span.line:>4}  {text}{note}")
    lines.append("")
    if edges:
        lines.append("stage graph:")
        lines.extend(edges)
    else:
        lines.append("stage graph: no stage uses another")
    for warning in df.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


@click.command("parse")
@click.option("-f", "--file", "path", default="Dockerfile", show_default=True, help="Dockerfile to read ('-' for stdin).")
@click.option("--ast", "mode", flag_value="ast", help="Print BuildKit's AST dump.")
@click.option("--json", "mode", flag_value="json", help="Print a machine-readable JSON form.")
def parse(path: str, mode: str | None) -> None:
    """Read a Dockerfile as BuildKit does and show its stages and instructions."""
    text, name = _read(path)
    tree = parse_syntax(text, filename=name)
    if mode == "ast":
        click.echo(tree.dump())
        return
    df = to_dockerfile(tree)
    if mode == "json":
        click.echo(json.dumps(dockerfile_json(df), indent=2, ensure_ascii=False))
        return
    click.echo(teaching_view(df))

