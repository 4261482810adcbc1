"""Image archives: write one tar that is both an OCI layout and a `docker save` archive; read those,
old `docker save` tarballs, OCI archives and OCI layout directories, verifying every digest and diff_id."""

from __future__ import annotations

import bz2
import fcntl
import hashlib
import lzma
import os
import posixpath
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from minibuild.boundedtar import open_tar
from minibuild.digest import CHUNK, Digest, canonical_json
from minibuild.errors import ConfigError, ImageFormatError
from minibuild.limits import ENV_MAX_DOCUMENT_BYTES, ExpansionCounter, max_document_bytes, max_layer_bytes, sniff
from minibuild.oci.image import EMPTY_LAYER_BYTES, EMPTY_LAYER_DIGEST, BlobSource, Image, Layer
from minibuild.oci.model import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    pairs,
    parse_json,
)
from minibuild.oci.reference import entry_name, parse_reference
from minibuild.oci.validate import scan_layer, validate_image
from minibuild.owner import is_locked_by_someone, pid_alive
from minibuild.record import record

LAYOUT_BYTES = b'{"imageLayoutVersion":"1.0.0"}'
_BLOCK = 512


# ============================================================ writing
@record
class ArchiveEntry:
    """One image to put in an archive and the names it carries (first name goes to index.json)."""

    image: Image
    names: tuple[str, ...] = ()


def _tar_header(name: str, size: int, *, directory: bool = False, mtime: int = 0) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    ti.size = 0 if directory else size
    ti.mode = 0o755 if directory else 0o644
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.mtime = mtime
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _pad(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def archive_documents(entries: Sequence[ArchiveEntry]) -> dict[str, bytes]:
    """The JSON files of the archive: index.json, manifest.json and oci-layout (canonical JSON)."""
    index_entries = []
    docker_items = []
    for entry in entries:
        image = entry.image
        refs = [parse_reference(n) for n in entry.names]
        annotations: dict[str, str] = {}
        if refs:
            annotations[ANNOTATION_IMAGE_NAME] = str(refs[0])
            if refs[0].tag:
                annotations[ANNOTATION_REF_NAME] = refs[0].tag
        desc = image.manifest_descriptor
        index_entries.append(Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size,
                                        platform=desc.platform, annotations=pairs(annotations)))
        docker_items.append({
            "Config": "blobs/sha256/" + image.config_digest.hex,
            "RepoTags": [r.familiar for r in refs if r.tag is not None],
            "Layers": ["blobs/sha256/" + layer.digest.hex for layer in image.layers],
        })
    return {
        "index.json": Index(manifests=tuple(index_entries)).to_bytes(),
        "manifest.json": canonical_json(docker_items),
        "oci-layout": LAYOUT_BYTES,
    }


