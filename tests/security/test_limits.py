"""Resource limits: huge sparse files stream with flat memory, decompression bombs stop at the configured limit,
deep trees and long names are handled or refused with a MinibuildError.

MINIBUILD_LIMITS_SPARSE_GB (default 2) sets the size of the sparse file; the layer written from it is hashed, not
stored, so the test needs no disk space beyond the (sparse) file itself.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from minibuild.engine.copy import copy_into
from minibuild.fs.diff import diff_trees, entries_for_paths
from minibuild.fs.rootfs import apply_layer
from minibuild.errors import ConfigError, ContextError, ImageFormatError, MinibuildError
from minibuild.limits import DEFAULT_MAX_LAYER_BYTES, ENV_MAX_LAYER_BYTES, max_layer_bytes, parse_size
from minibuild.oci.archive import import_archive
from minibuild.store import Store
from minibuild.store.tarlayer import write_layer
from tests.security.hostile import docker_save_archive

SPARSE_GB = float(os.environ.get("MINIBUILD_LIMITS_SPARSE_GB", "2"))
REPO = str(Path(__file__).resolve().parents[2])


# ------------------------------------------------------------------------------------------- settings
def test_limit_parsing() -> None:
    assert parse_size("1048576") == 1 << 20
    assert parse_size("512M") == 512 << 20
    assert parse_size("100g") == 100 << 30
    assert parse_size("2TiB") == 2 << 40
    assert parse_size("0") is None and parse_size("unlimited") is None
    with pytest.raises(ConfigError, match="invalid size"):
        parse_size("lots")


def test_default_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_MAX_LAYER_BYTES, raising=False)
    assert max_layer_bytes() == DEFAULT_MAX_LAYER_BYTES == 64 << 30
    monkeypatch.setenv(ENV_MAX_LAYER_BYTES, "1K")
    assert max_layer_bytes() == 1024
    monkeypatch.setenv(ENV_MAX_LAYER_BYTES, "-3")
    with pytest.raises(ConfigError, match=ENV_MAX_LAYER_BYTES):
        max_layer_bytes()


# ------------------------------------------------------------------------------------------- bombs
def _gzip_bomb(total: int) -> bytes:
    """A gzip of a tar whose one file claims ``total`` bytes of zeros, built from repeated gzip members."""
    ti = tarfile.TarInfo("bomb")
    ti.size = total
    header = ti.tobuf(tarfile.GNU_FORMAT)
    chunk = 16 << 20
    zeros = gzip.compress(b"\0" * chunk, compresslevel=9, mtime=0)
    return gzip.compress(header, mtime=0) + zeros * (total // chunk)


BOMB_TOTAL = 1 << 30  # 1 GiB of zeros in about 1 MB of gzip


@pytest.fixture
def low_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv(ENV_MAX_LAYER_BYTES, "32M")
    return 32 << 20


def test_gzip_bomb_layer_is_stopped_when_applied(tmp_path: Path, low_limit: int) -> None:
    bomb = _gzip_bomb(BOMB_TOTAL)
    assert len(bomb) < 2 << 20
    root = tmp_path / "root"
    root.mkdir()
    tracemalloc.start()
    try:
        with pytest.raises(ImageFormatError, match=ENV_MAX_LAYER_BYTES) as info:
            apply_layer(root, io.BytesIO(bomb))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(info.value)
    assert peak < 64 << 20, f"peak Python memory {peak >> 20} MiB while decompressing"
    written = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert written <= low_limit


def test_gzip_bomb_layer_is_stopped_on_load(tmp_path: Path, low_limit: int) -> None:
    archive = tmp_path / "bomb.tar"
    # docker-save layers are sniffed; the diff_id is wrong too, but the limit must trip first
    data = docker_save_archive(b"\0" * 1024)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        files = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]
    files["l/layer.tar"] = _gzip_bomb(BOMB_TOTAL)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(content)
            tf.addfile(ti, io.BytesIO(content))
    archive.write_bytes(buf.getvalue())
    store = Store.open(tmp_path / "store")
    tracemalloc.start()
    try:
        with pytest.raises(ImageFormatError, match=ENV_MAX_LAYER_BYTES):
            import_archive(store, archive)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"peak Python memory {peak >> 20} MiB while loading"
    assert list(store.blobs) == [] and os.listdir(store.tmp_dir) == []


@pytest.mark.parametrize("kind", ["gzip", "xz", "bzip2"])
def test_bomb_archive_in_add_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    monkeypatch.setenv(ENV_MAX_LAYER_BYTES, "4M")
    ti = tarfile.TarInfo("bomb")
    ti.size = 64 << 20
    raw = ti.tobuf(tarfile.GNU_FORMAT) + b"\0" * ti.size
    import bz2
    import lzma

    packed = {"gzip": lambda b: gzip.compress(b, mtime=0), "xz": lzma.compress, "bzip2": bz2.compress}[kind](raw)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "bomb.tar").write_bytes(packed)
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ContextError, match=ENV_MAX_LAYER_BYTES):
        copy_into(root, ctx, ["bomb.tar"], "/x/", unpack=True, instruction="ADD")


def test_limit_counts_plain_layers_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MAX_LAYER_BYTES, "1M")
    ti = tarfile.TarInfo("f")
    ti.size = 2 << 20
    layer = ti.tobuf(tarfile.GNU_FORMAT) + b"\0" * ti.size + b"\0" * 1024
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ImageFormatError, match=ENV_MAX_LAYER_BYTES):
        apply_layer(root, io.BytesIO(layer))
    monkeypatch.setenv(ENV_MAX_LAYER_BYTES, "3M")
    assert apply_layer(root, io.BytesIO(layer)).bytes == 2 << 20


# ------------------------------------------------------------------------------------------- huge files stream
STREAM = r"""
import json, os, resource, sys
from pathlib import Path
from minibuild.fs.diff import entries_for_paths
from minibuild.engine.copy import source_checksum
from minibuild.store.tarlayer import write_layer
root = Path(sys.argv[1])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
class Null:
    def write(self, b):
        return len(b)
