"""Run container-structure-test configs against an ImageView: file, content, metadata, license and command tests.

Verdicts and messages follow upstream's v2 types (pkg/types/v2) with its default ``docker`` driver; the places
where minibuild differs are listed in docs/structure-tests.md.  Order per file is upstream's: command, file
content, file existence, license, metadata.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import field
from pathlib import Path

from minibuild.errors import MinibuildError
from minibuild.record import record
from minibuild.structure.gocompat import compile_and_run_regex, go_expand, go_list
from minibuild.structure.schema import (
    UNSET_ID,
    CommandTest,
    EnvVar,
    FileContentTest,
    FileExistenceTest,
    LicenseTest,
    MetadataTest,
    StructureConfig,
)
from minibuild.view import FileInfo, ImageView

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBIAN_ROOT = "/usr/share/doc"
LICENSE_FILE = "copyright"
LICENSE_WHITELIST = ("libgnutls30",)
LICENSE_BLACKLIST = ("AGPL", "WTFPL")


@record
class TestResult:
    """One result, shaped like upstream's TestResult (JSON: Name, Pass, Stdout, Stderr, Errors, Duration)."""

    __test__ = False  # not a pytest class

    name: str
    passed: bool
    errors: tuple[str, ...] = ()
    stdout: str = ""
    stderr: str = ""
    duration_ns: int = 0
    source: str = ""


