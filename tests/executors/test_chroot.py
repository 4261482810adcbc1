"""The chroot executor on a real busybox root: isolation, users, network, and a root left exactly as it was."""

from __future__ import annotations

import ctypes
import errno
import os
import pickle
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minibuild.executors import chroot
from minibuild.executors.chroot import ChrootExecutor, platform_problem
from minibuild.executors.executor import RunRequest, RunResult
from minibuild.errors import ExecutorError, SourceSpan
from tests.support import require, require_root

pytestmark = pytest.mark.root
PATH = (("PATH", "/usr/bin:/bin"),)


@pytest.fixture()
def root(busybox_rootfs: Path) -> Iterator[Path]:
    require(sys.platform.startswith("linux"), "the chroot executor needs Linux")
    require(platform_problem() is None, f"chroot executor unavailable: {platform_problem()}")
    # a world-traversable place, so the unprivileged test's user can reach it (pytest's tmp dirs are 0700)
    base = Path(tempfile.mkdtemp(prefix="mb-chroot-", dir="/tmp"))
    os.chmod(base, 0o755)
    dest = base / "root"
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    os.chmod(dest, 0o755)  # as in every image: / is 0755
    yield dest
    shutil.rmtree(base, ignore_errors=True)


def run(root: Path, *argv: str, **kw: object) -> RunResult:
    return ChrootExecutor().run(RunRequest(root=root, argv=argv, env=kw.pop("env", PATH), **kw))  # type: ignore[arg-type]


def tree(root: Path) -> set[tuple[str, int]]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            out.add((os.path.relpath(p, root), os.lstat(p).st_mode))
    return out


