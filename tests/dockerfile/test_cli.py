"""``minibuild parse`` run as a user would run it (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import PARSER

APP = """\
ARG NODE=22
FROM node:${NODE} AS build
WORKDIR /app
RUN <<EOF
npm ci
EOF
FROM nginx
COPY --from=build /app/dist /usr/share/nginx/html
"""


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minibuild", "parse", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ast_matches_golden() -> None:
    case = PARSER / "testfiles" / "flags"
    proc = run("-f", str(case / "Dockerfile"), "--ast")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (case / "result").read_text()


def test_json_from_stdin() -> None:
    proc = run("-f", "-", "--json", stdin=APP)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [s["name"] for s in data["stages"]] == ["build", None]
    assert data["meta_args"][0]["args"][0] == {"key": "NODE", "value": "22", "doc_comment": ""}
    run_instr = data["stages"][0]["instructions"][1]
    assert (run_instr["instruction"], run_instr["line"], run_instr["end_line"]) == ("RUN", 4, 6)
    assert run_instr["heredocs"][0]["content"] == "npm ci\n"
    copy = data["stages"][1]["instructions"][0]
    assert copy["from_"] == "build" and copy["flags"] == ["--from=build"]


def test_teaching_view(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(APP)
    proc = run("-f", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "stage 0 (build): FROM image node:${NODE}" in proc.stdout
    assert "<- from stage 0 (build)" in proc.stdout
    assert "build -> 1  (COPY --from, line 8)" in proc.stdout


def test_errors_are_one_line_exit_1(tmp_path: Path) -> None:
    proc = run("-f", "-", stdin="FROM a\nCOPPY x y\n")
    assert proc.returncode == 1
    assert proc.stderr == "error: Dockerfile:2: unknown instruction: COPPY (did you mean COPY?)\n"
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    missing = run("-f", str(tmp_path / "nope"))
    assert missing.returncode == 1 and missing.stderr.startswith("error: cannot read ")
    assert missing.stderr.count("\n") == 1
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM a\nRUN <<EOF\nx\n")
    proc = run("-f", str(bad), "--ast")
    assert proc.returncode == 1 and proc.stderr == f"error: {bad}:2: unterminated heredoc\n"
