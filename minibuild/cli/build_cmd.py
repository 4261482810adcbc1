"""``minibuild build``: options -> api.build, BuildKit-style progress on stderr, a summary at the end."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from minibuild.errors import ConfigError
from minibuild.cli.cache_opts import registry_build_kwargs, registry_build_options
from minibuild.units import human_bytes, plural


def _summary(result: Any) -> list[str]:
    lines = [f"image {result.digest} (id {result.config_digest.short if hasattr(result.config_digest, 'short') else result.config_digest}): "
             f"{plural(result.layers, 'layer')}, {human_bytes(result.size)}"
             + (f", tagged {', '.join(result.tags)}" if result.tags else "")]
    if result.output:
        lines.append(f"wrote {result.output}")
    for st in result.stages:
        if st.label == result.target:
            continue
        if st.status == "skipped":
            lines.append(f"stage {st.label}: skipped ({st.reason})")
            continue
        own = len(st.image_layers) - st.base_layers
        line = (f"stage {st.label}: {st.status}; {human_bytes(st.total_bytes)} "
                f"({plural(st.base_layers, 'base layer')} from {st.base} + {plural(own, 'own layer')})")
        if st.shared_bytes:
            line += f"; the final image shares {human_bytes(st.shared_bytes)} of it"
        line += f"; discarded {human_bytes(st.discarded_bytes)}"
        lines.append(line)
        if st.feeds:
            for to, files, nbytes in st.feeds:
                lines.append(f"  feeds {to} via COPY --from ({plural(files, 'file')}, {human_bytes(nbytes)})")
        else:
            lines.append("  feeds no stage via COPY --from")
    hits: dict[str, int] = {}
    for s in result.steps:  # hits whose record came from a --cache-from source (explain's "HIT (cache from X)")
        if s.cached and s.reason.startswith("HIT (cache from ") and s.reason.endswith(")"):
            src = s.reason[len("HIT (cache from "):-1]
            hits[src] = hits.get(src, 0) + 1
    for src, n in sorted(hits.items()):
        lines.append(f"cache from {src}: {plural(n, 'step')} hit")
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


def parse_labels(items: tuple[str, ...]) -> dict[str, str]:
    """``--label`` values: KEY=VALUE (KEY alone is an empty value, as docker build)."""
    labels: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise ConfigError(f"invalid --label {item!r}: expected KEY=VALUE")
        labels[key] = value
    return labels


@click.command("build")
@click.argument("context", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("-f", "--file", "dockerfile", default=None, help="Dockerfile path (default CONTEXT/Dockerfile; - = stdin).")
@click.option("-t", "--tag", "tags", multiple=True, help="Name the image NAME[:TAG] (repeatable).")
@click.option("--target", default=None, help="Build this stage (name or index) instead of the last.")
@click.option("--build-arg", "build_args", multiple=True, help="KEY=VALUE, or KEY to take it from the environment.")
@click.option("--no-cache", is_flag=True, help="Run every step (results still go into the cache).")
@click.option("-o", "--output", default=None, metavar="PATH|type=T,dest=D",
              help="Also write a docker-load tarball here; or buildx's type=docker|oci,dest=FILE (the archive), "
                   "type=tar,dest=FILE (the final filesystem as a tar), type=local,dest=DIR (... in a directory).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
              help="Add a label to the final image's config (repeatable), as docker build --label.")
@click.option("--iidfile", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the image ID (sha256:...) to FILE, as docker build --iidfile.")
@click.option("--executor", default="auto", show_default=True,
              help="How RUN runs: auto (per stage: chroot for a base with real binaries when it can run here, else "
                   "emulate), emulate or chroot.")
@click.option("--run-timeout", default=None, metavar="SECONDS",
              help="Wall-time limit of each RUN (3600, 90s, 30m, 2h; 0 = none; default $MINIBUILD_RUN_TIMEOUT or 1h).")
@click.option("--progress", default="auto", type=click.Choice(["auto", "plain", "tty", "json", "quiet"]),
              help="Progress on stderr: plain (BuildKit style), tty (live view), json (one event per line), "
                   "quiet (stdout gets the image ID only), auto (tty on a terminal, else plain).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID, as docker build -q (= --progress quiet).")
@click.option("--explain", is_flag=True, help="Say under each step why it hit or missed the cache.")
@click.option("--report", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the discard report (stages, layers, COPY --from, waste) to FILE.html or FILE.json.")
@click.option("--allow", "allow", multiple=True, metavar="ENTITLEMENT",
              help="Grant an entitlement, as docker buildx build --allow: network.host lets RUN --network=host "
                   "use the host's network.")
@click.option("--secret", "secrets", multiple=True, metavar="id=ID[,src=FILE|env=VAR]",
              help="A secret RUN --mount=type=secret reads, as docker build --secret (repeatable); never stored.")
@click.option("--ssh", "ssh", multiple=True, metavar="default|ID=SOCKET",
              help="Forward an SSH agent socket to RUN --mount=type=ssh, as docker build --ssh (default: "
                   "$SSH_AUTH_SOCK).")
@registry_build_options
@click.pass_context
def build(ctx: click.Context, context: Path, dockerfile: str | None, tags: tuple[str, ...], target: str | None,
          build_args: tuple[str, ...], no_cache: bool, output: str | None, labels: tuple[str, ...],
          iidfile: Path | None, executor: str, progress: str, explain: bool, report: Path | None,
          allow: tuple[str, ...], run_timeout: str | None, quiet: bool, secrets: tuple[str, ...],
          ssh: tuple[str, ...]) -> None:
    """Build an image from a Dockerfile, offline, into the store."""
    from minibuild.api import build as api_build
    secret_map: dict[str, bytes] = {}
    ssh_map: dict[str, str] = {}
    if secrets or ssh:  # runmounts imports tempfile and csv: only when a secret or agent is given
        from minibuild.engine.runmounts import parse_secret, parse_ssh

        secret_map = dict(parse_secret(spec, os.environ) for spec in secrets)
        ssh_map = dict(parse_ssh(spec, os.environ) for spec in ssh)

    args = parse_build_args(build_args)
    label_map = parse_labels(labels)
    timeout: float | None = None
    if run_timeout is not None:
        from minibuild.limits import parse_timeout

        timeout = parse_timeout(run_timeout) or 0.0
    text = None
    df_path: str | None = dockerfile
    if dockerfile == "-":
        from minibuild.dockerfile import decode_dockerfile

        text = decode_dockerfile(sys.stdin.buffer.read())
        df_path = None
    registry = registry_build_kwargs(ctx)
    from minibuild.cli import progress as views

    mode = views.resolve_mode("quiet" if quiet else progress, sys.stderr)

    renderer = views.renderer(mode, sys.stderr, explain=explain, size_from=sys.stderr)
    try:
        result = api_build(context, df_path, target=target, build_args=args, tags=tags, store=ctx.obj["store"],
                           executor=executor, no_cache=no_cache, output=output, progress=renderer,
                           dockerfile_text=text, report=report, allow=allow, labels=label_map,
                           iidfile=iidfile, run_timeout=timeout, secrets=secret_map, ssh=ssh_map,
                           **registry)
    except BaseException:
        if renderer is not None:
            renderer.close(ok=False)
        raise
    if renderer is not None:
        renderer.close(ok=True)
    if mode == "quiet":  # docker build -q: the image ID alone
        click.echo(result.config_digest.value)
        return
    if mode != "json":
        for line in _summary(result):
            click.echo(line, err=True)
        if report is not None:
            click.echo(f"wrote report {report}", err=True)
    click.echo(result.digest.value if hasattr(result.digest, "value") else str(result.digest))
