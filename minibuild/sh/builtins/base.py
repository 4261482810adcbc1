"""What a builtin command sees (`Ctx`) and the registry the builtin modules fill."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from minibuild.errors import UnsupportedCommandError
from minibuild.sh.fs import RANDOM_DEVICES, RootFS, vnorm
from minibuild.sh.protocol import ShellLike
from minibuild.sh.streams import Stream, dec, enc

Builtin = Callable[["Ctx", list[str]], int]
REGISTRY: dict[str, Builtin] = {}


def builtin(*names: str) -> Callable[[Builtin], Builtin]:
    """Register a function as the builtin command(s) `names`."""

    def deco(fn: Builtin) -> Builtin:
        for n in names:
            REGISTRY[n] = fn
        return fn

    return deco


class UsageError(Exception):
    """A builtin was called with options it does not understand (exit status 1 with a message)."""


@dataclass(slots=True)
class Ctx:
    """The environment of one builtin invocation."""

    shell: ShellLike
    name: str
    env: Mapping[str, str]
    stdin: Stream
    stdout: Stream
    stderr: Stream
    label: str | None = None  # the name errors are prefixed with when not `name` (ash's builtins: "sh")

    @property
    def fs(self) -> RootFS:
        return self.shell.fs

    @property
    def cwd(self) -> str:
        return self.shell.cwd

    def out(self, data: str | bytes) -> None:
        self.stdout.write(enc(data) if isinstance(data, str) else data)

    def err(self, msg: str) -> None:
        self.stderr.write(enc(f"{self.label or self.name}: {msg}\n"))

    def oserr(self, e: OSError, path: str | None = None) -> None:
        shown = path if path is not None else (e.filename if isinstance(e.filename, str) else "")
        self.err(f"{shown}: {e.strerror or e}" if shown else str(e.strerror or e))

    def path(self, p: str, *, follow: bool = True) -> Path:
        return self.fs.path(p, self.cwd, follow=follow)

    def vpath(self, p: str, *, follow: bool = True) -> str:
        return self.fs.resolve(p, self.cwd, follow=follow)

    def abspath(self, p: str) -> str:
        return vnorm(p, self.cwd)

    def read_input(self, p: str, limit: int | None = None) -> bytes:
        """Content of an operand file, at most `limit` bytes when the command needs only a prefix.

        `-`, /dev/stdin and /dev/null are emulated, and /dev/zero gives `limit` zero bytes (an unbounded read
        of it is refused: it would never end); /dev/random and /dev/urandom raise UnsupportedCommandError (a
        build's bytes must be reproducible).  Any other device node, FIFO or socket in the root is never
        opened (EPERM, see RootFS.open_read).
        """
        if p == "-" or p in ("/dev/stdin", "/dev/fd/0"):
            return self.stdin.read()
        special = self.abspath(p)
        if special == "/dev/null":
            return b""
        if special == "/dev/zero":
            if limit is None:
                raise OSError(errno.EFBIG, "endless input (only a bounded read such as head -c N is emulated)", p)
            return bytes(max(limit, 0))
        if special in RANDOM_DEVICES:
            raise UnsupportedCommandError(
                f"{self.name}: reading {special} is not available in the emulated shell (its bytes would make the "
                f"build irreproducible); use --executor chroot", command=self.name)
        host = self.path(p)
        try:
            return self.fs.read_bytes(host, limit)
        except OSError as e:
            raise OSError(e.errno, e.strerror, p) from None

    def ask(self, question: str) -> bool:
        """An -i prompt on stderr ("rm: remove 'f'? "), answered yes by a stdin line starting with y or Y."""
        self.stderr.write(enc(f"{self.name}: {question}? "))
        return self.stdin.readline()[:1] in (b"y", b"Y")

    def text(self, data: bytes) -> str:
        return dec(data)

    def run(self, argv: list[str], stdin: bytes = b"") -> int:
        """Run another command (xargs, find -exec) with this builtin's stdout and stderr."""
        return self.shell.run_utility(argv, stdin=stdin, stdout=self.stdout, stderr=self.stderr)

    @property
    def now(self) -> int:
        return self.shell.source_date_epoch


def parse_flags(args: list[str], flags: str, with_value: str = "",
                repeat: str = "") -> tuple[dict[str, str | bool], list[str]]:
    """Parse clustered short options (`-rf`, `-n 3`, `-n3`) up to the first operand or `--`.

    A later value of an option replaces an earlier one, except for the options in `repeat` (grep -e, sort -k):
    their values accumulate, joined by NUL (which no argument can contain; split with `values`).
    """
    opts: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        j = 1
        while j < len(a):
            c = a[j]
            if c in with_value:
                val = a[j + 1:]
                if not val:
                    i += 1
                    if i >= len(args):
                        raise UsageError(f"option requires an argument -- '{c}'")
                    val = args[i]
                prev = opts.get(c)
                opts[c] = f"{prev}\0{val}" if c in repeat and isinstance(prev, str) else val
                break
            if c not in flags:
                raise UsageError(f"unrecognized option: -{c}")
            opts[c] = True
            j += 1
        i += 1
    return opts, args[i:]


def values(opts: dict[str, str | bool], flag: str) -> list[str]:
    """Every value given to a `repeat` option of parse_flags, in command-line order."""
    v = opts.get(flag)
    return v.split("\0") if isinstance(v, str) else []
