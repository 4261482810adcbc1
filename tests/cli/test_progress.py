"""`minibuild build` progress: the live view on a terminal (a real pty), plain's total line, -q, unpack events,
RUN flags on the progress line."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tests.engine.engine_support import write_context

ENV = {**os.environ, "MINIBUILD_FIXTURE_PADDING": "0", "TERM": "xterm"}
DF = "FROM busybox\nENV X=1\nRUN echo hi > /hi\nCOPY a.txt /a.txt\n"


# the unpacking lines show when a root is extracted (a compressed base, the chroot executor): here, forced
EXTRACT = {**ENV, "MINIBUILD_LAYERED_ROOT": "0"}


def _run(args: list[str], env: dict[str, str] = ENV) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minibuild", *args], capture_output=True, text=True, env=env,
                          timeout=180)


def screen(data: str, width: int = 100) -> list[str]:
    """What a terminal shows after ``data``: a tiny VT100 (CR, LF, ESC[nF, ESC[2K, ESC[J) is all the view uses."""
    lines: list[str] = [""]
    row = col = 0
    i = 0
    while i < len(data):
        m = re.match(r"\x1b\[(\d*)([A-Za-z])", data[i:])
        if m:
            n, op = int(m.group(1) or 1), m.group(2)
            if op == "F":
                row, col = max(0, row - n), 0
            elif op == "K":
                lines[row] = ""
            elif op == "J":
                del lines[row + 1:]
                lines[row] = lines[row][:col]
            else:
                raise AssertionError(f"unexpected escape {m.group(0)!r}")
            i += len(m.group(0))
            continue
        ch = data[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        else:
            cur = lines[row].ljust(col)
            lines[row] = cur[:col] + ch + cur[col + 1:]
            col += 1
    return [line.rstrip() for line in lines if line.strip()]


def _in_pty(args: list[str], cols: int = 100, rows: int = 40, env: dict[str, str] = ENV) -> tuple[int, str]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "minibuild", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 180)
        if not ready:
            proc.kill()
            raise AssertionError("no output from the build for 180s: " + out.decode(errors="replace")[-2000:])
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(timeout=60), out.decode()


def test_live_view_on_a_terminal_ends_with_the_total_and_every_step(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "Dockerfile": DF})
    code, out = _in_pty(["--store", str(tmp_path / "s"), "build", str(ctx)], env=EXTRACT)
    assert code == 0, out
    assert "\x1b[" in out  # redrawn in place, not plain blocks
    assert "#1 [" not in out
    shown = screen(out.replace("\r\n", "\n"))
    assert re.fullmatch(r"\[\+\] Building \d+\.\ds \(3/3\) FINISHED", shown[0]), shown
    assert re.fullmatch(r" => \[1/3\] FROM busybox +\d+\.\ds", shown[1]), shown
    assert re.fullmatch(r" => => extracting 1 layer, \S+ +\d+\.\ds", shown[2]), shown  # under its FROM
    steps = [line for line in shown if line.startswith(" => [") or line.startswith(" => CACHED [")]
    assert [re.sub(r" +\d+\.\ds$", "", s) for s in steps] == [
        " => [1/3] FROM busybox", " => [2/3] RUN echo hi > /hi", " => [3/3] COPY a.txt /a.txt"]
    assert all(len(line) < 100 for line in shown if line.startswith(" =>"))  # fits the terminal
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", shown[-1].strip())  # stdout: the digest, after the view
    # a fully cached build in the same terminal says CACHED, as BuildKit does
    code, out = _in_pty(["--store", str(tmp_path / "s"), "build", str(ctx)])
    shown = screen(out.replace("\r\n", "\n"))
    assert code == 0 and re.fullmatch(r"\[\+\] Building \d+\.\ds \(3/3\) FINISHED", shown[0]), shown
    assert sum(1 for line in shown if line.startswith(" => CACHED [")) == 3, shown


def test_plain_progress_ends_with_a_total_line_and_shows_unpacking_as_its_own_lines(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "Dockerfile": DF})
    p = _run(["--store", str(tmp_path / "s"), "build", str(ctx)], env=EXTRACT)  # not a terminal: auto is plain
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert "\x1b[" not in p.stderr
    run_at = lines.index("#2 [2/3] RUN echo hi > /hi")
    done_at = next(i for i, line in enumerate(lines) if line.startswith("#2 DONE "))
    between = lines[run_at + 1:done_at]
    # the base is unpacked for the RUN: lines of the FROM (#1), not part of the RUN's time
    assert len(between) == 2 and re.fullmatch(r"#1 extracting 1 layer, \S+", between[0]), between
    assert re.fullmatch(r"#1 extracting 1 layer, \S+ \d+\.\ds done", between[1]), between
    totals = [line for line in lines if line.startswith("[+] Building")]
    assert len(totals) == 1 and re.fullmatch(r"\[\+\] Building \d+\.\ds \(3/3\) FINISHED", totals[0])
    assert lines.index(totals[0]) > done_at


def test_json_progress_has_the_unpack_event_of_the_from_step(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "Dockerfile": DF})
    p = _run(["--store", str(tmp_path / "s"), "build", str(ctx), "--progress", "json"], env=EXTRACT)
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in p.stderr.splitlines()]
    unpack = [e for e in events if e["type"] == "unpack"]
    assert len(unpack) == 1, events
    from_step = next(e for e in events if e["type"] == "step" and e["index"] == 0)
    u = unpack[0]
    assert u["n"] == from_step["n"] and u["vertex"] == 1 and u["vertices"] == 3 and u["prefix"] == ""
    assert u["layers"] == 1 and u["size"] > 0 and u["seconds"] >= 0 and u["stage"] == "stage-0"
    kinds = [e["type"] for e in events]
    run_at = next(i for i, e in enumerate(events) if e["type"] == "step" and e["instruction"].startswith("RUN"))
    assert kinds.index("unpack") < run_at  # during the RUN that needed the root
    assert not any(k.endswith("_start") for k in kinds)


def test_quiet_prints_only_the_image_id(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "Dockerfile": DF})
    store = tmp_path / "s"
    for flag in (["-q"], ["--progress", "quiet"]):
        q = _run(["--store", str(store), "build", str(ctx), *flag])
        assert q.returncode == 0 and q.stderr == "", q.stderr
        image_id = q.stdout.strip()
        assert q.stdout == image_id + "\n" and re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
        # the ID is the config blob's digest (docker images), not the manifest digest plain mode prints
        plain = _run(["--store", str(store), "build", str(ctx), "--progress", "plain"])
        manifest_digest = plain.stdout.strip()
        assert manifest_digest != image_id

        def blob(digest: str) -> bytes:
            hits = [p for p in store.rglob(digest.split(":")[1]) if p.is_file()]
            assert hits, digest
            return hits[0].read_bytes()

        config = json.loads(blob(manifest_digest))["config"]["digest"]
        assert config == image_id
        assert "sha256:" + hashlib.sha256(blob(config)).hexdigest() == image_id


def test_run_flags_are_on_the_progress_line_not_in_the_history(tmp_path: Path) -> None:
    df = "FROM busybox\nRUN --network=none echo hi > /hi\n"
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": df})
    p = _run(["--store", str(tmp_path / "s"), "build", str(ctx), "-t", "flags:1", "--progress", "plain"])
    assert p.returncode == 0, p.stderr
    assert "#2 [2/2] RUN --network=none echo hi > /hi" in p.stderr.splitlines()
    h = _run(["--store", str(tmp_path / "s"), "history", "flags:1", "--no-trunc"])
    assert h.returncode == 0, h.stderr
    assert "RUN echo hi > /hi" in h.stdout and "--network" not in h.stdout  # BuildKit's created_by drops them


def test_live_view_of_a_failed_build_marks_the_step_and_says_no_finished(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo before\nRUN exit 3\n"})
    code, out = _in_pty(["--store", str(tmp_path / "s"), "build", str(ctx)])
    assert code == 1, out
    shown = screen(out.replace("\r\n", "\n"))
    assert re.fullmatch(r"\[\+\] Building \d+\.\ds \(2/3\)", shown[0]), shown
    assert any(re.fullmatch(r" => ERROR \[3/3\] RUN exit 3 +\d+\.\ds", line) for line in shown), shown
    assert shown[-1].startswith("error: Dockerfile:3: ") and "exit code 3" in shown[-1], shown
    assert "Traceback" not in out


def test_a_layered_root_unpacks_nothing_so_no_extracting_line_shows(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "Dockerfile": DF})
    p = _run(["--store", str(tmp_path / "s"), "build", "--progress", "plain", str(ctx)])
    assert p.returncode == 0, p.stderr
    assert "#2 [2/3] RUN echo hi > /hi" in p.stderr.splitlines()
    assert "extracting" not in p.stderr
