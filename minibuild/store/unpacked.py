"""Unpacked layers: each layer blob extracted once into its own folder, in overlayfs's lower-layer format.

``.minibuild/unpacked/<blob hex>`` holds one layer alone (its whiteouts as 0:0 character devices, its opaque
directories marked ``trusted.overlay.opaque=y``), the way Docker's overlay2 keeps a layer after ``docker load``;
the chroot executor mounts a stage's folders as the lower layers of an overlay instead of copying every file of
the base into the stage's tree. Made only as root (owners, device nodes and trusted xattrs are the host's own
there); each folder is extracted under ``.minibuild/tmp`` (``.tmp-unpacked-<pid>-<random>``: the debris of a killed
extraction is reaped like any temp file) and renamed into place, so a folder that exists is complete. ``prune``
removes those of blobs no longer stored.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

from minibuild.errors import ImageFormatError, StoreError
from minibuild.digest import Digest

if TYPE_CHECKING:
    from minibuild.store import Store

UNPACKED_DIR = "unpacked"
TMP_PREFIX = ".tmp-unpacked-"


def unpacked_root(store: Store) -> Path:
    return store.meta_dir / UNPACKED_DIR


def _existing(path: Path) -> bool:
    """Whether ``path`` is a finished folder: a real directory of this user (a symlink planted there is refused)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise StoreError(f"{path} is not an unpacked layer minibuild made (not a directory of this user)")
    return True


Extract = Callable[[Path, BinaryIO], object]  # one layer blob into an empty folder, in overlay format


def unpacked_layer(store: Store, digest: Digest, open_blob: Callable[[Digest], BinaryIO],
                   extract: Extract) -> tuple[Path, bool]:
    """The folder of layer ``digest``, extracted now (by ``extract``: the confined applier, a layer above the
    store) when it is not there yet; whether it was extracted now."""
    top = unpacked_root(store)
    path = top / digest.hex
    if _existing(path):
        return path, False
    top.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _existing_dir(top):
        raise StoreError(f"{top} is not a directory of this user")
    tmp = store.tmp_dir / f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
    tmp.mkdir(mode=0o755)
    try:
        with open_blob(digest) as fh:
            extract(tmp, fh)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, path)
        except OSError:
            if not _existing(path):  # another build finished it first: theirs is as good
                raise
            _remove_tree(tmp)
    except BaseException:
        _remove_tree(tmp)
        raise
    return path, True


def _existing_dir(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()


def _remove_tree(path: Path) -> None:
    from minibuild.store.dirs import opened, remove

    with opened(path.parent.parent, path.parent.name) as fd:
        if fd is not None:
            remove(fd, path.name)


def forget_unpacked(store: Store, keep: Callable[[Digest], bool]) -> int:
    """Remove the folders of layers ``keep`` refuses (and anything else found there); how many went. Walked
    through directory fds, never following symlinks (store.dirs)."""
    from minibuild.store.dirs import names, opened, remove

    removed = 0
    with opened(store.root, store.meta_dir.name, UNPACKED_DIR) as fd:
        if fd is None:
            return 0
        for name in names(fd):
            try:
                gone = not keep(Digest(f"sha256:{name}"))
            except ImageFormatError:
                gone = True  # not a name minibuild makes
            if gone:
                remove(fd, name)
                removed += 1
    return removed


def unpacked_problem(store: Store, digest: Digest) -> str | None:
    """What differs between the folder of layer ``digest`` and the layer itself (None: nothing): every path's
    type, permission bits, owner, size, bytes, link target and device, each whiteout's 0:0 device and each opaque
    mark, and no path the layer does not make (``fsck``)."""
    import hashlib

    from minibuild.store.tarlayer import OPAQUE_NAME, OVERLAY_OPAQUE, WHITEOUT_PREFIX, normalize_path
    from minibuild.store.tarread import iter_layer

    top = unpacked_root(store) / digest.hex
    want: dict[str, tuple[object, ...]] = {}
    links: dict[str, str] = {}
    opaque: set[str] = set()
    with store.blobs.open(digest) as fh:
        for e, stream in iter_layer(fh):
            rel = normalize_path(e.path)
            head, _, name = rel.rpartition("/")
            if not rel:
                continue
            if name == OPAQUE_NAME:
                opaque.add(head)
            elif name.startswith(WHITEOUT_PREFIX):
                victim = (head + "/" if head else "") + name[len(WHITEOUT_PREFIX):]
                if victim not in want:
                    want[victim] = ("char", 0o600, 0, 0, os.makedev(0, 0))
            elif e.type == "hardlink":
                links[rel] = normalize_path(e.linkname)
            elif e.type == "file":
                h = hashlib.sha256()
                while stream is not None and (chunk := stream.read(1 << 20)):
                    h.update(chunk)
                want[rel] = ("file", e.mode & 0o7777, e.uid, e.gid, h.hexdigest())
            elif e.type == "symlink":
                want[rel] = ("symlink", e.uid, e.gid, e.linkname)
            elif e.type == "dir":
                want[rel] = ("dir", e.mode & 0o7777, e.uid, e.gid)
            else:
                want[rel] = (e.type, e.mode & 0o7777, e.uid, e.gid, os.makedev(e.devmajor, e.devminor))
    for rel, target in links.items():
        if target in want:
            want[rel] = want[target]
    parents = {p for rel in [*want, *opaque] for p in _ancestors(rel)}
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            seen.add(rel)
            got = _described(path)
            if rel in want and got != want[rel]:
                return f"/{rel} is {got}, its layer makes {want[rel]}"
            if rel not in want and not (rel in parents and got[0] == "dir"):
                return f"/{rel} is not in its layer"
            if got[0] == "dir" and (rel in opaque) != (OVERLAY_OPAQUE in os.listxattr(path, follow_symlinks=False)):
                return f"/{rel} is {'not ' if rel in opaque else ''}marked opaque, unlike its layer"
    missing = sorted(set(want) - seen)
    return f"/{missing[0]} of its layer is missing" if missing else None


def _ancestors(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))] + ([rel] if rel else [])


def _described(path: str) -> tuple[object, ...]:
    import hashlib

    st = os.lstat(path)
    perm = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return ("file", perm, st.st_uid, st.st_gid, h.hexdigest())
    if stat.S_ISLNK(st.st_mode):
        return ("symlink", st.st_uid, st.st_gid, os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", perm, st.st_uid, st.st_gid)
    kind = "char" if stat.S_ISCHR(st.st_mode) else "block" if stat.S_ISBLK(st.st_mode) else "fifo"
    return (kind, perm, st.st_uid, st.st_gid, st.st_rdev)
