"""Fixtures for the emulated-shell tests: a busybox template root for the agreement suite."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.sh.harness import make_template
from tests.support import require, require_root



@pytest.fixture(scope="session")
def bb_template(busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox root (with /dev/null) to clone per script; needs root for chroot and mknod."""
    require_root()
    require(shutil.which("chroot") is not None or Path("/usr/sbin/chroot").exists(), "chroot(8) is not installed")
    require(Path("/bin/busybox").exists(), "busybox-static is not installed")
    return make_template(busybox_rootfs, tmp_path_factory.mktemp("bbtemplate") / "root")


@pytest.fixture
def plain_root(tmp_path: Path) -> Path:
    """An empty root with /etc/passwd and /etc/group, for unit tests of the emulator alone."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return root
