"""Session fixtures shared by every test package: real engines and base images, started once."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session", autouse=True)
def registry_auth_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """skopeo, podman and buildah read their credentials from ``$REGISTRY_AUTH_FILE``, else from
    ``/run/containers/$UID/auth.json``: as an ordinary user that path is unreadable once a root podman or
    buildah has made ``/run/containers`` (mode 0700), and the tools then fail before they talk to a registry.
    Every test's tools get an empty credentials file of their own (the tests pass credentials explicitly)."""
    path = tmp_path_factory.mktemp("registry-auth") / "auth.json"
    path.write_text("{}")
    old = os.environ.get("REGISTRY_AUTH_FILE")
    os.environ["REGISTRY_AUTH_FILE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("REGISTRY_AUTH_FILE", None)
    else:
        os.environ["REGISTRY_AUTH_FILE"] = old
