"""Benchmark minibuild against Docker's classic builder and Buildah on the same Dockerfiles (issue 8).

One command:  python bench/run.py [--rounds N] [--quick] [--only seed,edit,big,many,linear,export,startup,
                                  big-base,toolchain] [--big-base-scale 5]
                                  [--docker-host unix:///...] [--own-dockerd] [--no-docker] [--no-buildah]
                                  [--buildah-driver overlay|vfs] [--keep DIR] [--output-dir docs]

Generates every scenario (bench/scenarios.py) in a temp dir, runs each engine several rounds, and writes the table,
the machine and the date into docs/performance.md (between the ``bench:begin``/``bench:end`` markers; the prose
around them is kept) and a bar chart of the ratios with the targets drawn, docs/performance.svg (no dependencies).
Not part of the test suite. The machine may be shared: medians of several rounds damp, but do not remove, noise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios as sc  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


# ============================================================================ measuring one command
@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float
    rss_kb: int  # peak resident set of the largest process of the command's tree (GNU time %M)
    cpu: float = 0.0  # user+sys CPU seconds of the command's tree (GNU time %U+%S; client only for docker)


class CommandFailed(RuntimeError):
    pass


def measure(argv: list[str] | str, *, env: dict[str, str] | None = None, cwd: Path | None = None,
            shell: bool = False, stderr: list[bytes] | None = None) -> Sample:
    """Run ``argv`` under GNU time; return its wall time and peak RSS (largest process of its tree); the
    command's stderr is appended to ``stderr`` when given (minibuild's JSON progress).

    GNU time is needed for the memory: ``wait4`` on a child forked from this (larger) Python process reports at
    least this process's own RSS, because Linux keeps the high-water mark across fork+exec."""
    cmd = ["/bin/sh", "-c", argv] if shell and isinstance(argv, str) else list(argv)
    with tempfile.NamedTemporaryFile(prefix="mb-bench-time-", suffix=".txt") as tf:
        full = [TIME, "-q", "-o", tf.name, "-f", "%M %U %S", *cmd] if TIME else cmd
        t0 = time.perf_counter()
        proc = subprocess.run(full, env=env, cwd=cwd, capture_output=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            shown = argv if isinstance(argv, str) else " ".join(argv)
            raise CommandFailed(f"{shown} exited {proc.returncode}:\n{proc.stderr.decode(errors='replace')[-3000:]}"
                                f"{proc.stdout.decode(errors='replace')[-1000:]}")
        if stderr is not None:
            stderr.append(proc.stderr)
        rss, cpu = 0, 0.0
        if TIME:
            last = (Path(tf.name).read_text().strip().splitlines() or [""])[-1].split()
            if len(last) == 3:
                rss, cpu = int(last[0]), float(last[1]) + float(last[2])
    return Sample(elapsed, rss, cpu)


TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def run(argv: list[str], *, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-3000:]}")
    return proc


# ============================================================================ engines
class Minibuild:
    """minibuild as a user runs it: the ``minibuild`` script of a clean venv holding a regular (non-editable) install
    of this checkout (``--install venv``, the default), or ``python -m minibuild`` of the running interpreter
    (``--install current``); a store per scenario (cold = a fresh copy of the base store)."""

    name = "minibuild"

    def __init__(self, work: Path, base_tar: Path, install: str = "venv") -> None:
        self.work = work
        self.template = work / "store-template"
        self.env = dict(os.environ)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env.pop("MINIBUILD_HOME", None)
        if install == "venv":
            # pip byte-compiles what it installs; the venv has no other .pth hooks than its own
            venv = work / "venv"
            if venv.exists():
                shutil.rmtree(venv)
            run([sys.executable, "-m", "venv", str(venv)], env=self.env)
            run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(REPO)], env=self.env)
            self.python = str(venv / "bin" / "python")
            self.cmd = [str(venv / "bin" / "minibuild")]
        else:
            # byte-compile the package first, as pip does on install: an editable checkout whose sources changed
            # since the last import would otherwise compile them inside the first measured build
            import minibuild

            run([sys.executable, "-m", "compileall", "-q", str(Path(minibuild.__file__).parent)], env=self.env)
            self.python = sys.executable
            self.cmd = [sys.executable, "-m", "minibuild"]
        self.install = install
        run([*self.cmd, "--store", str(self.template), "load", str(base_tar)], env=self.env)
        self.store = work / "store"

    def version(self) -> str:
        return run([*self.cmd, "--version"], env=self.env).stdout.strip()

    def reset(self, template: Path | None = None) -> None:
        """A fresh store: a copy of ``template`` (default: the store holding only the busybox base)."""
        if self.store.exists():
            shutil.rmtree(self.store)
        # cp -a: the unpacked layers hold overlayfs whiteouts (0:0 devices) and trusted xattrs, which copytree loses
        run(["cp", "-a", "--", str(template or self.template), str(self.store)], env=self.env)

    def load_template(self, name: str, archive: Path) -> tuple[Path, Sample]:
        """A store holding only the image of ``archive`` (``minibuild load``, timed), to start cold builds from."""
        store = self.work / f"store-template-{name}"
        if store.exists():
            shutil.rmtree(store)
        return store, measure([*self.cmd, "--store", str(store), "load", str(archive)], env=self.env)

    def build(self, s: sc.Scenario, *, executor: str = "emulate",
              build_args: tuple[str, ...] = (), events: list[dict[str, object]] | None = None) -> Sample:
        """One build; with ``events`` the build runs with ``--progress json`` and its events are appended."""
        env = self.env
        err: list[bytes] = []
        args = [a for kv in build_args for a in ("--build-arg", kv)]
        smp = measure([*self.cmd, "--store", str(self.store), "build", "--progress",
                       "quiet" if events is None else "json", "--executor", executor, *args, "-t", s.tag,
                       str(s.context)], env=env, stderr=err)
        if events is not None:
            for line in err[0].decode(errors="replace").splitlines():
                if line.startswith("{"):
                    events.append(json.loads(line))
        return smp

    def export(self, tag: str, out: Path) -> Sample:
        return measure([*self.cmd, "--store", str(self.store), "save", tag, "-o", str(out)], env=self.env)