def test_exit_status_and_output(root: Path) -> None:
    res = run(root, "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
    assert (res.exit_code, res.stdout, res.stderr) == (3, b"out\n", b"err\n")


def test_stdin_is_fed(root: Path) -> None:
    assert run(root, "cat", stdin=b"x" * 200_000).stdout == b"x" * 200_000


def test_env_is_exactly_the_requested_one(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST_SECRET", "leak")
    res = run(root, "env", env=(("PATH", "/bin"), ("A", "1 2"), ("A", "3")))
    # plus what Docker adds to an exec-form RUN (observed: `RUN ["/bin/env"]` under DOCKER_BUILDKIT=0 docker build
    # printed PATH, HOSTNAME=<container id>, HOME=/root): HOME from passwd, HOSTNAME the sandbox's
    assert sorted(res.stdout.decode().splitlines()) == ["A=3", "HOME=/root", "HOSTNAME=minibuild", "PATH=/bin"]


def test_root_is_slash_and_host_is_invisible(root: Path) -> None:
    (root / "marker").write_text("inside\n")
    res = run(root, "/bin/sh", "-c", "cat /marker; ls /; hostname")
    lines = res.stdout.decode().split()
    assert lines[0] == "inside" and "marker" in lines and lines[-1] == "minibuild"
    assert "work" not in lines and "home" not in lines


def test_workdir_created_and_used(root: Path) -> None:
    res = run(root, "pwd", workdir="/srv/app")
    assert res.stdout == b"/srv/app\n" and (root / "srv" / "app").is_dir()


def test_user_switch_by_name_and_numbers(root: Path) -> None:
    require_root()  # USER nobody and 1234:5678 need real root
    assert run(root, "id", user="nobody").stdout.startswith(b"uid=65534(nobody) gid=65534(nogroup)")
    assert run(root, "/bin/sh", "-c", "id -u; id -g", user="1234:5678").stdout == b"1234\n5678\n"
    res = run(root, "touch", "/root/x", user="nobody")
    assert res.exit_code != 0 and not (root / "root" / "x").exists()


def test_unknown_user_is_an_error_with_span(root: Path) -> None:
    with pytest.raises(ExecutorError, match=r"Dockerfile:9: unable to find user ghost"):
        ChrootExecutor().run(RunRequest(root=root, argv=("id",), user="ghost", span=SourceSpan(line=9)))


def test_no_network_by_default(root: Path) -> None:
    res = run(root, "cat", "/proc/net/dev")
    ifaces = {line.split(":")[0].strip() for line in res.stdout.decode().splitlines()[2:]}
    assert ifaces == {"lo"}


def test_network_when_asked(root: Path) -> None:
    host = {line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]}
    require(host != {"lo"}, "the host itself has no interface but lo, so network=True cannot be told apart")
    res = run(root, "cat", "/proc/net/dev", network=True)
    ifaces = {line.split(":")[0].strip() for line in res.stdout.decode().splitlines()[2:]}
    assert ifaces == host


def test_own_pid_namespace_and_devices(root: Path) -> None:
    res = run(root, "/bin/sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'; head -c 4 /dev/zero | wc -c; "
                                      "echo x > /dev/null; ls /dev")
    lines = res.stdout.decode().split()
    assert lines[0] == "1"  # the command is pid 1 of a fresh pid namespace
    assert int(lines[1]) <= 4  # only the sandbox's own processes are visible
    assert lines[2] == "4"
    # exactly runc's /dev (`ls /dev` in a DOCKER_BUILDKIT=0 docker build RUN, Docker 20.10); /dev/tty is there but
    # the step has no controlling terminal (tests/security/test_chroot_sandbox.py)
    assert lines[3:] == ["fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
                         "stdout", "tty", "urandom", "zero"]


def test_mounts_leave_nothing_in_the_root(root: Path) -> None:
    for d in ("proc", "dev", "tmp", "etc"):
        shutil.rmtree(root / d, ignore_errors=True)
    before = tree(root)
    res = run(root, "/bin/sh", "-c", "ls /proc/self >/dev/null && echo y > /dev/shm/f && ls /dev/null")
    assert res.exit_code == 0, res.stderr
    assert tree(root) == before
    mounts = Path("/proc/self/mounts").read_text()
    assert str(root) not in mounts


def test_existing_empty_proc_stays_empty(root: Path) -> None:
    (root / "proc").mkdir()
    (root / "dev").mkdir()
    (root / "dev" / "keep").write_text("image content\n")
    run(root, "ls", "/proc/1")
    assert list((root / "proc").iterdir()) == []
    assert [p.name for p in (root / "dev").iterdir()] == ["keep"]


def test_files_written_to_tmp_stay_in_the_root(root: Path) -> None:
    shutil.rmtree(root / "tmp")
    assert run(root, "/bin/sh", "-c", "echo hi > /tmp/f").exit_code == 0
    assert (root / "tmp" / "f").read_text() == "hi\n"


def test_missing_program_is_exit_127(root: Path) -> None:
    res = run(root, "no-such-program")
    assert res.exit_code == 127 and b'"no-such-program": executable file not found' in res.stderr


def test_without_user_namespaces_an_ordinary_user_is_told_what_is_missing() -> None:
    """Each switch that keeps an ordinary user from a user namespace is named; a failing unshare says why."""
    from minibuild.executors.chroot import userns_missing

    def sysctl(values: dict[str, int]) -> Callable[[str], int | None]:
        return lambda name: values.get(name)

    ok = lambda: 0  # noqa: E731
    assert userns_missing(sysctl({"user/max_user_namespaces": 15000}), ok) is None
    assert userns_missing(sysctl({"user/max_user_namespaces": 0}), ok) == "user.max_user_namespaces is 0"
    assert userns_missing(sysctl({"kernel/unprivileged_userns_clone": 0}), ok) == \
        "kernel.unprivileged_userns_clone is 0"
    assert userns_missing(sysctl({"kernel/apparmor_restrict_unprivileged_userns": 1}), ok) == \
        "kernel.apparmor_restrict_unprivileged_userns is 1"
    assert userns_missing(sysctl({}), lambda: errno.EPERM) == "unshare(CLONE_NEWUSER) fails (Operation not permitted)"


def test_chroot_without_user_namespaces_is_one_line() -> None:
    """As an ordinary user whose kernel refuses user namespaces (the probe answers as such a kernel or container
    does), ``--executor chroot`` fails in one line naming what is missing, and no traceback."""
    import subprocess

    require_root()  # to drop to uid 65534
    tmp_path = Path(tempfile.mkdtemp())  # directly under /tmp, so that uid 65534 reaches it
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY f /f\nRUN true\n")
    (tmp_path / "f").write_text("x")
    os.chmod(tmp_path, 0o1777)  # sticky, as /tmp: the store check accepts it
    code = (
        "import importlib, os, pkgutil, sys, minibuild\n"
        "for m in pkgutil.walk_packages(minibuild.__path__, 'minibuild.'):\n"  # uid 65534 may not read them
        "    m.name != 'minibuild.pytest_plugin' and importlib.import_module(m.name)\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "os.environ['HOME'] = sys.argv[1]\n"
        "import minibuild.executors.chroot as c\n"
        "c._probe_userns = lambda: 1\n"  # what a kernel or container that refuses unshare(CLONE_NEWUSER) gives
        "from minibuild.cli import main\n"
        "main(['--store', sys.argv[1] + '/store', 'build', sys.argv[1], '--executor', 'chroot', '-o', sys.argv[1] + '/o.tar'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == ("error: Dockerfile:3: the chroot executor needs root or unprivileged user namespaces, and "
                         "unshare(CLONE_NEWUSER) fails (Operation not permitted) here (run as root or use --executor "
                         "emulate)"), proc.stderr
    assert "Traceback" not in proc.stderr
    shutil.rmtree(tmp_path)


def test_refuses_non_linux_and_empty_argv(tmp_path: Path) -> None:
    assert "needs Linux namespaces; this is darwin" in (platform_problem("darwin", 0) or "")
    assert platform_problem("linux", 0) is None
    with pytest.raises(ExecutorError, match="empty command"):
        ChrootExecutor().run(RunRequest(root=tmp_path, argv=()))
    with pytest.raises(ExecutorError, match="not a directory"):
        ChrootExecutor().run(RunRequest(root=tmp_path / "missing", argv=("true",)))


def _as_unprivileged(fn: object) -> object:
    """Run ``fn`` in a forked child that dropped to uid/gid 65534 (dumpable, as a normal login is)."""
    require_root()  # to drop to an unprivileged user for the user-namespace path
    chroot._lib()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            chroot._lib().prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: setuid() cleared it, a real login has it
            try:
                result: object = fn()  # type: ignore[operator]
            except Exception as exc:  # noqa: BLE001
                result = exc
            os.write(w, pickle.dumps(result))
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return pickle.loads(data)


def test_unprivileged_user_namespace(root: Path) -> None:
    require_root()  # to drop to uid 65534 first
    for p in [root, *root.rglob("*")]:
        os.lchown(p, 65534, 65534)
    shutil.rmtree(root / "tmp")

    def go() -> tuple[RunResult, str]:
        res = run(root, "/bin/sh", "-c", "id -u; cat /proc/net/dev | wc -l; echo hi > /tmp/f; "
                                          "grep -E '^Cap(Eff|Bnd)' /proc/self/status")
        try:
            run(root, "id", user="nobody")
        except ExecutorError as exc:
            return res, str(exc)
        return res, ""

    outcome = _as_unprivileged(go)
    assert not isinstance(outcome, Exception), outcome
    res, refusal = outcome  # type: ignore[misc]
    assert res.exit_code == 0, res.stderr
    assert res.stdout.split()[:2] == [b"0", b"3"]  # root inside the namespace, only lo
    assert caps(res.stdout.decode()) == {"CapEff": DOCKER_DEFAULT_CAPS, "CapBnd": DOCKER_DEFAULT_CAPS}
    assert (root / "tmp" / "f").stat().st_uid == 65534  # but files belong to the real user
    assert "needs real root" in refusal


# ---------------------------------------------------------------------------------- hardening (Docker's profile)

# Docker's default capability mask, as `docker run busybox grep Cap /proc/self/status` prints it (CapBnd/CapEff)
DOCKER_DEFAULT_CAPS = 0x00000000A80425FB
# Docker's default read-only and masked /proc paths (moby oci/defaults.go)
READONLY = ("bus", "fs", "irq", "sys", "sysrq-trigger")
MASKED = ("asound", "acpi", "interrupts", "kcore", "keys", "latency_stats", "timer_list", "timer_stats",
          "sched_debug", "scsi")

# A 656-byte static x86-64 program (no libc), base64 of zlib. Assembled with `as` + `ld -static -N -s` from:
#   name_to_handle_at(AT_FDCWD, "/", &fh, &mount_id, 0)  -> exit 3 if it fails
#   open_by_handle_at(AT_FDCWD, &fh, O_RDONLY)            -> exit 0 if it opens, 1 on EPERM, 2 on other errors
# open_by_handle_at needs CAP_DAC_READ_SEARCH: it is the 2014 "shocker" container escape primitive.
SHOCKER_PROBE = (
    "eNqrd/VxY2JkZIABJgY7BhCvgsEBzHeAik9AKAGKWQDVODCwMDCD1bKD1UMATB+M/gMVh9EsUHqHPlCnx/Hjc/7//+/RaxoJFPLoFY0CUj69ov5AytXw"
    "AD+rR+uBUqMdBihKzYCShpfAchUshv9fi+9nAmlu/vG/lGc/yDmvWfczg2ywARL8rEBCH2pnA8MgAXrFGcUlRSWJSQx6JakVJQx6KYklidQxmhuIYXGC"
    "Gh8QkImmnhGNLwgVY4byn0D1P4GlAzT1LFjMY8birhKoReIE7AcAhm025A=="
)


def caps(status: str) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split()[1], 16) for line in status.splitlines() if line.startswith("Cap")}


