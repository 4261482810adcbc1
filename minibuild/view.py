"""Inspect a stored image without extracting it: merged files from layer headers, config, per-layer changes.

``ImageView(store, image)`` reads every layer's tar headers once (no content is extracted) and computes the
filesystem a container would see: layers are applied in order, ``.wh.<name>`` whiteouts hide what lower layers
wrote, ``.wh..wh..opq`` hides every lower child of its directory, parent paths are resolved through symlinks the
way an extraction into a root would (``minibuild.fs.rootfs``), and a hardlink shares the metadata and content
of the file it points to.  File content is read on demand from the layer blob that wrote it.

Paths are absolute (``"/etc/passwd"``); lookups accept ``"etc/passwd"`` and ``"/etc/passwd/"`` too.
"""

from __future__ import annotations

import os
import shutil
import stat as _stat
import tempfile
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from minibuild.digest import Digest
from minibuild.errors import ConfigError, ImageFormatError, MinibuildError
from minibuild.fsperm import ENTRY_TYPE_BITS
from minibuild.oci.image import Image
from minibuild.oci.model import Healthcheck, History, ImageConfig
from minibuild.record import record
from minibuild.store.tarlayer import OPAQUE_NAME, WHITEOUT_PREFIX, Entry
from minibuild.store.tarread import iter_layer

if TYPE_CHECKING:
    from minibuild.fs.rootfs import ApplyStats
    from minibuild.store import Store

MAX_SYMLINKS = 40

# Go's os.FileMode type bits (what container-structure-test prints via FileMode.String())
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20
_GO_LETTERS = "dalTLDpSugct?"


def go_file_mode(type_: str, mode: int) -> int:
    """The Go ``os.FileMode`` of a tar member of ``type_`` with permission bits ``mode`` (as Go's tar does)."""
    m = mode & 0o777
    if mode & 0o4000:
        m |= GO_MODE_SETUID
    if mode & 0o2000:
        m |= GO_MODE_SETGID
    if mode & 0o1000:
        m |= GO_MODE_STICKY
    m |= {"dir": GO_MODE_DIR, "symlink": GO_MODE_SYMLINK, "char": GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE,
          "block": GO_MODE_DEVICE, "fifo": GO_MODE_NAMED_PIPE}.get(type_, 0)
    return m


def go_mode_string(go_mode: int) -> str:
    """Go's ``os.FileMode.String()``: type letters (``dalTLDpSugct?``) or ``-``, then ``rwxrwxrwx``."""
    out = [c for i, c in enumerate(_GO_LETTERS) if go_mode & (1 << (31 - i))]
    if not out:
        out.append("-")
    out.extend(c if go_mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))
    return "".join(out)


class _BlobOpener(Protocol):
    def open(self, digest: Digest) -> BinaryIO: ...


@record(kw_only=False)
class _Content:
    """Where a file's bytes are: the member named ``member`` of layer blob ``digest``."""

    blobs: _BlobOpener
    digest: Digest
    member: str