class Docker:
    """Docker's classic builder (DOCKER_BUILDKIT=0) on a dockerd; cold = every image descending from the bench base
    removed (the classic builder's cache is those intermediate images)."""

    name = "docker"

    def __init__(self, host: str, base_tar: Path, own: subprocess.Popen[bytes] | None = None,
                 own_dir: Path | None = None) -> None:
        self.host = host
        self.env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="0")
        self.own, self.own_dir = own, own_dir
        self.bases: dict[str, str] = {}  # tag -> image ID of every base the bench loaded
        self.load(base_tar, sc.BASE_NAME)

    def load(self, archive: Path, tag: str) -> Sample:
        """``docker load`` of a base archive (timed); cold builds remove the images descending from it."""
        smp = measure(["docker", "load", "-q", "-i", str(archive)], env=self.env)
        self.bases[tag] = run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], env=self.env).stdout.strip()
        return smp

    def unload(self, tag: str) -> None:
        """Remove a loaded base and everything built on it."""
        self.reset()
        run(["docker", "rmi", "-f", tag], env=self.env, check=False)
        self.bases.pop(tag, None)

    def version(self) -> str:
        v = run(["docker", "version", "-f", "{{.Server.Version}}"], env=self.env, check=False).stdout.strip()
        drv = run(["docker", "info", "-f", "{{.Driver}}"], env=self.env, check=False).stdout.strip()
        return f"Docker Engine {v} ({drv})"

    def reset(self) -> None:
        if self.own is not None:  # a private daemon: the recipe, harmless to others
            run(["docker", "builder", "prune", "-af"], env=self.env, check=False)
        ids = run(["docker", "images", "-aq", "--no-trunc"], env=self.env).stdout.split()
        if not ids:
            return
        parents: dict[str, str] = {}
        for line in run(["docker", "image", "inspect", "-f", "{{.Id}} {{.Parent}}", *sorted(set(ids))],
                        env=self.env).stdout.splitlines():
            parts = line.split()
            parents[parts[0]] = parts[1] if len(parts) > 1 else ""

        base_ids = set(self.bases.values())

        def depth(i: str) -> int:
            d = 0
            while i and i not in base_ids:
                i = parents.get(i, "")
                d += 1
            return d if i in base_ids else -1

        doomed = sorted((i for i in parents if i not in base_ids and depth(i) > 0), key=depth, reverse=True)
        if doomed:
            run(["docker", "rmi", "-f", *doomed], env=self.env, check=False)

    def build(self, s: sc.Scenario, *, build_args: tuple[str, ...] = (), **_: object) -> Sample:
        args = [a for kv in build_args for a in ("--build-arg", kv)]
        return measure(["docker", "build", "-q", *args, "-t", s.tag, str(s.context)], env=self.env)

    def export(self, tag: str, out: Path) -> Sample:
        return measure(["docker", "save", "-o", str(out), tag], env=self.env)

    def close(self) -> None:
        self.reset()
        run(["docker", "rmi", "-f", *self.bases], env=self.env, check=False)
        if self.own is not None:
            self.own.terminate()
            try:
                self.own.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.own.kill()
            if self.own_dir is not None:
                subprocess.run(["umount", "-R", str(self.own_dir / "data")], capture_output=True)
                shutil.rmtree(self.own_dir, ignore_errors=True)


class Buildah:
    """``buildah bud --isolation chroot --layers`` with its own --root/--runroot; cold = all images removed and
    the base pulled again from the same docker-archive."""

    name = "buildah"

    def __init__(self, work: Path, base_tar: Path, driver: str) -> None:
        self.base_tar = base_tar
        self.driver = driver
        self.g = ["buildah", "--root", str(work / "buildah-root"), "--runroot", str(work / "buildah-run"),
                  "--storage-driver", driver]
        self.env = dict(os.environ, BUILDAH_ISOLATION="chroot")
        self.reset()

    def version(self) -> str:
        return run(["buildah", "--version"]).stdout.strip() + f" ({self.driver})"

    def reset(self, base: Path | None = None) -> Sample:
        """Every container and image removed, then ``base`` (default the busybox base) pulled again (timed)."""
        run([*self.g, "rm", "--all"], env=self.env, check=False)
        run([*self.g, "rmi", "--all", "--force"], env=self.env, check=False)
        return measure([*self.g, "pull", "-q", f"docker-archive:{base or self.base_tar}"], env=self.env)

    def build(self, s: sc.Scenario, *, build_args: tuple[str, ...] = (), **_: object) -> Sample:
        args = [a for kv in build_args for a in ("--build-arg", kv)]
        return measure([*self.g, "bud", "--isolation", "chroot", "--layers", "--pull=false", "-q", *args,
                        "-t", s.tag, str(s.context)], env=self.env)

    def export(self, tag: str, out: Path) -> Sample:
        out.unlink(missing_ok=True)
        return measure([*self.g, "push", "-q", tag, f"docker-archive:{out}:{tag}"], env=self.env)

    def close(self) -> None:
        run([*self.g, "rm", "--all"], env=self.env, check=False)
        run([*self.g, "rmi", "--all", "--force"], env=self.env, check=False)


