"""The instruction-hash cache: hits, misses exactly where inputs changed, COPY --from content keys, --no-cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minibuild.engine.cachekey import diff_inputs
from minibuild.executors.executor import FakeEffect, FakeExecutor
from minibuild.store import Store
from tests.engine.engine_support import run_build, write_context

DF = """FROM scratch
ARG VERSION=1
COPY a.txt /a.txt
RUN step-one
COPY b.txt /b.txt
RUN step-two
LABEL l=1
"""


@pytest.fixture(autouse=True)
def _small_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0")


def _cached(result) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    return {s.instruction: s.cached for s in result.steps if s.index > 0}


def test_unchanged_rebuild_hits_every_step_and_runs_nothing(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "b.txt": "b"})
    first = run_build(ctx, tmp_path / "s", DF)
    assert not any(_cached(first).values())
    ex = FakeExecutor()
    second = run_build(ctx, tmp_path / "s", DF, executor=ex)
    assert all(_cached(second).values())
    assert ex.requests == ()
    assert second.digest == first.digest
    assert all(s.status == "cached" for s in second.stages)


def test_touching_mtimes_still_hits(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "b.txt": "b"})
    first = run_build(ctx, tmp_path / "s", DF)
    for name in ("a.txt", "b.txt"):
        os.utime(ctx / name, (1234567, 1234567))
    second = run_build(ctx, tmp_path / "s", DF)
    assert all(_cached(second).values()) and second.digest == first.digest


def test_changing_one_source_misses_that_copy_and_what_follows(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "b.txt": "b"})
    run_build(ctx, tmp_path / "s", DF)
    (ctx / "b.txt").write_text("changed")
    ex = FakeExecutor()
    r = run_build(ctx, tmp_path / "s", DF, executor=ex)
    assert _cached(r) == {"ARG VERSION=1": True, "COPY a.txt /a.txt": True, "RUN step-one": True,
                          "COPY b.txt /b.txt": False, "RUN step-two": False, "LABEL l=1": False}
    assert ex.commands == ("/bin/sh -c step-two",)


def test_build_arg_misses_only_steps_that_see_it(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "b.txt": "b"})
    run_build(ctx, tmp_path / "s", DF)
    r = run_build(ctx, tmp_path / "s", DF, build_args={"VERSION": "2"})
    c = _cached(r)
    assert c["COPY a.txt /a.txt"] is True  # COPY does not use VERSION
    assert c["RUN step-one"] is False  # RUN sees every ARG as environment
    assert c["COPY b.txt /b.txt"] is False  # ... and what follows it in the chain misses


def test_metadata_change_does_not_invalidate_later_run(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {})
    run_build(ctx, tmp_path / "s", "FROM scratch\nLABEL v=1\nEXPOSE 80\nRUN build\n")
    ex = FakeExecutor()
    r = run_build(ctx, tmp_path / "s", "FROM scratch\nLABEL v=2\nEXPOSE 81\nRUN build\n", executor=ex)
    assert _cached(r)["RUN build"] is True and ex.requests == ()


def test_rebuilt_stage_with_same_output_keeps_copy_from_hits(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"src.c": "int main;"})
    df = """FROM scratch AS build
