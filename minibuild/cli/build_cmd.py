"""``minibuild build``: options -> api.build, BuildKit-style progress on stderr, a summary at the end."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from minibuild.errors import ConfigError


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1000
    return f"{n}B"


class _Plain:
    """Renders progress events as BuildKit's plain output: ``#N [stage i/n] INSTR`` then ``#N CACHED``/``DONE``."""

    def __init__(self, stream: Any, *, explain: bool = False) -> None:
        self.out = stream
        self.explain = explain

    def __call__(self, ev: dict[str, Any]) -> None:
        kind = ev.get("type")
        if kind == "step_start":
            self.out.write(f"#{ev['n']} [{ev['stage']} {ev['index']}/{ev['total'] - 1}] {ev['instruction']}\n")
        elif kind == "step":
            self.out.write(f"#{ev['n']} CACHED\n" if ev["cached"] else f"#{ev['n']} DONE {ev['seconds']:.1f}s\n")
            if self.explain and ev.get("reason"):
                self.out.write(f"#{ev['n']} {ev['reason']}\n")
        self.out.flush()


class _Json:
    def __init__(self, stream: Any) -> None:
        self.out = stream

    def __call__(self, ev: dict[str, Any]) -> None:
        if ev.get("type") == "step_start":
            return
        self.out.write(json.dumps(ev, sort_keys=True) + "\n")
        self.out.flush()


def _summary(result: Any) -> list[str]:
    lines = [f"image {result.digest} (id {result.config_digest.short if hasattr(result.config_digest, 'short') else result.config_digest}): "
             f"{result.layers} layers, {_human(result.size)}"
             + (f", tagged {', '.join(result.tags)}" if result.tags else "")]
    if result.output:
        lines.append(f"wrote {result.output}")
    for st in result.stages:
        if st.label == result.target:
            continue
        if st.status == "skipped":
            lines.append(f"stage {st.label}: skipped ({st.reason})")
            continue
        kept = f"; kept {len(st.kept_by_final)} COPY --from ({_human(st.kept_bytes)})" if st.kept_by_final else \
            "; nothing kept by COPY --from"
        lines.append(f"stage {st.label}: {st.status}; discarded {len(st.layers)} layers ({_human(st.size)}){kept}")
    for w in result.warnings:
        lines.append(f"warning: {w}")
    return lines


def parse_build_args(items: tuple[str, ...]) -> dict[str, str]:
    """``--build-arg`` values: KEY=VALUE, or KEY taken from the environment (left unset when not there)."""
    args: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise ConfigError(f"invalid --build-arg {item!r}: expected KEY[=VALUE]")
        if sep:
            args[key] = value
        elif key in os.environ:
            args[key] = os.environ[key]
        # Docker: KEY without value and not in the environment is left unset
    return args


@click.command("build")
@click.argument("context", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("-f", "--file", "dockerfile", default=None, help="Dockerfile path (default CONTEXT/Dockerfile; - = stdin).")
@click.option("-t", "--tag", "tags", multiple=True, help="Name the image NAME[:TAG] (repeatable).")
@click.option("--target", default=None, help="Build this stage (name or index) instead of the last.")
@click.option("--build-arg", "build_args", multiple=True, help="KEY=VALUE, or KEY to take it from the environment.")
@click.option("--no-cache", is_flag=True, help="Run every step (results still go into the cache).")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a docker-load tarball here.")
@click.option("--executor", default="emulate", help="How RUN runs: emulate (default) or chroot.")
@click.option("--progress", default="auto", type=click.Choice(["auto", "plain", "json", "quiet"]),
              help="Progress on stderr: plain (BuildKit style), json (one event per line), auto.")
@click.option("--explain", is_flag=True, help="Say under each step why it hit or missed the cache.")
@click.pass_context
def build(ctx: click.Context, context: Path, dockerfile: str | None, tags: tuple[str, ...], target: str | None,
          build_args: tuple[str, ...], no_cache: bool, output: Path | None, executor: str, progress: str,
          explain: bool) -> None:
    """Build an image from a Dockerfile, offline, into the store."""
    from minibuild.api import build as api_build

    args = parse_build_args(build_args)
    text = None
    df_path: str | None = dockerfile
    if dockerfile == "-":
        text = sys.stdin.read()
        df_path = None
    err = sys.stderr
    renderer: Any = None
    if progress in ("plain", "auto"):
        renderer = _Plain(err, explain=explain)
    elif progress == "json":
        renderer = _Json(err)
    result = api_build(context, df_path, target=target, build_args=args, tags=tags, store=ctx.obj["store"],
                       executor=executor, no_cache=no_cache, output=output, progress=renderer, dockerfile_text=text)
    if progress != "json":
        for line in _summary(result):
            click.echo(line, err=True)
    click.echo(result.digest.value if hasattr(result.digest, "value") else str(result.digest))
