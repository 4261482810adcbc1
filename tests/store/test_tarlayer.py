"""Deterministic layer writer: golden bytes against GNU tar, header fields by hand, gzip header, determinism."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import subprocess
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibuild.errors import BuildError, ImageFormatError, UnsafePathError
from minibuild.store.tarlayer import (
    EMPTY_LAYER_DIFF_ID,
    MEDIA_TYPE_TAR,
    MEDIA_TYPE_TAR_GZIP,
    Entry,
    normalize_path,
    opaque,
    prepare_entries,
    whiteout,
    write_layer,
)
from tests.support import require_tool


def layer_bytes(entries: list[Entry], **kw: object) -> bytes:
    buf = io.BytesIO()
    write_layer(entries, buf, **kw)  # type: ignore[arg-type]
    return buf.getvalue()


def gnu_tar(cwd: Path, *names: str) -> bytes:
    """GNU tar's USTAR output with normalised owners/mtime, sorted, 512-byte records (so exactly 2 zero blocks)."""
    tar = require_tool("tar")
    return subprocess.run(
        [tar, "--format=ustar", "--numeric-owner", "--owner=0", "--group=0", "--mtime=@0", "--sort=name",
         "--blocking-factor=1", "-cf", "-", *names],
        cwd=cwd, check=True, capture_output=True,
    ).stdout


# -- golden bytes ---------------------------------------------------------------------------------------------


def test_empty_layer_is_the_well_known_1024_zero_bytes() -> None:
    data = layer_bytes([])
    assert data == b"\0" * 1024
    # sha256 of 1024 zero bytes, the empty layer every engine knows (image-format.md §3.2 #4, §7 #16)
    assert hashlib.sha256(data).hexdigest() == EMPTY_LAYER_DIFF_ID.hex
    assert EMPTY_LAYER_DIFF_ID.hex == "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def test_tiny_layer_golden_digest() -> None:
    # Expected digest produced independently with GNU tar 1.34 on a tree with d/ (0755) and d/f (0644, "hello"):
    #   tar --format=ustar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -b1 -cf - d | sha256sum
    entries = [Entry(path="d/f", type="file", mode=0o644, data=b"hello"), Entry(path="d", type="dir", mode=0o755)]
    data = layer_bytes(entries)
    assert len(data) == 2560
    assert hashlib.sha256(data).hexdigest() == "d7e3e9c4082f6a5d8e6e05a3b27d6e6c7fddc712bcd962eb7969b0ccc5514e47"


def test_byte_identical_to_gnu_tar_for_a_ustar_tree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    long_dir = "L" * 60 + "/" + "M" * 50
    (src / "etc").mkdir(parents=True)
    (src / "tmp").mkdir()
    (src / long_dir).mkdir(parents=True)
    (src / "etc" / "passwd").write_bytes(b"root:x:0:0::/root:/bin/sh\n")
    (src / "etc" / "suid").write_bytes(b"#!/bin/sh\n" * 100)
    os.link(src / "etc" / "passwd", src / "etc" / "hard")
    (src / "etc" / "link").symlink_to("passwd")
    (src / long_dir / ("f" * 90)).write_bytes(b"x" * 513)
    os.chmod(src / "etc", 0o755)
    os.chmod(src / "etc" / "passwd", 0o644)
    os.chmod(src / "etc" / "suid", 0o4755)
    os.chmod(src / "tmp", 0o1777)
    os.chmod(src / ("L" * 60), 0o700)
    os.chmod(src / long_dir, 0o755)
    os.chmod(src / long_dir / ("f" * 90), 0o600)
    expected = gnu_tar(src, "L" * 60, "etc", "tmp")
    entries = [
        Entry(path="tmp", type="dir", mode=0o1777),
        Entry(path="etc/link", type="symlink", mode=0o777, linkname="passwd"),
        Entry(path="etc/passwd", type="file", mode=0o644, data=b"root:x:0:0::/root:/bin/sh\n"),
        # GNU tar stores the second path of the inode (in sort order "hard" < "passwd": hard carries the data)
        Entry(path="etc/hard", type="hardlink", linkname="etc/passwd"),
        Entry(path="etc/suid", type="file", mode=0o4755, data=b"#!/bin/sh\n" * 100),
        Entry(path="etc", type="dir", mode=0o755),
        Entry(path=long_dir + "/" + "f" * 90, type="file", mode=0o600, source_path=str(src / long_dir / ("f" * 90)),
              size=513),
        Entry(path="L" * 60, type="dir", mode=0o700),
        Entry(path=long_dir, type="dir", mode=0o755),
    ]
    assert layer_bytes(entries) == expected


# -- header fields checked by hand ---------------------------------------------------------------------------


