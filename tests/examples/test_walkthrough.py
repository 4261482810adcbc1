"""The seed walkthrough builds offline with the emulated executor: node-nginx multi-stage, --target, single-stage
size comparison, a fully cached second build, Go + scratch, and the Java, .NET and Python builder -> runtime pairs."""

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
    # the lesson: about 1 GB single-stage (node + a node_modules tree + sources) against ~40 MB of nginx + dist
    assert multistage.size * 15 < single.size


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


def _run_in(store: Path, result: BuildResult, script: str) -> str:
    """Run ``script`` in the emulated shell over a copy of the built image's root (as `RUN` or `minibuild run` do)."""
    import tempfile

    from minibuild import sh
    from minibuild.store import Store
    from minibuild.view import ImageView

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        ImageView(Store.open(store), result.image).materialize(root)
        env = dict(e.split("=", 1) for e in result.image.config.env)
        res = sh.run_argv(["/bin/sh", "-c", script], root=root, env=env, cwd=result.image.config.working_dir or "/")
        assert res.exit_code == 0, res.stderr
        return res.stdout.decode()


def test_java_pair(store: Path) -> None:
    final = build(EXAMPLES / "java-maven", store=store)
    builder = build(EXAMPLES / "java-maven", store=store, target="build")
    assert "app/app.jar" in image_files(store, final) and "usr/share/maven/bin/mvn" not in image_files(store, final)
    assert final.size * 1.7 < builder.size
    assert _run_in(store, final, "java -jar app.jar") == (
        "Hello from a JRE-only image built by minibuild!\nMaven and the JDK stayed in the build stage.\n")


def test_dotnet_pair(store: Path) -> None:
    final = build(EXAMPLES / "dotnet", store=store)
    builder = build(EXAMPLES / "dotnet", store=store, target="build")
    assert final.size * 3 < builder.size
    assert _run_in(store, final, "dotnet hello.dll").startswith(
        "Hello from an ASP.NET Core runtime image built by minibuild!\n")


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.user"])
def test_python_pair_freeze_in_the_slim_stage(store: Path, dockerfile: str) -> None:
    final = build(EXAMPLES / "python-slim", EXAMPLES / "python-slim" / dockerfile, store=store)
    assert _run_in(store, final, "pip freeze") == "flask==3.0.3\ngunicorn==23.0.0\n"


def test_run_serves_the_built_page_through_the_library_api(store: Path, multistage: BuildResult,
                                                            tmp_path: Path) -> None:
    """The lesson's last step, `docker run -p PORT:80 app`, as minibuild.run.run_image (stopped with ``stop``)."""
    import io
    import socket
    import threading
    import urllib.request

    from minibuild.run import RunOptions, run_image
    from minibuild.view import open_image

    expected = open_image("app:latest", store).read("/usr/share/nginx/html/index.html")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out, err = io.BytesIO(), io.BytesIO()
    stop = threading.Event()
    status: list[int] = []
    t = threading.Thread(target=lambda: status.append(run_image(
        "app:latest", store, RunOptions(publish=(f"{port}:80",)), stdout=out, stderr=err, stop=stop)))
    t.start()
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    body = resp.read()
                break
            except OSError:
                assert t.is_alive(), err.getvalue()
                threading.Event().wait(0.1)
        else:
            pytest.fail(f"no answer: {err.getvalue()!r}")
    finally:
        stop.set()
        t.join(timeout=30)
    assert body == expected and b"<script" in body
    assert status == [0]  # nginx ends as on `docker stop` (SIGTERM): status 0
