"""The emulated shell: a POSIX sh subset interpreted in Python over a root directory it never leaves.

    run_script(script, root=..., env=...) -> ShellResult     a script, as `sh -c SCRIPT` would run it
    run_argv(argv, root=..., env=...) -> ShellResult         exec form: ["/bin/sh", "-c", ...], a builtin, a script
    BUILTINS                                                 the command names it provides
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from minibuild.record import record
from minibuild.sh import builtins as _builtins
from minibuild.sh import shellbuiltins as _shellbuiltins
from minibuild.sh.fs import RootFS
from minibuild.sh.interp import SHELLS, Shell
from minibuild.sh.streams import Buffer, Input

BUILTINS: frozenset[str] = frozenset(_builtins.REGISTRY) | frozenset(_shellbuiltins.SHELL_BUILTINS) | frozenset(SHELLS)


@record
class ShellResult:
    """What a script did: its exit status and the bytes it wrote to stdout and stderr."""

    exit_code: int
    stdout: bytes
    stderr: bytes


def _shell(root: Path, env: Mapping[str, str], cwd: str, uid: int, gid: int, args: Sequence[str], stdin: bytes,
           source_date_epoch: int, arg0: str = "sh", binds: Mapping[str, Path] | None = None,
           ) -> tuple[Shell, Buffer, Buffer]:
    fs = RootFS(root=Path(root), uid=uid, gid=gid, binds=dict(binds or {}))
    sh = Shell(fs, dict(env), cwd=cwd, args=args, arg0=arg0, source_date_epoch=source_date_epoch)
    out, err = Buffer(), Buffer()
    sh.fds = {0: Input(stdin), 1: out, 2: err}
    return sh, out, err


def run_script(script: str, *, root: Path, env: Mapping[str, str], cwd: str = "/", uid: int = 0, gid: int = 0,
               args: Sequence[str] = (), stdin: bytes = b"", source_date_epoch: int = 0) -> ShellResult:
    """Run `script` as `sh -c SCRIPT sh ARGS...` with `root` as `/`; raises UnsupportedCommandError for a
    command the emulator does not provide (and ShellError when a script runs away)."""
    sh, out, err = _shell(root, env, cwd, uid, gid, args, stdin, source_date_epoch)
    sh.start_shell()
    code = sh.run_script(script)
    return ShellResult(exit_code=code, stdout=out.getvalue(), stderr=err.getvalue())


def run_argv(argv: Sequence[str], *, root: Path, env: Mapping[str, str], cwd: str = "/", uid: int = 0, gid: int = 0,
             stdin: bytes = b"", source_date_epoch: int = 0, binds: Mapping[str, Path] | None = None) -> ShellResult:
    """Run an exec-form command: `["/bin/sh", "-c", "..."]`, a builtin, or a `#!/bin/sh` script on PATH;
    ``binds`` maps paths of the root to host files seen in their place (a RUN step's /etc/hosts)."""
    if not argv:
        return ShellResult(exit_code=0, stdout=b"", stderr=b"")
    sh, out, err = _shell(root, env, cwd, uid, gid, (), stdin, source_date_epoch, binds=binds)
    from minibuild.sh.interp import ExitShell

    try:
        code = sh.run_utility(list(argv), env=dict(env))
    except ExitShell as e:
        code = e.code
    return ShellResult(exit_code=code, stdout=out.getvalue(), stderr=err.getvalue())


__all__ = ["BUILTINS", "ShellResult", "run_argv", "run_script"]
