"""The sed builtin: addresses (line, $, /re/, ranges, !), s///, p, d, q, a, i, c, y, =, n, N, h/g/x, blocks, -n -e -i -E."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from minibuild.sh.builtins.base import Ctx, builtin
from minibuild.sh.builtins.grep import compile_regex
from minibuild.sh.streams import dec, enc


class SedError(Exception):
    pass


@dataclass
class Cmd:
    a1: object = None
    a2: object = None
    neg: bool = False
    name: str = ""
    arg: object = None
    block: list["Cmd"] = field(default_factory=list)
    active: bool = False
    until: int = 0  # the last line of an `addr,+N` range that is running


class _Parser:
    def __init__(self, text: str, extended: bool) -> None:
        self.s = text
        self.i = 0
        self.ext = extended

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def skip_ws(self) -> None:
        while self.peek() in (" ", "\t", "\n", ";"):
            self.i += 1

    def delimited(self, delim: str) -> str:
        out: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "\\" and self.i + 1 < len(self.s):
                n = self.s[self.i + 1]
                if n == delim:
                    out.append(delim if delim not in ".*[]^$\\+?(){}|" else "\\" + delim)
                elif n == "n":
                    out.append("\\n")
                else:
                    out.append("\\" + n)
                self.i += 2
                continue
            if c == delim:
                self.i += 1
                return "".join(out)
            if c == "\n":
                break
            out.append(c)
            self.i += 1
        raise SedError(f"unterminated `{delim}' in sed script")

    def address(self) -> object:
        c = self.peek()
        if c.isdigit():
            j = self.i
            while self.peek().isdigit():
                self.i += 1
            return int(self.s[j:self.i])
        if c == "$":
            self.i += 1
            return "$"
        if c in ("/", "\\"):
            if c == "\\":
                self.i += 1
            delim = self.s[self.i]
            self.i += 1
            pat = self.delimited(delim)
            icase = False
            if self.peek() == "I":
                icase = True
                self.i += 1
            return ("re", pat, icase)
        return None

    def text_arg(self) -> str:
        # a\ text, a text (GNU one-liner)
        if self.s.startswith("\\\n", self.i):
            self.i += 2
        elif self.peek() == "\\":
            self.i += 1
        while self.peek() in (" ", "\t"):
            self.i += 1
        out: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "\\" and self.i + 1 < len(self.s):
                out.append(self.s[self.i + 1])
                self.i += 2
                continue
            if c == "\n":
                break
            out.append(c)
            self.i += 1
        return "".join(out)

    def parse(self, in_block: bool = False) -> list[Cmd]:
        cmds: list[Cmd] = []
        while True:
            self.skip_ws()
            if self.i >= len(self.s):
                if in_block:
                    raise SedError("unmatched `{'")
                return cmds
            if self.peek() == "}":
                if not in_block:
                    raise SedError("unexpected `}'")
                self.i += 1
                return cmds
            if self.peek() == "#":
                while self.peek() not in ("\n", ""):
                    self.i += 1
                continue
            cmd = Cmd()
            cmd.a1 = self.address()
            if cmd.a1 is not None and self.peek() == ",":
                self.i += 1
                if self.peek() == "+" and self.s[self.i + 1:self.i + 2].isdigit():  # addr,+N: N more lines
                    self.i += 1
                    n = self.address()
                    cmd.a2 = ("+", n)
                else:
                    cmd.a2 = self.address()
                if cmd.a2 is None:
                    raise SedError("no address after comma")
            while self.peek() in (" ", "\t"):
                self.i += 1
            if self.peek() == "!":
                cmd.neg = True
                self.i += 1
                while self.peek() in (" ", "\t"):
                    self.i += 1
            name = self.peek()
            self.i += 1
            cmd.name = name
            if name == "{":
                cmd.block = self.parse(in_block=True)
            elif name == "s":
                delim = self.peek()
                self.i += 1
                pat = self.delimited(delim)
                rep = self.delimited(delim)
                flags = ""
                while self.peek() and self.peek() not in ";\n}":
                    if self.peek() == "w":
                        raise SedError("s///w is not supported")
                    flags += self.peek()
                    self.i += 1
                cmd.arg = (pat, rep, flags.strip())
            elif name == "y":
                delim = self.peek()
                self.i += 1
                a = self.delimited(delim)
                b = self.delimited(delim)
                cmd.arg = (a.replace("\\n", "\n"), b.replace("\\n", "\n"))
            elif name in ("a", "i", "c"):
                cmd.arg = self.text_arg()
            elif name in ("p", "d", "D", "q", "Q", "=", "n", "N", "h", "H", "g", "G", "x", "P", "l"):
                if name in ("q", "Q"):
                    while self.peek() in (" ",):
                        self.i += 1
                    j = self.i
                    while self.peek().isdigit():
                        self.i += 1
                    cmd.arg = int(self.s[j:self.i]) if self.i > j else 0
            elif name in (":", "b", "t"):
                j = self.i
                while self.peek() not in (";", "\n", ""):
                    self.i += 1
                cmd.arg = self.s[j:self.i].strip()
            else:
                raise SedError(f"unsupported command {name}")
            cmds.append(cmd)


def _replacement(rep: str) -> Callable[[re.Match[str]], str]:
    def fn(m: re.Match[str]) -> str:
        out: list[str] = []
        i = 0
        while i < len(rep):
            c = rep[i]
            if c == "\\" and i + 1 < len(rep):
                n = rep[i + 1]
                if n.isdigit():
                    out.append(m.group(int(n)) or "")
                elif n == "n":
                    out.append("\n")
                elif n == "t":
                    out.append("\t")
                else:
                    out.append(n)
                i += 2
                continue
            if c == "&":
                out.append(m.group(0))
            else:
                out.append(c)
            i += 1
        return "".join(out)
    return fn


class Sed:
    def __init__(self, cmds: list[Cmd], quiet: bool, extended: bool) -> None:
        self.cmds = cmds
        self.quiet = quiet
        self.ext = extended
        self.cache: dict[tuple[str, bool], re.Pattern[str]] = {}
        self.last_re: re.Pattern[str] | None = None

    def rx(self, pat: str, icase: bool = False) -> re.Pattern[str]:
        if pat == "":
            if self.last_re is None:
                raise SedError("no previous regular expression")
            return self.last_re
        key = (pat, icase)
        if key not in self.cache:
            try:
                self.cache[key] = compile_regex(pat, extended=self.ext, icase=icase)
            except ValueError as e:
                raise SedError(str(e)) from None
        self.last_re = self.cache[key]
        return self.cache[key]

    def match_addr(self, a: object, ps: str, lineno: int, last: bool) -> bool:
        if isinstance(a, int):
            return lineno == a
        if a == "$":
            return last
        if isinstance(a, tuple):
            return self.rx(a[1], a[2]).search(ps) is not None
        return False

    def selected(self, c: Cmd, ps: str, lineno: int, last: bool) -> bool:
        if c.a1 is None:
            hit = True
        elif c.a2 is None:
            hit = self.match_addr(c.a1, ps, lineno, last)
        elif c.active:
            hit = True
            if isinstance(c.a2, tuple) and c.a2[0] == "+":
                c.active = lineno < c.until
            elif isinstance(c.a2, int):
                if lineno >= c.a2:
                    c.active = False
            elif self.match_addr(c.a2, ps, lineno, last):
                c.active = False
        elif self.match_addr(c.a1, ps, lineno, last):
            hit = True
            if isinstance(c.a2, tuple) and c.a2[0] == "+":
                c.until = lineno + int(c.a2[1])
                c.active = c.until > lineno
            elif isinstance(c.a2, int):
                c.active = c.a2 > lineno
            else:
                c.active = not (c.a2 == "$" and last)
        else:
            hit = False
        return hit != c.neg

    def run(self, text: str) -> str:
        lines = text.split("\n")
        trailing = text.endswith("\n")
        if trailing:
            lines.pop()
        if text == "":
            lines = []
        out: list[str] = []
        self.hold = ""
        self.lines = lines
        self.idx = 0
        quit_now = False
        pending: str | None = None  # what D left: the next cycle starts with it instead of a new line
        while (pending is not None or self.idx < len(lines)) and not quit_now:
            if pending is not None:
                ps, pending = pending, None
            else:
                ps = lines[self.idx]
                self.idx += 1
            self.append: list[str] = []
            ps, action = self.exec_block(self.cmds, ps, out)
            if action == "restart":
                pending = ps
            if action in ("print", "quit") and not self.quiet:
                out.append(ps + "\n")
            out.extend(self.append)
            if action in ("quit", "Quit"):
                quit_now = True
        result = "".join(out)
        if not trailing and result.endswith("\n") and text:
            result = result[:-1]
        return result

    def exec_block(self, cmds: list[Cmd], ps: str, out: list[str]) -> tuple[str, str]:
        for c in cmds:
            lineno = self.idx
            last = self.idx >= len(self.lines)
            if not self.selected(c, ps, lineno, last):
                continue
            n = c.name
            if n == "{":
                ps, action = self.exec_block(c.block, ps, out)
                if action != "print":
                    return ps, action
            elif n == "s":
                pat, rep, flags = cast("tuple[str, str, str]", c.arg)  # the parser stores s/// as this
                rx = self.rx(pat, "I" in flags or "i" in flags)
                count = 0 if "g" in flags else 1
                nth = int(re.sub(r"\D", "", flags) or "0")
                if nth:
                    hits = [0]

                    def pick(m: re.Match[str], _f: Callable[[re.Match[str]], str] = _replacement(rep)) -> str:
                        hits[0] += 1
                        return _f(m) if hits[0] == nth or ("g" in flags and hits[0] >= nth) else m.group(0)
                    new, k = rx.subn(pick, ps)
                    made = hits[0] >= nth
                else:
                    new, k = rx.subn(_replacement(rep), ps, count=count)
                    made = k > 0
                ps = new
                self.replaced = made or getattr(self, "replaced", False)
                if made and "p" in flags:
                    out.append(ps + "\n")
            elif n == "p":
                out.append(ps + "\n")
            elif n == "P":
                out.append(ps.split("\n")[0] + "\n")
            elif n == "d":
                return ps, "delete"
            elif n == "D":  # delete through the first newline and start the next cycle with the rest
                return (ps.split("\n", 1)[1], "restart") if "\n" in ps else (ps, "delete")
            elif n in ("q", "Q"):
                return ps, "quit" if n == "q" else "Quit"
            elif n == "=":
                out.append(f"{lineno}\n")
            elif n == "a":
                self.append.append(str(c.arg) + "\n")
            elif n == "i":
                out.append(str(c.arg) + "\n")
            elif n == "c":
                if c.a2 is None or not c.active:
                    out.append(str(c.arg) + "\n")
                return ps, "delete"
            elif n == "y":
                a, b = cast("tuple[str, str]", c.arg)  # the parser stores y/// as this
                ps = ps.translate({ord(x): y for x, y in zip(a, b)})
            elif n == "n":
                if not self.quiet:
                    out.append(ps + "\n")
                if self.idx >= len(self.lines):
                    return ps, "delete"
                ps = self.lines[self.idx]
                self.idx += 1
            elif n == "N":
                if self.idx >= len(self.lines):
                    return ps, "print"
                ps = ps + "\n" + self.lines[self.idx]
                self.idx += 1
            elif n == "h":
                self.hold = ps
            elif n == "H":
                self.hold = self.hold + "\n" + ps
            elif n == "g":
                ps = self.hold
            elif n == "G":
                ps = ps + "\n" + self.hold
            elif n == "x":
                ps, self.hold = self.hold, ps
        return ps, "print"


@builtin("sed")
def sed(ctx: Ctx, args: list[str]) -> int:
    scripts: list[str] = []
    quiet = extended = False
    inplace: str | None = None
    files: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            files.extend(args[i + 1:])
            break
        if a in ("-e", "--expression"):
            scripts.append(args[i + 1])
            i += 2
            continue
        if a.startswith("-i") or a.startswith("--in-place"):
            inplace = a[2:] if a.startswith("-i") else a.partition("=")[2]
        elif a.startswith("-") and len(a) > 1 and not a.startswith("-i"):
            for c in a[1:]:
                if c == "n":
                    quiet = True
                elif c in "Er":
                    extended = True
                elif c == "i":
                    inplace = ""
                elif c == "e":
                    pass
                elif c in "su":
                    pass
                else:
                    ctx.err(f"unrecognized option -{c}")
                    return 1
            if a.endswith("e") and i + 1 < len(args):
                scripts.append(args[i + 1])
                i += 2
                continue
        else:
            files.append(a)
        i += 1
    if not scripts:
        if not files:
            ctx.err("usage: sed [-nEi] [-e] SCRIPT [FILE]...")
            return 1
        scripts.append(files.pop(0))
    try:
        cmds = _Parser("\n".join(scripts), extended).parse()
    except SedError as e:
        ctx.err(str(e))
        return 1
    if inplace is not None:
        code = 0
        for f in files:
            try:
                host = ctx.path(f)
                try:
                    data = dec(ctx.read_input(f))
                except IsADirectoryError:
                    data = ""
                result = Sed(_Parser("\n".join(scripts), extended).parse(), quiet, extended).run(data)
                if inplace:
                    with ctx.fs.open_write(ctx.path(f + inplace)) as b:
                        b.write(enc(data))
                mode = ctx.fs.stat(host).st_mode & 0o7777
                # like busybox/GNU sed -i: the result replaces the named path (a symlink becomes a file)
                dest = ctx.path(f, follow=False)
                if os.path.islink(dest):
                    ctx.fs.check_write(dest, remove=True)
                    os.unlink(dest)
                    host = dest
                with ctx.fs.open_write(host) as fh:
                    fh.write(enc(result))
                ctx.fs.chmod(host, mode)
            except OSError as e:
                ctx.oserr(e, f)
                code = 1
            except SedError as e:
                ctx.err(str(e))
                return 1
        return code
    chunks: list[str] = []
    code = 0
    for f in files or ["-"]:
        try:
            chunks.append(dec(ctx.read_input(f)))
        except IsADirectoryError:
            continue  # busybox sed: a directory silently has no lines
        except OSError as e:
            ctx.oserr(e, f)
            code = 1
    text = "".join(c if c.endswith("\n") or k == len(chunks) - 1 else c + "\n" for k, c in enumerate(chunks))
    try:
        ctx.out(Sed(cmds, quiet, extended).run(text))
    except SedError as e:
        ctx.err(str(e))
        return 1
    return code