@record
class FileInfo:
    """One path of the merged filesystem.

    ``type`` is ``file``, ``dir``, ``symlink``, ``char``, ``block`` or ``fifo`` (a hardlink is a ``file`` whose
    ``hardlink_to`` names the path it shares its inode with); ``mode`` holds the permission bits including
    setuid/setgid/sticky; ``link_target`` is a symlink's target as written; ``layer`` is the index of the layer
    that last wrote the path (-1 for the root directory and for parents no layer listed).
    """

    path: str
    type: str
    mode: int
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    link_target: str | None = None
    hardlink_to: str | None = None
    devmajor: int = 0
    devminor: int = 0
    layer: int = -1
    _content: _Content | None = field(default=None, repr=False, compare=False)
    _entry: Entry | None = field(default=None, repr=False, compare=False)  # the layer member that wrote it

    @property
    def is_file(self) -> bool:
        return self.type == "file"

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"

    @property
    def is_symlink(self) -> bool:
        return self.type == "symlink"

    @property
    def go_mode(self) -> int:
        """The Go os.FileMode container-structure-test compares (type bits + permissions)."""
        return go_file_mode(self.type, self.mode)

    @property
    def permissions(self) -> str:
        """Go's FileMode string, e.g. ``-rw-r--r--``, ``drwxr-xr-x``, ``Lrwxrwxrwx``, ``urwxr-xr-x`` (setuid)."""
        return go_mode_string(self.go_mode)

    @property
    def st_mode(self) -> int:
        """The POSIX ``st_mode`` (``stat.S_IFREG | 0o644`` ...)."""
        return ENTRY_TYPE_BITS[self.type] | (self.mode & 0o7777)

    @property
    def st_mtime(self) -> int:
        """The mtime as ``os.stat_result`` names it (a COPY --from key reads either)."""
        return self.mtime

    def read(self) -> bytes:
        """The file's content, read from the layer blob that wrote it (raises for anything but a file)."""
        return self.head(-1)

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes of a file (all of it for -1), read from its layer blob without reading the member
        past them (raises for anything but a file)."""
        if self.type != "file":
            raise ConfigError(f"cannot read {self.path}: it is a {_TYPE_WORDS.get(self.type, self.type)}, not a file")
        if self._content is None or self.size == 0:
            return b""
        c = self._content
        with c.blobs.open(c.digest) as blob:
            for entry, stream in iter_layer(blob):  # left at the member: the rest is never decompressed
                if entry.path == c.member and stream is not None:
                    return stream.read(n)
        raise ImageFormatError(f"layer {c.digest.short}: member {c.member!r} vanished while reading {self.path}")

    def text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """The content decoded as text."""
        return self.read().decode(encoding, errors)


_TYPE_WORDS = {"dir": "directory", "symlink": "symbolic link", "char": "character device",
               "block": "block device", "fifo": "named pipe"}


def _abs(rel: str) -> str:
    return "/" + rel


def _rel(path: str) -> str:
    return "/".join(p for p in path.split("/") if p not in ("", "."))


class FileTree(Mapping[str, FileInfo]):
    """The merged filesystem as a read-only mapping: absolute path -> FileInfo, iterated in sorted order."""

    def __init__(self, nodes: dict[str, FileInfo]) -> None:
        self._nodes = nodes  # relative path ("" = root) -> FileInfo

    def _key(self, path: str) -> str:
        rel = _rel(path)
        if ".." in rel.split("/"):
            raise ConfigError(f"path {path!r} contains '..': look paths up as they appear in the image")
        return rel

    def __getitem__(self, path: str) -> FileInfo:
        try:
            return self._nodes[self._key(path)]
        except KeyError:
            raise KeyError(path) from None

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self._key(path) in self._nodes

    def __iter__(self) -> Iterator[str]:
        return iter(_abs(k) if k else "/" for k in sorted(self._nodes))

    def __len__(self) -> int:
        return len(self._nodes)

    def nearest(self, path: str, n: int = 5) -> tuple[str, ...]:
        """Up to ``n`` existing paths most like ``path`` (same directory first, then by similarity)."""
        import difflib

        rel = self._key(path)
        head = rel.rpartition("/")[0]
        siblings = [k for k in self._nodes if k.rpartition("/")[0] == head and k]
        close = difflib.get_close_matches(rel, siblings, n=n, cutoff=0.3)
        if len(close) < n:
            rest = [k for k in difflib.get_close_matches(rel, [k for k in self._nodes if k], n=n, cutoff=0.5)
                    if k not in close]
            close += rest[: n - len(close)]
        return tuple(_abs(k) for k in close)


@record
class LayerView:
    """One layer: its digests and size, the Dockerfile step that made it, and what it changed.

    ``added`` lists every path the layer writes (new or changed, directories included); ``removed`` lists paths
    of lower layers that this layer deleted (whiteout targets that existed, and each lower child hidden by an
    opaque directory); ``whiteouts`` and ``opaque_dirs`` are the raw markers.
    """

    index: int
    digest: Digest
    diff_id: Digest
    size: int
    media_type: str
    created_by: str | None
    comment: str | None
    added: tuple[str, ...]
    removed: tuple[str, ...]
    whiteouts: tuple[str, ...]
    opaque_dirs: tuple[str, ...]
    entries: tuple[Entry, ...] = field(repr=False)

    @property
    def instruction(self) -> str | None:
        """``created_by`` as a Dockerfile line: ``/bin/sh -c #(nop) `` and `` # buildkit`` removed."""
        if self.created_by is None:
            return None
        text = self.created_by.strip()
        text = text.removeprefix("/bin/sh -c #(nop) ").strip()
        text = text.removesuffix("# buildkit").strip()
        return text


