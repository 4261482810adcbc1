"""Cache poisoning through unverified diff_ids: an image (archive, layout, registry) or an imported cache record
claiming another layer's diff_id for a blob the store holds is refused before anything names or uses it.

Cache keys are built from diff_ids, so a config saying "blob M has diff_id H" would make later honest builds FROM
the image whose layer really is H hit what was built on M."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from minibuild.api import build
from minibuild.digest import Digest, canonical_json
from minibuild.errors import ImageFormatError, MinibuildError
from minibuild.oci.archive import import_archive
from minibuild.registry import RegistryOptions, pull
from minibuild.store import Store
from tests.security.hostile import archive_of
from tests.security.hostile_registry import HostileRegistry, config_for

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


HONEST = _tar("app", b"honest\n")
EVIL = _tar("app", b"evil\n")


def _layout(blob: bytes, diff_id: Digest, *, gz: bool, tag: str) -> dict[str, bytes]:
    """The files of an OCI layout: one image whose layer is ``blob`` and whose config claims ``diff_id``."""
    config = config_for([diff_id])
    media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": Digest.of_bytes(config).value, "size": len(config)},
                           "layers": [{"mediaType": media, "digest": Digest.of_bytes(blob).value,
                                       "size": len(blob)}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": MANIFEST, "digest": Digest.of_bytes(manifest).value, "size": len(manifest),
         "annotations": {"io.containerd.image.name": f"docker.io/library/{tag}"}}]}).encode()
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index}
    for data in (config, manifest, blob):
        files["blobs/sha256/" + Digest.of_bytes(data).hex] = data
    return files


def _write(files: dict[str, bytes], path: Path, as_dir: bool) -> Path:
    if as_dir:
        for name, data in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)
    else:
        path.write_bytes(archive_of(files))
    return path


@pytest.mark.parametrize("gz", [False, True], ids=["tar", "gzip"])
@pytest.mark.parametrize("as_dir", [False, True], ids=["archive", "layout-dir"])
def test_load_refuses_a_stored_blob_claimed_under_another_diff_id(tmp_path: Path, gz: bool, as_dir: bool) -> None:
    store = Store.open(tmp_path / "store")
    evil_blob = gzip.compress(EVIL, mtime=0) if gz else EVIL
    # the attacker's blob reaches the store honestly first (its own image, true diff_id)
    import_archive(store, _write(_layout(evil_blob, Digest.of_bytes(EVIL), gz=gz, tag="evil:1"),
                                 tmp_path / "evil", as_dir))
    names = {e.name for e in store.refs.entries()}
    poisoned = _write(_layout(evil_blob, Digest.of_bytes(HONEST), gz=gz, tag="poison:1"), tmp_path / "poison", as_dir)
    with pytest.raises(ImageFormatError, match="diff_id") as info:
        import_archive(store, poisoned)
    assert "\n" not in str(info.value)
    assert {e.name for e in store.refs.entries()} == names  # no name for the poisoned image
    config = config_for([Digest.of_bytes(HONEST)])
    assert not store.blobs.has(Digest.of_bytes(config)), "the lying config was stored"


@pytest.fixture
def reg() -> Iterator[HostileRegistry]:
    r = HostileRegistry()
    try:
        yield r
    finally:
        r.close()


@pytest.mark.parametrize("gz", [False, True], ids=["tar", "gzip"])
def test_pull_refuses_a_config_lying_about_diff_ids(reg: HostileRegistry, tmp_path: Path, gz: bool) -> None:
    blob = gzip.compress(EVIL, mtime=0) if gz else EVIL
    media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
    reg.image(config_for([Digest.of_bytes(HONEST)]), [(blob, media)])
    store = Store.open(tmp_path / "store")
    with pytest.raises(ImageFormatError, match="diff_id"):
        pull(store, f"{reg.host}/img:latest", options=RegistryOptions(insecure_registries=(reg.host,), env={}))
    assert not store.refs.entries() and store.images() == []


def test_pull_refuses_a_config_with_more_diff_ids_than_layers(reg: HostileRegistry, tmp_path: Path) -> None:
    reg.image(config_for([Digest.of_bytes(EVIL), Digest.of_bytes(HONEST)]),
              [(EVIL, "application/vnd.oci.image.layer.v1.tar")])
    store = Store.open(tmp_path / "store")
    with pytest.raises(MinibuildError, match="diff_ids"):
        pull(store, f"{reg.host}/img:latest", options=RegistryOptions(insecure_registries=(reg.host,), env={}))
    assert not store.refs.entries()


DOCKERFILE = """\
FROM alpine:3.20
COPY a.txt /a.txt
COPY b.txt /b.txt
"""


def test_imported_cache_record_lying_about_a_diff_id_is_refused(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0.02")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "a.txt").write_text("a\n")
    (ctx / "b.txt").write_text("b\n")
    dest = tmp_path / "cachedir"
    a = build(ctx, store=tmp_path / "a", cache_to=(f"type=local,dest={dest}",))
    copy_a, copy_b = (s.layer for s in a.steps if s.instruction.startswith("COPY"))
    assert copy_a and copy_b
    # the attacker's cache: the record of COPY b.txt names COPY a.txt's blob, keeping b's diff_id
    index = json.loads((dest / "index.json").read_bytes())
    blobs = dest / "blobs" / "sha256"
    manifest = json.loads((blobs / Digest(index["manifests"][0]["digest"]).hex).read_bytes())
    doc = json.loads((blobs / Digest(manifest["config"]["digest"]).hex).read_bytes())
    tampered = 0
    for r in doc["records"]:
        layer = r["record"].get("layer")
        if isinstance(layer, dict) and layer.get("digest") == copy_b:
            layer["digest"] = copy_a
            layer["size"] = (blobs / Digest(copy_a).hex).stat().st_size
            r["refs"] = [copy_a]
            tampered += 1
    assert tampered == 1
    data = canonical_json(doc)
    (blobs / Digest.of_bytes(data).hex).write_bytes(data)
    manifest["config"] = {**manifest["config"], "digest": Digest.of_bytes(data).value, "size": len(data)}
    mdata = json.dumps(manifest).encode()
    (blobs / Digest.of_bytes(mdata).hex).write_bytes(mdata)
    index["manifests"][0] = {**index["manifests"][0], "digest": Digest.of_bytes(mdata).value, "size": len(mdata)}
    (dest / "index.json").write_text(json.dumps(index))

    b_store = Store.open(tmp_path / "b")
    with pytest.raises(ImageFormatError, match="diff_id") as info:
        build(ctx, store=b_store, tags=("victim:1",), cache_from=(f"type=local,src={dest}",))
    assert "\n" not in str(info.value)
    assert not [e for e in b_store.refs.entries() if "victim" in e.name], "the poisoned build was named"
