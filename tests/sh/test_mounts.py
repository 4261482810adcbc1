"""The emulated shell's mount table (RUN --mount): paths at and below a mount point reach the mount's host
directory; a read-only mount refuses every change (EROFS) and leaves its host files as they were; a mount
point itself cannot be removed or renamed (EBUSY). Expected behaviour is the kernel's for a read-only bind mount
(as runc gives a RUN --mount under BuildKit)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from minibuild import sh
from minibuild.sh.fs import Mount


def _tree(path: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirs, files in os.walk(path):
        for n in dirs + files:
            p = Path(dirpath, n)
            st = os.lstat(p)
            data = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else ""
            out[str(p.relative_to(path))] = f"{st.st_mode:o} {st.st_uid} {st.st_mtime_ns} {data}"
    return out


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    (root / "mnt").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "bin").mkdir()
    (root / "bin" / "sh").write_bytes(b"")  # a placeholder: the emulator interprets /bin/sh
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "f").write_text("original\n")
    (src / "d" / "g").write_text("g\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("f")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"new"))
    (root / "tmp" / "a.tar").write_bytes(buf.getvalue())
    (root / "tmp" / "plain").write_text("p\n")
    return root, src


def _run(root: Path, src: Path, script: str, readonly: bool = True) -> sh.ShellResult:
    return sh.run_argv(["/bin/sh", "-c", script], root=root, env={"PATH": "/bin"}, cwd="/",
                       mounts={"/mnt": Mount(host=src, readonly=readonly)})


@pytest.mark.parametrize("script", [
    "echo x > /mnt/f", "echo x >> /mnt/new", "touch /mnt/f", "touch /mnt/new", "rm /mnt/f", "rm -rf /mnt/d",
    "rm -rf /mnt/*", "mkdir /mnt/x", "mkdir -p /mnt/d/e", "rmdir /mnt/d", "mv /mnt/f /mnt/h", "mv /mnt/f /tmp/",
    "mv /tmp/plain /mnt/", "cp /tmp/plain /mnt/f", "cp -r /tmp /mnt/", "ln -s x /mnt/l", "ln /mnt/f /mnt/hard",
    "chmod 777 /mnt/f", "chmod -R 700 /mnt", "chown 5 /mnt/f", "sed -i s/o/0/ /mnt/f", "tar -xf /tmp/a.tar -C /mnt",
    "gzip /mnt/f", "find /mnt -name g -delete", "cd /mnt && echo y > rel",
])
def test_read_only_mount_refuses_every_change(setup: tuple[Path, Path], script: str) -> None:
    root, src = setup
    before = _tree(src)
    result = _run(root, src, script)
    assert result.exit_code != 0, (script, result.stderr)
    assert b"Read-only file system" in result.stderr or b"busy" in result.stderr, (script, result.stderr)
    assert _tree(src) == before, script


def test_reads_and_relative_paths_reach_the_mount(setup: tuple[Path, Path]) -> None:
    root, src = setup
    result = _run(root, src, "cat /mnt/f; cd /mnt/d && cat g && pwd; ls /mnt; cat /mnt/d/../f; [ -d /mnt/d ] && echo dir")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.decode() == "original\ng\n/mnt/d\nd\nf\noriginal\ndir\n"


def test_writable_mount_takes_writes_and_its_point_is_busy(setup: tuple[Path, Path]) -> None:
    root, src = setup
    result = _run(root, src, "echo new > /mnt/n; rm -rf /mnt; echo $?; ls /mnt | wc -l", readonly=False)
    assert result.stdout.decode().split() == ["1", "0"]  # contents removed, the mount point itself: EBUSY
    assert b"busy" in result.stderr
    assert src.is_dir() and not os.listdir(src)
    assert (root / "mnt").is_dir()


def test_a_symlink_inside_a_mount_resolves_in_the_root(setup: tuple[Path, Path], tmp_path: Path) -> None:
    root, src = setup
    (root / "etc").mkdir()
    (root / "etc" / "x").write_text("root's\n")
    (src / "abs").symlink_to("/etc/x")
    (src / "up").symlink_to("../../../../../../etc/x")
    result = _run(root, src, "cat /mnt/abs /mnt/up")
    assert result.stdout.decode() == "root's\nroot's\n"