info = write_layer(entries_for_paths(root, ["big"]), Null(), compression="none")
after_layer = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
checksum = source_checksum(root, ["big"])
after_ctx = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kb": base, "layer_kb": after_layer, "ctx_kb": after_ctx,
                  "tar_size": info.uncompressed_size, "checksum": checksum}))
"""


def test_sparse_file_of_several_gb_streams_with_flat_memory(tmp_path: Path) -> None:
    size = int(SPARSE_GB * (1 << 30))
    root = tmp_path / "ctx"
    root.mkdir()
    with open(root / "big", "wb") as fh:
        fh.truncate(size)
        fh.seek(size - 5)
        fh.write(b"tail\n")
    proc = subprocess.run([sys.executable, "-c", STREAM, str(root)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["tar_size"] >= size + 1024
    grown_mb = (max(r["layer_kb"], r["ctx_kb"]) - r["base_kb"]) / 1024
    assert grown_mb < 64, f"peak RSS grew by {grown_mb:.0f} MB while streaming a {SPARSE_GB} GiB file"


# ------------------------------------------------------------------------------------------- deep trees, long names
def _roundtrip(src: Path, tmp_path: Path) -> None:
    buf = io.BytesIO()
    write_layer(entries_for_paths(src, sorted(os.listdir(src))), buf)
    out = tmp_path / "out"
    out.mkdir()
    apply_layer(out, io.BytesIO(buf.getvalue()))
    assert [e for e in diff_trees(src, out) if e.type != "dir"] == []


def test_200_levels_of_directories(tmp_path: Path) -> None:
    src = tmp_path / "src"
    deep = src.joinpath(*["d"] * 200)
    deep.mkdir(parents=True)
    (deep / "leaf").write_text("bottom\n")
    _roundtrip(src, tmp_path)
    assert (tmp_path / "out").joinpath(*["d"] * 200, "leaf").read_text() == "bottom\n"
    dest = tmp_path / "copied"
    dest.mkdir()
    copy_into(dest, src, ["d"], "/d")
    assert dest.joinpath(*["d"] * 200, "leaf").read_text() == "bottom\n"


def test_255_byte_names_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    name = "n" * 255
    (src / name).mkdir(parents=True)
    (src / name / name).write_text("long\n")
    os.symlink("t" * 255, src / name / ("s" * 255))
    _roundtrip(src, tmp_path)
    assert os.readlink(tmp_path / "out" / name / ("s" * 255)) == "t" * 255


def _tar(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for n in names:
            ti = tarfile.TarInfo(n)
            ti.size = 1
            tf.addfile(ti, io.BytesIO(b"x"))
    return buf.getvalue()


@pytest.mark.parametrize("names", [
    ["n" * 256],                                        # a component longer than NAME_MAX
    ["/".join(["c" * 250] * 20)],                       # a 5 KB path, beyond PATH_MAX
    ["/".join(["d"] * 3000) + "/f"],                    # 3000 levels
], ids=["name-256", "path-5k", "depth-3000"])
def test_overlong_names_are_refused_cleanly(tmp_path: Path, names: list[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    try:
        try:
            apply_layer(root, io.BytesIO(_tar(names)))
        except MinibuildError as err:
            assert str(err) and "\n" not in str(err)
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "a.tar").write_bytes(_tar(names))
        dest = tmp_path / "dest"
        dest.mkdir()
        try:
            copy_into(dest, ctx, ["a.tar"], "/x/", unpack=True, instruction="ADD")
        except MinibuildError as err:
            assert str(err) and "\n" not in str(err)
    finally:
        # a 3000-level tree is past the recursion pytest's own tmp_path clean-up can take (RecursionError
        # tracebacks in later sessions' garbage collection): remove it here, with rm, which walks iteratively
        subprocess.run(["rm", "-rf", "--", str(tmp_path / "root"), str(tmp_path / "dest")], check=False)


# ------------------------------------------------------------------------------------------- hostile tar headers
# Every tar minibuild reads goes through minibuild.boundedtar; each attack is tried through each kind of reader.
def _read_as(kind: str, data: bytes, tmp_path: Path) -> None:
    """Feed ``data`` to one of minibuild's tar readers (raises what that reader raises)."""
    from minibuild.store.tarread import check_layer

    if kind == "apply":
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        apply_layer(root, io.BytesIO(data))
    elif kind == "check":
        check_layer(io.BytesIO(data))
    elif kind == "add":
        ctx = tmp_path / "ctx"
        ctx.mkdir(exist_ok=True)
        (ctx / "a.tar").write_bytes(data)
        dest = tmp_path / "dest"
        dest.mkdir(exist_ok=True)
        copy_into(dest, ctx, ["a.tar"], "/x/", unpack=True, instruction="ADD")
    elif kind == "load":
        (tmp_path / "image.tar").write_bytes(data)
        store = Store.open(tmp_path / "store")
        try:
            import_archive(store, tmp_path / "image.tar")
        finally:
            assert list(store.blobs) == [] and os.listdir(store.tmp_dir) == []
    else:
        raise AssertionError(kind)


