"""Real execution of a RUN command: a child process whose root is the stage root (pivot_root), in fresh namespaces."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import selectors
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from minibuild.executors import mountpoints, seccomp
from minibuild.fs.confine import resolve_in_root
from minibuild.executors.executor import ResolvedUser, RunRequest, RunResult, resolve_user
from minibuild.executors.runenv import HOSTNAME, EtcFiles, step_env
from minibuild.executors.runlog import STDERR, STDOUT, InterleavedTail, OutputSink
from minibuild.errors import ExecutorError, UnsafePathError
from minibuild.limits import TailBuffer
from minibuild.record import record

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_STRICTATIME = 0x1000000
MNT_DETACH = 0x2
KEYCTL_JOIN_SESSION_KEYRING = 1

PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# Docker's default capability set (moby oci/caps/defaults.go), bit numbers from linux/capability.h
DOCKER_CAPABILITIES = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
                       "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
                       "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18, "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29,
                       "CAP_SETFCAP": 31}
DOCKER_CAPABILITY_MASK = sum(1 << bit for bit in DOCKER_CAPABILITIES.values())  # 0x00000000a80425fb
# Docker's default masked and read-only paths (moby oci/defaults.go; runc applies them); /sys is read-only whole.
MASKED_PROC_PATHS = ("asound", "acpi", "interrupts", "kcore", "keys", "latency_stats", "timer_list", "timer_stats",
                     "sched_debug", "scsi")
READONLY_PROC_PATHS = ("bus", "fs", "irq", "sys", "sysrq-trigger")
MASKED_SYS_PATHS = ("firmware", "devices/virtual/powercap")

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")  # runc's default devices (tty: no terminal, ENXIO)
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))
_REPORT_FD_EXIT = 125  # exit status of the sandbox child when setting up failed (the report pipe says why)


_RunMountPlan = tuple[str | None, str, bool, int | None, bool]  # RUN --mount: source (None: a tmpfs), target
# inside the root, read-only, tmpfs size, whether the mount point is a file


@record
class _Plan:
    root: str
    argv: tuple[str, ...]
    env: dict[str, str]
    workdir: str
    ident: ResolvedUser
    network: bool
    userns: bool
    host_uid: int
    host_gid: int
    etc_binds: tuple[tuple[str, str], ...] = ()  # (host file, mount point in the root) for /etc/hosts and the like
    mounts: tuple[_RunMountPlan, ...] = ()  # RUN --mount, in order
    overlay: tuple[str, str, str] | None = None  # (upper, work, merged): root is the lower of an overlay mount


def platform_problem(platform: str | None = None, euid: int | None = None) -> str | None:
    """Why the chroot executor cannot run here (or on ``platform`` as ``euid``), or None when it can."""
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return f"the chroot executor needs Linux namespaces; this is {platform} (use --executor emulate)"
    if (os.geteuid() if euid is None else euid) != 0:
        missing = userns_missing(_sysctl, _probe_userns)
        if missing is not None:
            return (f"the chroot executor needs root or unprivileged user namespaces, and {missing} here "
                    "(run as root or use --executor emulate)")
    return None


_USERNS_SYSCTLS = (  # (file under /proc/sys, the value that forbids an ordinary user's user namespace)
    ("user/max_user_namespaces", 0),
    ("kernel/unprivileged_userns_clone", 0),  # Debian's switch
    ("kernel/apparmor_restrict_unprivileged_userns", 1),  # Ubuntu 24.04's
)


def userns_missing(sysctl: Callable[[str], int | None], probe: Callable[[], int]) -> str | None:
    """What keeps an ordinary user from a user namespace, in words (None: nothing): the sysctl that forbids it,
    else why ``unshare(CLONE_NEWUSER)`` failed (``probe`` returns its errno, 0 on success; e.g. a container's
    seccomp profile)."""
    for name, forbidding in _USERNS_SYSCTLS:
        if sysctl(name) == forbidding:
            return f"{name.replace('/', '.')} is {forbidding}"
    err = probe()
    return None if err == 0 else f"unshare(CLONE_NEWUSER) fails ({os.strerror(err)})"


def _sysctl(name: str) -> int | None:
    try:
        return int(Path("/proc/sys", name).read_text().strip())
    except (OSError, ValueError):
        return None


_probed: list[int] = []


def _probe_userns() -> int:
    """The errno of ``unshare(CLONE_NEWUSER)`` in a forked child (0: it works), found once per process."""
    if not _probed:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                _unshare(CLONE_NEWUSER)
            except OSError as exc:
                code = exc.errno or errno.EPERM
            except BaseException:
                code = errno.EPERM
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        _probed.append(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else errno.EPERM)
    return _probed[0]


class ChrootExecutor:
    """Runs argv with the stage root as ``/``, entered as runc enters a container's root: in new mount/pid/ipc/
    uts(/net) namespaces (as root; as an ordinary user inside a new user namespace that maps that user to root),
    the root is bind-mounted onto itself ``nodev``, /proc (Docker's read-only and masked paths), a read-only /sys,
    a ``nodev`` tmpfs /dev with runc's device nodes, devpts, /dev/shm and /dev/mqueue, and Docker's /etc/hosts,
    resolv.conf and hostname (``runenv``) are mounted in it, then ``pivot_root`` makes it the root of the mount
    namespace and the old root is detached, so no path, ``..`` or second chroot(2) leads back to the host. The
    command gets a fresh session keyring, Docker's default capability set and Docker's default seccomp profile.
    All mounts live in the child's mount namespace and vanish with it; mount points it had to create are removed
    afterwards, so the root's diff sees none of them. If any part of that fails, the step does not run and
    ``run`` raises ExecutorError."""

    name = "chroot"

    def run(self, req: RunRequest) -> RunResult:
        problem = platform_problem()
        if problem is not None:
            raise ExecutorError(problem, span=req.span)
        root = Path(os.path.abspath(req.root))
        if not root.is_dir():
            raise ExecutorError(f"root filesystem {root} is not a directory", span=req.span)
        if not req.argv:
            raise ExecutorError("nothing to run: empty command", span=req.span)
        try:
            ident = resolve_user(root, req.user)
        except ExecutorError as exc:
            raise exc.with_span(req.span) if req.span else exc
        userns = os.geteuid() != 0
        if userns and (ident.uid != 0 or ident.gid != 0):
            raise ExecutorError(
                f"USER {req.user} needs real root: without root the chroot executor maps only your own user to "
                "root inside a user namespace (run as root, or use --executor emulate)", span=req.span)
        created = _prepare_mountpoints(root)
        etc: EtcFiles | None = None
        stubs: list[mountpoints.Stub] = []
        try:
            etc = EtcFiles()
            binds, etc_created = _prepare_etc_mountpoints(root, etc.paths)
            created += etc_created
            try:
                points, stubs = mountpoints.prepare(root, req.mounts)
            except ExecutorError as exc:
                raise exc.with_span(req.span) if req.span else exc
            mounts = tuple((None if m.source is None else str(m.source), m.target, m.readonly, m.size, m.file)
                           for m, _host in points)
            layered = None
            if req.upper is not None:
                upper = Path(os.path.abspath(req.upper))
                work, merged = upper.with_name(upper.name + "-work"), upper.with_name(upper.name + "-merged")
                for d in (upper, work, merged):
                    d.mkdir(exist_ok=True)
                layered = (str(upper), str(work), str(merged))
            plan = _Plan(root=str(root), argv=req.argv, env=step_env(req.env_dict(), ident.home),
                         workdir=req.workdir or "/", ident=ident, network=req.network, userns=userns,
                         host_uid=os.getuid(), host_gid=os.getgid(), etc_binds=binds, mounts=mounts,
                         overlay=layered)
            return _spawn(plan, req.stdin, req)
        finally:
            mountpoints.remove(stubs)
            _remove_mountpoints(created)
            if etc is not None:
                etc.close()


def _prepare_mountpoints(root: Path) -> list[Path]:
    """Create /proc, /dev, /tmp, /sys in the root when missing; return what was created (removed after the run)."""
    created = []
    for name, mode in (("proc", 0o555), ("dev", 0o755), ("tmp", 0o1777), ("sys", 0o555)):
        p = root / name
        if os.path.lexists(p):
            continue
        os.mkdir(p)
        os.chmod(p, mode)
        created.append(p)
    return created


def _prepare_etc_mountpoints(root: Path, files: dict[str, Path]) -> tuple[tuple[tuple[str, str], ...], list[Path]]:
    """Mount points for the step's /etc files (``runenv.EtcFiles``), resolved inside the root as runc resolves a
    mount destination (an image's /etc/hosts symlink is followed, confined to the root): a missing file (and its
    missing directories) is created empty, to be removed after the run; the (source, target) pairs to bind."""
    binds = []
    created: list[Path] = []
    for vpath, source in files.items():
        try:
            target = resolve_in_root(root, vpath)
            missing = []
            parent = target.parent
            while not os.path.lexists(parent):
                missing.append(parent)
                parent = parent.parent
            if not os.path.isdir(parent) or os.path.islink(parent):
                continue  # a file where /etc should be: nothing can be bound there
            for d in reversed(missing):
                os.mkdir(d, 0o755)
                os.chmod(d, 0o755)
                created.append(d)
            if not os.path.lexists(target):
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
                created.append(target)
            elif not stat.S_ISREG(os.lstat(target).st_mode):
                continue  # a directory or device where the file goes: the step sees the image's
        except (OSError, UnsafePathError):  # e.g. a link loop at /etc/hosts: the step sees what the image has
            continue
        binds.append((str(source), str(target)))
    return tuple(binds), created


def _remove_mountpoints(created: list[Path]) -> None:
    """Remove the mount points made for a run, newest first: empty files and directories only (a directory the
    command wrote into, such as /tmp, keeps its files and stays)."""
    for p in reversed(created):
        try:
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(p)
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(p)
        except OSError:
            pass


def _spawn(plan: _Plan, stdin_data: bytes, req: RunRequest) -> RunResult:
    if req.passthrough:  # the caller's own stdout/stderr, stdin /dev/null; only the report pipe is read
        in_r = os.dup(0) if req.interactive else os.open(os.devnull, os.O_RDONLY)
        out_w, err_w = os.dup(1), os.dup(2)
        in_w = out_r = err_r = -1
    else:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
    rep_r, rep_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child; its effects are what the tests observe
        code = 126
        try:
            os.setpgid(0, 0)  # its own process group: killed whole at the RUN's deadline
            for fd in (in_w, out_r, err_r, rep_r):
                if fd >= 0:
                    os.close(fd)
            code = _child(plan, in_r, out_w, err_w, rep_w)
        except BaseException as exc:  # noqa: BLE001 - report anything and never return into the parent's code
            try:
                os.write(rep_w, f"E{_reason(exc)}\n".encode())
            except OSError:
                pass
            code = _REPORT_FD_EXIT
        finally:
            os._exit(code)
    for fd in (in_r, out_w, err_w, rep_w):
        os.close(fd)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child already did it (or has exited)
    limits = req.limits
    if req.passthrough:
        return _wait_passthrough(pid, rep_r, req)
    both = InterleavedTail(limits.output_tail)

    def sink(stream: int, data: bytes) -> None:
        both.write(stream, data)
        if req.on_output is not None:
            req.on_output(stream, data)

    try:
        out, err, report = _pump(in_w, stdin_data, out_r, err_r, rep_r, limits.output_tail, limits.deadline(), sink)
    except TimeoutError:
        _kill_run(pid)
        os.waitpid(pid, 0)
        raise ExecutorError(limits.timeout_message(), span=req.span) from None
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        code = 128 - code
    return _result(code, out, err, report, req, both, sink)


def _result(code: int, out: bytes, err: bytes, report: bytes, req: RunRequest, both: InterleavedTail | None = None,
            sink: OutputSink | None = None) -> RunResult:
    """The RunResult of an ended run from its status, output and the sandbox's report lines (W warning, E setup
    error, X exec failure); ``both``/``sink`` are the interleaved tail and live output of a piped run."""
    warnings = []
    errors = []
    for line in report.decode(errors="replace").splitlines():
        if line.startswith("W"):
            warnings.append(line[1:])
        elif line.startswith("E"):
            errors.append(line[1:])
        elif line.startswith("X"):  # exec failed: report it like a shell would, as the command's own failure
            err += line[1:].encode() + b"\n"
            if sink is not None:
                sink(STDERR, line[1:].encode() + b"\n")
    if errors:
        raise ExecutorError("chroot executor could not set up the sandbox: " + "; ".join(errors), span=req.span)
    return RunResult(exit_code=code, stdout=out, stderr=err, output=both.chunks() if both is not None else (),
                     warnings=tuple(warnings))


STOP_GRACE = 10.0  # seconds a forwarded stop signal has before the process tree is killed (docker stop's default)


def _wait_passthrough(pid: int, rep_r: int, req: RunRequest, grace: float = STOP_GRACE) -> RunResult:
    """Wait for a passthrough run; SIGINT/SIGTERM/SIGQUIT received meanwhile are passed on to the container's
    first process (as docker run's signal proxy does), which is killed if it has not ended ``grace`` seconds
    later or on a second signal. A setup failure is ExecutorError; an exec failure is printed to stderr."""
    got: list[int] = []
    main = threading.current_thread() is threading.main_thread()

    def forward(signum: int, _frame: object) -> None:
        got.append(signum)
        if len(got) > 1:
            _kill_run(pid)
            return
        for init in _children(pid):
            try:
                os.kill(init, signum)
            except OSError:
                pass

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
    old = {s: signal.signal(s, forward) for s in stops} if main else {}
    report = bytearray()
    reading = True
    deadline: float | None = None
    try:
        while True:
            if reading and select.select([rep_r], [], [], 0.05)[0]:
                chunk = os.read(rep_r, 65536)  # the report pipe stays open in the sandbox's first child
                if not chunk:
                    reading = False
                    os.close(rep_r)
                elif len(report) < 1 << 20:
                    report += chunk
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if not reading:
                time.sleep(0.05)
            if got and deadline is None:
                deadline = time.monotonic() + grace
                os.write(2, f"minibuild: signal {got[0]} passed on to the program; it is killed if it has not "
                            f"ended in {grace:g} s (a PID 1 without a handler ignores it, as in Docker; signal "
                            f"again to kill it now)\n".encode())
            if deadline is not None and time.monotonic() > deadline:
                _kill_run(pid)
                deadline = float("inf")
        if reading:
            while chunk := os.read(rep_r, 65536):
                report += chunk
            os.close(rep_r)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        code = 128 - code
    res = _result(code, b"", b"", bytes(report), req)
    if res.stderr:
        os.write(2, res.stderr)
    return res


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _kill_run(pid: int) -> None:
    """SIGKILL the RUN's process tree: the pid namespace's init (which takes the whole namespace with it, even
    processes that left the process group) and the process group of the child that made it."""
    for p in _children(pid):
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _pump(in_w: int, data: bytes, out_r: int, err_r: int, rep_r: int, tail: int,
          deadline: float | None, sink: OutputSink | None = None) -> tuple[bytes, bytes, bytes]:
    """Feed stdin and drain stdout, stderr and the report pipe, all at once (one poll loop: a command filling
    either pipe never waits on the other); of stdout and stderr only the last ``tail`` bytes are kept (output
    streams past in bounded memory), and each chunk read goes to ``sink`` as ``(1|2, bytes)`` in the order read.
    TimeoutError (every fd closed) once ``deadline`` passes."""
    sel = selectors.DefaultSelector()
    bufs: dict[int, TailBuffer | bytearray] = {out_r: TailBuffer(tail), err_r: TailBuffer(tail), rep_r: bytearray()}
    for fd in bufs:
        sel.register(fd, selectors.EVENT_READ)
    view = memoryview(data)
    if view:
        os.set_blocking(in_w, False)
        sel.register(in_w, selectors.EVENT_WRITE)
    else:
        os.close(in_w)
    open_fds = len(bufs) + (1 if view else 0)
    while open_fds:
        wait = None if deadline is None else deadline - time.monotonic()
        if wait is not None and wait <= 0:
            for key in list(sel.get_map().values()):
                os.close(key.fd)
            sel.close()
            raise TimeoutError
        for key, _ in sel.select(wait):
            fd = key.fd
            if fd == in_w:
                try:
                    n = os.write(fd, view[:65536])
                except BrokenPipeError:
                    n = len(view)
                view = view[n:]
                if not view:
                    sel.unregister(fd)
                    os.close(fd)
                    open_fds -= 1
                continue
            chunk = os.read(fd, 65536)
            if chunk:
                target = bufs[fd]
                if isinstance(target, TailBuffer):
                    target.write(chunk)
                    if sink is not None:
                        sink(STDOUT if fd == out_r else STDERR, chunk)
                elif len(target) < 1 << 20:  # the report pipe: a few lines from minibuild's own child code
                    target += chunk
            else:
                sel.unregister(fd)
                os.close(fd)
                open_fds -= 1
    sel.close()
    out, err, rep = bufs[out_r], bufs[err_r], bufs[rep_r]
    assert isinstance(out, TailBuffer) and isinstance(err, TailBuffer) and isinstance(rep, bytearray)
    return out.getvalue(), err.getvalue(), bytes(rep)


# --------------------------------------------------------------------------- child side (after fork)

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return _libc


def _reason(exc: BaseException) -> str:
    """One line for the report pipe: an OSError's own message (without the "[Errno N]" prefix) and its path."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return str(exc) or type(exc).__name__


def _check(ret: int, what: str) -> None:
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _unshare(flags: int) -> None:
    if hasattr(os, "unshare"):
        os.unshare(flags)  # Python 3.12+
        return
    _check(_lib().unshare(ctypes.c_int(flags)), "unshare")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None
    _check(_lib().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _child(plan: _Plan, in_r: int, out_w: int, err_w: int, rep_w: int) -> int:
    def warn(msg: str) -> None:
        os.write(rep_w, f"W{msg}\n".encode())

    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if not plan.network:
        flags |= CLONE_NEWNET
    if plan.userns:
        flags |= CLONE_NEWUSER
    try:
        _unshare(flags)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create namespaces ({exc.strerror}); the kernel or the container this runs "
                                 "in forbids it (use --executor emulate)") from None
    if plan.userns:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {plan.host_uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {plan.host_gid} 1")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    pid = os.fork()  # the grandchild is pid 1 of the new pid namespace
    if pid == 0:
        code = 126
        try:
            code = _grandchild(plan, in_r, out_w, err_w, rep_w, warn)
        except BaseException as exc:  # noqa: BLE001
            try:
                os.write(rep_w, f"E{_reason(exc)}\n".encode())
            except OSError:
                pass
            code = _REPORT_FD_EXIT
        finally:
            os._exit(code)
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _grandchild(plan: _Plan, in_r: int, out_w: int, err_w: int, rep_w: int, warn) -> int:  # type: ignore[no-untyped-def]
    root = plan.root
    etc_binds = plan.etc_binds
    if plan.overlay is not None:
        root = _mount_overlay(plan.root, *plan.overlay, userns=plan.userns)
        etc_binds = tuple((src, root + dst[len(plan.root):] if dst.startswith(plan.root + "/") else dst)
                          for src, dst in etc_binds)
    arch = seccomp.native_arch()
    if arch is None:
        raise OSError(errno.ENOSYS, f"minibuild has no seccomp profile for {os.uname().machine} (it has x86_64 and "
                                    "aarch64); refusing to run the step without one (use --executor emulate)")
    try:
        _lib().sethostname(HOSTNAME.encode(), len(HOSTNAME))
    except OSError:
        pass
    _bind_root(root)  # raises (the step never runs) when the root cannot be made a nodev mount of its own
    _bind_etc_files(etc_binds, warn)
    proc = os.path.join(root, "proc")
    if os.path.isdir(proc) and not os.path.islink(proc):
        try:
            _mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError as exc:
            warn(f"/proc not mounted ({exc.strerror})")  # then the step sees the image's own (empty) /proc
        else:
            _harden_proc(proc)  # raises (the step never runs) when any path cannot be protected
    else:
        warn("/proc is not a directory in the root; not mounted")
    _mount_sys(os.path.join(root, "sys"), warn)
    dev = os.path.join(root, "dev")
    if os.path.isdir(dev) and not os.path.islink(dev):
        _setup_dev(dev, warn)
        _mount_dev_filesystems(dev, plan.userns, warn)
    else:
        warn("/dev is not a directory in the root; not mounted")
    _mount_run_mounts(root, plan.mounts)  # raises (the step never runs) when one cannot be mounted as asked

    _pivot_root(root, arch)  # raises: the step never runs with the host's root reachable
    workdir = plan.workdir if plan.workdir.startswith("/") else "/" + plan.workdir
    os.makedirs(workdir, mode=0o755, exist_ok=True)
    os.chdir(workdir)

    _join_session_keyring(arch)
    _install_seccomp(arch, warn)  # while privileged, before the capabilities go (Docker sets no no_new_privs)
    _drop_capabilities()  # raises (the step never runs) when the kernel refuses any part of it
    os.setsid()  # no controlling terminal, as under runc: /dev/tty answers ENXIO, never the invoking terminal
    ident = plan.ident
    if not plan.userns:
        os.setgroups(list(ident.groups))
        os.setgid(ident.gid)
        os.setuid(ident.uid)

    os.dup2(in_r, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    for fd in (in_r, out_w, err_w):
        if fd > 2:
            os.close(fd)
    os.closerange(3, rep_w)
    os.closerange(rep_w + 1, 1 << 16)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    argv = list(plan.argv)
    try:
        os.execvpe(argv[0], argv, plan.env)
    except FileNotFoundError:
        os.write(rep_w, f'Xminibuild: exec "{argv[0]}": executable file not found in $PATH\n'.encode())
        return 127
    except PermissionError:
        os.write(rep_w, f'Xminibuild: exec "{argv[0]}": permission denied\n'.encode())
        return 126
    except OSError as exc:
        code = 127 if exc.errno == errno.ENOENT else 126
        os.write(rep_w, f'Xminibuild: exec "{argv[0]}": {exc.strerror}\n'.encode())
        return code
    return 127  # not reached


def _overlay_options(lower: str, upper: str, work: str, userns: bool, volatile: bool | None = None) -> str:
    # no redirect_dir (a directory rename copies, as Docker's overlay2 gives it), no metacopy, no inode index;
    # in a user namespace the overlay keeps its opaque marks in user.* xattrs (Linux 5.11+), where redirects are
    # never made and the option may not be given. ``volatile`` (Linux 5.10+; None: where the probe found it):
    # the upper directory is scratch, so its unmount need not sync the whole filesystem it is on (without it, the
    # end of every step waits for every dirty byte there, a just-copied base among them)
    opts = f"lowerdir={lower},upperdir={upper},workdir={work},metacopy=off,index=off"
    if volatile if volatile is not None else _overlay_volatile():
        opts += ",volatile"
    return opts + (",userxattr" if userns else ",redirect_dir=off")


def _overlay_volatile() -> bool:
    """Whether the probe mounted its overlay with ``volatile`` (False before any probe)."""
    return bool(_overlay_probe) and _overlay_probe[0] is None and _overlay_volatile_ok[0]


def _mount_overlay(lower: str, upper: str, work: str, merged: str, *, userns: bool,
                   volatile: bool | None = None) -> str:
    """Mount the step's root as an overlay: the stage's tree read-only below, the step's changes in ``upper``."""
    for path in (lower, upper, work):
        if "," in path or ":" in path:
            raise OSError(errno.EINVAL, f"cannot mount an overlay over {path!r}: ',' and ':' are not allowed there")
    try:
        _mount("overlay", merged, "overlay", 0, _overlay_options(lower, upper, work, userns, volatile))
    except OSError as exc:
        raise OSError(exc.errno, f"cannot mount the step's overlay ({exc.strerror})") from None
    return merged


_overlay_probe: list[str | None] = []
_overlay_volatile_ok = [False]


def overlay_problem() -> str | None:
    """Why the chroot executor cannot give a step an overlay mount here (None: it can), found once per process by
    mounting one in a throwaway namespace, as a step's would be mounted."""
    if _overlay_probe:
        return _overlay_probe[0]
    if platform_problem() is not None:
        _overlay_probe.append("the chroot executor cannot run here")
        return _overlay_probe[0]
    import tempfile

    userns = os.geteuid() != 0
    with tempfile.TemporaryDirectory(prefix="minibuild-overlay-probe-") as top:
        dirs = [os.path.join(top, n) for n in ("lower", "upper", "work", "merged")]
        for d in dirs:
            os.mkdir(d)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            msg = b""
            try:
                os.close(r)
                uid, gid = os.getuid(), os.getgid()
                _unshare(CLONE_NEWNS | (CLONE_NEWUSER if userns else 0))
                if userns:
                    Path("/proc/self/setgroups").write_text("deny")
                    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
                    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
                _mount(None, "/", None, MS_REC | MS_PRIVATE)
                try:
                    _mount_overlay(dirs[0], dirs[1], dirs[2], dirs[3], userns=userns, volatile=True)
                    msg = b"+volatile"
                except OSError:
                    _mount_overlay(dirs[0], dirs[1], dirs[2], dirs[3], userns=userns, volatile=False)
                    msg = b"+"
            except BaseException as exc:  # noqa: BLE001
                msg = _reason(exc).encode() or b"failed"
            os.write(w, msg)
            os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as fh:
            said = fh.read().decode(errors="replace")
        os.waitpid(pid, 0)
    _overlay_volatile_ok[0] = said == "+volatile"
    _overlay_probe.append(None if said.startswith("+") else said or "the overlay probe said nothing")
    return _overlay_probe[0]


def _syscall(arch: str, name: str, *args: int | bytes | None) -> int:
    """A raw syscall by name (glibc has no pivot_root or keyctl wrapper); returns its result, raises OSError."""
    cargs = [ctypes.c_char_p(a) if isinstance(a, bytes) or a is None else ctypes.c_long(a) for a in args]
    call = _lib().syscall
    call.restype = ctypes.c_long
    ret = int(call(ctypes.c_long(seccomp.syscall_numbers(arch)[name]), *cargs))
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{name}: {os.strerror(e)}")
    return ret


# statvfs flags a bind remount must repeat (a user namespace may not clear them); atime flags are kept by the kernel
_KEPT_FLAGS = ((os.ST_RDONLY, MS_RDONLY), (os.ST_NOSUID, MS_NOSUID), (os.ST_NOEXEC, MS_NOEXEC))


def _bind_root(root: str) -> None:
    """Bind-mount the root onto itself, so it is a mount point pivot_root can use, and remount that bind
    ``nodev``: a device node anywhere in the root (one a step made with mknod, or one an image layer carries)
    cannot be opened, as Docker's device cgroup refuses them. Checked with statvfs; fails closed."""
    try:
        _mount(root, root, None, MS_BIND)
        have = os.statvfs(root).f_flag
        keep = sum(ms for st_flag, ms in _KEPT_FLAGS if have & st_flag)
        _mount(None, root, None, MS_BIND | MS_REMOUNT | MS_NODEV | keep)
        nodev = bool(os.statvfs(root).f_flag & os.ST_NODEV)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot bind-mount the root nodev ({exc.strerror}); refusing to run the step "
                                 "without it") from None
    if not nodev:
        raise OSError(errno.EPERM, "the root still allows device nodes after remounting it nodev; refusing to run "
                                   "the step")


def _pivot_root(root: str, arch: str) -> None:
    """Make ``root`` the root of this mount namespace and detach the old one, as runc does: pivot_root(".", ".")
    stacks the old root on the new one, and umount2(".", MNT_DETACH) takes it away. No chroot(2) is involved,
    so no ``..`` and no later chroot(2) inside the step leads back to the host's files."""
    try:
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new = os.open(root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new)
            _syscall(arch, "pivot_root", b".", b".")
            os.fchdir(old)  # "." is now the old root, stacked on top of the new one
            _check(_lib().umount2(b".", ctypes.c_int(MNT_DETACH)), "umount2 of the old root")
        finally:
            os.close(old)
            os.close(new)
        os.chdir("/")
    except OSError as exc:
        raise OSError(exc.errno, f"cannot pivot_root into the root ({exc.strerror}); refusing to run the step "
                                 "where the host's root stays reachable") from None


def _join_session_keyring(arch: str) -> None:
    """Give the step a new, empty session keyring, as runc does, so the invoking user's keys stay out of reach
    (the seccomp profile then refuses keyctl altogether). A kernel without keys support has nothing to hide."""
    try:
        _syscall(arch, "keyctl", KEYCTL_JOIN_SESSION_KEYRING, None)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            return
        raise OSError(exc.errno, f"cannot join a new session keyring ({exc.strerror}); refusing to run the step "
                                 "with the invoking user's keyring") from None


def _install_seccomp(arch: str, warn) -> None:  # type: ignore[no-untyped-def]
    """Docker's default seccomp profile (minibuild.executors.seccomp) for the capabilities the step keeps. A kernel
    without seccomp gets a warning; a kernel with it that refuses the filter fails the step closed."""
    if not seccomp.kernel_has_seccomp(_lib()):
        warn("this kernel has no seccomp; the step runs without Docker's syscall filter")
        return
    try:
        seccomp.install(_lib(), seccomp.program(seccomp.docker_verdicts(arch, DOCKER_CAPABILITY_MASK)))
    except OSError as exc:
        raise OSError(exc.errno, f"cannot install the seccomp filter ({exc.strerror}); refusing to run the step "
                                 "without it") from None


def _setup_dev(dev: str, warn) -> None:  # type: ignore[no-untyped-def]
    """A ``nodev`` tmpfs /dev holding bind-mounted host device nodes, fd links, /dev/shm, /dev/pts and /dev/mqueue
    dirs. The binds are mounts of their own, so they open; a node a step makes in /dev does not."""
    try:
        _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NODEV | MS_STRICTATIME, "mode=755,size=65536k")
    except OSError as exc:
        warn(f"/dev not mounted ({exc.strerror})")
        return
    for name in DEVICES:
        target = os.path.join(dev, name)
        host = "/dev/" + name
        if not os.path.exists(host) or not stat.S_ISCHR(os.stat(host).st_mode):
            continue
        with open(target, "wb"):
            pass
        try:
            _mount(host, target, None, MS_BIND)
        except OSError as exc:
            os.unlink(target)
            warn(f"/dev/{name} unavailable ({exc.strerror})")
    for name, target in DEV_LINKS:
        os.symlink(target, os.path.join(dev, name))
    for name in ("shm", "pts", "mqueue"):
        os.mkdir(os.path.join(dev, name), 0o755)


# runc's /dev filesystems for a container (its default spec): a private devpts instance whose ptmx /dev/ptmx links
# to, a 64 MiB world-writable /dev/shm, and the POSIX message queues of the step's own ipc namespace
DEV_FILESYSTEMS = (
    ("pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"),
    ("mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
    ("shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k"),
)


def _mount_dev_filesystems(dev: str, userns: bool, warn) -> None:  # type: ignore[no-untyped-def]
    """Mount DEV_FILESYSTEMS on /dev's dirs (in a user namespace devpts without gid=5, which is not mapped there,
    as rootless runc). One that the kernel refuses leaves its empty dir and a warning; /dev/shm then stays
    world-writable (1777) all the same."""
    for name, fstype, flags, data in DEV_FILESYSTEMS:
        target = os.path.join(dev, name)
        if userns and data and ",gid=5" in data:
            data = data.replace(",gid=5", "")
        try:
            _mount(fstype if fstype != "tmpfs" else name, target, fstype, flags, data)
        except OSError as exc:
            warn(f"/dev/{name} not mounted ({exc.strerror})")
            if name == "shm":
                os.chmod(target, 0o1777)


def _mount_sys(sys_dir: str, warn) -> None:  # type: ignore[no-untyped-def]
    """A read-only sysfs on /sys with Docker's masked paths covered, as runc mounts it (no cgroup filesystems).
    A kernel that refuses sysfs here (a user namespace sharing the host's network) leaves /sys empty with a
    warning; a masked path that cannot be covered stops the step, as for /proc."""
    if not os.path.isdir(sys_dir) or os.path.islink(sys_dir):
        warn("/sys is not a directory in the root; not mounted")
        return
    try:
        _mount("sysfs", sys_dir, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as exc:
        warn(f"/sys not mounted ({exc.strerror})")
        return
    for name in MASKED_SYS_PATHS:
        target = os.path.join(sys_dir, name)
        if not os.path.isdir(target) or os.path.islink(target):
            continue
        try:
            _mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
        except OSError as exc:
            raise OSError(exc.errno, f"cannot mask /sys/{name} ({exc.strerror}); refusing to run the step "
                                     "without it") from None


def _bind_etc_files(binds: tuple[tuple[str, str], ...], warn) -> None:  # type: ignore[no-untyped-def]
    """Bind the step's /etc/hosts, resolv.conf and hostname over their mount points (Docker's bind mounts: the
    step reads and may change them; none of it reaches the root, whose own files stay as they were)."""
    for source, target in binds:
        try:
            _mount(source, target, None, MS_BIND)
        except OSError as exc:
            warn(f"{os.path.basename(target)} not bound ({exc.strerror})")


def _mount_point(root: str, vpath: str, is_file: bool) -> str:
    """The mount point of ``vpath`` as the mounts made so far show the root (a target inside an earlier mount of
    the same RUN lies in that mount), resolved by the confined resolver; made when missing (directories 0755,
    an empty file for a file mount), as runc makes a mount destination. Inside a read-only mount that fails."""
    host = resolve_in_root(root, vpath)
    mountpoints.make_point(host, is_file)
    return str(host)


def _mount_run_mounts(root: str, mounts: tuple[_RunMountPlan, ...]) -> None:
    """The step's ``RUN --mount``s, in order: a bind of the host source (remounted read-only when asked, checked
    with statvfs), or a tmpfs of the given size. Any failure raises: the step never runs without a mount it
    asked for, nor with a read-only one writable. Read-only is applied once every mount is made, so a mount
    point inside a read-only bind (a private copy then, made by the engine) can still be made."""
    read_only: list[tuple[str, str]] = []
    for source, vtarget, readonly, size, is_file in mounts:
        try:
            target = _mount_point(root, vtarget, is_file)
            if source is None:
                _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV,
                       "mode=755" + (f",size={size}" if size else ""))
            else:
                _mount(source, target, None, MS_BIND | MS_REC)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot mount {'a tmpfs' if source is None else 'RUN --mount'} at {vtarget}: "
                                     f"{os.strerror(exc.errno or 0)}; refusing to run the step without it") from None
        if readonly:
            read_only.append((target, vtarget))
    for target, vtarget in read_only:
        try:
            have = os.statvfs(target).f_flag
            keep = sum(ms for st_flag, ms in _KEPT_FLAGS if have & st_flag) | (MS_NODEV if have & os.ST_NODEV else 0)
            _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | keep)
            if not os.statvfs(target).f_flag & os.ST_RDONLY:
                raise OSError(errno.EPERM, "still writable after remounting it read-only")
        except OSError as exc:
            raise OSError(exc.errno, f"cannot make the RUN --mount at {vtarget} read-only "
                                     f"({os.strerror(exc.errno or 0)}); refusing to run the step without it") from None


