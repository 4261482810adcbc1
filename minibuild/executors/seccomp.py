"""Docker's default seccomp profile as a classic-BPF program, built in pure Python for the chroot executor."""

from __future__ import annotations

import ctypes
import os
import struct
import sys

from minibuild.record import record

# Syscall numbers in number order, from the kernel's uapi headers (linux 6.1: asm/unistd_64.h for x86_64, the
# generic table for aarch64), as (first number, names). These are the names Docker's profile is written in.
_X86_64 = (
    (0, """
        read write open close stat fstat lstat poll lseek mmap mprotect munmap brk rt_sigaction rt_sigprocmask
        rt_sigreturn ioctl pread64 pwrite64 readv writev access pipe select sched_yield mremap msync mincore madvise
        shmget shmat shmctl dup dup2 pause nanosleep getitimer alarm setitimer getpid sendfile socket connect accept
        sendto recvfrom sendmsg recvmsg shutdown bind listen getsockname getpeername socketpair setsockopt
        getsockopt clone fork vfork execve exit wait4 kill uname semget semop semctl shmdt msgget msgsnd msgrcv
        msgctl fcntl flock fsync fdatasync truncate ftruncate getdents getcwd chdir fchdir rename mkdir rmdir creat
        link unlink symlink readlink chmod fchmod chown fchown lchown umask gettimeofday getrlimit getrusage sysinfo
        times ptrace getuid syslog getgid setuid setgid geteuid getegid setpgid getppid getpgrp setsid setreuid
        setregid getgroups setgroups setresuid getresuid setresgid getresgid getpgid setfsuid setfsgid getsid capget
        capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend sigaltstack utime mknod uselib
        personality ustat statfs fstatfs sysfs getpriority setpriority sched_setparam sched_getparam
        sched_setscheduler sched_getscheduler sched_get_priority_max sched_get_priority_min sched_rr_get_interval
        mlock munlock mlockall munlockall vhangup modify_ldt pivot_root _sysctl prctl arch_prctl adjtimex setrlimit
        chroot sync acct settimeofday mount umount2 swapon swapoff reboot sethostname setdomainname iopl ioperm
        create_module init_module delete_module get_kernel_syms query_module quotactl nfsservctl getpmsg putpmsg
        afs_syscall tuxcall security gettid readahead setxattr lsetxattr fsetxattr getxattr lgetxattr fgetxattr
        listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr tkill time futex sched_setaffinity
        sched_getaffinity set_thread_area io_setup io_destroy io_getevents io_submit io_cancel get_thread_area
        lookup_dcookie epoll_create epoll_ctl_old epoll_wait_old remap_file_pages getdents64 set_tid_address
        restart_syscall semtimedop fadvise64 timer_create timer_settime timer_gettime timer_getoverrun timer_delete
        clock_settime clock_gettime clock_getres clock_nanosleep exit_group epoll_wait epoll_ctl tgkill utimes
        vserver mbind set_mempolicy get_mempolicy mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify
        mq_getsetattr kexec_load waitid add_key request_key keyctl ioprio_set ioprio_get inotify_init
        inotify_add_watch inotify_rm_watch migrate_pages openat mkdirat mknodat fchownat futimesat newfstatat
        unlinkat renameat linkat symlinkat readlinkat fchmodat faccessat pselect6 ppoll unshare set_robust_list
        get_robust_list splice tee sync_file_range vmsplice move_pages utimensat epoll_pwait signalfd timerfd_create
        eventfd fallocate timerfd_settime timerfd_gettime accept4 signalfd4 eventfd2 epoll_create1 dup3 pipe2
        inotify_init1 preadv pwritev rt_tgsigqueueinfo perf_event_open recvmmsg fanotify_init fanotify_mark
        prlimit64 name_to_handle_at open_by_handle_at clock_adjtime syncfs sendmmsg setns getcpu process_vm_readv
        process_vm_writev kcmp finit_module sched_setattr sched_getattr renameat2 seccomp getrandom memfd_create
        kexec_file_load bpf execveat userfaultfd membarrier mlock2 copy_file_range preadv2 pwritev2 pkey_mprotect
        pkey_alloc pkey_free statx io_pgetevents rseq
    """),
    (424, """
        pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree move_mount fsopen fsconfig
        fsmount fspick pidfd_open clone3 close_range openat2 pidfd_getfd faccessat2 process_madvise epoll_pwait2
        mount_setattr quotactl_fd landlock_create_ruleset landlock_add_rule landlock_restrict_self memfd_secret
        process_mrelease futex_waitv set_mempolicy_home_node
    """),
)
_AARCH64 = (
    (0, """
        io_setup io_destroy io_submit io_cancel io_getevents setxattr lsetxattr fsetxattr getxattr lgetxattr
        fgetxattr listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr getcwd lookup_dcookie
        eventfd2 epoll_create1 epoll_ctl epoll_pwait dup dup3 fcntl inotify_init1 inotify_add_watch inotify_rm_watch
        ioctl ioprio_set ioprio_get flock mknodat mkdirat unlinkat symlinkat linkat renameat umount2 mount
        pivot_root nfsservctl statfs fstatfs truncate ftruncate fallocate faccessat chdir fchdir chroot fchmod
        fchmodat fchownat fchown openat close vhangup pipe2 quotactl getdents64 lseek read write readv writev
        pread64 pwrite64 preadv pwritev sendfile pselect6 ppoll signalfd4 vmsplice splice tee readlinkat newfstatat
        fstat sync fsync fdatasync sync_file_range timerfd_create timerfd_settime timerfd_gettime utimensat acct
        capget capset personality exit exit_group waitid set_tid_address unshare futex set_robust_list
        get_robust_list nanosleep getitimer setitimer kexec_load init_module delete_module timer_create
        timer_gettime timer_getoverrun timer_settime timer_delete clock_settime clock_gettime clock_getres
        clock_nanosleep syslog ptrace sched_setparam sched_setscheduler sched_getscheduler sched_getparam
        sched_setaffinity sched_getaffinity sched_yield sched_get_priority_max sched_get_priority_min
        sched_rr_get_interval restart_syscall kill tkill tgkill sigaltstack rt_sigsuspend rt_sigaction
        rt_sigprocmask rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_sigreturn setpriority getpriority reboot
        setregid setgid setreuid setuid setresuid getresuid setresgid getresgid setfsuid setfsgid times setpgid
        getpgid getsid setsid getgroups setgroups uname sethostname setdomainname getrlimit setrlimit getrusage
        umask prctl getcpu gettimeofday settimeofday adjtimex getpid getppid getuid geteuid getgid getegid gettid
        sysinfo mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr msgget msgctl msgrcv msgsnd
        semget semctl semtimedop semop shmget shmctl shmat shmdt socket socketpair bind listen accept connect
        getsockname getpeername sendto recvfrom setsockopt getsockopt shutdown sendmsg recvmsg readahead brk munmap
        mremap add_key request_key keyctl clone execve mmap fadvise64 swapon swapoff mprotect msync mlock munlock
        mlockall munlockall mincore madvise remap_file_pages mbind get_mempolicy set_mempolicy migrate_pages
        move_pages rt_tgsigqueueinfo perf_event_open accept4 recvmmsg
    """),
    (260, """
        wait4 prlimit64 fanotify_init fanotify_mark name_to_handle_at open_by_handle_at clock_adjtime syncfs setns
        sendmmsg process_vm_readv process_vm_writev kcmp finit_module sched_setattr sched_getattr renameat2 seccomp
        getrandom memfd_create bpf execveat userfaultfd membarrier mlock2 copy_file_range preadv2 pwritev2
        pkey_mprotect pkey_alloc pkey_free statx io_pgetevents rseq kexec_file_load
    """),
    (424, """
        pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree move_mount fsopen fsconfig
        fsmount fspick pidfd_open clone3 close_range openat2 pidfd_getfd faccessat2 process_madvise epoll_pwait2
        mount_setattr quotactl_fd landlock_create_ruleset landlock_add_rule landlock_restrict_self memfd_secret
        process_mrelease futex_waitv set_mempolicy_home_node
    """),
)