COPY src.c /src.c
RUN compile
FROM scratch
COPY --from=build /out/app /app
RUN after
"""
    effects = {"compile": FakeEffect(writes=(("/out/app", b"BINARY"),))}
    run_build(ctx, tmp_path / "s", df, executor=FakeExecutor(effects))
    (ctx / "src.c").write_text("int main; /* comment only */")
    ex = FakeExecutor(effects)
    r = run_build(ctx, tmp_path / "s", df, executor=ex)
    by = {(s.stage, s.instruction): s.cached for s in r.steps}
    assert by[("build", "COPY src.c /src.c")] is False
    assert by[("build", "RUN compile")] is False
    assert by[("stage-1", "COPY --from=build /out/app /app")] is True
    assert by[("stage-1", "RUN after")] is True
    assert ex.commands == ("/bin/sh -c compile",)


def test_no_cache_runs_everything(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "b.txt": "b"})
    first = run_build(ctx, tmp_path / "s", DF)
    ex = FakeExecutor()
    r = run_build(ctx, tmp_path / "s", DF, executor=ex, no_cache=True)
    assert not any(_cached(r).values())
    assert ex.commands == ("/bin/sh -c step-one", "/bin/sh -c step-two")
    assert r.digest == first.digest


def test_fully_cached_build_extracts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "b.txt": "b"})
    df = "FROM busybox AS b\nRUN mk\nFROM busybox\nCOPY --from=b /bin /x\nCOPY a.txt /\n"
    run_build(ctx, tmp_path / "s", df)
    import minibuild.fs.rootfs as rootfs  # the builder imports apply_layer from it when a root is needed

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("a root filesystem was extracted")

    monkeypatch.setattr(rootfs, "apply_layer", boom)
    r = run_build(ctx, tmp_path / "s", df)
    assert r.cached


def test_same_digest_in_fresh_store(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "b.txt": "b"})
    assert run_build(ctx, tmp_path / "s1", DF).digest == run_build(ctx, tmp_path / "s2", DF).digest


def test_records_keep_inputs_for_explain(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "b.txt": "b"})
    r1 = run_build(ctx, tmp_path / "s", DF)
    r2 = run_build(ctx, tmp_path / "s", DF, build_args={"VERSION": "2"})
    store = Store.open(tmp_path / "s")
    k1 = next(s.key for s in r1.steps if s.instruction == "RUN step-one")
    k2 = next(s.key for s in r2.steps if s.instruction == "RUN step-one")
    rec1, rec2 = store.cache.get(k1), store.cache.get(k2)
    assert rec1 is not None and rec2 is not None
    assert diff_inputs(rec1["inputs"], rec2["inputs"]) == ["env"]


# ---------------------------------------------------------------------------------------------- inputs of a layer
# Each input that changes what a step's layer holds is in its key: a build with another value never reuses a layer
# made under the first one, and gives the digest a fresh store gives.

LAYER_DF = "FROM scratch\nCOPY a.txt /a.txt\nRUN write\nWORKDIR /w\n"
WRITES = FakeExecutor({"write": FakeEffect(writes=(("/made", b"made by RUN"),))})


def _layer_mtimes(store: Path, result) -> set[int]:  # type: ignore[no-untyped-def]
    from minibuild.store.tarread import read_entries

    st = Store.open(store)
    out: set[int] = set()
    for layer in result.image.layers:
        with st.blobs.open(layer.digest) as fh:
            out |= {int(e.mtime) for e in read_entries(fh)}
    return out


def test_source_date_epoch_is_in_the_key_of_every_layer_step(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a"})
    unset = run_build(ctx, tmp_path / "s", LAYER_DF, executor=WRITES)
    assert _layer_mtimes(tmp_path / "s", unset) == {0}
    later = run_build(ctx, tmp_path / "s", LAYER_DF, executor=WRITES, source_date_epoch=1700000000)
    assert _cached(later) == {"COPY a.txt /a.txt": False, "RUN write": False, "WORKDIR /w": False}
    fresh = run_build(ctx, tmp_path / "fresh", LAYER_DF, executor=WRITES, source_date_epoch=1700000000)
    assert later.digest == fresh.digest
    assert _layer_mtimes(tmp_path / "s", later) == {1700000000}  # the files are new: clamped to the epoch
    again = run_build(ctx, tmp_path / "s", LAYER_DF, executor=WRITES, source_date_epoch=1700000000)
    assert all(_cached(again).values()) and again.digest == fresh.digest


def test_explain_names_a_changed_source_date_epoch(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a"})
    run_build(ctx, tmp_path / "s", LAYER_DF, executor=WRITES)
    later = run_build(ctx, tmp_path / "s", LAYER_DF, executor=WRITES, source_date_epoch=1700000000)
    reasons = {s.instruction: s.reason for s in later.steps if s.index > 0}
    assert reasons["COPY a.txt /a.txt"] == "MISS: SOURCE_DATE_EPOCH (unset) -> 1700000000"


def test_plan_keys_with_source_date_epoch_and_executor_as_build_does(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from minibuild.api import plan

    ctx = write_context(tmp_path / "ctx", {"a.txt": "a"})
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY a.txt /a.txt\nRUN true\n")
    run_build(ctx, tmp_path / "s", (ctx / "Dockerfile").read_text(), executor="emulate", source_date_epoch=5)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "5")
    assert all(s.cached for s in plan(ctx, store=tmp_path / "s").steps)
    by_chroot = {s.instruction: s.cached for s in plan(ctx, store=tmp_path / "s", executor="chroot").steps}
    assert by_chroot == {"FROM busybox": True, "COPY a.txt /a.txt": True, "RUN true": False}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "6")
    assert [s.cached for s in plan(ctx, store=tmp_path / "s").steps] == [True, False, False]


def test_a_run_layer_of_one_executor_is_not_reused_by_another(tmp_path: Path) -> None:
    """Without root: two executors by name (a RUN's key names the executor that runs it; COPY's does not)."""

    class Other(FakeExecutor):
        name = "other"

    ctx = write_context(tmp_path / "ctx", {"a.txt": "a"})
    first = run_build(ctx, tmp_path / "s", LAYER_DF, executor=WRITES)
    other = Other({"write": FakeEffect(writes=(("/made", b"made by the other executor"),))})
    second = run_build(ctx, tmp_path / "s", LAYER_DF, executor=other)
    assert _cached(second) == {"COPY a.txt /a.txt": True, "RUN write": False, "WORKDIR /w": False}
    assert other.commands == ("/bin/sh -c write",) and second.digest != first.digest
    fresh = run_build(ctx, tmp_path / "fresh", LAYER_DF,
                      executor=Other({"write": FakeEffect(writes=(("/made", b"made by the other executor"),))}))
    assert second.digest == fresh.digest


def test_executor_is_in_the_key_of_run_only(tmp_path: Path, busybox_rootfs: Path) -> None:
    """A RUN whose result tells the executors apart (chroot mounts /proc for the command, emulate has none):
    a chroot build after an emulated one runs it again, and its image is the one a fresh store builds."""
    import shutil
    import sys

    from minibuild.executors.chroot import platform_problem
    from tests.support import require, require_root

    require_root()
    require(sys.platform.startswith("linux") and platform_problem() is None,
            f"chroot executor unavailable: {platform_problem()}")
    ctx = tmp_path / "ctx"
    shutil.copytree(busybox_rootfs, ctx / "root", symlinks=True)
    df = ("FROM scratch\nCOPY root/ /\n"  # the RUN writes which executor ran it
          "RUN if test -e /proc/self/status; then echo chroot; else echo emulate; fi > /who\n")
    emulated = run_build(ctx, tmp_path / "s", df, executor="emulate")
    chrooted = run_build(ctx, tmp_path / "s", df, executor="chroot")
    assert list(_cached(chrooted).values()) == [True, False]  # COPY is executor-independent; the RUN runs again
    from tests.engine.engine_support import image_files

    assert image_files(tmp_path / "s", emulated)["who"][4] == b"emulate\n"
    assert image_files(tmp_path / "s", chrooted)["who"][4] == b"chroot\n"
    fresh = run_build(ctx, tmp_path / "fresh", df, executor="chroot")
    assert chrooted.digest == fresh.digest
    back = run_build(ctx, tmp_path / "s", df, executor="emulate")
    assert all(_cached(back).values()) and back.digest == emulated.digest