def write_archive(out: IO[bytes] | BinaryIO, source: BlobSource, entries: Sequence[ArchiveEntry], *,
                  check: bool = True, check_while_copying: bool = False) -> None:
    """Write the combined OCI-layout + docker-save tar to ``out`` (deterministic: same input, same bytes).

    Images with no layer get the 1024-byte empty layer (OCI needs one). With ``check`` every image is
    self-checked first (digests, sizes, diff_ids, history, layer tar structure). ``check_while_copying`` checks
    the layers of a single image as their bytes are copied (one read of each blob instead of two); an error then
    comes after part of the archive was written, so the caller must discard ``out`` (save_image_tar does).
    """
    entries = [ArchiveEntry(image=e.image.with_empty_layer(), names=e.names) for e in entries]
    inline: dict[Digest, bytes] = {}
    streamed: dict[Digest, int] = {}
    for entry in entries:
        image = entry.image
        inline[image.config_digest] = image.config_bytes
        inline[image.digest] = image.manifest_bytes
        for layer in image.layers:
            if layer.digest == EMPTY_LAYER_DIGEST:
                inline[layer.digest] = EMPTY_LAYER_BYTES
            else:
                streamed[layer.digest] = layer.size
        if check:
            validate_image(_WithInline(source, inline), image, layers=not (check_while_copying and len(entries) == 1))
    scan_while_copying: dict[Digest, int] = {}  # layer digest -> its first index in the (only) image
    if check and check_while_copying and len(entries) == 1:
        image = entries[0].image
        for i, layer in enumerate(image.layers):
            if layer.digest in streamed:
                if layer.digest in scan_while_copying:
                    scan_layer(source, image, i)  # the same blob again (rare): its own check, read separately
                else:
                    scan_while_copying[layer.digest] = i
    out.write(_tar_header("blobs/", 0, directory=True))
    out.write(_tar_header("blobs/sha256/", 0, directory=True))
    for digest in sorted(set(inline) | set(streamed), key=lambda d: d.hex):
        name = "blobs/sha256/" + digest.hex
        if digest in inline:
            data = inline[digest]
            out.write(_tar_header(name, len(data)))
            out.write(data)
            out.write(_pad(len(data)))
            continue
        size = streamed[digest]
        out.write(_tar_header(name, size))
        if digest in scan_while_copying:
            copied = [0]

            def sink(data: bytes, copied: list[int] = copied) -> None:
                copied[0] += len(data)
                if copied[0] <= size:
                    out.write(data)

            scan_layer(source, entries[0].image, scan_while_copying[digest], tee=sink)  # raises on a bad blob
            if copied[0] != size:
                raise ImageFormatError(f"blob {digest} is {copied[0]} bytes, its descriptor says {size}")
            out.write(_pad(size))
            continue
        written = 0
        with source.open(digest) as fh:
            while chunk := fh.read(CHUNK):
                written += len(chunk)
                if written > size:
                    break
                out.write(chunk)
        if written != size:
            raise ImageFormatError(f"blob {digest} is {written} bytes, its descriptor says {size}")
        out.write(_pad(size))
    for name, data in sorted(archive_documents(entries).items()):
        out.write(_tar_header(name, len(data)))
        out.write(data)
        out.write(_pad(len(data)))
    out.write(b"\0" * (2 * _BLOCK))


class _WithInline:
    """A BlobSource that serves some blobs from memory (config/manifest not yet stored)."""

    def __init__(self, source: BlobSource, inline: dict[Digest, bytes]) -> None:
        self._source = source
        self._inline = inline

    def open(self, digest: Digest) -> BinaryIO:
        import io

        if digest in self._inline:
            return io.BytesIO(self._inline[digest])
        return self._source.open(digest)

    def read_bytes(self, digest: Digest) -> bytes:
        if digest in self._inline:
            return self._inline[digest]
        return self._source.read_bytes(digest)


def save_image_tar(source: BlobSource, image: Image, names: Sequence[str], out_path: Path | str, *,
                   check: bool = True) -> Image:
    """Write ``image`` named ``names`` to ``out_path`` atomically; returns the image as written
    (with the empty layer added if it had none) so callers can print its digests."""
    out_path = Path(out_path)
    written = image.with_empty_layer()
    for n in names:
        parse_reference(n)
    _remove_dead_temps(out_path)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)  # a leftover of a killed save whose pid this process now has
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fcntl.flock(fd, fcntl.LOCK_EX)  # while this save runs: the next save knows it is alive
            write_archive(fh, source, [ArchiveEntry(image=written, names=tuple(names))], check=check,
                          check_while_copying=True)  # a bad layer raises and the temp file is removed
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out_path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ImageFormatError(f"cannot write {out_path}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written


def _remove_dead_temps(out_path: Path) -> None:
    """Remove ``.<out>.tmp-<pid>`` files that killed saves to the same output left (unlocked, pid not running)."""
    prefix = f".{out_path.name}.tmp-"
    try:
        names = os.listdir(out_path.parent)
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):]
        if not name.startswith(prefix) or not pid.isdigit() or len(pid) > 9:
            continue
        path = out_path.parent / name
        if not is_locked_by_someone(path) and not pid_alive(int(pid)):
            try:
                os.unlink(path)  # the name itself (a symlink is never followed)
            except OSError:
                continue


# ============================================================ reading
class BlobSinkWriter(Protocol):
    def write(self, data: bytes) -> int: ...

    def commit(self) -> Digest: ...

    def __enter__(self) -> BlobSinkWriter: ...

    def __exit__(self, *exc: Any) -> None: ...


