"""Fixture base images: every tag loads with a valid config, padding is deterministic and switchable, and the
stand-in tools run in the emulated shell as the docs say."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from minibuild import fixtures
from minibuild.errors import ConfigError
from minibuild.fixtures import find_fixture, fixture_names, list_fixtures, normalize_name
from minibuild.fixtures_padding import Padding, content, padding_scale, parse_size

REPO = Path(__file__).resolve().parent.parent
REQUIRED = (
    "node:22", "node:20", "node:18", "node:lts", "node:latest", "node:22-alpine", "node:alpine", "node:22-slim",
    "nginx:latest", "nginx:alpine", "nginx:stable", "nginx:stable-alpine",
    "golang:1.22", "golang:1.22-alpine", "golang:latest",
    "alpine:3.19", "alpine:3.20", "alpine:latest",
    "python:3.11", "python:3.11-slim", "python:3.12", "python:slim", "python:latest",
    "busybox:latest",
    "maven:3.9", "maven:3.9-eclipse-temurin-21", "maven:3.9-eclipse-temurin-17", "openjdk:21-jre", "openjdk:21-jdk",
    "eclipse-temurin:21-jre", "eclipse-temurin:21-jdk", "eclipse-temurin:21-jre-alpine",
    "mcr.microsoft.com/dotnet/sdk:8.0", "mcr.microsoft.com/dotnet/aspnet:8.0", "mcr.microsoft.com/dotnet/runtime:8.0",
)


@pytest.fixture(autouse=True)
def _no_padding_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0")
    monkeypatch.delenv("MINIBUILD_FIXTURES_DIR", raising=False)


def test_names_and_required_tags() -> None:
    assert fixture_names() == ("alpine", "busybox", "dotnet-aspnet", "dotnet-runtime", "dotnet-sdk", "eclipse-temurin",
                               "golang", "maven", "nginx", "node", "openjdk", "python")
    tags = set(list_fixtures())
    missing = [t for t in REQUIRED if t not in tags]
    assert not missing


@pytest.mark.parametrize("ref", list_fixtures())
def test_every_tag_resolves_with_a_valid_config(ref: str) -> None:
    name, tag = ref.rsplit(":", 1)
    fx = find_fixture(name, tag)
    assert fx is not None and fx.reference == ref
    env = dict(e.split("=", 1) for e in fx.config["Env"])
    assert env["PATH"].startswith("/")
    assert "Cmd" in fx.config or "Entrypoint" in fx.config
    for key in ("Cmd", "Entrypoint"):
        assert all(isinstance(a, str) for a in fx.config.get(key, []))
    assert "stand-in" in fx.teaching_note
    paths = {f.path for f in fx.files()}
    required_paths = ["etc/passwd", "etc/group", "tmp", "bin/sh" if "bin/sh" in paths else "usr/bin/sh"]
    if name != "busybox":  # the real busybox image has no os-release either
        required_paths.append("etc/os-release")
    for required in required_paths:
        assert required in paths, f"{ref} lacks /{required}"
    assert fx.fingerprint.startswith("sha256:")


def test_configs_match_the_real_images() -> None:
    node, nginx, golang = find_fixture("node", "20"), find_fixture("nginx", "alpine"), find_fixture("golang", "1.22")
    assert node and nginx and golang
    assert "NODE_VERSION=20.18.0" in node.config["Env"] and node.config["Cmd"] == ["node"]
    assert node.config["Entrypoint"] == ["docker-entrypoint.sh"]
    assert nginx.config["Cmd"] == ["nginx", "-g", "daemon off;"] and nginx.config["ExposedPorts"] == {"80/tcp": {}}
    assert nginx.config["StopSignal"] == "SIGQUIT"
    assert golang.config["WorkingDir"] == "/go" and "GOLANG_VERSION=1.22.9" in golang.config["Env"]
    alpine_node = find_fixture("node", "22-alpine")
    assert alpine_node is not None
    osrel = next(f for f in alpine_node.files() if f.path == "etc/os-release")
    assert osrel.source is not None and "ID=alpine" in osrel.source.read_text()
    old = find_fixture("alpine", "3.19")
    assert old is not None and next(f.data for f in old.files() if f.path == "etc/alpine-release") == b"3.19.4\n"


def test_lookup_spellings_and_misses() -> None:
    assert normalize_name("docker.io/library/Node") == "node"
    fx = find_fixture("docker.io/library/nginx", "")
    assert fx is not None and fx.reference == "nginx:latest"
    assert find_fixture("node", "99") is None
    assert find_fixture("nosuchimage", "latest") is None
    assert find_fixture("_shared", "latest") is None
    assert find_fixture("ghcr.io/someone/node", "22") is None


def test_owners_modes_and_links() -> None:
    fx = find_fixture("node", "22")
    assert fx is not None
    files = {f.path: f for f in fx.files()}
    assert files["tmp"].mode == 0o1777 and files["root"].mode == 0o700
    assert (files["home/node"].uid, files["home/node"].gid) == (1000, 1000)
    assert files["usr/local/bin/npm"].mode == 0o755 and files["etc/passwd"].mode == 0o644
    assert files["bin"].type == "symlink" and files["bin"].linkname == "usr/bin"
    assert files["usr/local/bin/npx"].linkname == "npm"
    assert "node:x:1000:1000" in (files["etc/passwd"].source or Path("/")).read_text()


# --------------------------------------------------------------------------- padding


def test_padding_scale_values() -> None:
    assert padding_scale({}) == 1.0
    assert padding_scale({"MINIBUILD_FIXTURE_PADDING": "off"}) == 0.0
    assert padding_scale({"MINIBUILD_FIXTURE_PADDING": "0.25"}) == 0.25
    for bad in ("2", "-1", "lots"):
        with pytest.raises(ConfigError, match="MINIBUILD_FIXTURE_PADDING"):
            padding_scale({"MINIBUILD_FIXTURE_PADDING": bad})


def test_parse_size() -> None:
    assert parse_size("340M") == 340 << 20
    assert parse_size("1.5GiB") == 3 << 29
    assert parse_size("512K") == 512 << 10
    assert parse_size(77) == 77
    with pytest.raises(ConfigError):
        parse_size("big")


def test_padding_parts_cover_the_size() -> None:
    pad = Padding(dir="x/", size=10_000_001, files=3, seed="s")
    parts = pad.parts()
    assert [p for p, _ in parts] == ["x/part-000.bin", "x/part-001.bin", "x/part-002.bin"]
    assert sum(n for _, n in parts) == 10_000_001
    assert Padding(dir="x", size=0, files=3, seed="s").parts() == ()


def test_padding_content_is_deterministic_and_seeded() -> None:
    a = content("node:x", 200_000)
    assert len(a) == 200_000 and a == content("node:x", 200_000)
    assert a != content("node:y", 200_000)
    import zlib

    ratio = len(zlib.compress(a, 6)) / len(a)
    assert 0.3 < ratio < 0.7  # compresses roughly like binaries and bundles, not to nothing


def test_padding_disabled_by_env_var() -> None:
    fx = find_fixture("node", "22")
    assert fx is not None and fx.padding[0].size == 0
    assert not any(".minibuild-padding" in f.path for f in fx.files())
    assert fx.size < 100_000


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(f"{os.path.relpath(p, root)} {st.st_mode:o} {st.st_uid} {st.st_mtime_ns}".encode())
            if os.path.isfile(p) and not os.path.islink(p):
                h.update(Path(p).read_bytes())
            elif os.path.islink(p):
                h.update(os.readlink(p).encode())
    return h.hexdigest()


def test_scaled_padding_is_deterministic_and_keeps_the_ratio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0.01")
    monkeypatch.setenv("MINIBUILD_HOME", str(tmp_path / "home"))
    node, nginx = find_fixture("node", "22"), find_fixture("nginx", "alpine")
    assert node is not None and nginx is not None
    assert node.size > 3_000_000 and node.size > 5 * nginx.size
    node.materialize(tmp_path / "a")
    shutil.rmtree(tmp_path / "home")  # regenerate the padding cache from scratch
    node.materialize(tmp_path / "b")
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    assert (tmp_path / "a" / "usr/local/lib/.minibuild-padding/part-000.bin").stat().st_size > 30_000
    assert (tmp_path / "a" / "etc/passwd").stat().st_mtime == node.created


def test_entries_feed_a_deterministic_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tarlayer = pytest.importorskip("minibuild.store.tarlayer", reason="B1's layer writer is not in this tree")
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0.01")
    fx = find_fixture("alpine", "latest")
    assert fx is not None
    digests = []
    for i in range(2):
        with open(tmp_path / f"l{i}.tar", "wb") as out:
            info = tarlayer.write_layer(fx.entries(padding_dir=tmp_path / f"pad{i}"), out)
        digests.append(info.diff_id)
    assert digests[0] == digests[1]
    import tarfile

    with tarfile.open(tmp_path / "l0.tar") as tar:
        names = tar.getnames()
        assert "etc/apk/world" in names and "sbin/apk" in names
        assert tar.getmember("sbin/apk").mode == 0o755
        assert tar.getmember("bin/sh").issym()


# --------------------------------------------------------------------------- broken fixture YAML


def _fixture_dir(base: Path, yaml_text: str) -> None:
    d = base / "demo"
    (d / "root" / "etc").mkdir(parents=True)
    (d / "fixture.yaml").write_text(yaml_text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: demo\nteaching_note: a stand-in\nconfig: {Cmd: sh}\n", "config Cmd has the wrong shape"),
        ("name: demo\nteaching_note: a stand-in\nconfig: {Bogus: 1}\n", "unknown config key 'Bogus'"),
        ("name: demo\nteaching_note: real thing\n", "teaching_note must say"),
        ("name: other\nteaching_note: a stand-in\n", "must equal its directory name"),
        ("name: demo\nteaching_note: a stand-in\nversions: [{tags: [a]}, {tags: [a]}]\n", "tag 'a' is declared twice"),
        ("name: demo\nteaching_note: a stand-in\nlayers: [nope]\n", "layer tree 'nope' does not exist"),
        ("name: demo\nteaching_note: a stand-in\nconfig: {Env: [NOEQUALS]}\n", "config Env has the wrong shape"),
        ("name: demo\nrepository: Mcr.io/Demo\nteaching_note: a stand-in\n", "must be a lowercase image name"),
        ("name: demo\nrepository: other\nteaching_note: a stand-in\n", "must name a registry path"),
        ("name: demo\nteaching_note: a stand-in\nversions: [{tags: [a]}]\n"
         "extra: [{path: x, type: file, source: ../../../etc/passwd}]\n", "is not a file of the fixtures"),
    ],
)
def test_broken_fixture_yaml_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                               message: str) -> None:
    _fixture_dir(tmp_path, text)
    monkeypatch.setenv("MINIBUILD_FIXTURES_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=message):
        find_fixture("demo", "a")


# --------------------------------------------------------------------------- tools in the emulated shell


def _scripts() -> list[Path]:
    out = []
    for p in sorted((REPO / "rootfs_fixtures").rglob("*")):
        if p.is_file() and not p.is_symlink() and p.read_bytes()[:9] == b"#!/bin/sh":
            out.append(p)
    return out


def test_there_are_tool_scripts() -> None:
    names = {p.name for p in _scripts()}
    assert {"npm", "node", "vite", "nginx", "go", "pip", "python3", "apk", "apt-get", "mvn", "java", "javac", "dotnet"} <= names


@pytest.mark.parametrize("script", _scripts(), ids=lambda p: str(p.relative_to(REPO / "rootfs_fixtures")))
def test_tool_script_parses_in_the_emulated_shell(script: Path) -> None:
    parser = pytest.importorskip("minibuild.sh.parser", reason="helper D's emulated shell is not in this tree")
    parser.parse(script.read_text())


@pytest.fixture()
def stage() -> Iterator[object]:
    sh = pytest.importorskip("minibuild.sh", reason="helper D's emulated shell is not in this tree")
    roots: list[Path] = []

    def make(ref: str) -> tuple[Path, object]:
        name, tag = ref.rsplit(":", 1)
        fx = find_fixture(name, tag)
        assert fx is not None
        root = Path(tempfile.mkdtemp(prefix="mb-fixture-"))
        roots.append(root)
        fx.materialize(root)
        env = dict(e.split("=", 1) for e in fx.config["Env"])
        env.setdefault("HOME", "/root")  # as the build sets it for root

        def run(script: str, cwd: str = "/") -> tuple[int, str, str]:
            res = sh.run_argv(["/bin/sh", "-c", script], root=root, env=env, cwd=cwd)
            return res.exit_code, res.stdout.decode(), res.stderr.decode()

        return root, run

    yield make
    for r in roots:
        shutil.rmtree(r, ignore_errors=True)


def test_npm_ci_and_build_make_dist(stage) -> None:  # type: ignore[no-untyped-def]
    root, run = stage("node:22")
    app = root / "app"
    shutil.copytree(REPO / "examples" / "node-nginx", app, ignore=shutil.ignore_patterns("Dockerfile*", "dist"))
    (app / "package-lock.json").unlink()
    code, _, err = run("npm ci", "/app")
    assert code == 1 and "can only install with an existing package-lock.json" in err
    code, out, err = run("npm install && npm run build", "/app")
    assert code == 0, err
    assert "added 4 packages" in out
    assert (app / "package-lock.json").is_file()
    assert (app / "node_modules" / "@vitejs" / "plugin-react" / "package.json").is_file()
    assert (app / "node_modules" / ".bin" / "vite").stat().st_mode & 0o111
    index = (app / "dist" / "index.html").read_text()
    bundles = sorted(p.name for p in (app / "dist" / "assets").iterdir())
    js = [b for b in bundles if b.endswith(".js")]
    assert len(js) == 1 and f'src="/assets/{js[0]}"' in index and "/src/main.jsx" not in index
    assert "logo.svg" in bundles and (app / "dist" / "favicon.svg").is_file()
    assert "export default function App" in (app / "dist" / "assets" / js[0]).read_text()
    code, out, err = run("npm run nosuch", "/app")
    assert code == 1 and 'Missing script: "nosuch"' in err
    assert run("node --version")[1] == "v22.11.0\n"


def test_go_build_writes_a_program(stage) -> None:  # type: ignore[no-untyped-def]
    root, run = stage("golang:1.22")
    shutil.copytree(REPO / "examples" / "go-scratch", root / "src")
    code, _, err = run("go mod download && CGO_ENABLED=0 go build -o /out/app . && /out/app", "/src")
    assert code == 0, err
    assert (root / "out" / "app").stat().st_mode & 0o111
    assert run("/out/app")[1] == ("Hello from a FROM scratch image built by minibuild!\n"
                                  "Only this one file is in the final image.\n")
    assert run("go version")[1] == "go version go1.22.9 linux/amd64\n"
    assert run("go build", "/")[0] == 1  # no go.mod


def test_pip_install_records_packages(stage) -> None:  # type: ignore[no-untyped-def]
    root, run = stage("python:3.11-slim")
    (root / "app").mkdir()
    (root / "app" / "requirements.txt").write_text("# web\nflask==3.0.3\nrequests>=2.31\n\nuvicorn[standard]==0.30.1\n")
    code, out, err = run("pip install --no-cache-dir -r requirements.txt && pip freeze", "/app")
    assert code == 0, err
    site = root / "usr/local/lib/python3.11/site-packages"
    assert (site / "flask-3.0.3.dist-info" / "METADATA").is_file()
    assert "uvicorn==0.30.1" in out and "flask==3.0.3" in out
    assert run("python3 --version")[1] == "Python 3.11.10\n"


def test_apk_and_nginx(stage) -> None:  # type: ignore[no-untyped-def]
    root, run = stage("nginx:alpine")
    code, out, _ = run("apk add --no-cache curl && nginx -t && nginx -g 'daemon off;'")
    assert code == 0
    assert "curl" in (root / "etc/apk/world").read_text().split()
    assert "listen on port(s): 80" in out and "/index.html" in out
    (root / "etc/nginx/nginx.conf").unlink()
    assert run("nginx -t")[0] == 1


def test_registry_repositories_resolve_only_by_their_name() -> None:
    sdk = find_fixture("mcr.microsoft.com/dotnet/sdk", "8.0")
    assert sdk is not None and sdk.reference == "mcr.microsoft.com/dotnet/sdk:8.0"
    assert find_fixture("dotnet-sdk", "8.0") is None  # the directory name is not an image name
    assert find_fixture("mcr.microsoft.com/dotnet/nosuch", "8.0") is None
    assert find_fixture("docker.io/library/maven", "3.9") is not None


def test_builder_images_outweigh_their_runtime_images_as_the_real_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sizes in MB of the real images (as `docker images` prints them, late 2024; approximate), within 15 %."""
    real = {("maven", "3.9"): 500, ("eclipse-temurin", "21-jdk"): 460, ("eclipse-temurin", "21-jre"): 270,
            ("openjdk", "21-jdk"): 450, ("openjdk", "21-jre"): 260, ("mcr.microsoft.com/dotnet/sdk", "8.0"): 860,
            ("mcr.microsoft.com/dotnet/aspnet", "8.0"): 220, ("mcr.microsoft.com/dotnet/runtime", "8.0"): 190}
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "1")
    for (name, tag), mb in real.items():
        fx = find_fixture(name, tag)
        assert fx is not None
        assert abs(fx.size / 1e6 - mb) < 0.15 * mb, (name, tag, fx.size)


