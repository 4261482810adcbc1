"""Running the ``minibuild`` command line in a subprocess, as a user would (optionally as another user)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import click

from tests.support import require

REPO = Path(__file__).resolve().parents[2]


def _as_user(user: str) -> list[str]:
    """runuser to ``user`` with an interpreter that user can run: the system python3, with this checkout and
    the directory holding its dependencies (click, yaml) on PYTHONPATH."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    require(python is not None and shutil.which("runuser") is not None, "needs /usr/bin/python3 and runuser")
    assert python is not None
    deps = str(Path(click.__file__).resolve().parents[1])
    path = os.pathsep.join([str(REPO), deps, *site.getsitepackages()])
    return ["runuser", "-u", user, "--", "env", f"PYTHONPATH={path}", python]


def mb(store: Path, *args: str, cwd: Path | None = None, stdin: str | None = None,
       user: str | None = None) -> subprocess.CompletedProcess[str]:
    """``minibuild --store STORE ARGS...`` (as ``user`` through runuser when given); fixtures without padding."""
    env = {**os.environ, "MINIBUILD_FIXTURE_PADDING": "0"}
    interp = _as_user(user) if user is not None else [sys.executable]
    argv = [*interp, "-m", "minibuild", "--store", str(store), *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=180)
