"""CLI commands that talk to registries: push and pull (progress on stderr when it is a terminal)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from minibuild.registry.client import TransferEvent
from minibuild.registry.transfer import pull as pull_ref
from minibuild.registry.transfer import push_image
from minibuild.registry.transport import options_from_env
from minibuild.store import Store


class ProgressLine:
    """Draws one self-overwriting progress line on stderr (only when stderr is a TTY)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._width = 0

    def __call__(self, event: TransferEvent) -> None:
        if not self.enabled:
            return
        verb = {"push": "push", "pull": "pull"}[event.action]
        if event.total:
            pct = min(100, event.done * 100 // max(event.total, 1))
            bar = "#" * (pct // 5)
            text = f"{verb} {event.digest.short} {event.status:<11} [{bar:<20}] {event.done}/{event.total} B"
        else:
            text = f"{verb} {event.digest.short} {event.status:<11} {event.done} B"
        pad = max(0, self._width - len(text))
        sys.stderr.write("\r" + text + " " * pad)
        sys.stderr.flush()
        self._width = len(text)

    def finish(self) -> None:
        if self.enabled and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0


def _registry_options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option("--ca-cert", "ca_cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help="Trust this CA certificate (PEM) for TLS (also $MINIBUILD_REGISTRY_CA).")(f)
    f = click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
                     help="Allow plain HTTP (or unverified TLS) to this registry; repeatable. Also a CIDR.")(f)
    return f


@click.command()
@click.argument("name")
@click.argument("ref")
@_registry_options
@click.option("-q", "--quiet", is_flag=True, help="Print only the pushed manifest digest.")
@click.pass_context
def push(ctx: click.Context, name: str, ref: str, insecure: tuple[str, ...], ca_cert: Path | None, quiet: bool) -> None:
    """Push the stored image NAME to REF (host[:port]/repository[:tag])."""
    store = Store.open(ctx.obj["store"])
    progress = ProgressLine(sys.stderr.isatty() and not quiet)
    try:
        result = push_image(store, name, ref, options=options_from_env(insecure_registries=insecure, ca_cert=ca_cert),
                            progress=progress)
    finally:
        progress.finish()
    if quiet:
        click.echo(str(result.digest))
        return
    click.echo(f"Pushed {result.reference}")
    click.echo(f"  blobs uploaded: {len(result.uploaded)}, mounted: {len(result.mounted)}, "
               f"already there: {len(result.existing)}")
    click.echo(f"  digest: {result.digest}")


@click.command()
@click.argument("ref")
@_registry_options
@click.option("--platform", "platform", default="linux/amd64", show_default=True,
              help="Platform to choose from a multi-platform index (OS/ARCH[/VARIANT]).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the stored manifest digest.")
@click.pass_context
def pull(ctx: click.Context, ref: str, insecure: tuple[str, ...], ca_cert: Path | None, platform: str,
         quiet: bool) -> None:
    """Pull REF (host[:port]/repository[:tag|@digest]) into the store."""
    store = Store.open(ctx.obj["store"])
    progress = ProgressLine(sys.stderr.isatty() and not quiet)
    try:
        result = pull_ref(store, ref, options=options_from_env(insecure_registries=insecure, ca_cert=ca_cert,
                                                               platform=platform), progress=progress)
    finally:
        progress.finish()
    if quiet:
        click.echo(str(result.digest))
        return
    click.echo(f"Pulled {result.reference}")
    click.echo(f"  blobs downloaded: {len(result.downloaded)} (resumed: {len(result.resumed)}), "
               f"already in the store: {len(result.present)}")
    click.echo(f"  digest: {result.digest}" + (f" (registry digest {result.remote_digest}: Docker manifest "
                                                 f"stored in OCI form)" if result.remote_digest != result.digest else ""))
    click.echo(f"  image ID (config digest): {result.image.config_digest}")
