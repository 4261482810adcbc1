"""store.unpacked: a layer extracted once, in overlayfs's lower-layer format, and pruned with its blob."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from minibuild.errors import StoreError
from minibuild.store import Store
from minibuild.store.gc import prune
from minibuild.executors.stagemount import unpack_layer as unpacked_layer
from minibuild.store.unpacked import unpacked_root
from tests.support import require


def _layer() -> bytes:
    """A layer deleting /gone, making /opq opaque, writing /opq/new and a file whose xattrs speak for overlayfs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in [("opq", tarfile.DIRTYPE, b""), ("opq/.wh..wh..opq", tarfile.REGTYPE, b""),
                                 ("opq/new", tarfile.REGTYPE, b"n\n"), (".wh.gone", tarfile.REGTYPE, b""),
                                 ("x", tarfile.REGTYPE, b"x")]:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mode, info.mtime = kind, len(data), 0o755 if kind == tarfile.DIRTYPE else 0o640, 86400
            if name == "x":
                info.uid, info.gid = 7, 8
                info.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.kept": "1"}
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_layer_unpacks_once_with_overlay_whiteouts(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "layers are unpacked only as root (device whiteouts, trusted xattrs)")
    store = Store.open(tmp_path / "store")
    digest = store.blobs.put_bytes(_layer())
    path, made = unpacked_layer(store, digest, store.blobs.open)
    assert made and path == unpacked_root(store) / digest.hex
    gone = os.lstat(path / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == os.makedev(0, 0)
    assert os.getxattr(path / "opq", "trusted.overlay.opaque") == b"y"
    assert (path / "opq" / "new").read_bytes() == b"n\n" and not (path / "opq" / ".wh..wh..opq").exists()
    x = os.lstat(path / "x")
    assert (x.st_uid, x.st_gid, stat.S_IMODE(x.st_mode), x.st_mtime) == (7, 8, 0o640, 86400)
    assert "trusted.overlay.opaque" not in os.listxattr(path / "x")  # a layer never marks the overlay itself
    assert list(store.tmp_dir.iterdir()) == []
    assert unpacked_layer(store, digest, store.blobs.open) == (path, False)


def test_a_planted_symlink_is_refused(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    digest = store.blobs.put_bytes(_layer())
    unpacked_root(store).mkdir(parents=True)
    (unpacked_root(store) / digest.hex).symlink_to(tmp_path)
    with pytest.raises(StoreError, match="not an unpacked layer"):
        unpacked_layer(store, digest, store.blobs.open)


def test_prune_removes_the_folders_of_pruned_blobs(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "layers are unpacked only as root")
    store = Store.open(tmp_path / "store")
    digest = store.blobs.put_bytes(_layer())
    path, _ = unpacked_layer(store, digest, store.blobs.open)
    (unpacked_root(store) / "not-a-digest").mkdir()
    report = prune(store)
    assert digest in report.removed and not path.exists() and list(unpacked_root(store).iterdir()) == []


@pytest.mark.parametrize("tamper", ["bytes", "extra", "whiteout", "opaque", "owner"])
def test_fsck_finds_a_folder_that_is_not_its_layer(tmp_path: Path, tamper: str) -> None:
    require(os.geteuid() == 0, "layers are unpacked only as root")
    from minibuild.store.fsck import fsck

    store = Store.open(tmp_path / "store")
    digest = store.blobs.put_bytes(_layer())
    path, _ = unpacked_layer(store, digest, store.blobs.open)
    assert fsck(store).ok
    if tamper == "bytes":
        (path / "opq" / "new").write_bytes(b"N\n")  # same size
    elif tamper == "extra":
        (path / "planted").write_text("")
    elif tamper == "whiteout":
        os.unlink(path / "gone")
    elif tamper == "opaque":
        os.removexattr(path / "opq", "trusted.overlay.opaque")
    else:
        os.lchown(path / "x", 0, 0)
    report = fsck(store)
    assert [p.subject for p in report.of_kind("bad-unpacked-layer")] == [f".minibuild/unpacked/{digest.hex}"]
    assert fsck(store, repair=True).of_kind("bad-unpacked-layer") and not path.exists()
    assert fsck(store).ok
    assert unpacked_layer(store, digest, store.blobs.open) == (path, True)  # made again when next needed