@record
class Summary:
    """Every result of a run, in order, with the totals (a run with no result is a failure, as upstream)."""

    results: tuple[TestResult, ...]
    files: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def passes(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failures(self) -> int:
        return sum(1 for r in self.results if not r.passed)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def duration_ns(self) -> int:
        return sum(r.duration_ns for r in self.results)

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.failures == 0


class _Result:
    def __init__(self, name: str) -> None:
        self.name = name
        self.passed = True
        self.errors: list[str] = []
        self.stdout = ""
        self.stderr = ""

    def error(self, message: str) -> None:
        self.errors.append(message)
        self.passed = False

    def freeze(self, duration_ns: int = 0, source: str = "") -> TestResult:
        return TestResult(name=self.name, passed=self.passed, errors=tuple(self.errors), stdout=self.stdout,
                          stderr=self.stderr, duration_ns=duration_ns, source=source)


def _invalid(name: str, errors: list[str], source: str) -> TestResult:
    return TestResult(name=name, passed=False, errors=tuple(errors), source=source)


# ------------------------------------------------------------------------------------------- env
def merged_env(view: ImageView, extra: Sequence[EnvVar]) -> dict[str, str]:
    """The image env with ``extra`` set on top, each value expanded (os.Expand) against the image env first."""
    base = dict(view.config.env)
    out = dict(base)
    for var in extra:
        out[var.key] = go_expand(var.value, base)
    return out


# ------------------------------------------------------------------------------------------- files
def _stat(view: ImageView, path: str) -> FileInfo | None:
    try:
        return view.stat(path)
    except MinibuildError:
        return None


def run_file_existence(view: ImageView, t: FileExistenceTest, env: dict[str, str]) -> _Result:
    res = _Result(f"File Existence Test: {t.name}")
    path = go_expand(t.path, env)
    info = _stat(view, path)
    if info is None and t.should_exist:
        res.error(f"Error examining file in container: File {path} not found in image")
        return res
    if not t.should_exist:
        if info is not None:
            res.error(f"File {t.path} should not exist but does")
        return res
    assert info is not None
    perms = info.permissions
    if t.permissions and perms != t.permissions:
        res.error(f"{t.path} has incorrect permissions. Expected: {t.permissions}, Actual: {perms}")
    if t.is_executable_by:
        bits = {"any": 0o111, "owner": 0o100, "group": 0o010, "other": 0o001}.get(t.is_executable_by)
        if bits is None:
            res.error(f"{t.is_executable_by} not recognised as a valid option")
        elif not info.mode & bits:
            res.error(f"{t.path} has incorrect executable bit. Expected to be executable by {t.is_executable_by}, "
                      f"Actual: {perms}")
    if t.uid != UNSET_ID and info.uid != t.uid:
        res.error(f"{t.path} has incorrect user ownership. Expected: {t.uid}, Actual: {info.uid}")
    if t.gid != UNSET_ID and info.gid != t.gid:
        res.error(f"{t.path} has incorrect group ownership. Expected: {t.gid}, Actual: {info.gid}")
    return res


def _read_file(view: ImageView, path: str) -> tuple[str | None, str]:
    """(content, error) as the docker driver reports them."""
    try:
        info = view.stat(path, follow_symlinks=True)
    except MinibuildError as exc:
        return None, str(exc)
    if info is None:
        return None, f"File {path} not found in image"
    if info.type == "dir":
        return None, f"Cannot read specified path: {path} is a directory, not a file"
    if info.type != "file":
        return None, f"File {path} not found in image"
    return info.read().decode("utf-8", errors="replace"), ""


def run_file_content(view: ImageView, t: FileContentTest) -> _Result:
    res = _Result(f"File Content Test: {t.name}")
    contents, err = _read_file(view, t.path)
    if contents is None:
        res.error(f"Failed to open {t.path}. Error: {err}")
        return res
    for s in t.expected_contents:
        if not compile_and_run_regex(s, contents, True):
            res.error(f"Expected string '{s}' not found in file content string '{contents}'")
    for s in t.excluded_contents:
        if not compile_and_run_regex(s, contents, False):
            res.error(f"Excluded string '{s}' found in file content string '{contents}'")
    return res


# ------------------------------------------------------------------------------------------- metadata
def run_metadata(view: ImageView, t: MetadataTest) -> _Result:
    res = _Result("Metadata Test")
    cfg = view.config
    env = dict(cfg.env)
    for pair in t.env_vars:
        if pair.key in env:
            val = env[pair.key]
            ok = compile_and_run_regex(pair.value, val, True) if pair.is_regex else pair.value == val
            if not ok:
                res.error(f"env var {pair.key} value {val} does not match expected value: {pair.value}")
        else:
            res.error(f"variable {pair.key} not found in image env")
    for pair in t.unbound_env_vars:
        if pair.key in env:
            res.error(f"env variable {pair.key} should not be present in image metadata")
    labels = dict(cfg.labels)
    for pair in t.labels:
        if pair.key in labels:
            val = labels[pair.key]
            ok = compile_and_run_regex(pair.value, val, True) if pair.is_regex else pair.value == val
            if not ok:
                res.error(f"label {pair.key} value {val} does not match expected value: {pair.value}")
        else:
            res.error(f"label {pair.key} not found in image metadata")
    image_cmd = cfg.cmd or ()
    if t.cmd is not None:
        if len(t.cmd) != len(image_cmd):
            res.error(f"Image Cmd {go_list(image_cmd)} does not match expected Cmd: {go_list(t.cmd)}")
        else:
            for want, got in zip(t.cmd, image_cmd):
                if want != got:
                    res.error(f"Image config Cmd {go_list(image_cmd)} does not match expected value: {go_list(t.cmd)}")
    image_ep = cfg.entrypoint or ()
    if t.entrypoint is not None:
        if len(t.entrypoint) != len(image_ep):
            res.error(f"Image entrypoint {go_list(image_ep)} does not match expected entrypoint: "
                      f"{go_list(t.entrypoint)}")
        else:
            for want, got in zip(t.entrypoint, image_ep):
                if want != got:
                    res.error(f"Image config entrypoint {go_list(image_ep)} does not match expected value: "
                              f"{go_list(t.entrypoint)}")
    if t.workdir and t.workdir != cfg.workdir:
        res.error(f"Image workdir {cfg.workdir} does not match config workdir: {t.workdir}")
    if t.user and t.user != cfg.user:
        res.error(f"Image user {cfg.user} does not match config user: {t.user}")
    ports = [p.split("/")[0] for p in cfg.exposed_ports]  # upstream drops the protocol ("80/tcp" -> "80")
    for port in t.exposed_ports:
        if port not in ports:
            res.error(f"Port {port} not found in config")
    for port in t.unexposed_ports:
        if port in ports:
            res.error(f"Port {port} should not be exposed")
    for vol in t.volumes:
        if vol not in cfg.volumes:
            res.error(f"Volume {vol} not found in config")
    for vol in t.unmounted_volumes:
        if vol in cfg.volumes:
            res.error(f"Volume {vol} should not be mounted")
    return res


def validate_metadata(t: MetadataTest) -> list[str]:
    errs = []
    errs += ["Environment variable key cannot be empty" for e in t.env_vars if not e.key]
    errs += ["Label key cannot be empty" for e in t.labels if not e.key]
    errs += ["Port cannot be empty" for p in t.exposed_ports if not p]
    errs += ["Volume cannot be empty" for v in t.volumes if not v]
    return errs


# ------------------------------------------------------------------------------------------- licenses
def _check_license_file(view: ImageView, path: str) -> str | None:
    contents, err = _read_file(view, path)
    if contents is None:
        return f"Error reading license file for {path}: {err}"
    upper = contents.upper()
    for word in LICENSE_BLACKLIST:
        if word in upper:
            return f"Invalid license for {path}, license contains {word}"
    return None


def run_license(view: ImageView, t: LicenseTest) -> _Result:
    res = _Result("License Test")
    if t.debian:
        info = _stat(view, DEBIAN_ROOT)
        if info is None or info.type != "dir":
            res.error(f"Error reading directory: File {DEBIAN_ROOT} not found in image")
            return res
        for name in view.listdir(DEBIAN_ROOT):
            child = view.stat(f"{DEBIAN_ROOT}/{name}")
            if child is None or child.type != "dir" or name in LICENSE_WHITELIST:
                continue
            lic = posixpath.join(DEBIAN_ROOT, name, LICENSE_FILE)
            if _stat(view, lic) is None:
                res.error(f"Error reading license file for {name}: File {lic} not found in image")
            problem = _check_license_file(view, lic)
            if problem:
                res.error(problem)
    for path in t.files:
        problem = _check_license_file(view, path)
        if problem:
            res.error(problem)
    return res


# ------------------------------------------------------------------------------------------- commands
class CommandRoot:
    """A pristine materialized copy of the image root; ``fresh()`` gives each command test its own copy."""

    def __init__(self, view: ImageView) -> None:
        self.view = view
        self._tmp = Path(tempfile.mkdtemp(prefix="minibuild-st-"))
        self._pristine: Path | None = None
        self._n = 0

    def fresh(self) -> Path:
        if self._pristine is None:
            self._pristine = self._tmp / "pristine"
            self.view.materialize(self._pristine)
        self._n += 1
        dest = self._tmp / f"run{self._n}"
        cp = shutil.which("cp")
        if cp is not None:
            done = subprocess.run([cp, "-a", str(self._pristine), str(dest)], capture_output=True)
            if done.returncode == 0:
                return dest
            shutil.rmtree(dest, ignore_errors=True)
        self.view.materialize(dest)
        return dest

    def discard(self, root: Path) -> None:
        _rmtree(root)

    def close(self) -> None:
        _rmtree(self._tmp)


def _rmtree(path: Path) -> None:
    def fix(func, p, _exc):  # type: ignore[no-untyped-def]
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=fix)


