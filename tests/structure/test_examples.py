"""The bundled examples' structure-test files pass against the built images; broken copies fail naming the problem;
`minibuild test` end to end (tarball, --build, reports, exit codes); command tests with real busybox via chroot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import minibuild
from minibuild.cli import cli
from minibuild.oci.archive import save_image_tar
from minibuild.store import Store
from minibuild.structure import parse_config, run_structure_tests
from minibuild.view import ImageView
from tests.support import require_root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module", autouse=True)
def small_fixtures() -> Iterator[None]:
    """The structure tests say nothing about sizes: small fixture padding keeps the five example builds quick."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MINIBUILD_FIXTURE_PADDING", "0.01")
    yield
    mp.undo()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, small_fixtures: None) -> dict[str, ImageView]:
    from minibuild import api

    store = Store.open(tmp_path_factory.mktemp("ex") / "store")
    out = {}
    for name in ("node-nginx", "go-scratch", "java-maven", "dotnet", "python-slim"):
        result = api.build(EXAMPLES / name, store=store, executor="emulate", tags=(f"example/{name}:test",))
        out[name] = ImageView(store, result.image)
    return out


def _run(view: ImageView, text: str):  # type: ignore[no-untyped-def]
    return run_structure_tests(view, [parse_config(text, filename="structure-test.yaml")])


@pytest.mark.parametrize("name", ["node-nginx", "go-scratch", "java-maven", "dotnet", "python-slim"])
def test_example_structure_tests_pass(built: dict[str, ImageView], name: str) -> None:
    summary = _run(built[name], (EXAMPLES / name / "structure-test.yaml").read_text())
    assert summary.ok, [(r.name, r.errors) for r in summary.results if not r.passed]
    assert summary.total >= 4


@pytest.mark.parametrize(("name", "old", "new", "message"), [
    ("node-nginx", "listen\\s+80;", "listen\\s+8080;", "Expected string 'listen\\s+8080;' not found"),
    ("node-nginx", "exposedPorts: ['80']", "exposedPorts: ['8080']", "Port 8080 not found in config"),
    ("node-nginx", "path: /app/src\n    shouldExist: false", "path: /etc/nginx/conf.d/default.conf\n    shouldExist: false",
     "File /etc/nginx/conf.d/default.conf should not exist but does"),
    ("node-nginx", "expectedOutput: ['^1\\n']", "expectedOutput: ['^2\\n']", "Expected string '^2\\n' not found in output"),
    ("go-scratch", "entrypoint: ['/app']", "entrypoint: ['/server']",
     "Image config entrypoint [/app] does not match expected value: [/server]"),
    ("go-scratch", "permissions: '-rwxr-xr-x'", "permissions: '-rwx------'",
     "/app has incorrect permissions. Expected: -rwx------, Actual: -rwxr-xr-x"),
    ("java-maven", "expectedOutput: ['^Hello from a JRE-only", "expectedOutput: ['^Hello from a JDK",
     "Expected string '^Hello from a JDK"),
    ("dotnet", "path: /usr/share/dotnet/sdk\n    shouldExist: false", "path: /app/hello.pdb\n    shouldExist: false",
     "File /app/hello.pdb should not exist but does"),
    ("python-slim", "expectedOutput: ['flask==3\\.0\\.3", "expectedOutput: ['django==5",
     "Expected string 'django==5"),
])
def test_broken_copies_fail_naming_the_problem(built: dict[str, ImageView], name: str, old: str, new: str,
                                               message: str) -> None:
    text = (EXAMPLES / name / "structure-test.yaml").read_text()
    assert old in text
    summary = _run(built[name], text.replace(old, new))
    assert not summary.ok
    errors = [e for r in summary.results for e in r.errors]
    assert any(message in e for e in errors), errors


def test_cli_on_tarball_reports_and_exit_codes(built: dict[str, ImageView], tmp_path: Path) -> None:
    view = built["go-scratch"]
    tar = tmp_path / "go.tar"
    save_image_tar(view.store.blobs, view.image, ["example/go-scratch:test"], tar)
    good = EXAMPLES / "go-scratch" / "structure-test.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("entrypoint: ['/app']", "entrypoint: ['/server']"))
    runner = CliRunner()
    ok = runner.invoke(cli, ["--store", str(tmp_path / "s"), "test", str(tar), "--config", str(good)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.rstrip().endswith("PASS")
    report = tmp_path / "report.xml"
    fail = runner.invoke(cli, ["--store", str(tmp_path / "s"), "test", str(tar), "-c", str(good), "-c", str(bad),
                               "-o", "junit", "--test-report", str(report)])
    assert fail.exit_code == 1
    xml = report.read_text()
    assert 'failures="1"' in xml and "does not match expected value: [/server]" in xml


def test_cli_build_option(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["--store", str(tmp_path / "s"), "test", "--build", str(EXAMPLES / "go-scratch"),
                              "-c", str(EXAMPLES / "go-scratch" / "structure-test.yaml"), "-o", "json"])
    assert res.exit_code == 0, res.output
    assert '"Fail":0' in res.output.splitlines()[-1]


def test_cli_needs_image_or_build(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "test", "-c", "x.yaml"])
    assert res.exit_code != 0


def test_busybox_commands_via_chroot(busybox_image: Path, tmp_path: Path) -> None:
    require_root()
    view = minibuild.load(busybox_image)
    cfg = parse_config("""schemaVersion: 2.0.0
commandTests:
- name: real busybox echo
  command: /bin/busybox
  args: [echo, hi]
  expectedOutput: ['^hi\\n$']
  exitCode: 0
- name: id from the real binary via PATH
  command: id
  args: [-u]
  expectedOutput: ['^0\\n$']
- name: failing command
  command: sh
  args: ['-c', 'echo boom >&2; exit 7']
  expectedError: [boom]
  exitCode: 7
- name: missing binary
  command: /no/such/binary
  exitCode: 0
fileExistenceTests:
- name: busybox
  path: /bin/busybox
  isExecutableBy: any
""", filename="bb.yaml")
    summary = run_structure_tests(view, [cfg], executor="chroot")
    verdicts = {r.name: r for r in summary.results}
    for name in ("real busybox echo", "id from the real binary via PATH", "failing command"):
        assert verdicts[f"Command Test: {name}"].passed, verdicts[f"Command Test: {name}"]
    assert not verdicts["Command Test: missing binary"].passed
    assert verdicts["File Existence Test: busybox"].passed
