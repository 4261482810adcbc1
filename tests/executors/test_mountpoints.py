"""Mount points of RUN --mount targets: made when missing (parents too), resolved inside the root, removed after
the run while still empty, as BuildKit's executor/stubs.go MountStubsCleaner does (expected values by hand)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minibuild.executors import mountpoints
from minibuild.executors.mountpoints import RunMount
from minibuild.errors import ExecutorError


def test_missing_targets_are_made_and_removed_when_still_empty(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "var").mkdir(parents=True)
    points, stubs = mountpoints.prepare(root, [RunMount(target="/var/cache/apt"), RunMount(target="/run/secrets/k",
                                                                                          file=True)])
    assert [os.path.relpath(h, root) for _, h in points] == ["var/cache/apt", "run/secrets/k"]
    assert (root / "var/cache/apt").is_dir() and (root / "run/secrets/k").is_file()
    (root / "var/cache/other").write_text("the command wrote this beside the mount")
    os.utime(root / "var/cache", ns=(1_000_000_000, 2_000_000_000))
    mountpoints.remove(stubs)
    assert not (root / "run").exists() and not (root / "var/cache/apt").exists()
    assert (root / "var/cache/other").exists()  # a stub directory the command wrote into stays
    assert os.stat(root / "var/cache").st_mtime_ns == 2_000_000_000  # the times it had after the run


def test_existing_targets_are_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "app").mkdir(parents=True)
    (root / "app" / "keep").write_text("x")
    _, stubs = mountpoints.prepare(root, [RunMount(target="/app")])
    assert stubs == []
    mountpoints.remove(stubs)
    assert (root / "app" / "keep").exists()


def test_targets_resolve_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(str(outside))  # an absolute link: followed inside the root, as runc does
    points, stubs = mountpoints.prepare(root, [RunMount(target="/link/m")])
    assert points[0][1] == Path(os.path.realpath(root), str(outside).lstrip("/"), "m")
    assert not (outside / "m").exists()
    mountpoints.remove(stubs)


@pytest.mark.parametrize("make, mount, message", [
    (lambda r: (r / "f").write_text("x"), RunMount(target="/f/sub"), "/f is not a directory"),
    (lambda r: (r / "f").write_text("x"), RunMount(target="/f"), "cannot mount a directory at /f"),
    (lambda r: (r / "d").mkdir(), RunMount(target="/d", file=True), "cannot mount a file at /d"),
])
def test_impossible_mount_points_are_clear_errors(tmp_path: Path, make, mount: RunMount,  # type: ignore[no-untyped-def]
                                                  message: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    make(root)
    with pytest.raises(ExecutorError) as exc:
        mountpoints.prepare(root, [RunMount(target="/ok"), mount])
    assert message in str(exc.value)
    assert not (root / "ok").exists()  # what was made for the earlier mount is removed again