# moby profiles/seccomp/default.json: allowed for every container (the profile is an allowlist; the rest is EPERM)
DOCKER_ALLOWED = frozenset("""
    accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime
    clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
    clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1
    epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
    exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown
    fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64
    fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd
    getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer
    getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
    getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid
    getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy
    io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter
    io_uring_register io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self
    lchown lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat
    lstat64 madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall
    mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
    mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
    name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe
    pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64
    process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv
    recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2
    restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
    rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
    sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield
    seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg
    sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid
    setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
    set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt
    shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64
    statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
    timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
    timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit
    umask uname unlink unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write
    writev
""".split())
# allowed on kernels >= 4.8 (where seccomp runs after ptrace, so a tracer cannot skip the filter)
DOCKER_ALLOWED_SINCE_4_8 = frozenset(("process_vm_readv", "process_vm_writev", "ptrace"))
# allowed by the profile for the architecture
DOCKER_ALLOWED_BY_ARCH = {"x86_64": frozenset(("arch_prctl", "modify_ldt")), "aarch64": frozenset()}
# allowed when the container holds the capability (bit numbers from linux/capability.h): of Docker's default set
# only CAP_SYS_CHROOT is here, so chroot(2) stays allowed and the rest is refused
CAP_SYS_ADMIN = 21
DOCKER_ALLOWED_BY_CAP = {
    2: frozenset(("open_by_handle_at",)),  # CAP_DAC_READ_SEARCH
    CAP_SYS_ADMIN: frozenset("""bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount
                      mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname
                      sethostname setns syslog umount umount2 unshare""".split()),
    22: frozenset(("reboot",)),  # CAP_SYS_BOOT
    18: frozenset(("chroot",)),  # CAP_SYS_CHROOT
    16: frozenset(("delete_module", "init_module", "finit_module")),  # CAP_SYS_MODULE
    20: frozenset(("acct",)),  # CAP_SYS_PACCT
    19: frozenset(("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
                   "ptrace")),  # CAP_SYS_PTRACE
    17: frozenset(("iopl", "ioperm")),  # CAP_SYS_RAWIO
    25: frozenset(("settimeofday", "stime", "clock_settime", "clock_settime64")),  # CAP_SYS_TIME
    26: frozenset(("vhangup",)),  # CAP_SYS_TTY_CONFIG
    23: frozenset(("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node")),  # CAP_SYS_NICE
    34: frozenset(("syslog",)),  # CAP_SYSLOG
    39: frozenset(("bpf",)),  # CAP_BPF
    38: frozenset(("perf_event_open",)),  # CAP_PERFMON
}
# allowed with argument conditions: socket unless AF_VSOCK, personality for these personas only; without
# CAP_SYS_ADMIN, clone without namespace flags, and clone3 answers ENOSYS so that libc falls back to clone (whose
# flags a filter can see)
AF_VSOCK = 40
PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
CLONE_NAMESPACE_FLAGS = 0x7E020000  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
EPERM = 1
ENOSYS = 38

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_JA = 0x05  # BPF_JMP | BPF_JA
_RET = 0x06  # BPF_RET | BPF_K
_OFF_NR, _OFF_ARCH, _OFF_ARG0_LO = 0, 4, 16  # struct seccomp_data (little-endian: args[0]'s low word first)

PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

Insn = tuple[int, int, int, int]  # (code, jt, jf, k): one struct sock_filter


def native_arch() -> str | None:
    """The profile's name for this process's architecture, or None when minibuild has no table for it."""
    machine = os.uname().machine
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(machine)
    if arch is None or struct.calcsize("P") != 8 or sys.byteorder != "little":
        return None
    return arch


def syscall_numbers(arch: str) -> dict[str, int]:
    """Name -> number for ``arch`` (``x86_64`` or ``aarch64``)."""
    table = {"x86_64": _X86_64, "aarch64": _AARCH64}[arch]
    return {name: first + i for first, names in table for i, name in enumerate(names.split())}


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        parts = os.uname().release.split(".")
        return (int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)) >= (major, minor)
    except (IndexError, ValueError):
        return False


@record
class Verdicts:
    """What the filter answers for each syscall number of one architecture (the rest of the table is EPERM)."""

    arch: str
    allowed: frozenset[int]
    socket: int
    personality: int
    clone: int | None  # checked for namespace flags (None: allowed as it is, with CAP_SYS_ADMIN)
    clone3: int | None  # answers ENOSYS (None: allowed, with CAP_SYS_ADMIN)
    last: int  # numbers above this are newer than the profile: ENOSYS, as runc answers them


def docker_verdicts(arch: str, capabilities: int, *, ptrace: bool | None = None) -> Verdicts:
    """Docker's default profile on ``arch`` for a container holding ``capabilities`` (a bit mask), as Docker
    widens it for ``--cap-add``: ``capabilities`` is the set the step keeps."""
    numbers = syscall_numbers(arch)
    names = DOCKER_ALLOWED | DOCKER_ALLOWED_BY_ARCH[arch]
    for bit, extra in DOCKER_ALLOWED_BY_CAP.items():
        if capabilities & (1 << bit):
            names |= extra
    if _kernel_at_least(4, 8) if ptrace is None else ptrace:
        names |= DOCKER_ALLOWED_SINCE_4_8
    admin = bool(capabilities & (1 << CAP_SYS_ADMIN))
    return Verdicts(arch=arch, allowed=frozenset(numbers[n] for n in names if n in numbers),
                    socket=numbers["socket"], personality=numbers["personality"],
                    clone=None if admin else numbers["clone"], clone3=None if admin else numbers["clone3"],
                    last=max(numbers.values()))


def _ret(action: int) -> list[Insn]:
    return [(_RET, 0, 0, action)]


