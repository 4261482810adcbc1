"""Session fixtures shared by every test package: real engines and base images, started once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engines import Docker, make_busybox_root, start_docker

BUSYBOX_TAG = "minibuild-test/busybox:latest"

# pytester (tests/plugin runs pytest sessions inside tests); pytest only accepts pytest_plugins in a conftest loaded
# at startup, so it is enabled here rather than in tests/plugin/conftest.py.
pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    """A real Docker engine (shared via $MINIBUILD_DOCKER_HOST, or a private dockerd started as root)."""
    engine = start_docker()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root tree holding Debian's static busybox and its applet links."""
    return make_busybox_root(tmp_path_factory.mktemp("busybox-root"))


@pytest.fixture(scope="session")
def busybox_image(docker: Docker, busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `docker save` tarball of a busybox image made by `docker import` (tagged BUSYBOX_TAG in the engine)."""
    import subprocess

    tar = subprocess.run(["tar", "-C", str(busybox_rootfs), "--numeric-owner", "-c", "."], capture_output=True, check=True).stdout
    docker.run("import", "-c", 'CMD ["sh"]', "-", BUSYBOX_TAG, input=tar)
    out = tmp_path_factory.mktemp("busybox-image") / "busybox.tar"
    docker.run("save", "-o", str(out), BUSYBOX_TAG)
    return out