READERS = ["apply", "check", "add", "load"]
BIG_HEADER = 3 << 29  # 1.5 GiB of header payload in about 1.5 MB of gzip


def _refused_flat(kind: str, data: bytes, tmp_path: Path, match: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(MinibuildError, match=match) as info:
            _read_as(kind, data, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(info.value)
    assert peak < 64 << 20, f"peak Python memory {peak >> 20} MiB while reading a hostile tar"


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize("typeflag", [tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME,
                                      tarfile.GNUTYPE_LONGLINK], ids=["pax", "pax-global", "gnu-longname",
                                                                      "gnu-longlink"])
def test_huge_extension_header_is_refused_before_it_is_read(tmp_path: Path, kind: str, typeflag: bytes) -> None:
    from tests.security.hostile import extension_bomb

    data = extension_bomb(typeflag, BIG_HEADER)
    assert len(data) < 2 << 20
    _refused_flat(kind, data, tmp_path, "more than 1048576 bytes")


def _chain(n: int, typeflag: bytes) -> bytes:
    """``n`` small extension headers of one kind, then one real file, then the end of the archive."""
    from tests.security.hostile import header_block

    record = b"30 comment=" + b"c" * 18 + b"\n"
    one = header_block("././@Ext", typeflag, len(record)) + record + b"\0" * (512 - len(record))
    ti = tarfile.TarInfo("f")
    return one * n + ti.tobuf(tarfile.USTAR_FORMAT) + b"\0" * 1024


@pytest.mark.parametrize("kind", READERS)
def test_a_long_chain_of_extension_headers_is_refused(tmp_path: Path, kind: str) -> None:
    # tarfile recurses once per extension header: 5000 of them would end in a RecursionError traceback
    _refused_flat(kind, _chain(5000, tarfile.XHDTYPE), tmp_path, "extension headers precede one member")


def test_global_headers_are_capped_over_the_whole_archive(tmp_path: Path) -> None:
    from tests.security.hostile import header_block

    parts = []
    for i in range(300):  # each global header is allowed, but tarfile keeps (and copies) them all
        rec = b"SCHILY.xattr.user.k%05d=" % i + b"v" * 8000 + b"\n"
        rec = b"%d " % (len(rec) + 5) + rec  # the length counts itself (4 digits) and its space: a valid record
        assert int(rec.split(b" ", 1)[0]) == len(rec)
        parts.append(header_block("././@Global", tarfile.XGLTYPE, len(rec)) + rec + b"\0" * (-len(rec) % 512))
        parts.append(tarfile.TarInfo("f%05d" % i).tobuf(tarfile.USTAR_FORMAT))
    data = b"".join(parts) + b"\0" * 1024
    with pytest.raises(ImageFormatError, match="global PAX headers total more than"):
        _read_as("check", data, tmp_path)


@pytest.mark.parametrize("kind", ["apply", "check", "add"])
def test_sparse_member_counts_at_its_full_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    from tests.security.hostile import gnu_sparse

    monkeypatch.setenv(ENV_MAX_LAYER_BYTES, "32M")
    layer = gnu_sparse("big", 512 << 20, b"tail\n") + b"\0" * 1024  # a 2 KiB layer declaring 512 MiB
    assert len(layer) == 2048
    with pytest.raises(MinibuildError, match=ENV_MAX_LAYER_BYTES):
        _read_as(kind, layer, tmp_path)
    written = sum(p.lstat().st_size for p in tmp_path.rglob("*") if p.is_file() and p.name != "a.tar")
    assert written < 1 << 20, f"{written} bytes were extracted past the limit"


def test_sparse_map_chain_is_capped(tmp_path: Path) -> None:
    from tests.security.hostile import gnu_sparse

    layer = gnu_sparse("big", 1 << 20, b"tail\n", extension_blocks=4096) + b"\0" * 1024  # 2 MiB of sparse map
    _refused_flat("check", gzip.compress(layer, mtime=0), tmp_path, "GNU sparse map of more than")


def test_honest_sparse_member_extracts_whole(tmp_path: Path) -> None:
    from tests.security.hostile import gnu_sparse

    layer = gnu_sparse("big", 3 << 20, b"tail\n", extension_blocks=2) + b"\0" * 1024
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(root, io.BytesIO(layer))
    data = (root / "big").read_bytes()
    assert len(data) == 3 << 20 and data.endswith(b"tail\n")


# ------------------------------------------------------------------------------------------- JSON documents
def test_json_documents_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from minibuild.engine.cachesync import read_layout
    from minibuild.errors import StoreError
    from minibuild.limits import ENV_MAX_DOCUMENT_BYTES, max_document_bytes
    from tests.security.hostile import archive_of

    assert max_document_bytes() == 8 << 20
    monkeypatch.setenv(ENV_MAX_DOCUMENT_BYTES, "1M")
    big = b"[" + b" " * (2 << 20) + b"]"
    (tmp_path / "image.tar").write_bytes(archive_of({"manifest.json": big}))
    store = Store.open(tmp_path / "store")
    with pytest.raises(ImageFormatError, match=f"manifest.json is larger than 1048576 bytes.*{ENV_MAX_DOCUMENT_BYTES}"):
        import_archive(store, tmp_path / "image.tar")
    layout = tmp_path / "cache"
    layout.mkdir()
    (layout / "index.json").write_bytes(big)
    with pytest.raises(StoreError, match=ENV_MAX_DOCUMENT_BYTES):
        read_layout(layout)


@pytest.mark.parametrize("kind", READERS)
def test_a_negative_header_size_is_refused(tmp_path: Path, kind: str) -> None:
    from tests.security.hostile import negative_size_bomb

    _refused_flat(kind, negative_size_bomb(tarfile.XHDTYPE, BIG_HEADER), tmp_path, "negative size")
