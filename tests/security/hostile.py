"""The hostile corpus: tar archives and trees built by the tests (never downloaded), plus a sentinel to guard.

Every case names members relative to a root; ``{OUT}`` in a name or link target is replaced by the absolute
path of the guarded directory outside the root, so the archives aim at a real host path of the test.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from minibuild.digest import Digest

SENTINEL_TEXT = "do not touch\n"


@dataclass(frozen=True)
class Member:
    kind: str  # file, dir, symlink, hardlink, char, fifo
    name: str
    data: bytes = b"pwned\n"
    link: str = ""


def F(name: str, data: bytes = b"pwned\n") -> Member:
    return Member("file", name, data)


def D(name: str) -> Member:
    return Member("dir", name)


def S(name: str, link: str) -> Member:
    return Member("symlink", name, link=link)


def H(name: str, link: str) -> Member:
    return Member("hardlink", name, link=link)


# name -> members; every case tries to write, link, delete or read something in {OUT} (the guarded directory)
CASES: dict[str, tuple[Member, ...]] = {
    "dotdot-file": (F("../outside/sentinel"), F("../pwned")),
    "dotdot-deep": (D("a"), F("a/../../outside/sentinel")),
    "absolute-name": (F("{OUT}/sentinel"),),
    "symlink-abs-then-file": (S("esc", "{OUT}"), F("esc/sentinel")),
    "symlink-rel-then-file": (S("esc", "../../../../../../../../../../../{OUT}"), F("esc/sentinel")),
    "symlink-chain-then-file": (S("a", "b"), S("b", "c"), S("c", "{OUT}"), F("a/sentinel")),
    "symlink-dotdot-parent": (D("d"), S("d/up", "../../../../../../.."), F("d/up{OUT}/sentinel")),
    "symlink-loop": (S("l1", "l2"), S("l2", "l1"), F("l1/x")),
    "hardlink-dotdot": (H("h", "../outside/sentinel"),),
    "hardlink-absolute": (H("h", "{OUT}/sentinel"),),
    "hardlink-via-symlink": (S("esc", "{OUT}"), H("h", "esc/sentinel"), F("h")),
    "whiteout-dotdot": (D("d"), F("d/.wh..."),),
    "whiteout-via-symlink": (S("esc", "{OUT}"), F("esc/.wh.sentinel", b"")),
    "opaque-via-symlink": (S("esc", "{OUT}"), F("esc/.wh..wh..opq", b"")),
    "file-then-child": (F("f"), F("f/x")),
    "device-nodes": (Member("char", "dev/sda-like"), Member("fifo", "dev/fifo")),
    "symlink-replaced-by-dir-trick": (S("x", "{OUT}"), D("x"), F("x/sentinel")),
}

# on-disk trick: the root already holds a symlink to {OUT}; the layer writes through it
PRE_EXISTING = {"pre-symlink": (S("pre", "{OUT}"),)}
PRE_CASES: dict[str, tuple[Member, ...]] = {
    "pre-symlink": (F("pre/sentinel"), H("h2", "pre/sentinel"), F("pre/.wh.sentinel", b"")),
}


def resolve_members(members: tuple[Member, ...], out: Path) -> tuple[Member, ...]:
    res = []
    for m in members:
        name = m.name.replace("{OUT}", str(out))
        link = m.link.replace("{OUT}", str(out)) if m.link.startswith("{OUT}") else m.link.replace("{OUT}", str(out).lstrip("/"))
        res.append(Member(m.kind, name, m.data, link))
    return tuple(res)


def tar_of(members: tuple[Member, ...]) -> bytes:
    """A tar with exactly these members, in order (Python's tarfile writes any name, '..' included)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            ti = tarfile.TarInfo(m.name)
            ti.mtime = 0
            ti.mode = 0o644
            if m.kind == "file":
                ti.size = len(m.data)
                tf.addfile(ti, io.BytesIO(m.data))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                       "char": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[m.kind]
            if m.kind == "dir":
                ti.mode = 0o755
            if m.kind in ("symlink", "hardlink"):
                ti.linkname = m.link
            if m.kind == "char":
                ti.devmajor, ti.devminor = 8, 0
            tf.addfile(ti)
    return buf.getvalue()


def make_tree(root: Path, members: tuple[Member, ...]) -> None:
    """Create ``members`` directly on disk under ``root`` (for pre-existing tricks and hostile source roots)."""
    for m in members:
        p = root / m.name
        p.parent.mkdir(parents=True, exist_ok=True)
        if m.kind == "symlink":
            os.symlink(m.link, p)
        elif m.kind == "dir":
            p.mkdir(exist_ok=True)
        elif m.kind == "file":
            p.write_bytes(m.data)


class Guard:
    """A directory outside the root holding a sentinel; ``check()`` asserts nothing in it changed."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "outside"
        self.dir.mkdir()
        self.sentinel = self.dir / "sentinel"
        self.sentinel.write_text(SENTINEL_TEXT)
        (self.dir / "passwd").write_text("evil:x:4242:4242::/:/bin/sh\n")
        self.base = base
        self._before = self._state()
        self._top = sorted(os.listdir(base))

    def _state(self) -> dict[str, tuple[int, int, bytes]]:
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.dir):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                data = Path(p).read_bytes() if os.path.isfile(p) and not os.path.islink(p) else b""
                out[os.path.relpath(p, self.dir)] = (st.st_ino, st.st_nlink, data)
        return out

    def check(self, allowed: tuple[str, ...] = ()) -> None:
        """Assert the sentinel and everything else in the guarded directory is unchanged, and that nothing new
        appeared next to the root except the ``allowed`` names the test made itself."""
        assert self.sentinel.read_text() == SENTINEL_TEXT, "the sentinel outside the root was overwritten"
        assert self._state() == self._before, "something in the guarded directory outside the root changed"
        new = set(os.listdir(self.base)) - set(self._top) - set(allowed)
        assert not new, f"new entries appeared outside the root: {sorted(new)}"


def docker_save_archive(layer: bytes, *, gz: bool = False) -> bytes:
    """A docker-save tarball whose one layer is ``layer`` (an arbitrary, possibly hostile, tar)."""
    blob = gzip.compress(layer, mtime=0) if gz else layer
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [Digest.of_bytes(layer).value]},
                         "history": [{"created_by": "hostile"}]}).encode()
    cfg_name = Digest.of_bytes(config).hex + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": ["hostile:latest"], "Layers": ["l/layer.tar"]}]).encode()
    return archive_of({cfg_name: config, "l/layer.tar": blob, "manifest.json": manifest})


def oci_archive(layer: bytes, *, gz: bool = False, name: str = "hostile:oci") -> bytes:
    """An OCI-layout tarball whose one layer is ``layer``."""
    blob = gzip.compress(layer, mtime=0) if gz else layer
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [Digest.of_bytes(layer).value]}}).encode()
    media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": Digest.of_bytes(config).value, "size": len(config)},
                           "layers": [{"mediaType": media, "digest": Digest.of_bytes(blob).value,
                                       "size": len(blob)}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest.of_bytes(manifest).value,
         "size": len(manifest), "annotations": {"io.containerd.image.name": "docker.io/library/" + name}}]}).encode()
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index}
    for data in (config, manifest, blob):
        files["blobs/sha256/" + Digest.of_bytes(data).hex] = data
    return archive_of(files)


def archive_of(files: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            tf.addfile(ti)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ tar header bombs
def gzip_zeros(n: int) -> bytes:
    """``n`` zero bytes as concatenated gzip members (16 MiB of zeros compress to ~16 KB; cheap to build)."""
    chunk = 16 << 20
    out = gzip.compress(b"\0" * chunk, compresslevel=9, mtime=0) * (n // chunk)
    return out + (gzip.compress(b"\0" * (n % chunk), mtime=0) if n % chunk else b"")


def header_block(name: str, typeflag: bytes, size: int) -> bytes:
    """One 512-byte USTAR header of type ``typeflag`` claiming ``size`` bytes of payload."""
    ti = tarfile.TarInfo(name)
    ti.type = typeflag
    ti.size = size
    return ti.tobuf(tarfile.USTAR_FORMAT) if size < 8 ** 11 else ti.tobuf(tarfile.GNU_FORMAT)


def extension_bomb(typeflag: bytes, size: int) -> bytes:
    """A gzip'd tar whose first header (PAX ``x``/``g`` or GNU ``L``/``K``) claims ``size`` bytes of zeros."""
    return gzip.compress(header_block("././@Ext", typeflag, size), mtime=0) + gzip_zeros(-(-size // 512) * 512)


def gnu_sparse(name: str, realsize: int, data: bytes, *, extension_blocks: int = 0) -> bytes:
    """An old-GNU sparse member (type ``S``): ``data`` stored at the end of a file of ``realsize`` bytes, the rest
    a hole; ``extension_blocks`` sparse-map blocks follow the header (each with one more tiny data chunk)."""
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.GNUTYPE_SPARSE
    ti.size = len(data)
    buf = bytearray(ti.tobuf(tarfile.GNU_FORMAT))
    buf[386:398] = b"%011o\0" % (realsize - len(data))
    buf[398:410] = b"%011o\0" % len(data)
    buf[482] = 1 if extension_blocks else 0
    buf[483:495] = b"%011o\0" % realsize
    buf[148:156] = b"        "
    buf[148:156] = b"%06o\0 " % sum(buf)
    ext = bytearray(b"%011o\0%011o\0" % (1, 1) * 21 + bytes(8))
    ext[504] = 1
    blocks = bytes(ext) * max(extension_blocks - 1, 0) + (bytes(512) if extension_blocks else b"")
    return bytes(buf) + blocks + data + b"\0" * (-len(data) % 512)


def negative_size_bomb(typeflag: bytes, zeros: int) -> bytes:
    """A gzip'd tar whose first header (``typeflag``) has a negative base-256 size, then ``zeros`` zero bytes:
    tarfile reads ``read(-n)`` for it, i.e. the whole rest of the stream."""
    buf = bytearray(header_block("././@Neg", typeflag, 0))
    buf[124:136] = b"\xff" + (-512 % (1 << 88)).to_bytes(11, "big")
    buf[148:156] = b"        "
    buf[148:156] = b"%06o\0 " % sum(buf)
    return gzip.compress(bytes(buf), mtime=0) + gzip_zeros(zeros)
