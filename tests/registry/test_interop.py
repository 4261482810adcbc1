"""minibuild push/pull CLI with real tools: skopeo reads what we push, Docker pulls and runs it, skopeo-pushed
images pull into the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from minibuild.oci.archive import import_archive
from minibuild.store import Store
from tests.conftest import BUSYBOX_TAG
from tests.engines import Docker
from tests.registry.conftest import Registry
from tests.registry.images import add_layer, blob_digests
from tests.support import require_tool


def minibuild(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIBUILD_REGISTRY")}
    env["DOCKER_CONFIG"] = str(store.parent / "no-docker-config")
    return subprocess.run([sys.executable, "-m", "minibuild", "--store", str(store), *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_pushed_busybox_image_pulls_with_skopeo_and_runs_in_docker(
        plain_registry: Registry, busybox_image: Path, docker: Docker, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    store_dir = tmp_path / "store"
    store = Store.open(store_dir)
    import_archive(store, busybox_image)
    base = store.resolve(BUSYBOX_TAG)
    image = add_layer(store, base, {"hello.txt": b"hello from a minibuild push\n"}, created_by="COPY hello.txt /")
    image = image.with_config(cmd=["cat", "/hello.txt"])
    store.tag("pushme:1", store.put_image(image))
    ref = f"{plain_registry.host}/interop/busybox-hello:1"

    refused = minibuild(store_dir, "push", "pushme:1", ref)
    assert refused.returncode == 1 and "--insecure-registry" in refused.stderr
    out = minibuild(store_dir, "push", "pushme:1", ref, "--insecure-registry", plain_registry.host)
    assert out.returncode == 0, out.stderr
    assert f"digest: {image.digest}" in out.stdout
    assert out.stderr == ""  # not a TTY: no progress line

    inspect = subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{ref}"], capture_output=True,
                             text=True, timeout=120)
    assert inspect.returncode == 0, inspect.stderr
    assert image.digest.value in inspect.stdout

    try:
        docker.run("pull", ref)
        ran = docker.run("run", "--rm", ref)
        assert ran.stdout == b"hello from a minibuild push\n"
        shown = docker.run("inspect", "--format", "{{.Id}}", ref).stdout.decode().strip()
        assert shown == image.config_digest.value
    finally:
        docker.run("rmi", "-f", ref, check=False)


def test_skopeo_pushed_docker_archive_pulls_into_the_store(
        plain_registry: Registry, busybox_image: Path, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    ref = f"{plain_registry.host}/interop/skopeo-busybox:1"
    copy = subprocess.run([skopeo, "copy", "--dest-tls-verify=false", f"docker-archive:{busybox_image}",
                           f"docker://{ref}"], capture_output=True, text=True, timeout=300)
    assert copy.returncode == 0, copy.stderr

    store_dir = tmp_path / "store"
    out = minibuild(store_dir, "pull", ref, "--insecure-registry", plain_registry.host)
    assert out.returncode == 0, out.stderr
    assert "Docker manifest stored in OCI form" in out.stdout  # skopeo wrote a Docker schema2 manifest
    store = Store.open(store_dir)
    pulled = store.resolve(ref)
    loaded_store = Store.open(tmp_path / "loaded")
    import_archive(loaded_store, busybox_image)
    loaded = loaded_store.resolve(BUSYBOX_TAG)
    assert pulled.config_digest == loaded.config_digest  # same image ID as `docker save` produced
    assert pulled.diff_ids == loaded.diff_ids
    for d in blob_digests(pulled):
        assert store.blobs.verify(d)
    listed = minibuild(store_dir, "images")
    assert listed.returncode == 0 and "skopeo-busybox" in listed.stdout
    saved = minibuild(store_dir, "save", ref, "-o", str(tmp_path / "out.tar"))
    assert saved.returncode == 0, saved.stderr
