"""``minibuild build``/``plan`` without ``--executor``: auto, announced once per stage in plain progress; as a user
the chroot executor cannot serve, auto emulates and says why, where ``--executor chroot`` fails in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from minibuild.executors.auto import is_elf
from tests.cli.support import _as_user, mb
from tests.support import require, unprivileged_user

BUSYBOX = Path("/bin/busybox")
REAL_AND_STAND_IN = ("FROM scratch AS build\nCOPY rootfs/ /\nRUN echo real > /out\n"
                     "FROM busybox\nCOPY --from=build /out /out\nRUN cat /out > /copy\n")


def _ctx(tmp_path: Path) -> Path:
    require(BUSYBOX.exists() and is_elf(BUSYBOX.read_bytes()[:64]), "no real busybox binary at /bin/busybox")
    ctx = tmp_path / "ctx"
    (ctx / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, ctx / "rootfs" / "bin" / "busybox")
    for applet in ("sh", "echo", "cat"):
        (ctx / "rootfs" / "bin" / applet).symlink_to("busybox")
    (ctx / "Dockerfile").write_text(REAL_AND_STAND_IN)
    return ctx


def _executor_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("#0 executor:")]


def _problem_for(user: str | None) -> str | None:
    """platform_problem() as ``user`` sees it (a child interpreter: user namespaces are a per-user matter)."""
    interp = _as_user(user) if user is not None else ["python3"]
    code = "from minibuild.executors.chroot import platform_problem as p; import json; print(json.dumps(p()))"
    out = subprocess.run([*interp, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    value: str | None = json.loads(out.stdout)
    return value


def test_build_announces_each_stage_choice_once(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    store = tmp_path / "store"
    problem = _problem_for(None) if os.geteuid() != 0 else None
    res = mb(store, "build", "--progress", "plain", str(ctx))
    assert res.returncode == 0, res.stderr
    if problem is None:
        who = "root" if os.geteuid() == 0 else "unprivileged user namespaces"
        first = f"#0 executor: chroot for stage build (real /bin/sh in the base; {who})"
    else:
        first = f"#0 executor: emulate for stage build (real /bin/sh in the base, but {problem.split(' (')[0]})"
    assert _executor_lines(res.stderr) == [first, "#0 executor: emulate for stage stage-1 (/bin/sh is a stand-in)"]
    again = mb(store, "build", "--progress", "plain", str(ctx))  # every step cached: still said, once each
    assert again.returncode == 0 and _executor_lines(again.stderr) == _executor_lines(res.stderr), again.stderr
    explicit = mb(store, "build", "--progress", "plain", "--executor", "emulate", str(ctx))
    assert explicit.returncode == 0 and _executor_lines(explicit.stderr) == [], explicit.stderr


def test_json_progress_has_the_typed_event(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    res = mb(tmp_path / "store", "build", "--progress", "json", "--target", "build", str(ctx))
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    picked = [e for e in events if e["type"] == "executor"]
    assert len(picked) == 1 and sorted(picked[0]) == ["executor", "n", "reason", "stage", "type"]
    run = next(e for e in events if e["type"] == "step" and e["instruction"].startswith("RUN"))
    assert (picked[0]["stage"], picked[0]["n"]) == ("build", run["n"])


def test_unknown_executor_is_one_line(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN true\n")
    for cmd in ("build", "plan"):
        res = mb(tmp_path / "store", cmd, "--executor", "docker", str(ctx))
        assert res.returncode == 1
        assert res.stderr.strip().splitlines() == [
            "error: unknown executor 'docker'; known executors: auto, emulate, chroot"], res.stderr


def test_as_an_ordinary_user_auto_follows_what_the_sandbox_can_do(tmp_path: Path) -> None:
    """With user namespaces the user's build picks chroot and says so; without them it emulates and says why,
    while an explicit ``--executor chroot`` fails in platform_problem's one line."""
    user = unprivileged_user()  # root only: runuser, in a directory the user owns (pytest's tmp is root's 0700)
    import pwd

    problem = _problem_for(user)
    home = Path("/tmp") / f"mb-auto-{os.getpid()}"
    home.mkdir(mode=0o755)
    try:
        ctx = _ctx(home)
        uid = pwd.getpwnam(user).pw_uid
        for path in (home, *home.rglob("*")):
            os.lchown(path, uid, uid)
        _as_ordinary_user(home / "store", ctx, user, problem)
    finally:
        shutil.rmtree(home)


def _as_ordinary_user(store: Path, ctx: Path, user: str, problem: str | None) -> None:
    res = mb(store, "build", "--progress", "plain", "--target", "build", str(ctx), user=user)
    assert res.returncode == 0, res.stderr
    if problem is None:
        assert _executor_lines(res.stderr) == [
            "#0 executor: chroot for stage build (real /bin/sh in the base; unprivileged user namespaces)"]
        return
    assert _executor_lines(res.stderr) == [
        f"#0 executor: emulate for stage build (real /bin/sh in the base, but {problem.split(' (')[0]})"]
    forced = mb(store, "build", "--executor", "chroot", "--target", "build", "--no-cache", str(ctx), user=user)
    assert forced.returncode == 1
    assert [line for line in forced.stderr.splitlines() if line.startswith("error:")] == [f"error: {problem}"]
