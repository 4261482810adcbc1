"""Limits in RUN: each runaway step (time, output, memory, recursion, decompression, pattern blow-up) ends with one
clear MinibuildError line naming the limit, with bounded memory and nothing in the store.

Each attack runs for real, through the emulated shell (``run_script`` with small ``RunLimits``), the chroot
executor, or a whole ``minibuild build``.  Attacks that used to hang the process run in a subprocess with a
timeout, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from minibuild.errors import ExecutorError, ShellError
from minibuild.limits import ENV_MAX_LAYER_BYTES, ENV_RUN_MAX_BYTES, ENV_RUN_MAX_DEPTH, ENV_RUN_TIMEOUT, RunLimits
from minibuild.sh import run_script
from minibuild.store import Store
from tests.support import require, require_root

REPO = str(Path(__file__).resolve().parents[2])
SMALL = RunLimits(timeout=20, max_bytes=1 << 20, output_tail=4096, max_depth=50)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    return r


@pytest.fixture
def peak() -> Iterator[list[int]]:
    """The tracemalloc peak (bytes) of the test body, in the list after the test yields."""
    out: list[int] = []
    tracemalloc.start()
    try:
        yield out
    finally:
        out.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def _traced_peak() -> int:
    return tracemalloc.get_traced_memory()[1]


def _sub(code: str, *args: str, env: dict[str, str] | None = None, timeout: int = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (with the repo importable): a hang becomes a test failure."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=REPO, **(env or {})))


# ------------------------------------------------------------------------------------ memory in the emulated shell
def test_string_doubling_stops_at_the_memory_limit(root: Path, peak: list[int]) -> None:
    with pytest.raises(ShellError) as err:
        run_script("a=x; while :; do a=$a$a; done", root=root, env={}, limits=SMALL)
    assert "variable a exceeds 1048576 bytes" in str(err.value) and ENV_RUN_MAX_BYTES in str(err.value)
    assert _traced_peak() < 16 << 20


def test_huge_seq_through_a_pipe_stops_at_the_memory_limit(root: Path) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ShellError, match="the data in a pipe exceeds 1048576 bytes"):
            run_script("seq 1 10000000000 | wc -l", root=root, env={}, limits=SMALL)
        assert tracemalloc.get_traced_memory()[1] < 16 << 20
    finally:
        tracemalloc.stop()


def test_huge_printf_field_is_refused(root: Path) -> None:
    with pytest.raises(ShellError, match="field width 999999999 exceeds"):
        run_script("printf '%999999999d' 1 | wc -c", root=root, env={}, limits=SMALL)


def test_huge_command_substitution_stops_at_the_memory_limit(root: Path) -> None:
    with pytest.raises(ShellError, match=r"the output of \$\(...\) exceeds"):
        run_script("x=$(seq 1 10000000000)", root=root, env={}, limits=SMALL)


def test_file_larger_than_the_memory_limit_is_not_read_whole(root: Path) -> None:
    with open(root / "big", "wb") as f:
        f.truncate(64 << 20)  # sparse: no disk used
    tracemalloc.start()
    try:
        with pytest.raises(ShellError, match=f"larger than 1048576 bytes.*{ENV_RUN_MAX_BYTES}"):
            run_script("wc -c < /big", root=root, env={}, limits=SMALL)
        assert tracemalloc.get_traced_memory()[1] < 16 << 20
    finally:
        tracemalloc.stop()


def test_output_is_kept_as_a_bounded_tail(root: Path) -> None:
    r = run_script("seq 1 200000; seq 1 200000 >&2; exit 3", root=root, env={}, limits=SMALL)
    assert r.exit_code == 3
    assert len(r.stdout) <= 4096 and r.stdout.endswith(b"\n199999\n200000\n")
    assert len(r.stderr) <= 4096 and r.stderr.endswith(b"\n200000\n")


def test_huge_power_is_computed_modulo_2_64(root: Path) -> None:
    """`$((7**99999999999))` used to compute a number with 10**11 digits (hours and gigabytes); the shell's 64-bit
    wrap-around arithmetic gives 7**N mod 2**64 (as signed), as bash's repeated multiplication does."""
    probe = ("import sys; from pathlib import Path; import minibuild.sh as sh; "
             "print(sh.run_script('echo $((7**99999999999)) $((3**5)) $((2**63))', root=Path(sys.argv[1]), "
             "env={}).stdout.decode().strip())")
    proc = _sub(probe, str(root))
    wrapped = pow(7, 99999999999, 1 << 64)
    assert proc.returncode == 0, proc.stderr[-300:]
    assert proc.stdout.split() == [str(wrapped - (1 << 64) if wrapped >= 1 << 63 else wrapped), "243",
                                   str(-(1 << 63))]


