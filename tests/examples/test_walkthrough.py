"""The seed walkthrough builds offline with the emulated executor: node-nginx multi-stage, --target, single-stage
size comparison, a fully cached second build, and Go + scratch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from minibuild.api import build
from minibuild.engine.builder import BuildResult
from tests.engine.engine_support import image_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NODE_NGINX = EXAMPLES / "node-nginx"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mp = pytest.MonkeyPatch()
    mp.setenv("MINIBUILD_FIXTURE_PADDING", "0.02")  # keeps the fixtures' size ratios, builds fast
    yield tmp_path_factory.mktemp("walkthrough") / "store"
    mp.undo()


@pytest.fixture(scope="module")
def multistage(store: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    out = tmp_path_factory.mktemp("out") / "app.tar"
    return build(NODE_NGINX, store=store, tags=("app:latest",), output=out)


def test_final_image_is_nginx_plus_built_files_without_node(store: Path, multistage: BuildResult) -> None:
    fs = image_files(store, multistage)
    html = [p for p in fs if p.startswith("usr/share/nginx/html/")]
    assert "usr/share/nginx/html/index.html" in fs
    assert any(p.startswith("usr/share/nginx/html/assets/") and p.endswith(".js") for p in html)
    assert "etc/nginx/conf.d/default.conf" in fs
    assert not any("node_modules" in p or p.endswith("/node") or p.startswith("app/") for p in fs)
    assert multistage.image.config.cmd == ("nginx", "-g", "daemon off;")
    assert "80/tcp" in multistage.image.config.exposed_ports
    assert Path(multistage.output or "").stat().st_size > 0


def test_target_build_gives_the_builder_image(store: Path) -> None:
    r = build(NODE_NGINX, store=store, target="build")
    fs = image_files(store, r)
    assert "app/dist/index.html" in fs and "app/package.json" in fs
    assert any(p.startswith("app/node_modules/") for p in fs)
    assert r.image.config.working_dir == "/app"
    assert {s.label: s.status for s in r.stages}["stage-1"] == "skipped"


def test_multistage_is_far_smaller_than_single_stage(store: Path, multistage: BuildResult,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    single = build(NODE_NGINX, NODE_NGINX / "Dockerfile.single", store=store)
    with capsys.disabled():
        print(f"\nnode-nginx sizes (fixture padding x0.02): single-stage {single.size:,} bytes, "
              f"multi-stage {multistage.size:,} bytes")
    assert multistage.size * 3 < single.size


def test_second_build_is_fully_cached(store: Path, multistage: BuildResult) -> None:
    again = build(NODE_NGINX, store=store, tags=("app:latest",))
    assert again.cached and again.digest == multistage.digest
    assert all(s.status == "cached" for s in again.stages)


def test_build_arg_node_version(store: Path) -> None:
    r = build(NODE_NGINX, store=store, target="build", build_args={"NODE_VERSION": "20"})
    assert "NODE_VERSION=20.18.0" in r.image.config.env


def test_go_scratch(store: Path) -> None:
    r = build(EXAMPLES / "go-scratch", store=store)
    fs = image_files(store, r)
    assert set(fs) == {"app"} and fs["app"][0] == "file" and fs["app"][1] & 0o111
    assert r.image.config.entrypoint == ("/app",)
