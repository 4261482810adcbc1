"""The chroot executor as a sandbox: namespaces, environment, fds, mounts, capabilities and a read-only /proc/sys.

Runs a busybox root through `ChrootExecutor`; a guarded directory next to the root must stay untouched.  The
capability and /proc/sys tests were strict xfails until the executor adopted Docker's default profile; the exact
masks, the open_by_handle_at probe and the fail-closed paths are tested in `tests/executors/test_chroot.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.security.hostile import SENTINEL_TEXT, Guard
from tests.support import require, require_root

chroot = pytest.importorskip("minibuild.executors.chroot", reason="the chroot executor (helper E) is absent")
from minibuild.executors.executor import RunRequest  # noqa: E402

# capabilities a build step never needs and that break out of a chroot or reach the host kernel
# (bit numbers from linux/capability.h)
DANGEROUS = {"CAP_DAC_READ_SEARCH": 2, "CAP_NET_ADMIN": 12, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17,
             "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_TIME": 25}


@pytest.fixture
def sandbox(tmp_path: Path, busybox_rootfs: Path) -> tuple[Guard, Path]:
    require_root()
    problem = chroot.platform_problem()
    require(problem is None, problem or "")
    guard = Guard(tmp_path)
    root = tmp_path / "root"
    import shutil

    shutil.copytree(busybox_rootfs, root, symlinks=True)
    (root / "dev").mkdir(exist_ok=True)
    (root / "proc").mkdir(exist_ok=True)
    return guard, root


def _run(root: Path, script: str, **kw: object) -> tuple[int, str, str]:
    req = RunRequest(root=root, argv=("/bin/sh", "-c", script), env=(("PATH", "/bin"),), **kw)  # type: ignore[arg-type]
    r = chroot.ChrootExecutor().run(req)
    return r.exit_code, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def test_environment_is_only_what_the_step_sets(sandbox: tuple[Guard, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_TEST_HOST_SECRET", "host-secret-5f1c")
    _guard, root = sandbox
    code, out, _ = _run(root, "env; cat /proc/self/environ; cat /proc/1/environ")
    assert code == 0 and "host-secret-5f1c" not in out
    assert "PATH=/bin" in out


def test_no_network_unless_asked(sandbox: tuple[Guard, Path]) -> None:
    _guard, root = sandbox
    _, out, _ = _run(root, "cat /proc/net/dev")
    interfaces = [line.split(":")[0].strip() for line in out.splitlines()[2:]]
    assert interfaces == ["lo"]


def test_paths_and_proc_stay_in_the_root(sandbox: tuple[Guard, Path]) -> None:
    guard, root = sandbox
    out_dir = str(guard.dir)
    script = (f"echo pwned > /../../../../../..{out_dir}/sentinel; cat /proc/1/root{out_dir}/sentinel;"
              f"cat /proc/self/root{out_dir}/sentinel; ln -s {out_dir} /esc; echo pwned > /esc/sentinel;"
              f"cat /proc/1/cwd/../../../..{out_dir}/sentinel; ls /proc/1/root/")
    _, out, err = _run(root, script)
    assert SENTINEL_TEXT.strip() not in out + err
    guard.check(allowed=("root",))


def test_pid_namespace_hides_host_processes(sandbox: tuple[Guard, Path]) -> None:
    _guard, root = sandbox
    _, out, _ = _run(root, "ls /proc | grep -E '^[0-9]+$' | wc -l")
    # at most the shell and the pipeline's ls, grep and wc (all four can be alive while ls reads /proc; how many
    # are depends on scheduling): nothing of the host
    assert int(out.strip()) <= 4


def _effective_caps(root: Path) -> int:
    _, out, _ = _run(root, "grep CapEff /proc/self/status")
    return int(out.split()[1], 16)


def test_dangerous_capabilities_are_dropped(sandbox: tuple[Guard, Path]) -> None:
    _guard, root = sandbox
    caps = _effective_caps(root)
    present = sorted(name for name, bit in DANGEROUS.items() if caps & (1 << bit))
    assert present == [], f"still held inside the sandbox: {present}"


def test_proc_sys_is_read_only(sandbox: tuple[Guard, Path]) -> None:
    _guard, root = sandbox
    _, out, _ = _run(root, "cat /proc/self/mountinfo")
    sys_ro = any(" /proc/sys " in line and " ro" in line.split(" - ")[0] for line in out.splitlines())
    proc_ro = any(" /proc " in line and " ro," in line.split(" - ")[0] + "," for line in out.splitlines())
    assert sys_ro or proc_ro, "neither /proc nor /proc/sys is mounted read-only"


def test_mount_inside_does_not_reach_the_host(sandbox: tuple[Guard, Path]) -> None:
    guard, root = sandbox
    _run(root, "mkdir -p /mnt && mount -t tmpfs none /mnt && echo x > /mnt/y")
    # the mount lived in the step's mount namespace only
    assert not (root / "mnt" / "y").exists()
    with open("/proc/self/mountinfo") as fh:
        assert str(root) not in fh.read()
    guard.check(allowed=("root",))
    assert os.path.isdir(root / "mnt")


def test_no_host_file_descriptors_leak_in(sandbox: tuple[Guard, Path]) -> None:
    # CVE-2024-21626 (runc): a host directory fd left open let WORKDIR /proc/self/fd/N escape the root
    guard, root = sandbox
    from minibuild.store import Store

    store = Store.open(guard.base / "store")
    with store.lock(shared=True), store.lease():  # the builder holds such fds while RUN steps execute
        _, out, _ = _run(root, "ls /proc/self/fd")
        fds = sorted(int(x) for x in out.split())
        code, out2, _ = _run(root, "cd /proc/self/fd/3 && ls", workdir="/")
    assert fds == [0, 1, 2, 3], fds  # stdin, stdout, stderr and ls's own directory handle
    assert code != 0 or "sentinel" not in out2
    guard.check(allowed=("root", "store"))