def test_huge_and_bad_number_literals_are_shell_errors_not_tracebacks(root: Path) -> None:
    """A 5000-digit literal (past Python's 4300-digit int() limit) wraps to 64 bits; `09` is a syntax error."""
    r = run_script("echo $((" + "9" * 5000 + ")); x=" + "9" * 5000 + "; echo $((x+1))", root=root, env={},
                   limits=SMALL)
    assert r.stdout.split() == [b"-1", b"0"]  # 10**5000 - 1 == -1 (mod 2**64), as 10**5000 == 0 (mod 2**64)
    r = run_script("echo $((09))", root=root, env={}, limits=SMALL)
    assert r.exit_code == 2 and r.stderr == b"sh: arithmetic syntax error\n"  # busybox's words


# ------------------------------------------------------------------------------------ depth and fork bombs
@pytest.mark.parametrize("script", [
    "f(){ f; }; f",
    "f(){ f|f& }; f",  # the classic fork bomb: each call forks two more
    "f(){ echo $(f); }; f",
    "echo " + "$(" * 3000 + "echo hi" + ")" * 3000,
    "echo $((" + "(" * 5000 + "1" + ")" * 5000 + "))",
    "(" * 5000 + "echo hi" + ")" * 5000,
    "echo 'sh /r' > /r; sh /r",  # a script that runs itself in a new shell
])
def test_deep_nesting_and_fork_bombs_end_with_the_depth_limit(root: Path, script: str) -> None:
    with pytest.raises(ShellError) as err:
        run_script(script, root=root, env={}, limits=SMALL)
    assert "nesting deeper than 50 levels" in str(err.value) and ENV_RUN_MAX_DEPTH in str(err.value)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------ wall time
@pytest.mark.parametrize("script", [
    "while :; do :; done",
    "seq 1 10000000000 > /dev/null",
    "grep -E '(a+)+$' /line",  # catastrophic backtracking inside one re.search call
    "sed -E 's/(a+)+$/x/' /line",
])
def test_runaway_steps_end_at_the_deadline(root: Path, script: str) -> None:
    (root / "line").write_text("a" * 40 + "b\n")
    with pytest.raises(ShellError) as err:
        run_script(script, root=root, env={}, limits=RunLimits(timeout=0.5))
    assert "did not finish within 0.5 seconds" in str(err.value) and "--run-timeout" in str(err.value)


# ------------------------------------------------------------------------------------ patterns are linear-time
HOSTILE_GLOB = "*a" * 25 + "b"


def test_shell_case_and_strip_patterns_do_not_backtrack(root: Path) -> None:
    script = (f"v=$(printf 'a%.0s' $(seq 1 3000)); case $v in {HOSTILE_GLOB}) echo match;; *) echo none;; esac; "
              f"w=${{v#{HOSTILE_GLOB}}}; echo ${{#w}}; w=${{v%{HOSTILE_GLOB}}}; echo ${{#w}}; "
              f"w=${{v/{HOSTILE_GLOB}/x}}; echo ${{#w}}; touch /{'a' * 200}; echo /{HOSTILE_GLOB}")
    r = run_script(script, root=root, env={}, limits=RunLimits(timeout=10))
    assert r.stdout.decode().split() == ["none", "3000", "3000", "3000", "/" + HOSTILE_GLOB]


def _build(store: Path, context: Path, *args: str, env: dict[str, str] | None = None,
           timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minibuild", "--store", str(store), "build", "--progress", "quiet",
                           *args, str(context)], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=REPO, **(env or {})))


def _store_tree(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*")
                  if not {"tmp", "leases"} & set(p.parts) and not p.name.endswith("lock"))


@pytest.fixture
def store_with_base(tmp_path: Path) -> Path:
    """A store that already holds the busybox fixture base (so a failed build must add nothing)."""
    store = tmp_path / "store"
    ctx = tmp_path / "base"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\n")
    proc = _build(store, ctx)
    assert proc.returncode == 0, proc.stderr
    return store


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr[-500:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-1000:]
    return lines[0]


