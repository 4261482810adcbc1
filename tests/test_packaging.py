"""Packaging: a wheel carries the fixture base images, so a non-editable install can build FROM them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support import require

ROOT = Path(__file__).resolve().parent.parent


def test_fixture_tree_is_wheel_safe() -> None:
    """Wheels keep no symlinks or empty directories: the fixture tree must hold only regular files."""
    listing = subprocess.run(["git", "ls-files", "-s", "rootfs_fixtures"], cwd=ROOT, capture_output=True, text=True)
    if listing.returncode != 0:
        pytest.skip("not a git checkout")
    modes = {line.split()[0] for line in listing.stdout.splitlines()}
    assert modes <= {"100644", "100755"}, modes


def test_wheel_contains_every_fixture_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0 and ("Could not find a version" in proc.stderr or "NewConnectionError" in proc.stderr):
        require(False, f"pip cannot reach a package index to get setuptools: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("minibuild-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "minibuild/rootfs_fixtures/" + p.relative_to(ROOT / "rootfs_fixtures").as_posix()
        for p in (ROOT / "rootfs_fixtures").rglob("*") if p.is_file()
    }
    assert expected and expected <= names, sorted(expected - names)[:10]
