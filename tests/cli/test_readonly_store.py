"""A store the user cannot write (``chmod -R a-w``) still serves the read-only commands: images, inspect,
history, du, cp, test — opening it, its locks and its caches write nothing."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.engine_support import write_context
from tests.cli.support import mb
from tests.support import unprivileged_user

STRUCTURE = """schemaVersion: 2.0.0
fileExistenceTests:
  - name: hello
    path: /hello
    shouldExist: true
"""


@pytest.fixture
def readonly_store() -> Iterator[tuple[Path, Path]]:
    """(a read-only store holding ro:1, a directory mbuser may write); root-only (mbuser cannot write it)."""
    unprivileged_user()  # root ignores permissions: the commands run as the non-root user mbuser
    top = Path(tempfile.mkdtemp(prefix="mb-ro-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)
        ctx = write_context(top / "ctx", {"Dockerfile": "FROM busybox\nRUN echo hi > /hello\n"})
        (top / "st.yaml").write_text(STRUCTURE)
        store = top / "store"
        p = mb(store, "build", "-t", "ro:1", str(ctx), "--progress", "quiet")
        assert p.returncode == 0, p.stderr
        subprocess.run(["chmod", "-R", "a-w", str(store)], check=True)
        out = top / "out"
        out.mkdir()
        uid = pwd.getpwnam("mbuser").pw_uid
        os.chown(out, uid, uid)
        yield store, out
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(top)], check=False)
        shutil.rmtree(top)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if not p.is_symlink()}


@pytest.mark.parametrize("command", [
    ("images",), ("inspect", "ro:1"), ("history", "ro:1"), ("du",), ("cp", "ro:1:/hello", "{out}/hello"),
    ("test", "ro:1", "--config", "{top}/st.yaml"),
])
def test_read_only_commands_work_on_a_read_only_store(readonly_store: tuple[Path, Path],
                                                      command: tuple[str, ...]) -> None:
    store, out = readonly_store
    before = _snapshot(store)
    args = [a.format(out=out, top=store.parent) for a in command]
    p = mb(store, *args, user="mbuser", cwd=out)
    assert p.returncode == 0, p.stderr
    assert "ro:1" in p.stdout or "PASS" in p.stdout or "hello" in p.stdout or command == ("du",), p.stdout
    if command[0] == "cp":
        assert (out / "hello").read_text() == "hi\n"
    assert _snapshot(store) == before  # nothing written


@pytest.mark.parametrize("command", [("tag", "ro:1", "ro:2"), ("build", "-t", "ro:3", "{top}/ctx"), ("rmi", "ro:1"), ("prune",)])
def test_a_write_still_fails_with_one_line(readonly_store: tuple[Path, Path], command: tuple[str, ...]) -> None:
    store, out = readonly_store
    before = _snapshot(store)
    p = mb(store, *[a.format(top=store.parent) for a in command], user="mbuser", cwd=out)
    assert p.returncode == 1, p.stdout
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.startswith("error: ") and "not writable" in p.stderr, p.stderr
    assert _snapshot(store) == before
