"""A RUN step's bound /etc files and /dev/tty cannot be turned against the host, under either executor.

The /etc/hosts, resolv.conf and hostname a step sees (``minibuild.executors.runenv``) are host files bound over the
root's paths; a hostile image points those paths outside the root, and a step swaps the bound file for a link to a
host file. Neither reaches the host: the mount point is resolved inside the root, and the emulated shell hands out
a bound file only while it is a regular file. A chroot step has no controlling terminal: /dev/tty (runc's device)
answers ENXIO instead of reaching the terminal minibuild runs in.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import sys
from pathlib import Path

import pytest

from minibuild.executors.executor import EmulateExecutor, Executor, RunRequest
from tests.executors.test_runenv import DOCKER_HOSTS
from tests.security.hostile import SENTINEL_TEXT, Guard
from tests.support import require, require_root


def _executor(name: str) -> Executor:
    if name == "emulate":
        return EmulateExecutor()
    require(sys.platform.startswith("linux"), "the chroot executor needs Linux")
    require_root()
    from minibuild.executors.chroot import ChrootExecutor, platform_problem

    require(platform_problem() is None, f"chroot executor unavailable: {platform_problem()}")
    return ChrootExecutor()


@pytest.fixture(params=["emulate", "chroot"])
def executor(request: pytest.FixtureRequest) -> Executor:
    return _executor(request.param)


@pytest.fixture
def sandbox(tmp_path: Path, busybox_rootfs: Path) -> tuple[Guard, Path]:
    os.chmod(tmp_path, 0o755)
    guard = Guard(tmp_path)
    root = tmp_path / "root"
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    return guard, root


def _sh(ex: Executor, root: Path, script: str) -> tuple[int, str, str]:
    r = ex.run(RunRequest(root=root, argv=("/bin/sh", "-c", script), env=(("PATH", "/bin"),)))
    return r.exit_code, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


@pytest.mark.parametrize("link", ["absolute", "dotdot"])
def test_image_etc_hosts_link_out_of_the_root_stays_inside(executor: Executor, sandbox: tuple[Guard, Path],
                                                           link: str) -> None:
    guard, root = sandbox
    target = str(guard.sentinel) if link == "absolute" else "../" * 12 + str(guard.sentinel).lstrip("/")
    (root / "etc" / "hosts").symlink_to(target)
    code, out, err = _sh(executor, root, "cat /etc/hosts; echo overwritten > /etc/hosts")
    assert code == 0, err
    assert out == DOCKER_HOSTS  # the step sees Docker's file, not the host's sentinel
    assert SENTINEL_TEXT not in out
    guard.check(allowed=("root",))
    assert os.readlink(root / "etc" / "hosts") == target  # the image's link itself is untouched
    assert not os.path.lexists(root / str(guard.sentinel).lstrip("/"))  # its mount point was removed again


def test_step_replacing_the_bound_file_with_a_link_reads_no_host_file(sandbox: tuple[Guard, Path]) -> None:
    # the emulated shell: the bound file is a host file outside the root, so a link put in its place must never
    # be followed on the host (under the chroot executor the bind is a mount point: rm fails with EBUSY)
    guard, root = sandbox
    mode = os.stat(guard.sentinel).st_mode
    code, out, err = _sh(EmulateExecutor(), root, f"rm -f /etc/hosts; ln -s {guard.sentinel} /etc/hosts; "
                                                 "chmod 777 /etc/hosts; touch -d 2001-01-01 /etc/hosts; "
                                                 "cat /etc/hosts; echo overwritten > /etc/hosts; cat /etc/hosts")
    assert SENTINEL_TEXT not in out, out
    assert os.stat(guard.sentinel).st_mode == mode  # chmod went through no link to the host file
    guard.check(allowed=("root",))


def test_chroot_dev_tty_is_not_the_invoking_terminal(sandbox: tuple[Guard, Path]) -> None:
    ex = _executor("chroot")
    _guard, root = sandbox
    pid, master = pty.fork()  # the child runs the executor with a pty as its controlling terminal
    if pid == 0:  # pragma: no cover - the child's result is what the parent reads
        code = 1
        try:
            c, out, err = _sh(ex, root, "echo LEAKED-TO-TERMINAL > /dev/tty; echo status $?")
            os.write(1, f"RESULT {c} {out.strip()} {err.strip()}\n".encode())
            code = 0
        finally:
            os._exit(code)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO once the child has exited and the slave side is closed
            break
        if not chunk:
            break
        seen += chunk
    os.waitpid(pid, 0)
    os.close(master)
    text = seen.decode(errors="replace")
    assert "LEAKED-TO-TERMINAL" not in text.replace("echo LEAKED-TO-TERMINAL", "")
    assert "RESULT 0 status 1" in text and "No such device or address" in text, text
