"""Shared test helpers: skipping (or failing under MINIBUILD_REQUIRE_INTEROP=1) when a real tool is absent."""

from __future__ import annotations

import os
import shutil
import tarfile

import pytest

REQUIRE_INTEROP = os.environ.get("MINIBUILD_REQUIRE_INTEROP") == "1"


def require(condition: bool, reason: str) -> None:
    """Skip with ``reason`` unless ``condition``; fail instead when MINIBUILD_REQUIRE_INTEROP=1."""
    if condition:
        return
    if REQUIRE_INTEROP:
        pytest.fail(f"MINIBUILD_REQUIRE_INTEROP=1 but: {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """Return the path of executable ``name``, or skip/fail with a reason."""
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed (Debian package provides it; .ci/run installs it)")
    assert path is not None
    return path


def require_root() -> None:
    """Skip unless running as root.  Not an interop requirement: the suite also runs as an ordinary user (CI's
    second run, ``.ci/run``), where a root-only test skips with this reason even under MINIBUILD_REQUIRE_INTEROP=1;
    as root under MINIBUILD_REQUIRE_INTEROP=1 it always runs."""
    if os.geteuid() != 0:
        pytest.skip("needs root (this run is as an ordinary user, uid %d)" % os.geteuid())


UNPRIVILEGED_USER = "mbuser"


def unprivileged_user() -> str:
    """The name of an ordinary user for tests that run minibuild as one (root only): ``mbuser``, created with
    ``useradd`` when this machine does not have it yet."""
    import pwd
    import subprocess

    require_root()
    try:
        pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        useradd = require_tool("useradd")
        done = subprocess.run([useradd, "--create-home", "--shell", "/bin/sh", UNPRIVILEGED_USER],
                              capture_output=True, text=True)
        require(done.returncode in (0, 9), f"useradd {UNPRIVILEGED_USER} failed: {done.stderr.strip()}")
    return UNPRIVILEGED_USER


def extract_all(tf: tarfile.TarFile, dest: str | os.PathLike[str]) -> None:
    """``tf.extractall(dest)`` with the "data" filter where this Python has it (3.11.4 and later; Debian 12's
    3.11.2 has not): the archives the tests open are the tests' own, so older Pythons extract them plainly."""

    if hasattr(tarfile, "data_filter"):
        tf.extractall(dest, filter="data")
    else:
        tf.extractall(dest)
