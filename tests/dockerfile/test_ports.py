"""EXPOSE specs as Docker's classic builder (20.10, checked against the engine) and BuildKit read them."""

from __future__ import annotations

from pathlib import Path

import pytest

from minibuild.dockerfile.ports import expose_ports
from minibuild.errors import DockerfileError
from tests.engine.engine_support import run_build, write_context


@pytest.mark.parametrize(("specs", "ports"), [
    (["8000-8002"], ("8000/tcp", "8001/tcp", "8002/tcp")),
    (["8000-8002/udp"], ("8000/udp", "8001/udp", "8002/udp")),
    (["8000-8002/UDP", "80/"], ("8000/udp", "8001/udp", "8002/udp", "80/tcp")),
    (["80-80", "080", "0"], ("80/tcp", "0/tcp")),
    (["1.2.3.4:80:8080", "81:8081", "[::1]:82:8082"], ("8080/tcp", "8081/tcp", "8082/tcp")),
    (["8080/tcp/x"], ("8080/tcp",)),
    (["53/sctp", "53/udp", "53"], ("53/sctp", "53/udp", "53/tcp")),
])
def test_ranges_expand_to_one_key_per_port(specs: list[str], ports: tuple[str, ...]) -> None:
    assert expose_ports(specs) == ports


@pytest.mark.parametrize(("spec", "message"), [
    ("8002-8000", "invalid containerPort: 8002-8000"),
    ("abc", "invalid containerPort: abc"),
    ("70000", "invalid containerPort: 70000"),
    ("8000-", "invalid containerPort: 8000-"),
    ("80/xyz", "invalid proto: xyz"),
    ("x:8080", "invalid hostPort: x"),
    ("81:8080-8081", "invalid ranges specified for container and host Ports: 8080-8081 and 81"),
    ("/tcp", "no port specified: /tcp<empty>"),
    ("nohost:80:8080", "invalid IP address: nohost"),
])
def test_malformed_specs_are_dockers_errors(spec: str, message: str) -> None:
    with pytest.raises(DockerfileError) as exc:
        expose_ports([spec])
    assert exc.value.message == message


def test_build_expands_ranges_and_reports_a_bad_port_at_its_line(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {})
    r = run_build(ctx, tmp_path / "s", "FROM scratch\nEXPOSE 80\nEXPOSE 8000-8002 80/tcp 9000-9001/udp\n")
    assert r.image.config.exposed_ports == ("80/tcp", "8000/tcp", "8001/tcp", "8002/tcp", "9000/udp", "9001/udp")
    with pytest.raises(DockerfileError) as exc:
        run_build(ctx, tmp_path / "s", "FROM scratch\nEXPOSE 80\nEXPOSE abc\n")
    assert str(exc.value) == "Dockerfile:3: invalid containerPort: abc"
