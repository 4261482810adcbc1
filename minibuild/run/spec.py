"""What `minibuild run` starts, from the image config and docker run's options: argv, env, ports (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from minibuild.errors import ConfigError
from minibuild.oci.model import ImageConfig
from minibuild.record import record

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # what Docker adds when Env has none
LOOPBACK = "127.0.0.1"


@record
class Publish:
    """One ``-p [IP:]HOST:CONTAINER[/tcp]``: host address and port (0 = any free port) -> container port."""

    host_ip: str
    host_port: int
    container_port: int

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/tcp"


@record
class ContainerSpec:
    """The process a container starts: argv (ENTRYPOINT + CMD), environment, working directory, user."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    workdir: str
    user: str
    publish: tuple[Publish, ...] = ()

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)


def _port(text: str, what: str, spec: str, *, zero: bool = False) -> int:
    if not text.isdigit() or not (0 if zero else 1) <= int(text) <= 65535:
        raise ConfigError(f"invalid {what} port {text!r} in -p {spec} (1-65535)")
    return int(text)


def parse_publish(spec: str) -> Publish:
    """``-p`` as docker run reads it: ``CONTAINER``, ``HOST:CONTAINER``, ``IP:HOST:CONTAINER``, ``IP::CONTAINER``,
    each with an optional ``/tcp``; a missing host port means any free one. Only TCP, one port per option."""
    text, _, proto = spec.partition("/")
    if proto and proto != "tcp":
        raise ConfigError(f"-p {spec}: only tcp ports can be published (minibuild serves HTTP stand-ins)")
    m = re.fullmatch(r"(?:(\[[0-9a-fA-F:]+\]|[^:]*):)?(?:([^:]*):)?([^:]+)", text)
    if not m or "-" in text:
        raise ConfigError(f"invalid -p {spec}: expected [IP:]HOST:CONTAINER, e.g. -p 8080:80")
    first, second, container = m.groups()
    if second is None:  # HOST:CONTAINER or CONTAINER
        ip, host = "", first or ""
    else:
        ip, host = first or "", second
    ip = ip.strip("[]") or LOOPBACK
    if ip == "localhost":
        ip = LOOPBACK
    return Publish(host_ip=ip, host_port=_port(host, "host", spec, zero=True) if host else 0,
                   container_port=_port(container, "container", spec))


def parse_env(items: Sequence[str], host_env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """``-e K=V`` pairs; ``-e K`` takes K from the host environment and is dropped when unset (docker run)."""
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise ConfigError(f"invalid -e {item!r}: expected KEY=VALUE or KEY")
        if eq:
            out.append((key, value))
        elif key in host_env:
            out.append((key, host_env[key]))
    return tuple(out)


def container_argv(config: ImageConfig, *, entrypoint: str | None = None, cmd: Sequence[str] = ()) -> tuple[str, ...]:
    """ENTRYPOINT + CMD as Docker combines them: arguments after the image replace CMD; ``--entrypoint X`` replaces
    ENTRYPOINT with ``[X]`` and drops the image's CMD (``--entrypoint ''`` drops ENTRYPOINT only). A shell-form
    ENTRYPOINT/CMD is already ``["/bin/sh", "-c", "..."]`` in the config (the builder applied SHELL)."""
    if entrypoint is None:
        ep: tuple[str, ...] = tuple(config.entrypoint or ())
        args = tuple(cmd) if cmd else tuple(config.cmd or ())
    else:
        ep = (entrypoint,) if entrypoint else ()
        args = tuple(cmd)
    return ep + args


def container_env(config: ImageConfig, extra: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The image's Env with ``-e`` values over it (a later key wins, keeping its first place) and PATH when
    neither sets it."""
    env: dict[str, str] = {}
    for item in config.env:
        key, _, value = item.partition("=")
        env[key] = value
    for key, value in extra:
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    return tuple(env.items())


def container_spec(config: ImageConfig, *, entrypoint: str | None = None, cmd: Sequence[str] = (),
                   env: Sequence[tuple[str, str]] = (), publish: Sequence[Publish] = (), workdir: str | None = None,
                   user: str | None = None) -> ContainerSpec:
    """The whole process spec; ConfigError ``no command specified`` (Docker's words) when argv is empty."""
    argv = container_argv(config, entrypoint=entrypoint, cmd=cmd)
    if not argv:
        raise ConfigError("no command specified: the image has neither ENTRYPOINT nor CMD (give a command after "
                          "the image)")
    return ContainerSpec(argv=argv, env=container_env(config, env), workdir=workdir or config.working_dir or "/",
                         user=user if user is not None else (config.user or ""), publish=tuple(publish))
