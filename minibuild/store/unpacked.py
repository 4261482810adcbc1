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


def unpacked_layer(store: Store, digest: Digest, open_blob: Callable[[Digest], BinaryIO]) -> tuple[Path, bool]:
    """The folder of layer ``digest``, extracted now when it is not there yet; whether it was extracted now."""
    from minibuild.fs.rootfs import apply_layer

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
            apply_layer(tmp, fh, export=True, overlay_format=True)
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
    """Remove the folders of layers ``keep`` refuses (and anything else found there); the bytes freed. Walked
    through directory fds, never following symlinks (store.dirs)."""
    from minibuild.store.dirs import names, opened, remove

    freed = 0
    with opened(store.root, store.meta_dir.name, UNPACKED_DIR) as fd:
        if fd is None:
            return 0
        for name in names(fd):
            try:
                gone = not keep(Digest(f"sha256:{name}"))
            except ImageFormatError:
                gone = True  # not a name minibuild makes
            if gone:
                freed += remove(fd, name, measure=True)
    return freed