class BlobSink(Protocol):
    def has(self, digest: Digest) -> bool: ...

    def writer(self, *, expected: Digest | None = None, pin: Any = None) -> Any: ...

    def put_bytes(self, data: bytes, *, expected: Digest | None = None, pin: Any = None) -> Digest: ...

    def open(self, digest: Digest) -> BinaryIO: ...

    def read_bytes(self, digest: Digest) -> bytes: ...


class ImageSink(Protocol):
    """Where loaded images go (minibuild.store.Store satisfies it)."""

    @property
    def blobs(self) -> BlobSink: ...

    def put_image(self, image: Image, *, pin: Any = None) -> Digest: ...

    def tag(self, name: str, manifest_digest: Digest) -> str: ...

    def record_diff_id(self, digest: Digest, diff_id: Digest) -> None: ...


@record
class LoadedImage:
    """An image read from an archive and the normalised names it carried."""

    image: Image
    names: tuple[str, ...]

    @property
    def digest(self) -> Digest:
        return self.image.digest


class _Members:
    """Uniform access to the files of a tar archive or a directory (paths normalised, symlinks confined)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar: tarfile.TarFile | None = None
        self._infos: dict[str, tarfile.TarInfo] = {}
        if path.is_dir():
            return
        try:
            # headers bounded; no total: what is read of a member is counted as a layer or a JSON document
            self._tar = open_tar(name=str(path), mode="r:*", what=str(path), limit=False)
            for ti in self._tar.getmembers():
                self._infos[_norm(ti.name)] = ti
        except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            if isinstance(exc, tarfile.ReadError) and "could not be opened successfully" in str(exc):
                detail = "not a tar file, nor a gzip, bzip2 or xz compressed one"
            else:  # tarfile's messages can span lines; the CLI prints one
                detail = " ".join(str(exc).split())
            raise ImageFormatError(f"{path}: not a readable tar archive ({detail})") from None

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def exists(self, name: str) -> bool:
        name = _norm(name)
        if self._tar is None:
            return self._dir_path(name).is_file()
        return name in self._infos

    def _dir_path(self, name: str) -> Path:
        root = self.path.resolve()
        full = (root / name).resolve()
        if full != root and root not in full.parents:
            raise ImageFormatError(f"{self.path}: {name!r} points outside the layout")
        return full

    def open(self, name: str) -> BinaryIO:
        name = _norm(name)
        if self._tar is None:
            try:
                return open(self._dir_path(name), "rb")
            except (FileNotFoundError, IsADirectoryError):
                raise ImageFormatError(f"{self.path}: {name} is missing") from None
        for _ in range(8):
            ti = self._infos.get(name)
            if ti is None:
                raise ImageFormatError(f"{self.path}: {name} is missing from the archive")
            if ti.issym():
                name = _norm(posixpath.join(posixpath.dirname(name), ti.linkname))
                continue
            if ti.islnk():
                name = _norm(ti.linkname)
                continue
            fh = self._tar.extractfile(ti)
            if fh is None:
                raise ImageFormatError(f"{self.path}: {name} is not a regular file")
            return fh  # type: ignore[return-value]
        raise ImageFormatError(f"{self.path}: {name}: too many levels of links")

    def read(self, name: str) -> bytes:
        limit = max_document_bytes()
        parts: list[bytes] = []
        total = 0
        with self.open(name) as fh:  # in chunks: read(limit + 1) would allocate the whole limit up front
            while chunk := fh.read(CHUNK):
                total += len(chunk)
                if limit is not None and total > limit:
                    raise ImageFormatError(f"{self.path}: {name} is larger than {limit} bytes, the limit on a JSON "
                                           f"document set by {ENV_MAX_DOCUMENT_BYTES}")
                parts.append(chunk)
        return b"".join(parts)


def _norm(name: str) -> str:
    out = posixpath.normpath("/" + name).lstrip("/")
    if out.startswith("../"):
        raise ImageFormatError(f"archive member name {name!r} escapes the archive")
    return out


class _LayerDigester:
    """Hashes the uncompressed content of a layer blob fed in chunks (gzip, bzip2, xz or plain).

    Output is produced in chunks of at most CHUNK bytes and counted against MINIBUILD_MAX_LAYER_BYTES, so a
    decompression bomb costs neither memory nor unbounded disk.
    """

    def __init__(self, kind: str, where: str = "layer") -> None:
        self.kind = kind
        self.hash = hashlib.sha256()
        self.counter = ExpansionCounter(where, limit=max_layer_bytes())
        self._dec: Any = None
        self._new()

    def _new(self) -> None:
        if self.kind == "gzip":
            self._dec = zlib.decompressobj(wbits=31)
        elif self.kind == "bzip2":
            self._dec = bz2.BZ2Decompressor()
        elif self.kind == "xz":
            self._dec = lzma.LZMADecompressor()

    def _out(self, data: bytes) -> bytes:
        self.counter.add(len(data))
        self.hash.update(data)
        return data

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Feed stored bytes; yield the uncompressed bytes they produce, in bounded pieces."""
        if self.kind == "tar":
            yield self._out(chunk)
            return
        data = chunk
        try:
            while True:
                out = self._dec.decompress(data, CHUNK)
                data = self._dec.unconsumed_tail if self.kind == "gzip" else b""
                if out:
                    yield self._out(out)
                if self._dec.eof:
                    rest = self._dec.unused_data + data
                    self._new()
                    if not rest:
                        return
                    data = rest
                    continue
                if self.kind == "gzip":
                    if not out and not data:
                        return
                elif self._dec.needs_input:
                    return
        except (zlib.error, OSError, lzma.LZMAError, EOFError) as exc:
            raise ImageFormatError(f"corrupt {self.kind} layer ({exc})") from None

    @property
    def diff_id(self) -> Digest:
        return Digest("sha256:" + self.hash.hexdigest())


