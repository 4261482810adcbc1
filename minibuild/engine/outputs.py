"""``build -o``/``--iidfile``/``-t``: what a build writes besides the store, checked before it starts, written after.

``-o`` takes buildx's forms: ``type=docker,dest=F`` and ``type=oci,dest=F`` (the one archive minibuild writes is
both a ``docker load`` tarball and an OCI archive), ``type=tar,dest=F`` (a plain tar of the final filesystem),
``type=local,dest=DIR`` (the final filesystem in a directory), or a plain path (``type=docker``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from minibuild.errors import ConfigError
from minibuild.oci.image import Image
from minibuild.record import record
from minibuild.store import Store
from minibuild.store.tarlayer import BLOCK, CHUNK, END_OF_ARCHIVE, OPAQUE_NAME, WHITEOUT_PREFIX, Entry, encode_header

OUTPUT_TYPES = ("docker", "oci", "tar", "local")
ARCHIVE_TYPES = ("docker", "oci")  # written by the builder as today's -o tarball


@record
class OutputSpec:
    """One ``-o`` value: the exporter type and its destination."""

    type: str
    dest: Path


def parse_output(value: str | Path) -> OutputSpec:
    """``type=T,dest=D`` (buildx) or a plain path (a docker/OCI archive); ConfigError naming the problem."""
    text = str(value)
    if isinstance(value, Path) or not (text.startswith("type=") or ",dest=" in text or text.startswith("dest=")):
        if not text:
            raise ConfigError("invalid -o '': expected a path or type=docker|oci|tar|local,dest=PATH")
        return OutputSpec(type="docker", dest=Path(text))
    fields: dict[str, str] = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            raise ConfigError(f"invalid -o {text!r}: {part!r} is not KEY=VALUE")
        fields[k.strip()] = v.strip()
    kind = fields.pop("type", "")
    if kind not in OUTPUT_TYPES:
        raise ConfigError(f"invalid -o {text!r}: type must be one of {', '.join(OUTPUT_TYPES)}")
    dest = fields.pop("dest", "")
    if fields:
        raise ConfigError(f"invalid -o {text!r}: unknown option(s) {', '.join(sorted(fields))} for type={kind}")
    if not dest or dest == "-":
        raise ConfigError(f"invalid -o {text!r}: type={kind} needs dest=PATH (minibuild does not write to stdout)")
    return OutputSpec(type=kind, dest=Path(dest))


def _writable_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise ConfigError(f"cannot write {what}: {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {what}: {path} is not writable")


def check_file_dest(dest: Path, what: str) -> None:
    """A file the build will write (atomically, by rename): not a directory, its directory writable."""
    if dest.is_dir():
        raise ConfigError(f"cannot write {what}: {dest} is a directory")
    _writable_dir(dest.parent if str(dest.parent) else Path("."), f"{what} {dest}")


def check_output(spec: OutputSpec) -> None:
    """Refuse, before any step runs, a destination the build could not write."""
    what = f"-o type={spec.type}"
    if spec.type != "local":
        check_file_dest(spec.dest, what)
        return
    if spec.dest.exists() or spec.dest.is_symlink():
        if spec.dest.is_symlink() or not spec.dest.is_dir():
            raise ConfigError(f"cannot write {what}: {spec.dest} exists and is not a directory")
        if any(os.scandir(spec.dest)):
            raise ConfigError(f"cannot write {what}: {spec.dest} is not empty")
    _writable_dir(spec.dest.parent if str(spec.dest.parent) else Path("."), f"{what} {spec.dest}")


def check_tags(tags: Sequence[str]) -> None:
    """Every ``-t`` is a valid NAME[:TAG] (checked before the build, as docker build does)."""
    from minibuild.oci.reference import parse_reference

    for t in tags:
        if "@" in t:
            raise ConfigError(f"invalid tag {t!r}: a tag cannot name a digest")
        try:
            parse_reference(t)
        except ConfigError as exc:
            raise ConfigError(f"invalid tag {t!r} for -t: {exc}") from None


def _below(path: str, top: str) -> bool:
    return top == "" or path.startswith(top + "/")


def final_members(layer_entries: Sequence[Sequence[Entry]]) -> dict[str, int]:
    """Which layer's member is each path's final version in the merged filesystem (OCI layer semantics: a
    ``.wh.NAME`` whiteout removes NAME and what is below it, ``.wh..wh..opq`` what lower layers put below its
    directory, and a non-directory hides what lower layers put below its path). Pure: the input is the layers'
    entries, base first."""
    final: dict[str, int] = {}
    for li, entries in enumerate(layer_entries):
        def drop(top: str, *, with_top: bool) -> None:  # what lower layers put at (and) below ``top``
            for p in [p for p, at in final.items() if at < li and (_below(p, top) or (with_top and p == top))]:
                del final[p]
        for e in entries:
            parent, _, name = e.path.rpartition("/")
            if name == OPAQUE_NAME:
                drop(parent, with_top=False)
            elif name.startswith(WHITEOUT_PREFIX):
                hidden = name[len(WHITEOUT_PREFIX):]
                drop(f"{parent}/{hidden}" if parent else hidden, with_top=True)
        for e in entries:
            if not e.path or e.path.rpartition("/")[2].startswith(WHITEOUT_PREFIX):
                continue
            if e.type != "dir":
                drop(e.path, with_top=False)
            final[e.path] = li
    return final


def _write_merged_tar(store: Store, image: Image, out: BinaryIO) -> None:
    """The merged filesystem as one plain tar, from the layer blobs (owners, modes, devices and mtimes as the
    layers have them, whoever runs this): two passes, metadata first, then each final member streamed."""
    from minibuild.store.tarread import iter_layer, read_entries

    per_layer = []
    for layer in image.layers:
        with store.blobs.open(layer.digest) as fh:
            per_layer.append(read_entries(fh))
    final = final_members(per_layer)
    for li, layer in enumerate(image.layers):
        with store.blobs.open(layer.digest) as fh:
            for e, stream in iter_layer(fh):
                if final.get(e.path) != li:
                    continue
                out.write(encode_header(e))
                if e.type == "file" and e.size:
                    assert stream is not None
                    remaining = e.size
                    while remaining > 0:
                        chunk = stream.read(min(CHUNK, remaining))
                        if not chunk:
                            raise ConfigError(f"layer {layer.digest.short}: {e.path} is shorter than its header says")
                        out.write(chunk)
                        remaining -= len(chunk)
                    pad = -e.size % BLOCK
                    if pad:
                        out.write(b"\0" * pad)
    out.write(END_OF_ARCHIVE)


def write_filesystem(store: Store, image: Image, spec: OutputSpec) -> None:
    """``type=local``: the image's merged filesystem, extracted with the store's confined layer applier into a
    temporary directory beside the destination (ownership only as root, as any extraction), then renamed to it.
    ``type=tar``: the merged filesystem as a plain tar read from the layers, written beside and renamed. Nothing
    is left half-written."""
    dest = spec.dest
    parent = dest.parent if str(dest.parent) else Path(".")
    tmp = parent / f".{dest.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        if spec.type == "tar":
            try:
                with open(tmp, "wb") as fh:
                    _write_merged_tar(store, image, fh)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            return
        from minibuild.fs.rootfs import apply_layer

        try:
            tmp.mkdir(mode=0o755)
            for layer in image.layers:
                with store.blobs.open(layer.digest) as fh:
                    apply_layer(tmp, fh, export=True)
            if dest.is_dir():
                dest.rmdir()  # empty (checked before the build)
            os.rename(tmp, dest)
        finally:
            if tmp.exists():
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise ConfigError(f"cannot write -o type={spec.type} {dest}: {exc.strerror or exc}") from None


def write_iidfile(path: Path, image_id: str) -> None:
    """``--iidfile``: the image ID (``sha256:...``, the config digest), as docker build writes it."""
    from minibuild.store.lock import atomic_write

    try:
        atomic_write(path, image_id.encode(), tmp_dir=path.parent if str(path.parent) else Path("."), durable=False)
    except OSError as exc:
        raise ConfigError(f"cannot write --iidfile {path}: {exc.strerror or exc}") from None
