"""Layer extraction: confined path resolution, whiteouts, links, owners, devices, and hostile archives."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibuild.fs.rootfs import apply_entries, apply_layer, apply_layers, resolve_in_root, safe_join
from minibuild.errors import ImageFormatError, MinibuildError, UnsafePathError
from minibuild.store.tarlayer import Entry, opaque, whiteout, write_layer
from tests.support import require_root

# -- resolve_in_root -----------------------------------------------------------------------------------------


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


def test_resolve_absolute_symlink_restarts_at_root(root: Path) -> None:
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "lib").symlink_to("/usr/lib")
    assert resolve_in_root(root, "/lib/x.so") == root / "usr" / "lib" / "x.so"
    assert resolve_in_root(root, "lib", follow_final=False) == root / "lib"
    assert resolve_in_root(root, "lib") == root / "usr" / "lib"


def test_resolve_dotdot_is_clamped_or_strict(root: Path) -> None:
    (root / "d").mkdir()
    (root / "d" / "up").symlink_to("../../../..")
    assert resolve_in_root(root, "../../etc/passwd") == root / "etc" / "passwd"
    assert resolve_in_root(root, "d/up/etc") == root / "etc"
    with pytest.raises(UnsafePathError):
        resolve_in_root(root, "../etc", strict=True)
    with pytest.raises(UnsafePathError):
        resolve_in_root(root, "d/up/etc", strict=True)
    (root / "d" / "rel").symlink_to("../e")
    assert resolve_in_root(root, "d/rel/f", strict=True) == root / "e" / "f"


def test_resolve_symlink_loop_is_an_error(root: Path) -> None:
    (root / "l1").symlink_to("l2")
    (root / "l2").symlink_to("l1")
    with pytest.raises(UnsafePathError, match="too many levels"):
        resolve_in_root(root, "l1/x")
    assert resolve_in_root(root, "l1", follow_final=False) == root / "l1"


def test_resolve_through_a_root_that_is_a_symlink(tmp_path: Path, root: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    (root / "a").symlink_to("/b")
    assert resolve_in_root(alias, "a/c") == root / "b" / "c"
    assert safe_join(alias, "/a") == root / "a"


# -- applying layers -------------------------------------------------------------------------------------------


def layer(entries: list[Entry], compression: str = "none") -> io.BytesIO:
    buf = io.BytesIO()
    write_layer(entries, buf, compression=compression)  # type: ignore[arg-type]
    buf.seek(0)
    return buf


def hand_tar(members: list[tuple[str, str, str]], data: bytes = b"data") -> io.BytesIO:
    """A tar made with tarfile as given (possibly hostile or badly ordered): (name, kind, linkname)."""
    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, link in members:
            ti = tarfile.TarInfo(name)
            ti.type = kinds[kind]
            ti.linkname = link
            ti.mode = 0o755 if kind == "dir" else 0o644
            if kind == "file":
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if kind == "file" else None)
    buf.seek(0)
    return buf


def test_chain_with_whiteouts_and_opaque(root: Path) -> None:
    base = layer([
        Entry(path="etc/keep", type="file", data=b"k"),
        Entry(path="etc/gone", type="file", data=b"g"),
        Entry(path="var/cache/a", type="file", data=b"a"),
        Entry(path="var/cache/sub/b", type="file", data=b"b"),
        Entry(path="olddir/x", type="file", data=b"x"),
    ])
    top = layer([
        whiteout("etc/gone"), whiteout("olddir"), opaque("var/cache"),
        Entry(path="var/cache/new", type="file", data=b"n"), Entry(path="var/cache", type="dir", mode=0o750),
    ], compression="gzip")
    stats = apply_layers(root, [base, top])
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        "etc", "etc/keep", "var", "var/cache", "var/cache/new",
    ]
    assert stat.S_IMODE((root / "var" / "cache").stat().st_mode) == 0o750
    assert stats.whiteouts == 3


def test_whiteout_does_not_hide_same_layer_file_and_opaque_applies_first(root: Path) -> None:
    apply_layer(root, layer([Entry(path="d/lower", type="file", data=b"l"), Entry(path="x", type="file", data=b"")]))
    # foreign ordering: the opaque marker after this layer's own child, whiteout after the file it names
    apply_layer(root, hand_tar([("d/", "dir", ""), ("d/mine", "file", ""), ("d/.wh..wh..opq", "file", ""),
                                ("x", "file", ""), (".wh.x", "file", "")]))
    assert sorted(os.listdir(root / "d")) == ["mine"]
    assert (root / "x").exists()


def test_types_replace_each_other_and_dirs_merge(root: Path) -> None:
    apply_layer(root, layer([Entry(path="a/f", type="file", data=b"1"), Entry(path="b", type="file", data=b"")]))
    apply_layer(root, layer([Entry(path="a", type="dir", mode=0o700), Entry(path="a/g", type="file", data=b""),
                             Entry(path="b", type="dir"), Entry(path="b/c", type="symlink", linkname="../a")]))
    assert sorted(os.listdir(root / "a")) == ["f", "g"]
    assert stat.S_IMODE((root / "a").stat().st_mode) == 0o700
    assert os.readlink(root / "b" / "c") == "../a"
    apply_layer(root, layer([Entry(path="a", type="file", data=b"now a file")]))
    assert (root / "a").read_bytes() == b"now a file"


def test_hardlinks_and_symlinks_created_as_is(root: Path) -> None:
    apply_layer(root, layer([Entry(path="bin/busybox", type="file", mode=0o755, data=b"bb"),
                             Entry(path="bin/sh", type="hardlink", linkname="bin/busybox"),
                             Entry(path="bin/ls", type="symlink", linkname="/bin/busybox"),
                             Entry(path="dangling", type="symlink", linkname="../../nowhere")]))
    assert (root / "bin" / "sh").stat().st_ino == (root / "bin" / "busybox").stat().st_ino
    assert os.readlink(root / "bin" / "ls") == "/bin/busybox"
    assert os.readlink(root / "dangling") == "../../nowhere"


def test_writing_over_an_existing_symlink_replaces_it(tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    (root / "f").symlink_to(outside)
    (root / "d").symlink_to(tmp_path)
    apply_layer(root, layer([Entry(path="f", type="file", data=b"new"), Entry(path="d", type="dir")]))
    assert outside.read_bytes() == b"precious"
    assert (root / "f").read_bytes() == b"new" and not (root / "f").is_symlink()
    assert (root / "d").is_dir() and not (root / "d").is_symlink()


def test_root_entry_never_changes_the_root(root: Path) -> None:
    os.chmod(root, 0o755)
    apply_layer(root, hand_tar([("./", "dir", ""), ("./x", "file", "")]))
    assert stat.S_IMODE(root.stat().st_mode) == 0o755 and (root / "x").exists()


def test_owners_modes_and_setuid_as_root(root: Path) -> None:
    require_root()
    apply_layer(root, layer([
        Entry(path="home/u", type="dir", mode=0o700, uid=1000, gid=1000),
        Entry(path="home/u/tool", type="file", mode=0o4755, uid=1000, gid=1000, data=b"x"),
        Entry(path="home/u/link", type="symlink", linkname="tool", uid=1000, gid=1001),
        Entry(path="tmp", type="dir", mode=0o1777),
        Entry(path="ro", type="dir", mode=0o555), Entry(path="ro/inner", type="file", mode=0o444, data=b"r"),
        Entry(path="dev/null", type="char", mode=0o666, devmajor=1, devminor=3),
    ]))
    st_u = (root / "home" / "u").lstat()
    assert (st_u.st_uid, st_u.st_gid, stat.S_IMODE(st_u.st_mode)) == (1000, 1000, 0o700)
    st_t = (root / "home" / "u" / "tool").lstat()
    assert (st_t.st_uid, stat.S_IMODE(st_t.st_mode)) == (1000, 0o4755)
    st_l = (root / "home" / "u" / "link").lstat()
    assert (st_l.st_uid, st_l.st_gid) == (1000, 1001)
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert stat.S_IMODE((root / "ro").stat().st_mode) == 0o555
    dev = (root / "dev" / "null").lstat()
    assert stat.S_ISCHR(dev.st_mode) and os.major(dev.st_rdev) == 1 and os.minor(dev.st_rdev) == 3


def test_not_root_holds_devices_owners_and_modes_as_data() -> None:
    """As an ordinary user nothing of a layer is lost: the device node, the owners and the 0555/0000 modes the
    host cannot hold are in the root's ownership overlay, and the tree read back gives the layer's own values."""
    require_root()  # to drop to an unprivileged uid in a child process
    work = Path(tempfile.mkdtemp())  # directly under /tmp so that uid 65534 can reach it
    try:
        (work / "root").mkdir()
        layer_path = work / "layer.tar"
        with open(layer_path, "wb") as f:
            write_layer([Entry(path="dev", type="dir", mode=0o755),
                         Entry(path="dev/null", type="char", mode=0o666, devmajor=1, devminor=3),
                         Entry(path="ro", type="dir", mode=0o555),
                         Entry(path="ro/f", type="file", uid=5, gid=7, mode=0o4755, data=b"x"),
                         Entry(path="ro/none", type="file", uid=1000, gid=1000, mode=0o000, data=b"secret"),
                         Entry(path="p", type="fifo", mode=0o600, uid=3)], f)
        os.chown(work / "root", 65534, 65534)
        os.chmod(work, 0o755)
        code = (
            "import os, sys\n"
            "from minibuild.fs.rootfs import apply_layer\n"
            "from minibuild.fs.diff import snapshot\n"
            f"layer = open({str(layer_path)!r}, 'rb')\n"
            "os.setgid(65534); os.setuid(65534)\n"
            f"s = apply_layer({str(work / 'root')!r}, layer)\n"
            f"snap = snapshot({str(work / 'root')!r})\n"
            "print(len(s.warnings))\n"
            "for p in sorted(snap.records):\n"
            "    r = snap.records[p]\n"
            "    print(p, r.type, oct(r.mode), r.uid, r.gid, os.major(r.rdev), os.minor(r.rdev))\n"
            f"print(open({str(work / 'root' / 'ro' / 'none')!r}, 'rb').read().decode())\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[2])
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [
            "0",
            "dev dir 0o755 0 0 0 0",
            "dev/null char 0o666 0 0 1 3",
            "p fifo 0o600 3 0 0 0",
            "ro dir 0o555 0 0 0 0",
            "ro/f file 0o4755 5 7 0 0",
            "ro/none file 0o0 1000 1000 0 0",
            "secret",
        ]
        host = (work / "root" / "dev" / "null").lstat()  # the host holds a placeholder, owned by the user
        assert stat.S_ISREG(host.st_mode) and host.st_uid == 65534
    finally:
        shutil.rmtree(work)


def test_an_export_as_not_root_keeps_exact_modes_and_skips_devices_with_a_warning() -> None:
    """``-o type=local`` / ``materialize`` write a tree that is the product: exact modes on the host, and what an
    ordinary user cannot make (a device node) skipped with a warning, as ``tar -x`` does."""
    require_root()  # to drop to an unprivileged uid in a child process
    work = Path(tempfile.mkdtemp())  # directly under /tmp so that uid 65534 can reach it
    try:
        (work / "root").mkdir()
        layer_path = work / "layer.tar"
        with open(layer_path, "wb") as f:
            write_layer([Entry(path="dev/null", type="char", mode=0o666, devmajor=1, devminor=3),
                         Entry(path="ro", type="dir", mode=0o555), Entry(path="ro/f", type="file", uid=5, data=b"x"),
                         Entry(path="p", type="fifo", mode=0o600)], f)
        os.chown(work / "root", 65534, 65534)
        os.chmod(work, 0o755)
        code = (
            "import os, sys\n"
            "from minibuild.fs.rootfs import apply_layer\n"
            f"layer = open({str(layer_path)!r}, 'rb')\n"
            "os.setgid(65534); os.setuid(65534)\n"
            f"s = apply_layer({str(work / 'root')!r}, layer, export=True)\n"
            "print(len(s.warnings), s.warnings[0])\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[2])
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("1 skipped device node 'dev/null'")
        assert not (work / "root" / "dev" / "null").exists()
        assert (work / "root" / "ro" / "f").stat().st_uid == 65534
        assert stat.S_IMODE((work / "root" / "ro").stat().st_mode) == 0o555
        assert stat.S_ISFIFO((work / "root" / "p").lstat().st_mode)
    finally:
        shutil.rmtree(work)


def test_apply_entries_from_disk_sources(tmp_path: Path, root: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"from disk")
    apply_entries(root, [Entry(path="/opt/x", type="file", source_path=str(src), size=9), whiteout("nothing")])
    assert (root / "opt" / "x").read_bytes() == b"from disk"


# -- hostile archives -------------------------------------------------------------------------------------------


def test_dotdot_and_absolute_names(tmp_path: Path, root: Path) -> None:
    with pytest.raises(UnsafePathError, match=r"\.\./x"):
        apply_layer(root, hand_tar([("../x", "file", "")]))
    apply_layer(root, hand_tar([("/etc/abs", "file", "")]))
    assert (root / "etc" / "abs").exists()
    assert not (tmp_path / "x").exists()


def test_symlink_then_write_through(tmp_path: Path, root: Path) -> None:
    (tmp_path / "sentinel").mkdir()
    with pytest.raises(UnsafePathError, match="evil/pwned"):
        apply_layer(root, hand_tar([("evil", "symlink", "../sentinel"), ("evil/pwned", "file", "")]))
    # an absolute target is inside the root, as in a chroot
    apply_layer(root, hand_tar([("abs", "symlink", str(tmp_path / "sentinel")), ("abs/pwned", "file", "")]))
    assert list((tmp_path / "sentinel").iterdir()) == []
    assert (root / str(tmp_path / "sentinel").lstrip("/") / "pwned").exists()


def test_existing_symlink_on_disk_leading_out(tmp_path: Path, root: Path) -> None:
    (tmp_path / "sentinel").mkdir()
    (root / "up").symlink_to("../sentinel")
    with pytest.raises(UnsafePathError, match="up/x"):
        apply_layer(root, hand_tar([("up/x", "file", "")]))
    with pytest.raises(UnsafePathError):
        apply_layer(root, hand_tar([("up/.wh.x", "file", "")]))
    # a well-formed layer carries the parent "up/" as a directory, which replaces the symlink first
    apply_layer(root, layer([Entry(path="up/x", type="file", data=b"")]))
    assert (root / "up").is_dir() and not (root / "up").is_symlink()
    assert list((tmp_path / "sentinel").iterdir()) == []


def test_hardlink_to_outside(tmp_path: Path, root: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"s")
    (root / "up").symlink_to("..")
    with pytest.raises(UnsafePathError):
        apply_layer(root, hand_tar([("l", "hardlink", "../secret")]))
    with pytest.raises(UnsafePathError):
        apply_layer(root, hand_tar([("l", "hardlink", "up/secret")]))
    with pytest.raises(ImageFormatError, match="missing"):
        apply_layer(root, hand_tar([("l", "hardlink", str(secret))]))
    assert secret.stat().st_nlink == 1


def test_whiteout_of_dotdot(tmp_path: Path, root: Path) -> None:
    (tmp_path / "x").write_bytes(b"keep")
    (root / "d").mkdir()
    with pytest.raises(UnsafePathError):
        apply_layer(root, hand_tar([("../.wh.x", "file", "")]))
    with pytest.raises(UnsafePathError):
        apply_layer(root, hand_tar([("d/.wh..", "file", "")]))
    assert (tmp_path / "x").exists() and (root / "d").is_dir()


NAMES = ["a", "a/b", "a/b/c", "../x", "/abs", "/abs/y", "evil", "evil/pwned", "evil/sub/x", "a/../../x",
         ".wh...", "evil/.wh.f", ".wh.evil", "a/.wh..wh..opq", "evil/.wh..wh..opq", "up/f", "./a/./b", "..",
         "up"]
TARGETS = ["../sentinel", "../../", "/", "..", "../sentinel/f", "/etc", "evil", "a", "SENTINEL", "SENTINEL/f",
           "up/f", "evil/f", "a/b"]


def _fingerprint(d: Path) -> list[tuple[str, int, int, int, bytes | str]]:
    out = []
    for p in sorted(d.rglob("*")):
        st_ = p.lstat()
        body: bytes | str = os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else b""
        out.append((str(p.relative_to(d)), st_.st_mode, st_.st_nlink, st_.st_mtime_ns, body))
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(["file", "dir", "symlink", "hardlink"]),
                          st.sampled_from(TARGETS)), min_size=1, max_size=8))
def test_hostile_entries_never_touch_outside(members: list[tuple[str, str, str]]) -> None:
    tmp = Path(tempfile.mkdtemp())
    try:
        sentinel = tmp / "sentinel"
        sentinel.mkdir()
        (sentinel / "f").write_bytes(b"sentinel")
        (sentinel / "sub").mkdir()
        root = tmp / "root"
        root.mkdir()
        (root / "up").symlink_to("../sentinel")
        before = _fingerprint(sentinel)
        concrete = [(n, k, t.replace("SENTINEL", str(sentinel))) for n, k, t in members]
        try:
            apply_layer(root, hand_tar(concrete))
        except MinibuildError:
            pass
        assert _fingerprint(sentinel) == before
        assert sorted(os.listdir(tmp)) == ["root", "sentinel"]
    finally:
        for dirpath, dirnames, _ in os.walk(tmp):
            for d in dirnames:
                p = os.path.join(dirpath, d)
                if not os.path.islink(p):
                    os.chmod(p, 0o755)
        shutil.rmtree(tmp)