def _ping(host: str) -> bool:
    try:
        return subprocess.run(["docker", "version"], capture_output=True, timeout=20,
                              env=dict(os.environ, DOCKER_HOST=host)).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def default_work_root() -> Path:
    """Where the bench works: beside minibuild's default store (``$XDG_CACHE_HOME`` or ``~/.cache``).

    Every engine's working directory (minibuild's store, Buildah's root, with ``--own-dockerd`` Docker's data root)
    goes under this one root, so that they share the filesystem's conditions: on the benchmark machine creating a
    symlink took anywhere from 0.02 to 1.4 ms depending on the directory and the hour, which weighs on every
    engine that unpacks a root per build (minibuild per stage, Buildah per build)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "minibuild-bench"


def start_dockerd(root: Path | None = None) -> tuple[str, subprocess.Popen[bytes], Path]:
    """A private dockerd (overlay2 when the kernel has it), as tests/engines.py starts one."""
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        raise CommandFailed("starting a dockerd needs root and the dockerd binary")
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dockerd-", dir=root))
    sock = work / "docker.sock"
    driver = "overlay2" if "overlay" in Path("/proc/filesystems").read_text() else "vfs"
    log = open(work / "dockerd.log", "wb")
    proc = subprocess.Popen(
        [dockerd, f"--storage-driver={driver}", "--iptables=false", "--ip6tables=false", "--bridge=none",
         "--data-root", str(work / "data"), "--exec-root", str(work / "exec"), "--pidfile", str(work / "dockerd.pid"),
         "-H", f"unix://{sock}"], stdout=log, stderr=subprocess.STDOUT)
    host = f"unix://{sock}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if sock.exists() and _ping(host):
            return host, proc, work
        time.sleep(0.3)
    proc.kill()
    raise CommandFailed(f"dockerd did not start: {(work / 'dockerd.log').read_text(errors='replace')[-2000:]}")


# ============================================================================ results
@dataclass
class Row:
    """One table row: a scenario variant, the samples per engine, and the targets (peer -> max ratio)."""

    key: str
    label: str
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)  # e.g. {"docker": 1.0}
    note: str = ""
    x1_of: str = ""  # the row this one is the scaled-up version of (its "vs x1" ratio)
    x1_what: str = "time"  # what that ratio compares: "time" (medians) or "rss" (peak RSS)

    def add(self, engine: str, s: Sample) -> None:
        self.samples.setdefault(engine, []).append(s)

    def median(self, engine: str) -> float | None:
        xs = self.samples.get(engine)
        return statistics.median(x.seconds for x in xs) if xs else None

    def cpu(self, engine: str) -> float | None:
        xs = self.samples.get(engine)
        return statistics.median(x.cpu for x in xs) if xs and any(x.cpu for x in xs) else None

    def peak_rss_mb(self, engine: str) -> float | None:
        xs = self.samples.get(engine)
        return max(x.rss_kb for x in xs) / 1024 if xs else None

    def ratio(self, peer: str) -> float | None:
        a, b = self.median("minibuild"), self.median(peer)
        return a / b if a is not None and b else None


PEERS = ("docker", "buildah", "reference")


# ============================================================================ scenarios
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = sc.QUICK if args.quick else sc.FULL
        self.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
        root = Path(args.work_root)
        root.mkdir(parents=True, exist_ok=True)
        self.work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="run-", dir=root))
        self.work.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, Row] = {}
        self.log_lines: list[str] = []
        self.base_tar = sc.write_base_archive(self.work / "base.tar")
        self.mb = Minibuild(self.work, self.base_tar, args.install)
        self.docker: Docker | None = None
        self.buildah: Buildah | None = None
        self.versions: dict[str, str] = {"minibuild": self.mb.version() + (
            " (regular install in a clean venv, its `minibuild` script)" if self.mb.install == "venv"
            else " (`python -m minibuild` of the bench's interpreter)")}
        if not args.no_docker and shutil.which("docker"):
            host = args.docker_host or os.environ.get("MINIBUILD_DOCKER_HOST") or os.environ.get("DOCKER_HOST") \
                or "unix:///tmp/dk/docker.sock"
            own = own_dir = None
            if args.own_dockerd or not _ping(host):
                host, own, own_dir = start_dockerd(Path(args.work_root))
            self.docker = Docker(host, self.base_tar, own, own_dir)
            self.versions["docker"] = self.docker.version() + (" (private dockerd)" if own else " (shared dockerd)")
        if not args.no_buildah and shutil.which("buildah"):
            self.buildah = Buildah(self.work, self.base_tar, args.buildah_driver)
            self.versions["buildah"] = self.buildah.version()

    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        self.log_lines.append(line)

    def row(self, key: str, label: str, targets: dict[str, float] | None = None, note: str = "") -> Row:
        if key not in self.rows:
            self.rows[key] = Row(key=key, label=label, targets=targets or {}, note=note)
        return self.rows[key]

    def engines(self) -> list[Minibuild | Docker | Buildah]:
        return [e for e in (self.mb, self.docker, self.buildah) if e is not None]

    def record(self, row: Row, engine: str, s: Sample) -> None:
        row.add(engine, s)
        self.log(f"  {row.key:<22} {engine:<9} {s.seconds:8.3f}s  {s.rss_kb / 1024:7.1f} MB  cpu {s.cpu:6.2f}s")

    def warm_rows(self, eng: Minibuild | Docker | Buildah, s: sc.Scenario, warm: Row, again: Row) -> None:
        """The builds after a cold one: warm and warm again (both fully cached builds)."""
        self.record(warm, eng.name, eng.build(s))
        self.record(again, eng.name, eng.build(s))

    # -------------------------------------------------------------- startup
    def startup(self) -> None:
        self.log("startup")
        r0 = self.row("startup-python", "start-up: `python -c pass` (the interpreter floor)")
        r1 = self.row("startup-version", "start-up: `minibuild --version` (CLI group only)")
        r2 = self.row("startup-build", "start-up: importing what `minibuild build` needs")
        r3 = self.row("startup-host-python", "start-up: `python -c pass` of the interpreter running the bench "
                      "(this machine's site hooks: not in the measured install)")
        for _ in range(max(3, self.rounds)):
            self.record(r0, "minibuild", measure([self.mb.python, "-c", "pass"], env=self.mb.env))
            self.record(r1, "minibuild", measure([*self.mb.cmd, "--version"], env=self.mb.env))
            self.record(r2, "minibuild", measure([self.mb.python, "-c", "import minibuild.cli, minibuild.cli.build_cmd, "
                                                  "minibuild.api"], env=self.mb.env))
            if self.mb.install == "venv":
                self.record(r3, "minibuild", measure([sys.executable, "-c", "pass"], env=self.mb.env))

    # -------------------------------------------------------------- seed + edit
    def seed(self, with_edit: bool) -> None:
        s = sc.make_seed(self.work / "ctx", self.sizes)
        for ex in ("emulate", "chroot"):
            cold = self.row(f"seed-cold-{ex}", f"seed cold, --executor {ex}",
                            {"docker": 0.35 if ex == "emulate" else 1.0})
            warm = self.row(f"seed-warm-{ex}", f"seed warm (fully cached), --executor {ex}", {"docker": 0.75})
            again = self.row(f"seed-again-{ex}", f"seed warm again, --executor {ex}", {"docker": 0.75})
            self.log(f"seed ({ex})")
            for _ in range(self.rounds):
                self.mb.reset()
                self.record(cold, "minibuild", self.mb.build(s, executor=ex))
                self.record(warm, "minibuild", self.mb.build(s, executor=ex))
                self.record(again, "minibuild", self.mb.build(s, executor=ex))
        for eng in self.engines()[1:]:
            self.log(f"seed ({eng.name})")
            for _ in range(self.rounds):
                eng.reset()
                smp = eng.build(s)
                self.record(self.rows["seed-cold-emulate"], eng.name, smp)
                self.rows["seed-cold-chroot"].add(eng.name, smp)
                smp = eng.build(s)
                self.record(self.rows["seed-warm-emulate"], eng.name, smp)
                self.rows["seed-warm-chroot"].add(eng.name, smp)
                smp = eng.build(s)
                self.record(self.rows["seed-again-emulate"], eng.name, smp)
                self.rows["seed-again-chroot"].add(eng.name, smp)
        if not with_edit:
            return
        edit = self.row("edit", "edit: one source file changed (emulate)", {"docker": 0.5})
        self.log("edit")
        for eng in self.engines():
            eng.reset()
            eng.build(s)
            for r in range(self.rounds):
                sc.edit_seed(s, r + 1)
                self.record(edit, eng.name, eng.build(s))
            sc.edit_seed(s, 0)

    # -------------------------------------------------------------- big context + export
    def big(self, with_export: bool) -> None:
        t0 = time.perf_counter()
        s = sc.make_big(self.work / "ctx", self.sizes)
        total = sc.tree_bytes(s.context)
        self.log(f"big context: {self.sizes.big_files} files, {total / 1e6:.0f} MB generated in "
                 f"{time.perf_counter() - t0:.1f}s")
        subprocess.run(["sync"], check=False)
        subprocess.run(f"tar -c -C {s.context} . > /dev/null", shell=True, check=True)  # warm the page cache
        size = f"{self.sizes.big_files} files / {total / 1e6:.0f} MB"
        cold = self.row("big-cold", f"big context cold ({size})", {"docker": 1.0})
        warm = self.row("big-warm", "big context warm", {"docker": 1.0})
        again = self.row("big-again", "big context warm again", {"docker": 1.0})
        touched = self.row("big-touched", "big context warm, every mtime touched", {"docker": 1.0})
        for eng in self.engines():
            self.log(f"big ({eng.name})")
            for r in range(self.rounds):
                eng.reset()
                self.record(cold, eng.name, eng.build(s))
                self.warm_rows(eng, s, warm, again)
                sc.touch_all(s.context, 1_600_000_000 + r * 1000 + 7)
                self.record(touched, eng.name, eng.build(s))
        if not with_export:
            return
        export = self.row("export", f"export: docker-load tar of the big image ({total / 1e6:.0f} MB of files)",
                          {"reference": 2.0},
                          note="reference = `tar -c | sha256sum` of the context tree; target: throughput >= 0.5x "
                               "(time ratio <= 2.0); docker = `docker save`, buildah = `buildah push docker-archive:`")
        self.log("export")
        out = self.work / "export.tar"
        for _ in range(self.rounds):
            for eng in self.engines():
                self.record(export, eng.name, eng.export(s.tag, out))
                out.unlink(missing_ok=True)
            self.record(export, "reference", measure(f"tar -c -C {s.context} . | sha256sum", shell=True))
        # reclaim the disk before the next scenario
        for eng in self.engines():
            eng.reset()
        shutil.rmtree(s.context)

    # -------------------------------------------------------------- many steps + linearity
    def many(self, with_linear: bool) -> None:
        st, per = self.sizes.stages, self.sizes.per_stage
        s = sc.make_many(self.work / "ctx", st, per)
        cold = self.row("many-cold", f"many steps cold ({st} stages x {per} instructions)", {"docker": 1.0})
        warm = self.row("many-warm", "many steps warm", {"docker": 1.0})
        again = self.row("many-again", "many steps warm again", {"docker": 1.0})
        for eng in self.engines():
            self.log(f"many ({eng.name})")
            # a peer's cold many-steps build takes minutes (a container per RUN, a commit per step): fewer rounds
            rounds = self.rounds if eng is self.mb else max(1, min(self.rounds, self.args.slow_peer_rounds))
            for _ in range(rounds):
                eng.reset()
                self.record(cold, eng.name, eng.build(s))
                self.warm_rows(eng, s, warm, again)
        if not with_linear:
            return
        f = self.sizes.linear_factor
        big = sc.make_many(self.work / "ctx", st, per * f, name="many10")
        lc = self.row("linear-cold", f"many steps x{f} cold ({st} x {per * f}), minibuild only",
                      note=f"ratio column = time / time of the x1 build; target <= {1.2 * f:.0f}")
        lw = self.row("linear-warm", f"many steps x{f} warm, minibuild only",
                      note="ratio column = time / time of the x1 warm build (both fully cached builds)")
        self.log(f"many x{f} (minibuild)")
        for _ in range(max(1, min(self.rounds, self.args.slow_peer_rounds))):
            self.mb.reset()
            self.record(lc, "minibuild", self.mb.build(big))
            self.record(lw, "minibuild", self.mb.build(big))
        lc.targets = {"x1": 1.2 * f}
        lw.targets = {"x1": 1.2 * f}

    # -------------------------------------------------------------- big base
    def big_base(self) -> None:
        """The big-base rows at x1 and at x``--big-base-scale``: cold builds (both executors) and the build where
        one RUN misses (``--build-arg ROUND=k`` reaches only the last RUN), minibuild's step cost from its JSON
        progress; the loads are timed on rows of their own, outside every build."""
        a = self.args
        files, total = (sc.QUICK_BIG_BASE_FILES, sc.QUICK_BIG_BASE_BYTES) if a.quick else \
            (sc.BIG_BASE_FILES, sc.BIG_BASE_BYTES)
        files = a.big_base_files or files
        total = int(a.big_base_mb * 1e6) if a.big_base_mb else total
        cache = Path(a.work_root) / "cache"
        slow = max(1, min(self.rounds, a.slow_peer_rounds))
        for mult in dict.fromkeys((1, a.big_base_scale)):
            t0 = time.perf_counter()
            base = sc.big_base(cache, files * mult, total * mult)
            self.log(f"big base x{mult}: {base.files} files, {base.bytes / 1e6:.0f} MB, archive "
                     f"{base.archive.stat().st_size / 1e6:.0f} MB ({time.perf_counter() - t0:.1f}s; cached in {cache})")
            s = sc.make_big_base_ctx(self.work / "ctx", base)
            x = f"x{mult}"
            size = f"{base.files} files / {base.bytes / 1e6:.0f} MB"
            load = self.row(f"bigbase-{x}-load", f"big base {x} ({size}): loading the base (outside the builds)",
                            note="minibuild load / docker load / buildah pull docker-archive: of the base archive; "
                                 "not part of any build's time")
            tmpl, smp = self.mb.load_template(f"bigbase-{x}", base.archive)
            self.record(load, "minibuild", smp)
            if self.docker is not None:
                self.record(load, "docker", self.docker.load(base.archive, base.tag))
            for ex in ("emulate", "chroot"):
                cold = self.row(f"bigbase-{x}-cold-{ex}", f"big base {x} cold, --executor {ex}",
                                {"docker": 0.3 if ex == "emulate" else 1.0})
                one = self.row(f"bigbase-{x}-onerun-{ex}", f"big base {x}: one RUN misses, whole build, "
                               f"--executor {ex}")
                step = self.row(f"bigbase-{x}-step-{ex}", f"big base {x}: one RUN misses, the step alone "
                                f"(JSON progress: step + unpack seconds), --executor {ex}",
                                note="minibuild only: the `seconds` of the step events that missed plus the "
                                     "`unpack` events of the build (unpacking is not billed to the step)")
                if mult != 1:
                    cold.x1_of, cold.x1_what = f"bigbase-x1-cold-{ex}", "rss"
                    cold.targets["x1"] = 1.5
                    one.x1_of = f"bigbase-x1-onerun-{ex}"
                    step.x1_of = f"bigbase-x1-step-{ex}"
                    step.targets["x1"] = 2.0
                self.log(f"big base {x} ({ex})")
                k = 0
                for _ in range(slow):
                    self.mb.reset(tmpl)
                    ev: list[dict[str, object]] = []
                    self.record(cold, "minibuild", self.mb.build(s, executor=ex, build_args=("ROUND=0",),
                                                                 events=ev))
                    self.log("    " + _steps_line(ev))
                    for _ in range(self.rounds):
                        k += 1
                        ev = []
                        smp = self.mb.build(s, executor=ex, build_args=(f"ROUND={k}",), events=ev)
                        self.record(one, "minibuild", smp)
                        missed, cost = _step_cost(ev)
                        self.log("    " + _steps_line(ev))
                        if missed != 1:
                            self.log(f"    expected one missed step, got {missed}")
                        self.record(step, "minibuild", Sample(cost, smp.rss_kb, 0.0))
            for eng in self.engines()[1:]:
                self.log(f"big base {x} ({eng.name})")
                for r in range(slow):
                    if isinstance(eng, Buildah):
                        pulled = eng.reset(base.archive)
                        if r == 0:
                            self.record(load, eng.name, pulled)
                    else:
                        eng.reset()
                    smp = eng.build(s, build_args=("ROUND=0",))
                    self.record(self.rows[f"bigbase-{x}-cold-emulate"], eng.name, smp)
                    self.rows[f"bigbase-{x}-cold-chroot"].add(eng.name, smp)
                    for k in range(self.rounds):
                        smp = eng.build(s, build_args=(f"ROUND={1000 * (r + 1) + k}",))
                        self.record(self.rows[f"bigbase-{x}-onerun-emulate"], eng.name, smp)
                        self.rows[f"bigbase-{x}-onerun-chroot"].add(eng.name, smp)
            # reclaim the disk before the next size
            if self.docker is not None:
                self.docker.unload(base.tag)
            if self.buildah is not None:
                self.buildah.reset()
            shutil.rmtree(tmpl, ignore_errors=True)
            shutil.rmtree(self.mb.store, ignore_errors=True)
            shutil.rmtree(s.context, ignore_errors=True)

    # -------------------------------------------------------------- real toolchain
    def toolchain(self) -> None:
        """Debian bookworm + gcc (debootstrap, cached): a static C program built in stage 1, copied FROM scratch;
        cold and with the source edited (COPY + the gcc RUN miss). minibuild runs with ``--executor chroot``."""
        import toolchain as tc

        label = "toolchain: Debian bookworm + gcc, `gcc -static` then FROM scratch, --executor chroot"
        try:
            base = tc.debian_gcc_base(Path(self.args.work_root) / "cache", log=self.log)
        except tc.Unavailable as exc:
            self.row("toolchain-cold", f"{label}: skipped ({exc})")
            self.log(f"toolchain skipped: {exc}")
            return
        s = sc.make_toolchain(self.work / "ctx", tc.DOCKERFILE, tc.HELLO_C)
        load = self.row("toolchain-load", f"toolchain base ({base.stat().st_size / 1e6:.0f} MB archive): loading "
                        "it (outside the builds)")
        tmpl, smp = self.mb.load_template("toolchain", base)
        self.record(load, "minibuild", smp)
        if self.docker is not None:
            self.record(load, "docker", self.docker.load(base, tc.IMAGE_NAME))
        cold = self.row("toolchain-cold", f"{label}: cold", {"docker": 1.0})
        edit = self.row("toolchain-edit", "toolchain: hello.c edited (COPY + the gcc RUN miss)")
        slow = max(1, min(self.rounds, self.args.slow_peer_rounds))
        for eng in self.engines():
            self.log(f"toolchain ({eng.name})")
            for r in range(slow):
                if eng is self.mb:
                    self.mb.reset(tmpl)
                    ev: list[dict[str, object]] = []
                    self.record(cold, eng.name, self.mb.build(s, executor="chroot", events=ev))
                    self.log("    " + _steps_line(ev))
                elif isinstance(eng, Buildah):
                    pulled = eng.reset(base)
                    if r == 0:
                        self.record(load, eng.name, pulled)
                    self.record(cold, eng.name, eng.build(s))
                else:
                    # the FROM scratch stage descends from no base: its images go by the tag (rmi prunes parents)
                    run(["docker", "rmi", "-f", s.tag], env=eng.env, check=False)
                    eng.reset()
                    self.record(cold, eng.name, eng.build(s))
                for k in range(self.rounds):
                    src = s.context / "hello.c"
                    src.write_text(tc.HELLO_C + f"/* edit {r}.{k} */\n")
                    self.record(edit, eng.name, eng.build(s, executor="chroot"))
                (s.context / "hello.c").write_text(tc.HELLO_C)
        if self.docker is not None:
            run(["docker", "rmi", "-f", s.tag], env=self.docker.env, check=False)
            self.docker.unload(tc.IMAGE_NAME)
        if self.buildah is not None:
            self.buildah.reset()
        shutil.rmtree(tmpl, ignore_errors=True)

    # -------------------------------------------------------------- all
    def run_all(self) -> None:
        only = set(self.args.only.split(",")) if self.args.only else set(SCENARIOS)
        try:
            if "startup" in only:
                self.startup()
            if only & {"seed", "edit"}:
                self.seed("edit" in only)
            if only & {"many", "linear"}:
                self.many("linear" in only)
            if only & {"big", "export"}:
                self.big("export" in only)
            if "big-base" in only:
                self.big_base()
            if "toolchain" in only:
                self.toolchain()
        finally:
            for eng in (self.docker, self.buildah):
                if eng is not None:
                    try:
                        eng.close()
                    except CommandFailed as exc:
                        self.log(f"cleanup of {eng.name} failed: {exc}")
            if not self.args.keep:
                shutil.rmtree(self.work, ignore_errors=True)


SCENARIOS = ("startup", "seed", "edit", "big", "export", "many", "linear", "big-base", "toolchain")


def _step_cost(events: list[dict[str, object]]) -> tuple[int, float]:
    """(steps that missed, their seconds + every unpack's seconds) of one build's JSON progress."""
    missed = [e for e in events if e.get("type") == "step" and not e.get("cached") and e.get("index") != 0]
    unpack = sum(_secs(e) for e in events if e.get("type") == "unpack")
    return len(missed), sum(_secs(e) for e in missed) + unpack


def _secs(event: dict[str, object]) -> float:
    v = event.get("seconds")
    return float(v) if isinstance(v, (int, float)) else 0.0


def _steps_line(events: list[dict[str, object]]) -> str:
    """The per-step seconds of one build, for the log: ``unpack 3.2s | RUN echo one > /one 0.4s | COPY ... hit``."""
    out = []
    for e in events:
        if e.get("type") == "unpack":
            out.append(f"unpack {e['layers']} layer(s) {_secs(e):.2f}s")
        elif e.get("type") == "step" and e.get("index") != 0:
            what = str(e.get("instruction", ""))[:40]
            out.append(f"{what} {'hit' if e.get('cached') else f'{_secs(e):.2f}s'}")
    return " | ".join(out)


# ============================================================================ reporting
def ratio_of(b: Bench, row: Row, peer: str) -> float | None:
    if peer == "x1" and row.x1_of:
        base = b.rows.get(row.x1_of)
        if base is None:
            return None
        if row.x1_what == "rss":
            a, z = row.peak_rss_mb("minibuild"), base.peak_rss_mb("minibuild")
        else:
            a, z = row.median("minibuild"), base.median("minibuild")
        return a / z if a is not None and z else None
    if peer == "x1":
        if row.key not in ("linear-cold", "linear-warm"):
            return None
        base = b.rows.get("many-cold" if row.key == "linear-cold" else "many-warm")
        a, z = row.median("minibuild"), base.median("minibuild") if base else None
        return a / z if a is not None and z else None
    return row.ratio(peer)


def machine() -> dict[str, str]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {"nproc": str(os.cpu_count()), "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
            "kernel": platform.release(), "python": platform.python_version(),
            "load average (at the end)": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def fmt_s(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.3f} s" if x < 10 else f"{x:.1f} s")


def fmt_r(x: float | None, target: float | None) -> str:
    if x is None:
        return "n/a"
    verdict = "" if target is None else (" ✅" if x <= target else " ❌")
    return f"{x:.2f}×{verdict}"


def render_table(b: Bench) -> str:
    lines = ["| scenario | minibuild median | docker classic median | buildah median | minibuild/docker "
             "(target) | minibuild/buildah | other ratio (target) | minibuild CPU (user+sys) | peak RSS minibuild | peak RSS docker client | "
             "peak RSS buildah |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in b.rows.values():
        td = row.targets.get("docker")
        rd = fmt_r(row.ratio("docker"), td) + (f" (≤ {td:g})" if td is not None and row.ratio("docker") else "")
        other = ""
        for peer in ("reference", "x1"):
            if peer in row.targets or row.median(peer) is not None or (peer == "x1" and row.x1_of):
                t = row.targets.get(peer)
                name = "vs tar|sha256sum" if peer == "reference" else \
                    ("peak RSS vs x1" if row.x1_what == "rss" else "vs x1")
                other = f"{name}: {fmt_r(ratio_of(b, row, peer), t)}" + (f" (≤ {t:g})" if t is not None else "")
        ref = row.median("reference")
        mb_cell = fmt_s(row.median("minibuild")) + (f" (tar: {fmt_s(ref)})" if ref is not None else "")

        def rss(e: str) -> str:
            v = row.peak_rss_mb(e)
            return "n/a" if v is None else f"{v:.0f} MB"
        lines.append(f"| {row.label} | {mb_cell} | {fmt_s(row.median('docker'))} | {fmt_s(row.median('buildah'))} | "
                     f"{rd if row.median('docker') is not None else 'n/a'} | {fmt_r(row.ratio('buildah'), None)} | "
                     f"{other} | {fmt_s(row.cpu('minibuild'))} | {rss('minibuild')} | {rss('docker')} | {rss('buildah')} |")
    return "\n".join(lines)


def render_section(b: Bench, started: str, elapsed: float, machine_info: dict[str, str] | None = None) -> str:
    m = machine_info or machine()
    vs = "\n".join(f"- {k}: {v}" for k, v in {**m, **b.versions}.items())
    notes = "\n".join(f"- {r.label}: {r.note}" for r in b.rows.values() if r.note)
    big = b.rows.get("big-cold")
    rss_line = ""
    if big and big.peak_rss_mb("minibuild") is not None:
        v = big.peak_rss_mb("minibuild")
        rss_line = (f"\nPeak RSS of minibuild in the big-context scenario: {v:.0f} MB (target < 150 MB: "
                    f"{'met' if v is not None and v < 150 else 'NOT met'}).\n")
    return f"""{BEGIN}
<!-- generated by `python bench/run.py`; edit the prose outside these markers only -->
## Results ({'quick smoke run' if b.args.quick else 'full run'}, {b.rounds} round(s), medians)

Run {started}, took {elapsed / 60:.1f} min. Ratios are minibuild's median time divided by the peer's
(below 1.0 = minibuild faster); ✅/❌ compare against the issue's target.

{render_table(b)}
{rss_line}
Machine and versions:
{vs}

Notes:
- Peak RSS is GNU time's `%M` (the largest process of the command's tree); CPU is its `%U + %S` (user+sys of
  the whole tree). For Docker both are only the `docker` CLI client: the daemon's memory is not attributable to one build and is
  not comparable, so it is not reported. Buildah runs in-process, so its figure is the whole builder.
