"""How a RUN step is executed: the Executor protocol, its request/result values, emulate and fake executors."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Protocol, runtime_checkable

from minibuild.executors import mountpoints
from minibuild.executors.mountpoints import RunMount
from minibuild.executors.runenv import EtcFiles, step_env
from minibuild.executors.runlog import InterleavedTail, OutputSink
from minibuild.fs.userdb import parse_id, read_db
from minibuild.errors import ConfigError, ExecutorError, MinibuildError, SourceSpan, UnsafePathError
from minibuild.limits import RunLimits, run_limits
from minibuild.record import record

KNOWN_EXECUTORS: tuple[str, ...] = ("emulate", "chroot")


@record
class RunRequest:
    """One command to run with ``root`` as ``/``: exec-form argv (the caller applies SHELL), exact env, cwd, user."""

    root: Path
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = "/"
    user: str = ""
    network: bool = False
    stdin: bytes = b""
    passthrough: bool = False  # the command uses the caller's stdout/stderr (nothing captured) and /dev/null as stdin
    interactive: bool = False  # with passthrough: the caller's stdin instead of /dev/null (docker run -i)
    source_date_epoch: int = 0
    span: SourceSpan | None = field(default=None, compare=False)
    limits: RunLimits = field(default_factory=run_limits, compare=False)  # time, output, memory, depth
    on_output: OutputSink | None = field(default=None, compare=False)  # (stream, bytes) as they are produced
    mounts: tuple[RunMount, ...] = ()  # RUN --mount, in order (a later one over an earlier)
    upper: Path | None = None  # chroot: ``root`` is the lower of an overlay mount whose changes go to this directory

    def env_dict(self) -> dict[str, str]:
        """The environment as a dict (a later duplicate key wins, as ENV does)."""
        return dict(self.env)


@record
class RunResult:
    """What a command did: its exit status, captured output (the tail of each stream, and of both interleaved as
    produced), and warnings about the sandbox (as data)."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    # (stream 1|2, bytes) chunks: the last output_tail bytes of both streams, interleaved as produced
    output: tuple[tuple[int, bytes], ...] = field(default=(), compare=False)
    warnings: tuple[str, ...] = ()
    hint: str = ""  # one line for the failure message, e.g. why the emulated shell could not run a command

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@runtime_checkable
class Executor(Protocol):
    """Runs one RUN command against a root filesystem and reports the result (never raises on non-zero exit)."""

    name: str

    def run(self, req: RunRequest) -> RunResult: ...


