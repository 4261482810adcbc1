"""Conformance harness: build a case with Docker's classic builder and with minibuild, and compare the images."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CASES_DIR = Path(__file__).parent / "cases"
BASE_IMAGE = "minibuild-test/busybox:latest"
# Bump when the recorded form of a result changes, so cached Docker results are rebuilt.
HARNESS_VERSION = "1"

# The image-config fields compared (names as `docker image inspect` prints them under "Config").
CONFIG_FIELDS = (
    "Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels", "Volumes",
    "StopSignal", "Healthcheck", "Shell", "OnBuild",
)

# What `docker create` + `docker export` adds on its own (checked against a real export: the container's
# init layer and mount points), so neither image is judged by it.  The mount-point directories themselves
# (dev, proc, sys) are still compared; their contents are not.
INJECTED_FILES = frozenset({".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab"})
INJECTED_TREES = ("dev/", "proc/", "sys/")

KNOWN_CASE_KEYS = frozenset({"description", "build_args", "build_env", "target", "prepare", "expect", "differs",
                             "executors", "executors_reason", "fails"})
KNOWN_FAILS_KEYS = frozenset({"classic_error", "minibuild_error"})
EXECUTORS = ("emulate", "chroot")
KNOWN_DIFFERS_KEYS = frozenset({"reason", "classic", "classic_error", "classic_expect", "ignore_paths", "ignore_config"})
KNOWN_FILE_SPEC_KEYS = frozenset({"type", "mode", "uid", "gid", "content", "target", "size"})


class CaseError(Exception):
    """A case folder or case.yaml that the harness cannot use."""


# --------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True, slots=True, kw_only=True)
class Differs:
    """How the classic builder is known to differ from BuildKit in one case."""

    reason: str
    classic: str  # "fails" or "builds"
    classic_error: str | None = None
    classic_expect: Mapping[str, Any] = field(default_factory=dict)
    ignore_paths: tuple[str, ...] = ()
    ignore_config: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One conformance case folder: Dockerfile, optional context/, case.yaml."""

    name: str
    path: Path
    description: str
    build_args: tuple[tuple[str, str | None], ...] = ()  # None: `--build-arg KEY`, value from build_env
    build_env: tuple[tuple[str, str], ...] = ()  # extra environment for both builders' processes
    target: str | None = None
    prepare: tuple[Mapping[str, Any], ...] = ()
    expect: Mapping[str, Any] = field(default_factory=dict)
    differs: Differs | None = None
    executors: tuple[str, ...] = EXECUTORS  # minibuild's --executor values the case is built with (default: all)
    executors_reason: str | None = None  # why some executor is left out (required then; the skipped run says it)
    fails: Mapping[str, str] | None = None  # both builders must fail: {classic_error, minibuild_error} substrings

    @property
    def dockerfile(self) -> Path:
        return self.path / "Dockerfile"

    def fingerprint(self) -> str:
        """A hash of every file in the case folder (names, modes' executable bit, contents)."""
        h = hashlib.sha256()
        for p in sorted(self.path.rglob("*")):
            rel = p.relative_to(self.path).as_posix()
            if p.is_symlink():
                h.update(f"L {rel} {os.readlink(p)}\n".encode())
            elif p.is_file():
                h.update(f"F {rel} {os.access(p, os.X_OK)}\n".encode())
                h.update(hashlib.sha256(p.read_bytes()).digest())
            elif p.is_dir():
                h.update(f"D {rel}\n".encode())
        return h.hexdigest()