@record
class ConfigView:
    """The runtime configuration of an image, in the forms tests want (env as a dict, ``workdir`` "" when unset).

    ``cmd``/``entrypoint`` are None when the image does not set them, ``()`` when set to an empty list.
    ``exposed_ports`` keep their protocol (``"80/tcp"``).
    """

    env: Mapping[str, str]
    env_list: tuple[str, ...]
    cmd: tuple[str, ...] | None
    entrypoint: tuple[str, ...] | None
    workdir: str
    user: str
    labels: Mapping[str, str]
    exposed_ports: tuple[str, ...]
    volumes: tuple[str, ...]
    healthcheck: Healthcheck | None
    stop_signal: str | None
    shell: tuple[str, ...] | None
    onbuild: tuple[str, ...] | None
    architecture: str
    os: str
    created: str | None
    author: str | None
    raw: ImageConfig = field(repr=False)

    @classmethod
    def from_config(cls, cfg: ImageConfig) -> ConfigView:
        return cls(
            env=MappingProxyType(cfg.env_dict()), env_list=cfg.env, cmd=cfg.cmd, entrypoint=cfg.entrypoint,
            workdir=cfg.working_dir or "", user=cfg.user or "", labels=MappingProxyType(dict(cfg.labels)),
            exposed_ports=cfg.exposed_ports, volumes=cfg.volumes, healthcheck=cfg.healthcheck,
            stop_signal=cfg.stop_signal, shell=cfg.shell, onbuild=cfg.onbuild, architecture=cfg.architecture,
            os=cfg.os, created=cfg.created, author=cfg.author, raw=cfg,
        )


