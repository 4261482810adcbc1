"""A hostile registry (tests.security.hostile_registry, a real HTTP server on 127.0.0.1) against pull: descriptors
claiming huge sizes, bodies longer than their descriptors or endless, trickled answers; each ends with one clear
RegistryError, bounded memory, and nothing left in the store (no partial or temp file, no image, no name)."""

from __future__ import annotations

import gzip
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from minibuild.digest import Digest
from minibuild.errors import RegistryError
from minibuild.limits import ENV_MAX_DOCUMENT_BYTES, ENV_MAX_LAYER_BYTES
from minibuild.registry import RegistryOptions, options_from_env, pull
from minibuild.registry.transport import ENV_DEADLINE, ENV_TIMEOUT
from minibuild.store import Store
from tests.security.hostile_registry import HostileRegistry, config_for, endless, trickle

REPO = str(Path(__file__).resolve().parents[2])
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


@pytest.fixture
def reg() -> Iterator[HostileRegistry]:
    r = HostileRegistry()
    try:
        yield r
    finally:
        r.close()


def _opts(reg: HostileRegistry, **more: object) -> RegistryOptions:
    return RegistryOptions(insecure_registries=(reg.host,), env={}, retries=1, backoff=0.01, **more)  # type: ignore[arg-type]


def _layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("f")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"hi\n"))
    return buf.getvalue()


def _assert_clean(store: Store) -> None:
    partial = store.meta_dir / "partial"
    assert not partial.exists() or os.listdir(partial) == [], "a partial download was left behind"
    assert os.listdir(store.tmp_dir) == [], "a temp file was left behind"
    assert not store.refs.entries(), "the refused image got a name"
    assert store.images() == []


def _refused(store: Store, ref: str, options: RegistryOptions, match: str) -> RegistryError:
    tracemalloc.start()
    try:
        with pytest.raises(RegistryError, match=match) as info:
            pull(store, ref, options=options)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(info.value)
    assert peak < 48 << 20, f"peak Python memory {peak >> 20} MiB during a hostile pull"
    _assert_clean(store)
    return info.value


def test_a_layer_descriptor_claiming_a_petabyte_is_refused_before_download(reg: HostileRegistry,
                                                                           tmp_path: Path) -> None:
    layer = _layer()
    reg.image(config_for([Digest.of_bytes(layer)]), [(layer, LAYER_TYPE)], sizes={0: 1 << 50})
    reg.routes[f"/v2/img/blobs/{Digest.of_bytes(layer)}"] = lambda: (200, {}, endless())
    store = Store.open(tmp_path / "store")
    _refused(store, f"{reg.host}/img:latest", _opts(reg), f"claims {1 << 50} bytes.*{ENV_MAX_LAYER_BYTES}")
    assert not any("/blobs/" in path for _, path in reg.requests), "a blob was requested"


def test_a_config_descriptor_of_a_gigabyte_is_refused(reg: HostileRegistry, tmp_path: Path) -> None:
    layer = _layer()
    config = config_for([Digest.of_bytes(layer)])
    reg.image(config, [(layer, LAYER_TYPE)], config_size=1200 << 20)
    reg.routes[f"/v2/img/blobs/{Digest.of_bytes(config)}"] = lambda: (200, {}, endless())
    store = Store.open(tmp_path / "store")
    _refused(store, f"{reg.host}/img:latest", _opts(reg), f"claims {1200 << 20} bytes.*{ENV_MAX_DOCUMENT_BYTES}")


@pytest.mark.parametrize("which", ["config", "layer"])
def test_a_body_longer_than_its_descriptor_is_cut_at_the_descriptor(reg: HostileRegistry, tmp_path: Path,
                                                                    which: str) -> None:
    layer = _layer()
    config = config_for([Digest.of_bytes(layer)])
    reg.image(config, [(layer, LAYER_TYPE)])
    target = Digest.of_bytes(config if which == "config" else layer)
    reg.routes[f"/v2/img/blobs/{target}"] = lambda: (200, {}, endless())  # no Content-Length: zeros for ever
    store = Store.open(tmp_path / "store")
    _refused(store, f"{reg.host}/img:latest", _opts(reg), "larger than its descriptor")


