"""Agreement harness: run one script through the emulated shell and through real busybox sh (chroot) and compare."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from minibuild.errors import UnsupportedCommandError
from minibuild.sh import run_script

ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "SOURCE_DATE_EPOCH": "1700000000"}
SKIP_DIRS = {"proc", "sys"}


def make_template(busybox_rootfs: Path, dest: Path) -> Path:
    """A busybox root with /dev/null and a work dir, copied once per session (needs root for mknod)."""
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    (dest / "dev").mkdir(exist_ok=True)
    os.mknod(dest / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(dest / "dev" / "null", 0o666)
    (dest / "w").mkdir()
    (dest / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (dest / "etc" / "os-release").write_text('NAME="Test"\nID=test\nVERSION_ID=1.0\n')
    return dest


def clone(template: Path, dest: Path) -> Path:
    """A copy of the template; the 2 MB busybox binary is hard-linked, everything else copied."""

    def copy(src: str, dst: str) -> None:
        st = os.lstat(src)
        if src.endswith("/bin/busybox"):
            os.link(src, dst)
        elif stat.S_ISCHR(st.st_mode):
            os.mknod(dst, st.st_mode, st.st_rdev)
            os.chmod(dst, stat.S_IMODE(st.st_mode))
        else:
            shutil.copy2(src, dst, follow_symlinks=False)

    shutil.copytree(template, dest, symlinks=True, copy_function=copy)
    return dest


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: bytes
    stderr: bytes
    tree: dict[str, tuple[object, ...]]
    missing: tuple[str, ...] = ()  # the emulator's hints for commands it could not run


def tree_state(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under root with type, permission bits, owner and content (or link target); no times."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(d for d in dirnames if not (rel_dir == "." and d in SKIP_DIRS))
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(p)
            m = st.st_mode
            if stat.S_ISLNK(m):
                out[rel] = ("symlink", os.readlink(p), st.st_uid, st.st_gid)
            elif stat.S_ISDIR(m):
                out[rel] = ("dir", oct(stat.S_IMODE(m)), st.st_uid, st.st_gid)
            elif stat.S_ISREG(m):
                data = Path(p).read_bytes()
                content: object = data if len(data) < 4096 else hashlib.sha256(data).hexdigest()
                out[rel] = ("file", oct(stat.S_IMODE(m)), st.st_uid, st.st_gid, content, st.st_nlink > 1 and not rel.startswith("bin/"))
            else:
                out[rel] = ("special", oct(m), st.st_uid, st.st_gid)
    return out


def run_busybox(root: Path, script: str, stdin: bytes = b"") -> Outcome:
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    proc = subprocess.run([chroot, str(root), "/bin/sh", "-c", script], env=ENV, input=stdin, capture_output=True,
                          timeout=60)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, tree_state(root))


def run_emulated(root: Path, script: str, stdin: bytes = b"") -> Outcome:
    r = run_script(script, root=root, env=ENV, stdin=stdin, source_date_epoch=1700000000)
    return Outcome(r.exit_code, r.stdout, r.stderr, tree_state(root), r.missing)


def compare(template: Path, work: Path, script: str, stdin: bytes = b"") -> tuple[Outcome, Outcome]:
    real = run_busybox(clone(template, work / "real"), script, stdin)
    try:
        emu = run_emulated(clone(template, work / "emu"), script, stdin)
    except UnsupportedCommandError as e:  # a test bug, not an agreement result
        raise AssertionError(f"emulator lacks a command: {e}") from None
    return real, emu


def diff_report(script: str, real: Outcome, emu: Outcome) -> str:
    lines = [f"script:\n{script}", f"exit: busybox={real.exit_code} emulated={emu.exit_code}"]
    if real.stdout != emu.stdout:
        lines.append(f"stdout busybox:  {real.stdout!r}\nstdout emulated: {emu.stdout!r}")
    for k in sorted(set(real.tree) | set(emu.tree)):
        if real.tree.get(k) != emu.tree.get(k):
            lines.append(f"{k}: busybox={str(real.tree.get(k))[:300]} emulated={str(emu.tree.get(k))[:300]}")
    lines.append(f"stderr busybox: {real.stderr!r}\nstderr emulated: {emu.stderr!r}")
    lines.extend(f"emulator could not run: {m}" for m in emu.missing)
    return "\n".join(lines)


def assert_agree(template: Path, work: Path, script: str, stdin: bytes = b"") -> None:
    real, emu = compare(template, work, script, stdin)
    same = real.exit_code == emu.exit_code and real.stdout == emu.stdout and real.tree == emu.tree
    assert same, diff_report(script, real, emu)


# ---- batches: many scripts in one chroot invocation (the generated corpus) ----

DRIVER = """n=0
while [ -e /.batch/s/$n ]; do
  rm -rf /w; mkdir /w; cd /
  /bin/busybox timeout 10 sh -c "$(cat /.batch/s/$n)" </dev/null >/.batch/o/$n.out 2>/.batch/o/$n.err
  echo $? >/.batch/o/$n.rc
  cd /; mv /w /.batch/r/$n
  n=$((n + 1))
