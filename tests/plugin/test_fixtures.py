"""The pytest plugin through pytester: a test file using the fixtures passes, broken expectations fail with the
helpers' messages, each distinct build runs once per session, store options, marker errors, import lightness."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import minibuild.api  # noqa: F401 - imported before the inner sessions so they all share one module object

pytestmark = pytest.mark.usefixtures("small_fixtures")

DOCKERFILE = """\
FROM scratch AS base
COPY --chmod=0640 hello.txt /srv/hello.txt
ENV GREETING=hi

FROM base
COPY etc/ /etc/app/
CMD ["/srv/run"]
"""


@pytest.fixture
def small_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0.01")
    monkeypatch.delenv("MINIBUILD_HOME", raising=False)


def make_context(root: Path, name: str = "app") -> Path:
    ctx = root / name
    (ctx / "etc").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "hello.txt").write_text("hello world\n")
    (ctx / "etc" / "app.conf").write_text("port = 8080\n")
    return ctx


def test_plugin_is_registered_through_the_entry_point() -> None:
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert eps.get("minibuild") == "minibuild.pytest_plugin", (
        "the pytest11 entry point is missing from the installed metadata: reinstall (pip install -e .)")


def test_a_test_file_using_the_fixtures_passes(pytester: pytest.Pytester) -> None:
    make_context(pytester.path)
    pytester.makepyfile(test_app="""
        import pytest
        from minibuild.store import Store
        from minibuild.testing import assert_config, assert_env, assert_file, assert_no_file

        pytestmark = pytest.mark.minibuild("app")

        def test_files(image):
            assert_file(image, "/srv/hello.txt", type="file", mode="-rw-r-----", uid=0, gid=0, contains="hello")
            assert_file(image, "/etc/app/app.conf", contains="port = 8080")
            assert_no_file(image, "/bin/sh")
            assert image.read_text("/srv/hello.txt") == "hello world\\n"

        def test_config(image):
            assert_env(image, GREETING="hi")
            assert_config(image, cmd=["/srv/run"], entrypoint=None, exposed_ports=[])

        def test_build_record(image):
            assert [s.instruction for s in image.steps] == [
                "FROM scratch AS base", "COPY --chmod=0640 hello.txt /srv/hello.txt", "ENV GREETING=hi",
                "FROM base", "COPY etc/ /etc/app/", 'CMD ["/srv/run"]']
            assert [s.index for s in image.stages] == [0, 1]
            assert image.size == image.result.size > 0
            assert [l.instruction for l in image.layers] == [
                "COPY --chmod=0640 hello.txt /srv/hello.txt", "COPY etc/ /etc/app/"]

        @pytest.mark.minibuild("app", target="base")
        def test_target(image):
            assert_file(image, "/srv/hello.txt")
            assert_no_file(image, "/etc/app")
            assert_config(image, cmd=None)

        def test_factory_and_store(minibuild_build, minibuild_store):
            built = minibuild_build("app", target="base")
            assert built.store is minibuild_store and isinstance(minibuild_store, Store)
            assert sorted(built.files) == ["/", "/srv", "/srv/hello.txt"]
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_missing_path_failure_lists_the_nearest_paths(pytester: pytest.Pytester) -> None:
    make_context(pytester.path)
    pytester.makepyfile(test_broken="""
        import pytest
        from minibuild.testing import assert_file

        @pytest.mark.minibuild("app")
        def test_typo(image):
            assert_file(image, "/srv/helo.txt")
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*assert_file(image, \"/srv/helo.txt\")",
        "E*AssertionError: /srv/helo.txt: no such file or directory in app (Dockerfile)",
        "E*nearest paths:",
        "E*  /srv/hello.txt",
        "E*/srv holds: hello.txt",
    ])


def test_wrong_mode_failure_shows_both_modes(pytester: pytest.Pytester) -> None:
    make_context(pytester.path)
    pytester.makepyfile(test_mode="""
        import pytest
        from minibuild.testing import assert_file

        @pytest.mark.minibuild("app")
        def test_mode(image):
            assert_file(image, "/srv/hello.txt", mode=0o644)
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "E*AssertionError: /srv/hello.txt has the wrong mode:",
        "E*  expected: -rw-r--r-- (0o644)",
        "E*  actual:   -rw-r----- (0o640)",
    ])


def _counting_conftest(calls_file: Path) -> str:
    """An inner conftest counting calls of minibuild.api.build (independently of the plugin's own bookkeeping)."""
    return f"""
        import json
        import minibuild.api as api

        CALLS = []
        _real = api.build

        def _counting(context, dockerfile=None, **kw):
            CALLS.append([str(context), str(dockerfile), kw.get("target")])
            return _real(context, dockerfile, **kw)

        def pytest_configure(config):
            api.build = _counting

        def pytest_unconfigure(config):
            api.build = _real
            open({str(calls_file)!r}, "w").write(json.dumps(CALLS))
    """