def validate_command(t: CommandTest) -> list[str]:
    errs = []
    if not t.name:
        errs.append("Please provide a valid name for every test")
    if not t.command:
        errs.append(f"Please provide a valid command to run for test {t.name}")
    if any(len(c) == 0 for c in t.setup):
        errs.append("Error in setup command configuration encountered; please check formatting and remove all "
                    "empty setup commands")
    if any(len(c) == 0 for c in t.teardown):
        errs.append("Error in teardown command configuration encountered; please check formatting and remove all "
                    "empty teardown commands")
    if any(not e.key or not e.value for e in t.env_vars):
        errs.append("Please provide non-empty keys and values for all specified env vars")
    return errs


def run_command(view: ImageView, t: CommandTest, cfg: StructureConfig, root: Path, executor: object) -> _Result:
    from minibuild.executors.executor import RunRequest

    res = _Result(f"Command Test: {t.name}")
    image_env = dict(view.config.env)
    env = merged_env(view, cfg.global_env_vars)  # SetEnv: globals expanded against the image env
    opts = cfg.container_run_options
    for key in opts.env_vars:
        value = os.environ.get(key, "")
        if value:
            env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)  # as Docker does for an image without PATH
    user = opts.user or view.config.user
    workdir = view.config.workdir or "/"
    subst = dict(env)
    if t.setup:
        setup_env = dict(env)
        for var in t.env_vars:
            setup_env[var.key] = go_expand(var.value, env)
        for argv in t.setup:
            r = executor.run(RunRequest(root=root, argv=tuple(argv), env=tuple(setup_env.items()),  # type: ignore[attr-defined]
                                        workdir=workdir, user=user))
            del r  # setup output is not checked (upstream commits the container whatever it printed)
        subst = setup_env  # the committed setup container carries the test env into the image config
    run_env = dict(env)
    for var in t.env_vars:
        run_env[var.key] = var.value
    argv = tuple(go_expand(a, subst) for a in (t.command, *t.args))
    del image_env
    result = executor.run(RunRequest(root=root, argv=argv, env=tuple(run_env.items()),  # type: ignore[attr-defined]
                                     workdir=workdir, user=user))
    stdout = result.stdout.decode("utf-8", errors="replace")
    stderr = result.stderr.decode("utf-8", errors="replace")
    res.stdout, res.stderr = stdout, stderr
    for s in t.expected_error:
        if not compile_and_run_regex(s, stderr, True):
            res.error(f"Expected string '{s}' not found in error '{stderr}'")
    for s in t.excluded_error:
        if not compile_and_run_regex(s, stderr, False):
            res.error(f"Excluded string '{s}' found in error '{stderr}'")
    for s in t.expected_output:
        if not compile_and_run_regex(s, stdout, True):
            res.error(f"Expected string '{s}' not found in output '{stdout}'")
    for s in t.excluded_output:
        if not compile_and_run_regex(s, stdout, False):
            res.error(f"Excluded string '{s}' found in output '{stdout}'")
    if t.exit_code != result.exit_code:
        res.error(f"Test '{t.name}' exited with incorrect error code. Expected: {t.exit_code}, "
                  f"Actual: {result.exit_code}")
    for teardown in t.teardown:
        try:
            executor.run(RunRequest(root=root, argv=tuple(teardown), env=tuple(run_env.items()),  # type: ignore[attr-defined]
                                    workdir=workdir, user=user))
        except MinibuildError:
            pass  # upstream only logs teardown failures
    return res


