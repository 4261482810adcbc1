"""Real engines for interop tests: a Docker daemon (shared or started here) and a busybox base image."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import require, require_root, require_tool

BUSYBOX = Path("/bin/busybox")
# Applets of Debian's busybox-static 1.35 (which has no adduser/addgroup) that tests link into the root.
BUSYBOX_APPLETS = (
    "sh", "ls", "cat", "echo", "mkdir", "rm", "cp", "mv", "ln", "touch", "chmod", "chown", "test", "[",
    "true", "false", "pwd", "env", "id", "grep", "sed", "find", "head", "tail", "wc", "sort", "printf",
    "stat", "readlink", "tar", "gzip", "sleep", "basename", "dirname", "uniq", "tee", "xargs", "which",
    "whoami", "date", "seq", "rmdir", "cut", "tr", "expr", "httpd", "awk", "od", "md5sum", "sha1sum", "sha256sum",
    "sha512sum", "sha3sum", "nproc", "arch", "base64", "cmp", "dd", "groups", "tty",
)


def make_busybox_root(root: Path) -> Path:
    """Lay out a minimal root tree with Debian's static busybox and relative applet links."""
    require(BUSYBOX.exists() and _is_static(BUSYBOX), "Debian's busybox-static is not installed at /bin/busybox")
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    for d in ("etc", "tmp", "root", "usr/bin", "var"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return root


def _is_static(path: Path) -> bool:
    out = subprocess.run(["file", "-b", str(path)], capture_output=True, text=True).stdout if shutil.which("file") else "static"
    return "static" in out


@dataclass
class Docker:
    """A reachable Docker engine; ``run`` calls the docker CLI against it."""

    host: str
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(["docker", *args], input=input, capture_output=True, env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
        return proc

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            subprocess.run(["umount", "-R", str(self.workdir / "data")], capture_output=True) if self.workdir else None
            if self.workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)


def _ping(host: str) -> bool:
    env = dict(os.environ, DOCKER_HOST=host)
    try:
        return subprocess.run(["docker", "version"], capture_output=True, env=env, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start_docker() -> Docker:
    """Use $MINIBUILD_DOCKER_HOST (set by .ci/run) when it answers, else start a private dockerd as root."""
    require_tool("docker")
    host = os.environ.get("MINIBUILD_DOCKER_HOST")
    if host and _ping(host):
        return Docker(host=host, env=dict(os.environ, DOCKER_HOST=host))
    require_root()
    dockerd = require_tool("dockerd")
    work = Path(tempfile.mkdtemp(prefix="mb-dockerd-"))
    sock = work / "docker.sock"
    driver = "overlay2" if "overlay" in Path("/proc/filesystems").read_text() else "vfs"
    log = open(work / "dockerd.log", "wb")
    proc = subprocess.Popen(
        [dockerd, f"--storage-driver={driver}", "--iptables=false", "--ip6tables=false", "--bridge=none",
         "--data-root", str(work / "data"), "--exec-root", str(work / "exec"), "--pidfile", str(work / "dockerd.pid"),
         "-H", f"unix://{sock}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    host = f"unix://{sock}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if sock.exists() and _ping(host):
            return Docker(host=host, proc=proc, workdir=work, env=dict(os.environ, DOCKER_HOST=host))
        time.sleep(0.3)
    proc.kill()
    require(False, f"dockerd did not start: {(work / 'dockerd.log').read_text(errors='replace')[-2000:]}")
    raise AssertionError("unreachable")
