"""Crash safety: `minibuild load`, `save`, `rmi`+`prune` killed with SIGKILL at random moments, hundreds of times.

A fork server (this test process, which has imported minibuild once) forks a child that runs CLI commands
(`minibuild.cli.main([...])`, the same code path as the executable) against one store and kills it with SIGKILL
after a random delay drawn from a fixed seed.  After every kill, fsck must find no corrupt blob under its name, no
name or cache record pointing at a missing or corrupt blob, and no damaged index, so fsck passes without --repair;
leftovers (temp files of the killed writer, its lease) are notes, and the next prune, build or save reaps them.
At checkpoints and at the end a load
and a save must succeed and the saved archive must load into a fresh store with the same digests.

MINIBUILD_CRASH_ROUNDS (default 120) and MINIBUILD_CRASH_BUILD_ROUNDS (default 50) set the number of kills.
`minibuild build` children are killed the same way; afterwards every Dockerfile builds in the crashed store to
the very digest a clean store gives (no bad cache record or blob was trusted).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from minibuild.oci.archive import import_archive, save_image_tar
from minibuild.store import Store
from minibuild.store.fsck import fsck
from tests.security.hostile import docker_save_archive, oci_archive, tar_of, Member

ROUNDS = int(os.environ.get("MINIBUILD_CRASH_ROUNDS", "120"))
BUILD_ROUNDS = int(os.environ.get("MINIBUILD_CRASH_BUILD_ROUNDS", "50"))
SEED = 20240917
TRUST_PROBLEMS = ("corrupt-blob", "broken-ref", "dangling-cache-record", "damaged-index", "stray-file",
                  "bad-cache-record")


def _layer(tag: str, size: int) -> bytes:
    rnd = random.Random(tag)
    return tar_of((Member("dir", "data"), Member("file", f"data/{tag}.bin", rnd.randbytes(size)),
                   Member("file", f"data/{tag}.txt", f"{tag}\n".encode())))


def _archives(tmp: Path) -> dict[str, Path]:
    out = {}
    for name, data in {
        "a": docker_save_archive(_layer("a", 600_000)),
        "b": oci_archive(_layer("b", 400_000), gz=True, name="crash:b"),
        "c": docker_save_archive(_layer("c", 900_000)),
    }.items():
        path = tmp / f"{name}.tar"
        path.write_bytes(data)
        out[name] = path
    return out


def _child_ops(rnd: random.Random, store: Path, archives: dict[str, Path], out: Path) -> list[list[str]]:
    base = ["--store", str(store)]
    ops = []
    for _ in range(2):
        pick = rnd.randrange(6)
        if pick == 0:
            ops.append(base + ["load", str(archives["a"])])
        elif pick == 1:
            ops.append(base + ["load", str(archives["b"])])
        elif pick == 2:
            ops.append(base + ["load", str(archives["c"])])
        elif pick == 3:
            ops.append(base + ["save", "hostile:latest", "-o", str(out)])
        elif pick == 4:
            ops.append(base + ["rmi", "hostile:latest"])
            ops.append(base + ["prune"])
        else:
            ops.append(base + ["prune", "--all"])
    return ops


def _run_child(ops: list[list[str]]) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    from minibuild.cli import main

    for argv in ops:
        try:
            main(argv)
        except SystemExit:
            pass


def _assert_trustworthy(store: Store, where: str) -> None:
    report = fsck(store)
    bad = report.of_kind(*TRUST_PROBLEMS)
    assert not bad, f"{where}: " + "; ".join(str(p) for p in bad)
    assert report.ok, f"{where}: " + "; ".join(str(p) for p in report.remaining)  # debris alone is no failure


def _checkpoint(store: Store, archives: dict[str, Path], tmp: Path, n: int) -> None:
    loaded = import_archive(store, archives["a"])
    image = store.resolve("hostile:latest")
    assert image.digest == loaded[0].image.digest
    out = tmp / f"check-{n}.tar"
    save_image_tar(store.blobs, image, ["hostile:latest"], out)
    fresh = Store.open(tmp / f"fresh-{n}")
    again = import_archive(fresh, out)
    assert again[0].image.digest == image.digest
    _assert_trustworthy(fresh, "fresh store")
    out.unlink()


def _median_child_seconds(rnd: random.Random, store: Path, archives: dict[str, Path], out: Path) -> float:
    """Run a few children to completion (same kind of work, no kill) and return the median wall time."""
    times = []
    for _ in range(7):
        ops = _child_ops(rnd, store, archives, out)
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                _run_child(ops)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        times.append(time.monotonic() - t0)
    return sorted(times)[len(times) // 2]


def test_sigkill_during_load_save_prune(tmp_path: Path) -> None:
    import minibuild.cli.store_cmds  # noqa: F401  (imported once here; children fork with it)

    archives = _archives(tmp_path)
    store_dir = tmp_path / "store"
    store = Store.open(store_dir)
    out = tmp_path / "saved.tar"
    rnd = random.Random(SEED)
    # Calibrate: how long does a child's work take on this machine (a loaded laptop or an idle CI runner)?
    # Kill delays are drawn up to that median, so most kills land mid-work whatever the machine's speed.
    span = _median_child_seconds(random.Random(SEED + 1), store_dir, archives, out)
    killed = finished = 0
    started = time.monotonic()
    for round_no in range(ROUNDS):
        ops = _child_ops(rnd, store_dir, archives, out)
        delay = rnd.uniform(0, span)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                _run_child(ops)
            finally:
                os._exit(0)
        time.sleep(delay)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            killed += 1
        else:
            finished += 1
        _assert_trustworthy(store, f"after round {round_no} (ops {[o[2:] for o in ops]}, delay {delay:.3f}s)")
        if out.exists():  # a save is atomic: the output is absent or complete
            fresh = Store.open(tmp_path / "verify-out")
            import_archive(fresh, out)
        if round_no % 100 == 99:
            _checkpoint(store, archives, tmp_path, round_no)
    elapsed = time.monotonic() - started
    print(f"crash test: {killed} killed, {finished} finished, span {span:.3f}s")
    assert killed >= ROUNDS // 3, f"only {killed} of {ROUNDS} children were killed mid-work (span {span:.3f}s)"
    assert finished >= 1 or ROUNDS < 50, "no child ever completed: the delays never reach the end of the work"
    # afterwards: repair removes the leftovers and a load/save round trip works
    report = fsck(store, repair=True)
    assert report.ok, [str(p) for p in report.remaining]
    assert fsck(store).problems == ()
    _checkpoint(store, archives, tmp_path, ROUNDS)
    leftovers = [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    save_image_tar(store.blobs, store.resolve("hostile:latest"), ["hostile:latest"], out)  # reaps killed saves
    assert [n for n in os.listdir(tmp_path) if n.startswith(f".{out.name}.tmp-")] == []
    print(f"{ROUNDS} rounds in {elapsed:.1f}s: {killed} killed mid-work, {finished} finished; "
          f"repair removed {len(report.problems)} leftovers; save temp files left by killed saves: {len(leftovers)}")


DOCKERFILES = {
    "v1": "FROM busybox\nARG N=0\nCOPY a.txt /a.txt\nRUN echo \"run $N\" > /r.txt && mkdir -p /x && echo hi > /x/y\n"
          "COPY d /d\n",
    "v2": "FROM busybox\nCOPY a.txt /a.txt\nRUN echo two > /two && cp /a.txt /a2.txt\nCOPY d /d2\n",
}


def _build_context(tmp: Path) -> Path:
    ctx = tmp / "ctx"
    (ctx / "d").mkdir(parents=True)
    (ctx / "a.txt").write_text("a\n")
    (ctx / "d" / "big").write_bytes(random.Random(1).randbytes(300_000))
    for name, text in DOCKERFILES.items():
        (ctx / f"Dockerfile.{name}").write_text(text)
    return ctx


def _build_argv(store: Path, ctx: Path, variant: str, n: int) -> list[str]:
    return ["--store", str(store), "build", "-f", str(ctx / f"Dockerfile.{variant}"), "-t", f"b-{variant}:{n}",
            "--build-arg", f"N={n}", "--progress", "quiet", str(ctx)]


def _build_digest(store: Path, ctx: Path, variant: str, n: int) -> str:
    from minibuild.cli import main

    try:
        main(_build_argv(store, ctx, variant, n))
    except SystemExit as exc:
        assert exc.code in (0, None), f"build {variant} N={n} failed"
    return Store.open(store).resolve_digest(f"b-{variant}:{n}").value


def test_sigkill_during_builds(tmp_path: Path, capsys: object) -> None:
    import minibuild.cli.build_cmd  # noqa: F401
    from minibuild.cli import main

    ctx = _build_context(tmp_path)
    store_dir = tmp_path / "store"
    store = Store.open(store_dir)
    for variant in sorted(DOCKERFILES):  # warm: the base fixture is in the store, kills land in the steps
        _build_digest(store_dir, ctx, variant, 0)
    t0 = time.monotonic()
    for variant in sorted(DOCKERFILES):  # how long a build takes on this machine now: the kill delays scale
        for extra in ([], ["--no-cache"]):
            try:
                main(_build_argv(store_dir, ctx, variant, 0) + extra)
            except SystemExit as exc:
                assert exc.code in (0, None)
    per_build = (time.monotonic() - t0) / (2 * len(DOCKERFILES))
    rnd = random.Random(SEED + 1)
    killed = scratch_seen = 0
    started = time.monotonic()
    for round_no in range(BUILD_ROUNDS):
        ops = []
        for _ in range(2):
            if rnd.random() < 0.15:
                ops.append(["--store", str(store_dir), "prune", "--all"])
            else:
                argv = _build_argv(store_dir, ctx, rnd.choice(sorted(DOCKERFILES)), rnd.randrange(3))
                ops.append(argv + ["--no-cache"] if rnd.random() < 0.4 else argv)  # RUN and layer writes, too
        delay = rnd.uniform(0, 2 * per_build)  # a child runs two ops (a build, --no-cache or not, or a prune)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                _run_child(ops)
            finally:
                os._exit(0)
        time.sleep(delay)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
        killed += os.WIFSIGNALED(status)
        _assert_trustworthy(store, f"after build round {round_no} (delay {delay:.3f}s)")
        scratch_seen += sum(1 for n in os.listdir(store.tmp_dir) if n.startswith(f"build-{pid}-"))
    elapsed = time.monotonic() - started
    assert killed >= BUILD_ROUNDS // 3, f"only {killed} of {BUILD_ROUNDS} builds were killed mid-work"
    # the crashed store builds exactly what a clean store builds (nothing bad was trusted from the cache)
    clean = tmp_path / "clean"
    for variant in sorted(DOCKERFILES):
        for n in range(3):
            assert _build_digest(store_dir, ctx, variant, n) == _build_digest(clean, ctx, variant, n)
    pruned = store.prune()
    assert os.listdir(store.tmp_dir) == [] and os.listdir(store.leases_dir) == []  # prune reaped every leftover
    assert fsck(store).problems == ()
    print(f"{BUILD_ROUNDS} build rounds in {elapsed:.1f}s: {killed} killed; killed builds left "
          f"{scratch_seen} scratch dirs (later prunes remove them; final prune: {pruned.temp_files_removed})")
