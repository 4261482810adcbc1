"""``minibuild save NAME`` writes only NAME's tag, as ``docker save NAME`` (RepoTags of the named tag only), so a
``docker load`` of the file creates that tag and never moves the image's other tags."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

from tests.engine.engine_support import write_context
from tests.cli.support import mb
from tests.engines import Docker


def _built(tmp_path: Path) -> Path:
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": str(os.getpid())})
    s = tmp_path / "s"
    p = mb(s, "build", "-t", "mbsave-lc:one", "-t", "mbsave-lc:two", "-t", "other/mbsave-lc:three", str(ctx),
           "--progress", "quiet")
    assert p.returncode == 0, p.stderr
    return s


def _repo_tags(archive: Path) -> object:
    with tarfile.open(archive) as tf:
        f = tf.extractfile("manifest.json")
        assert f is not None
        return [m["RepoTags"] for m in json.loads(f.read())]


def test_save_writes_only_the_named_tag(tmp_path: Path) -> None:
    s = _built(tmp_path)
    assert mb(s, "save", "mbsave-lc:two", "-o", str(tmp_path / "two.tar")).returncode == 0
    assert _repo_tags(tmp_path / "two.tar") == [["mbsave-lc:two"]]
    image_id = json.loads(mb(s, "inspect", "mbsave-lc:one").stdout)["Id"]
    assert mb(s, "save", image_id, "-o", str(tmp_path / "id.tar")).returncode == 0
    assert _repo_tags(tmp_path / "id.tar") in ([None], [[]])  # docker save ID: no names


def test_docker_load_creates_only_the_named_tag(tmp_path: Path, docker: Docker) -> None:
    s = _built(tmp_path)
    assert mb(s, "save", "mbsave-lc:two", "-o", str(tmp_path / "two.tar")).returncode == 0
    names = ("mbsave-lc:one", "mbsave-lc:two", "other/mbsave-lc:three")
    docker.run("rmi", *names, check=False)
    try:
        docker.run("load", "-i", str(tmp_path / "two.tar"))
        present = {n for n in names if docker.run("image", "inspect", n, check=False).returncode == 0}
        assert present == {"mbsave-lc:two"}
    finally:
        docker.run("rmi", *names, check=False)
