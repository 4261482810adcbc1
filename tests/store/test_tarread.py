"""Layer reader: round trip of written layers, compression sniffing, and the structural self-check."""

from __future__ import annotations

import bz2
import io
import tarfile

import pytest

from minibuild.errors import ImageFormatError, UnsafePathError
from minibuild.store.tarlayer import Entry, whiteout, write_layer
from minibuild.store.tarread import check_layer, iter_layer, read_entries


def written(entries: list[Entry], **kw: object) -> io.BytesIO:
    buf = io.BytesIO()
    write_layer(entries, buf, **kw)  # type: ignore[arg-type]
    buf.seek(0)
    return buf


ENTRIES = [
    Entry(path="bin", type="dir", mode=0o755),
    Entry(path="bin/ping", type="file", mode=0o4755, uid=0, gid=0, data=b"\x7fELF",
          xattrs=(("security.capability", b"\x01\x00\x00\x02\x00\x20"),)),
    Entry(path="bin/ping6", type="hardlink", linkname="bin/ping"),
    Entry(path="bin/sh", type="symlink", mode=0o777, linkname="/bin/busybox"),
    Entry(path="dev", type="dir", mode=0o755),
    Entry(path="dev/null", type="char", mode=0o666, devmajor=1, devminor=3),
    Entry(path="home", type="dir", mode=0o755),
    Entry(path="home/u", type="dir", mode=0o700, uid=1000, gid=1000),
    Entry(path="home/u/" + "é" * 80, type="file", mode=0o600, uid=1000, gid=1000, data=b"long"),
    whiteout("home/gone"),
]


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_round_trip(compression: str) -> None:
    got = read_entries(written(ENTRIES, compression=compression, source_date_epoch=0))
    by_path = {e.path: e for e in got}
    assert set(by_path) == {e.path for e in ENTRIES}
    assert by_path["bin/ping"].xattrs == (("security.capability", b"\x01\x00\x00\x02\x00\x20"),)
    assert by_path["bin/ping6"].type == "hardlink" and by_path["bin/ping6"].linkname == "bin/ping"
    assert (by_path["dev/null"].devmajor, by_path["dev/null"].devminor) == (1, 3)
    assert by_path["home/u"].uid == 1000 and by_path["home/u"].mode == 0o700
    assert by_path["bin/sh"].linkname == "/bin/busybox"
    check_layer(written(ENTRIES, compression=compression))


def test_content_streams_and_bzip2_sniffed() -> None:
    raw = written([Entry(path="f", type="file", data=b"abc" * 1000)]).getvalue()
    for blob in (raw, bz2.compress(raw)):
        items = [(e.path, s.read() if s else None) for e, s in iter_layer(io.BytesIO(blob))]
        assert items == [("f", b"abc" * 1000)]


def hand_tar(*members: tuple[str, bytes, str]) -> io.BytesIO:
    """A tar built with tarfile, for layers our writer refuses to produce."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, link in members:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.linkname = link
            tf.addfile(ti, io.BytesIO(b""))
    buf.seek(0)
    return buf


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ((("a", tarfile.REGTYPE, ""), ("a", tarfile.REGTYPE, "")), "twice"),
        ((("a", tarfile.REGTYPE, ""), (".wh.a", tarfile.REGTYPE, "")), "whiteout"),
        (((".wh.a", tarfile.REGTYPE, ""), ("a", tarfile.REGTYPE, "")), "whiteout"),
        ((("l", tarfile.LNKTYPE, "t"), ("t", tarfile.REGTYPE, "")), "hardlink"),
        ((("d/f", tarfile.REGTYPE, ""),), "parent"),
    ],
)
def test_check_layer_rejects(members: tuple[tuple[str, bytes, str], ...], message: str) -> None:
    with pytest.raises(ImageFormatError, match=message):
        check_layer(hand_tar(*members))


def test_reader_rejects_dotdot_and_strips_absolute() -> None:
    with pytest.raises(UnsafePathError):
        read_entries(hand_tar(("../x", tarfile.REGTYPE, "")))
    with pytest.raises(UnsafePathError):
        read_entries(hand_tar(("l", tarfile.LNKTYPE, "../../etc/passwd")))
    assert [e.path for e in read_entries(hand_tar(("/abs/x", tarfile.REGTYPE, "")))] == ["abs/x"]


def test_garbage_is_a_format_error() -> None:
    with pytest.raises(ImageFormatError):
        read_entries(io.BytesIO(b"not a tar at all" * 100))