@record
class ResolvedUser:
    """A USER value resolved against the root's /etc/passwd and /etc/group."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    name: str | None = None
    home: str = "/"


# --------------------------------------------------------------------------- paths confined to a root


def resolve_in_root(root: Path, path: str, *, create_dirs: bool = False) -> Path:
    """Resolve ``path`` (absolute inside the image) to a host path under ``root`` with the reference chroot-like
    resolver (``minibuild.fs.rootfs.resolve_in_root``). With ``create_dirs`` every missing component is created
    as a 0755 directory (each prefix resolved again, so links met on the way stay confined); raises ExecutorError
    when a component exists and is not a directory, or on a symlink loop."""
    from minibuild.fs.rootfs import resolve_in_root as chroot_resolve

    root = Path(os.path.abspath(root))
    try:
        if not create_dirs:
            return chroot_resolve(root, path)
        parts = [p for p in path.split("/") if p not in ("", ".")]
        current = Path(os.path.realpath(root))
        for i in range(1, len(parts) + 1):
            current = chroot_resolve(root, "/".join(parts[:i]))
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current, 0o755)
                continue
            if not stat.S_ISDIR(st.st_mode):
                if i < len(parts):
                    raise ExecutorError(f"cannot create directory {path!r}: /{'/'.join(parts[:i])} is not a directory")
                raise ExecutorError(f"cannot use {path!r} as a directory: it exists and is not a directory")
        return current
    except UnsafePathError as err:
        raise ExecutorError(f"too many levels of symbolic links resolving {path!r} in the root") from err


def ensure_workdir(root: Path, workdir: str) -> Path:
    """Create WORKDIR inside ``root`` when missing (as Docker does) and return its host path."""
    if not workdir.startswith("/"):
        workdir = "/" + workdir
    return resolve_in_root(root, workdir, create_dirs=True)


def _user_error(spec: str) -> Callable[[str], ExecutorError]:
    return lambda message: ExecutorError(f"USER {spec}: {message}")


def _db(root: Path, path: str, width: int, spec: str) -> list[list[str]]:
    return [row for row in read_db(root, path, error=_user_error(spec)) if len(row) >= width]


def _id(text: str, what: str, spec: str) -> int | None:
    return parse_id(text, what=what, error=_user_error(spec))


def resolve_user(root: Path, user: str) -> ResolvedUser:
    """Resolve a Docker USER value (``name``, ``uid``, ``name:group``, ``uid:gid``, empty = root) the way runc does,
    reading the root's /etc/passwd and /etc/group (``userdb.read_db``). Unknown names raise ExecutorError; unknown
    numeric ids are used as given with gid 0; ids above 4294967294 raise ExecutorError."""
    spec = user.strip() or "0"
    user_part, _, group_part = spec.partition(":")
    passwd = _db(root, "/etc/passwd", 7, spec)
    groups_tab = _db(root, "/etc/group", 4, spec)

    entry: list[str] | None = None
    numeric = _id(user_part, "user id", spec)
    if numeric is not None:
        uid = numeric
        entry = next((r for r in passwd if r[2] == user_part), None)
        gid = (_id(entry[3], "group id", spec) or 0) if entry else 0
    else:
        entry = next((r for r in passwd if r[0] == user_part), None)
        if entry is None:
            if user_part == "root" and not passwd:
                entry = ["root", "x", "0", "0", "", "/root", "/bin/sh"]
            else:
                raise ExecutorError(f"unable to find user {user_part}: no matching entries in passwd file")
        ids = _id(entry[2], "user id", spec), _id(entry[3], "group id", spec)
        if ids[0] is None or ids[1] is None:
            raise ExecutorError(f"user {user_part} has a malformed /etc/passwd entry")
        uid, gid = ids[0], ids[1]
    name = entry[0] if entry else None
    home = entry[5] if entry else "/"  # runc: an entry's home as written (even empty), "/" without an entry

    if group_part:
        named = _id(group_part, "group id", spec)
        if named is not None:
            gid = named
        else:
            grp = next((g for g in groups_tab if g[0] == group_part), None)
            found = _id(grp[2], "group id", spec) if grp is not None else None
            if found is None:
                raise ExecutorError(f"unable to find group {group_part}: no matching entries in group file")
            gid = found
        return ResolvedUser(uid=uid, gid=gid, groups=(gid,), name=name, home=home)

    extra = []
    if name is not None:
        for g in groups_tab:
            members = [m for m in g[3].split(",") if m]
            member_gid = _id(g[2], "group id", spec) if name in members else None
            if member_gid is not None and member_gid != gid:
                extra.append(member_gid)
    return ResolvedUser(uid=uid, gid=gid, groups=(gid, *sorted(set(extra))), name=name, home=home)


# --------------------------------------------------------------------------- executors


class EmulateExecutor:
    """Runs the command in minibuild's emulated POSIX shell (``minibuild.sh``), confined to the root."""

    name = "emulate"

    def run(self, req: RunRequest) -> RunResult:
        from minibuild import sh  # lazy: the shell is only needed when a RUN step actually runs

        ident = resolve_user(req.root, req.user)
        ensure_workdir(req.root, req.workdir)
        etc = EtcFiles()  # /etc/hosts, resolv.conf, hostname seen in place of the root's, as Docker binds them
        stubs: list[mountpoints.Stub] = []
        tmpfs: list[str] = []
        both = InterleavedTail(req.limits.output_tail)
        try:
            points, stubs = mountpoints.prepare(req.root, req.mounts)
            from minibuild.sh.fs import Mount

            table: dict[str, Mount] = {}
            for m, host in points:
                source = m.source
                if source is None:  # a tmpfs: a private empty directory (its size is not enforced here)
                    import tempfile

                    source = Path(tempfile.mkdtemp(prefix="minibuild-tmpfs-"))
                    tmpfs.append(str(source))
                vpath = mountpoints.virtual(req.root, host)
                mountpoints.make_inside(table, vpath, m.file)  # a target inside an earlier mount: made in it
                table[vpath] = Mount(host=source, readonly=m.readonly)
            result = sh.run_argv(
                req.argv,
                binds=etc.paths,
                mounts=table,
                root=req.root,
                env=step_env(req.env_dict(), ident.home),
                cwd=req.workdir or "/",
                uid=ident.uid,
                gid=ident.gid,
                stdin=req.stdin,
                source_date_epoch=req.source_date_epoch,
                limits=req.limits,
                on_output=_tee(both, req.on_output),
            )
        except MinibuildError as exc:  # ShellError / UnsupportedCommandError: attach the Dockerfile line
            if req.span is not None:
                exc.with_span(req.span)
            raise
        finally:
            etc.close()
            mountpoints.remove(stubs)
            for d in tmpfs:
                import shutil

                shutil.rmtree(d, ignore_errors=True)
        warnings: tuple[str, ...] = ()
        if req.network:
            warnings = ("the emulated shell has no network; --network was ignored",)
        hint = result.missing[-1] if result.missing else ""
        return RunResult(exit_code=result.exit_code, stdout=result.stdout, stderr=result.stderr,
                         output=both.chunks(), warnings=warnings, hint=hint)


