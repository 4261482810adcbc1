"""`minibuild build` on the command line: -f -, --build-arg KEY from the environment, plain and json progress."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.engine.engine_support import write_context


def _run(args: list[str], *, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "MINIBUILD_FIXTURE_PADDING": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "minibuild", *args], input=stdin, capture_output=True, text=True,
                          env=full, timeout=120)


def test_plain_progress_stdin_dockerfile_and_env_build_arg(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a"})
    df = "FROM scratch\nARG WHO\nCOPY a.txt /a.txt\nLABEL who=$WHO\n"
    p = _run(["--store", str(tmp_path / "s"), "build", str(ctx), "-f", "-", "--build-arg", "WHO",
              "-t", "cli:1", "--progress", "plain"], stdin=df, env={"WHO": "from-env"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().startswith("sha256:")
    lines = p.stderr.splitlines()
    # BuildKit numbering: FROM is 1/2, config-only steps (ARG, LABEL) are not listed, no prefix for one stage
    assert lines[:2] == ["#1 [1/2] FROM scratch", "#1 CACHED"]
    assert "#2 [2/2] COPY a.txt /a.txt" in lines
    assert not any("LABEL" in line or "ARG" in line for line in lines)
    assert any(line.startswith("#2 DONE ") for line in lines)
    again = _run(["--store", str(tmp_path / "s"), "build", str(ctx), "-f", "-", "--build-arg", "WHO",
                  "--progress", "plain"], stdin=df, env={"WHO": "from-env"})
    assert "#2 CACHED" in again.stderr.splitlines()
    assert again.stdout == p.stdout


def test_json_progress_events(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "Dockerfile": "FROM scratch AS x\nFROM scratch\nCOPY a.txt /\n"})
    p = _run(["--store", str(tmp_path / "s"), "build", str(ctx), "--progress", "json"])
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in p.stderr.splitlines()]
    steps = [e for e in events if e["type"] == "step"]
    copy = next(e for e in steps if e["instruction"] == "COPY a.txt /")
    assert copy["cached"] is False and copy["layer"].startswith("sha256:") and copy["size"] > 0
    assert copy["key"].startswith("sha256:") and copy["stage"] == "stage-1" and copy["index"] == 1
    assert [e["status"] for e in events if e["type"] == "stage"] == ["built", "skipped"]
    assert events[-1]["type"] == "image" and events[-1]["layers"] == 1
    assert events[-1]["digest"] == p.stdout.strip()


def test_error_is_one_line(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nCOPY nope /\n"})
    p = _run(["--store", str(tmp_path / "s"), "build", str(ctx), "--progress", "quiet"])
    assert p.returncode == 1
    assert p.stderr.strip().startswith("error: Dockerfile:2:")
