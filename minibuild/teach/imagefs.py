"""An image's final filesystem computed from its layers (whiteouts honoured), and copying a path out of it.

``image_tree`` reads only layer metadata and folds the layers bottom-up with minibuild.view.MergedTree (the one
layer fold of minibuild): ``.wh.<name>`` deletes ``<name>`` (and everything under it) from the layers below,
``.wh..wh..opq`` hides every lower-layer child of its directory, a non-directory replacing a directory hides that
directory's children, parents are resolved through symlinks as an extraction would.  Tree paths are those resolved
paths; ``TreeEntry.entry`` is the layer member as written (its ``path`` can differ from the tree path).

``copy_out`` then streams only the layers that provide the wanted files and writes them below a destination
directory through directory file descriptors opened with O_NOFOLLOW: nothing is ever written through a symlink,
so an image (or a pre-existing symlink in the destination) cannot make it write outside the destination.
"""

from __future__ import annotations

import difflib
import errno
import os
import stat
from dataclasses import field
from pathlib import Path
from typing import BinaryIO

from minibuild.errors import ImageFormatError, StoreError, UnsafePathError
from minibuild.oci.image import BlobSource, Image
from minibuild.record import record
from minibuild.store.tarlayer import CHUNK, Entry
from minibuild.store.tarread import iter_layer
from minibuild.view import MAX_SYMLINKS, FileInfo, MergedTree, merge_image  # noqa: F401 (MAX_SYMLINKS: kept public)


@record
class TreeEntry:
    """A path of the final filesystem: its entry and the index of the layer that provides it."""

    entry: Entry
    layer: int


@record
class ImageTree:
    """The final filesystem of an image: path -> TreeEntry, plus directories only implied by their children.

    ``merged`` is the minibuild.view.MergedTree the entries were read from (built from them when not given).
    """

    entries: dict[str, TreeEntry]
    implied_dirs: frozenset[str]
    merged: MergedTree | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.merged is None:
            merged = MergedTree()
            for p in sorted(set(self.entries) | self.implied_dirs):
                te = self.entries.get(p)
                kind = "dir" if te is None else ("file" if te.entry.type == "hardlink" else te.entry.type)
                merged._put(p, FileInfo(path="/" + p, type=kind, mode=0o755 if te is None else te.entry.mode,
                                        link_target=te.entry.linkname if kind == "symlink" and te else None,
                                        layer=-1 if te is None else te.layer, _entry=te.entry if te else None))
            object.__setattr__(self, "merged", merged)

    def is_dir(self, path: str) -> bool:
        te = self.entries.get(path)
        return path == "" or (te.entry.type == "dir" if te is not None else path in self.implied_dirs)

    def exists(self, path: str) -> bool:
        return path == "" or path in self.entries or path in self.implied_dirs

    def resolve(self, path: str, *, follow_final: bool = False) -> str | None:
        """The tree path ``path`` names, symlinks resolved as in a chroot (final one only if asked); None if absent."""
        assert self.merged is not None
        try:
            return self.merged.lookup(path, follow_final=follow_final)
        except ImageFormatError:
            raise UnsafePathError(f"{path!r}: too many levels of symbolic links in the image") from None

    def under(self, path: str) -> list[str]:
        """``path`` and every path below it, sorted (parents before children)."""
        if path == "":
            return sorted(self.entries)
        prefix = path + "/"
        return sorted(p for p in self.entries if p == path or p.startswith(prefix))

    def nearest(self, path: str, limit: int = 6) -> list[str]:
        """Existing paths close to a missing one: look-alike names, then what the deepest existing parent holds."""
        norm = "/".join(p for p in path.split("/") if p not in ("", "."))
        every = sorted(set(self.entries) | self.implied_dirs)
        close = difflib.get_close_matches(norm, every, n=limit, cutoff=0.6)
        parent = norm
        while parent and not self.exists(parent):
            parent = parent.rpartition("/")[0]
        prefix = parent + "/" if parent else ""
        children = [p for p in every if p.startswith(prefix) and "/" not in p[len(prefix):]]
        out: list[str] = []
        for p in close + children + ([parent] if parent else []):
            if p not in out:
                out.append(p)
        return out[:limit]


def _tree_of(merged: MergedTree) -> ImageTree:
    """The ImageTree of a folded MergedTree: nodes a layer member wrote are entries, the others implied dirs."""
    entries: dict[str, TreeEntry] = {}
    implied: set[str] = set()
    for rel, info in merged.nodes.items():
        if info._entry is not None:
            entries[rel] = TreeEntry(entry=info._entry, layer=info.layer)
        elif rel:
            implied.add(rel)
    return ImageTree(entries=entries, implied_dirs=frozenset(implied), merged=merged)


def fold_layers(layers: list[list[Entry]]) -> dict[str, TreeEntry]:
    """Fold layer entry lists (bottom first) into the final tree, whiteouts and opaque markers honoured."""
    merged = MergedTree()
    for index, entries in enumerate(layers):
        merged.apply(index, entries)
    return _tree_of(merged).entries


