"""Breaking out of the chroot executor for real: chroot(2) tricks, device nodes, the keyring, Docker's syscall filter.

Each attack runs a small static x86-64 program (source below) inside a busybox root through `ChrootExecutor` and
checks the host afterwards. The double-chroot escape wrote a host file, a mknod'ed /dev/kmsg opened, the step
shared the invoking user's session keyring, and unshare(CLONE_NEWUSER) and keyctl worked, before the executor
entered the root with pivot_root, nodev mounts, a new session keyring and Docker's seccomp profile.
"""

from __future__ import annotations

import base64
import ctypes
import os
import shutil
import stat
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from minibuild.executors import chroot
from minibuild.executors.chroot import ChrootExecutor, platform_problem
from minibuild.executors.executor import RunRequest, RunResult
from minibuild.errors import ExecutorError
from tests.support import require, require_root

PATH = (("PATH", "/bin"),)

# A 664-byte static x86-64 program (no libc), base64 of zlib, made with `as` + `ld -static -N -s` from this source.
# Its arguments are raw syscalls separated by ",": NR A0 .. A5 (decimal, '-' negates; @TEXT passes a pointer to
# TEXT); it makes each call in turn and prints each return value (-errno on failure) on a line of its own.
#         .intel_syntax noprefix
#         .globl _start
# _start: lea r12, [rsp+16]                 # argv[1]
# call_start:
#         lea rdi, [rip+vals]; xor eax, eax; mov ecx, 7; rep stosq; xor r13d, r13d
# token:  mov rsi, [r12]; test rsi, rsi; jz last_call; add r12, 8
#         cmp word ptr [rsi], 0x002c; je do_call          # ","
#         cmp byte ptr [rsi], '@'; jne number; lea rax, [rsi+1]; jmp store
# number: xor eax, eax; xor r8d, r8d; cmp byte ptr [rsi], '-'; jne digits; inc r8d; inc rsi
# digits: movzx ecx, byte ptr [rsi]; sub ecx, '0'; cmp ecx, 9; ja digits_done
#         imul rax, rax, 10; add rax, rcx; inc rsi; jmp digits
# digits_done: test r8d, r8d; jz store; neg rax
# store:  cmp r13d, 7; jae token; lea rdx, [rip+vals]; mov [rdx+r13*8], rax; inc r13d; jmp token
# do_call: call run_one; jmp call_start
# last_call: call run_one; mov eax, 60; xor edi, edi; syscall
# run_one: test r13d, r13d; jz run_done; lea rbx, [rip+vals]
#         mov rax, [rbx]; mov rdi, [rbx+8]; mov rsi, [rbx+16]; mov rdx, [rbx+24]; mov r10, [rbx+32]
#         mov r8, [rbx+40]; mov r9, [rbx+48]; syscall
#         lea rsi, [rip+buf+31]; mov byte ptr [rsi], 10; mov r9, rax; test rax, rax; jns print_abs; neg rax
# print_abs: mov ecx, 10
# print_digit: xor edx, edx; div rcx; add edx, '0'; dec rsi; mov [rsi], dl; test rax, rax; jnz print_digit
#         test r9, r9; jns print_out; dec rsi; mov byte ptr [rsi], '-'
# print_out: lea rdx, [rip+buf+32]; sub rdx, rsi; mov eax, 1; mov edi, 1; syscall
# run_done: ret
#         .bss
# vals:   .skip 56
# buf:    .skip 32
SYSPROBE = (
    "eNqrd/VxY2JkZIABJgY7BhCvgsEBzHeAis9AKAGKWQDVODCwMDCD1bKD1UMATB+M5oDqS4DSMGN8elNUBDx6bf8A2YYHdoKM+Oyx2tXwrWe3iYpH"
    "67eSRM/mIxxpzXY6JQENdg6lbB69boyv9Q0PuBoeaLDTLWVz/H/A4/8x/m18zS8Nmn9ylvN4ZB/g8mA8ARR8/dK19UAJs8f3G47Nf9mL13r0ik4F"
    "mu/VyfLK8f/R13NfCAB5r5tecAKpHTYgB/znZ3VtfVtS6NErmw3ke3Qze3RXc3h0Fwt4dAdL+HQHK/h0O2v4dHsb8LN69JrOA6o5xsbl2XnQo/VA"
    "JciinVwgYy55fP/YfMjA4/+5DjGgTOk739aTlWxA7jE2XaAjMkBGa37aAQqD/SCCn/Uwg15xRnFJUUliEoNeSWpFCYNeUnExA+WAGxrW7BjxwoAS"
    "LzCAxmUQBKkBYmYov4HRAUpD+BEM+PUzIulFBjD9YgT0AwDsDHR3"
)

