"""Running the ``minibuild`` command line in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def mb(store: Path, *args: str, cwd: Path | None = None, stdin: str | None = None,
       user: str | None = None) -> subprocess.CompletedProcess[str]:
    """``minibuild --store STORE ARGS...`` (as ``user`` through runuser when given); fixtures without padding."""
    env = {**os.environ, "MINIBUILD_FIXTURE_PADDING": "0", "MINIBUILD_NO_MEMO": "1"}
    argv = [sys.executable, "-m", "minibuild", "--store", str(store), *args]
    if user is not None:
        argv = ["runuser", "-u", user, "--", "env", f"PYTHONPATH={Path(__file__).resolve().parents[2]}", *argv]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=180)