def image_tree(blobs: BlobSource, image: Image) -> ImageTree:
    """The final filesystem of ``image`` (reads every layer's metadata once)."""
    return _tree_of(merge_image(blobs, image))


# ---------------------------------------------------------------------------------------------- safe writing
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Writer:
    """Creates entries below one directory, never following a symlink below it."""

    def __init__(self, root: Path, *, archive: bool) -> None:
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.archive = archive and os.geteuid() == 0
        self.dirs: list[tuple[str, Entry]] = []
        self.warnings: list[str] = []

    def close(self) -> None:
        for rel, e in reversed(self.dirs):
            try:
                fd = self._walk(rel, create=False)
            except (OSError, UnsafePathError):
                continue
            try:
                os.fchmod(fd, e.mode & 0o7777)
                os.utime(fd, (e.mtime, e.mtime))
            finally:
                os.close(fd)
        os.close(self.root_fd)

    def _walk(self, rel: str, *, create: bool) -> int:
        """An fd of directory ``rel`` below the root (components created when asked; symlinks refused)."""
        fd = os.dup(self.root_fd)
        for comp in [p for p in rel.split("/") if p]:
            try:
                nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    raise
                os.mkdir(comp, 0o755, dir_fd=fd)
                nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
            except (NotADirectoryError, OSError) as err:
                os.close(fd)
                raise UnsafePathError(f"cannot write below {rel!r}: {comp!r} in the destination is a symlink or "
                                      f"not a directory ({err.strerror})") from None
            os.close(fd)
            fd = nfd
        return fd

    def _clear(self, pfd: int, name: str, *, keep_dir: bool) -> bool:
        """Remove a non-directory at ``name`` (never following it); True when a directory is there."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if not keep_dir:
                raise UnsafePathError(f"cannot replace directory {name!r} in the destination with a non-directory")
            return True
        os.unlink(name, dir_fd=pfd)
        return False

    def write(self, rel: str, e: Entry, stream: BinaryIO | None) -> int:
        """Create ``rel`` as entry ``e`` describes; returns content bytes written. A host refusal (a name longer
        than NAME_MAX, a full disk, permissions) is one StoreError line naming the entry."""
        try:
            return self._write(rel, e, stream)
        except OSError as err:
            raise _write_error(rel, err) from None

    def _write(self, rel: str, e: Entry, stream: BinaryIO | None) -> int:
        head, _, name = rel.rpartition("/")
        pfd = self._walk(head, create=True)
        try:
            if e.type == "dir":
                if not self._clear(pfd, name, keep_dir=True):
                    os.mkdir(name, 0o700, dir_fd=pfd)
                self.dirs.append((rel, e))
                self._owner(pfd, name, e)
                return 0
            self._clear(pfd, name, keep_dir=False)
            if e.type == "file":
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=pfd)
                written = 0
                with os.fdopen(fd, "wb") as out:
                    if stream is not None:
                        while chunk := stream.read(CHUNK):
                            out.write(chunk)
                            written += len(chunk)
                    out.flush()
                    os.fchmod(out.fileno(), e.mode & 0o7777)
                    os.utime(out.fileno(), (e.mtime, e.mtime))
                self._owner(pfd, name, e)
                return written
            if e.type == "symlink":
                os.symlink(e.linkname, name, dir_fd=pfd)
                self._owner(pfd, name, e)
                return 0
            if e.type == "fifo":
                os.mkfifo(name, e.mode & 0o777, dir_fd=pfd)
                self._owner(pfd, name, e)
                return 0
            self.warnings.append(f"skipped {e.type} device /{rel}")
            return 0
        finally:
            os.close(pfd)

    def link(self, rel: str, existing: str) -> None:
        """Hard-link ``rel`` to the already written ``existing`` (both below the root)."""
        shead, _, sname = existing.rpartition("/")
        dhead, _, dname = rel.rpartition("/")
        try:
            sfd = self._walk(shead, create=False)
            try:
                dfd = self._walk(dhead, create=True)
                try:
                    self._clear(dfd, dname, keep_dir=False)
                    os.link(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
                finally:
                    os.close(dfd)
            finally:
                os.close(sfd)
        except OSError as err:
            raise _write_error(rel, err) from None

    def _owner(self, pfd: int, name: str, e: Entry) -> None:
        if self.archive:
            os.chown(name, e.uid, e.gid, dir_fd=pfd, follow_symlinks=False)


def _write_error(rel: str, err: OSError) -> StoreError:
    shown = "/" + rel if len(rel) <= 80 else f"/{rel[:60]}... ({len(os.fsencode(rel))} bytes)"
    why = "a name is longer than 255 bytes" if err.errno == errno.ENAMETOOLONG else (err.strerror or str(err))
    return StoreError(f"cannot copy {shown} to the destination: {why}")


@record
class CopyResult:
    """What ``copy_out`` wrote: where, how many entries of each kind, content bytes, warnings."""

    source: str  # the image path copied (after symlink resolution), "/"-rooted
    written_to: Path
    files: int
    dirs: int
    symlinks: int
    bytes: int
    warnings: tuple[str, ...] = ()


def copy_out(blobs: BlobSource, image: Image, path: str, dest: Path, *, follow_link: bool = False,
             archive: bool = False, image_name: str = "the image") -> CopyResult:
    """Copy ``path`` of ``image`` to ``dest`` with ``docker cp`` rules.

    An existing directory ``dest`` receives ``basename(path)`` (or the contents, when ``path`` ends in ``/.``);
    otherwise ``dest`` is created (its parent must exist).  ``follow_link`` copies what a final symlink points
    to instead of the link.  ``archive`` keeps owners (as root).  A missing ``path`` is a StoreError listing the
    nearest existing paths.
    """
    tree = image_tree(blobs, image)
    src = tree.resolve(path, follow_final=follow_link)
    if src is None:
        near = ", ".join("/" + p for p in tree.nearest(path)) or ("/ (the image is empty)" if not tree.entries
                                                                    else "/")
        raise StoreError(f"{path!r} does not exist in {image_name}; nearest existing paths: {near}")
    src_is_dir = tree.is_dir(src)
    contents_only = path.rstrip("/").endswith("/.") or path.strip("/") in ("", ".")
    dest = Path(dest)
    if dest.is_dir():
        base_dir, top = dest, ("" if contents_only or src == "" else src.rpartition("/")[2])
    elif dest.exists() or dest.is_symlink():
        if src_is_dir:
            raise StoreError(f"cannot copy directory /{src} onto the file {dest}")
        base_dir, top = dest.parent, dest.name
    else:
        if str(dest).endswith("/") and not src_is_dir:
            raise StoreError(f"destination directory {dest} does not exist")
        if not dest.parent.is_dir():
            raise StoreError(f"destination {dest}: parent directory {dest.parent} does not exist")
        base_dir, top = dest.parent, dest.name

    def rel_of(p: str) -> str:
        sub = p[len(src):].lstrip("/") if src else p
        return "/".join(x for x in (top, sub) if x)

    wanted = tree.under(src) if src in tree.entries or src_is_dir else [src]
    selected = {p: tree.entries[p] for p in wanted if p in tree.entries}
    by_layer: dict[int, dict[str, str]] = {}  # layer -> member path -> tree path
    for p, te in selected.items():
        by_layer.setdefault(te.layer, {})[te.entry.path] = p
    # hardlinks: link to a copied target from the same layer, else copy the bytes the link shares from their layer
    assert tree.merged is not None
    first_index = {layer.digest: i for i, layer in reversed(list(enumerate(image.layers)))}
    link_to: dict[str, str] = {}
    extra_sources: dict[int, dict[str, list[str]]] = {}
    empty_links: list[tuple[str, Entry]] = []
    for p, te in selected.items():
        if te.entry.type != "hardlink":
            continue
        node = tree.merged.nodes[p]
        target = (node.hardlink_to or "").lstrip("/")
        tt = selected.get(target)
        if tt is not None and tt.layer == te.layer:
            link_to[te.entry.path] = rel_of(target)
        elif node._content is not None:
            c = node._content
            extra_sources.setdefault(first_index[c.digest], {}).setdefault(c.member, []).append(rel_of(p))
        elif node.type == "file":
            empty_links.append((rel_of(p), Entry(path=p, type="file", mode=node.mode, uid=node.uid, gid=node.gid,
                                                 mtime=node.mtime)))
    writer = _Writer(base_dir, archive=archive)
    counts = {"file": 0, "dir": 0, "symlink": 0}
    total = 0
    try:
        if src_is_dir and top:
            writer.write(top, tree.entries[src].entry if src in tree.entries else Entry(path=src, type="dir",
                                                                                          mode=0o755), None)
        for index in sorted(set(by_layer) | set(extra_sources)):
            mine = by_layer.get(index, {})
            extras = extra_sources.get(index, {})
            pending_links: list[tuple[str, str]] = []
            with blobs.open(image.layers[index].digest) as fh:
                for e, stream in iter_layer(fh):
                    if e.path in extras and e.type == "file":
                        first, *rest = extras[e.path]
                        total += writer.write(first, e, stream)
                        counts["file"] += 1
                        pending_links.extend((r, first) for r in rest)
                    at = mine.get(e.path)
                    if at is None:
                        continue
                    rel = rel_of(at)
                    if selected[at].entry != e or (rel == top and e.type == "dir"):
                        continue
                    if e.type == "hardlink":
                        if e.path in link_to:
                            pending_links.append((rel, link_to[e.path]))
                        continue
                    if not rel:
                        continue
                    total += writer.write(rel, e, stream)
                    counts[e.type] = counts.get(e.type, 0) + 1
            for rel, existing in pending_links:
                writer.link(rel, existing)
                counts["file"] += 1
        for rel, entry in empty_links:
            writer.write(rel, entry, None)
            counts["file"] += 1
    finally:
        writer.close()
    return CopyResult(source="/" + src, written_to=base_dir / top if top else base_dir, files=counts["file"],
                      dirs=counts["dir"] + (1 if src_is_dir and top else 0), symlinks=counts["symlink"],
                      bytes=total, warnings=tuple(writer.warnings))
