"""CLI commands that explain: graph (stage pictures), history (layers + cache keys), du (store usage), cp."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from minibuild.cli.build_cmd import parse_build_args
from minibuild.dockerfile import decode_dockerfile, parse_dockerfile
from minibuild.errors import ConfigError, StoreError
from minibuild.oci.image import Image
from minibuild.store import Store
from minibuild.store.tarlayer import OPAQUE_NAME, WHITEOUT_PREFIX
from minibuild.teach.graph import stage_graph
from minibuild.teach.render import FORMATS, render
from minibuild.units import human_bytes, image_size, plural


def _store(ctx: click.Context) -> Store:
    return Store.open(ctx.obj["store"])


def _read_dockerfile(context: Path, file: str | None) -> tuple[str, str]:
    path = Path(file) if file else context / "Dockerfile"
    if file == "-":
        return decode_dockerfile(sys.stdin.buffer.read()), "Dockerfile"
    from minibuild.fs.confine import read_build_file

    data = read_build_file(context, path, what=f"Dockerfile {path}", error=ConfigError)
    if data is None:
        raise ConfigError(f"cannot read Dockerfile {path}: No such file or directory")
    return decode_dockerfile(data), str(path)


def _image_sizes(ctx: click.Context, refs: list[str]) -> dict[str, int]:
    """Sizes of external images that happen to be in the store (the store is not created for this)."""
    root = Path(ctx.obj["store"])
    if not (root / "index.json").exists():
        return {}
    store = Store.open(root)
    out = {}
    for ref in refs:
        try:
            image = store.resolve(ref)
        except (StoreError, ConfigError):
            continue
        out[ref] = image_size(image)
    return out


@click.command()
@click.argument("context", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("-f", "--file", "file", default=None, help="Dockerfile (default CONTEXT/Dockerfile; - for stdin).")
@click.option("--target", default=None, help="Stage to build (default: the last one).")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V", help="Build argument (repeatable).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="mermaid", show_default=True)
@click.option("--report", "report", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="A build report (JSON) to take stage sizes from.")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of stdout.")
@click.pass_context
def graph(ctx: click.Context, context: Path, file: str | None, target: str | None, build_args: tuple[str, ...],
          fmt: str, report: Path | None, output: Path | None) -> None:
    """Draw the stage graph: FROM and COPY --from edges (with paths), skipped stages greyed out."""
    text, name = _read_dockerfile(context, file)
    dockerfile = parse_dockerfile(text, filename=Path(name).name)
    args = parse_build_args(build_args)
    sizes: dict[str, int] = {}
    if report is not None:
        from minibuild.teach.report import report_from_json

        try:
            doc = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read report {report}: {err}") from None
        for s in report_from_json(doc).stages:
            if s.status != "skipped":
                sizes[s.ref] = s.size
    g = stage_graph(dockerfile, target=target, build_args=args, sizes=sizes)
    image_sizes = _image_sizes(ctx, [i.ref for i in g.images if not i.scratch])
    if image_sizes:
        g = stage_graph(dockerfile, target=target, build_args=args, sizes=sizes, image_sizes=image_sizes)
    node = g.stages[g.target]
    target_ref = node.name if node.name is not None else f"stage-{node.index}"  # as the build output names it
    out = render(g, fmt, title=f"{name} (target {target_ref})")
    if output is None:
        click.echo(out, nl=False)
    else:
        try:
            output.write_text(out, encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"cannot write {output}: {err.strerror or err}") from None
        click.echo(f"wrote {fmt} stage graph of {name} to {output}", err=True)


def _trunc(text: str, width: int, no_trunc: bool) -> str:
    text = " ".join(text.split()) if not no_trunc else text
    return text if no_trunc or len(text) <= width else text[: width - 1] + "\u2026"


def _layer_files(store: Store, digest_value: str) -> list[str]:
    from minibuild.digest import Digest
    from minibuild.teach.storeview import layer_entries

    lines = []
    for e in layer_entries(store, Digest(digest_value)):
        head, _, base = e.path.rpartition("/")
        where = (head + "/") if head else ""
        if base == OPAQUE_NAME:
            lines.append(f"    opaque   /{where}  (hides everything lower layers had in this directory)")
        elif base.startswith(WHITEOUT_PREFIX):
            lines.append(f"    deleted  /{where}{base[len(WHITEOUT_PREFIX):]}  (whiteout {e.path})")
        else:
            size = f"  {human_bytes(e.size)}" if e.type == "file" else ""
            link = f" -> {e.linkname}" if e.linkname else ""
            lines.append(f"    {e.type:<8} /{e.path}{link}{size}")
    return lines


@click.command()
@click.argument("name")
@click.option("--no-trunc", is_flag=True, help="Do not truncate created-by, digests and keys.")
@click.option("--files", is_flag=True, help="List each layer's entries (whiteouts shown as deletions).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def history(ctx: click.Context, name: str, no_trunc: bool, files: bool, as_json: bool) -> None:
    """Show the history of image NAME, newest first: created-by, layer, size, cache key, comment."""
    from minibuild.teach.storeview import history_rows

    store = _store(ctx)
    image = store.resolve(name)
    rows = history_rows(store, image)
    if as_json:
        click.echo(json.dumps([{
            "created": r.created, "created_by": r.created_by, "comment": r.comment, "empty_layer": r.empty_layer,
            "layer": r.layer.value if r.layer else None, "size": r.size, "cache_keys": list(r.cache_keys),
        } for r in rows], indent=2))
        return
    table = [("LAYER", "CREATED", "CREATED BY", "SIZE", "CACHE KEY", "COMMENT")]
    for r in reversed(rows):
        layer = "<empty>" if r.layer is None else (r.layer.value if no_trunc else r.layer.hex[:12])
        key = r.cache_keys[0] if r.cache_keys else "-"
        if len(r.cache_keys) > 1:
            key += f" (+{len(r.cache_keys) - 1})"
        table.append((layer, r.created or "-", _trunc(r.created_by, 60, no_trunc),
                      "0B" if r.empty_layer else human_bytes(r.size), _trunc(key, 24, no_trunc),
                      _trunc(r.comment, 40, no_trunc)))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for n, row in enumerate(table):
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if files and n > 0 and row[0] != "<empty>":
            full = rows[len(rows) - n].layer
            assert full is not None
            for line in _layer_files(store, full.value):
                click.echo(line)
    total = image_size(image)
    empty = sum(1 for r in rows if r.empty_layer)
    click.echo(f"{plural(len(image.layers), 'layer')}, {human_bytes(total)} ({total} bytes); "
               f"{plural(empty, 'history entry', 'history entries')} without a layer")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def du(ctx: click.Context, as_json: bool) -> None:
    """Show store usage: by image (unique vs shared), by cache records, shared layers, what prune would free.

    SIZE is the image size `images` shows (its layer blobs); METADATA is its manifest and config blobs."""
    from minibuild.teach.storeview import disk_usage

    usage = disk_usage(_store(ctx))
    if as_json:
        click.echo(json.dumps({
            "blobs": usage.blobs, "blob_bytes": usage.blob_bytes, "image_bytes": usage.image_bytes,
            "images": [{"names": list(i.names), "digest": i.digest.value, "layers": i.layers, "size": i.size,
                        "unique": i.unique, "shared": i.shared, "metadata": i.metadata} for i in usage.images],
            "cache_records": usage.cache_records, "cache_bytes": usage.cache_bytes,
            "cache_only_bytes": usage.cache_only_bytes,
            "shared_layers": [{"digest": s.digest.value, "size": s.size, "images": list(s.images)}
                              for s in usage.shared_layers],
            "prune": {"blobs": usage.prune_blobs, "bytes": usage.prune_bytes},
            "prune_all": {"bytes": usage.prune_all_bytes},
        }, indent=2))
        return
    click.echo(f"Store {ctx.obj['store']}: {usage.blobs} blobs, {human_bytes(usage.blob_bytes)} "
               f"({usage.blob_bytes} bytes)")
    click.echo("")
    rows = [("IMAGE", "DIGEST", "LAYERS", "SIZE", "SHARED", "UNIQUE", "METADATA")]
    for i in usage.images:
        rows.append((", ".join(i.names), i.digest.hex[:12], str(i.layers), human_bytes(i.size),
                     human_bytes(i.shared), human_bytes(i.unique), human_bytes(i.metadata)))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    click.echo(f"images use {human_bytes(usage.image_bytes)} ({usage.image_bytes} bytes) of distinct blobs")
    click.echo("")
    click.echo(f"Build cache: {usage.cache_records} records keep {human_bytes(usage.cache_bytes)} alive, "
               f"{human_bytes(usage.cache_only_bytes)} ({usage.cache_only_bytes} bytes) of it used by no image")
    if usage.shared_layers:
        click.echo("")
        click.echo("Shared layers:")
        for s in usage.shared_layers:
            click.echo(f"  {s.digest.hex[:12]}  {human_bytes(s.size):>8}  {', '.join(s.images)}")
    click.echo("")
    click.echo(f"`minibuild prune` would delete {usage.prune_blobs} blobs and free {human_bytes(usage.prune_bytes)} "
               f"({usage.prune_bytes} bytes)")
    click.echo(f"`minibuild prune --all` (also drops the build cache) would free "
               f"{human_bytes(usage.prune_all_bytes)} ({usage.prune_all_bytes} bytes)")


@click.command()
@click.argument("source", metavar="NAME:PATH")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("-L", "--follow-link", is_flag=True, help="Copy what a final symlink in PATH points to.")
@click.option("-a", "--archive", is_flag=True, help="Keep owners (uid/gid) when running as root.")
@click.pass_context
def cp(ctx: click.Context, source: str, dest: Path, follow_link: bool, archive: bool) -> None:
    """Copy a file or directory out of a stored image (no container needed): NAME:PATH DEST."""
    from minibuild.teach.imagefs import copy_out

    name, sep, path = source.rpartition(":/")
    if not sep:
        raise ConfigError(f"expected NAME:/PATH, got {source!r} (the path inside the image must be absolute)")
    store = _store(ctx)
    image: Image = store.resolve(name)
    result = copy_out(store.blobs, image, "/" + path, dest, follow_link=follow_link, archive=archive,
                      image_name=name)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"Copied {name}:{result.source} to {result.written_to}: {result.files} files, {result.dirs} "
               f"directories, {result.symlinks} symlinks, {human_bytes(result.bytes)} ({result.bytes} bytes)")
