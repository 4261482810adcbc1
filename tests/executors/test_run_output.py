"""A RUN's output as BuildKit's progress shows it: live ``#N 0.123 line`` in plain mode, ``log`` events in json, the
last lines under a running step in the tty view, the tail of both streams in a failure, bounded memory; a cached
step shows none. Under both executors (chroot: root, Linux)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minibuild.api import build
from minibuild.executors.executor import EmulateExecutor, RunRequest
from minibuild.executors.select import get_executor
from minibuild.executors.runlog import InterleavedTail, LogStream, Splitter, log_seconds, tail_lines
from minibuild.cli.progress import Plain, Tty
from minibuild.errors import ExecutorError
from minibuild.limits import RunLimits
from tests.engine.engine_support import write_context
from tests.support import require, require_root

PATH = (("PATH", "/usr/bin:/bin"),)
LOG_LINE = re.compile(r"^#(\d+) (\d+\.\d{3}) (.*)$")  # BuildKit below 10 s: three decimals


def _chroot_ok() -> None:
    require_root()
    from minibuild.executors.chroot import platform_problem

    require(sys.platform.startswith("linux") and platform_problem() is None,
            f"chroot executor unavailable: {platform_problem()}")


@pytest.fixture(params=["emulate", "chroot"])
def executor(request: pytest.FixtureRequest) -> str:
    if request.param == "chroot":
        _chroot_ok()
    return str(request.param)


@pytest.fixture()
def ctx(tmp_path: Path, busybox_rootfs: Path) -> Path:
    """A context holding a real busybox root, built ``FROM scratch`` + ``COPY root/ /`` (both executors run it)."""
    shutil.copytree(busybox_rootfs, tmp_path / "ctx" / "root", symlinks=True)
    return tmp_path / "ctx"


@pytest.fixture()
def root(busybox_rootfs: Path) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="mb-runout-", dir="/tmp"))
    os.chmod(base, 0o755)
    shutil.copytree(busybox_rootfs, base / "root", symlinks=True)
    os.chmod(base / "root", 0o755)
    yield base / "root"
    shutil.rmtree(base, ignore_errors=True)


def df(run: str) -> str:
    return f"FROM scratch\nCOPY root/ /\nRUN {run}\n"


# Two pipes (chroot) carry no order between them: the reader sees what is in each when it wakes. A pause lets it
# drain one write before the next, so the order is the order produced; the emulated shell is exact without it.
GAP = {"emulate": "", "chroot": " sleep 0.3;"}


def plain_build(ctx: Path, store: Path, dockerfile: str, executor: str, **kw: Any) -> str:
    out = io.StringIO()
    build(ctx, dockerfile_text=dockerfile, store=store, executor=executor, progress=Plain(out), **kw)
    return out.getvalue()


def logs_of(text: str, n: int) -> list[str]:
    return [m.group(3) for line in text.splitlines() if (m := LOG_LINE.match(line)) and int(m.group(1)) == n]


# --------------------------------------------------------------------------------------------- plain progress

def test_plain_shows_a_successful_runs_output_between_header_and_done(ctx: Path, tmp_path: Path,
                                                                     executor: str) -> None:
    run = f"echo a;{GAP[executor]} echo b >&2;{GAP[executor]} echo c"
    text = plain_build(ctx, tmp_path / "s", df(run), executor)
    lines = text.splitlines()
    start, done = lines.index(f"#3 [3/3] RUN {run}"), next(i for i, l in enumerate(lines) if l.startswith("#3 DONE "))
    block = lines[start + 1:done]
    assert [LOG_LINE.match(line).group(3) for line in block] == ["a", "b", "c"]  # type: ignore[union-attr]
    stamps = [float(LOG_LINE.match(line).group(2)) for line in block]  # type: ignore[union-attr]
    assert stamps == sorted(stamps) and 0 <= stamps[0] < 10
    if executor == "chroot":
        assert stamps[2] - stamps[0] >= 0.5  # seconds since the command started, as each line was read


def test_interleaving_of_stdout_and_stderr_is_the_order_produced(root: Path, executor: str) -> None:
    chunks: list[tuple[int, bytes]] = []
    script = f"echo a;{GAP[executor]} echo b >&2;{GAP[executor]} echo c"
    res = get_executor(executor).run(RunRequest(root=root, argv=("/bin/sh", "-c", script), env=PATH,
                                                on_output=lambda s, d: chunks.append((s, d))))
    assert res.exit_code == 0
    assert chunks == [(1, b"a\n"), (2, b"b\n"), (1, b"c\n")]
    assert res.output == ((1, b"a\n"), (2, b"b\n"), (1, b"c\n"))
    assert (res.stdout, res.stderr) == (b"a\nc\n", b"b\n")


def test_emulated_shell_streams_each_write_before_the_script_ends(root: Path) -> None:
    seen: list[tuple[bytes, bool]] = []
    script = "echo first; touch /marker; echo second"
    EmulateExecutor().run(RunRequest(root=root, argv=("/bin/sh", "-c", script), env=PATH,
                                     on_output=lambda s, d: seen.append((d, (root / "marker").exists()))))
    assert seen == [(b"first\n", False), (b"second\n", True)]


def test_partial_last_line_and_continuation_as_buildkit(ctx: Path, tmp_path: Path, executor: str) -> None:
    run = f"printf 'one\\ntw';{GAP[executor]} printf 'o\\nthree'"
    text = plain_build(ctx, tmp_path / "s", df(run), executor)
    assert logs_of(text, 3) == ["one", "two", "three"]  # "tw" + "o" continued on its line, no second prefix
    assert re.search(r"^#3 \d\.\d{3} three\n#3 DONE \d+\.\ds$", text, re.M)  # the last line ended before DONE


def test_cached_step_shows_cached_and_no_output(ctx: Path, tmp_path: Path) -> None:
    dockerfile = df("echo visible; echo output >&2")
    first = plain_build(ctx, tmp_path / "s", dockerfile, "emulate")
    assert logs_of(first, 3) == ["visible", "output"]
    again = plain_build(ctx, tmp_path / "s", dockerfile, "emulate").splitlines()
    assert again[again.index("#3 [3/3] RUN echo visible; echo output >&2") + 1] == "#3 CACHED"
    assert logs_of("\n".join(again), 3) == [] and not any(line.endswith(("visible", "output")) for line in again)


def test_output_is_not_part_of_the_cache_key_or_the_layer(ctx: Path, tmp_path: Path) -> None:
    out, quiet = io.StringIO(), None
    shown = build(ctx, dockerfile_text=df("echo hello > /f; echo printed"), store=tmp_path / "a",
                  progress=Plain(out))
    silent = build(ctx, dockerfile_text=df("echo hello > /f; echo printed"), store=tmp_path / "b", progress=quiet)
    assert "printed" in out.getvalue()
    assert [s.key for s in shown.steps] == [s.key for s in silent.steps] and shown.digest == silent.digest


# --------------------------------------------------------------------------------------------- failures

def test_failure_shows_the_tail_of_both_streams_interleaved(ctx: Path, tmp_path: Path, executor: str) -> None:
    run = f"echo 'FAILED test_x: reason on stdout';{GAP[executor]} echo 'warning on stderr' >&2; exit 3"
    with pytest.raises(ExecutorError) as info:
        build(ctx, dockerfile_text=df(run), store=tmp_path / "s", executor=executor)
    assert info.value.output_tail == "FAILED test_x: reason on stdout\nwarning on stderr"
    assert info.value.stderr_tail == "warning on stderr"
    assert str(info.value).endswith("exit code 3:\nFAILED test_x: reason on stdout\nwarning on stderr")


def test_failure_tail_is_the_last_ten_lines(ctx: Path, tmp_path: Path) -> None:
    run = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo out$i; done; echo last-err >&2; exit 1"
    with pytest.raises(ExecutorError) as info:
        build(ctx, dockerfile_text=df(run), store=tmp_path / "s")
    assert info.value.output_tail.splitlines() == [f"out{i}" for i in range(4, 13)] + ["last-err"]


def test_cli_failure_message_names_the_stdout_reason(ctx: Path, tmp_path: Path) -> None:
    (ctx / "Dockerfile").write_text(df("echo 'make: *** [all] Error 2'; exit 2"))
    res = _mb(tmp_path / "s", "build", "--progress", "plain", str(ctx))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    (i,) = [k for k, line in enumerate(lines) if line.startswith("error: ")]
    assert lines[i].startswith("error: Dockerfile:3: ") and lines[i + 1:] == ["make: *** [all] Error 2"]
    assert re.match(r"#3 \d\.\d{3} make: \*\*\* \[all\] Error 2$", lines[i - 2])  # shown live, before the error
    assert lines[i - 1] == ('#3 ERROR: process "/bin/sh -c echo \'make: *** [all] Error 2\'; exit 2" did not '
                            'complete successfully: exit code: 2')  # BuildKit's line for the failed step


# --------------------------------------------------------------------------------------------- json and quiet

def _mb(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MINIBUILD_FIXTURE_PADDING": "0"}
    return subprocess.run([sys.executable, "-m", "minibuild", "--store", str(store), *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_json_progress_has_typed_log_events(ctx: Path, tmp_path: Path) -> None:
    (ctx / "Dockerfile").write_text(df("echo a; echo b >&2; printf 'c'"))
    # emulate named: its chunks are exactly the writes (a real busybox base would pick chroot under auto, whose
    # pipes may join "a\n" and "c" into one read)
    res = _mb(tmp_path / "s", "build", "--progress", "json", "--executor", "emulate", str(ctx))
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stderr.splitlines()]
    logs = [e for e in events if e["type"] == "log"]
    run_step = next(e for e in events if e["type"] == "step" and e["instruction"].startswith("RUN "))
    assert [(e["stream"], e["data"]) for e in logs] == [(1, "a\n"), (2, "b\n"), (1, "c")]
    for e in logs:
        assert set(e) == {"type", "n", "stage", "vertex", "vertices", "prefix", "stream", "data", "seconds"}
        assert (e["n"], e["vertex"], e["vertices"], e["prefix"], e["stage"]) == (
            run_step["n"], 3, 3, "", run_step["stage"])
        assert isinstance(e["seconds"], float) and 0 <= e["seconds"] < 60
    assert events.index(logs[-1]) < events.index(run_step)  # output comes before the step's end


def test_json_progress_has_a_step_error_event_for_a_failed_run(ctx: Path, tmp_path: Path) -> None:
    (ctx / "Dockerfile").write_text(df("printf 'no newline'; exit 4"))
    res = _mb(tmp_path / "s", "build", "--progress", "json", str(ctx))
    assert res.returncode == 1
    events = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    assert [e["type"] for e in events][-2:] == ["log", "step_error"]
    err = events[-1]
    assert (err["n"], err["vertex"], err["exit_code"]) == (events[-2]["n"], 3, 4)
    assert err["message"] == ('process "/bin/sh -c printf \'no newline\'; exit 4" did not complete successfully: '
                              'exit code: 4')


def test_quiet_prints_only_the_image_id(ctx: Path, tmp_path: Path) -> None:
    (ctx / "Dockerfile").write_text(df("echo should-not-appear; echo nor-this >&2"))
    res = _mb(tmp_path / "s", "build", "-q", str(ctx))
    assert res.returncode == 0, res.stderr
    assert res.stderr == "" and re.fullmatch(r"sha256:[0-9a-f]{64}\n", res.stdout)


# --------------------------------------------------------------------------------------------- big output

BIG = "(head -c 10000000 /dev/zero | tr '\\0' o) & head -c 10000000 /dev/zero | tr '\\0' e >&2; wait; echo; echo end"


def test_chroot_big_output_on_both_pipes_neither_hangs_nor_grows_memory(root: Path) -> None:
    _chroot_ok()
    ex = get_executor("chroot")
    seen = {1: 0, 2: 0}

    def count(stream: int, data: bytes) -> None:
        seen[stream] += len(data)

    ex.run(RunRequest(root=root, argv=("/bin/sh", "-c", "echo warm"), env=PATH))  # imports out of the measure
    cap = 64 << 10
    tracemalloc.start()
    try:
        res = ex.run(RunRequest(root=root, argv=("/bin/sh", "-c", BIG), env=PATH, on_output=count,
                                limits=RunLimits(output_tail=cap, timeout=120)))  # a hang fails at the timeout
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.exit_code == 0
    assert seen == {1: 10_000_000 + 5, 2: 10_000_000}  # every byte went past ("\nend\n" after the o's)
    assert len(res.stdout) == len(res.stderr) == cap and sum(len(d) for _, d in res.output) == cap
    assert res.output[-1] == (1, b"\nend\n") or b"".join(d for _, d in res.output).endswith(b"\nend\n")
    assert peak < 1 << 20  # 20 MB streamed through; what is held stays near the 64 KiB cap


def test_emulated_big_output_keeps_only_the_cap(root: Path) -> None:
    seen = {1: 0, 2: 0}

    def count(stream: int, data: bytes) -> None:
        assert len(data) <= 64 << 10  # passed on in bounded chunks
        seen[stream] += len(data)

    cap = 64 << 10
    res = EmulateExecutor().run(RunRequest(root=root, argv=("/bin/sh", "-c", "head -c 3000000 /dev/zero; "
                                                            "head -c 3000000 /dev/zero >&2; echo end"),
                                           env=PATH, on_output=count, limits=RunLimits(output_tail=cap)))
    assert seen == {1: 3_000_004, 2: 3_000_000}
    assert sum(len(d) for _, d in res.output) == cap and res.output[-1] == (1, b"end\n")


def test_progress_clips_a_streams_output_at_the_log_limit(ctx: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_RUN_LOG_LIMIT", "4K")
    run = "head -c 5000 /dev/zero | tr '\\0' x; echo; echo after-limit; echo err-line >&2"
    out = io.StringIO()
    build(ctx, dockerfile_text=df(run), store=tmp_path / "s", progress=Plain(out))
    logs = logs_of(out.getvalue(), 3)
    assert logs == ["x" * 4096, "[output clipped, log limit 4KiB reached]", "err-line"]  # stderr has its own


# --------------------------------------------------------------------------------------------- pure pieces

def test_interleaved_tail_keeps_order_and_the_last_limit_bytes() -> None:
    t = InterleavedTail(8)
    for stream, data in ((1, b"aaaa"), (2, b"bbbb"), (1, b"cc"), (2, b"")):
        t.write(stream, data)
    assert t.chunks() == ((1, b"aa"), (2, b"bbbb"), (1, b"cc")) and t.total == 10
    t.write(2, b"0123456789")
    assert t.chunks() == ((2, b"23456789"),) and t.size == 8
    assert tail_lines(((1, b"x\n"), (2, b"y\nz"))) == ["x", "y", "z"]


def test_log_stream_clips_once_and_keeps_split_characters_whole() -> None:
    s = LogStream(None)
    assert s.feed("é".encode()[:1]) == "" and s.feed("é".encode()[1:]) == "é"
    c = LogStream(4)
    assert c.feed(b"abc") == "abc"
    assert c.feed(b"def") == "d\n[output clipped, log limit 4B reached]\n" and c.feed(b"more") == ""


def test_splitter_and_timestamps_as_buildkit_prints_them() -> None:
    sp = Splitter()
    assert sp.pieces("a\nb") == [("a", True, True), ("b", True, False)]
    assert sp.pieces("c\n\n") == [("c", False, True), ("", True, True)]
    assert (log_seconds(0.1234), log_seconds(12.5), log_seconds(123.45)) == ("0.123", "12.50", "123.5")


def test_plain_renderer_ends_a_partial_line_before_done() -> None:
    out = io.StringIO()
    p = Plain(out)
    pos = {"stage": "s", "vertex": 2, "vertices": 2, "prefix": "", "index": 1, "total": 1}
    p({"type": "step_start", "n": 2, "instruction": "RUN x", **pos})
    p({"type": "log", "n": 2, "stream": 1, "data": "he", "seconds": 0.0512, **pos})
    p({"type": "log", "n": 2, "stream": 2, "data": "llo\nwor", "seconds": 1.5, **pos})
    p({"type": "log", "n": 2, "stream": 1, "data": "ld", "seconds": 11.0, **pos})
    p({"type": "step", "n": 2, "instruction": "RUN x", "cached": False, "seconds": 12.04, **pos})
    assert out.getvalue() == "#1 [2/2] RUN x\n#1 0.051 hello\n#1 1.500 world\n#1 DONE 12.0s\n"


def test_tty_shows_the_last_lines_of_the_running_step() -> None:
    from tests.cli.test_progress import screen

    out = io.StringIO()
    t = Tty(out, width=60, height=20, tick=0, clock=lambda: 1.0)
    pos = {"stage": "s", "vertex": 2, "vertices": 2, "prefix": "", "index": 1, "total": 1}
    t({"type": "step_start", "n": 2, "instruction": "RUN make", **pos})
    for i in range(9):
        t({"type": "log", "n": 2, "stream": 1, "data": f"line {i}\n", "seconds": 0.1, **pos})
    t({"type": "log", "n": 2, "stream": 2, "data": "\x1b[31mred\x1b[0m\tpart", "seconds": 0.2, **pos})
    shown = screen(out.getvalue())
    assert shown[2:] == [" => => # line 4", " => => # line 5", " => => # line 6", " => => # line 7",
                         " => => # line 8", " => => # red     part"]
    t({"type": "step", "n": 2, "instruction": "RUN make", "cached": False, "seconds": 0.5, **pos})
    assert [line for line in screen(out.getvalue()) if "=> => #" in line] == []  # gone once the step is done


def test_plain_output_is_the_same_for_a_non_root_user() -> None:
    require_root()  # to run the same build as the unprivileged user mbuser
    import pwd

    from tests.cli.support import mb

    require(any(p.pw_name == "mbuser" for p in pwd.getpwall()), "needs the unprivileged user mbuser")
    top = Path(tempfile.mkdtemp(prefix="mb-runout-user-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)
        ctx = write_context(top / "ctx", {"Dockerfile": "FROM busybox\nRUN echo a; echo b >&2; printf c\n"})
        (top / "mine").mkdir()
        os.chown(top / "mine", pwd.getpwnam("mbuser").pw_uid, -1)
        runs = [mb(top / "root-store", "build", "--progress", "plain", str(ctx)),
                mb(top / "mine" / "store", "build", "--progress", "plain", str(ctx), user="mbuser")]
        for p in runs:
            assert p.returncode == 0, p.stderr
        shown = [re.sub(r"(^#\d+ |DONE |Building )\d+\.\d+", r"\1<t>", p.stderr, flags=re.M) for p in runs]
        assert shown[0] == shown[1] and "#2 <t> a\n#2 <t> b\n#2 <t> c\n#2 DONE <t>s\n" in shown[0]
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_tty_keeps_a_failed_steps_last_lines() -> None:
    from tests.cli.test_progress import screen

    out = io.StringIO()
    t = Tty(out, width=60, height=20, tick=0, clock=lambda: 1.0)
    pos = {"stage": "s", "vertex": 2, "vertices": 2, "prefix": "", "index": 1, "total": 1}
    t({"type": "step_start", "n": 2, "instruction": "RUN pytest", **pos})
    t({"type": "log", "n": 2, "stream": 1, "data": "FAILED test_x.py::test_y\n", "seconds": 0.1, **pos})
    t.close(ok=False)
    shown = screen(out.getvalue())
    assert shown[1].startswith(" => ERROR [2/2] RUN pytest") and shown[2] == " => => # FAILED test_x.py::test_y"


def test_tty_keeps_a_huge_or_redrawn_line_small() -> None:
    from minibuild.cli.progress import LogLines

    lines = LogLines(width=100)
    for _ in range(1000):
        lines.feed("y" * 1000)  # 1 MB on one line without a newline
    assert lines.partial == "y" * 100
    lines.feed("\n" + "".join(f"\r{i:3d}% " + "#" * 200 for i in range(101)))  # a progress bar redrawn with \r
    assert lines.lines()[-1].startswith("100% ") and len(lines.partial) <= 100