# x86-64 syscall numbers (asm/unistd_64.h) and flags used below
SYS = {"open": 2, "socket": 41, "clone": 56, "chdir": 80, "fchdir": 81, "mkdir": 83, "personality": 135,
       "pivot_root": 155, "chroot": 161, "mount": 165, "umount2": 166, "reboot": 169, "init_module": 175,
       "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "setns": 308, "finit_module": 313,
       "bpf": 321, "userfaultfd": 323, "kexec_file_load": 320, "clone3": 435, "getpid": 39}
O_WRONLY, O_CREAT, O_DIRECTORY = 0o1, 0o100, 0o200000
CLONE_NEWUSER = 0x10000000
EPERM, EACCES, ENOSYS = 1, 13, 38


@pytest.fixture()
def root() -> Iterator[Path]:
    require_root()
    require(os.uname().machine == "x86_64", "the probe is an x86-64 binary")
    require(platform_problem() is None, f"chroot executor unavailable: {platform_problem()}")
    from tests.engines import make_busybox_root

    base = Path(tempfile.mkdtemp(prefix="mb-breakout-", dir="/tmp"))
    os.chmod(base, 0o755)  # world-traversable: the unprivileged test's user must reach the root and the target
    root = make_busybox_root(base / "root")
    os.chmod(root, 0o755)
    (root / "probe").write_bytes(zlib.decompress(base64.b64decode(SYSPROBE)))
    (root / "probe").chmod(0o755)
    yield root
    shutil.rmtree(base, ignore_errors=True)


def run(root: Path, *argv: str, **kw: object) -> RunResult:
    return ChrootExecutor().run(RunRequest(root=root, argv=argv, env=PATH, **kw))  # type: ignore[arg-type]


def probe(root: Path, *calls: tuple[object, ...], before: str = "") -> list[int]:
    """Run the syscalls ``calls`` (name or number first) in one process in the sandbox, after the shell commands
    ``before`` when given; their return values."""
    argv: list[str] = ["/probe"]
    for call in calls:
        if len(argv) > 1:
            argv.append(",")
        name, *args = call
        argv.append(str(SYS[name] if isinstance(name, str) else name))
        argv += [a if isinstance(a, str) else str(a) for a in args]
    if before:
        argv = ["/bin/sh", "-c", f'{before}\nexec "$@"', "sh", *argv]
    res = run(root, *argv)
    assert res.exit_code == 0, res
    return [int(x) for x in res.stdout.split()]


def _escape_target(root: Path) -> Path:
    outside = root.parent / "outside"
    outside.mkdir()
    outside.chmod(0o777)  # so that only the sandbox, not file permissions, can stop the unprivileged case
    return outside / "HOSTFILE"


def _double_chroot(target: Path, *, keep_fd: bool) -> list[tuple[object, ...]]:
    """The classic escape: chroot into a subdirectory while the cwd (or an fd) stays above it, climb with
    chdir(".."), then chroot(".") at what is then the host's root, and create a host file."""
    calls: list[tuple[object, ...]] = []
    if keep_fd:
        calls.append(("open", "@.", O_DIRECTORY))  # fd 3: the sandbox hands the step only 0-2
    calls += [("mkdir", "@x", 0o755), ("chroot", "@x")]
    if keep_fd:
        calls.append(("fchdir", 3))
    calls += [("chdir", "@..")] * 24 + [("chroot", "@."), ("open", f"@{target}", O_WRONLY | O_CREAT, 0o644)]
    return calls


@pytest.mark.parametrize("keep_fd", [False, True], ids=["cwd-above-root", "fd-above-root"])
def test_double_chroot_escape_stays_in_the_root(root: Path, keep_fd: bool) -> None:
    target = _escape_target(root)
    results = probe(root, *_double_chroot(target, keep_fd=keep_fd))
    chroot_x = results[2] if keep_fd else results[1]
    assert chroot_x == 0, results  # the attack really ran: chroot(2) is allowed, as under Docker
    assert not target.exists(), "the step created a file on the host"
    assert results[-1] == -2, results  # ENOENT: the path does not exist inside the root
    assert list(target.parent.iterdir()) == []