def test_capabilities_are_dockers_default_set(root: Path) -> None:
    require_root()  # USER nobody needs real root
    as_root = caps(run(root, "cat", "/proc/self/status").stdout.decode())
    assert as_root == {"CapInh": 0, "CapPrm": DOCKER_DEFAULT_CAPS, "CapEff": DOCKER_DEFAULT_CAPS,
                       "CapBnd": DOCKER_DEFAULT_CAPS, "CapAmb": 0}, {k: hex(v) for k, v in as_root.items()}
    as_nobody = caps(run(root, "cat", "/proc/self/status", user="nobody").stdout.decode())
    assert as_nobody == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": DOCKER_DEFAULT_CAPS, "CapAmb": 0}


def test_open_by_handle_at_is_refused(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require(os.uname().machine == "x86_64", "the open_by_handle_at probe is an x86-64 binary")
    import base64
    import zlib

    probe = root / "probe"
    probe.write_bytes(zlib.decompress(base64.b64decode(SHOCKER_PROBE)))
    probe.chmod(0o755)
    hardened = run(root, "/probe").exit_code
    # control: the same probe in the same sandbox, but keeping every capability this process has (as before the
    # hardening), which shows that the probe does detect CAP_DAC_READ_SEARCH
    mine = caps(Path("/proc/self/status").read_text())["CapPrm"]
    require(mine & (1 << 2) != 0, "this test process itself lacks CAP_DAC_READ_SEARCH, so there is no control")
    monkeypatch.setattr(chroot, "DOCKER_CAPABILITY_MASK", mine)
    control = run(root, "/probe").exit_code
    require(control != 3, "name_to_handle_at is not supported on the filesystem holding the test root")
    assert control == 0, "the probe should open a handle when CAP_DAC_READ_SEARCH is held"
    assert hardened == 1, "open_by_handle_at must fail with EPERM in the sandbox"


def test_proc_sysctls_are_read_only_and_kernel_files_masked(root: Path) -> None:
    # writes the host's own value back (and a namespaced knob), so a regression cannot change the host
    before = Path("/proc/sys/kernel/core_pattern").read_text()
    res = run(root, "/bin/sh", "-c", "echo \"$CP\" > /proc/sys/kernel/core_pattern; echo rc=$?; "
                                      "echo minibuild > /proc/sys/kernel/hostname; echo rc=$?; cat /proc/self/mountinfo",
              env=PATH + (("CP", before.rstrip("\n")),))
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before
    out, err = res.stdout.decode(), res.stderr.decode()
    assert out.count("rc=1") == 2 and err.count("Read-only file system") == 2, (out, err)  # EROFS
    mounts = {line.split()[4]: line.split()[5] for line in out.splitlines() if " - " in line}
    for name in READONLY:
        if os.path.lexists(f"/proc/{name}"):
            assert mounts.get(f"/proc/{name}", "").startswith("ro,"), (name, mounts)
    for name in MASKED:
        if os.path.lexists(f"/proc/{name}"):
            assert f"/proc/{name}" in mounts, (name, mounts)
    if os.path.exists("/proc/timer_list"):
        assert run(root, "cat", "/proc/timer_list").stdout == b""  # masked by /dev/null


def test_ordinary_root_steps_still_work(root: Path) -> None:
    require_root()  # chown to uid 1000 needs real root (a user namespace maps only your own uid)
    script = ("set -e; mkdir -p /home/bob /srv/data; echo 'bob:x:1000:1000::/home/bob:/bin/sh' >> /etc/passwd; "
              "echo 'bob:x:1000:' >> /etc/group; chown -R bob:bob /home/bob; chmod 700 /home/bob; "
              "echo secret > /home/bob/f; chown 1000:1000 /home/bob/f; chmod 600 /home/bob/f; cat /home/bob/f; "
              "/bin/busybox su bob -c 'id -u; echo mine > /home/bob/g'; /bin/busybox mknod /srv/null c 1 3; "
              "/bin/busybox chroot / /bin/true; touch -d @0 /srv/data/t; kill -0 $$; "
              "ln -s /srv/data /srv/link; echo done")
    res = run(root, "/bin/sh", "-c", script)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == b"secret\n1000\ndone\n"
    assert (root / "home" / "bob" / "g").stat().st_uid == 1000
    assert stat_ok(root / "srv" / "null")


def stat_ok(p: Path) -> bool:
    import stat as st

    return st.S_ISCHR(os.lstat(p).st_mode) and os.major(os.lstat(p).st_rdev) == 1


def test_fails_closed_when_capabilities_cannot_be_dropped(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chroot, "_LINUX_CAPABILITY_VERSION_3", 0x12345678)  # capset(2) answers EINVAL
    with pytest.raises(ExecutorError, match=r"Dockerfile:4: .*cannot drop capabilities \(capset: Invalid argument"):
        ChrootExecutor().run(RunRequest(root=root, argv=("touch", "/ran"), env=PATH, span=SourceSpan(line=4)))
    assert not (root / "ran").exists()


def test_fails_closed_when_proc_cannot_be_made_read_only(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_mount = chroot._mount

    def refuse_remount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        if flags & chroot.MS_REMOUNT and "/proc/" in target:
            raise OSError(1, f"mount {target}: Operation not permitted")
        real_mount(source, target, fstype, flags, data)

    monkeypatch.setattr(chroot, "_mount", refuse_remount)
    first = next(name for name in READONLY if os.path.lexists(f"/proc/{name}"))
    with pytest.raises(ExecutorError, match=rf"cannot make /proc/{first} read-only .*refusing to run the step"):
        run(root, "touch", "/ran")
    assert not (root / "ran").exists()


def test_dev_and_sys_are_runcs(root: Path) -> None:
    require_root()  # USER nobody needs real root
    # the /proc/mounts lines and modes a DOCKER_BUILDKIT=0 docker build RUN showed (Docker 20.10); minibuild's
    # /dev is nodev besides (/dev tmpfs and the root), which Docker leaves to its device cgroup
    res = run(root, "/bin/sh", "-c", "grep -E ' /(dev|dev/pts|dev/shm|dev/mqueue|sys) ' /proc/mounts | cut -d' ' -f1-4;"
                                      "stat -c '%n %a' /dev/shm /dev/mqueue /dev/pts/ptmx; readlink /dev/ptmx;"
                                      "exec 3<>/dev/ptmx; ls /dev/pts; ls -A /sys/firmware | wc -l", user="nobody")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.decode().splitlines() == [
        "sysfs /sys sysfs ro,nosuid,nodev,noexec,relatime",
        "tmpfs /dev tmpfs rw,nosuid,nodev,size=65536k,mode=755",
        "devpts /dev/pts devpts rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=666",
        "mqueue /dev/mqueue mqueue rw,nosuid,nodev,noexec,relatime",
        "shm /dev/shm tmpfs rw,nosuid,nodev,noexec,relatime,size=65536k",
        "/dev/shm 1777", "/dev/mqueue 1777", "/dev/pts/ptmx 666", "pts/ptmx", "0", "ptmx", "0"]
    assert run(root, "/bin/sh", "-c", "touch /dev/shm/lock", user="nobody").exit_code == 0
    assert run(root, "/bin/sh", "-c", "echo x > /sys/kernel/uevent_helper").exit_code != 0
