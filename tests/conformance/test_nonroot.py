"""Every conformance case builds as root and as an unprivileged user into byte-identical tarballs.

Owners, modes and device nodes are data held by minibuild (``minibuild.fs.ownership``), never the host's, so
"same inputs, same digest" must hold whoever runs the build.  Run as root, this builds every case (emulate
executor) twice in forked children: one stays root, the other drops to uid/gid 65534 (no supplementary groups)
and builds from its own copy of the context (the same bytes, modes and mtimes, owned by that user, as a user's
checkout is) into its own store.  Both first build the busybox base the cases use (``FROM scratch`` + ``COPY`` of
Debian's static busybox tree, tagged as the cases expect), so no Docker is needed.  An unprivileged session has no
root side to compare with and skips (CI's root run makes the comparison).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.harness import Case, all_cases, build_flags, prepare_context
from tests.engines import make_busybox_root
from tests.support import require_root

CASES = [c for c in all_cases() if "emulate" in c.executors]
NOBODY = 65534
BUSYBOX_TAG = "minibuild-test/busybox:latest"  # the base every case names (tests/conftest.py)


def _import_everything() -> None:
    """Import every minibuild module before forking: the unprivileged child may not read this checkout."""
    import minibuild

    for mod in pkgutil.walk_packages(minibuild.__path__, "minibuild."):
        if mod.name != "minibuild.pytest_plugin":
            importlib.import_module(mod.name)


def _build_all(work: Path, side: str, store: Path, contexts: Path) -> dict[str, Any]:
    """In a forked child (dropped to NOBODY for ``side == "user"``): build the base, then every case."""
    from minibuild.cli import main

    results: dict[str, Any] = {}
    log = work / f"log-{side}"
    log.mkdir()

    def build(name: str, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
        saved = dict(os.environ)
        os.environ.update(env)
        out_fd = os.open(log / f"{name}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        keep = os.dup(1), os.dup(2)
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(out_fd, 1), os.dup2(out_fd, 2)
        streams = sys.stdout, sys.stderr
        # pytest's capture objects too; with the error handlers CPython gives stdout and stderr
        sys.stdout = open(os.dup(out_fd), "w", buffering=1)
        sys.stderr = open(os.dup(out_fd), "w", buffering=1, errors="backslashreplace")
        code = 0
        try:
            main(["--store", str(store), *argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # a traceback is a finding too: recorded, never raised across the fork
            code = 99
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            for wrapper in (sys.stdout, sys.stderr):
                wrapper.flush()
                wrapper.close()
            sys.stdout, sys.stderr = streams
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(keep[0], 1), os.dup2(keep[1], 2)
            os.close(out_fd), os.close(keep[0]), os.close(keep[1])
            os.environ.clear()
            os.environ.update(saved)
        text = (log / f"{name}.txt").read_text(errors="replace")
        return {"code": code, "tail": "\n".join(text.strip().splitlines()[-3:])}

    base = build("base", ["build", str(contexts / "base"), "-t", BUSYBOX_TAG], {})
    if base["code"] != 0:
        return {"base": base}
    for case in CASES:
        ctx = contexts / case.name
        out = work / f"out-{side}" / f"{case.name}.tar"
        r = build(case.name, ["build", str(ctx), "-f", str(ctx / "Dockerfile"), "-t", f"nonroot/{case.name}:latest",
                              "-o", str(out), "--executor", "emulate", *build_flags(case)], dict(case.build_env))
        if r["code"] == 0:
            r["sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
            out.unlink()
        results[case.name] = r
    return results


def _in_child(work: Path, side: str, uid: int | None) -> dict[str, Any]:
    """Fork, drop to ``uid`` when given, build everything; the child's results as JSON through a file."""
    store, contexts = work / f"store-{side}", work / f"ctx-{side}"
    (work / f"out-{side}").mkdir()
    if uid is not None:
        for p in (work / f"out-{side}",):
            os.chown(p, uid, uid)
    result_path = work / f"results-{side}.json"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                os.environ["HOME"] = str(work / "home-user")
            tmp = result_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(_build_all(work, side, store, contexts)))
            os.replace(tmp, result_path)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"the {side} child failed ({status})"
    return json.loads(result_path.read_text())  # type: ignore[no-any-return]


def _can_drop_privileges() -> str | None:
    """Why a child cannot become uid 65534 here, or None."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os._exit(0 if os.geteuid() == NOBODY else 1)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return None if os.waitstatus_to_exitcode(status) == 0 else "cannot setuid to 65534 here (no CAP_SETUID?)"


@pytest.fixture(scope="module")
def both_sides() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    require_root()  # the comparison needs a root side; an unprivileged session has none
    problem = _can_drop_privileges()
    if problem is not None:
        pytest.skip(problem)
    _import_everything()
    work = Path(tempfile.mkdtemp(prefix="mb-nonroot-"))  # under /tmp, reachable by uid 65534
    try:
        os.chmod(work, 0o755)
        master = work / "ctx-root"
        master.mkdir()
        make_busybox_root(master / "base" / "rootfs")
        (master / "base" / "Dockerfile").write_text('FROM scratch\nCOPY rootfs/ /\nCMD ["sh"]\n')
        for case in CASES:
            prepare_context(case, master / case.name)
        # the user's checkout: the same tree (modes, mtimes, links) owned by that user
        subprocess.run(["cp", "-a", str(master), str(work / "ctx-user")], check=True)
        subprocess.run(["chown", "-R", "-h", f"{NOBODY}:{NOBODY}", str(work / "ctx-user")], check=True)
        for d in ("store-user", "home-user"):
            (work / d).mkdir()
            os.chown(work / d, NOBODY, NOBODY)
        os.chown(work, 0, 0)
        os.chmod(work, 0o777 | 0o1000)  # the user's child writes its log and results here (sticky, as /tmp)
        root = _in_child(work, "root", None)
        user = _in_child(work, "user", NOBODY)
        yield root, user
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_base_builds_on_both_sides(both_sides: tuple[dict[str, Any], dict[str, Any]]) -> None:
    root, user = both_sides
    assert "base" not in root, root.get("base")
    assert "base" not in user, user.get("base")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_root_and_unprivileged_user_give_identical_tarballs(
        case: Case, both_sides: tuple[dict[str, Any], dict[str, Any]]) -> None:
    root, user = both_sides
    if "base" in root or "base" in user:
        pytest.fail("the busybox base did not build (see test_the_base_builds_on_both_sides)")
    r, u = root[case.name], user[case.name]
    if case.fails is not None:  # both builders must refuse it: root and the user refuse it with the same words
        expected = case.fails["minibuild_error"]
        assert r["code"] == 1 and expected in r["tail"], f"as root: exit {r['code']}: {r['tail']}"
        assert u["code"] == 1 and u["tail"] == r["tail"], f"as uid {NOBODY}: exit {u['code']}: {u['tail']}"
        return
    assert r["code"] == 0, f"as root: exit {r['code']}: {r['tail']}"
    assert u["code"] == 0, f"as uid {NOBODY}: exit {u['code']}: {u['tail']}"
    assert u["sha256"] == r["sha256"], f"{case.name}: the unprivileged user's tarball differs from root's"
