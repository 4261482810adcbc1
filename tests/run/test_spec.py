"""docker run's rules, by hand from the docker run reference: ENTRYPOINT/CMD overrides, -e, -p forms."""

from __future__ import annotations

import pytest

from minibuild.errors import ConfigError
from minibuild.oci.model import ImageConfig
from minibuild.run.spec import Publish, container_argv, container_env, container_spec, parse_env, parse_publish

NGINX = ImageConfig(entrypoint=("/docker-entrypoint.sh",), cmd=("nginx", "-g", "daemon off;"),
                    env=("PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=1.27.2"))


def test_cmd_after_the_image_replaces_cmd_only() -> None:
    assert container_argv(NGINX) == ("/docker-entrypoint.sh", "nginx", "-g", "daemon off;")
    assert container_argv(NGINX, cmd=["echo", "hi"]) == ("/docker-entrypoint.sh", "echo", "hi")


def test_entrypoint_override_drops_the_image_cmd() -> None:
    assert container_argv(NGINX, entrypoint="nginx") == ("nginx",)
    assert container_argv(NGINX, entrypoint="nginx", cmd=["-v"]) == ("nginx", "-v")
    assert container_argv(NGINX, entrypoint="", cmd=["sh"]) == ("sh",)


def test_shell_form_cmd_is_already_sh_c() -> None:
    cfg = ImageConfig(cmd=("/bin/sh", "-c", "echo $HOME"))
    assert container_argv(cfg) == ("/bin/sh", "-c", "echo $HOME")


def test_no_command_at_all() -> None:
    with pytest.raises(ConfigError, match="no command specified"):
        container_spec(ImageConfig())


def test_env_overrides_keep_order_and_path_is_added() -> None:
    assert container_env(NGINX, [("NGINX_VERSION", "9"), ("A", "1")]) == (
        ("PATH", "/usr/sbin:/usr/bin"), ("NGINX_VERSION", "9"), ("A", "1"))
    assert dict(container_env(ImageConfig(), []))["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_env_without_value_comes_from_the_host_or_is_dropped() -> None:
    assert parse_env(["A=1", "B", "C", "D="], {"B": "host"}) == (("A", "1"), ("B", "host"), ("D", ""))


@pytest.mark.parametrize("spec,want", [
    ("8080:80", Publish(host_ip="127.0.0.1", host_port=8080, container_port=80)),
    ("80", Publish(host_ip="127.0.0.1", host_port=0, container_port=80)),
    ("127.0.0.1:8080:80/tcp", Publish(host_ip="127.0.0.1", host_port=8080, container_port=80)),
    ("0.0.0.0::80", Publish(host_ip="0.0.0.0", host_port=0, container_port=80)),
    ("[::1]:8080:80", Publish(host_ip="::1", host_port=8080, container_port=80)),
])
def test_publish_forms(spec: str, want: Publish) -> None:
    assert parse_publish(spec) == want


@pytest.mark.parametrize("spec", ["8080:http", "8080:80/udp", "70000:80", "8080-8081:80-81", "a:b:c:d"])
def test_bad_publish(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_publish(spec)
