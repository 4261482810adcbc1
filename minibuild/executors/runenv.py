"""What Docker gives a RUN step besides its Dockerfile environment: HOME and HOSTNAME, and the /etc files it binds.

Both executors use these values (docs/run-environment.md): the chroot executor bind-mounts the files over the
root's, the emulated shell sees them as virtual files; neither leaves them in the step's layer, as Docker does not.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

HOSTNAME = "minibuild"
# /etc/hosts of a classic-builder RUN without a network address (observed with DOCKER_BUILDKIT=0 docker build on
# Docker 20.10; BuildKit also names its sandbox host on the first line)
HOSTS = ("127.0.0.1\tlocalhost\n"
         "::1\tlocalhost ip6-localhost ip6-loopback\n"
         "fe00::0\tip6-localnet\n"
         "ff00::0\tip6-mcastprefix\n"
         "ff02::1\tip6-allnodes\n"
         "ff02::2\tip6-allrouters\n")
# Docker's fallback when the host names only local resolvers, which cannot answer inside a network namespace
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
HOST_RESOLV_CONF = "/etc/resolv.conf"
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"  # Docker reads it when the host's names 127.0.0.53
_RESOLV_LIMIT = 64 * 1024
ETC_FILES = ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname")


def step_env(env: Mapping[str, str], home: str) -> dict[str, str]:
    """The environment a RUN process starts with: ``env`` (ENV, ARG) plus HOSTNAME when it does not set one (moby
    puts HOSTNAME before the image's Env) and HOME, the user's passwd home, when it is unset or empty (runc's
    rule: an empty HOME is replaced too)."""
    out = {"HOSTNAME": HOSTNAME, **env}
    if not out.get("HOME"):
        out["HOME"] = home
    return out


def _read_host(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(_RESOLV_LIMIT).decode(errors="replace")
    except OSError:
        return None


def _is_local(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def resolv_conf(host_text: str | None) -> str:
    """The resolv.conf a step gets from the host's, as Docker filters it: local nameservers (127.x, ::1) dropped,
    Google's public ones when none is left; search and options lines kept."""
    lines = []
    servers = 0
    for line in (host_text or "").splitlines():
        fields = line.split()
        if fields[:1] == ["nameserver"] and len(fields) > 1:
            if _is_local(fields[1]):
                continue
            servers += 1
        lines.append(line)
    if not servers:
        lines += [f"nameserver {ns}" for ns in DEFAULT_NAMESERVERS]
    return "".join(line + "\n" for line in lines)


def host_resolv_conf() -> str:
    """resolv.conf for a step, from this host's (systemd-resolved's upstream list when the host's is its stub)."""
    text = _read_host(HOST_RESOLV_CONF)
    if text is not None and "nameserver 127.0.0.53" in text:
        text = _read_host(SYSTEMD_RESOLV_CONF) or text
    return resolv_conf(text)


def etc_contents() -> dict[str, bytes]:
    """The bytes of /etc/hosts, /etc/resolv.conf and /etc/hostname as a step sees them."""
    return {"/etc/hosts": HOSTS.encode(), "/etc/resolv.conf": host_resolv_conf().encode(),
            "/etc/hostname": (HOSTNAME + "\n").encode()}


class EtcFiles:
    """A private temporary directory holding the step's /etc files (0644), removed on ``close``; ``paths`` maps
    each image path to its host file. The step may change them (as under Docker); the changes are discarded."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="minibuild-etc-")
        os.chmod(self._dir.name, 0o755)  # a step running as another uid (USER) reads them, as under Docker
        self.paths: dict[str, Path] = {}
        for vpath, data in etc_contents().items():
            host = Path(self._dir.name) / vpath.rsplit("/", 1)[-1]
            host.write_bytes(data)
            os.chmod(host, 0o644)
            self.paths[vpath] = host

    def close(self) -> None:
        self._dir.cleanup()

    def __enter__(self) -> EtcFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
