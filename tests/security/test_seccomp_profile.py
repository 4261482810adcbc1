"""The seccomp program the chroot executor installs, run in a small classic-BPF interpreter for both architectures.

The real filter is tested for real in test_chroot_breakout.py (x86-64); this covers aarch64, which the test machine
cannot run, and the argument checks. Syscall numbers are written out from the kernel's tables (asm/unistd_64.h,
asm-generic/unistd.h) and the verdicts from moby's profiles/seccomp/default.json, not taken from the module.
"""

from __future__ import annotations

import struct

import pytest

from minibuild.executors import seccomp
from minibuild.executors.chroot import DOCKER_CAPABILITY_MASK

ALLOW, EPERM, ENOSYS, KILL = 0x7FFF0000, 0x00050001, 0x00050026, 0x80000000
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
AUDIT_ARCH_I386, AUDIT_ARCH_ARM = 0x40000003, 0x40000028


def evaluate(code: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """Run a cBPF seccomp program (the opcodes a filter may use for this) on one struct seccomp_data."""
    argv = (list(args) + [0] * 6)[:6]
    data = struct.pack("<IIQ6Q", nr, arch, 0, *argv)
    insns = [struct.unpack("=HBBI", code[i:i + 8]) for i in range(0, len(code), 8)]
    assert 0 < len(insns) <= 4096
    acc, pc = 0, 0
    while True:
        op, jt, jf, k = insns[pc]
        pc += 1
        if op == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
        elif op == 0x15:
            pc += jt if acc == k else jf
        elif op == 0x35:
            pc += jt if acc >= k else jf
        elif op == 0x45:
            pc += jt if acc & k else jf
        elif op == 0x05:
            pc += k
        elif op == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


# (arch, syscall number, args, verdict) for a container with Docker's default capabilities
DEFAULT_CASES = [
    ("x86_64", 0, (), ALLOW),  # read
    ("x86_64", 257, (), ALLOW),  # openat
    ("x86_64", 161, (), ALLOW),  # chroot: CAP_SYS_CHROOT is in the default set
    ("x86_64", 101, (), ALLOW),  # ptrace (kernel >= 4.8)
    ("x86_64", 158, (), ALLOW),  # arch_prctl
    ("x86_64", 250, (), EPERM),  # keyctl
    ("x86_64", 248, (), EPERM),  # add_key
    ("x86_64", 272, (0x10000000,), EPERM),  # unshare
    ("x86_64", 165, (), EPERM),  # mount
    ("x86_64", 155, (), EPERM),  # pivot_root
    ("x86_64", 304, (), EPERM),  # open_by_handle_at
    ("x86_64", 169, (), EPERM),  # reboot
    ("x86_64", 321, (), EPERM),  # bpf
    ("x86_64", 56, (0x11,), ALLOW),  # clone(SIGCHLD): fork
    ("x86_64", 56, (0x10000011,), EPERM),  # clone(CLONE_NEWUSER | SIGCHLD)
    ("x86_64", 56, (0x1_00000011,), ALLOW),  # bits above 32: the kernel ignores them for clone
    ("x86_64", 435, (), ENOSYS),  # clone3
    ("x86_64", 41, (1, 1, 0), ALLOW),  # socket(AF_UNIX)
    ("x86_64", 41, (40, 1, 0), EPERM),  # socket(AF_VSOCK)
    ("x86_64", 41, (0x1_00000028, 1, 0), EPERM),  # AF_VSOCK with junk in the upper half: the kernel reads an int
    ("x86_64", 135, (0xFFFFFFFF,), ALLOW),  # personality query
    ("x86_64", 135, (0x20008,), ALLOW),
    ("x86_64", 135, (0x0040000,), EPERM),  # ADDR_NO_RANDOMIZE
    ("x86_64", 451, (), ENOSYS),  # newer than the profile
    ("x86_64", 0x40000000 | 39, (), ENOSYS),  # x32 getpid
    ("x86_64", -1, (), ENOSYS),
    ("aarch64", 63, (), ALLOW),  # read
    ("aarch64", 56, (), ALLOW),  # openat
    ("aarch64", 51, (), ALLOW),  # chroot
    ("aarch64", 117, (), ALLOW),  # ptrace
    ("aarch64", 219, (), EPERM),  # keyctl
    ("aarch64", 97, (0x10000000,), EPERM),  # unshare
    ("aarch64", 40, (), EPERM),  # mount
    ("aarch64", 41, (), EPERM),  # pivot_root
    ("aarch64", 265, (), EPERM),  # open_by_handle_at
    ("aarch64", 280, (), EPERM),  # bpf
    ("aarch64", 220, (0x11,), ALLOW),  # clone(SIGCHLD)
    ("aarch64", 220, (0x20011,), EPERM),  # clone(CLONE_NEWNS | SIGCHLD)
    ("aarch64", 435, (), ENOSYS),  # clone3
    ("aarch64", 198, (40, 1, 0), EPERM),  # socket(AF_VSOCK)
    ("aarch64", 198, (2, 1, 0), ALLOW),  # socket(AF_INET)
    ("aarch64", 92, (0x0040000,), EPERM),  # personality(ADDR_NO_RANDOMIZE)
    ("aarch64", 451, (), ENOSYS),
    ("aarch64", 244, (), EPERM),  # the arch-specific gap of the generic table: no syscall, but inside the table
]


@pytest.mark.parametrize(("arch", "nr", "args", "verdict"), DEFAULT_CASES)
def test_default_profile(arch: str, nr: int, args: tuple[int, ...], verdict: int) -> None:
    code = seccomp.pack(seccomp.program(seccomp.docker_verdicts(arch, DOCKER_CAPABILITY_MASK, ptrace=True)))
    assert evaluate(code, nr & 0xFFFFFFFF, AUDIT_ARCH[arch], args) == verdict


@pytest.mark.parametrize(("arch", "other"), [("x86_64", AUDIT_ARCH_I386), ("aarch64", AUDIT_ARCH_ARM),
                                             ("x86_64", AUDIT_ARCH["aarch64"])])
def test_another_architecture_is_killed(arch: str, other: int) -> None:
    code = seccomp.pack(seccomp.program(seccomp.docker_verdicts(arch, DOCKER_CAPABILITY_MASK)))
    assert evaluate(code, 0, other) == KILL


def test_an_old_kernel_gets_no_ptrace() -> None:
    code = seccomp.pack(seccomp.program(seccomp.docker_verdicts("x86_64", DOCKER_CAPABILITY_MASK, ptrace=False)))
    assert evaluate(code, 101, AUDIT_ARCH["x86_64"]) == EPERM


def test_capabilities_widen_the_profile_as_docker_cap_add_does() -> None:
    cap_sys_admin, cap_dac_read_search = 1 << 21, 1 << 2
    code = seccomp.pack(seccomp.program(seccomp.docker_verdicts(
        "x86_64", DOCKER_CAPABILITY_MASK | cap_sys_admin | cap_dac_read_search)))
    x86 = AUDIT_ARCH["x86_64"]
    assert evaluate(code, 165, x86) == ALLOW  # mount
    assert evaluate(code, 56, x86, (0x10000011,)) == ALLOW  # clone with namespace flags
    assert evaluate(code, 435, x86) == ALLOW  # clone3
    assert evaluate(code, 304, x86) == ALLOW  # open_by_handle_at
    assert evaluate(code, 250, x86) == EPERM  # keyctl: no capability allows it