def test_mvn_package_and_java_jar(stage) -> None:  # type: ignore[no-untyped-def]
    root, run = stage("maven:3.9")
    shutil.copytree(REPO / "examples" / "java-maven", root / "app")
    code, out, _ = run("mvn -B -q dependency:go-offline", "/app")
    assert (code, out) == (0, "")
    assert (root / "root/.m2/repository/org/junit/jupiter/junit-jupiter/5.11.3/junit-jupiter-5.11.3.pom").is_file()
    assert not (root / "app/target").exists()
    code, out, err = run("mvn -B package -DskipTests", "/app")
    assert code == 0, err
    assert "[INFO] Building jar: /app/target/hello-app-1.0.0.jar" in out and "BUILD SUCCESS" in out
    assert "Tests are skipped." in out
    assert run("java -jar target/hello-app-1.0.0.jar", "/app")[1] == (
        "Hello from a JRE-only image built by minibuild!\nMaven and the JDK stayed in the build stage.\n")
    assert run("java -jar nope.jar")[:3:2] == (1, "Error: Unable to access jarfile nope.jar\n")
    assert run("java -cp target/classes com.example.App", "/app")[1].startswith("Hello from a JRE-only image")
    code, out, _ = run("javac -d /cls src/main/java/com/example/App.java && java -cp /cls com.example.App", "/app")
    assert (code, out.splitlines()[-1]) == (0, "Maven and the JDK stayed in the build stage.")
    assert (root / "cls/com/example/App.class").is_file()
    code, _, err = run("java -cp /cls com.example.Nope")
    assert code == 1 and "Could not find or load main class com.example.Nope" in err
    assert run("mvn package")[0] == 1  # no pom.xml in /
    assert "openjdk version \"21.0.5\"" in run("java -version")[2]