- Cold: minibuild = a fresh store holding only the base image (`minibuild load` of the base archive); Docker = every
  image descending from the base removed (the classic builder's cache is its intermediate images; `docker builder
  prune -af` as well when the harness runs its own dockerd); Buildah = `buildah rmi --all` and the base pulled again.
  Buildah runs with `--layers` so that it has a cache at all.
- The machine is shared with other engineers' test runs: the load average above shows how busy it was.
{notes}
{END}"""


def render_svg(b: Bench) -> str:
    """Horizontal bars: minibuild/docker and minibuild/buildah (or /tar, /x1) per row; the target as a red line."""
    bars: list[tuple[str, str, float, float | None]] = []  # (row label, peer, ratio, target)
    for row in b.rows.values():
        for peer in ("docker", "buildah", "reference", "x1"):
            r = ratio_of(b, row, peer)
            if r is not None:
                bars.append((row.label, peer, r, row.targets.get(peer)))
    width, left, right, bar_h, gap = 1000, 430, 90, 14, 6
    top = 50
    height = top + len(bars) * (bar_h + gap) + 60
    # log scale: ratios span 0.03x (Buildah, many steps) to 12x (the linearity target)
    vals = [r for *_, r, _t in bars] + [t for *_, t in bars if t is not None]
    vmin = min([0.05] + [v for v in vals if v > 0]) * 0.8
    vmax = max([2.0] + vals) * 1.25
    span = width - left - right

    def xpos(v: float) -> float:
        v = min(max(v, vmin), vmax)
        return left + (math.log10(v) - math.log10(vmin)) / (math.log10(vmax) - math.log10(vmin)) * span

    colours = {"docker": "#1d63ed", "buildah": "#892ca0", "reference": "#4c9a2a", "x1": "#c77800"}
    esc = lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="20" y="20" font-size="14" font-weight="bold">minibuild time / peer time (log scale, lower '
           f'is better); red line = target</text>']
    for v in (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50):
        if vmin <= v <= vmax:
            x = xpos(v)
            out.append(f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{height - 50}" stroke="#ddd"/>')
            out.append(f'<text x="{x:.1f}" y="{height - 36}" text-anchor="middle">{v:g}×</text>')
    x1 = xpos(1.0)
    out.append(f'<line x1="{x1:.1f}" y1="{top - 8}" x2="{x1:.1f}" y2="{height - 50}" stroke="#888" '
               f'stroke-dasharray="4,3"/>')
    y = top
    for label, peer, r, t in bars:
        w = xpos(r) - left
        out.append(f'<text x="{left - 6}" y="{y + bar_h - 3}" text-anchor="end">{esc(label)} '
                   f'<tspan fill="{colours[peer]}">vs {"tar" if peer == "reference" else peer}</tspan></text>')
        out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colours[peer]}" '
                   f'fill-opacity="0.8"/>')
        out.append(f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 3}">{r:.2f}×'
                   f'</text>')
        if t is not None:
            tx = xpos(t)
            out.append(f'<line x1="{tx:.1f}" y1="{y - 2}" x2="{tx:.1f}" y2="{y + bar_h + 2}" stroke="red" '
                       f'stroke-width="3"/>')
        y += bar_h + gap
    lx = left
    for peer, c in colours.items():
        out.append(f'<rect x="{lx}" y="{height - 22}" width="12" height="12" fill="{c}"/>')
        name = {"reference": "tar -c | sha256sum", "x1": "the x1 build"}.get(peer, peer)
        out.append(f'<text x="{lx + 16}" y="{height - 12}">vs {name}</text>')
        lx += 40 + 7 * len(name)
    out.append("</svg>")
    return "\n".join(out) + "\n"


DOC_TEMPLATE = """# Performance

How fast minibuild builds compared with Docker's classic builder and Buildah on the same Dockerfiles, contexts and
busybox base image (issue 8). Regenerate with `python bench/run.py` (`--quick` for a smoke run); the section between
the markers below is rewritten by that command, the rest of this page is prose kept across runs.

![ratios](performance.svg)

{section}
"""


def write_docs(b: Bench, out_dir: Path, started: str, elapsed: float,
               machine_info: dict[str, str] | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    section = render_section(b, started, elapsed, machine_info)
    md = out_dir / "performance.md"
    if md.exists() and BEGIN in (text := md.read_text()) and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        md.write_text(head + section + tail)
    else:
        md.write_text(DOC_TEMPLATE.format(section=section))
    (out_dir / "performance.svg").write_text(render_svg(b))
    if isinstance(b, _Rendered):
        return
    raw = {k: {"label": r.label, "targets": r.targets, "note": r.note, "x1_of": r.x1_of, "x1_what": r.x1_what,
               "samples": {e: [[s.seconds, s.rss_kb, s.cpu] for s in xs] for e, xs in r.samples.items()}}
           for k, r in b.rows.items()}
    (out_dir / "performance.json").write_text(json.dumps({
        "versions": b.versions, "machine": machine_info or machine(), "rounds": b.rounds, "quick": b.args.quick,
        "started": started, "elapsed": elapsed, "rows": raw}, indent=1) + "\n")


class _Rendered:
    """What render_section/render_svg need of a Bench, rebuilt from performance.json."""

    def __init__(self, doc: dict[str, object], args: argparse.Namespace) -> None:
        self.args = args
        self.rounds = doc["rounds"]
        self.versions = doc["versions"]
        self.rows: dict[str, Row] = {}
        for key, r in doc["rows"].items():  # type: ignore[union-attr]
            row = Row(key=key, label=r["label"], targets=r["targets"], note=r.get("note", ""),
                      x1_of=r.get("x1_of", ""), x1_what=r.get("x1_what", "time"))
            for eng, xs in r["samples"].items():
                for x in xs:
                    row.add(eng, Sample(x[0], x[1], x[2] if len(x) > 2 else 0.0))
            self.rows[key] = row


def render_only(args: argparse.Namespace) -> int:
    out_dir = Path(args.output_dir)
    doc = json.loads((out_dir / "performance.json").read_text())
    b = _Rendered(doc, args)
    args.quick = doc.get("quick", False)
    write_docs(b, out_dir, doc.get("started", "?"), doc.get("elapsed", 0.0), machine_info=doc.get("machine"))  # type: ignore[arg-type]
    print(render_table(b))  # type: ignore[arg-type]
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=None, help="rounds per scenario (default 3; 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="one round, smaller sizes: a smoke run")
    ap.add_argument("--only", default="", help="comma list of: " + ",".join(SCENARIOS))
    ap.add_argument("--big-base-scale", type=int, default=5,
                    help="big-base: the second base size, as a multiple of the first (default 5)")
    ap.add_argument("--big-base-files", type=int, default=0,
                    help="big-base: files of the x1 base (default 20000; 1000 with --quick)")
    ap.add_argument("--big-base-mb", type=float, default=0.0,
                    help="big-base: MB of file content of the x1 base (default 200; 10 with --quick)")
    ap.add_argument("--work-root", default=str(default_work_root()),
                    help="parent of every engine's working directory (default: ~/.cache/minibuild-bench)")
    ap.add_argument("--install", choices=("venv", "current"), default="venv",
                    help="venv: measure a regular install of this checkout in a clean venv (as users run it; "
                    "default); current: python -m minibuild of this interpreter")
    ap.add_argument("--docker-host", default=None, help="default $MINIBUILD_DOCKER_HOST, $DOCKER_HOST, /tmp/dk")
    ap.add_argument("--own-dockerd", action="store_true", help="start a private dockerd for the run")
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--no-buildah", action="store_true")
    ap.add_argument("--buildah-driver", default="overlay", choices=("overlay", "vfs"))
    ap.add_argument("--slow-peer-rounds", type=int, default=1,
                    help="rounds for the peers' many-steps builds, minibuild's x10 build and the cold builds of "
                    "big-base and toolchain (default 1)")
    ap.add_argument("--keep", default=None, help="work in this directory and keep it")
    ap.add_argument("--output-dir", default=None,
                    help="where performance.md/.svg/.json go (default: docs/; with --only: WORK_ROOT/results, "
                    "so that a partial run does not replace the full table)")
    ap.add_argument("--render-only", action="store_true",
                    help="re-write performance.md/.svg from the performance.json of the last run (no measuring)")
    args = ap.parse_args(argv)
    unknown = sorted(set(filter(None, args.only.split(","))) - set(SCENARIOS))
    if unknown:
        print(f"error: unknown scenario(s) for --only: {','.join(unknown)} (known: {','.join(SCENARIOS)})",
              file=sys.stderr)
        return 1
    if args.output_dir is None:
        args.output_dir = str(Path(args.work_root) / "results" if args.only and not args.render_only
                              else REPO / "docs")
    if args.render_only:
        return render_only(args)
    # clean up (engines' images, buildah mounts) on Ctrl-C and on kill: a background job ignores SIGINT otherwise
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.perf_counter()
    b = Bench(args)
    b.run_all()
    write_docs(b, Path(args.output_dir), started, time.perf_counter() - t0)
    print(render_table(b))
    print(f"results written to {args.output_dir}/performance.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