done
"""
EXPLICIT_TIME = 1_600_000_000  # an mtime before this was set by the script (touch -d/-t), not by the clock


def batch_tree(root: Path) -> dict[str, tuple[object, ...]]:
    """tree_state plus the mtime of every entry a script dated explicitly (older than EXPLICIT_TIME)."""
    out = tree_state(root)
    for rel in list(out):
        st = os.lstat(root / rel)
        if st.st_mtime < EXPLICIT_TIME:
            out[rel] = (*out[rel], int(st.st_mtime))
    return out


def run_busybox_batch(template: Path, work: Path, scripts: list[str]) -> list[Outcome]:
    """Every script through real busybox sh, one chroot for the batch; each starts with an empty /w."""
    root = clone(template, work / "real")
    batch = root / ".batch"
    for sub in ("s", "o", "r"):
        (batch / sub).mkdir(parents=True)
    for i, s in enumerate(scripts):
        (batch / "s" / str(i)).write_text(s)
    (batch / "driver").write_text(DRIVER)
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    subprocess.run([chroot, str(root), "/bin/sh", "/.batch/driver"], env=ENV, capture_output=True,
                   timeout=120 + 11 * len(scripts), check=True)
    outs = []
    for i in range(len(scripts)):
        o = batch / "o"
        outs.append(Outcome(int((o / f"{i}.rc").read_text()), (o / f"{i}.out").read_bytes(),
                            (o / f"{i}.err").read_bytes(), batch_tree(batch / "r" / str(i))))
    return outs


def run_emulated_batch(template: Path, work: Path, scripts: list[str]) -> list[Outcome]:
    """Every script through the emulated shell in one copy of the template, each with an empty /w (as the
    busybox driver does)."""
    outs = []
    root = clone(template, work / "emu")
    for s in scripts:
        shutil.rmtree(root / "w")
        (root / "w").mkdir()
        try:
            r = run_script(s, root=root, env=ENV, source_date_epoch=1700000000)
        except UnsupportedCommandError as e:
            raise AssertionError(f"emulator lacks a command: {e}\nscript:\n{s}") from None
        outs.append(Outcome(r.exit_code, r.stdout, r.stderr, batch_tree(root / "w"), r.missing))
    return outs


TIMED_OUT = 143  # busybox timeout's status: the script never ends under busybox (`cat f >> f`), not compared


def assert_batch_agrees(template: Path, work: Path, scripts: list[str], *, stderr: bool = True) -> int:
    """Every script agrees (exit status, stdout, the files under /w, and stderr); returns how many were compared."""
    real = run_busybox_batch(template, work, scripts)
    emu = run_emulated_batch(template, work, scripts)
    pairs = [(s, r, e) for s, r, e in zip(scripts, real, emu) if r.exit_code != TIMED_OUT]
    bad = [diff_report(s, r, e) for s, r, e in pairs
           if (r.exit_code, r.stdout, r.tree) != (e.exit_code, e.stdout, e.tree) or (stderr and r.stderr != e.stderr)]
    assert not bad, f"{len(bad)} of {len(scripts)} scripts disagree; the first:\n" + bad[0]
    return len(pairs)
