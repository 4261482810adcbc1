"""Shared build cache through a real registry and OCI layout directories; FROM a registry with --pull."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minibuild.api import build
from minibuild.digest import Digest
from minibuild.engine.cachesync import CACHE_ARTIFACT_TYPE, parse_cache_spec
from minibuild.errors import BuildError, ConfigError
from minibuild.registry import RegistryOptions, push_image
from minibuild.store import Store
from tests.registry.conftest import Registry

DOCKERFILE = """\
FROM alpine:3.20 AS build
RUN echo built > /out.txt && echo junk > /junk.txt
FROM alpine:3.20
COPY --from=build /out.txt /app/out.txt
COPY hello.txt /app/
ENV GREETING=hi
RUN cat /app/hello.txt /app/out.txt > /app/both.txt
"""


@pytest.fixture(autouse=True)
def _small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0.02")


def _context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "hello.txt").write_text("hello\n")
    return ctx


def _opts(reg: Registry) -> RegistryOptions:
    return RegistryOptions(insecure_registries=(reg.host,), env={})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minibuild", *args], capture_output=True, text=True, timeout=300)


def _blob_gets(reqs: list[tuple[str, str, int]]) -> list[str]:
    return [m.group(1) for meth, path, _ in reqs if meth == "GET"
            for m in [re.search(r"/blobs/(sha256:[0-9a-f]{64})", path)] if m]


def test_registry_cache_on_empty_store_hits_every_step_and_downloads_only_final_layers(
        plain_registry: Registry, tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    ref = f"{plain_registry.host}/cache/app:main"
    a = build(ctx, store=tmp_path / "a", tags=("app:1",), cache_to=(f"type=registry,ref={ref}",),
              registry_options=_opts(plain_registry))
    assert not all(s.cached for s in a.steps)  # store A really built

    mark = plain_registry.mark()
    b_store = Store.open(tmp_path / "b")
    b = build(ctx, store=b_store, tags=("app:1",), cache_from=(f"type=registry,ref={ref}",),
              registry_options=_opts(plain_registry))
    reqs = plain_registry.requests(since=mark)
    assert b.digest == a.digest  # the same image
    # every step after FROM hits (FROM re-creates the fixture base locally), and says where the hit came from
    after_from = [s for s in b.steps if s.index > 0]
    assert after_from and all(s.cached for s in after_from), [(s.instruction, s.reason) for s in b.steps]
    assert all(s.reason == f"HIT (cache from registry {ref})" for s in after_from)
    # blobs downloaded: the records document + exactly the final stage's layers the store did not have (the
    # store's layers, which B clamps itself to export them: docs/file-times.md)
    manifest = json.loads(b_store.blobs.read_bytes(b.digest))
    final_layers = {layer.digest.value for layer in dict(b.stage_images)[max(dict(b.stage_images))].layers}
    gets = _blob_gets(reqs)
    layer_gets = set(gets) & final_layers
    build_stage_layer = next(s.layer for s in a.steps if s.stage == "build" and s.layer)
    assert build_stage_layer not in gets  # the build stage's layer was never needed
    assert len(gets) == len(set(gets))  # nothing twice
    base = json.loads(b_store.blobs.read_bytes(b.digest))["layers"][0]["digest"]  # made locally from the fixture
    assert layer_gets == final_layers - {base}
    others = set(gets) - final_layers
    assert len(others) == 1  # + the records document (the config blob of the artifact), nothing else
    assert all(b_store.blobs.verify(d) for d in b_store.blobs)
    # the artifact is an OCI manifest with the minibuild cache artifactType
    got = [r for r in reqs if r[0] == "GET" and "/manifests/main" in r[1]]
    assert got and got[0][2] == 200


def test_local_cache_round_trip(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    dest = tmp_path / "cachedir"
    a = build(ctx, store=tmp_path / "a", cache_to=(f"type=local,dest={dest}",))
    index = json.loads((dest / "index.json").read_text())
    assert index["manifests"][0]["artifactType"] == CACHE_ARTIFACT_TYPE
    b_store = Store.open(tmp_path / "b")
    b = build(ctx, store=b_store, cache_from=(f"type=local,src={dest}",))
    assert b.digest == a.digest
    assert all(s.cached for s in b.steps if s.index > 0)
    assert all(s.reason == f"HIT (cache from local {dest})" for s in b.steps if s.index > 0)
    build_stage_layer = next(s.layer for s in a.steps if s.stage == "build" and s.layer)
    assert not b_store.blobs.has(Digest(build_stage_layer))  # lazily: never copied
    assert all(b_store.blobs.verify(d) for d in b_store.blobs)


def test_local_cache_with_a_corrupt_blob_fails_cleanly(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    dest = tmp_path / "cachedir"
    a = build(ctx, store=tmp_path / "a", cache_to=(f"type=local,dest={dest}",))
    last = a.steps[-1].layer
    assert last is not None
    (dest / "blobs" / "sha256" / last.split(":")[1]).write_bytes(b"tampered")
    b_store = Store.open(tmp_path / "b")
    with pytest.raises(Exception, match="does not match"):
        build(ctx, store=b_store, cache_from=(f"type=local,src={dest}",))
    assert not (b_store.root / "blobs" / "sha256" / last.split(":")[1]).exists()


def test_inline_cache_in_a_tarball(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    out = tmp_path / "app.tar"
    a = build(ctx, store=tmp_path / "a", tags=("app:1",), cache_to=("type=inline",), output=out)
    b = build(ctx, store=tmp_path / "b", cache_from=(str(out),))
    final = [s for s in b.steps if s.stage != "build" and s.index > 0]
    assert all(s.cached for s in final), [(s.instruction, s.reason) for s in b.steps]
    assert all(s.reason.startswith("HIT (cache from image ") for s in final)
    assert b.digest != a.digest  # without --cache-to type=inline B's image has no inline records
    # the inline records name the image's layers, the exported ones (mtimes clamped, docs/file-times.md): B's
    # hits bring those, which export as they are
    assert [s.layer for s in b.steps if s.stage != "build" and s.layer] == [
        la.digest.value for la in a.image.layers[1:]]
    assert b.image.layers == a.image.layers


def test_pull_base_image_from_registry(plain_registry: Registry, tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    src = Store.open(tmp_path / "src")
    base = build(ctx, store=src, tags=("base:1",))
    ref = f"{plain_registry.host}/team/base:1"
    push_image(src, "base:1", ref, options=_opts(plain_registry))
    (ctx / "Dockerfile").write_text(f"FROM {ref}\nRUN cat /app/both.txt > /again.txt\n")
    fresh = Store.open(tmp_path / "fresh")
    with pytest.raises(BuildError, match="--pull"):
        build(ctx, store=fresh)
    mark = plain_registry.mark()
    result = build(ctx, store=fresh, pull=True, registry_options=_opts(plain_registry))
    assert plain_registry.requests(since=mark)  # it did go to the registry
    assert result.layers == base.layers + 1
    assert fresh.resolve(ref).digest == base.digest


def test_no_network_without_pull(plain_registry: Registry, tmp_path: Path) -> None:
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {plain_registry.host}/nothing/here:1\n")
    mark = plain_registry.mark()
    res = _cli("--store", str(tmp_path / "s"), "build", str(ctx))
    assert res.returncode == 1
    assert "--pull" in res.stderr
    assert plain_registry.requests(since=mark) == []


def test_cli_cache_flags_and_pull(plain_registry: Registry, tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    ref = f"{plain_registry.host}/cache/cli:main"
    r1 = _cli("--store", str(tmp_path / "a"), "build", "--progress", "plain", "--insecure-registry",
              plain_registry.host, "--cache-to", f"type=registry,ref={ref}", str(ctx))
    assert r1.returncode == 0, r1.stderr
    r2 = _cli("--store", str(tmp_path / "b"), "build", "--progress", "plain", "--explain", "--insecure-registry",
              plain_registry.host, "--cache-from", f"type=registry,ref={ref}", str(ctx))
    assert r2.returncode == 0, r2.stderr
    assert f"HIT (cache from registry {ref})" in r2.stderr
    assert r1.stdout.strip() == r2.stdout.strip()  # the same image digest


@pytest.mark.parametrize("value,export,expected", [
    ("type=registry,ref=h:5000/c:t", False, ("registry", "h:5000/c:t", None)),
    ("type=local,src=/x", False, ("local", "", Path("/x"))),
    ("type=local,dest=/x", True, ("local", "", Path("/x"))),
    ("my-app:latest", False, ("image", "my-app:latest", None)),
    ("type=inline", True, ("inline", "", None)),
])
def test_parse_cache_spec(value: str, export: bool, expected: tuple[str, str, Path | None]) -> None:
    spec = parse_cache_spec(value, export=export)
    assert (spec.type, spec.ref, spec.path) == expected


@pytest.mark.parametrize("value,export", [
    ("type=registry", False), ("type=local,dest=/x", False), ("type=inline", False), ("my-app", True),
    ("type=s3,ref=x", True), ("type=registry,ref=x,bogus=1", True),
])
def test_parse_cache_spec_rejects(value: str, export: bool) -> None:
    with pytest.raises(ConfigError):
        parse_cache_spec(value, export=export)