def test_dotnet_restore_publish_and_run(stage) -> None:  # type: ignore[no-untyped-def]
    root, run = stage("mcr.microsoft.com/dotnet/sdk:8.0")
    shutil.copytree(REPO / "examples" / "dotnet", root / "src")
    code, _, err = run("dotnet publish -c Release -o /out --no-restore", "/src")
    assert code == 1 and "NETSDK1004" in err
    code, out, err = run("dotnet restore && dotnet publish -c Release -o /out --no-restore", "/src")
    assert code == 0, err
    assert "Restored /src/hello.csproj" in out
    assert sorted(p.name for p in (root / "out").iterdir()) == [
        "hello", "hello.deps.json", "hello.dll", "hello.pdb", "hello.runtimeconfig.json"]
    assert (root / "root/.nuget/packages/microsoft.extensions.configuration.json/8.0.1").is_dir()
    hello = ("Hello from an ASP.NET Core runtime image built by minibuild!\n"
             "The .NET SDK stayed in the build stage.\n")
    assert run("dotnet /out/hello.dll")[1] == hello
    assert run("/out/hello")[1] == hello
    assert run("dotnet nope.dll")[0] == 145
    assert run("dotnet --version")[1] == "8.0.404\n"
    rt_root, run_rt = stage("mcr.microsoft.com/dotnet/runtime:8.0")
    assert run_rt("dotnet build")[0] == 145  # no SDK in a runtime image
    web = root / "web"
    web.mkdir()
    (web / "web.csproj").write_text('<Project Sdk="Microsoft.NET.Sdk.Web">\n'
                                    '  <PropertyGroup><TargetFramework>net8.0</TargetFramework></PropertyGroup>\n'
                                    '</Project>\n')
    (web / "Program.cs").write_text('var app = WebApplication.CreateBuilder(args).Build();\n'
                                    'app.MapGet("/", () => "Hello World!");\napp.Run();\n')
    (web / "appsettings.json").write_text("{}\n")
    code, _, err = run("dotnet publish -c Release -o /webout -p:UseAppHost=false", "/web")
    assert code == 0, err
    assert sorted(p.name for p in (root / "webout").iterdir()) == [
        "appsettings.json", "web.deps.json", "web.dll", "web.pdb", "web.runtimeconfig.json"]
    assert '"name": "Microsoft.AspNetCore.App"' in (root / "webout/web.runtimeconfig.json").read_text()
    code, out, _ = run("ASPNETCORE_HTTP_PORTS=5000 dotnet /webout/web.dll")
    assert code == 0 and "Now listening on: http://[::]:5000" in out
    shutil.copytree(root / "webout", rt_root / "webout")
    code, _, err = run_rt("dotnet /webout/web.dll")  # a web app needs the aspnet image, not runtime
    assert code == 150 and "Framework: 'Microsoft.AspNetCore.App'" in err