def load_case(path: Path) -> Case:
    """Read and validate one case folder."""
    name = path.name
    if not (path / "Dockerfile").is_file():
        raise CaseError(f"{name}: no Dockerfile")
    try:
        raw = yaml.safe_load((path / "case.yaml").read_text()) or {}
    except FileNotFoundError:
        raise CaseError(f"{name}: no case.yaml") from None
    if not isinstance(raw, dict):
        raise CaseError(f"{name}: case.yaml must be a mapping")
    unknown = set(raw) - KNOWN_CASE_KEYS
    if unknown:
        raise CaseError(f"{name}: unknown case.yaml keys {sorted(unknown)}")
    if not raw.get("description"):
        raise CaseError(f"{name}: case.yaml needs a description")
    differs = None
    if "differs" in raw:
        d = raw["differs"]
        if set(d) - KNOWN_DIFFERS_KEYS:
            raise CaseError(f"{name}: unknown differs keys {sorted(set(d) - KNOWN_DIFFERS_KEYS)}")
        if d.get("classic") not in ("fails", "builds") or not d.get("reason"):
            raise CaseError(f"{name}: differs needs a reason and classic: fails|builds")
        if not raw.get("expect"):
            raise CaseError(f"{name}: a differs case must state BuildKit's expected values under expect:")
        differs = Differs(
            reason=str(d["reason"]), classic=d["classic"], classic_error=d.get("classic_error"),
            classic_expect=d.get("classic_expect") or {},
            ignore_paths=tuple(d.get("ignore_paths") or ()), ignore_config=tuple(d.get("ignore_config") or ()),
        )
    expect = raw.get("expect") or {}
    _validate_expect(name, expect)
    if differs:
        _validate_expect(name, differs.classic_expect)
    args = raw.get("build_args") or {}
    executors = tuple(raw.get("executors") or EXECUTORS)
    if not executors or set(executors) - set(EXECUTORS):
        raise CaseError(f"{name}: executors must list some of {EXECUTORS}")
    executors_reason = raw.get("executors_reason")
    if set(executors) != set(EXECUTORS) and not executors_reason:
        raise CaseError(f"{name}: executors leaves out {sorted(set(EXECUTORS) - set(executors))}: "
                        "say why in executors_reason")
    fails = raw.get("fails")
    if fails is not None:
        if not isinstance(fails, dict) or set(fails) - KNOWN_FAILS_KEYS or not fails.get("classic_error") \
                or not fails.get("minibuild_error"):
            raise CaseError(f"{name}: fails needs classic_error and minibuild_error (substrings of each error)")
        if differs or raw.get("expect"):
            raise CaseError(f"{name}: a fails case has no expect: or differs:")
    if set(executors) == set(EXECUTORS) and executors_reason:
        raise CaseError(f"{name}: executors_reason given but every executor runs the case")
    return Case(
        name=name, path=path, description=str(raw["description"]),
        build_args=tuple((str(k), None if v is None else str(v)) for k, v in args.items()),
        build_env=tuple((str(k), str(v)) for k, v in (raw.get("build_env") or {}).items()),
        target=raw.get("target"), prepare=tuple(raw.get("prepare") or ()), expect=expect, differs=differs,
        executors=executors, executors_reason=None if executors_reason is None else str(executors_reason),
        fails=None if fails is None else {str(k): str(v) for k, v in fails.items()},
    )


def _validate_expect(name: str, expect: Mapping[str, Any]) -> None:
    if set(expect) - {"files", "config"}:
        raise CaseError(f"{name}: expect may only hold files: and config:")
    for path, spec in (expect.get("files") or {}).items():
        if not path.startswith("/"):
            raise CaseError(f"{name}: expected path {path!r} must be absolute")
        if spec != "absent" and (not isinstance(spec, dict) or set(spec) - KNOWN_FILE_SPEC_KEYS):
            raise CaseError(f"{name}: bad expectation for {path}: {spec!r}")
    for key in expect.get("config") or {}:
        if key not in CONFIG_FIELDS:
            raise CaseError(f"{name}: expected config field {key!r} is not one of {CONFIG_FIELDS}")


def all_cases() -> tuple[Case, ...]:
    """Every case under cases/, sorted by name."""
    return tuple(load_case(p) for p in sorted(CASES_DIR.iterdir()) if p.is_dir() and not p.name.startswith((".", "_")))


# ------------------------------------------------------------------------------------ build context


def prepare_context(case: Case, dest: Path) -> Path:
    """Copy the case's context to ``dest`` with normalised modes, apply ``prepare``, add the Dockerfile."""
    src = case.path / "context"
    if src.is_dir():
        shutil.copytree(src, dest, symlinks=True)
    else:
        dest.mkdir(parents=True)
    # Git keeps only the executable bit, and checkouts follow the umask: normalise so both builders
    # (and every machine) see the same modes.
    for p in [dest, *dest.rglob("*")]:
        if p.is_symlink():
            continue
        if p.is_dir():
            os.chmod(p, 0o755)
        else:
            os.chmod(p, 0o755 if os.stat(p).st_mode & 0o100 else 0o644)
    for op in case.prepare:
        _prepare_op(dest, op)
    shutil.copyfile(case.dockerfile, dest / "Dockerfile")
    os.chmod(dest / "Dockerfile", 0o644)
    return dest