def _harden_proc(proc: str) -> None:
    """Docker's /proc profile: host-wide knobs read-only, kernel-internal files masked. Fails closed."""
    for name in READONLY_PROC_PATHS:
        target = os.path.join(proc, name)
        if not os.path.lexists(target):
            continue  # this kernel has no such file: nothing to protect (runc skips it too)
        try:
            _mount(target, target, None, MS_BIND | MS_REC)
            _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
            readonly = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot make /proc/{name} read-only ({exc.strerror}); refusing to run the "
                                     "step without it") from None
        if not readonly:
            raise OSError(errno.EPERM, f"/proc/{name} is still writable after remounting it read-only; refusing "
                                       "to run the step")
    for name in MASKED_PROC_PATHS:
        target = os.path.join(proc, name)
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            continue
        try:
            if stat.S_ISDIR(st.st_mode):
                _mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
            else:
                _mount("/dev/null", target, None, MS_BIND)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot mask /proc/{name} ({exc.strerror}); refusing to run the step "
                                     "without it") from None


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _prctl(option: int, arg: int, what: str, arg3: int = 0) -> int:
    ret = _lib().prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(arg3), ctypes.c_ulong(0),
                       ctypes.c_ulong(0))
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return int(ret)


def _last_capability() -> int:
    """The highest capability number this kernel knows (PR_CAPBSET_READ answers EINVAL past it)."""
    last = -1
    for cap in range(64):
        if _lib().prctl(ctypes.c_int(PR_CAPBSET_READ), ctypes.c_ulong(cap), ctypes.c_ulong(0), ctypes.c_ulong(0),
                        ctypes.c_ulong(0)) < 0:
            break
        last = cap
    if last < 0:
        raise OSError(errno.EINVAL, "PR_CAPBSET_READ does not work here")
    return last