def test_pip_installs_where_pip_does(stage) -> None:  # type: ignore[no-untyped-def]
    root, run = stage("python:3.12")
    (root / "app").mkdir()
    (root / "app" / "requirements.txt").write_text("flask==3.0.3\ngunicorn==23.0.0\n")
    code, _, err = run("pip install --user -r requirements.txt && python -m venv /venv && "
                       "/venv/bin/pip install six==1.16.0 && pip install --target /deps attrs==24.2.0", "/app")
    assert code == 0, err
    user = root / "root/.local/lib/python3.12/site-packages"
    assert (user / "flask-3.0.3.dist-info/METADATA").is_file() and (root / "root/.local/bin/gunicorn").is_file()
    assert (root / "venv/lib/python3.12/site-packages/six-1.16.0.dist-info").is_dir()
    assert (root / "deps/attrs-24.2.0.dist-info").is_dir()
    assert not (root / "usr/local/lib/python3.12/site-packages").exists()
    assert run("pip freeze")[1] == "flask==3.0.3\ngunicorn==23.0.0\n"
    assert run("/venv/bin/pip freeze")[1] == "six==1.16.0\n"
    assert run("PATH=/venv/bin:$PATH pip freeze")[1] == "six==1.16.0\n"
    assert run("/venv/bin/python -m pip freeze")[1] == "six==1.16.0\n"
    assert run(". /venv/bin/activate && pip freeze")[1] == "six==1.16.0\n"
    code, _, err = run("/venv/bin/pip install --user x")
    assert code == 1 and "User site-packages are not visible in this virtualenv" in err