def _prepare_op(root: Path, op: Mapping[str, Any]) -> None:
    if "mkdir" in op:
        p = root / op["mkdir"]
        p.mkdir(parents=True, exist_ok=True)
        os.chmod(p, int(str(op.get("mode", "0755")), 8))
    elif "write" in op:
        p = root / op["write"]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(str(op.get("content", "")).encode())
        os.chmod(p, int(str(op.get("mode", "0644")), 8))
    elif "chmod" in op:
        os.chmod(root / op["chmod"], int(str(op["mode"]), 8))
    elif "symlink" in op:
        p = root / op["symlink"]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.symlink_to(op["target"])
    elif "tar" in op:
        (root / op["tar"]).parent.mkdir(parents=True, exist_ok=True)
        (root / op["tar"]).write_bytes(make_tar(op.get("entries") or (), op.get("compression", "none")))
    else:
        raise CaseError(f"unknown prepare step {op!r}")


def make_tar(entries: Sequence[Mapping[str, Any]], compression: str) -> bytes:
    """A deterministic tar (mtime 0) of the given entries: {path, content|dir|symlink|hardlink, mode, uid, gid}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            ti = tarfile.TarInfo(str(e["path"]))
            ti.mtime = 0
            ti.uid, ti.gid = int(e.get("uid", 0)), int(e.get("gid", 0))
            if e.get("dir"):
                ti.type, ti.mode = tarfile.DIRTYPE, int(str(e.get("mode", "0755")), 8)
                tf.addfile(ti)
            elif "symlink" in e:
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, str(e["symlink"]), 0o777
                tf.addfile(ti)
            elif "hardlink" in e:  # a hard link to an earlier entry
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, str(e["hardlink"]), int(str(e.get("mode", "0644")), 8)
                tf.addfile(ti)
            else:
                data = str(e.get("content", "")).encode()
                ti.size, ti.mode = len(data), int(str(e.get("mode", "0644")), 8)
                tf.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    if compression == "gz":
        return gzip.compress(raw, mtime=0)
    if compression == "bz2":
        return bz2.compress(raw)
    if compression == "xz":
        return lzma.compress(raw, format=lzma.FORMAT_XZ)
    if compression == "none":
        return raw
    raise CaseError(f"unknown compression {compression!r}")


# ------------------------------------------------------------------------------ reading an image


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageResult:
    """What one builder produced for a case: a normalised filesystem and config, or an error."""

    fs: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"fs": self.fs, "config": self.config, "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageResult:
        return cls(fs=dict(data["fs"]), config=dict(data["config"]), error=data["error"])


def ignored_export_path(path: str) -> bool:
    """True for what `docker export` adds by itself (see INJECTED_FILES / INJECTED_TREES)."""
    return path in INJECTED_FILES or path.startswith(INJECTED_TREES)


def read_export(stream: io.BufferedIOBase | io.BytesIO) -> dict[str, dict[str, Any]]:
    """Normalise a `docker export` tar: path -> {type, mode, uid, gid, sha256|target|dev}; no mtimes."""
    fs: dict[str, dict[str, Any]] = {}
    contents: dict[str, str] = {}
    with tarfile.open(fileobj=stream, mode="r|") as tf:
        for ti in tf:
            path = _member_path(ti.name)
            if path == "" or ignored_export_path(path):
                continue
            entry: dict[str, Any] = {"mode": f"{stat.S_IMODE(ti.mode):04o}", "uid": ti.uid, "gid": ti.gid}
            if ti.isreg():
                f = tf.extractfile(ti)
                assert f is not None
                digest = hashlib.sha256(f.read()).hexdigest()
                contents[path] = digest
                entry.update(type="file", size=ti.size, sha256=digest)
            elif ti.islnk():
                # A hard link in the merged tree: judge it as the file it shares content with.
                target = _member_path(ti.linkname)
                entry.update(type="file", sha256=contents.get(target, "?"), size=fs.get(target, {}).get("size"))
            elif ti.isdir():
                entry.update(type="dir")
            elif ti.issym():
                entry.update(type="symlink", target=ti.linkname)
            elif ti.ischr() or ti.isblk():
                entry.update(type="char" if ti.ischr() else "block", dev=f"{ti.devmajor}:{ti.devminor}")
            elif ti.isfifo():
                entry.update(type="fifo")
            else:
                entry.update(type=f"tar-type-{ti.type!r}")
            fs[path] = entry
    return fs


def _member_path(name: str) -> str:
    """A tar member name as a relative path without "./" or trailing "/" ("" for the root)."""
    name = name[2:] if name.startswith("./") else name
    return "" if name in (".", "") else name.strip("/")


def normalise_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The compared config fields, with spellings of "nothing" unified.

    null, [] and {} are the same (Docker prints either for an unset list or map); WorkingDir "" means "/";
    ExposedPorts and Volumes become sorted lists of their keys.
    """
    config = config or {}
    out: dict[str, Any] = {}
    for key in CONFIG_FIELDS:
        value = config.get(key)
        if value in ([], {}, "") and key != "WorkingDir":
            value = None
        if key == "WorkingDir":
            value = value or "/"
        if key in ("ExposedPorts", "Volumes") and value is not None:
            value = sorted(value)
        out[key] = value
    return out


