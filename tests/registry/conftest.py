"""Real registries for the registry tests: Debian's docker-registry (CNCF distribution 2.8) on loopback ports."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import require, require_tool

USER = "minibuild"
PASSWORD = "s3cret-pass"
_LOG_RE = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[0-9.]+" (\d{3})')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    """A running docker-registry: ``host`` is 127.0.0.1:PORT; its stdout (the access log) goes to ``log``."""

    host: str
    root: Path
    log: Path
    proc: subprocess.Popen[bytes]
    ca_dir: Path | None = None  # holds ca.crt (skopeo --*-cert-dir)
    user: str | None = None
    password: str | None = None
    _marks: list[int] = field(default_factory=list)

    @property
    def ca_cert(self) -> Path | None:
        return None if self.ca_dir is None else self.ca_dir / "ca.crt"

    def requests(self, since: int = 0) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request in the access log after byte offset ``since``."""
        data = self.log.read_bytes()[since:].decode(errors="replace")
        return [(m.group(1), m.group(2), int(m.group(3))) for m in _LOG_RE.finditer(data)]

    def mark(self) -> int:
        """The current end of the access log (pass to ``requests(since=...)``)."""
        time.sleep(0.2)  # let the registry flush lines of finished requests
        return self.log.stat().st_size

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _htpasswd(path: Path, user: str, password: str) -> None:
    tool = shutil.which("htpasswd")
    if tool:
        out = subprocess.run([tool, "-Bbn", user, password], capture_output=True, check=True, text=True).stdout
        path.write_text(out.strip() + "\n")
        return
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            crypt = None  # type: ignore[assignment]
    require(crypt is not None, "neither htpasswd (apache2-utils) nor python's crypt module is available for bcrypt")
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    require(hashed is not None and hashed.startswith("$2"), "the system crypt() cannot make bcrypt hashes")
    path.write_text(f"{user}:{hashed}\n")


def make_ca_and_cert(d: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost signed by it (openssl CLI)."""
    openssl = require_tool("openssl")
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run([openssl, *a], cwd=d, capture_output=True, check=True)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=minibuild test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.crt", d / "server.crt", d / "server.key"


def start_registry(base: Path, *, tls: bool = False, auth: bool = False) -> Registry:
    """Start docker-registry on a free 127.0.0.1 port with filesystem storage under ``base``."""
    binary = shutil.which("docker-registry") or ("/usr/bin/docker-registry" if os.path.exists("/usr/bin/docker-registry") else None)
    require(binary is not None, "docker-registry is not installed (Debian package docker-registry; .ci/run installs it)")
    assert binary is not None
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: false",
             "storage:", "  filesystem:", f"    rootdirectory: {base / 'data'}", "  delete:", "    enabled: true",
             "http:", f"  addr: 127.0.0.1:{port}", "  secret: minibuild-test-secret"]
    ca_dir = None
    if tls:
        ca, cert, key = make_ca_and_cert(base / "certs")
        ca_dir = base / "ca"  # only the CA certificate: skopeo's --cert-dir treats *.key as client keys
        ca_dir.mkdir()
        shutil.copy(ca, ca_dir / "ca.crt")
        lines += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
    if auth:
        _htpasswd(base / "htpasswd", USER, PASSWORD)
        lines += ["auth:", "  htpasswd:", "    realm: minibuild-test", f"    path: {base / 'htpasswd'}"]
    config = base / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = base / "access.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    out = open(log, "wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT, env=env)
    out.close()
    reg = Registry(host=f"127.0.0.1:{port}", root=base, log=log, proc=proc, ca_dir=ca_dir,
                   user=USER if auth else None, password=PASSWORD if auth else None)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"docker-registry exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if tls:
                ctx = ssl.create_default_context(cafile=str(ca))
                conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=ctx)
            else:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v2/")
            conn.getresponse().read()
            conn.close()
            return reg
        except OSError:
            time.sleep(0.1)
    reg.stop()
    raise AssertionError("docker-registry did not start within 20s")


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain-HTTP registry without auth on 127.0.0.1."""
    reg = start_registry(tmp_path_factory.mktemp("registry-plain"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A TLS registry (certificate from a test CA) with htpasswd (bcrypt) basic auth on 127.0.0.1."""
    reg = start_registry(tmp_path_factory.mktemp("registry-tls"), tls=True, auth=True)
    try:
        yield reg
    finally:
        reg.stop()


class CuttingProxy:
    """A loopback TCP proxy that cuts the connection after ``cut_after`` bytes in one direction.

    ``direction`` is "down" (registry -> client: cuts downloads) or "up" (client -> registry: cuts uploads).
    Only the first ``cuts`` connections carrying that many bytes are cut; ``cuts=-1`` cuts every one."""

    def __init__(self, target_port: int, *, cut_after: int, direction: str = "down", cuts: int = 1) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.direction = direction
        self.cuts_left = cuts
        self.cut_count = 0
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = int(self._server.getsockname()[1])
        self.host = f"127.0.0.1:{self.port}"
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _take_cut(self) -> bool:
        with self._lock:
            if self.cuts_left == 0:
                return False
            self.cuts_left -= 1
            self.cut_count += 1
            return True

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            state = {"cut": False}
            for src, dst, name in ((client, upstream, "up"), (upstream, client, "down")):
                threading.Thread(target=self._pipe, args=(src, dst, name, client, upstream, state), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, name: str, client: socket.socket,
              upstream: socket.socket, state: dict[str, bool]) -> None:
        sent = 0
        limit = self.cut_after if name == self.direction else None
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) > limit and not state["cut"] and self._take_cut():
                    state["cut"] = True
                    dst.sendall(data[: max(0, limit - sent)])
                    for s in (client, upstream):
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        s.close()
                    return
                dst.sendall(data)
                sent += len(data)
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        except OSError:
            for s in (client, upstream):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._stop = True
        self._server.close()