# ------------------------------------------------------------------------------------------- merging layers
class MergedTree:
    """Applies layer entries to an in-memory tree with the semantics of minibuild.fs.rootfs.

    ``nodes`` maps a relative path ("" is the root) to its FileInfo, ``children`` a directory to its child paths.
    This is THE layer fold of minibuild: ImageView, ``minibuild cp`` (minibuild.teach.imagefs) and COPY --from
    checksums without extraction (minibuild.engine.layertree) all use it.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, FileInfo] = {"": FileInfo(path="/", type="dir", mode=0o755)}
        self.children: dict[str, set[str]] = {"": set()}

    # -- tree primitives
    def _put(self, rel: str, info: FileInfo) -> None:
        if rel not in self.nodes:
            parent = rel.rpartition("/")[0]
            self.children.setdefault(parent, set()).add(rel)
        self.nodes[rel] = info
        if info.type == "dir":
            self.children.setdefault(rel, set())

    def _delete(self, rel: str) -> None:
        if rel not in self.nodes or not rel:
            return
        stack = [rel]
        while stack:
            p = stack.pop()
            stack.extend(self.children.pop(p, ()))
            self.nodes.pop(p, None)
        self.children.get(rel.rpartition("/")[0], set()).discard(rel)

    def resolve(self, rel: str, *, follow_final: bool) -> str:
        """Resolve ``rel`` through symlinks of the current tree as a chroot would ('..' clamped at the root)."""
        return self._walk(rel, follow_final=follow_final, strict=False) or ""

    def lookup(self, rel: str, *, follow_final: bool) -> str | None:
        """Like ``resolve``, but None when a component is missing or a non-final one is not a directory."""
        return self._walk(rel, follow_final=follow_final, strict=True)

    def _walk(self, rel: str, *, follow_final: bool, strict: bool) -> str | None:
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        resolved: list[str] = []
        links = 0
        while parts:
            comp = parts.pop(0)
            if comp == "..":
                if resolved:
                    resolved.pop()
                continue
            cand = "/".join([*resolved, comp])
            node = self.nodes.get(cand)
            if node is not None and node.type == "symlink" and (parts or follow_final):
                links += 1
                if links > MAX_SYMLINKS:
                    raise ImageFormatError(f"/{rel}: too many levels of symbolic links")
                target = node.link_target or ""
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            if strict and (node is None or (parts and node.type != "dir")):
                return None
            resolved.append(comp)
        return "/".join(resolved)

    def _parent(self, head: str, layer: int) -> str:
        parent = self.resolve(head, follow_final=True) if head else ""
        # create missing parents as rootfs does (0755, root-owned)
        parts = parent.split("/") if parent else []
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            node = self.nodes.get(p)
            if node is None:
                self._put(p, FileInfo(path=_abs(p), type="dir", mode=0o755, layer=layer))
            elif node.type != "dir":
                raise ImageFormatError(f"layer {layer}: /{p} is not a directory but a later entry lives inside it")
        return parent

    # -- one layer
    def apply(self, index: int, entries: list[Entry], blobs: _BlobOpener | None = None, digest: Digest | None = None,
              ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """Fold one layer in; returns (added, removed, whiteouts, opaque_dirs).  Without ``blobs``/``digest`` the
        FileInfos cannot read their content (metadata only)."""
        added: list[str] = []
        removed: list[str] = []
        whiteouts: list[str] = []
        opaques: list[str] = []
        # whiteouts and opaque markers act on the lower layers only (order within the layer does not matter)
        for e in entries:
            head, _, name = e.path.rpartition("/")
            if not name.startswith(WHITEOUT_PREFIX):
                continue
            parent = self.resolve(head, follow_final=True) if head else ""
            if name == OPAQUE_NAME:
                opaques.append(_abs(parent) if parent else "/")
                for child in sorted(self.children.get(parent, ())):
                    removed.append(_abs(child))
                    self._delete(child)
                continue
            victim = name[len(WHITEOUT_PREFIX):]
            if victim in ("", ".", ".."):
                raise ImageFormatError(f"layer {index}: invalid whiteout name {e.path!r}")
            target = f"{parent}/{victim}" if parent else victim
            whiteouts.append(_abs(target))
            if target in self.nodes:
                removed.append(_abs(target))
                self._delete(target)
        for e in entries:
            if not e.path:
                continue
            head, _, name = e.path.rpartition("/")
            if name.startswith(WHITEOUT_PREFIX):
                continue
            parent = self._parent(head, index)
            rel = f"{parent}/{name}" if parent else name
            existing = self.nodes.get(rel)
            if e.type == "hardlink":
                src_rel = self.resolve(e.linkname, follow_final=False)
                src = self.nodes.get(src_rel)
                if src is None or src.type == "dir":
                    raise ImageFormatError(f"layer {index}: hardlink {e.path!r} -> {e.linkname!r}: target is missing "
                                           "or a directory")
                info = FileInfo(path=_abs(rel), type=src.type, mode=src.mode, uid=src.uid, gid=src.gid, size=src.size,
                                mtime=src.mtime, link_target=src.link_target, hardlink_to=_abs(src_rel),
                                devmajor=src.devmajor, devminor=src.devminor, layer=index, _content=src._content,
                                _entry=e)
            else:
                info = FileInfo(
                    path=_abs(rel), type=e.type, mode=e.mode & 0o7777, uid=e.uid, gid=e.gid,
                    size=e.size if e.type == "file" else 0, mtime=e.mtime,
                    link_target=e.linkname if e.type == "symlink" else None, devmajor=e.devmajor,
                    devminor=e.devminor, layer=index, _entry=e,
                    _content=_Content(blobs, digest, e.path)
                    if e.type == "file" and e.size and blobs is not None and digest is not None else None)
            if existing is not None and (existing.type != "dir" or info.type != "dir"):
                self._delete(rel)
            self._put(rel, info)
            added.append(_abs(rel))
        return tuple(added), tuple(removed), tuple(whiteouts), tuple(opaques)


_Merger = MergedTree  # the old private name


def layer_entries(blobs: _BlobOpener, digest: Digest) -> list[Entry]:
    """The entries of one layer blob, read with the store's verifying reader (content skipped)."""
    with blobs.open(digest) as blob:
        return [e for e, _ in iter_layer(blob)]


