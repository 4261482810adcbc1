"""Layer mtimes: hostile values from a tar are made sane, and the exported layer clamps them (store/retime.py)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from minibuild.fs.rootfs import apply_layer
from minibuild.store.retime import clamp_layer_mtimes
from minibuild.store.tarlayer import MAX_MTIME, Entry, clamp_mtime, sane_mtime, write_layer
from minibuild.store.tarread import read_entries


def _hostile_tar() -> bytes:
    """A PAX tar as another tool may write it: negative, fractional, huge and NaN mtimes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, mtime in (("neg", -5), ("frac", 1500000000.75), ("huge", 1e30), ("nan", 0), ("ok", 1234)):
            ti = tarfile.TarInfo(name)
            ti.size = 1
            ti.mtime = mtime  # type: ignore[assignment]
            if name == "nan":
                ti.pax_headers = {"mtime": "nan"}  # tarfile reads it as float("nan")
            tf.addfile(ti, io.BytesIO(b"x"))
        d = tarfile.TarInfo("dir")
        d.type = tarfile.DIRTYPE
        d.mtime = 1e300  # type: ignore[assignment]
        tf.addfile(d)
    return buf.getvalue()


def test_sane_and_clamped_values() -> None:
    assert [sane_mtime(v) for v in (-5, 0, 1.9, 1234, 1e30, float("inf"), float("nan"))] == [
        0, 0, 1, 1234, MAX_MTIME, MAX_MTIME, 0]
    assert MAX_MTIME == 8589934591  # 11 octal digits: what a USTAR header holds
    assert [clamp_mtime(v, 1000) for v in (5, 1000, 5000, -1, 1e30)] == [5, 1000, 1000, 0, 1000]
    assert clamp_mtime(5, -7) == 0


def test_hostile_mtimes_of_an_imported_layer_read_and_extract_sanely(tmp_path: Path) -> None:
    got = {e.path: e.mtime for e in read_entries(io.BytesIO(_hostile_tar()))}
    assert got == {"neg": 0, "frac": 1500000000, "huge": MAX_MTIME, "nan": 0, "ok": 1234, "dir": MAX_MTIME}
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(root, io.BytesIO(_hostile_tar()))  # no OverflowError from utime
    assert (root / "frac").stat().st_mtime == 1500000000
    assert (root / "huge").stat().st_mtime == MAX_MTIME


def test_clamping_a_layer_rewrites_only_the_mtimes() -> None:
    entries = [Entry(path="d", type="dir", mode=0o750, uid=3, mtime=9000), Entry(path="d/f", type="file",
               data=b"data", uid=1000, gid=1000, mtime=100), Entry(path="d/l", type="symlink", linkname="f",
               mtime=2**40)]
    kept = io.BytesIO()
    write_layer(entries, kept, clamp_mtimes=False)
    out = io.BytesIO()
    result = clamp_layer_mtimes(io.BytesIO(kept.getvalue()), out, epoch=5000)
    assert result.changed
    # exactly what the writer gives when it clamps itself (so a store layer exports as it did before)
    direct = io.BytesIO()
    info = write_layer(entries, direct, source_date_epoch=5000)
    assert out.getvalue() == direct.getvalue() and result.info.diff_id == info.diff_id
    assert {e.path: e.mtime for e in read_entries(io.BytesIO(out.getvalue()))} == {
        "d": 5000, "d/f": 100, "d/l": 5000}
    # nothing newer than the epoch: unchanged, and the caller keeps the original blob
    again = clamp_layer_mtimes(io.BytesIO(out.getvalue()), io.BytesIO(), epoch=5000)
    assert not again.changed and again.info.diff_id == info.diff_id


def test_hostile_layer_clamps_without_error() -> None:
    result = clamp_layer_mtimes(io.BytesIO(_hostile_tar()), io.BytesIO(), epoch=1000)
    assert result.changed


@pytest.mark.parametrize("mtime", [-1, 1.5, 10**20])
def test_writer_keeps_sane_mtimes_without_clamping(mtime: float) -> None:
    buf = io.BytesIO()
    write_layer([Entry(path="f", type="file", data=b"", mtime=mtime)], buf, clamp_mtimes=False)  # type: ignore[arg-type]
    (e,) = read_entries(io.BytesIO(buf.getvalue()))
    assert e.mtime == sane_mtime(mtime)
