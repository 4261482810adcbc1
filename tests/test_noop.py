"""No-op build memos (minibuild.noop): a replay prints exactly what the full build prints, and only when nothing the
build read has changed; anything else runs the build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minibuild import noop
from minibuild.cli import main as cli_main
from tests.engine.engine_support import write_context

DOCKERFILE = "FROM scratch AS build\nCOPY src /src\nFROM scratch\nCOPY --from=build /src/a.txt /a.txt\nCMD [\"x\"]\n"


@pytest.fixture(autouse=True)
def memos_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The suite turns memos off (tests/conftest.py); these tests are about them."""
    monkeypatch.delenv("MINIBUILD_NO_MEMO", raising=False)
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0")
    yield
    noop._entry_argv = None


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(context, store) with the context's files counted as old enough to trust (no racy window in-process)."""
    monkeypatch.setattr(noop, "RACY_NS", -10**12)  # every stamp counts as settled; the e2e test waits instead
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "src/a.txt": "a", "src/b.txt": "b"})
    return ctx, tmp_path / "store"


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the command line in-process as the entry point does (replay first, then click)."""
    code = noop.replay(argv, os.environ)
    if code is None:
        noop._entry_argv = argv
        try:
            cli_main(argv)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            noop._entry_argv = None
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _argv(ctx: Path, store: Path, *extra: str) -> list[str]:
    return ["--store", str(store), "build", str(ctx), "-t", "memo:1", "--progress", "plain", *extra]


def _memos(store: Path) -> list[Path]:
    folder = store / ".minibuild" / "noop"
    return sorted(folder.glob("*.json")) if folder.exists() else []


def _full_build(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """The ordinary build, run as a library caller would (no replay, no memo written)."""
    capsys.readouterr()
    assert cli_main(argv) is None
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_a_fully_cached_build_is_replayed_byte_for_byte(project: tuple[Path, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ctx, store = project
    argv = _argv(ctx, store)
    code, cold_out, cold_err = _cli(argv, capsys)
    assert code == 0 and "DONE" in cold_err
    # the cold build ran, silently, the fully cached build that would come next, and kept its output
    assert len(_memos(store)) == 1
    warm_out, warm_err = _full_build(argv, capsys)
    assert "DONE" not in warm_err and "#2 CACHED" in warm_err and warm_out == cold_out
    assert noop.replay(argv, os.environ) == 0
    replayed = capsys.readouterr()
    assert (replayed.out, replayed.err) == (warm_out, warm_err)
    code, again_out, again_err = _cli(argv, capsys)  # replayed again: the memo is not used up
    assert (code, again_out, again_err) == (0, warm_out, warm_err)


def test_explain_output_is_replayed_too(project: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    ctx, store = project
    argv = _argv(ctx, store, "--explain")
    _cli(argv, capsys)
    warm = _full_build(argv, capsys)
    assert "HIT" in warm[1]
    assert noop.replay(argv, os.environ) == 0
    assert tuple(capsys.readouterr()) == warm


def _meanwhile(monkeypatch: pytest.MonkeyPatch, action: Callable[[], object]) -> list[int]:
    """Run ``action`` right after the second build of the command (the silent cached one) returns."""
    import minibuild.api

    real = minibuild.api.build
    calls: list[int] = []

    def build(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(1)
        if len(calls) == 2:
            action()
        return result

    monkeypatch.setattr(minibuild.api, "build", build)
    return calls


def test_an_input_changed_while_building_leaves_no_memo(project: tuple[Path, Path],
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, store = project
    # after the silent cached build read it, its output no longer describes the context
    calls = _meanwhile(monkeypatch, lambda: (ctx / "src" / "a.txt").write_text("changed while building"))
    _cli(_argv(ctx, store), capsys)
    assert len(calls) == 2 and _memos(store) == []


def test_a_store_changed_under_the_cached_build_leaves_no_memo(project: tuple[Path, Path],
                                                               capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, store = project
    # another process writes a blob while the silent cached build runs
    calls = _meanwhile(monkeypatch, lambda: (store / "blobs" / "sha256" / ("1" * 64)).write_bytes(b"x"))
    _cli(_argv(ctx, store), capsys)
    assert len(calls) == 2 and _memos(store) == []


@pytest.mark.parametrize("change", ["edit", "touch", "add", "remove", "chmod", "dockerfile", "env", "argv",
                                    "tag", "cache-record", "blob", "package", "no-memo", "corrupt-memo"])
def test_any_change_to_what_the_build_read_runs_the_build(project: tuple[Path, Path], change: str,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, store = project
    argv = _argv(ctx, store)
    _cli(argv, capsys)  # the cold build leaves the memo
    assert noop.replay(argv, os.environ) == 0
    capsys.readouterr()
    if change == "edit":
        (ctx / "src" / "b.txt").write_text("c")  # same size
    elif change == "touch":
        os.utime(ctx / "src" / "a.txt", ns=(1, 1))
    elif change == "add":
        (ctx / "src" / "new.txt").write_text("n")
    elif change == "remove":
        (ctx / "src" / "b.txt").unlink()
    elif change == "chmod":
        (ctx / "src" / "a.txt").chmod(0o600)
    elif change == "dockerfile":
        (ctx / "Dockerfile").write_text(DOCKERFILE.replace('"x"', '"y"'))
    elif change == "env":
        monkeypatch.setenv("SOURCE_DATE_EPOCH", "1")
    elif change == "argv":
        argv = [*argv, "--explain"]
    elif change == "tag":
        assert cli_main(["--store", str(store), "tag", "memo:1", "other:1"]) is None
    elif change == "cache-record":
        record = next((store / ".minibuild" / "cache").glob("*.json"))
        record.unlink()
    elif change == "blob":
        (store / "blobs" / "sha256" / ("0" * 64)).write_bytes(b"x")
    elif change == "package":
        monkeypatch.setattr(noop, "package_stamp", lambda: "another minibuild")
    elif change == "no-memo":
        monkeypatch.setenv("MINIBUILD_NO_MEMO", "1")
    elif change == "corrupt-memo":
        _memos(store)[0].write_text("{not json")
    capsys.readouterr()
    assert noop.replay(argv, os.environ) is None


@pytest.mark.parametrize("extra", [("--no-cache",), ("--progress", "json"), ("-o", "OUT"), ("--report", "REPORT")])
def test_builds_that_write_or_run_anything_are_not_memoised(project: tuple[Path, Path], extra: tuple[str, ...],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    ctx, store = project
    extra = tuple(str(ctx.parent / "out.json") if e in ("OUT", "REPORT") else e for e in extra)
    _cli(_argv(ctx, store), capsys)
    for _ in range(2):
        code, _out, err = _cli(_argv(ctx, store, *extra), capsys)
        assert code == 0, err
    assert _memos(store) == [] or all(json.loads(m.read_text())["key"] != noop.request_key(
        _argv(ctx, store, *extra), os.getcwd(), os.environ, noop._ttys()) for m in _memos(store))
    assert noop.replay(_argv(ctx, store, *extra), os.environ) is None


def test_fresh_files_are_not_trusted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "src/a.txt": "a"})
    argv = _argv(ctx, tmp_path / "store")
    _cli(argv, capsys)
    _cli(argv, capsys)  # fully cached, but the context was written a moment ago: a change in the same tick
    assert _memos(tmp_path / "store") == []  # could leave every stamp as it was
    assert noop.replay(argv, os.environ) is None


def test_prune_forgets_memos(project: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    ctx, store = project
    argv = _argv(ctx, store)
    _cli(argv, capsys)  # the cold build leaves the memo
    assert len(_memos(store)) == 1
    assert cli_main(["--store", str(store), "prune"]) is None
    assert _memos(store) == []


def test_the_installed_command_replays_after_the_racy_window(tmp_path: Path) -> None:
    """End to end through ``python -m minibuild``, on a context written two seconds earlier: the cold build leaves
    a memo; the next command replays it, and its stdout and stderr equal those of a full fully cached build."""
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "src/a.txt": "a", "src/b.txt": "b"})
    env = {k: v for k, v in os.environ.items() if k != "MINIBUILD_NO_MEMO"}
    env["MINIBUILD_FIXTURE_PADDING"] = "0"
    argv = [sys.executable, "-m", "minibuild", *_argv(ctx, tmp_path / "store")]

    def run(extra_env: dict[str, str] | None = None) -> tuple[str, str]:
        p = subprocess.run(argv, capture_output=True, text=True, env={**env, **(extra_env or {})}, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout, p.stderr

    time.sleep(noop.RACY_NS / 1e9 + 0.2)
    cold = run()
    assert "DONE" in cold[1]
    memos = _memos(tmp_path / "store")
    assert len(memos) == 1
    stamp = memos[0].stat().st_mtime_ns
    replayed = run()
    assert memos[0].stat().st_mtime_ns == stamp  # read, not rewritten: no build ran
    full = run({"MINIBUILD_NO_MEMO": "1"})
    assert replayed == full and "#2 CACHED" in full[1] and full[0] == cold[0]


def test_a_closed_pipe_during_a_replay_is_an_error_not_a_second_build(project: tuple[Path, Path],
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, store = project
    argv = _argv(ctx, store)
    _cli(argv, capsys)  # the cold build leaves the memo

    class Closed:
        def write(self, _text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stderr", Closed())
    assert noop.replay(argv, os.environ) == 1
