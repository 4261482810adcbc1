"""Push and pull against the real CNCF distribution registry (plain HTTP, and TLS + htpasswd), checked with skopeo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from minibuild.digest import Digest
from minibuild.errors import RegistryError
from minibuild.oci.image import Image
from minibuild.oci.model import (
    MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_LAYER,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
)
from minibuild.registry import (
    Credentials,
    RegistryClient,
    RegistryOptions,
    options_from_env,
    pull,
    pull_artifact,
    push_artifact,
    push_image,
)
from minibuild.store import Store
from tests.registry.conftest import Registry
from tests.registry.images import add_layer, blob_digests, random_image
from tests.support import require_tool


def plain(reg: Registry, **kw: object) -> RegistryOptions:
    return RegistryOptions(insecure_registries=(reg.host,), env={}, **kw)  # type: ignore[arg-type]


def secure(reg: Registry, **kw: object) -> RegistryOptions:
    return RegistryOptions(ca_cert=reg.ca_cert, env={}, credentials=Credentials(username=reg.user, password=reg.password),
                           **kw)  # type: ignore[arg-type]


def uploads(reqs: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """Requests that upload or mount blobs (POST/PATCH, and PUT of blob data)."""
    return [r for r in reqs if r[0] in ("POST", "PATCH") or (r[0] == "PUT" and "/blobs/" in r[1])]


def all_verified(store: Store) -> bool:
    return all(store.blobs.verify(d) for d in store.blobs)


def test_push_pull_roundtrip_is_byte_identical(plain_registry: Registry, tmp_path: Path) -> None:
    s1 = Store.open(tmp_path / "s1")
    image = random_image(s1, "app:1")
    mark = plain_registry.mark()
    res = push_image(s1, "app:1", f"{plain_registry.host}/rt/app:1", options=plain(plain_registry))
    assert res.digest == image.digest
    assert set(res.uploaded) == set(blob_digests(image))
    reqs = plain_registry.requests(mark)
    assert sum(1 for r in reqs if r[0] == "PUT" and "/blobs/uploads/" in r[1] and r[2] == 201) == 3
    assert ("PUT", "/v2/rt/app/manifests/1", 201) in reqs

    s2 = Store.open(tmp_path / "s2")
    got = pull(s2, f"{plain_registry.host}/rt/app:1", options=plain(plain_registry))
    assert got.digest == got.remote_digest == image.digest
    assert set(got.downloaded) == set(blob_digests(image))
    assert s2.resolve(f"{plain_registry.host}/rt/app:1").digest == image.digest
    assert all_verified(s2)
    again = pull(s2, f"{plain_registry.host}/rt/app:1", options=plain(plain_registry))
    assert again.downloaded == () and set(again.present) == set(blob_digests(image))


def test_second_push_uploads_no_blob_twice(plain_registry: Registry, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    base = random_image(store, "base:1", layers=2, seed="second")
    push_image(store, "base:1", f"{plain_registry.host}/twice/app:1", options=plain(plain_registry))
    mark = plain_registry.mark()
    res = push_image(store, "base:1", f"{plain_registry.host}/twice/app:1", options=plain(plain_registry))
    reqs = plain_registry.requests(mark)
    assert uploads(reqs) == []
    assert res.uploaded == () and set(res.existing) == set(blob_digests(base))
    # a child image shares the base layers: only its new layer and config travel
    child = add_layer(store, base, {"etc/child": b"child"})
    store.tag("child:1", store.put_image(child))
    mark = plain_registry.mark()
    res = push_image(store, "child:1", f"{plain_registry.host}/twice/app:2", options=plain(plain_registry))
    assert set(res.uploaded) == {child.layers[-1].digest, child.config_digest}
    blob_puts = [r for r in plain_registry.requests(mark) if r[0] == "PUT" and "/blobs/" in r[1]]
    assert len(blob_puts) == 2


def test_chunked_upload_and_pull_back(plain_registry: Registry, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    image = random_image(store, "big:1", layers=1, size=100_000, seed="chunk")
    opts = plain(plain_registry, monolithic_max=20_000, chunk_size=16_384)
    mark = plain_registry.mark()
    push_image(store, "big:1", f"{plain_registry.host}/chunked/app:1", options=opts)
    patches = [r for r in plain_registry.requests(mark) if r[0] == "PATCH"]
    layer_size = image.layers[0].size
    assert len(patches) == -(-layer_size // 16_384)
    assert all(r[2] == 202 for r in patches)
    s2 = Store.open(tmp_path / "s2")
    assert pull(s2, f"{plain_registry.host}/chunked/app:1", options=plain(plain_registry)).digest == image.digest
    assert all_verified(s2)


def test_cross_repository_mount(plain_registry: Registry, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    image = random_image(store, "m:1", seed="mount")
    push_image(store, "m:1", f"{plain_registry.host}/mount/one:1", options=plain(plain_registry))
    mark = plain_registry.mark()
    res = push_image(store, "m:1", f"{plain_registry.host}/mount/two:1", options=plain(plain_registry))
    assert set(res.mounted) == set(blob_digests(image)) and res.uploaded == ()
    reqs = plain_registry.requests(mark)
    mounts = [r for r in reqs if r[0] == "POST" and "mount=" in r[1] and "from=mount%2Fone" in r[1]]
    assert len(mounts) == 3 and all(r[2] == 201 for r in mounts)
    assert not [r for r in reqs if r[0] in ("PUT", "PATCH") and "/blobs/" in r[1]]
    s2 = Store.open(tmp_path / "s2")
    assert pull(s2, f"{plain_registry.host}/mount/two:1", options=plain(plain_registry)).digest == image.digest


def test_plain_http_needs_insecure_registry(plain_registry: Registry, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    random_image(store, "x:1", layers=1, size=10)
    with pytest.raises(RegistryError, match=f"--insecure-registry {plain_registry.host}"):
        push_image(store, "x:1", f"{plain_registry.host}/x:1", options=RegistryOptions(env={}))


def test_tls_with_test_ca_and_htpasswd(tls_registry: Registry, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    image = random_image(store, "t:1", seed="tls")
    ref = f"{tls_registry.host}/secure/app:1"
    with pytest.raises(RegistryError, match="not trusted.*--ca-cert"):
        push_image(store, "t:1", ref, options=RegistryOptions(env={}))
    with pytest.raises(RegistryError, match="requires authentication"):
        push_image(store, "t:1", ref, options=RegistryOptions(ca_cert=tls_registry.ca_cert, env={}))
    with pytest.raises(RegistryError, match="refused the credentials"):
        push_image(store, "t:1", ref, options=RegistryOptions(
            ca_cert=tls_registry.ca_cert, env={}, credentials=Credentials(username="minibuild", password="wrong")))
    # CA and credentials from the environment, as the CLI reads them
    env = {"MINIBUILD_REGISTRY_CA": str(tls_registry.ca_cert), "MINIBUILD_REGISTRY_USER": str(tls_registry.user),
           "MINIBUILD_REGISTRY_PASSWORD": str(tls_registry.password)}
    assert push_image(store, "t:1", ref, options=options_from_env(env=env)).digest == image.digest
    # credentials from a Docker config.json
    cfgdir = tmp_path / "docker"
    cfgdir.mkdir()
    import base64
    auth = base64.b64encode(f"{tls_registry.user}:{tls_registry.password}".encode()).decode()
    (cfgdir / "config.json").write_text(json.dumps({"auths": {tls_registry.host: {"auth": auth}}}))
    s2 = Store.open(tmp_path / "s2")
    got = pull(s2, ref, options=options_from_env(env={"DOCKER_CONFIG": str(cfgdir),
                                                     "MINIBUILD_REGISTRY_CA": str(tls_registry.ca_cert)}))
    assert got.digest == image.digest and all_verified(s2)


def _skopeo_inspect(ref: str, *flags: str) -> dict[str, object]:
    skopeo = require_tool("skopeo")
    out = subprocess.run([skopeo, "inspect", *flags, f"docker://{ref}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_skopeo_reads_what_minibuild_pushed(plain_registry: Registry, tls_registry: Registry, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    store = Store.open(tmp_path / "s")
    image = random_image(store, "sk:1", seed="skopeo")
    push_image(store, "sk:1", f"{plain_registry.host}/sk/app:1", options=plain(plain_registry))
    push_image(store, "sk:1", f"{tls_registry.host}/sk/app:1", options=secure(tls_registry))
    info = _skopeo_inspect(f"{plain_registry.host}/sk/app:1", "--tls-verify=false")
    assert info["Digest"] == image.digest.value
    assert info["Layers"] == [layer.digest.value for layer in image.layers]
    creds = f"{tls_registry.user}:{tls_registry.password}"
    info = _skopeo_inspect(f"{tls_registry.host}/sk/app:1", "--cert-dir", str(tls_registry.ca_dir), "--creds", creds)
    assert info["Digest"] == image.digest.value
    # skopeo copy verifies every blob digest while copying (dir: keeps blobs as they are)
    dest = tmp_path / "copy"
    out = subprocess.run([skopeo, "copy", "--src-cert-dir", str(tls_registry.ca_dir), "--src-creds", creds,
                          f"docker://{tls_registry.host}/sk/app:1", f"dir:{dest}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (dest / "manifest.json").read_bytes() == image.manifest_bytes
    for d in blob_digests(image):
        assert Digest.of_bytes((dest / d.hex).read_bytes()) == d


def _platform_image(store: Store, arch: str) -> Image:
    image = Image.scratch(architecture=arch)
    return add_layer(store, image, {"arch": arch.encode()})


def test_index_pull_chooses_the_platform(plain_registry: Registry, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    client = RegistryClient(plain_registry.host, plain(plain_registry))
    from minibuild.registry.transfer import push_blobs
    descs = []
    for arch in ("amd64", "arm64"):
        image = _platform_image(store, arch)
        store.put_image(image)
        push_blobs(client, store, "multi/app", (*image.manifest.layers, image.manifest.config))
        client.put_manifest("multi/app", image.digest.value, image.manifest_bytes, MEDIA_OCI_MANIFEST)
        descs.append(Descriptor(media_type=MEDIA_OCI_MANIFEST, digest=image.digest, size=len(image.manifest_bytes),
                                platform=Platform(os="linux", architecture=arch)))
    index = Index(manifests=tuple(descs))
    client.put_manifest("multi/app", "1", index.to_bytes(), MEDIA_OCI_INDEX)
    for arch, desc in zip(("amd64", "arm64"), descs):
        s = Store.open(tmp_path / arch)
        got = pull(s, f"{plain_registry.host}/multi/app:1", options=plain(plain_registry, platform=f"linux/{arch}"))
        assert got.digest == desc.digest and got.image.config.architecture == arch
    with pytest.raises(RegistryError, match=r"no manifest for linux/s390x \(it has: linux/amd64, linux/arm64\)"):
        pull(Store.open(tmp_path / "x"), f"{plain_registry.host}/multi/app:1",
             options=plain(plain_registry, platform="linux/s390x"))


def test_docker_schema2_manifest_is_stored_in_oci_form(plain_registry: Registry, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    image = random_image(store, "d:1", layers=1, size=1000, seed="docker")
    client = RegistryClient(plain_registry.host, plain(plain_registry))
    from minibuild.registry.transfer import push_blobs
    push_blobs(client, store, "dockerfmt/app", (*image.manifest.layers, image.manifest.config))
    m = image.manifest
    docker_manifest = Manifest(
        media_type=MEDIA_DOCKER_MANIFEST,
        config=Descriptor(media_type=MEDIA_DOCKER_CONFIG, digest=m.config.digest, size=m.config.size),
        layers=tuple(Descriptor(media_type=MEDIA_DOCKER_LAYER, digest=d.digest, size=d.size) for d in m.layers))
    remote = client.put_manifest("dockerfmt/app", "1", docker_manifest.to_bytes(), MEDIA_DOCKER_MANIFEST)
    s2 = Store.open(tmp_path / "s2")
    got = pull(s2, f"{plain_registry.host}/dockerfmt/app:1", options=plain(plain_registry))
    assert got.remote_digest == remote != got.digest
    assert got.image.config_digest == image.config_digest  # config bytes (the image ID) unchanged
    stored = Manifest.from_bytes(s2.blobs.read_bytes(got.digest))
    assert stored.media_type == MEDIA_OCI_MANIFEST
    assert [d.digest for d in stored.layers] == [d.digest for d in m.layers]


def test_artifact_push_and_pull(plain_registry: Registry, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    empty = store.blobs.put_bytes(b"{}")
    record = b'{"cache":"records"}'
    rec = store.blobs.put_bytes(record)
    manifest = Manifest(
        artifact_type="application/vnd.minibuild.cache.v1",
        config=Descriptor(media_type="application/vnd.oci.empty.v1+json", digest=empty, size=2),
        layers=(Descriptor(media_type="application/vnd.minibuild.cache.records.v1+json", digest=rec, size=len(record)),))
    digest = push_artifact(store, f"{plain_registry.host}/cache/app:buildcache", manifest,
                           options=plain(plain_registry))
    assert digest == Digest.of_bytes(manifest.to_bytes())
    s2 = Store.open(tmp_path / "s2")
    got, got_digest = pull_artifact(s2, f"{plain_registry.host}/cache/app:buildcache", options=plain(plain_registry))
    assert got == manifest and got_digest == digest
    assert s2.blobs.read_bytes(rec) == record
    s3 = Store.open(tmp_path / "s3")
    pull_artifact(s3, f"{plain_registry.host}/cache/app@{digest}", options=plain(plain_registry), blobs=())
    assert not s3.blobs.has(rec) and s3.blobs.has(digest)


def test_progress_events(plain_registry: Registry, tmp_path: Path) -> None:
    from minibuild.registry import TransferEvent
    store = Store.open(tmp_path / "s")
    image = random_image(store, "p:1", layers=1, size=200_000, seed="progress")
    events: list[TransferEvent] = []
    push_image(store, "p:1", f"{plain_registry.host}/progress/app:1", options=plain(plain_registry),
               progress=events.append)
    layer = image.layers[0]
    mine = [e for e in events if e.digest == layer.digest]
    assert mine[0].status == "checking" and mine[-1].status == "done" and mine[-1].done == layer.size
    ups = [e.done for e in mine if e.status == "uploading"]
    assert len(ups) > 1 and ups == sorted(ups) and ups[-1] == layer.size
    events.clear()
    pull(Store.open(tmp_path / "s2"), f"{plain_registry.host}/progress/app:1", options=plain(plain_registry),
         progress=events.append)
    downs = [e for e in events if e.digest == layer.digest and e.status == "downloading"]
    assert downs and downs[-1].done == layer.size and all(e.action == "pull" for e in events)