def _copied(tmp_path: Path, ctx: Path) -> set[str]:
    """Build ``ctx`` (60 s at most) and return the paths under /d in its layers."""
    out = tmp_path / f"{ctx.name}.tar"
    proc = _build(tmp_path / "store", ctx, "-o", str(out), timeout=60)
    assert proc.returncode == 0, proc.stderr[-500:]
    names: set[str] = set()
    with tarfile.open(out) as outer:
        for m in outer.getmembers():
            data = outer.extractfile(m) if m.isfile() else None
            if data is None:
                continue
            try:
                with tarfile.open(fileobj=io.BytesIO(data.read())) as layer:
                    names |= {n for n in layer.getnames() if n.startswith("d/")}
            except tarfile.TarError:
                continue  # a config or manifest blob
    return names


@pytest.mark.parametrize("where", ["dockerignore", "copy"])
def test_dockerignore_and_copy_wildcards_do_not_backtrack(tmp_path: Path, where: str) -> None:
    """``*a*a…*b`` against 200-char names: a regex translation backtracks for hours; Go's matchers do not."""
    ctx = tmp_path / where
    ctx.mkdir()
    for name in ("a" * 200, "a" * 199 + "b", "a" * 199 + "c"):
        (ctx / name).write_text(name[-1])
    if where == "dockerignore":
        (ctx / ".dockerignore").write_text(HOSTILE_GLOB + "\n")
        (ctx / "Dockerfile").write_text("FROM scratch\nCOPY a* /d/\n")
        assert _copied(tmp_path, ctx) == {"d/" + "a" * 200, "d/" + "a" * 199 + "c"}
    else:
        (ctx / "Dockerfile").write_text(f"FROM scratch\nCOPY {HOSTILE_GLOB} /d/\n")
        assert _copied(tmp_path, ctx) == {"d/" + "a" * 199 + "b"}


# ------------------------------------------------------------------------------------ through a build
def test_runaway_build_step_is_one_line_and_leaves_the_store_clean(tmp_path: Path, store_with_base: Path) -> None:
    before = _store_tree(store_with_base)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo start; while :; do :; done\n")
    line = _one_error_line(_build(store_with_base, ctx, "--run-timeout", "1"))
    assert line.startswith("error: Dockerfile:2: ") and "did not finish within 1 seconds" in line
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN a=x; while :; do a=$a$a; done\n")
    line = _one_error_line(_build(store_with_base, ctx, env={ENV_RUN_MAX_BYTES: "1M"}))
    assert line.startswith("error: Dockerfile:2: ") and ENV_RUN_MAX_BYTES in line
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN f(){ f; }; f\n")
    line = _one_error_line(_build(store_with_base, ctx))
    assert line.startswith("error: Dockerfile:2: ") and "nesting deeper than 100 levels" in line
    assert _store_tree(store_with_base) == before