def _read_chunks(fh: BinaryIO, head: bytes = b"") -> Iterator[bytes]:
    if head:
        yield head
    while chunk := fh.read(CHUNK):
        yield chunk


class _Loader:
    def __init__(self, sink: ImageSink, members: _Members, pin: Any) -> None:
        self.sink = sink
        self.m = members
        self.pin = pin

    # ---------------------------------------------------------- OCI layout
    def blob_bytes(self, desc: Descriptor, what: str) -> bytes:
        data = self.m.read("blobs/sha256/" + desc.digest.hex)
        if len(data) != desc.size:
            raise ImageFormatError(f"{self.m.path}: {what} {desc.digest.short} is {len(data)} bytes, descriptor says {desc.size}")
        if Digest.of_bytes(data) != desc.digest:
            raise ImageFormatError(f"{self.m.path}: {what} does not hash to its digest {desc.digest}")
        return data

    def copy_layer(self, desc: Descriptor, diff_id: Digest, where: str) -> None:
        """Copy one layer blob into the store, checking size, digest and diff_id."""
        kind = {MEDIA_OCI_LAYER: "tar", MEDIA_OCI_LAYER_GZIP: "gzip"}.get(desc.media_type)
        if kind is None:
            raise ImageFormatError(f"{where}: layer media type {desc.media_type!r} is not supported (tar or tar+gzip)")
        if self.pin is not None and hasattr(self.sink.blobs, "shared_lock"):
            # pin and re-check under the store's shared lock: prune (exclusive) then sees the pin, or the blob
            # is already gone and is copied again
            with self.sink.blobs.shared_lock():
                if self.sink.blobs.has(desc.digest):
                    self.pin.add(desc.digest)
                    return
        elif self.sink.blobs.has(desc.digest):
            if self.pin is not None:
                self.pin.add(desc.digest)
            return
        digester = _LayerDigester(kind, where)
        with self.m.open("blobs/sha256/" + desc.digest.hex) as fh, self.sink.blobs.writer(pin=self.pin) as w:
            for chunk in _read_chunks(fh):
                w.write(chunk)
                for _ in digester.feed(chunk):
                    pass
            if w.size != desc.size:
                raise ImageFormatError(f"{where}: blob is {w.size} bytes, descriptor says {desc.size}")
            if w.digest != desc.digest:
                raise ImageFormatError(f"{where}: blob does not hash to its digest {desc.digest} (got {w.digest})")
            if digester.diff_id != diff_id:
                raise ImageFormatError(f"{where}: diff_id is {digester.diff_id} but the config says {diff_id}")
            w.commit()
        self.sink.record_diff_id(desc.digest, diff_id)  # hashed here; put_image then needs no second pass

    def load_manifest(self, desc: Descriptor) -> Image:
        manifest_bytes = self.blob_bytes(desc, "manifest")
        manifest = Manifest.from_bytes(manifest_bytes, f"manifest {desc.digest.short}")
        config_bytes = self.blob_bytes(manifest.config, "config")
        image = Image.from_bytes(manifest_bytes, config_bytes, where=f"{self.m.path}: image {desc.digest.short}")
        for i, layer in enumerate(image.layers):
            self.copy_layer(layer.descriptor, layer.diff_id, f"{self.m.path}: layer {i}")
        return image

    def pick_platform(self, index: Index) -> list[Descriptor]:
        images = [d for d in index.manifests if d.media_type in MANIFEST_TYPES]
        arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(os.uname().machine, os.uname().machine)
        for d in images:
            if d.platform is not None and d.platform.os == "linux" and d.platform.architecture == arch:
                return [d]
        if len(images) == 1:
            return images
        raise ImageFormatError(f"{self.m.path}: multi-platform index has no linux/{arch} image")

    def load_oci(self) -> list[LoadedImage]:
        layout = parse_json(self.m.read("oci-layout"), "oci-layout")
        if layout.get("imageLayoutVersion") != "1.0.0":
            raise ImageFormatError(f"{self.m.path}: unsupported OCI layout version {layout.get('imageLayoutVersion')!r}")
        index = Index.from_bytes(self.m.read("index.json"), "index.json")
        repo_tags = self.docker_repo_tags()
        order: list[Digest] = []
        images: dict[Digest, Image] = {}
        names: dict[Digest, list[str]] = {}
        for desc in index.manifests:
            if desc.media_type in INDEX_TYPES:
                nested = Index.from_bytes(self.blob_bytes(desc, "index"), f"index {desc.digest.short}")
                targets = self.pick_platform(nested)
            elif desc.media_type in MANIFEST_TYPES:
                targets = [desc]
            else:
                continue  # unknown media types in index.json must not be an error
            for target in targets:
                image = images.get(target.digest) or self.load_manifest(target)
                if target.digest not in images:
                    images[target.digest] = image
                    order.append(target.digest)
                found = names.setdefault(target.digest, [])
                name = entry_name(desc)
                for candidate in ([name] if name else []) + repo_tags.get(image.config_digest.hex, []):
                    if candidate not in found:
                        found.append(candidate)
        return [LoadedImage(image=images[d], names=tuple(names[d])) for d in order]

    def docker_repo_tags(self) -> dict[str, list[str]]:
        """config hex -> normalised RepoTags from a manifest.json next to index.json (Docker 25+ saves)."""
        if not self.m.exists("manifest.json"):
            return {}
        try:
            items = self._docker_items()
        except ImageFormatError:
            return {}
        out: dict[str, list[str]] = {}
        for item in items:
            hexpart = posixpath.basename(_norm(item["Config"])).removesuffix(".json")
            out.setdefault(hexpart, []).extend(_normalise_names(item.get("RepoTags") or []))
        return out

    # ---------------------------------------------------------- docker save (legacy and 25+)
    def _docker_items(self) -> list[dict[str, Any]]:
        import json

        try:
            items = json.loads(self.m.read("manifest.json"))
        except ValueError as exc:
            raise ImageFormatError(f"{self.m.path}: manifest.json is not JSON ({exc})") from None
        if not isinstance(items, list):
            raise ImageFormatError(f"{self.m.path}: manifest.json must be a JSON array")
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("Config"), str) or not isinstance(item.get("Layers"), list):
                raise ImageFormatError(f"{self.m.path}: manifest.json item {i} needs Config and Layers")
        return items

    def load_docker(self) -> list[LoadedImage]:
        out = []
        for i, item in enumerate(self._docker_items()):
            config_bytes = self.m.read(item["Config"])
            config = ImageConfig.from_bytes(config_bytes, f"{self.m.path}: {item['Config']}")
            paths = item["Layers"]
            if len(paths) != len(config.diff_ids):
                raise ImageFormatError(
                    f"{self.m.path}: manifest.json item {i} lists {len(paths)} layers but the config has "
                    f"{len(config.diff_ids)} diff_ids")
            layers = []
            for j, (p, diff_id) in enumerate(zip(paths, config.diff_ids)):
                if not isinstance(p, str):
                    raise ImageFormatError(f"{self.m.path}: manifest.json layer {j} is not a path")
                layers.append(self.ingest_docker_layer(p, diff_id, f"{self.m.path}: layer {j} ({p})"))
            cfg_desc = Descriptor(media_type=MEDIA_OCI_CONFIG, digest=Digest.of_bytes(config_bytes), size=len(config_bytes))
            manifest = Manifest(config=cfg_desc, layers=tuple(layer.descriptor for layer in layers))
            image = Image.from_bytes(manifest.to_bytes(), config_bytes, where=str(self.m.path))
            out.append(LoadedImage(image=image, names=tuple(_normalise_names(item.get("RepoTags") or []))))
        return out

    def ingest_docker_layer(self, path: str, diff_id: Digest, where: str) -> Layer:
        with self.m.open(path) as fh:
            head = fh.read(6)
            kind = sniff(head)
            if kind == "zstd":
                raise ImageFormatError(f"{where}: zstd-compressed layers are not supported")
            digester = _LayerDigester(kind, where)
            with self.sink.blobs.writer(pin=self.pin) as w:
                for chunk in _read_chunks(fh, head):
                    if kind in ("tar", "gzip"):
                        w.write(chunk)
                    for data in digester.feed(chunk):
                        if kind not in ("tar", "gzip"):
                            # bzip2/xz layers are stored uncompressed (OCI has no media type for them)
                            w.write(data)
                if digester.diff_id != diff_id:
                    raise ImageFormatError(f"{where}: content hashes to {digester.diff_id} but the config says diff_id {diff_id}")
                digest = w.commit()
                size = w.size
            self.sink.record_diff_id(digest, diff_id)
        media_type = MEDIA_OCI_LAYER_GZIP if kind == "gzip" else MEDIA_OCI_LAYER
        return Layer(descriptor=Descriptor(media_type=media_type, digest=digest, size=size), diff_id=diff_id)