_ALLOW = SECCOMP_RET_ALLOW
_EPERM = SECCOMP_RET_ERRNO | EPERM
_ENOSYS = SECCOMP_RET_ERRNO | ENOSYS


def _leaf(kind: str) -> list[Insn]:
    """The code answering one run of syscall numbers (it may inspect the first argument's low 32 bits, which is
    all the kernel reads of an int argument or of clone's flags)."""
    if kind == "allow":
        return _ret(_ALLOW)
    if kind == "eperm":
        return _ret(_EPERM)
    if kind == "enosys":
        return _ret(_ENOSYS)
    load: list[Insn] = [(_LD_W_ABS, 0, 0, _OFF_ARG0_LO)]
    if kind == "socket":
        return load + [(_JEQ, 0, 1, AF_VSOCK), *_ret(_EPERM), *_ret(_ALLOW)]
    if kind == "clone":
        return load + [(_JSET, 0, 1, CLONE_NAMESPACE_FLAGS), *_ret(_EPERM), *_ret(_ALLOW)]
    if kind == "personality":
        checks = [(_JEQ, len(PERSONAS) - i, 0, p) for i, p in enumerate(PERSONAS)]
        return load + checks + _ret(_EPERM) + _ret(_ALLOW)
    raise ValueError(kind)


def _runs(v: Verdicts) -> list[tuple[int, str]]:
    """(first number, verdict) of each maximal run of numbers with the same verdict, from 0 to 2**32-1."""
    special = {v.socket: "socket", v.personality: "personality"}
    if v.clone is not None:
        special[v.clone] = "clone"
    if v.clone3 is not None:
        special[v.clone3] = "enosys"

    def kind(nr: int) -> str:
        if nr in special:
            return special[nr]
        if nr > v.last:
            return "enosys"
        return "allow" if nr in v.allowed else "eperm"

    runs: list[tuple[int, str]] = []
    for nr in range(v.last + 2):
        k = kind(nr)
        if not runs or runs[-1][1] != k:
            runs.append((nr, k))
    if v.arch == "x86_64":
        runs.append((X32_SYSCALL_BIT, "enosys"))  # the x32 ABI: absent, as on kernels built without it (Docker's
        # x32 sub-profile is not kept)
    return runs


def _tree(runs: list[tuple[int, str]]) -> list[Insn]:
    """A binary search over the runs by syscall number (in the accumulator): O(log n) jumps per syscall."""
    if len(runs) == 1:
        return _leaf(runs[0][1])
    mid = len(runs) // 2
    low, high = _tree(runs[:mid]), _tree(runs[mid:])
    if len(low) <= 255:
        return [(_JGE, len(low), 0, runs[mid][0]), *low, *high]
    return [(_JGE, 0, 1, runs[mid][0]), (_JA, 0, 0, len(low)), *low, *high]


def program(v: Verdicts) -> list[Insn]:
    """The whole filter: another architecture is killed, then each syscall number gets its verdict."""
    return [(_LD_W_ABS, 0, 0, _OFF_ARCH), (_JEQ, 1, 0, AUDIT_ARCH[v.arch]), *_ret(SECCOMP_RET_KILL_PROCESS),
            (_LD_W_ABS, 0, 0, _OFF_NR), *_tree(_runs(v))]


def pack(insns: list[Insn]) -> bytes:
    """The program as an array of ``struct sock_filter``."""
    return b"".join(struct.pack("=HBBI", *insn) for insn in insns)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def kernel_has_seccomp(libc: ctypes.CDLL) -> bool:
    """Whether this kernel has seccomp at all: PR_GET_SECCOMP answers EINVAL only without CONFIG_SECCOMP. (Asked
    of the kernel, not of /proc, which a step's image can leave unmounted.)"""
    ret = libc.prctl(ctypes.c_int(PR_GET_SECCOMP), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0),
                     ctypes.c_ulong(0))
    return bool(ret >= 0 or ctypes.get_errno() != 22)


def install(libc: ctypes.CDLL, insns: list[Insn]) -> None:
    """Install ``insns`` as this thread's seccomp filter (needs CAP_SYS_ADMIN or no_new_privs); raises OSError,
    and checks with PR_GET_SECCOMP that the process is now in filter mode."""
    code = pack(insns)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len=len(insns), filter=ctypes.cast(buf, ctypes.c_void_p).value)
    if libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                  ctypes.c_void_p(ctypes.addressof(prog)), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"PR_SET_SECCOMP: {os.strerror(e)}")
    mode = libc.prctl(ctypes.c_int(PR_GET_SECCOMP), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0),
                      ctypes.c_ulong(0))
    if mode != SECCOMP_MODE_FILTER:
        raise OSError(1, f"the process is in seccomp mode {mode} after installing the filter, not 2")
