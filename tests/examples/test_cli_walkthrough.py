"""The README's first command, run as written on a fresh store: `minibuild build -t my-app examples/node-nginx
-o app.tar` gives a tarball another store and Docker load, named my-app, with the nginx port and command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engines import Docker

REPO = Path(__file__).resolve().parents[2]
COMMAND = "minibuild build -t my-app examples/node-nginx -o app.tar"


def first_sh_block(readme: str) -> str:
    match = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert match is not None, "README has no ```sh block"
    return match.group(1)


def test_readme_first_command_is_the_node_nginx_build() -> None:
    block = first_sh_block((REPO / "README.md").read_text())
    assert COMMAND in block, f"the README's first command no longer builds {COMMAND!r}: {block!r}"
    assert (REPO / "examples" / "node-nginx" / "Dockerfile").is_file()


@pytest.fixture(scope="module")
def app_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the README's command line from a directory laid out like the checkout (examples/ linked in)."""
    cwd = tmp_path_factory.mktemp("fresh-machine")
    (cwd / "examples").symlink_to(REPO / "examples")
    env = dict(os.environ, MINIBUILD_FIXTURE_PADDING="0.02")  # keeps the fixtures' size ratios, builds fast
    env.pop("MINIBUILD_HOME", None)
    store = cwd / "store"
    argv = COMMAND.split()[1:]
    res = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(store), *argv], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert (cwd / "app.tar").is_file()
    return cwd / "app.tar"


def test_app_tar_loads_into_a_second_store(app_tar: Path, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(tmp_path / "second"), "load", str(app_tar)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    digest = re.search(r"image ID \(config digest\): (sha256:[0-9a-f]{64})", res.stdout)
    assert digest is not None, res.stdout
    fsck = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(tmp_path / "second"), "fsck"],
                          capture_output=True, text=True, timeout=300)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


@pytest.mark.interop
def test_app_tar_loads_into_docker_with_port_and_cmd(docker: Docker, app_tar: Path) -> None:
    loaded = docker.run("load", "-i", str(app_tar)).stdout.decode()
    match = re.search(r"Loaded image(?: ID)?: (\S+)", loaded)
    assert match is not None, loaded
    assert match.group(1) == "my-app:latest", loaded  # -t names the image in the tarball, as docker build -t
    config = json.loads(docker.run("image", "inspect", match.group(1), "--format", "{{json .Config}}").stdout)
    assert config["ExposedPorts"] == {"80/tcp": {}}
    assert config["Cmd"] == ["nginx", "-g", "daemon off;"]
