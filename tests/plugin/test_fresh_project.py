"""The plugin works in a fresh project that only `pip install`s minibuild: a new venv, a NON-editable install of
this source tree, a tiny Dockerfile and a test module using the fixtures, run with the venv's own pytest.

Needs a package index for pip (setuptools for the build, click/pyyaml/pytest): skipped with the reason when pip
cannot reach one, unless MINIBUILD_REQUIRE_INTEROP=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import require

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "rootfs_fixtures"

PROJECT_TESTS = '''
import re
from pathlib import Path

import pytest

import minibuild
from minibuild.testing import assert_config, assert_env, assert_file, assert_no_file

pytestmark = pytest.mark.minibuild(".")


def test_minibuild_comes_from_the_venv_not_the_checkout():
    assert "site-packages" in minibuild.__file__, minibuild.__file__


def test_files(image):
    assert_file(image, "/usr/local/bin/hello", type="file", mode="-rwxr-xr-x", uid=0, gid=0, contains="echo hello")
    assert_file(image, "/etc/hello/hello.conf", mode=0o644, contains=re.compile(r"greeting\\s*=\\s*hi"))
    assert_no_file(image, "/bin/sh")
    assert sorted(image.files) == ["/", "/etc", "/etc/hello", "/etc/hello/hello.conf", "/usr", "/usr/local",
                                   "/usr/local/bin", "/usr/local/bin/hello"]


def test_config(image):
    assert_env(image, GREETING="hi")
    assert_config(image, entrypoint=["/usr/local/bin/hello"], cmd=None, exposed_ports=["8080"], user="1000")


def test_factory_memoises(image, minibuild_build):
    assert minibuild_build(".") is image
    assert [s.instruction for s in image.steps][0] == "FROM scratch"


def test_a_broken_expectation_names_the_nearest_path(image):
    with pytest.raises(AssertionError) as info:
        assert_file(image, "/usr/local/bin/helo")
    assert "nearest paths:\\n  /usr/local/bin/hello" in str(info.value)
'''

FIXTURE_TESTS = '''
import pytest
from minibuild.testing import assert_file


@pytest.mark.minibuild("alpine-app")
def test_fixture_base_image(image):
    assert_file(image, "/bin/busybox")
    assert_file(image, "/srv/made-by-run", contains="built")
'''


def _clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
                        "VIRTUAL_ENV", "MINIBUILD_FIXTURES_DIR")}
    env["MINIBUILD_HOME"] = str(tmp / "minibuild-home")
    env["MINIBUILD_FIXTURE_PADDING"] = "0.01"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _copy_source(dest: Path) -> Path:
    """What an sdist of this checkout holds for the build (pyproject, README, the package), without caches."""
    src = dest / "minibuild-src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "minibuild", src / "minibuild", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return src


@pytest.mark.interop
def test_plugin_works_in_a_fresh_project(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    py = venv / "bin" / "python"
    # can pip reach an index at all? (the build backend and the dependencies come from one)
    probe = _run([str(py), "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "-q",
                  "setuptools>=61"], cwd=tmp_path, env=env, timeout=300)
    require(probe.returncode == 0, f"pip cannot reach a package index: {probe.stderr.strip()[-300:]}")

    src = _copy_source(tmp_path)
    install = _run([str(py), "-m", "pip", "install", "-q", str(src), "pytest"], cwd=tmp_path, env=env)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-4000:]

    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "hello.sh").write_text("#!/bin/sh\necho hello\n")
    (project / "config" / "hello.conf").write_text("greeting = hi\n")
    (project / "Dockerfile").write_text(textwrap.dedent("""\
        FROM scratch
        COPY --chmod=0755 hello.sh /usr/local/bin/hello
        COPY config/ /etc/hello/
        ENV GREETING=hi
        EXPOSE 8080
        USER 1000
        ENTRYPOINT ["/usr/local/bin/hello"]
        """))
    (project / "test_image.py").write_text(PROJECT_TESTS)

    run = _run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_image.py"], cwd=project, env=env)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    assert re.search(r"\b5 passed in ", out), out[-3000:]  # and no warnings (", 1 warning" would sit between)
    assert "minibuild: 1 image build(s)" in out, out[-3000:]

    # A Dockerfile FROM a fixture base image: a wheel carries no rootfs_fixtures/ (they live beside the package in
    # the checkout), so the installed package finds them only through MINIBUILD_FIXTURES_DIR.
    app = project / "alpine-app"
    app.mkdir()
    (app / "Dockerfile").write_text("FROM alpine:3.20\nRUN mkdir -p /srv && echo built > /srv/made-by-run\n")
    (project / "test_fixture_image.py").write_text(FIXTURE_TESTS)
    with_dir = _run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_fixture_image.py"], cwd=project,
                    env={**env, "MINIBUILD_FIXTURES_DIR": str(FIXTURES)})
    assert with_dir.returncode == 0, (with_dir.stdout + with_dir.stderr)[-6000:]
    assert re.search(r"\b1 passed in ", with_dir.stdout), with_dir.stdout[-3000:]