def test_bad_timeout_settings_are_one_line(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN true\n")
    assert "invalid timeout" in _one_error_line(_build(tmp_path / "s", ctx, "--run-timeout", "soon"))
    assert ENV_RUN_TIMEOUT in _one_error_line(_build(tmp_path / "s", ctx, env={ENV_RUN_TIMEOUT: "soon"}))


# ------------------------------------------------------------------------------------ decompression bombs in the shell
def _bomb(total: int, *, tar: bool) -> bytes:
    """About ``total`` bytes of zeros, gzip-compressed (as a tar with one member when ``tar``)."""
    chunk = 8 << 20
    zeros = gzip.compress(b"\0" * chunk, compresslevel=9, mtime=0)
    if not tar:
        return zeros * (total // chunk)
    ti = tarfile.TarInfo("bomb")
    ti.size = total
    buf = io.BytesIO()
    buf.write(ti.tobuf(tarfile.GNU_FORMAT))
    return gzip.compress(buf.getvalue(), mtime=0) + zeros * (total // chunk)


@pytest.mark.parametrize("script", ["tar -xzf /bomb.tgz -C /out", "tar -tzf /bomb.tgz", "cat /bomb.tgz | tar -xz",
                                    "zcat /bomb.gz > /out/z", "gunzip -c /bomb.gz > /out/z", "gunzip /bomb.gz"])
def test_gzip_bombs_stop_at_the_layer_limit(root: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    monkeypatch.setenv(ENV_MAX_LAYER_BYTES, "16M")
    (root / "bomb.tgz").write_bytes(_bomb(256 << 20, tar=True))
    (root / "bomb.gz").write_bytes(_bomb(256 << 20, tar=False))
    (root / "out").mkdir()
    limits = RunLimits(timeout=60, max_bytes=4 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ShellError) as err:
            run_script(script, root=root, env={}, limits=limits)
        assert tracemalloc.get_traced_memory()[1] < 48 << 20
    finally:
        tracemalloc.stop()
    assert ENV_MAX_LAYER_BYTES in str(err.value) and "\n" not in str(err.value)
    assert sum(p.stat().st_size for p in (root / "out").rglob("*") if p.is_file()) <= 17 << 20


# ------------------------------------------------------------------------------------ useradd's skeleton
SKEL_PROBE = r"""
import os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from pathlib import Path
import minibuild.sh as sh
r = sh.run_script(sys.argv[2], root=Path(sys.argv[1]), env={"PATH": "/bin"})
print("exit", r.exit_code, r.stderr.decode().strip())
"""


@pytest.mark.parametrize("script", ["adduser -D bob", "useradd -m bob"])
def test_useradd_skeleton_copy_never_opens_device_nodes(tmp_path: Path, script: str) -> None:
    """An image's /etc/skel holding a node 1:5 (the host's /dev/zero) and a FIFO: the copy re-makes them as nodes
    (as shadow's copy_tree does) instead of reading an endless host device or blocking on the FIFO."""
    require_root()
    root = tmp_path / "root"
    skel = root / "etc" / "skel"
    skel.mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    (skel / ".profile").write_text("export A=1\n")
    os.mknod(skel / "zero", 0o666 | 0o020000, os.makedev(1, 5))
    os.mkfifo(skel / "fifo")
    os.symlink("/etc/shadow", skel / "shadow-link")
    proc = _sub(SKEL_PROBE, str(root), script, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("exit 0"), (proc.stdout, proc.stderr[-300:])
    home = root / "home" / "bob"
    assert (home / ".profile").read_text() == "export A=1\n"
    st = os.lstat(home / "zero")
    assert (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == os.makedev(1, 5)
    assert (os.lstat(home / "fifo").st_mode & 0o170000) == 0o010000
    assert os.readlink(home / "shadow-link") == "/etc/shadow"


# ------------------------------------------------------------------------------------ the chroot executor
@pytest.fixture
def chroot_root(tmp_path: Path, busybox_rootfs: Path) -> Path:
    require_root()
    from minibuild.executors import chroot

    problem = chroot.platform_problem()
    require(problem is None, problem or "")
    import shutil

    root = tmp_path / "root"
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    return root


def _chroot(root: Path, script: str, limits: RunLimits) -> tuple[int, bytes, bytes]:
    from minibuild.executors.chroot import ChrootExecutor
    from minibuild.executors.executor import RunRequest

    req = RunRequest(root=root, argv=("/bin/sh", "-c", script), env=(("PATH", "/bin"),), limits=limits)
    r = ChrootExecutor().run(req)
    return r.exit_code, r.stdout, r.stderr


def test_chroot_output_is_streamed_through_a_bounded_tail(chroot_root: Path) -> None:
    """136 MiB on stdout and a little on stderr: only the tails are kept, memory stays flat."""
    tracemalloc.start()
    try:
        code, out, err = _chroot(chroot_root, "yes 0123456789abcdef | head -c 142606336; echo END; echo bad >&2; "
                                              "exit 4", RunLimits(output_tail=65536))
        traced = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 4 and err == b"bad\n"
    assert len(out) == 65536 and out.endswith(b"0123456789abcdef\nEND\n")
    assert traced < 16 << 20


def test_chroot_step_is_killed_at_the_deadline(chroot_root: Path) -> None:
    import signal

    def watchdog(_sig: int, _frame: object) -> None:
        raise AssertionError("the step was not stopped at its deadline")

    marker = "31415926"
    old = signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(30)
    try:
        with pytest.raises(ExecutorError) as err:
            _chroot(chroot_root, f"sleep {marker} & setsid sleep {marker} & sleep {marker}", RunLimits(timeout=1))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert "did not finish within 1 seconds" in str(err.value) and ENV_RUN_TIMEOUT in str(err.value)
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            left.append(cmdline)
    assert not left, left