def test_double_chroot_escape_as_an_unprivileged_user(root: Path) -> None:
    from tests.executors.test_chroot import _as_unprivileged

    target = _escape_target(root)
    for p in [root, *root.rglob("*")]:
        os.lchown(p, 65534, 65534)

    def go() -> list[int]:
        return probe(root, *_double_chroot(target, keep_fd=False))

    results = _as_unprivileged(go)
    assert not isinstance(results, BaseException), results
    assert results[1] == 0, results  # chroot(2) worked: root inside the user namespace has CAP_SYS_CHROOT
    assert not target.exists(), "the step created a file on the host"


def test_old_root_is_detached(root: Path) -> None:
    res = run(root, "/bin/sh", "-c", "cat /proc/self/mountinfo; ls /proc/1/root/")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.decode().splitlines()
    points = [line.split()[4] for line in lines if " - " in line]
    etc_files = ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname")  # Docker's bound files (runenv.EtcFiles)
    assert points and all(p == "/" or p in etc_files or p.split("/")[1] in ("proc", "dev", "sys")
                          for p in points), points
    assert points[0] == "/"  # the stage root is the namespace's root mount, not a directory of the host's
    mount_points = {"proc", "dev", "tmp", "sys"}  # made for the run when missing, removed after it
    assert set(lines[len(points):]) - mount_points == set(os.listdir(root)) - mount_points, lines[len(points):]


def _opens_for_writing(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_WRONLY))
    except OSError:
        return False
    return True


def test_device_nodes_made_in_the_root_do_not_open(root: Path) -> None:
    # /dev/kmsg opens for writing without any capability (it injects lines into the host's kernel log); Docker's
    # device cgroup refuses it. Nothing is written: the probe only opens.
    require(_opens_for_writing("/dev/kmsg"), "this host cannot open /dev/kmsg itself, so there is no control")
    disk = os.stat("/").st_dev
    nodes = {"/kmsg": "c 1 11", "/tmp/kmsg": "c 1 11", "/dev/kmsg": "c 1 11", "/dev/shm/kmsg": "c 1 11",
             "/disk": f"b {os.major(disk)} {os.minor(disk)}"}
    # mknod itself works for root with CAP_MKNOD, as under Docker (set -e: the probe runs only if every one did)
    mknods = "set -e; " + "; ".join(f"/bin/busybox mknod {p} {spec}" for p, spec in nodes.items())
    results = probe(root, *[("open", f"@{p}", O_WRONLY) for p in nodes],
                    *[("open", f"@{p}", O_WRONLY) for p in ("/dev/null", "/dev/zero")], before=mknods)
    assert results[:len(nodes)] == [-EACCES] * len(nodes), dict(zip(nodes, results, strict=False))
    assert all(fd >= 0 for fd in results[len(nodes):]), results  # Docker's /dev/null and /dev/zero still open
    # what stays in the layer is the node itself, as Docker's build leaves it
    kept = os.lstat(root / "kmsg")
    assert stat.S_ISCHR(kept.st_mode) and (os.major(kept.st_rdev), os.minor(kept.st_rdev)) == (1, 11)
    assert stat.S_ISBLK(os.lstat(root / "disk").st_mode)


KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING = 0, -3, -4