def _drop_capabilities(keep: int | None = None) -> None:
    """Reduce this process to Docker's default capabilities, as runc does before exec: bounding set dropped with
    PR_CAPBSET_DROP, ambient cleared, and capset(2) making effective = permitted = ``keep`` and inheritable empty
    (as Docker since CVE-2022-24769). Each step is read back; any failure raises, so the step never runs with more.
    no_new_privs is deliberately not set: Docker sets it only with ``--security-opt no-new-privileges``, so setuid
    programs such as su behave as they do under docker build."""
    keep = DOCKER_CAPABILITY_MASK if keep is None else keep
    try:
        last = _last_capability()
        for cap in range(last + 1):
            if not keep & (1 << cap):
                _prctl(PR_CAPBSET_DROP, cap, f"PR_CAPBSET_DROP {cap}")
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, "PR_CAP_AMBIENT_CLEAR_ALL")
        header = _CapHeader(version=_LINUX_CAPABILITY_VERSION_3, pid=0)
        data = (_CapData * 2)()
        for i in range(2):
            word = (keep >> (32 * i)) & 0xFFFFFFFF
            data[i].effective = data[i].permitted = word
            data[i].inheritable = 0
        _check(_lib().capset(ctypes.byref(header), data), "capset")
        # read everything back: what the kernel holds, not what we asked for
        bounding = sum(1 << cap for cap in range(last + 1) if _prctl(PR_CAPBSET_READ, cap, "PR_CAPBSET_READ"))
        got = (_CapData * 2)()
        header = _CapHeader(version=_LINUX_CAPABILITY_VERSION_3, pid=0)
        _check(_lib().capget(ctypes.byref(header), got), "capget")
        eff = got[0].effective | (got[1].effective << 32)
        perm = got[0].permitted | (got[1].permitted << 32)
        inh = got[0].inheritable | (got[1].inheritable << 32)
        ambient = sum(1 << cap for cap in range(last + 1)
                      if _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, "PR_CAP_AMBIENT_IS_SET", cap))
    except OSError as exc:
        raise OSError(exc.errno, f"cannot drop capabilities ({exc.strerror}); refusing to run the step with "
                                 "them") from None
    want = keep & ((1 << (last + 1)) - 1)
    if bounding & ~want or eff & ~want or perm & ~want or inh or ambient:
        raise OSError(errno.EPERM, f"capabilities still held after dropping them (bounding {bounding:#x}, "
                                   f"effective {eff:#x}, inheritable {inh:#x}, ambient {ambient:#x}); "
                                   "refusing to run the step")