@pytest.mark.parametrize("length", [None, 1200 << 20], ids=["endless", "declared-1.2GiB"])
def test_a_huge_manifest_is_refused(reg: HostileRegistry, tmp_path: Path, length: int | None) -> None:
    headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    if length is not None:
        headers["Content-Length"] = str(length)
    reg.routes["/v2/img/manifests/latest"] = lambda: (200, headers, endless(b" " * 65536))
    store = Store.open(tmp_path / "store")
    _refused(store, f"{reg.host}/img:latest", _opts(reg), f"8388608.*{ENV_MAX_DOCUMENT_BYTES}")


def test_an_endless_error_body_is_not_read_whole(reg: HostileRegistry, tmp_path: Path) -> None:
    reg.routes["/v2/img/manifests/latest"] = lambda: (404, {}, endless(b"x" * 65536))
    store = Store.open(tmp_path / "store")
    _refused(store, f"{reg.host}/img:latest", _opts(reg), "not found")


@pytest.mark.parametrize("which", ["manifest", "layer"])
def test_a_trickling_server_is_cut_off_at_the_deadline(reg: HostileRegistry, tmp_path: Path, which: str) -> None:
    layer = _layer()
    reg.image(config_for([Digest.of_bytes(layer)]), [(layer, LAYER_TYPE)])
    if which == "manifest":
        reg.routes["/v2/img/manifests/latest"] = lambda: (200, {"Content-Length": str(1 << 20)}, trickle())
    else:
        reg.routes[f"/v2/img/blobs/{Digest.of_bytes(layer)}"] = lambda: (200, {"Content-Length": str(len(layer))},
                                                                          trickle(layer))
    store = Store.open(tmp_path / "store")
    _refused(store, f"{reg.host}/img:latest", _opts(reg, timeout=1.0, deadline=1.5), ENV_DEADLINE)


def test_trickled_response_headers_are_cut_off_at_the_deadline(tmp_path: Path) -> None:
    """A raw socket server answering the status line and headers one byte per 0.2 s."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.recv(65536)
                    for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10000:
                        if stop.is_set():
                            break
                        conn.sendall(bytes([b]))
                        time.sleep(0.2)
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    host = f"127.0.0.1:{srv.getsockname()[1]}"
    store = Store.open(tmp_path / "store")
    try:
        options = RegistryOptions(insecure_registries=(host,), env={}, retries=1, backoff=0.01, timeout=1.0,
                                  deadline=1.5)
        with pytest.raises(RegistryError, match=ENV_DEADLINE):
            pull(store, f"{host}/img:latest", options=options)
    finally:
        stop.set()
        srv.close()
    _assert_clean(store)


def test_timeouts_come_from_the_environment() -> None:
    opts = options_from_env(env={ENV_TIMEOUT: "5", ENV_DEADLINE: "0"})
    assert opts.timeout == 5.0 and opts.deadline is None
    opts = options_from_env(env={})
    assert opts.timeout == 60.0 and opts.deadline == 3600.0
    with pytest.raises(RegistryError, match=ENV_DEADLINE):
        options_from_env(env={ENV_DEADLINE: "soon"})


def test_cli_pull_of_a_hostile_descriptor_fails_with_one_line(reg: HostileRegistry, tmp_path: Path) -> None:
    layer = gzip.compress(_layer(), mtime=0)
    reg.image(config_for([Digest.of_bytes(_layer())]), [(layer, LAYER_TYPE + "+gzip")], sizes={0: 1 << 50})
    proc = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(tmp_path / "store"), "pull",
                           "--insecure-registry", reg.host, f"{reg.host}/img:latest"], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and ENV_MAX_LAYER_BYTES in lines[0] and "Traceback" not in proc.stderr
    _assert_clean(Store.open(tmp_path / "store"))
