"""The combined OCI-layout + docker-save archive: layout, determinism, and reading every supported input."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from minibuild.digest import Digest, canonical_json
from minibuild.errors import ImageFormatError
from minibuild.oci.archive import import_archive, load_archive, save_image_tar
from minibuild.oci.image import Image
from minibuild.store import Store
from tests.oci.jsonschema_lite import validate_bytes
from tests.oci.layers import make_layer, tar_bytes
from tests.support import extract_all


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: (tf.extractfile(m).read() if m.isfile() else b"") for m in tf.getmembers()}  # type: ignore[union-attr]


def test_archive_layout(store: Store, two_layer_image: Image, tmp_path: Path) -> None:
    out = tmp_path / "img.tar"
    save_image_tar(store.blobs, two_layer_image, ["me/app:1.0", "me/app:latest"], out)
    m = members(out)
    names = list(m)
    assert names[:2] == ["blobs", "blobs/sha256"]  # tarfile strips the "/" that directory names carry
    assert names[-3:] == ["index.json", "manifest.json", "oci-layout"]
    assert names == sorted(names)
    assert json.loads(m["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(m["index.json"])
    assert len(index["manifests"]) == 1
    entry = index["manifests"][0]
    assert entry["annotations"] == {"io.containerd.image.name": "docker.io/me/app:1.0",
                                    "org.opencontainers.image.ref.name": "1.0"}
    assert entry["digest"] == two_layer_image.digest.value and entry["platform"] == {"architecture": "amd64", "os": "linux"}
    docker = json.loads(m["manifest.json"])
    assert docker == [{"Config": "blobs/sha256/" + two_layer_image.config_digest.hex,
                       "Layers": ["blobs/sha256/" + layer.digest.hex for layer in two_layer_image.layers],
                       "RepoTags": ["me/app:1.0", "me/app:latest"]}]
    for name, data in m.items():  # every blob hashes to its name, with the exact size the descriptors give
        if name.startswith("blobs/sha256/") and len(name) > len("blobs/sha256/"):
            assert Digest.of_bytes(data).hex == name.rsplit("/", 1)[1]
    assert validate_bytes(m["index.json"], "index") == []
    assert validate_bytes(m["oci-layout"], "layout") == []
    assert validate_bytes(m["blobs/sha256/" + two_layer_image.digest.hex], "manifest") == []
    assert validate_bytes(m["blobs/sha256/" + two_layer_image.config_digest.hex], "config") == []
    raw = out.read_bytes()
    assert raw.endswith(b"\0" * 1024) and len(raw) % 512 == 0
    with tarfile.open(out) as tf:
        for ti in tf.getmembers():
            assert (ti.uid, ti.gid, ti.uname, ti.gname, ti.mtime) == (0, 0, "", "", 0)
            assert ti.mode == (0o755 if ti.isdir() else 0o644)


def test_two_writes_are_byte_identical(store: Store, two_layer_image: Image, tmp_path: Path) -> None:
    save_image_tar(store.blobs, two_layer_image, ["x"], tmp_path / "a.tar")
    save_image_tar(store.blobs, two_layer_image, ["x"], tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_round_trip_through_archive_and_layout_dir(store: Store, two_layer_image: Image, tmp_path: Path) -> None:
    out = tmp_path / "img.tar"
    save_image_tar(store.blobs, two_layer_image, ["me/app:1.0"], out)
    other = Store.open(tmp_path / "other")
    assert load_archive(other, out) == ["docker.io/me/app:1.0"]
    back = other.resolve("me/app:1.0")
    assert back.digest == two_layer_image.digest and back.config_digest == two_layer_image.config_digest
    layout = tmp_path / "layout"
    with tarfile.open(out) as tf:
        extract_all(tf, layout)
    third = Store.open(tmp_path / "third")
    assert load_archive(third, layout) == ["docker.io/me/app:1.0"]
    assert third.resolve("me/app:1.0").digest == two_layer_image.digest


def _legacy_docker_save(tmp_path: Path, *, gz_second: bool = False, tamper: bool = False) -> tuple[Path, bytes]:
    """A Docker <=24 style `docker save` tarball: <id>/layer.tar (+ a symlinked duplicate), <hex>.json."""
    l1 = tar_bytes({"bin/": None, "bin/sh": b"#!fake"})
    l2 = tar_bytes({"etc/": None, "etc/hostname": "x\n"})
    stored2 = gzip.compress(l2, mtime=0) if gz_second else l2
    diff_ids = [Digest.of_bytes(l1).value, Digest.of_bytes(l2).value, Digest.of_bytes(l1).value]
    config = canonical_json({"architecture": "amd64", "os": "linux", "created": "2020-01-01T00:00:00.123456789Z",
                             "config": {"Cmd": ["sh"], "Hostname": ""}, "container_config": {"Cmd": ["x"]},
                             "docker_version": "20.10.24", "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    cfg_hex = Digest.of_bytes(config).hex
    if tamper:
        stored2 = stored2[:-1100] + b"X" + stored2[-1099:]
    files = {f"{cfg_hex}.json": config, "aaaa/VERSION": b"1.0", "aaaa/json": b"{}", "aaaa/layer.tar": l1,
             "bbbb/layer.tar": stored2, "repositories": b'{"old":{"v1":"bbbb"}}',
             "manifest.json": json.dumps([{"Config": f"{cfg_hex}.json", "RepoTags": ["old:v1", "reg.example:5000/o/p:q"],
                                           "Layers": ["aaaa/layer.tar", "bbbb/layer.tar", "cccc/layer.tar"]}]).encode()}
    out = tmp_path / "legacy.tar"
    with tarfile.open(out, "w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        link = tarfile.TarInfo("cccc/layer.tar")
        link.type = tarfile.SYMTYPE
        link.linkname = "../aaaa/layer.tar"
        tf.addfile(link)
    return out, config


def test_reads_legacy_docker_save(tmp_path: Path) -> None:
    path, config = _legacy_docker_save(tmp_path, gz_second=True)
    store = Store.open(tmp_path / "s")
    names = load_archive(store, path)
    assert names == ["docker.io/library/old:v1", "reg.example:5000/o/p:q"]
    image = store.resolve("old:v1")
    assert image.config_bytes == config  # image ID (config digest) kept
    assert len(image.layers) == 3 and image.layers[0].digest == image.layers[2].digest
    assert image.layers[1].descriptor.media_type.endswith("+gzip")
    # derived images drop what describes the old build
    derived = json.loads(image.with_config(cmd=["x"]).config_bytes)
    assert "container_config" not in derived and "docker_version" not in derived


def test_tampered_layer_is_refused(tmp_path: Path) -> None:
    path, _ = _legacy_docker_save(tmp_path, tamper=True)
    store = Store.open(tmp_path / "s")
    with pytest.raises(ImageFormatError, match="diff_id"):
        load_archive(store, path)
    assert store.images() == []


def test_reads_docker_25_layout(store: Store, two_layer_image: Image, tmp_path: Path) -> None:
    """Docker >= 25 writes index.json with one entry per tag and manifest.json with blob paths and LayerSources."""
    img = two_layer_image
    blobs = {img.config_digest: img.config_bytes, img.digest: img.manifest_bytes}
    for layer in img.layers:
        blobs[layer.digest] = store.blobs.read_bytes(layer.digest)
    desc = img.manifest_descriptor.to_json()
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        dict(desc, annotations={"io.containerd.image.name": "docker.io/library/new:a", "org.opencontainers.image.ref.name": "a"}),
        dict(desc, annotations={"io.containerd.image.name": "docker.io/library/new:b", "org.opencontainers.image.ref.name": "b"}),
    ]}
    manifest = [{"Config": "blobs/sha256/" + img.config_digest.hex, "RepoTags": ["new:a", "new:b"],
                 "Layers": ["blobs/sha256/" + layer.digest.hex for layer in img.layers], "LayerSources": {}}]
    out = tmp_path / "d25.tar"
    with tarfile.open(out, "w") as tf:
        files = {f"blobs/sha256/{d.hex}": data for d, data in blobs.items()}
        files.update({"index.json": json.dumps(index).encode(), "manifest.json": json.dumps(manifest).encode(),
                      "oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "repositories": b"{}"})
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    other = Store.open(tmp_path / "o")
    loaded = import_archive(other, out)
    assert len(loaded) == 1
    assert loaded[0].names == ("docker.io/library/new:a", "docker.io/library/new:b")
    assert other.resolve("new:b").digest == img.digest


@pytest.mark.parametrize("corruption", ["blob", "size", "diff_id"])
def test_oci_archive_verification(store: Store, tmp_path: Path, corruption: str) -> None:
    layer = make_layer({"f": "content\n"})
    store.blobs.put_bytes(layer.blob)
    img = Image.scratch().append_layer(layer)
    out = tmp_path / "img.tar"
    save_image_tar(store.blobs, img, ["x"], out)
    layout = tmp_path / "layout"
    with tarfile.open(out) as tf:
        extract_all(tf, layout)
    blob = layout / "blobs/sha256" / layer.digest.hex
    if corruption == "blob":
        blob.write_bytes(blob.read_bytes()[:-1] + b"\1")
    elif corruption == "size":
        blob.write_bytes(blob.read_bytes() + b"\0" * 512)
    else:  # consistent blob digest and size, but diff_id in the config is wrong
        cfg = json.loads(img.config_bytes)
        cfg["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
        cfg_bytes = canonical_json(cfg)
        (layout / "blobs/sha256" / Digest.of_bytes(cfg_bytes).hex).write_bytes(cfg_bytes)
        man = json.loads(img.manifest_bytes)
        man["config"]["digest"] = Digest.of_bytes(cfg_bytes).value
        man["config"]["size"] = len(cfg_bytes)
        man_bytes = canonical_json(man)
        (layout / "blobs/sha256" / Digest.of_bytes(man_bytes).hex).write_bytes(man_bytes)
        idx = json.loads((layout / "index.json").read_bytes())
        idx["manifests"][0]["digest"] = Digest.of_bytes(man_bytes).value
        idx["manifests"][0]["size"] = len(man_bytes)
        (layout / "index.json").write_bytes(canonical_json(idx))
    other = Store.open(tmp_path / "o")
    with pytest.raises(ImageFormatError):
        load_archive(other, layout)
    assert other.images() == []
    assert list(other.blobs) == [] or layer.digest not in list(other.blobs)


def test_not_an_image(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(tar_bytes({"bin/": None, "bin/sh": b"x"}))
    with pytest.raises(ImageFormatError, match="not an image archive"):
        load_archive(Store.open(tmp_path / "s"), rootfs)
    nested = tmp_path / "nested.tar"
    nested.write_bytes(tar_bytes({"img/": None, "img/manifest.json": b"[]"}))
    with pytest.raises(ImageFormatError, match="not an image archive"):
        load_archive(Store.open(tmp_path / "s"), nested)
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(os.urandom(3000))
    with pytest.raises(ImageFormatError):
        load_archive(Store.open(tmp_path / "s"), garbage)


def test_manifest_json_must_be_an_array(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(tar_bytes({"manifest.json": b'{"Config": "x"}'}))
    with pytest.raises(ImageFormatError, match="array"):
        load_archive(Store.open(tmp_path / "s"), bad)