def merge_image(blobs: _BlobOpener, image: Image,
                on_layer: Callable[[int, list[Entry], tuple[tuple[str, ...], ...]], None] | None = None, *,
                read: Callable[[Digest], list[Entry]] | None = None) -> MergedTree:
    """Fold every layer of ``image`` (tar headers only, bottom first) into a MergedTree; ``on_layer(index,
    entries, (added, removed, whiteouts, opaque_dirs))`` is called after each layer; ``read(digest)`` replaces
    ``layer_entries`` to list a layer's entries."""
    merger = MergedTree()
    for i, layer in enumerate(image.layers):
        entries = read(layer.digest) if read is not None else layer_entries(blobs, layer.digest)
        changes = merger.apply(i, entries, blobs, layer.digest)
        if on_layer is not None:
            on_layer(i, entries, changes)
    return merger


def _layer_history(image: Image) -> list[History | None]:
    """The history entry of each layer (non-empty history entries in order), None when the image has too few."""
    entries = [h for h in image.history if not h.empty_layer]
    return [entries[i] if i < len(entries) else None for i in range(len(image.layers))]


class ImageView:
    """A read-only view of an image in a store: ``files``, ``config``, ``layers``, ``read``, ``materialize``."""

    def __init__(self, store: Store, image: Image, *, names: tuple[str, ...] = (), _keepalive: Any = None) -> None:
        self.store = store
        self.image = image
        self.names = names
        self._keepalive = _keepalive
        layers: list[LayerView] = []
        history = _layer_history(image)

        def on_layer(i: int, entries: list[Entry], changes: tuple[tuple[str, ...], ...]) -> None:
            layer, hist = image.layers[i], history[i]
            added, removed, wh, opq = changes
            layers.append(LayerView(
                index=i, digest=layer.digest, diff_id=layer.diff_id, size=layer.size,
                media_type=layer.descriptor.media_type, created_by=hist.created_by if hist else None,
                comment=hist.comment if hist else None, added=added, removed=removed, whiteouts=wh,
                opaque_dirs=opq, entries=tuple(entries)))

        merger = merge_image(store.blobs, image, on_layer=on_layer)
        self._merger = merger
        self.files: FileTree = FileTree(merger.nodes)
        self.layers: tuple[LayerView, ...] = tuple(layers)
        self.config: ConfigView = ConfigView.from_config(image.config)

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_store(cls, store: Store, name: str) -> ImageView:
        """The image ``name`` (a name, manifest digest or ID prefix) of ``store``."""
        digest = store.resolve_digest(name)
        return cls(store, store.get_image(digest), names=(name,))

    # ---------------------------------------------------------------- identity
    @property
    def digest(self) -> Digest:
        """The manifest digest."""
        return self.image.digest

    @property
    def id(self) -> Digest:
        """The config digest (the image ID Docker shows)."""
        return self.image.config_digest

    @property
    def history(self) -> tuple[History, ...]:
        return self.image.history

    # ---------------------------------------------------------------- path queries
    def stat(self, path: str, *, follow_symlinks: bool = False) -> FileInfo | None:
        """The FileInfo at ``path`` (parents resolved through symlinks as a chroot would), None when absent."""
        rel = self._merger.resolve(_rel_checked(path), follow_final=follow_symlinks)
        return self._merger.nodes.get(rel)

    def exists(self, path: str, *, follow_symlinks: bool = False) -> bool:
        return self.stat(path, follow_symlinks=follow_symlinks) is not None

    def realpath(self, path: str) -> str:
        """``path`` with every symlink resolved inside the image."""
        return _abs(self._merger.resolve(_rel_checked(path), follow_final=True)) or "/"

    def listdir(self, path: str = "/") -> tuple[str, ...]:
        """Names in the directory at ``path`` (symlinks followed), sorted; ConfigError when not a directory."""
        info = self.stat(path, follow_symlinks=True)
        if info is None or info.type != "dir":
            raise ConfigError(f"{path}: not a directory in the image")
        rel = _rel(info.path)
        return tuple(sorted(c.rpartition("/")[2] for c in self._merger.children.get(rel, ())))

    def read(self, path: str) -> bytes:
        """The content of the file at ``path`` (symlinks followed); ConfigError when absent or not a file."""
        info = self.stat(path, follow_symlinks=True)
        if info is None:
            raise ConfigError(f"{path}: no such file in the image")
        return info.read()

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read(path).decode(encoding)

    # ---------------------------------------------------------------- extraction
    def materialize(self, dest: Path | str) -> ApplyStats:
        """Extract the image's filesystem into ``dest`` (created if missing; must be empty) via rootfs.apply_layer."""
        from minibuild.fs.rootfs import ApplyStats, apply_layer

        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        if any(dest.iterdir()):
            raise ConfigError(f"cannot materialize into {dest}: the directory is not empty")
        total = ApplyStats()
        for layer in self.image.layers:
            with self.store.blobs.open(layer.digest) as blob:
                total = total + apply_layer(dest, blob, export=True)
        return total

    def __repr__(self) -> str:
        label = self.names[0] if self.names else self.digest.short
        return f"<ImageView {label} layers={len(self.layers)} files={len(self.files)}>"