def _my_keyring(which: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return int(libc.syscall(ctypes.c_long(SYS["keyctl"]), ctypes.c_long(KEYCTL_GET_KEYRING_ID),
                            ctypes.c_long(which), ctypes.c_long(0)))


def test_a_step_gets_a_fresh_session_keyring(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = _my_keyring(KEY_SPEC_SESSION_KEYRING)
    require(mine > 0, "this process has no session keyring (or the kernel has no keys)")
    assert probe(root, ("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0),
                 ("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0)) == [-EPERM, -EPERM]
    # beneath the syscall filter, the step's session keyring is a new one (runc joins a fresh one too)
    monkeypatch.setattr(chroot, "_install_seccomp", lambda arch, warn: None)
    theirs = probe(root, ("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0))[0]
    assert theirs > 0 and theirs != mine


# (what, syscall, expected): Docker's default profile for a container with Docker's default capabilities, as
# moby's profiles/seccomp/default.json states it: "eperm" refused, "enosys" unknown to the profile, "ok" allowed
PROFILE_CASES = [
    ("unshare a user namespace", ("unshare", CLONE_NEWUSER), "eperm"),
    ("clone a user namespace", ("clone", CLONE_NEWUSER | 17, 0, 0, 0, 0), "eperm"),
    ("clone3", ("clone3", 0, 0), "enosys"),
    ("setns", ("setns", -1, 0), "eperm"),
    ("keyctl", ("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0), "eperm"),
    ("add_key", ("add_key", "@user", "@k", "@v", 1, KEY_SPEC_USER_KEYRING), "eperm"),
    ("request_key", ("request_key", "@user", "@k", 0, 0), "eperm"),
    ("bpf", ("bpf", 0, 0, 0), "eperm"),
    ("userfaultfd", ("userfaultfd", 0), "eperm"),
    ("mount", ("mount", "@none", "@/tmp", "@tmpfs", 0, 0), "eperm"),
    ("umount2", ("umount2", "@/proc", 2), "eperm"),
    ("pivot_root", ("pivot_root", "@.", "@."), "eperm"),
    ("init_module", ("init_module", 0, 0, 0), "eperm"),
    ("finit_module", ("finit_module", -1, 0, 0), "eperm"),
    ("kexec_file_load", ("kexec_file_load", -1, -1, 0, 0, 0), "eperm"),
    ("personality ADDR_NO_RANDOMIZE", ("personality", 0x0040000), "eperm"),
    ("socket AF_VSOCK", ("socket", 40, 1, 0), "eperm"),
    ("x32 ABI getpid", (SYS["getpid"] | 0x40000000,), "enosys"),
    ("a syscall newer than the profile", (451, 0, 0, 0, 0), "enosys"),
    ("personality query", ("personality", 0xFFFFFFFF), "ok"),
    ("socket AF_UNIX", ("socket", 1, 1, 0), "ok"),
    ("chroot", ("chroot", "@/"), "ok"),
    ("getpid", ("getpid",), "ok"),
]


def test_docker_default_seccomp_profile(root: Path) -> None:
    results = probe(root, *[call for _, call, _ in PROFILE_CASES])
    got = {what: "ok" if r >= 0 else {-EPERM: "eperm", -ENOSYS: "enosys"}.get(r, str(r))
           for (what, _, _), r in zip(PROFILE_CASES, results, strict=True)}
    assert got == {what: want for what, _, want in PROFILE_CASES}
    status = run(root, "/bin/grep", "Seccomp:", "/proc/self/status").stdout.split()
    assert status == [b"Seccomp:", b"2"]  # filter mode


def test_the_filter_does_not_depend_on_the_images_proc(root: Path) -> None:
    # an image whose /proc is a symlink gets no /proc mounted (a warning); the filter must be installed all the same
    assert not os.path.lexists(root / "proc")
    (root / "proc").symlink_to("tmp")
    assert probe(root, ("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0), ("unshare", CLONE_NEWUSER)) \
        == [-EPERM, -EPERM]


def test_without_the_filter_the_probe_gets_through(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # control for the profile test: the same sandbox minus the filter lets a step make a user namespace (in which
    # it would hold CAP_SYS_ADMIN), which is why the filter matters even with capabilities dropped
    require(Path("/proc/sys/user/max_user_namespaces").read_text().strip() != "0", "user namespaces are off here")
    monkeypatch.setattr(chroot, "_install_seccomp", lambda arch, warn: None)
    assert probe(root, ("unshare", CLONE_NEWUSER)) == [0]


def test_fails_closed_when_the_seccomp_filter_is_refused(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from minibuild.executors import seccomp

    monkeypatch.setattr(seccomp, "SECCOMP_MODE_FILTER", 0x7F)  # PR_SET_SECCOMP answers EINVAL
    with pytest.raises(ExecutorError, match=r"cannot install the seccomp filter \(PR_SET_SECCOMP: Invalid argument"
                                            r"\); refusing to run the step"):
        run(root, "/bin/touch", "/ran")
    assert not (root / "ran").exists()


def test_fails_closed_when_pivot_root_is_refused(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = chroot._syscall

    def refuse(arch: str, name: str, *args: int | bytes | None) -> int:
        if name == "pivot_root":
            raise OSError(22, "pivot_root: Invalid argument")
        return real(arch, name, *args)

    monkeypatch.setattr(chroot, "_syscall", refuse)
    with pytest.raises(ExecutorError, match=r"cannot pivot_root into the root \(pivot_root: Invalid argument\); "
                                            r"refusing to run the step"):
        run(root, "/bin/touch", "/ran")
    assert not (root / "ran").exists()
