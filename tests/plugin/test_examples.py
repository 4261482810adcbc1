"""The bundled examples' pytest modules (examples/*/test_image.py) pass under the plugin, and broken copies of them
fail with a message that names the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store for every inner session of this module, so the repeated example builds hit the layer cache."""
    return tmp_path_factory.mktemp("examples-store")


@pytest.fixture(autouse=True)
def small_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0.01")


def _run(pytester: pytest.Pytester, store: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", f"--minibuild-store={store}", *args)


@pytest.mark.parametrize(("name", "passed"), [("node-nginx", 7), ("go-scratch", 4), ("java-maven", 5), ("dotnet", 3),
                                              ("python-slim", 3)])
def test_example_module_passes(pytester: pytest.Pytester, shared_store: Path, name: str, passed: int) -> None:
    result = _run(pytester, shared_store, str(EXAMPLES / name / "test_image.py"))
    result.assert_outcomes(passed=passed)


def _broken_copy(pytester: pytest.Pytester, name: str, old: str, new: str) -> Path:
    dest = pytester.path / name
    shutil.copytree(EXAMPLES / name, dest, ignore=shutil.ignore_patterns("__pycache__"))
    module = dest / "test_image.py"
    text = module.read_text()
    assert text.count(old) == 1, old
    module.write_text(text.replace(old, new))
    return module


@pytest.mark.parametrize(("name", "test", "old", "new", "lines"), [
    ("node-nginx", "test_final_image_serves_the_built_app", 'mode="-rw-r--r--"', 'mode="-rw-------"', [
        "E*/usr/share/nginx/html/index.html has the wrong mode:",
        "E*  expected: -rw------- (0o600)",
        "E*  actual:   -rw-r--r-- (0o644)",
    ]),
    ("node-nginx", "test_final_image_is_the_nginx_fixture_with_our_config", 'assert_file(image, "/usr/sbin/nginx"',
     'assert_file(image, "/usr/sbin/ngnix"', [
        "E*/usr/sbin/ngnix: no such file or directory in node-nginx (Dockerfile)",
        "E*nearest paths:",
        "E*  /usr/sbin/nginx",
    ]),
    ("node-nginx", "test_final_image_has_no_node_files", '"/usr/local/lib/node_modules", "/app"',
     '"/usr/local/lib/node_modules", "/usr/share/nginx/html/index.html"', [
         "E*/usr/share/nginx/html/index.html should not exist in node-nginx (Dockerfile), but it is a regular file*"
         "written by layer *: COPY --from=build /app/dist /usr/share/nginx/html",
     ]),
    ("go-scratch", "test_final_image_config", 'entrypoint=["/app"]', 'entrypoint=["/server"]', [
        "E*config of go-scratch (Dockerfile) does not match:",
        'E*  entrypoint is [[]"/app"], expected [[]"/server"]',  # fnmatch: [[] is a literal [
    ]),
    ("go-scratch", "test_target_build_is_the_go_toolchain_image", 'contains="fmt.Println"', 'contains="fmt.Printf"', [
        "E*/src/main.go does not contain 'fmt.Printf'",
        "E*closest line: *fmt.Println*",
    ]),
])
def test_broken_copy_fails_naming_the_problem(pytester: pytest.Pytester, shared_store: Path, name: str, test: str,
                                              old: str, new: str, lines: list[str]) -> None:
    module = _broken_copy(pytester, name, old, new)
    result = _run(pytester, shared_store, f"{module}::{test}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(lines)
