"""A build's stage roots as overlay mounts of unpacked layers, in a mount namespace of the build's own thread.

As root, a stage whose RUN steps run under the chroot executor gets its tree as an overlay: the stage's layers,
each unpacked once in the store (minibuild.store.unpacked), below; an upper directory in the build's scratch
above. Nothing is copied per stage, and every piece of the builder that reads or writes a root (COPY, the etc
binds, the RUN's own overlay, the diff of its upper directory) sees an ordinary directory. The mounts live in a
mount namespace that only the building thread (and the processes and threads it starts) enters, so they never
show on the host and vanish with the process; ``close`` unmounts them and returns the thread to the namespace
it came from (and to its working directory: joining a namespace moves it to that namespace's root).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from minibuild.executors.chroot import (CLONE_NEWNS, MNT_DETACH, MS_PRIVATE, MS_REC, _check, _lib, _mount,
                                        _overlay_options, _unshare)

if TYPE_CHECKING:
    from minibuild.digest import Digest
    from minibuild.oci.image import Image
    from minibuild.store import Store

MOUNT_DATA_MAX = 4000  # the kernel takes one page of mount options; a little is left for safety


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):
        os.setns(fd, CLONE_NEWNS)  # Python 3.12+
        return
    _check(_lib().setns(fd, CLONE_NEWNS), "setns")


def _umount(target: str) -> None:
    _check(_lib().umount2(target.encode(), MNT_DETACH), f"umount {target}")


class StageMounts:
    """The overlay mounts of one build's stage roots, and the private mount namespace that holds them."""

    def __init__(self) -> None:
        self._home: int | None = None  # the namespace the thread came from
        self._cwd: int | None = None
        self._mounts: list[str] = []

    def _enter(self) -> None:
        if self._home is not None:
            return
        home = os.open(f"/proc/self/task/{_tid()}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _unshare(CLONE_NEWNS)
        except OSError:
            os.close(home)
            os.close(cwd)
            raise
        self._home, self._cwd = home, cwd
        try:
            _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing made here propagates to the host
        except OSError:
            self.close()
            raise

    def mount(self, lowers: Sequence[str], upper: str, work: str, merged: str) -> None:
        """Mount ``merged`` as an overlay of ``lowers`` (topmost first) under ``upper``; OSError when it cannot."""
        for path in (*lowers, upper, work):
            if "," in path or ":" in path:
                raise OSError(errno.EINVAL, f"cannot mount an overlay over {path!r}: ',' and ':' are not allowed")
        opts = _overlay_options(":".join(lowers), upper, work, userns=False)
        parent = os.path.dirname(lowers[0]) if lowers else ""
        relative = len(opts) > MOUNT_DATA_MAX and all(os.path.dirname(p) == parent for p in lowers)
        if relative:  # the layers' names relative to their common folder, which the thread enters to mount
            opts = _overlay_options(":".join(os.path.basename(p) for p in lowers), upper, work, userns=False)
        if len(opts) > MOUNT_DATA_MAX:
            raise OSError(errno.E2BIG, f"{len(lowers)} layers are too many for one overlay mount")
        self._enter()
        back = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if relative else None
        try:
            if relative:
                os.chdir(parent)
            _mount("overlay", merged, "overlay", 0, opts)
        finally:
            if back is not None:
                os.fchdir(back)
                os.close(back)
        self._mounts.append(merged)

    def close(self) -> None:
        """Unmount every stage root and leave the namespace (a no-op when none was made)."""
        for merged in reversed(self._mounts):
            try:
                _umount(merged)
            except OSError:
                pass  # gone with the namespace anyway
        self._mounts.clear()
        if self._home is not None:
            assert self._cwd is not None
            try:
                _setns(self._home)
                os.fchdir(self._cwd)
            finally:
                os.close(self._home)
                os.close(self._cwd)
                self._home = self._cwd = None


def _tid() -> int:
    import threading

    return threading.get_native_id()


def mounts_available() -> bool:
    """Whether stage roots can be overlay mounts here: root, the chroot executor and overlayfs usable, and not
    turned off (``MINIBUILD_STAGE_MOUNT=0``)."""
    from minibuild.executors.chroot import overlay_problem

    return os.geteuid() == 0 and os.environ.get("MINIBUILD_STAGE_MOUNT", "1") != "0" and overlay_problem() is None


def unpack_image(store: Store, image: Image) -> int:
    """Unpack every layer of ``image`` into the store's folders (at ``load``, as Docker unpacks there, so the first
    chroot build starts from them); how many were unpacked now."""
    made = 0
    for layer in image.layers:
        made += unpack_layer(store, layer.digest, store.blobs.open)[1]
    return made


def unpack_layer(store: Store, digest: Digest, open_blob: Callable[[Digest], BinaryIO]) -> tuple[Path, bool]:
    """The store's unpacked folder of layer ``digest`` (minibuild.store.unpacked), extracted by the confined
    applier when it is not there yet; whether it was extracted now."""
    from minibuild.fs.rootfs import apply_layer
    from minibuild.store.unpacked import unpacked_layer

    def extract(dest: Path, blob: BinaryIO) -> None:
        apply_layer(dest, blob, export=True, overlay_format=True)

    return unpacked_layer(store, digest, open_blob, extract)
