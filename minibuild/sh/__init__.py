"""The emulated shell: a POSIX sh subset interpreted in Python over a root directory it never leaves.

    run_script(script, root=..., env=...) -> ShellResult     a script, as `sh -c SCRIPT` would run it
    run_argv(argv, root=..., env=...) -> ShellResult         exec form: ["/bin/sh", "-c", ...], a builtin, a script
    BUILTINS                                                 the command names it provides
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from minibuild.errors import ShellError
from minibuild.limits import RunLimits
from minibuild.record import record
from minibuild.sh import builtins as _builtins
from minibuild.sh import shellbuiltins as _shellbuiltins
from minibuild.sh.control import ExitShell
from minibuild.sh.fs import Mount, RootFS
from minibuild.sh.interp import ExecHook, Shell
from minibuild.sh.names import SHELLS
from minibuild.sh.streams import Input, Stream, Tail

BUILTINS: frozenset[str] = frozenset(_builtins.REGISTRY) | frozenset(_shellbuiltins.SHELL_BUILTINS) | frozenset(SHELLS)


@record
class ShellResult:
    """What a script did: its exit status and the bytes it wrote to stdout and stderr."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    missing: tuple[str, ...] = ()  # one line per command it could not run (status 127), saying why


_FRAMES_PER_LEVEL = 40  # Python frames one shell nesting level may use (measured: 12 to 25)


def _shell(root: Path, env: Mapping[str, str], cwd: str, uid: int, gid: int, args: Sequence[str], stdin: bytes,
           source_date_epoch: int, limits: RunLimits | None, arg0: str = "sh",
           binds: Mapping[str, Path] | None = None,
           on_output: Callable[[int, bytes], None] | None = None, stdout: Stream | None = None,
           stderr: Stream | None = None, mounts: Mapping[str, Mount] | None = None) -> tuple[Shell, Tail, Tail]:
    lim = limits if limits is not None else RunLimits()
    fs = RootFS(root=Path(root), uid=uid, gid=gid, max_bytes=lim.max_bytes, binds=dict(binds or {}),
                mounts=dict(mounts or {}))
    sh = Shell(fs, dict(env), cwd=cwd, args=args, arg0=arg0, source_date_epoch=source_date_epoch, limits=lim,
               deadline=lim.deadline())
    out, err = Tail(lim.output_tail, 1, on_output), Tail(lim.output_tail, 2, on_output)
    sh.fds = {0: Input(stdin), 1: stdout or out, 2: stderr or err}
    return sh, out, err


@contextmanager
def _guarded(sh: Shell) -> Iterator[None]:
    """Run the shell within its limits: deep Python recursion becomes the depth limit's ShellError, and (in the
    main thread) an interval timer interrupts what the shell's own deadline checks cannot reach, such as one
    catastrophically backtracking regex in grep or sed."""
    lim = sh.limits
    old_limit = sys.getrecursionlimit()
    need = lim.max_depth * _FRAMES_PER_LEVEL + 1000
    if need > old_limit:
        sys.setrecursionlimit(need)
    armed = False
    old_handler: object = None
    if sh.deadline is not None and threading.current_thread() is threading.main_thread() \
            and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) \
            and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None):
        def expired(_sig: int, _frame: FrameType | None) -> None:
            raise ShellError("sh: " + lim.timeout_message())

        old_handler = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, max(sh.deadline - time.monotonic(), 0.001) + 0.25)
        armed = True
    try:
        yield
    except RecursionError:
        raise ShellError("sh: " + lim.depth_message()) from None
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)  # type: ignore[arg-type]
        if need > old_limit:
            sys.setrecursionlimit(old_limit)


def run_script(script: str, *, root: Path, env: Mapping[str, str], cwd: str = "/", uid: int = 0, gid: int = 0,
               args: Sequence[str] = (), stdin: bytes = b"", source_date_epoch: int = 0,
               limits: RunLimits | None = None, on_output: Callable[[int, bytes], None] | None = None) -> ShellResult:
    """Run `script` as `sh -c SCRIPT sh ARGS...` with `root` as `/`. A command it cannot run exits 127 as in a
    real shell (ShellResult.missing says why); ShellError when the script passes one of `limits`,
    UnsupportedCommandError for input the emulator will not fake (/dev/random). ``on_output`` gets every write to
    the script's stdout (1) and stderr (2) as it happens."""
    sh, out, err = _shell(root, env, cwd, uid, gid, args, stdin, source_date_epoch, limits, on_output=on_output)
    sh.start_shell()
    with _guarded(sh):
        code = sh.run_script(script)
    return ShellResult(exit_code=code, stdout=out.getvalue(), stderr=err.getvalue(), missing=tuple(sh.missing))


def run_argv(argv: Sequence[str], *, root: Path, env: Mapping[str, str], cwd: str = "/", uid: int = 0, gid: int = 0,
             stdin: bytes = b"", source_date_epoch: int = 0, limits: RunLimits | None = None,
             binds: Mapping[str, Path] | None = None,
             on_output: Callable[[int, bytes], None] | None = None, stdout: Stream | None = None,
             stderr: Stream | None = None, exec_hook: ExecHook | None = None,
             mounts: Mapping[str, Mount] | None = None) -> ShellResult:
    """Run an exec-form command: `["/bin/sh", "-c", "..."]`, a builtin, or a `#!/bin/sh` script on PATH;
    ``binds`` maps paths of the root to host files seen in their place (a RUN step's /etc/hosts); ``on_output``
    gets every write to its stdout (1) and stderr (2) as it happens, in that order. Output goes to
    ``stdout``/``stderr`` instead when given (then ShellResult holds none of it); ``exec_hook`` may take over the
    run of any script of the root (see interp.ExecHook); ``mounts`` maps paths of the root to host directories or
    files mounted there (RUN --mount)."""
    if not argv:
        return ShellResult(exit_code=0, stdout=b"", stderr=b"")
    sh, out, err = _shell(root, env, cwd, uid, gid, (), stdin, source_date_epoch, limits, binds=binds,
                          on_output=on_output, stdout=stdout, stderr=stderr, mounts=mounts)
    sh.exec_hook = exec_hook
    with _guarded(sh):
        try:
            code = sh.run_utility(list(argv), env=dict(env))
        except ExitShell as e:
            code = e.code
    return ShellResult(exit_code=code, stdout=out.getvalue(), stderr=err.getvalue(), missing=tuple(sh.missing))


__all__ = ["BUILTINS", "ShellResult", "run_argv", "run_script"]