def _rel_checked(path: str) -> str:
    return "/".join(p for p in path.split("/") if p not in ("", "."))


# ------------------------------------------------------------------------------------------- load()
def _temp_store() -> tuple[Store, Any]:
    from minibuild.store import Store

    tmp = tempfile.mkdtemp(prefix="minibuild-view-")
    store = Store.open(tmp)
    # every FileInfo holds store.blobs (to read content later): the directory lives as long as any of them
    keep = weakref.finalize(store.blobs, shutil.rmtree, tmp, True)
    return store, keep


def load(path: Path | str, store: Store | Path | str | None = None, *, name: str | None = None) -> ImageView:
    """Open an image tarball (``docker save``/OCI archive) or OCI layout directory as an ImageView.

    Without ``store`` the blobs go to a private temporary store removed when the view is garbage collected;
    with one they are loaded (and the archive's names tagged) there.  An archive holding several images needs
    ``name`` (one of its names).  Errors are ImageFormatError / StoreError / ConfigError.
    """
    from minibuild.oci.archive import import_archive, read_archive
    from minibuild.store import Store

    keep: Any = None
    if store is None:
        st, keep = _temp_store()
        loaded = read_archive(st, path)
        for item in loaded:
            st.put_image(item.image)
    else:
        st = store if isinstance(store, Store) else Store.open(store)
        loaded = import_archive(st, path)
    if name is not None:
        from minibuild.oci.reference import parse_reference

        try:
            wanted = {name, str(parse_reference(name))}
        except MinibuildError:
            wanted = {name}
        chosen = [item for item in loaded if wanted & set(item.names)]
        if not chosen:
            known = ", ".join(n for item in loaded for n in item.names) or "no names"
            raise ConfigError(f"{path}: no image named {name!r} in the archive (it has: {known})")
    elif len(loaded) > 1:
        known = ", ".join(n for item in loaded for n in item.names) or f"{len(loaded)} unnamed images"
        raise ConfigError(f"{path}: the archive holds {len(loaded)} images; pick one with name= ({known})")
    else:
        chosen = list(loaded)
    item = chosen[0]
    view = ImageView(st, item.image, names=tuple(item.names), _keepalive=keep)
    return view


def open_image(ref: str | Path, store: Store | Path | str | None = None) -> ImageView:
    """An ImageView for ``ref``: an existing tarball/layout path (loaded into a temporary store), else a name
    resolved in ``store`` (default: $MINIBUILD_HOME)."""
    from minibuild.store import Store, default_store_path

    if isinstance(ref, Path) or os.path.exists(ref):
        return load(ref)
    st = store if isinstance(store, Store) else Store.open(store if store is not None else default_store_path())
    return ImageView.from_store(st, str(ref))


__all__ = ["ImageView", "FileInfo", "FileTree", "MergedTree", "merge_image", "LayerView", "ConfigView", "load", "open_image", "go_file_mode",
           "go_mode_string"]
