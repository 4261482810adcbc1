"""The ownership overlay: what minibuild records of a root's inodes, and how a read combines it with the host."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from minibuild.fs.ownership import Overlay, find_overlay, overlay_of, release_under


def test_records_are_the_image_values_whoever_runs(tmp_path: Path) -> None:
    ov = Overlay(str(tmp_path))
    f = tmp_path / "f"
    f.write_bytes(b"x")
    ov.created(f, 5, 7)
    ov.set_mode(f, 0o4755)
    st = ov.lstat(f)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (5, 7, 0o4755)
    os.rename(f, tmp_path / "g")  # keyed by inode: a rename (mv) keeps the record
    st = ov.lstat(tmp_path / "g")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (5, 7, 0o4755)


def test_a_file_nobody_recorded_is_roots_not_the_builders(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    st = Overlay(str(tmp_path)).lstat(tmp_path / "f")
    assert (st.st_uid, st.st_gid) == (0, 0)  # the host says os.geteuid(): as root that is 0 too


def test_a_device_node_is_data_as_any_user(tmp_path: Path) -> None:
    ov = Overlay(str(tmp_path))
    ov.make_node(tmp_path / "null", "char", 0o666, os.makedev(1, 3))
    st = ov.lstat(tmp_path / "null")
    assert stat.S_ISCHR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)


def test_a_change_made_behind_the_overlay_wins_and_stays(tmp_path: Path) -> None:
    """A real process (the chroot executor) changed the mode on the host: the host's value is read, and a later
    recorded change of the owner does not bring the old recorded mode back."""
    ov = Overlay(str(tmp_path))
    f = tmp_path / "f"
    f.write_bytes(b"x")
    ov.created(f)
    ov.set_mode(f, 0o4755)
    os.chmod(f, 0o700)  # behind the overlay
    assert stat.S_IMODE(ov.lstat(f).st_mode) == 0o700
    ov.set_owner(f, 1, 1)
    st = ov.lstat(f)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (1, 0o700)


def test_chown_clears_setuid_and_group_executable_setgid_as_the_kernel_does(tmp_path: Path) -> None:
    ov = Overlay(str(tmp_path))
    f, d = tmp_path / "f", tmp_path / "d"
    f.write_bytes(b"x")
    d.mkdir()
    ov.created(f)
    ov.set_mode(f, 0o6755)
    ov.created(d)
    ov.set_mode(d, 0o2755)
    ov.set_owner(f, 0, 0)
    ov.set_owner(d, 0, 0)
    assert stat.S_IMODE(ov.lstat(f).st_mode) == 0o755  # measured: root's chown(2) on Linux clears both
    assert stat.S_IMODE(ov.lstat(d).st_mode) == 0o2755  # a directory keeps them


def test_one_overlay_per_root_released_with_its_tree(tmp_path: Path) -> None:
    root = tmp_path / "scratch" / "root-a"
    root.mkdir(parents=True)
    assert find_overlay(root) is None
    assert overlay_of(root) is overlay_of(str(root) + "/")
    assert find_overlay(root) is overlay_of(root)
    release_under(tmp_path / "scratch")
    assert find_overlay(root) is None
