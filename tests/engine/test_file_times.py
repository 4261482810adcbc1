"""File times (docs/file-times.md): inside a build the mtimes a step writes are what later steps and stages see, as
with Docker's builders; the exported image has them clamped to SOURCE_DATE_EPOCH (BuildKit's rewrite-timestamp),
the same digest from any store; RUN sees SOURCE_DATE_EPOCH in its environment."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from minibuild.api import build
from minibuild.engine.builder import BuildResult
from minibuild.oci.image import Image
from minibuild.store import Store
from minibuild.store.tarread import iter_layer, read_entries
from tests.engine.engine_support import image_files

# Expected values by hand, and as the classic builder gives them (tests/conformance/cases/file-times-across-stages):
# /new is newer than /old in the child stage and after COPY --from, with the times touch -d set.
DF = """\
FROM scratch AS one
COPY root/ /
RUN touch -d @1000000000 /old && touch -d @2000000000 /new
FROM one AS two
RUN if [ /new -nt /old ]; then echo newer; else echo older; fi > /r1 && stat -c %Y /old /new > /t1
FROM scratch
COPY root/ /
COPY --from=one /old /new /cf/
RUN if [ /cf/new -nt /cf/old ]; then echo newer; else echo older; fi > /r2 && stat -c %Y /cf/old /cf/new > /t2
"""


def _executor(name: str) -> str:
    if name == "chroot":
        from minibuild.executors.chroot import platform_problem
        from tests.support import require, require_root

        require_root()
        require(sys.platform.startswith("linux") and platform_problem() is None,
                f"chroot executor unavailable: {platform_problem()}")
    return name


@pytest.fixture()
def ctx(tmp_path: Path, busybox_rootfs: Path) -> Path:
    c = tmp_path / "ctx"
    shutil.copytree(busybox_rootfs, c / "root", symlinks=True)
    return c


def _build(ctx: Path, store: Path, executor: str, **kw: object) -> BuildResult:
    return build(ctx, dockerfile_text=DF, store=store, executor=executor, **kw)  # type: ignore[arg-type]


def _mtimes(store: Path, layers: object) -> dict[str, int]:
    st = Store.open(store)
    out: dict[str, int] = {}
    for layer in layers:  # type: ignore[attr-defined]
        with st.blobs.open(layer.digest) as fh:
            out.update({e.path: e.mtime for e in read_entries(fh)})
    return out


@pytest.mark.parametrize("executor", ["emulate", "chroot"])
def test_mtimes_of_a_stage_reach_its_child_stage_and_copy_from(ctx: Path, tmp_path: Path, executor: str) -> None:
    ex = _executor(executor)
    child = _build(ctx, tmp_path / "s", ex, target="two")
    files = image_files(tmp_path / "s", child)
    assert files["r1"][4] == b"newer\n"  # was "older": both read back as 0 in the child stage
    assert files["t1"][4] == b"1000000000\n2000000000\n"
    final = _build(ctx, tmp_path / "s", ex)
    files = image_files(tmp_path / "s", final)
    assert files["r2"][4] == b"newer\n"
    assert files["t2"][4] == b"1000000000\n2000000000\n"


def test_the_store_keeps_real_mtimes_and_the_export_clamps_them(ctx: Path, tmp_path: Path) -> None:
    res = _build(ctx, tmp_path / "s", "emulate", source_date_epoch=1500000000)
    internal = dict(res.stage_images)[2]
    own = len(internal.layers) - 1  # the final stage's base is scratch: only COPY root/ is below its own layers
    inside = _mtimes(tmp_path / "s", internal.layers[1:])
    assert (inside["cf/old"], inside["cf/new"]) == (1000000000, 2000000000)
    assert inside["r2"] > 1500000000  # written now
    exported = _mtimes(tmp_path / "s", res.image.layers[1:])
    assert (exported["cf/old"], exported["cf/new"], exported["r2"]) == (1000000000, 1500000000, 1500000000)
    assert max(_mtimes(tmp_path / "s", res.image.layers).values()) <= 1500000000
    assert len(res.image.layers) == len(internal.layers) and own == 2
    # the config lists the exported blobs' diff_ids, and the tarball (what docker load gets) holds them
    assert res.image.diff_ids == tuple(la.diff_id for la in res.image.layers) != internal.diff_ids
    out = tmp_path / "img.tar"
    _build(ctx, tmp_path / "s", "emulate", source_date_epoch=1500000000, output=out)
    import tarfile

    with tarfile.open(out) as tf:
        for m in tf:
            if m.name.startswith("blobs/sha256/") and m.isfile():
                blob = tf.extractfile(m)
                assert blob is not None
                data = blob.read()
                if data[257:262] == b"ustar":  # a layer
                    import io

                    assert all(e.mtime <= 1500000000 for e, _ in iter_layer(io.BytesIO(data)))
    # unset: every mtime the build wrote is 0, as before
    unset = _build(ctx, tmp_path / "s", "emulate")
    assert set(_mtimes(tmp_path / "s", unset.image.layers).values()) == {0}


def test_same_digest_from_fresh_stores_and_from_a_cached_chain(ctx: Path, tmp_path: Path) -> None:
    first = _build(ctx, tmp_path / "a", "emulate")
    time.sleep(1.1)  # the second build's RUNs write other (real) mtimes
    second = _build(ctx, tmp_path / "b", "emulate")
    stage_a, stage_b = dict(first.stage_images)[2], dict(second.stage_images)[2]
    assert stage_a.diff_ids[-1] != stage_b.diff_ids[-1]  # the store layers differ (real times) ...
    assert first.digest == second.digest  # ... what is exported does not
    again = _build(ctx, tmp_path / "a", "emulate")
    assert again.cached and again.digest == first.digest
    assert Image.from_blobs(Store.open(tmp_path / "a").blobs, again.digest).diff_ids == first.image.diff_ids


SDE_DF = """\
FROM scratch
COPY root/ /
RUN echo "$SOURCE_DATE_EPOCH" > /sde
FROM scratch
COPY root/ /
ENV SOURCE_DATE_EPOCH=5
RUN echo "$SOURCE_DATE_EPOCH" > /sde
"""


@pytest.mark.parametrize("executor", ["emulate", "chroot"])
def test_run_sees_source_date_epoch(ctx: Path, tmp_path: Path, executor: str) -> None:
    ex = _executor(executor)
    for sde, want in ((None, b"0\n"), (1700000000, b"1700000000\n")):
        res = build(ctx, dockerfile_text=SDE_DF, store=tmp_path / "s", executor=ex, target="0",
                    source_date_epoch=sde)
        assert image_files(tmp_path / "s", res)["sde"][4] == want
    res = build(ctx, dockerfile_text=SDE_DF, store=tmp_path / "s", executor=ex, source_date_epoch=1700000000)
    assert image_files(tmp_path / "s", res)["sde"][4] == b"5\n"  # an ENV of the Dockerfile wins


def test_a_changed_source_date_epoch_never_reuses_a_run_layer(ctx: Path, tmp_path: Path) -> None:
    build(ctx, dockerfile_text=SDE_DF, store=tmp_path / "s", executor="emulate", target="0")
    res = build(ctx, dockerfile_text=SDE_DF, store=tmp_path / "s", executor="emulate", target="0",
                source_date_epoch=1700000000)
    assert [s.cached for s in res.steps if s.index > 0] == [False, False]
    fresh = build(ctx, dockerfile_text=SDE_DF, store=tmp_path / "f", executor="emulate", target="0",
                  source_date_epoch=1700000000)
    assert res.digest == fresh.digest


def _stamp_df(when: int) -> str:
    return (f"FROM scratch AS one\nCOPY root/ /\nRUN touch -d @{when} /f\n"
            "FROM scratch\nCOPY --from=one /f /f\n")


def test_copy_from_a_file_older_than_the_epoch_misses_when_its_mtime_changes(ctx: Path, tmp_path: Path) -> None:
    """The exported image keeps mtimes older than SOURCE_DATE_EPOCH, so a COPY --from whose source kept its content
    but not its (old) mtime must not hit: the image is the one a fresh store builds."""
    def run(store: str, when: int, sde: int | None) -> BuildResult:
        return build(ctx, dockerfile_text=_stamp_df(when), store=tmp_path / store, executor="emulate",
                     source_date_epoch=sde)

    run("s", 1000000000, 1500000000)
    moved = run("s", 1100000000, 1500000000)
    assert [s.cached for s in moved.steps if s.stage == "stage-1" and s.index > 0] == [False]
    assert _mtimes(tmp_path / "s", moved.image.layers)["f"] == 1100000000
    assert moved.digest == run("fresh", 1100000000, 1500000000).digest
    # newer than the epoch, or no epoch: the mtime is not exported (clamped), and the copy still hits
    run("t", 1600000000, 1500000000)
    assert [s.cached for s in run("t", 1700000000, 1500000000).steps if s.stage == "stage-1" and s.index > 0] == [True]
    run("u", 1000000000, None)
    assert [s.cached for s in run("u", 1100000000, None).steps if s.stage == "stage-1" and s.index > 0] == [True]


def test_history_names_the_step_key_of_an_exported_layer(ctx: Path, tmp_path: Path) -> None:
    from minibuild.teach.storeview import history_rows

    res = _build(ctx, tmp_path / "s", "emulate")
    rows = [r for r in history_rows(Store.open(tmp_path / "s"), res.image) if not r.empty_layer]
    steps = [s for s in res.steps if s.stage == "stage-2" and s.layer]
    assert [r.layer for r in rows[1:]] == [la.digest for la in res.image.layers[1:]]  # the exported blobs ...
    assert [r.cache_keys for r in rows] == [(s.key,) for s in steps]  # ... keyed by the steps that made them


def test_copy_keeps_the_mtimes_of_files_and_sub_directories_as_the_classic_builder(tmp_path: Path) -> None:
    """Measured with DOCKER_BUILDKIT=0 docker build: `COPY d /x` keeps d/s and d/s/g's mtimes; /x (created by the
    copy) has the time of the build."""
    import os

    ctx = tmp_path / "ctx"
    (ctx / "d" / "s").mkdir(parents=True)
    (ctx / "d" / "s" / "g").write_text("g")
    os.utime(ctx / "d" / "s" / "g", (1400000000, 1400000000))
    os.utime(ctx / "d" / "s", (1300000000, 1300000000))
    os.utime(ctx / "d", (1200000000, 1200000000))
    before = int(time.time())
    res = build(ctx, dockerfile_text="FROM scratch\nCOPY d /x\n", store=tmp_path / "s", executor="emulate",
                source_date_epoch=1350000000)
    inside = _mtimes(tmp_path / "s", dict(res.stage_images)[0].layers)
    assert (inside["x/s"], inside["x/s/g"]) == (1300000000, 1400000000) and inside["x"] >= before
    exported = _mtimes(tmp_path / "s", res.image.layers)
    assert (exported["x/s"], exported["x/s/g"], exported["x"]) == (1300000000, 1350000000, 1350000000)
