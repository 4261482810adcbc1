"""What the node-nginx Dockerfiles produce, checked with minibuild's pytest plugin: no Docker daemon needed.

Run from anywhere (``pip install minibuild`` registers the plugin):

    MINIBUILD_FIXTURE_PADDING=0.01 pytest examples/node-nginx/test_image.py

The padding setting only shrinks the fixture base images' filler bytes so the builds are quick; every assertion
here holds with or without it.  Each distinct build runs once per session, however many tests ask for it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from minibuild.fixtures_padding import padding_scale
from minibuild.testing import assert_config, assert_env, assert_file, assert_no_file

HERE = Path(__file__).resolve().parent
HTML = "/usr/share/nginx/html"

# the `image` fixture builds this (the multi-stage Dockerfile; its final stage is nginx:alpine)
pytestmark = pytest.mark.minibuild(context=HERE)


def test_final_image_serves_the_built_app(image) -> None:  # type: ignore[no-untyped-def]
    assert_file(image, f"{HTML}/index.html", type="file", mode="-rw-r--r--", uid=0, gid=0,
                contains='<div id="root"></div>')
    assets = image.listdir(f"{HTML}/assets")
    assert any(re.fullmatch(r"index-\w+\.js", name) for name in assets), assets
    assert any(re.fullmatch(r"index-\w+\.css", name) for name in assets), assets


def test_final_image_is_the_nginx_fixture_with_our_config(image) -> None:  # type: ignore[no-untyped-def]
    assert_file(image, "/usr/sbin/nginx", type="file", mode=0o755)
    assert_file(image, "/docker-entrypoint.sh", mode=0o755)
    assert_file(image, "/etc/nginx/conf.d/default.conf", mode=0o644,
                contains=[re.compile(r"listen\s+80;"), "try_files $uri $uri/ /index.html;"])
    assert_env(image, NGINX_VERSION=re.compile(r"^1\.\d+\.\d+$"), NODE_VERSION=None)
    assert_config(image, cmd=["nginx", "-g", "daemon off;"], entrypoint=["/docker-entrypoint.sh"],
                  exposed_ports=[80], workdir="", user="")


def test_final_image_has_no_node_files(image) -> None:  # type: ignore[no-untyped-def]
    for path in ("/usr/local/bin/node", "/usr/local/bin/npm", "/usr/local/lib/node_modules", "/app",
                 f"{HTML}/node_modules", f"{HTML}/src", f"{HTML}/package.json"):
        assert_no_file(image, path)
    assert not [p for p in image.files if "node_modules" in p]


def test_only_dist_crosses_from_the_build_stage(image) -> None:  # type: ignore[no-untyped-def]
    build = next(s for s in image.stages if s.name == "build")
    assert build.kept_by_final == ("COPY --from=build /app/dist /usr/share/nginx/html",)
    last = image.layers[-1]
    assert last.instruction is not None and last.instruction.startswith("COPY --from=build")
    assert f"{HTML}/index.html" in last.added
    assert all(p.startswith(HTML) for p in last.added if p not in ("/usr", "/usr/share", "/usr/share/nginx"))


@pytest.mark.minibuild(context=HERE, target="build")
def test_target_build_is_the_node_builder(image) -> None:  # type: ignore[no-untyped-def]
    assert_file(image, "/usr/local/bin/node", mode=0o755)
    assert_file(image, "/app/node_modules/.bin/vite")
    assert_file(image, "/app/dist/index.html", contains='<div id="root"></div>')
    assert_file(image, "/app/src/App.jsx")
    assert_no_file(image, "/usr/sbin/nginx")
    assert_env(image, NODE_VERSION=re.compile(r"^22\."))
    assert_config(image, workdir="/app")
    nginx_stage = image.stages[-1]
    assert nginx_stage.status == "skipped", nginx_stage


@pytest.mark.minibuild(context=HERE, target="build", build_args={"NODE_VERSION": "20"})
def test_node_version_build_arg_picks_the_base(image) -> None:  # type: ignore[no-untyped-def]
    assert_env(image, NODE_VERSION=re.compile(r"^20\."))


def test_multi_stage_image_is_much_smaller_than_the_single_stage_one(minibuild_build) -> None:  # type: ignore[no-untyped-def]
    if padding_scale() == 0:
        pytest.skip("MINIBUILD_FIXTURE_PADDING=0 removes the fixture images' size padding, so sizes say nothing")
    multi = minibuild_build(HERE)
    single = minibuild_build(HERE, dockerfile="Dockerfile.single")
    assert_file(single, "/usr/local/bin/node")
    assert_file(single, "/app/node_modules", type="dir")
    assert multi.size * 4 < single.size, (multi.size, single.size)