# ------------------------------------------------------------------------------------- comparing


def compare(docker: ImageResult, mini: ImageResult, *, ignore_paths: Sequence[str] = (),
            ignore_config: Sequence[str] = ()) -> list[str]:
    """Readable differences between the Docker image and minibuild's; empty when they agree."""
    problems: list[str] = []

    def skip(path: str) -> bool:
        return any(path == p.strip("/") or path.startswith(p.strip("/") + "/") for p in ignore_paths)

    only_d = sorted(p for p in docker.fs if p not in mini.fs and not skip(p))
    only_m = sorted(p for p in mini.fs if p not in docker.fs and not skip(p))
    for p in only_d:
        problems.append(f"  - /{p}  missing from minibuild's image (Docker has {_fmt(docker.fs[p])})")
    for p in only_m:
        problems.append(f"  + /{p}  only in minibuild's image ({_fmt(mini.fs[p])})")
    for p in sorted(set(docker.fs) & set(mini.fs)):
        if skip(p) or docker.fs[p] == mini.fs[p]:
            continue
        d, m = docker.fs[p], mini.fs[p]
        fields = sorted(k for k in set(d) | set(m) if d.get(k) != m.get(k))
        problems.append(f"  ~ /{p}  " + ", ".join(f"{k}: docker={d.get(k)!r} minibuild={m.get(k)!r}" for k in fields))
    for key in CONFIG_FIELDS:
        if key in ignore_config:
            continue
        if docker.config.get(key) != mini.config.get(key):
            problems.append(f"  config {key}: docker={json.dumps(docker.config.get(key))} "
                            f"minibuild={json.dumps(mini.config.get(key))}")
    return problems


def _fmt(entry: Mapping[str, Any]) -> str:
    bits = [entry["type"], entry["mode"], f"{entry['uid']}:{entry['gid']}"]
    if "target" in entry:
        bits.append(f"-> {entry['target']}")
    if "size" in entry:
        bits.append(f"{entry['size']} bytes")
    return " ".join(str(b) for b in bits)


def check_expect(result: ImageResult, expect: Mapping[str, Any], who: str) -> list[str]:
    """Differences between an image and hand-written expected values (files: and config:)."""
    problems: list[str] = []
    for path, spec in (expect.get("files") or {}).items():
        rel = path.strip("/")
        got = result.fs.get(rel)
        if spec == "absent":
            if got is not None:
                problems.append(f"  {who}: {path} should be absent, found {_fmt(got)}")
            continue
        if got is None:
            problems.append(f"  {who}: {path} is missing (expected {spec})")
            continue
        for key, want in spec.items():
            if key == "content":
                want_hash = hashlib.sha256(str(want).encode()).hexdigest()
                if got.get("sha256") != want_hash:
                    problems.append(f"  {who}: {path} content differs from {want!r}")
            elif key == "mode":
                if got["mode"] != f"{int(str(want), 8):04o}":
                    problems.append(f"  {who}: {path} mode {got['mode']}, expected {int(str(want), 8):04o}")
            elif got.get(key) != want:
                problems.append(f"  {who}: {path} {key} {got.get(key)!r}, expected {want!r}")
    for key, want in (expect.get("config") or {}).items():
        want_n = normalise_config({key: want})[key]
        if result.config.get(key) != want_n:
            problems.append(f"  {who}: config {key} = {json.dumps(result.config.get(key))}, expected {json.dumps(want_n)}")
    return problems


# --------------------------------------------------------------------------------------- builders


