"""Bad input: a clear ``Dockerfile:LINE`` error, and nothing half-written in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from minibuild.executors.executor import FakeEffect, FakeExecutor
from minibuild.errors import BuildError, ContextError, ExecutorError, MinibuildError, PlanError
from minibuild.store import Store
from tests.engine.engine_support import run_build, write_context


@pytest.fixture(autouse=True)
def _small_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0")


def _fails(tmp_path: Path, df: str, exc: type[MinibuildError], *needles: str, **kw: object) -> str:
    ctx = write_context(tmp_path / "ctx", {"ok.txt": "ok"})
    with pytest.raises(exc) as info:
        run_build(ctx, tmp_path / "s", df, tags=("never:1",), **kw)  # type: ignore[arg-type]
    msg = str(info.value)
    for n in needles:
        assert n in msg, msg
    store = Store.open(tmp_path / "s")
    assert not any(r.familiar.startswith("never") for r in store.images())
    assert list(store.tmp_dir.iterdir()) == []
    return msg


def test_missing_copy_source(tmp_path: Path) -> None:
    _fails(tmp_path, "FROM scratch\nCOPY ok.txt /\nCOPY missing.txt /x\n", ContextError,
           "Dockerfile:3:", "missing.txt", "not found")


def test_source_outside_context(tmp_path: Path) -> None:
    _fails(tmp_path, "FROM scratch\nCOPY ../etc/passwd /x\n", ContextError, "Dockerfile:2:", "outside the build context")


def test_unknown_image_lists_what_is_available(tmp_path: Path) -> None:
    _fails(tmp_path, "FROM scratch\nRUN x\nFROM nosuchimage:1\n", BuildError, "Dockerfile:3:", "nosuchimage:1",
           "Fixtures: alpine, busybox,", " node, ", "never uses the network")  # names; a fixture's tags when named


def test_unknown_target_stage(tmp_path: Path) -> None:
    _fails(tmp_path, "FROM scratch AS build\n", PlanError, "biuld", "did you mean build?", target="biuld")


def test_bad_chown_user(tmp_path: Path) -> None:
    _fails(tmp_path, "FROM busybox\nCOPY --chown=nosuchuser ok.txt /x\n", ContextError, "Dockerfile:2:",
           "nosuchuser")


def test_from_naming_a_later_stage(tmp_path: Path) -> None:
    _fails(tmp_path, "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\n", PlanError, "Dockerfile:2:",
           "needs to be defined before current stage")


def test_required_variable(tmp_path: Path) -> None:
    _fails(tmp_path, "FROM scratch\nARG V\nWORKDIR ${V:?V must be set}\n", MinibuildError, "Dockerfile:3",
           "V must be set")


def test_failing_run_reports_exit_code_and_stderr_and_writes_no_record(tmp_path: Path) -> None:
    ex = FakeExecutor({"make": FakeEffect(exit_code=2, stderr=b"line1\ncc: error: boom\n",
                                          writes=(("/partial", b"x"),))})
    ctx = write_context(tmp_path / "ctx", {})
    with pytest.raises(ExecutorError) as info:
        run_build(ctx, tmp_path / "s", "FROM scratch\nRUN true\nRUN make\n", executor=ex)
    assert str(info.value).startswith("Dockerfile:3: RUN make failed with exit code 2")
    assert "cc: error: boom" in str(info.value) and info.value.exit_code == 2
    # the failed step left no cache record: a rerun with a fixed command runs it
    ex2 = FakeExecutor()
    r = run_build(ctx, tmp_path / "s", "FROM scratch\nRUN true\nRUN make\n", executor=ex2)
    assert ex2.commands == ("/bin/sh -c make",)
    assert [s.cached for s in r.steps if s.instruction.startswith("RUN")] == [True, False]
