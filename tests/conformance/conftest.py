"""Session fixtures for the conformance cases: Docker's classic-builder results (cached) and a minibuild store."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conformance.harness import (
    HARNESS_VERSION,
    Case,
    ImageResult,
    docker_build,
    minibuild_command,
    prepare_context,
)
from tests.engines import BUSYBOX, Docker

_HERE = Path(__file__).parent


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "-"


@dataclass
class ClassicResults:
    """Builds each case once with `DOCKER_BUILDKIT=0 docker build` and remembers the result.

    Results are also kept on disk (pytest's cache dir) under a key made of the case folder's content, the
    harness, the busybox base's recipe and the Docker server version, so a rerun of an unchanged case does not
    rebuild it.  MINIBUILD_CONFORMANCE_FRESH=1 ignores the disk cache.
    """

    docker: Docker
    workdir: Path
    cache_dir: Path | None
    salt: str
    memory: dict[str, ImageResult] = field(default_factory=dict)

    def context(self, case: Case) -> Path:
        """The prepared build context of ``case`` (shared by both builders)."""
        dest = self.workdir / "contexts" / case.name
        if not dest.exists():
            prepare_context(case, dest)
        return dest

    def get(self, case: Case) -> ImageResult:
        if case.name in self.memory:
            return self.memory[case.name]
        key = hashlib.sha256(f"{self.salt}\n{case.fingerprint()}".encode()).hexdigest()[:32]
        cached = self.cache_dir / f"{case.name}-{key}.json" if self.cache_dir else None
        if cached is not None and cached.exists():
            result = ImageResult.from_json(json.loads(cached.read_text()))
        else:
            result = docker_build(self.docker, case, self.context(case), f"mbconf-classic-{os.getpid()}/{case.name}:latest")
            if cached is not None:
                for old in cached.parent.glob(f"{case.name}-*.json"):
                    old.unlink()
                cached.write_text(json.dumps(result.to_json(), sort_keys=True))
        self.memory[case.name] = result
        return result


@pytest.fixture(scope="session")
def classic_results(docker: Docker, busybox_image: Path, tmp_path_factory: pytest.TempPathFactory,
                    request: pytest.FixtureRequest) -> ClassicResults:
    """Docker classic-builder results per case (the busybox base is tagged in the engine by busybox_image)."""
    server = docker.run("version", "--format", "{{.Server.Version}}").stdout.decode().strip()
    salt = "|".join((
        HARNESS_VERSION, server, _file_hash(BUSYBOX), _file_hash(_HERE / "harness.py"),
        _file_hash(_HERE.parent / "engines.py"), _file_hash(_HERE.parent / "conftest.py"),
    ))
    cache_dir: Path | None = None
    if os.environ.get("MINIBUILD_CONFORMANCE_FRESH") != "1" and getattr(request.config, "cache", None) is not None:
        cache_dir = request.config.cache.mkdir("conformance-classic")
    return ClassicResults(docker=docker, workdir=tmp_path_factory.mktemp("conformance"), cache_dir=cache_dir, salt=salt)


@dataclass(frozen=True)
class MinibuildStore:
    """A minibuild store holding the same busybox base as the Docker engine (or why it could not)."""

    path: Path
    workdir: Path
    load_error: str | None


@pytest.fixture(scope="session")
def minibuild_store(busybox_image: Path, tmp_path_factory: pytest.TempPathFactory) -> MinibuildStore:
    """`minibuild load` of the busybox_image tarball into a fresh store."""
    work = tmp_path_factory.mktemp("conformance-minibuild")
    store = work / "store"
    proc = subprocess.run(minibuild_command(store, "load", str(busybox_image)), capture_output=True, timeout=300)
    error = None
    if proc.returncode != 0:
        error = f"`minibuild load {busybox_image.name}` exited {proc.returncode}: " + \
            (proc.stdout + proc.stderr).decode(errors="replace")[-2000:]
    return MinibuildStore(path=store, workdir=work, load_error=error)