def _normalise_names(tags: list[Any]) -> list[str]:
    out = []
    for tag in tags:
        if isinstance(tag, str):
            try:
                out.append(str(parse_reference(tag)))
            except ConfigError:
                raise ImageFormatError(f"invalid RepoTags entry {tag!r} in manifest.json") from None
    return out


def read_archive(sink: ImageSink, path: Path | str, *, pin: Any = None) -> tuple[LoadedImage, ...]:
    """Copy every image of an archive or layout directory into ``sink`` (blobs only, nothing tagged)."""
    path = Path(path)
    if not path.exists():
        raise ImageFormatError(f"{path}: no such file or directory")
    members = _Members(path)
    try:
        loader = _Loader(sink, members, pin)
        if members.exists("oci-layout") and members.exists("index.json"):
            loaded = loader.load_oci()
        elif members.exists("manifest.json"):
            loaded = loader.load_docker()
        elif members.exists("index.json"):
            raise ImageFormatError(f"{path}: has index.json but no oci-layout file (not an OCI image layout)")
        else:
            raise ImageFormatError(
                f"{path}: not an image archive (no manifest.json or oci-layout + index.json at its top level; "
                f"a `docker export` root filesystem or a tar of a directory is not an image)")
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ImageFormatError(f"{path}: cannot read archive ({exc})") from None
    finally:
        members.close()
    if not loaded:
        raise ImageFormatError(f"{path}: the archive contains no image")
    return tuple(loaded)


def import_archive(sink: ImageSink, path: Path | str) -> tuple[LoadedImage, ...]:
    """Load every image of ``path`` into ``sink`` (blobs, manifests) and tag it with its names."""
    lease = getattr(sink, "lease", None)
    pin = lease() if lease is not None else None
    try:
        loaded = read_archive(sink, path, pin=pin)
        for item in loaded:
            digest = sink.put_image(item.image, pin=pin)
            for name in item.names:
                sink.tag(name, digest)
    finally:
        if pin is not None:
            pin.release()
    return loaded


def load_archive(sink: ImageSink, path: Path | str) -> list[str]:
    """Load ``path`` into the store; return the names it tagged (normalised)."""
    return [name for item in import_archive(sink, path) for name in item.names]


__all__ = ["ArchiveEntry", "LoadedImage", "write_archive", "save_image_tar", "read_archive", "import_archive",
           "load_archive", "archive_documents"]
