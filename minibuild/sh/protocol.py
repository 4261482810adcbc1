"""What builtins and word expansion may use of the interpreter: a typed protocol its Shell satisfies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from minibuild.limits import RunLimits
from minibuild.sh.ast import Node
from minibuild.sh.fs import RootFS
from minibuild.sh.streams import Stream


class ShellLike(Protocol):
    """One shell execution environment, as `minibuild.sh.interp.Shell` provides it."""

    fs: RootFS
    limits: RunLimits
    cwd: str
    vars: dict[str, str]
    exported: set[str]
    readonly: set[str]
    functions: dict[str, Node]
    positional: list[str]
    options: dict[str, bool]
    locals: list[dict[str, str | None]]
    loop_depth: int
    status: int
    fds: dict[int, Stream]
    lineno: int
    traps: dict[str, str]
    missing: list[str]
    source_date_epoch: int

    def get(self, name: str) -> str | None: ...

    def set_var(self, name: str, value: str, *, who: str = "") -> None: ...

    def ifs(self) -> str: ...

    def err(self, msg: str) -> None: ...

    def user_home(self, user: str) -> str | None: ...

    def check_time(self) -> None: ...

    def lexists(self, p: str) -> bool: ...

    def execute(self, node: Node) -> None: ...

    def command_subst(self, body: Node) -> str: ...

    def run_utility(self, argv: list[str], *, env: Mapping[str, str] | None = None, stdin: bytes | None = None,
                    stdout: Stream | None = None, stderr: Stream | None = None, direct: bool = False) -> int: ...
