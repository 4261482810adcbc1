"""EXPOSE port specs as Docker reads them (``[[ip:]hostport:]port[-end][/proto]``): one ``port/proto`` per port."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from minibuild.errors import DockerfileError, SourceSpan

PROTOCOLS = ("tcp", "udp", "sctp")


def _split_parts(spec: str) -> tuple[str, str, str]:
    """(ip, host port, container port) of a spec: the last two ``:`` fields are ports, what precedes is the IP."""
    parts = spec.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _port(text: str) -> int | None:
    """A port number 0-65535 in decimal digits, None when it is not one."""
    if not text.isascii() or not text.isdigit() or int(text) > 65535:
        return None
    return int(text)


def _range(text: str) -> tuple[int, int] | None:
    """(first, last) of ``N`` or ``N-M`` (last >= first; like Docker, a third ``-`` field is not looked at),
    None when it is not a port range."""
    parts = text.split("-")
    start, end = _port(parts[0]), _port(parts[1] if len(parts) > 1 else parts[0])
    if start is None or end is None or end < start:
        return None
    return start, end


def _ip(text: str) -> bool:
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def expose_ports(specs: Iterable[str], span: SourceSpan | None = None) -> tuple[str, ...]:
    """The ``port/proto`` keys that ``EXPOSE specs`` adds, in order, without repeats: ``8000-8002`` is
    ``8000/tcp 8001/tcp 8002/tcp``; the protocol is lower-cased (tcp by default); a host port or IP prefix
    (``1.2.3.4:80:8080``) is checked and dropped. A malformed spec is Docker's error (DockerfileError)."""
    out: dict[str, None] = {}
    for spec in specs:
        ip, host, container = _split_parts(spec)
        port_text, slash, proto = container.partition("/")
        proto = proto.partition("/")[0] if slash else ""
        shown, proto = proto, (proto or "tcp").lower()
        if ip and not _ip(ip):
            raise DockerfileError(f"invalid IP address: {ip}", span=span)
        if port_text == "":
            raise DockerfileError(f"no port specified: {spec}<empty>", span=span)
        ports = _range(port_text)
        if ports is None:
            raise DockerfileError(f"invalid containerPort: {port_text}", span=span)
        if host:
            hosts = _range(host)
            if hosts is None:
                raise DockerfileError(f"invalid hostPort: {host}", span=span)
            if ports[0] != ports[1] and hosts[1] - hosts[0] != ports[1] - ports[0]:  # a host range for one port
                # is Docker's pool to pick from; a container range needs one host port per port
                raise DockerfileError(f"invalid ranges specified for container and host Ports: {port_text} and "
                                      f"{host}", span=span)
        if proto not in PROTOCOLS:
            raise DockerfileError(f"invalid proto: {shown}", span=span)
        for n in range(ports[0], ports[1] + 1):
            out.setdefault(f"{n}/{proto}", None)
    return tuple(out)