def test_npm_install_weighs_an_installed_tree(stage, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0.01")
    root, run = stage("node:22")
    shutil.copytree(REPO / "examples" / "node-nginx", root / "app", ignore=shutil.ignore_patterns("Dockerfile*"))
    code, _, err = run("npm ci", "/app")
    assert code == 0, err
    part = (root / "usr/local/lib/.minibuild-padding/part-000.bin").stat().st_size
    for dep in ("react", "react-dom", "vite", "@vitejs/plugin-react"):
        files = sorted((root / "app/node_modules" / dep / ".minibuild-padding").iterdir())
        assert len(files) == 36 and files[0].stat().st_size == part
    first = hashlib.sha256((root / "app/node_modules/vite/.minibuild-padding/part-035.bin").read_bytes()).hexdigest()
    run("npm ci", "/app")  # deterministic: the same bytes again
    again = hashlib.sha256((root / "app/node_modules/vite/.minibuild-padding/part-035.bin").read_bytes()).hexdigest()
    assert first == again


def test_mvn_reads_a_parent_pom_with_tabs_comments_and_final_name(stage) -> None:  # type: ignore[no-untyped-def]
    root, run = stage("maven:3.9-eclipse-temurin-21")
    app = root / "app"
    (app / "src/main/java/demo").mkdir(parents=True)
    (app / "pom.xml").write_text(
        "<project>\n\t<parent>\n\t\t<groupId>org.springframework.boot</groupId>\n"
        "\t\t<artifactId>spring-boot-starter-parent</artifactId>\n\t\t<version>3.3.5</version>\n"
        "\t\t<relativePath/> <!-- lookup parent from repository -->\n\t</parent>\n"
        "\t<artifactId>demo</artifactId>\n\t<dependencies>\n\t\t<dependency>\n"
        "\t\t\t<groupId>org.springframework.boot</groupId>\n\t\t\t<artifactId>spring-boot-starter-web</artifactId>\n"
        "\t\t</dependency>\n\t</dependencies>\n\t<build><finalName>app</finalName></build>\n</project>\n")
    (app / "src/main/java/demo/Main.java").write_text(
        'package demo;\npublic class Main {\n  public static void main(String[] a) { System.out.println("up"); }\n}\n')
    code, out, err = run("mvn -q package && java -jar target/app.jar", "/app")
    assert (code, out) == (0, "up\n"), err
    assert "Main-Class: demo.Main" in (app / "target/app.jar").read_text()
    assert (root / "root/.m2/repository/org/springframework/boot/spring-boot-starter-web/3.3.5").is_dir()