def _tee(tail: InterleavedTail, sink: OutputSink | None) -> OutputSink:
    """An output sink that keeps the interleaved tail and passes every chunk on to ``sink``."""

    def write(stream: int, data: bytes) -> None:
        tail.write(stream, data)
        if sink is not None:
            sink(stream, data)

    return write


@record
class FakeEffect:
    """What a FakeExecutor does for one command: files written into the root, paths removed, and the result."""

    writes: tuple[tuple[str, bytes], ...] = ()
    mkdirs: tuple[str, ...] = ()
    symlinks: tuple[tuple[str, str], ...] = ()
    removes: tuple[str, ...] = ()
    exit_code: int = 0
    stdout: bytes = b""
    stderr: bytes = b""


class FakeExecutor:
    """A test double shipped with the library (like httpx's MockTransport): records every request and applies a
    scripted FakeEffect to the root. A command is matched by its full argv joined with spaces, or by its last
    argument (the script of ``sh -c``); ``handler`` overrides matching entirely. Unmatched commands use
    ``default`` (exit 0, no changes), or raise ExecutorError when ``default`` is None."""

    name = "fake"

    def __init__(
        self,
        effects: Mapping[str, FakeEffect] | None = None,
        *,
        handler: Callable[[RunRequest], RunResult] | None = None,
        default: FakeEffect | None = FakeEffect(),
    ) -> None:
        self.effects: dict[str, FakeEffect] = dict(effects or {})
        self.handler = handler
        self.default = default
        self._requests: list[RunRequest] = []

    @property
    def requests(self) -> tuple[RunRequest, ...]:
        """Every request received so far, in order."""
        return tuple(self._requests)

    @property
    def commands(self) -> tuple[str, ...]:
        """The argv of every request so far, each joined with spaces."""
        return tuple(" ".join(r.argv) for r in self._requests)

    def run(self, req: RunRequest) -> RunResult:
        self._requests.append(req)
        if self.handler is not None:
            return self.handler(req)
        joined = " ".join(req.argv)
        effect = self.effects.get(joined)
        if effect is None and req.argv:
            effect = self.effects.get(req.argv[-1])
        if effect is None:
            effect = self.default
        if effect is None:
            raise ExecutorError(f"FakeExecutor has no scripted effect for {joined!r}", span=req.span)
        ensure_workdir(req.root, req.workdir)
        apply_effect(req.root, effect, workdir=req.workdir)
        both = InterleavedTail(req.limits.output_tail)
        emit = _tee(both, req.on_output)
        for stream, data in ((1, effect.stdout), (2, effect.stderr)):
            if data:
                emit(stream, data)
        return RunResult(exit_code=effect.exit_code, stdout=effect.stdout, stderr=effect.stderr,
                         output=both.chunks())


def apply_effect(root: Path, effect: FakeEffect, *, workdir: str = "/") -> None:
    """Apply a FakeEffect to ``root`` (relative paths are taken from ``workdir``), confined to the root."""

    def where(p: str) -> str:
        return p if p.startswith("/") else workdir.rstrip("/") + "/" + p

    for path in effect.mkdirs:
        resolve_in_root(root, where(path), create_dirs=True)
    for path, data in effect.writes:
        full = where(path)
        parent, _, base = full.rpartition("/")
        host = resolve_in_root(root, parent or "/", create_dirs=True) / base
        host.write_bytes(data)
    for path, target in effect.symlinks:
        full = where(path)
        parent, _, base = full.rpartition("/")
        host = resolve_in_root(root, parent or "/", create_dirs=True) / base
        if host.is_symlink() or host.exists():
            host.unlink()
        host.symlink_to(target)
    for path in effect.removes:
        full = where(path)
        parent, _, base = full.rpartition("/")
        host = resolve_in_root(root, parent or "/") / base
        if host.is_symlink() or host.is_file():
            host.unlink()
        elif host.is_dir():
            import shutil

            shutil.rmtree(host)
