"""``minibuild plan``: what a build would do (per step HIT or would run, and why) without running anything."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from minibuild.cli.build_cmd import parse_build_args
from minibuild.plan.steps import step_label


def plan_document(result: Any) -> dict[str, Any]:
    """The ``--json`` form of a PlanResult: stages, and per step the expanded instruction, the prediction and
    the ARG/ENV values the step sees."""
    steps = []
    for s, (args, env) in zip(result.steps, result.scopes, strict=True):
        steps.append({"stage": s.stage, "stage_index": s.stage_index, "index": s.index, "total": s.total,
                      "instruction": s.instruction, "line": s.line, "cached": s.cached,
                      "would_run": not s.cached, "reason": s.reason, "key": s.key or None,
                      "vertex": s.vertex, "vertices": s.vertices, "prefix": s.prefix,
                      "args": dict(args), "env": dict(env)})
    stages = [{"index": st.index, "name": st.name, "label": st.label, "base": st.base, "status": st.status,
               "reason": st.reason} for st in result.stages]
    return {"target": result.target, "stages": stages, "steps": steps, "warnings": list(result.warnings)}


@click.command("plan")
@click.argument("context", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("-f", "--file", "dockerfile", default=None, help="Dockerfile path (default CONTEXT/Dockerfile; - = stdin).")
@click.option("--target", default=None, help="Plan this stage (name or index) instead of the last.")
@click.option("--build-arg", "build_args", multiple=True, help="KEY=VALUE, or KEY to take it from the environment.")
@click.option("--no-cache", is_flag=True, help="Plan a --no-cache build (every step runs).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: stages, steps, ARG/ENV per step.")
@click.option("--executor", default="auto", show_default=True,
              help="Plan a build whose RUNs run with this executor (auto, emulate, chroot).")
@click.option("--allow", "allow", multiple=True, metavar="ENTITLEMENT",
              help="Plan a build granted this entitlement (network.host), as minibuild build --allow.")
@click.pass_context
def plan(ctx: click.Context, context: Path, dockerfile: str | None, target: str | None, build_args: tuple[str, ...],
         no_cache: bool, as_json: bool, executor: str, allow: tuple[str, ...]) -> None:
    """Predict which steps of a build would hit the cache and which would run, and why; runs nothing."""
    from minibuild.api import plan as api_plan

    text = None
    df_path: str | None = dockerfile
    if dockerfile == "-":
        from minibuild.dockerfile import decode_dockerfile

        text = decode_dockerfile(sys.stdin.buffer.read())
        df_path = None
    result = api_plan(context, df_path, target=target, build_args=parse_build_args(build_args),
                      store=ctx.obj["store"], no_cache=no_cache, dockerfile_text=text, executor=executor,
                      allow=allow)
    if as_json:
        click.echo(json.dumps(plan_document(result), indent=2, sort_keys=True))
        return
    listed = [s for s in result.steps if s.vertex is not None]  # the steps a build lists, numbered as it does
    for n, s in enumerate(listed, 1):
        click.echo(f"#{n} {step_label(s.prefix, s.vertex or 0, s.vertices)} {s.instruction}")
        click.echo(f"#{n} {s.reason if s.reason else ('HIT' if s.cached else 'MISS')}")
    for st in result.stages:
        if st.status == "skipped":
            click.echo(f"stage {st.label}: skipped ({st.reason})")
    runs = sum(1 for s in listed if not s.cached)
    click.echo(f"{len(listed) - runs} steps would hit, {runs} would run (target {result.target})")
    for w in result.warnings:
        click.echo(f"warning: {w}")