# ------------------------------------------------------------------------------------------- orchestration
def _timed(fn, *args) -> tuple[_Result, int]:  # type: ignore[no-untyped-def]
    start = time.monotonic_ns()
    res = fn(*args)
    return res, time.monotonic_ns() - start


def run_config(view: ImageView, cfg: StructureConfig, *, executor: str | object = "auto",
               roots: CommandRoot | None = None) -> tuple[TestResult, ...]:
    """Run every test of one config against ``view``; command tests use ``executor`` (a name or an Executor)."""
    from minibuild.executors.select import get_executor

    out: list[TestResult] = []
    src = cfg.source
    if cfg.command_tests:
        ex = get_executor(executor) if isinstance(executor, str) else executor
        own = roots is None
        roots = roots or CommandRoot(view)
        try:
            for t in cfg.command_tests:
                errs = validate_command(t)
                if errs:
                    out.append(_invalid(t.name, errs, src))
                    continue
                root = roots.fresh()
                start = time.monotonic_ns()
                try:
                    res = run_command(view, t, cfg, root, ex)
                except MinibuildError as exc:
                    res = _Result(f"Command Test: {t.name}")
                    res.error(str(exc))
                finally:
                    roots.discard(root)
                out.append(res.freeze(time.monotonic_ns() - start, src))
        finally:
            if own:
                roots.close()
    for t1 in cfg.file_content_tests:
        errs = ([] if t1.name else ["Please provide a valid name for every test"]) + \
               ([] if t1.path else [f"Please provide a valid file path for test {t1.name}"])
        if errs:
            out.append(_invalid(t1.name, errs, src))
            continue
        res, ns = _timed(run_file_content, view, t1)
        out.append(res.freeze(ns, src))
    env = merged_env(view, cfg.global_env_vars)
    for t2 in cfg.file_existence_tests:
        errs = ([] if t2.name else ["Please provide a valid name for every test"]) + \
               ([] if t2.path else [f"Please provide a valid file path for test {t2.name}"])
        if errs:
            out.append(_invalid(t2.name, errs, src))
            continue
        res, ns = _timed(run_file_existence, view, t2, env)
        out.append(res.freeze(ns, src))
    for t3 in cfg.license_tests:
        res, ns = _timed(run_license, view, t3)
        out.append(res.freeze(ns, src))
    if not cfg.metadata_test.is_empty:
        errs = validate_metadata(cfg.metadata_test)
        if errs:
            out.append(_invalid("Metadata Test", errs, src))
        else:
            res, ns = _timed(run_metadata, view, cfg.metadata_test)
            out.append(res.freeze(ns, src))
    return tuple(out)


def run_structure_tests(view: ImageView, configs: Sequence[StructureConfig | Path | str], *,
                        executor: str | object = "auto") -> Summary:
    """Run config files (paths or parsed) in order; a file that fails to parse becomes a failed result."""
    from minibuild.structure.schema import load_config

    results: list[TestResult] = []
    files: list[str] = []
    notes: list[str] = []
    roots: CommandRoot | None = None
    try:
        for item in configs:
            if isinstance(item, StructureConfig):
                cfg = item
            else:
                try:
                    cfg = load_config(item)
                except MinibuildError as exc:
                    files.append(str(item))
                    results.append(TestResult(name="", passed=False, errors=(f"error parsing config file: {exc}",),
                                              source=str(item)))
                    continue
            files.append(cfg.source)
            opts = cfg.container_run_options
            if opts.privileged or opts.capabilities or opts.bind_mounts or opts.allocate_tty or opts.env_file:
                notes.append(f"{cfg.source}: containerRunOptions privileged/capabilities/bindMounts/allocateTty/"
                             "envFile are ignored by minibuild (no container is created)")
            if cfg.command_tests and roots is None:
                roots = CommandRoot(view)
            results.extend(run_config(view, cfg, executor=executor, roots=roots))
    finally:
        if roots is not None:
            roots.close()
    return Summary(results=tuple(results), files=tuple(files), notes=tuple(notes))
