"""CLI commands for the store: load, save, images, inspect, rmi, prune, tag."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click

from minibuild.errors import ConfigError, MinibuildError
from minibuild.units import plural
from minibuild.oci.archive import import_archive, save_image_tar
from minibuild.oci.image import Image
from minibuild.oci.reference import parse_reference
from minibuild.store import Store
from minibuild.units import image_size


def _store(ctx: click.Context) -> Store:
    return Store.open(ctx.obj["store"])


def human_size(n: int) -> str:
    """Every command prints bytes the same way (minibuild.units.human_bytes)."""
    from minibuild.units import human_bytes

    return human_bytes(n)


@click.command()
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.pass_context
def load(ctx: click.Context, file: Path) -> None:
    """Load images from a `docker save` tarball, an OCI archive or an OCI layout directory."""
    from minibuild.engine.layertree import index_image
    from minibuild.executors.stagemount import mounts_available, unpack_image

    store = _store(ctx)
    unpack = mounts_available()
    for item in import_archive(store, file):
        index_image(store, item.image)  # folded once here, as Docker unpacks at load: the first build is not slower
        if unpack:  # and, as root, unpacked for the chroot executor's overlay mounts: a cache, so best effort (a
            try:    # full disk or a name this filesystem refuses is met again, and said, by a build that needs it)
                unpack_image(store, item.image)
            except (MinibuildError, OSError):
                unpack = False
        if item.names:
            for name in item.names:
                click.echo(f"Loaded image: {parse_reference(name).familiar}")
        else:
            click.echo(f"Loaded image ID: {item.image.config_digest}")
        click.echo(f"  manifest digest: {item.image.digest}")
        click.echo(f"  image ID (config digest): {item.image.config_digest}")


@click.command()
@click.argument("name")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the image tar (OCI layout + docker-save archive in one).")
@click.pass_context
def save(ctx: click.Context, name: str, output: Path) -> None:
    """Write NAME[:TAG] to one uncompressed tar that docker/podman load and skopeo/umoci read."""
    store = _store(ctx)
    image = store.resolve(name)
    # as docker save: only the tag named (its RepoTags); an image named by ID or digest is saved without names,
    # so a `docker load` of the file never creates (or moves) the image's other tags
    try:
        wanted = str(parse_reference(name))
    except ConfigError:
        wanted = ""
    names = [e.name for e in store.refs.entries() if e.descriptor.digest == image.digest and e.name == wanted]
    written = save_image_tar(store.blobs, image, names, output)
    click.echo(f"Saved {parse_reference(names[0]).familiar if names else written.config_digest} to {output}")
    click.echo(f"  manifest digest: {written.digest}")
    click.echo(f"  image ID (config digest): {written.config_digest}")


@click.command()
@click.option("-q", "--quiet", is_flag=True, help="Only print image IDs.")
@click.pass_context
def images(ctx: click.Context, quiet: bool) -> None:
    """List the named images of the store."""
    store = _store(ctx)
    records = store.images()
    if quiet:
        for r in records:
            click.echo(r.config_digest.hex[:12])
        return
    rows = [("NAME", "IMAGE ID", "DIGEST", "CREATED", "LAYERS", "SIZE")]
    for r in records:
        rows.append((r.familiar, r.config_digest.hex[:12], r.digest.value[:19], r.created or "-", str(r.layers),
                     human_size(image_size(store.get_image(r.digest)))))  # sum of layer blob sizes
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def describe(image: Image, names: list[str]) -> dict[str, Any]:
    """The JSON `minibuild inspect` prints."""
    return {
        "Names": [parse_reference(n).familiar for n in names],
        "Digest": image.digest.value,
        "Id": image.config_digest.value,
        "Created": image.config.created,
        "Architecture": image.config.architecture,
        "Os": image.config.os,
        "Config": image.config.to_json().get("config", {}),
        "Layers": [{"digest": layer.digest.value, "diff_id": layer.diff_id.value, "size": layer.size,
                    "mediaType": layer.descriptor.media_type} for layer in image.layers],
        "Size": image_size(image),
        "History": [h.to_json() for h in image.config.history],
    }


@click.command()
@click.argument("target")
@click.pass_context
def inspect(ctx: click.Context, target: str) -> None:
    """Show config, layers (sizes, diff_ids) and history of a stored image NAME, or of an image FILE."""
    path = Path(target)
    if path.exists() and ("/" in target or path.suffix in (".tar", ".gz", ".tgz") or path.is_dir() or not _is_name(target)):
        with tempfile.TemporaryDirectory(prefix="minibuild-inspect-") as tmp:
            loaded = import_archive(Store.open(Path(tmp)), path)
            docs = [describe(item.image, list(item.names)) for item in loaded]
        click.echo(json.dumps(docs if len(docs) > 1 else docs[0], indent=2, sort_keys=False))
        return
    store = _store(ctx)
    image = store.resolve(target)
    names = [e.name for e in store.refs.entries() if e.descriptor.digest == image.digest]
    click.echo(json.dumps(describe(image, names), indent=2))


def _is_name(text: str) -> bool:
    try:
        parse_reference(text)
    except ConfigError:
        return False
    return True


@click.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def rmi(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Remove image names (their blobs are freed by `minibuild prune`)."""
    store = _store(ctx)
    for name in names:
        entry = store.untag(name)
        click.echo(f"Untagged: {entry.familiar}")


@click.command()
@click.option("--all", "clear_cache", is_flag=True, help="Also drop every build cache record.")
@click.option("--dry-run", is_flag=True, help="Only report what would be freed.")
@click.option("--cache-mounts", is_flag=True, help="Also empty every RUN --mount=type=cache directory.")
@click.pass_context
def prune(ctx: click.Context, clear_cache: bool, dry_run: bool, cache_mounts: bool) -> None:
    """Delete blobs no image, cache record or running build references; print what was freed."""
    store = _store(ctx)
    report = store.prune(clear_cache=clear_cache, dry_run=dry_run)
    verb = "Would delete" if dry_run else "Deleted"
    if cache_mounts or clear_cache:
        from minibuild.engine.runmounts import prune_cache_mounts

        count, freed = prune_cache_mounts(store.meta_dir, dry_run=dry_run)
        click.echo(f"{verb} {plural(count, 'cache mount')}; freed {human_size(freed)} ({freed} bytes)")
    for digest in report.removed:
        click.echo(f"{verb} {digest}")
    extra = f", {report.cache_records_removed} cache records" if report.cache_records_removed else ""
    temps = f", {report.temp_files_removed} stale temp files" if report.temp_files_removed else ""
    click.echo(f"{verb} {len(report.removed)} blobs{extra}{temps}; freed {human_size(report.freed_bytes)} "
               f"({report.freed_bytes} bytes); kept {report.kept} blobs")


@click.command()
@click.argument("source")
@click.argument("target")
@click.pass_context
def tag(ctx: click.Context, source: str, target: str) -> None:
    """Give the image SOURCE the name TARGET."""
    store = _store(ctx)
    digest = store.resolve_digest(source)
    full = store.tag(target, digest)
    click.echo(f"Tagged {parse_reference(full).familiar} -> {digest}")