def test_header_fields_ustar_and_no_host_names() -> None:
    data = layer_bytes([Entry(path="a", type="file", mode=0o100755, uid=1000, gid=1001, mtime=5, data=b"x")],
                       source_date_epoch=10)
    h = data[:512]
    assert h[:100].rstrip(b"\0") == b"a"
    assert h[100:108] == b"0000755\0"  # file-type bits masked off
    assert h[108:116] == b"0001750\0" and h[116:124] == b"0001751\0"
    assert h[124:136] == b"00000000001\0"
    assert h[136:148] == b"00000000005\0"
    assert h[156:157] == b"0"
    assert h[257:265] == b"ustar\x0000"
    assert h[265:297] == b"\0" * 32 and h[297:329] == b"\0" * 32  # uname, gname empty
    chk = sum(h[:148]) + 8 * 32 + sum(h[156:])
    assert h[148:156] == b"%06o\0 " % chk
    assert len(data) == 512 + 512 + 1024


def test_pax_only_where_needed() -> None:
    plain = layer_bytes([Entry(path="usr/bin/x", type="file", data=b"1")])
    assert b"PaxHeader" not in plain
    name = "dir/" + "é" * 3 + "-" + "n" * 120
    data = layer_bytes([
        Entry(path="dir", type="dir", mode=0o755),
        Entry(path=name, type="file", uid=3_000_000, data=b"z", xattrs=(("security.capability", b"\x01\x00\xff"),)),
    ])
    blocks = [data[i : i + 512] for i in range(0, len(data), 512)]
    assert blocks[0][:4] == b"dir/"
    pax_header = blocks[1]
    assert pax_header[156:157] == b"x"
    size = int(pax_header[124:135], 8)
    records = data[1024 : 1024 + size]
    parsed = []
    rest = records
    while rest:
        length = int(rest.split(b" ", 1)[0])
        rec, rest = rest[:length], rest[length:]
        assert rec.endswith(b"\n")
        key, value = rec[len(str(length)) + 1 : -1].split(b"=", 1)
        parsed.append((key, value))
    assert parsed == [
        (b"SCHILY.xattr.security.capability", b"\x01\x00\xff"),
        (b"path", name.encode()),
        (b"uid", b"3000000"),
    ]
    # and tarfile (an independent reader) agrees
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == ["dir", name]
    assert members[1].uid == 3_000_000 and members[1].uname == ""


def test_exactly_1024_trailing_zero_bytes_no_record_padding() -> None:
    data = layer_bytes([Entry(path="f", type="file", data=b"a" * 700)])
    assert len(data) == 512 + 1024 + 1024
    assert data[-1024:] == b"\0" * 1024
    assert data[512 + 700 : 512 + 1024] == b"\0" * 324


# -- determinism ---------------------------------------------------------------------------------------------

entry_st = st.builds(
    lambda i, kind, mode, mtime, content: Entry(
        path=f"d{i % 3}/n{i}", type=kind, mode=mode, mtime=mtime,
        data=content if kind == "file" else None, linkname="target" if kind == "symlink" else "",
    ),
    st.integers(0, 30), st.sampled_from(["file", "dir", "symlink", "fifo"]), st.sampled_from([0o644, 0o755, 0o4711]),
    st.integers(0, 2**33), st.binary(max_size=600),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(entry_st, max_size=12, unique_by=lambda e: e.path), st.randoms(use_true_random=False),
       st.one_of(st.none(), st.integers(0, 2**32)))
def test_order_independent_and_repeatable(entries: list[Entry], rnd: random.Random, sde: int | None) -> None:
    a = layer_bytes(entries, source_date_epoch=sde)
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert layer_bytes(shuffled, source_date_epoch=sde) == a
    assert layer_bytes(entries, source_date_epoch=sde) == a


def test_source_date_epoch_clamps_mtimes() -> None:
    entries = [Entry(path="old", type="file", mtime=100, data=b""), Entry(path="new", type="file", mtime=5000, data=b"")]
    with tarfile.open(fileobj=io.BytesIO(layer_bytes(entries, source_date_epoch=1000))) as tf:
        assert {m.name: m.mtime for m in tf} == {"new": 1000, "old": 100}
    with tarfile.open(fileobj=io.BytesIO(layer_bytes(entries))) as tf:
        assert {m.name: m.mtime for m in tf} == {"new": 0, "old": 0}


# -- structure rules -------------------------------------------------------------------------------------------


