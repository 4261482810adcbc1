"""Where a minibuild build spends its time: per-phase CPU and wall seconds, and optionally a cProfile dump.

    python bench/phases.py [--quick] [--scenario seed|big|many] [--executor emulate|chroot] [--cprofile DIR]

Builds the scenario cold (fresh store with the busybox base) then warm (same store) in this process, with the
builder's phase functions (checksums, copy, layer writing, layer extraction, root diffing, executor, cache I/O)
wrapped by timers — the library is not modified, only the names the builder module looks up are. Import time is
measured separately (a fresh interpreter, ``-X importtime``). Timings are per build; CPU seconds are what matter on
a shared machine, wall seconds include waiting for the CPU and the disk.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import functools
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scenarios as sc  # noqa: E402

STATS: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])  # name -> [calls, cpu, wall]
_DEPTH = [0]


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            s = STATS[name]
            s[0] += 1
            s[1] += time.process_time() - c0
            s[2] += time.perf_counter() - w0
    return wrapper


def instrument() -> None:
    """Wrap the builder's collaborators by name (module globals and a few methods)."""
    import minibuild.engine.builder as b
    import minibuild.store.blobs as blobs
    import minibuild.store.cache as cache

    import importlib

    for name in ("source_checksum", "copy_into", "entries_for_paths", "write_layer", "apply_layer", "snapshot",
                 "diff_snapshot", "parse_dockerfile", "build_graph"):
        if hasattr(b, name):
            setattr(b, name, timed(name, getattr(b, name)))
    # the builder imports these where a step misses (lazily): wrap them in their own modules
    for mod, name in (("minibuild.engine.copy", "copy_into"), ("minibuild.fs.diff", "entries_for_paths"),
                      ("minibuild.fs.diff", "snapshot"), ("minibuild.fs.diff", "diff_snapshot"),
                      ("minibuild.store.tarlayer", "write_layer"), ("minibuild.fs.rootfs", "apply_layer")):
        if not hasattr(b, name):
            m = importlib.import_module(mod)
            setattr(m, name, timed(name, getattr(m, name)))
    b.Builder._ensure_root = timed("Builder._ensure_root (extract base/parent layers)", b.Builder._ensure_root)
    b.Builder._write_layer = timed("Builder._write_layer (tar + sha256 + blob commit)", b.Builder._write_layer)
    for cls in (cache.__dict__.get(n) for n in dir(cache)):
        if isinstance(cls, type) and hasattr(cls, "get") and hasattr(cls, "put"):
            cls.get = timed(f"{cls.__name__}.get", cls.get)
            cls.put = timed(f"{cls.__name__}.put", cls.put)
    for cls in (blobs.__dict__.get(n) for n in dir(blobs)):
        if isinstance(cls, type) and cls.__module__ == blobs.__name__ and hasattr(cls, "commit"):
            cls.commit = timed(f"{cls.__name__}.commit (fsync + rename)", cls.commit)
    import minibuild.executors.executor as ex

    for n in dir(ex):
        cls = getattr(ex, n)
        if isinstance(cls, type) and n.endswith("Executor") and hasattr(cls, "run") and cls.__module__ == ex.__name__:
            cls.run = timed(f"{n}.run", cls.run)
    try:
        import minibuild.executors.chroot as ch

        for n in dir(ch):
            cls = getattr(ch, n)
            if isinstance(cls, type) and n.endswith("Executor") and hasattr(cls, "run") and cls.__module__ == ch.__name__:
                cls.run = timed(f"{n}.run", cls.run)
    except ImportError:
        pass


def report(title: str, total_cpu: float, total_wall: float) -> None:
    print(f"\n== {title}: total cpu {total_cpu:.3f}s wall {total_wall:.3f}s")
    print(f"{'phase':<58} {'calls':>6} {'cpu s':>8} {'wall s':>8}")
    for name, (calls, cpu, wall) in sorted(STATS.items(), key=lambda kv: -kv[1][1]):
        print(f"{name:<58} {calls:>6} {cpu:8.3f} {wall:8.3f}")
    STATS.clear()


def import_time() -> None:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c",
                          "import minibuild.cli, minibuild.cli.build_cmd, minibuild.api"],
                         capture_output=True, text=True).stderr
    rows = []
    for line in out.splitlines():
        if line.startswith("import time:") and "self" not in line:
            _, rest = line.split(":", 1)
            self_us, cum_us, name = rest.split("|")
            rows.append((int(self_us), int(cum_us), name.rstrip()))
    total = sum(r[0] for r in rows)
    ours = sum(r[0] for r in rows if r[2].strip().startswith("minibuild"))
    print(f"\n== import for `minibuild build`: {total / 1e3:.0f} ms self total, {ours / 1e3:.0f} ms in minibuild "
          f"modules (one run; -X importtime)")
    for self_us, cum_us, name in sorted(rows, reverse=True)[:15]:
        print(f"{self_us / 1e3:7.1f} ms self {cum_us / 1e3:8.1f} ms cum  {name.strip()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--scenario", default="big", choices=("seed", "big", "many"))
    ap.add_argument("--executor", default="emulate")
    ap.add_argument("--cprofile", default=None, help="also write cold.prof/warm.prof here")
    args = ap.parse_args()
    sizes = sc.QUICK if args.quick else sc.FULL
    import_time()
    work = Path(tempfile.mkdtemp(prefix="mb-profile-"))
    try:
        base = sc.write_base_archive(work / "base.tar")
        if args.scenario == "seed":
            s = sc.make_seed(work, sizes)
        elif args.scenario == "big":
            s = sc.make_big(work, sizes)
        else:
            s = sc.make_many(work, sizes.stages, sizes.per_stage)
        from minibuild.api import build
        from minibuild.oci.archive import import_archive
        from minibuild.store import Store

        store = Store.open(work / "store")
        import_archive(store, base)
        instrument()
        for phase in ("cold", "warm"):
            prof = cProfile.Profile() if args.cprofile else None
            c0, w0 = time.process_time(), time.perf_counter()
            if prof:
                prof.enable()
            build(s.context, tags=(s.tag,), store=store, executor=args.executor)
            if prof:
                prof.disable()
                Path(args.cprofile).mkdir(parents=True, exist_ok=True)
                prof.dump_stats(str(Path(args.cprofile) / f"{args.scenario}-{phase}.prof"))
            report(f"{args.scenario} {phase} ({args.executor})", time.process_time() - c0, time.perf_counter() - w0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