def test_each_distinct_build_runs_once_per_session(pytester: pytest.Pytester, tmp_path: Path) -> None:
    ctx = make_context(pytester.path)
    calls_file = tmp_path / "calls.json"
    pytester.makeconftest(_counting_conftest(calls_file))
    pytester.makepyfile(test_twice=f"""
        import pytest

        SEEN = []

        @pytest.mark.minibuild("app")
        def test_one(image):
            SEEN.append(image)

        def test_two_same_request_spelled_differently(minibuild_build):
            built = minibuild_build({str(ctx)!r}, dockerfile="Dockerfile", build_args={{}})
            assert built is SEEN[0]

        @pytest.mark.minibuild(context="app")
        def test_three(image):
            assert image is SEEN[0]

        @pytest.mark.minibuild("app", target="base")
        def test_other_target_is_another_build(image):
            assert image is not SEEN[0]
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    calls = json.loads(calls_file.read_text())
    assert calls == [[str(ctx), str(ctx / "Dockerfile"), None], [str(ctx), str(ctx / "Dockerfile"), "base"]]
    result.stdout.fnmatch_lines(["minibuild: 2 image build(s), * steps (* cached)"])


def test_a_failed_build_fails_every_test_that_asks_and_runs_once(pytester: pytest.Pytester, tmp_path: Path) -> None:
    ctx = pytester.mkdir("broken")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY nothere.txt /x\n")
    calls_file = tmp_path / "calls.json"
    pytester.makeconftest(_counting_conftest(calls_file))
    pytester.makepyfile(test_broken="""
        import pytest

        pytestmark = pytest.mark.minibuild("broken")

        def test_one(image):
            pass

        def test_two(image):
            pass
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([
        "minibuild could not build broken (Dockerfile):",
        "Dockerfile:2: COPY failed: file not found in build context*nothere.txt",
    ])
    assert len(json.loads(calls_file.read_text())) == 1


def test_image_fixture_without_marker_says_what_to_add(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nomark="""
        import pytest

        def test_needs_marker(image):
            pass

        @pytest.mark.minibuild("app", dockerfle="x")
        def test_bad_marker(image):
            pass

        @pytest.mark.minibuild("app", tagret="build")
        def test_misspelt_target(image):
            pass

        @pytest.mark.minibuild("app", colour="red")
        def test_unknown(image):
            pass
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=4)
    takes = "the marker takes context, dockerfile, target, build_args, executor, allow"
    result.stdout.fnmatch_lines([
        "*test_needs_marker: the `image` fixture needs a @pytest.mark.minibuild(context=*",
        "*test_bad_marker: bad @pytest.mark.minibuild arguments: unknown argument 'dockerfle' "
        f"(did you mean dockerfile?); {takes}",
        "*test_misspelt_target: bad @pytest.mark.minibuild arguments: unknown argument 'tagret' "
        f"(did you mean target?); {takes}",
        f"*test_unknown: bad @pytest.mark.minibuild arguments: unknown argument 'colour'; {takes}",
    ])


def _store_probe(pytester: pytest.Pytester, out: Path) -> None:
    pytester.makepyfile(test_probe=f"""
        import json
        import pytest

        @pytest.mark.minibuild("app")
        def test_probe(image, minibuild_store):
            with open({str(out)!r}, "w") as fh:
                json.dump({{"root": str(minibuild_store.root), "cached": [s.cached for s in image.steps]}}, fh)
    """)


def test_default_store_is_temporary_and_removed(pytester: pytest.Pytester, tmp_path: Path) -> None:
    make_context(pytester.path)
    out = tmp_path / "probe.json"
    _store_probe(pytester, out)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    root = Path(json.loads(out.read_text())["root"])
    assert root.name.startswith("minibuild-store")
    assert not root.exists()


def test_minibuild_store_option_keeps_a_store_whose_cache_the_next_run_uses(pytester: pytest.Pytester,
                                                                            tmp_path: Path) -> None:
    make_context(pytester.path)
    out = tmp_path / "probe.json"
    store = tmp_path / "shared-store"
    _store_probe(pytester, out)
    pytester.runpytest("-p", "no:cacheprovider", f"--minibuild-store={store}").assert_outcomes(passed=1)
    first = json.loads(out.read_text())
    assert first["root"] == str(store) and store.is_dir()
    assert first["cached"] == [True, False, False, True, False, False]  # FROM scratch / FROM base: no work
    pytester.runpytest("-p", "no:cacheprovider", f"--minibuild-store={store}").assert_outcomes(passed=1)
    assert json.loads(out.read_text())["cached"] == [True] * 6


def test_ini_shared_uses_minibuild_home(pytester: pytest.Pytester, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    make_context(pytester.path)
    out = tmp_path / "probe.json"
    home = tmp_path / "home"
    monkeypatch.setenv("MINIBUILD_HOME", str(home))
    pytester.makeini("[pytest]\nminibuild_store = shared\n")
    _store_probe(pytester, out)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert json.loads(out.read_text())["root"] == str(home)
    assert home.is_dir()


def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nminibuild_store = sometimes\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option minibuild_store = 'sometimes': use 'temp'*or*'shared'*"])


def test_plugin_does_not_import_the_builder_until_a_fixture_is_used(pytester: pytest.Pytester) -> None:
    """In a fresh interpreter: the plugin is loaded (entry point) but minibuild.api is imported only on use."""
    pytester.makeconftest("""
        import sys

        def pytest_sessionfinish(session):
            loaded = [m for m in ("minibuild.api", "minibuild.engine.builder") if m in sys.modules]
            print("PLUGIN", session.config.pluginmanager.has_plugin("minibuild"), "BUILDER", loaded)
    """)
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*PLUGIN True BUILDER []"])


def test_importing_the_plugin_module_is_light() -> None:
    import subprocess

    code = ("import sys, minibuild.pytest_plugin; "
            "print(sorted(m for m in sys.modules if m in ('minibuild.api', 'minibuild.engine.builder', "
            "'minibuild.dockerfile', 'minibuild.sh', 'minibuild.executors.executor', 'minibuild.view', "
            "'minibuild.store', 'minibuild.oci')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