def test_parents_inserted_and_whiteouts_first_in_directory() -> None:
    entries = [Entry(path="a/b/c", type="file", data=b""), whiteout("a/b/zz"), opaque("a/b"),
               Entry(path="a/b/0", type="file", data=b"")]
    order = [(e.path, e.type, e.mode) for e in prepare_entries(entries)]
    assert order == [
        ("a", "dir", 0o755), ("a/b", "dir", 0o755), ("a/b/.wh..wh..opq", "file", 0o644),
        ("a/b/.wh.zz", "file", 0o644), ("a/b/0", "file", 0o644), ("a/b/c", "file", 0o644),
    ]


def test_path_and_its_whiteout_in_one_layer_is_rejected() -> None:
    with pytest.raises(ImageFormatError, match="whiteout"):
        layer_bytes([Entry(path="x", type="file", data=b""), whiteout("x")])


def test_cross_layer_hardlink_is_rejected() -> None:
    with pytest.raises(ImageFormatError, match="not in this layer"):
        layer_bytes([Entry(path="b", type="hardlink", linkname="a")])


def test_hardlink_before_its_target_is_reordered() -> None:
    data = layer_bytes([Entry(path="z/target", type="file", data=b"payload", mode=0o640),
                        Entry(path="a/link", type="hardlink", linkname="z/target")])
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        m = {x.name: x for x in tf.getmembers()}
        assert m["a/link"].isfile() and m["a/link"].mode == 0o640
        assert m["z/target"].islnk() and m["z/target"].linkname == "a/link"
        assert tf.extractfile("a/link").read() == b"payload"  # type: ignore[union-attr]


def test_paths_are_normalised_and_dotdot_rejected() -> None:
    assert normalize_path("/usr//bin/./x/") == "usr/bin/x"
    assert normalize_path("./") == ""
    with pytest.raises(UnsafePathError):
        normalize_path("a/../../etc")
    with pytest.raises(UnsafePathError):
        layer_bytes([Entry(path="../x", type="file", data=b"")])


def test_duplicates_last_wins() -> None:
    data = layer_bytes([Entry(path="f", type="file", data=b"1"), Entry(path="f", type="file", data=b"2")])
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert [m.name for m in tf] == ["f"]
        assert tf.extractfile("f").read() == b"2"  # type: ignore[union-attr]


# -- gzip --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "xfl"), [(1, 4), (6, 0), (9, 2)])
def test_gzip_header_and_digests(level: int, xfl: int) -> None:
    entries = [Entry(path="f", type="file", data=b"hello world " * 1000)]
    out = io.BytesIO()
    info = write_layer(entries, out, compression="gzip", level=level)
    blob = out.getvalue()
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([xfl]) + b"\xff"
    tar = gzip.decompress(blob)
    assert tar == layer_bytes(entries)
    assert info.diff_id.hex == hashlib.sha256(tar).hexdigest()
    assert info.digest.hex == hashlib.sha256(blob).hexdigest()
    assert (info.size, info.uncompressed_size) == (len(blob), len(tar))
    assert info.media_type == MEDIA_TYPE_TAR_GZIP
    gz = require_tool("gzip")
    assert subprocess.run([gz, "-dc"], input=blob, capture_output=True, check=True).stdout == tar
    assert layer_bytes(entries, compression="gzip", level=level) == blob


def test_uncompressed_digest_equals_diff_id() -> None:
    out = io.BytesIO()
    info = write_layer([Entry(path="f", type="file", data=b"1")], out)
    assert info.digest == info.diff_id and info.media_type == MEDIA_TYPE_TAR and info.size == len(out.getvalue())


# -- streaming -----------------------------------------------------------------------------------------------


def test_large_file_is_streamed_not_loaded(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as f:
        for i in range(40):
            f.write(bytes([i]) * (1 << 20))
    entry = Entry(path="big", type="file", source_path=str(big), size=40 << 20)
    sink = hashlib.sha256()

    class Out:
        def write(self, b: bytes) -> int:
            sink.update(b)
            return len(b)

    tracemalloc.start()
    info = write_layer([entry], Out())  # type: ignore[arg-type]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 << 20
    assert info.uncompressed_size == 512 + (40 << 20) + 1024
    assert info.diff_id.hex == sink.hexdigest()


def test_file_changing_size_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"12345")
    with pytest.raises(BuildError, match="changed size"):
        layer_bytes([Entry(path="f", type="file", source_path=str(f), size=3)])
    with pytest.raises(BuildError, match="changed size"):
        layer_bytes([Entry(path="f", type="file", source_path=str(f), size=9)])


def test_root_entry_is_never_written() -> None:
    # image-format.md §7.18: root directory attributes are engine-defined, so the layer never carries "./"
    data = layer_bytes([Entry(path="./", type="dir", mode=0o700), Entry(path="/", type="dir", mode=0o700),
                        Entry(path="x", type="file", data=b"")])
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.getnames() == ["x"]