def docker_image_result(docker: Any, image: str) -> ImageResult:
    """Export a created (never started) container of ``image`` and read its config (``docker``: tests.engines.Docker)."""
    run = docker.run
    cid = run("create", image, "/nonexistent-entrypoint-never-run").stdout.decode().strip()
    try:
        proc = subprocess.Popen(["docker", "export", cid], stdout=subprocess.PIPE, env=docker.env)
        assert proc.stdout is not None
        fs = read_export(proc.stdout)  # type: ignore[arg-type]
        proc.stdout.close()
        if proc.wait(timeout=300) != 0:
            raise AssertionError(f"docker export {cid} failed")
    finally:
        run("rm", "-f", cid, check=False)
    info = json.loads(run("image", "inspect", image).stdout)[0]
    return ImageResult(fs=fs, config=normalise_config(info.get("Config")))


def build_flags(case: Case) -> list[str]:
    """The --build-arg and --target flags, spelt the same for both builders."""
    flags: list[str] = []
    for k, v in case.build_args:
        flags += ["--build-arg", k if v is None else f"{k}={v}"]
    if case.target:
        flags += ["--target", case.target]
    return flags


def docker_build(docker: Any, case: Case, context: Path, tag: str) -> ImageResult:
    """Build with the classic builder (DOCKER_BUILDKIT=0); the error text on failure.

    --no-cache: the classic builder's cache matches steps on scratch against any parentless image (e.g. one
    made by `docker import`), which made results depend on what else the engine held.
    """
    args = ["build", "--no-cache", "--force-rm", "-t", tag, "-f", str(context / "Dockerfile"), *build_flags(case)]
    env = dict(docker.env, DOCKER_BUILDKIT="0", **dict(case.build_env))
    proc = subprocess.run(["docker", *args, str(context)], capture_output=True, env=env, timeout=600)
    try:
        if proc.returncode != 0:
            return ImageResult(error=(proc.stdout + proc.stderr).decode(errors="replace")[-3000:])
        return docker_image_result(docker, tag)
    finally:
        docker.run("rmi", "-f", tag, check=False)
        leftovers = step_images(proc.stdout.decode(errors="replace"))
        if leftovers:  # the other stages' images, which the classic builder leaves behind untagged
            docker.run("rmi", *reversed(leftovers), check=False)


_STEP = re.compile(r"^Step \d+/\d+ : (\S+)", re.I)
_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12})$")


def step_images(output: str) -> list[str]:
    """Image ids the classic builder printed for its steps, except those of FROM steps (the base images)."""
    ids: list[str] = []
    instruction = ""
    for line in output.splitlines():
        if m := _STEP.match(line):
            instruction = m.group(1).upper()
        elif (m := _IMAGE.match(line)) and instruction != "FROM":
            ids.append(m.group(1))
    return ids


def minibuild_command(store: Path, *args: str) -> list[str]:
    """The minibuild CLI as this interpreter runs it (the venv's, under .ci/run)."""
    return [sys.executable, "-m", "minibuild", "--store", str(store), *args]


def minibuild_build(docker: Any, store: Path, case: Case, context: Path, out: Path, tag: str,
                    executor: str = "emulate") -> ImageResult:
    """Build with `minibuild build -o` (``--executor``), `docker load` the tarball and read it back; the error on
    failure."""
    args = ["build", str(context), "-f", str(context / "Dockerfile"), "-t", tag, "-o", str(out), *build_flags(case),
            "--executor", executor]  # always named: the default (auto) would run a real busybox base's RUNs in chroot
    env = dict(os.environ, **dict(case.build_env))
    proc = subprocess.run(minibuild_command(store, *args), capture_output=True, env=env, timeout=600)
    if proc.returncode != 0:
        return ImageResult(error=f"minibuild build exited {proc.returncode}:\n"
                                 + (proc.stdout + proc.stderr).decode(errors="replace")[-3000:])
    loaded = docker.run("load", "-i", str(out), check=False)
    if loaded.returncode != 0:
        return ImageResult(error=f"docker load of minibuild's tarball failed: {loaded.stderr.decode(errors='replace')}")
    said = loaded.stdout.decode(errors="replace")
    if f"Loaded image: {tag}" not in said:
        ids = [line.split(":", 1)[1].strip() for line in said.splitlines() if line.startswith("Loaded image ID:")]
        if not ids:
            return ImageResult(error=f"docker load did not report {tag} (was -t written into the tarball?):\n{said}")
        tag = ids[0]
    try:
        return docker_image_result(docker, tag)
    except AssertionError as exc:
        return ImageResult(error=f"could not read back minibuild's image from Docker: {exc}")
    finally:
        docker.run("rmi", "-f", tag, check=False)
