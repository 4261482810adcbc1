"""The test-only schema validator catches what the OCI schemas forbid (so passing it means something)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.oci.jsonschema_lite import validate

GOOD_MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": "sha256:" + "a" * 64, "size": 10},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + "b" * 64, "size": 1024}],
}
GOOD_CONFIG: dict[str, Any] = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
                               "config": {"Cmd": ["sh"], "Env": ["A=b"], "ExposedPorts": {"80/tcp": {}}},
                               "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "c" * 64]}}


def test_good_documents_pass() -> None:
    assert validate(GOOD_MANIFEST, "manifest") == []
    assert validate(GOOD_CONFIG, "config") == []
    assert validate({"imageLayoutVersion": "1.0.0"}, "layout") == []
    assert validate({"schemaVersion": 2, "manifests": []}, "index") == []


@pytest.mark.parametrize("mutate, kind", [
    (lambda d: d.update(schemaVersion=1), "manifest"),
    (lambda d: d.update(layers=[]), "manifest"),
    (lambda d: d["config"].update(size=-1), "manifest"),
    (lambda d: d["config"].update(digest="sha256 nope"), "manifest"),
    (lambda d: d["config"].update(mediaType="not a type"), "manifest"),
    (lambda d: d["config"].pop("digest"), "manifest"),
    (lambda d: d.pop("os"), "config"),
    (lambda d: d["rootfs"].update(type="tar"), "config"),
    (lambda d: d.update(created=""), "config"),
    (lambda d: d["config"].update(Cmd="sh"), "config"),
    (lambda d: d["config"].update(ExposedPorts={"80/tcp": "x"}), "config"),
])
def test_bad_documents_fail(mutate: Any, kind: str) -> None:
    doc = copy.deepcopy(GOOD_MANIFEST if kind == "manifest" else GOOD_CONFIG)
    mutate(doc)
    assert validate(doc, kind) != []


def test_bad_layout_version_fails() -> None:
    assert validate({"imageLayoutVersion": "2.0.0"}, "layout") != []
