"""minibuild images against the real consumers: docker load/run, podman load, skopeo copy, umoci unpack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from minibuild.digest import Digest
from minibuild.oci.model import History
from minibuild.store import Store
from minibuild.store.tarlayer import Entry, write_layer
from tests.conftest import BUSYBOX_TAG
from tests.engines import Docker
from tests.support import extract_all, require_root, require_tool

pytestmark = pytest.mark.interop

HELLO_NAME = "minibuild-test/hello:1"
HELLO_TEXT = "hello from a minibuild layer\n"
SCRIPT = "#!/bin/sh\necho \"script says: $(cat /hello.txt)\"\necho \"argv: $*\"\n"
EXPECTED_RUN = f"script says: {HELLO_TEXT.strip()}\nargv: one two\n"


def mb(store: Path, *args: str) -> str:
    """Run the minibuild CLI (a real process) against ``store``; return stdout."""
    proc = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(store), *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"minibuild {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def run(*argv: str, input: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(list(argv), capture_output=True, input=input, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
    return proc


@dataclass(frozen=True)
class Built:
    store: Path
    archive: Path
    manifest_digest: Digest
    config_digest: Digest
    base_config_digest: Digest
    printed: str


@pytest.fixture(scope="module")
def built(docker: Docker, busybox_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """busybox from `docker save` -> minibuild load -> + a layer and CMD -> minibuild save."""
    work = tmp_path_factory.mktemp("interop")
    store_dir = work / "store"
    out = mb(store_dir, "load", str(busybox_image))
    assert "Loaded image: minibuild-test/busybox:latest" in out
    store = Store.open(store_dir)
    base = store.resolve(BUSYBOX_TAG)
    entries = [
        Entry(path="hello.txt", type="file", mode=0o644, data=HELLO_TEXT.encode()),
        Entry(path="usr/local/bin/hello.sh", type="file", mode=0o755, data=SCRIPT.encode()),
        Entry(path="usr", type="dir", mode=0o755),
        Entry(path="usr/local", type="dir", mode=0o755),
        Entry(path="usr/local/bin", type="dir", mode=0o755),
    ]
    with store.blobs.writer() as w:
        info = write_layer(entries, w, compression="gzip")  # type: ignore[arg-type]
        assert w.commit() == info.digest
    image = (base.append_layer(info, history=History(created="1970-01-01T00:00:00Z", created_by="COPY hello /"))
             .with_config(entrypoint=["/usr/local/bin/hello.sh"], cmd=["one", "two"])
             .add_history(History(created="1970-01-01T00:00:00Z", created_by="CMD [\"one\",\"two\"]", empty_layer=True)))
    store.tag(HELLO_NAME, store.put_image(image))
    archive = work / "hello.tar"
    printed = mb(store_dir, "save", HELLO_NAME, "-o", str(archive))
    yield Built(store=store_dir, archive=archive, manifest_digest=image.digest, config_digest=image.config_digest,
                base_config_digest=base.config_digest, printed=printed)


def test_load_of_docker_save_keeps_the_image_id(docker: Docker, built: Built) -> None:
    docker_id = docker.run("image", "inspect", "--format", "{{.Id}}", BUSYBOX_TAG).stdout.decode().strip()
    assert docker_id == built.base_config_digest.value


def test_save_prints_the_digests(built: Built) -> None:
    assert built.manifest_digest.value in built.printed
    assert built.config_digest.value in built.printed


def test_docker_load_and_run(docker: Docker, built: Built) -> None:
    docker.run("rmi", "-f", HELLO_NAME, check=False)
    loaded = docker.run("load", "-i", str(built.archive)).stdout.decode()
    assert f"Loaded image: {HELLO_NAME}" in loaded
    docker_id = docker.run("image", "inspect", "--format", "{{.Id}}", HELLO_NAME).stdout.decode().strip()
    assert docker_id == built.config_digest.value
    out = docker.run("run", "--rm", "--network", "none", HELLO_NAME).stdout.decode()
    assert out == EXPECTED_RUN
    history = docker.run("history", "--no-trunc", "--format", "{{.CreatedBy}}", HELLO_NAME).stdout.decode()
    assert history.splitlines()[:2] == ['CMD ["one","two"]', "COPY hello /"]


def test_docker_save_of_our_image_reads_back_identically(docker: Docker, built: Built, tmp_path: Path) -> None:
    docker.run("load", "-i", str(built.archive))
    resaved = tmp_path / "resaved.tar"
    docker.run("save", "-o", str(resaved), HELLO_NAME)
    store = tmp_path / "store2"
    out = mb(store, "load", str(resaved))
    assert f"Loaded image: {HELLO_NAME}" in out
    image = Store.open(store).resolve(HELLO_NAME)
    assert image.config_digest == built.config_digest
    assert [layer.diff_id for layer in image.layers] == list(Store.open(built.store).resolve(HELLO_NAME).diff_ids)


def _podman(tmp: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run("podman", "--root", str(tmp / "root"), "--runroot", str(tmp / "run"), "--storage-driver", "vfs",
               "--cgroup-manager", "cgroupfs", "--events-backend", "none", *args)


def test_podman_load(built: Built) -> None:
    require_tool("podman")
    require_root()
    tmp_path = Path(tempfile.mkdtemp(prefix="mbp-"))  # podman refuses a runroot path longer than 50 characters
    try:
        out = _podman(tmp_path, "load", "-i", str(built.archive)).stdout.decode()
        assert "docker.io/minibuild-test/hello:1" in out
        info = json.loads(_podman(tmp_path, "image", "inspect", "docker.io/minibuild-test/hello:1").stdout)
        assert info[0]["Id"] == built.config_digest.hex
        assert info[0]["Digest"] == built.manifest_digest.value
        mount = _podman(tmp_path, "image", "mount", "docker.io/minibuild-test/hello:1").stdout.decode().strip()
        assert (Path(mount) / "hello.txt").read_text() == HELLO_TEXT
        assert os.stat(Path(mount) / "usr/local/bin/hello.sh").st_mode & 0o7777 == 0o755
        _podman(tmp_path, "image", "unmount", "docker.io/minibuild-test/hello:1")
    finally:
        subprocess.run(["podman", "--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"),
                        "--storage-driver", "vfs", "system", "reset", "-f"], capture_output=True, timeout=120)
        shutil.rmtree(tmp_path, ignore_errors=True)


def _dir_manifest(d: Path) -> dict[str, object]:
    return json.loads((d / "manifest.json").read_bytes())


@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_skopeo_copy(built: Built, tmp_path: Path, transport: str) -> None:
    require_tool("skopeo")
    src = f"{transport}:{built.archive}"
    run("skopeo", "copy", "--quiet", src, f"oci:{tmp_path / 'oci'}:copied")
    run("skopeo", "copy", "--quiet", src, f"dir:{tmp_path / 'dir'}")
    manifest = _dir_manifest(tmp_path / "dir")
    assert manifest["config"]["digest"] == built.config_digest.value  # type: ignore[index]
    if transport == "oci-archive":  # same manifest bytes copied through
        assert Digest.of_bytes((tmp_path / "dir" / "manifest.json").read_bytes()) == built.manifest_digest
    index = json.loads((tmp_path / "oci" / "index.json").read_bytes())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "copied"
    # and minibuild reads what skopeo wrote (OCI layout directory)
    out = mb(tmp_path / "store", "load", str(tmp_path / "oci"))
    assert "Loaded image: copied:latest" in out


def test_skopeo_reads_the_store_as_a_layout(built: Built, tmp_path: Path) -> None:
    require_tool("skopeo")
    run("skopeo", "copy", "--quiet", f"oci:{built.store}:{HELLO_NAME}", f"dir:{tmp_path / 'dir'}")
    assert Digest.of_bytes((tmp_path / "dir" / "manifest.json").read_bytes()) == built.manifest_digest
    raw = run("skopeo", "inspect", "--raw", f"oci:{built.store}:{HELLO_NAME}").stdout
    assert Digest.of_bytes(raw) == built.manifest_digest


def _umoci_check(image: str, bundle: Path) -> None:
    run("umoci", "unpack", "--image", image, str(bundle))
    rootfs = bundle / "rootfs"
    assert (rootfs / "hello.txt").read_text() == HELLO_TEXT
    assert (rootfs / "usr/local/bin/hello.sh").read_text() == SCRIPT
    assert os.path.islink(rootfs / "bin/sh")
    config = json.loads((bundle / "config.json").read_bytes())
    assert config["process"]["args"] == ["/usr/local/bin/hello.sh", "one", "two"]


def test_umoci_unpacks_the_saved_archive(built: Built, tmp_path: Path) -> None:
    require_tool("umoci")
    require_root()
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(built.archive) as tf:
        extract_all(tf, layout)
    _umoci_check(f"{layout}:1", tmp_path / "bundle")


def test_umoci_unpacks_from_the_store(built: Built, tmp_path: Path) -> None:
    require_tool("umoci")
    require_root()
    _umoci_check(f"{built.store}:{HELLO_NAME}", tmp_path / "bundle")


def test_two_saves_are_byte_identical(built: Built, tmp_path: Path) -> None:
    again = tmp_path / "again.tar"
    mb(built.store, "save", HELLO_NAME, "-o", str(again))
    assert again.read_bytes() == built.archive.read_bytes()
