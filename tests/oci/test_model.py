"""OCI model: JSON both ways, Docker extension fields, names, and rejection of malformed documents."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibuild.digest import Digest
from minibuild.errors import ConfigError, ImageFormatError
from minibuild.oci.model import Descriptor, Healthcheck, History, ImageConfig, Index, Manifest, format_created
from minibuild.oci.reference import familiar_name, normalize_name
from tests.oci.jsonschema_lite import validate

D1 = Digest("sha256:" + "1" * 64)


def test_docker_extension_fields_round_trip() -> None:
    cfg = ImageConfig(
        created="2024-01-02T03:04:05Z", user="app", env=("A=1", "B=x=y"), entrypoint=("/bin/sh", "-c"),
        cmd=("echo hi",), working_dir="/app", labels=(("a", "1"),), exposed_ports=("80/tcp",), volumes=("/data",),
        stop_signal="SIGTERM", shell=("/bin/bash", "-c"), onbuild=("RUN echo",), args_escaped=True,
        healthcheck=Healthcheck(test=("CMD-SHELL", "true"), interval=30_000_000_000, retries=3),
        history=(History(created="2024-01-02T03:04:05Z", created_by="ENV A=1", empty_layer=True),), diff_ids=(D1,),
    )
    doc = cfg.to_json()
    assert doc["config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 30_000_000_000, "Retries": 3}
    assert doc["config"]["Shell"] == ["/bin/bash", "-c"]
    assert doc["config"]["OnBuild"] == ["RUN echo"]
    assert doc["config"]["StopSignal"] == "SIGTERM"
    assert doc["config"]["ArgsEscaped"] is True
    assert doc["config"]["ExposedPorts"] == {"80/tcp": {}}
    assert doc["history"] == [{"created": "2024-01-02T03:04:05Z", "created_by": "ENV A=1", "empty_layer": True}]
    assert ImageConfig.from_bytes(cfg.to_bytes()) == cfg
    assert validate(doc, "config") == []


def test_unknown_fields_survive() -> None:
    raw = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
           "config": {"Hostname": "", "Cmd": None}, "container": "abc", "x-custom": {"k": [1]}}
    cfg = ImageConfig.from_json(raw)
    assert cfg.cmd is None
    assert cfg.to_json()["x-custom"] == {"k": [1]}
    assert cfg.to_json()["config"]["Hostname"] == ""


@pytest.mark.parametrize("doc, message", [
    ({"os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}, "architecture"),
    ({"architecture": "amd64", "os": "linux"}, "rootfs"),
    ({"architecture": "amd64", "os": "linux", "rootfs": {"type": "tar"}}, "rootfs.type"),
    ({"architecture": "amd64", "os": "linux", "created": "", "rootfs": {"type": "layers"}}, "RFC 3339"),
    ({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["md5:x"]}}, "digest"),
    ({"architecture": "amd64", "os": "linux", "config": {"Cmd": "sh"}, "rootfs": {"type": "layers"}}, "Cmd"),
])
def test_bad_configs_are_rejected(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ImageFormatError, match=message):
        ImageConfig.from_json(doc)


def test_manifest_and_index_validate_against_schema() -> None:
    desc = Descriptor(media_type="application/vnd.oci.image.layer.v1.tar", digest=D1, size=3)
    m = Manifest(config=Descriptor(media_type="application/vnd.oci.image.config.v1+json", digest=D1, size=2), layers=(desc,))
    assert validate(json.loads(m.to_bytes()), "manifest") == []
    assert Manifest.from_bytes(m.to_bytes()) == m
    idx = Index(manifests=(desc,))
    assert validate(json.loads(idx.to_bytes()), "index") == []
    with pytest.raises(ImageFormatError, match="schemaVersion"):
        Manifest.from_json({"schemaVersion": 1, "config": {}, "layers": []})
    with pytest.raises(ImageFormatError, match="size"):
        Descriptor.from_json({"mediaType": "a/b", "digest": D1.value, "size": -1})


def test_created_from_epoch() -> None:
    assert format_created(None) == "1970-01-01T00:00:00Z"
    assert format_created(1700000000) == "2023-11-14T22:13:20Z"


@pytest.mark.parametrize("name, full, short", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("me/app:1.0", "docker.io/me/app:1.0", "me/app:1.0"),
    ("docker.io/library/x:y", "docker.io/library/x:y", "x:y"),
    ("index.docker.io/me/app", "docker.io/me/app:latest", "me/app:latest"),
    ("reg.example:5000/a/b:t", "reg.example:5000/a/b:t", "reg.example:5000/a/b:t"),
    ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
])
def test_name_normalisation(name: str, full: str, short: str) -> None:
    assert normalize_name(name) == full
    assert familiar_name(full) == short


@pytest.mark.parametrize("bad", ["", "UPPER", "a:b:c", "x@sha256", "a/-b", "a:" + "t" * 200])
def test_bad_names(bad: str) -> None:
    with pytest.raises(ConfigError):
        normalize_name(bad)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12), max_size=4),
       st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3))
def test_config_json_round_trip(env: list[str], labels: dict[str, str]) -> None:
    cfg = ImageConfig(env=tuple(env), labels=tuple(sorted(labels.items())), cmd=tuple(env) or None)
    back = ImageConfig.from_bytes(cfg.to_bytes())
    assert back == cfg
    assert back.to_bytes() == cfg.to_bytes()
