"""POSIX regular expressions (basic and extended) translated to Python `re`, and the grep builtin."""

from __future__ import annotations

import os
import re
import stat
from collections import deque

from minibuild.sh.builtins.base import Ctx, builtin, parse_flags, values
from minibuild.sh.pattern import CLASSES
from minibuild.sh.streams import dec, enc


def _bracket(p: str, i: int) -> tuple[str, int]:
    """Translate a bracket expression starting at p[i] == '['; returns (python class, next index)."""
    j = i + 1
    out = ["["]
    if j < len(p) and p[j] == "^":
        out.append("^")
        j += 1
    first = True
    while j < len(p):
        c = p[j]
        if c == "]" and not first:
            out.append("]")
            return "".join(out), j + 1
        first = False
        if c == "[" and j + 1 < len(p) and p[j + 1] == ":":
            end = p.find(":]", j + 2)
            if end > 0 and p[j + 2 : end] in CLASSES:
                out.append(CLASSES[p[j + 2 : end]])
                j = end + 2
                continue
        if c in "\\[]^":
            out.append("\\" + c)
        else:
            out.append(c)
        j += 1
    return re.escape(p[i:]), len(p)


def bre_to_re(p: str) -> str:
    """Basic regular expression (with GNU \\+ \\? \\| extensions) to Python syntax."""
    out: list[str] = []
    i = 0
    while i < len(p):
        c = p[i]
        if c == "\\" and i + 1 < len(p):
            out.append(_backslash(p[i + 1], bre=True))
            i += 2
            continue
        if c == "[":
            s, i = _bracket(p, i)
            out.append(s)
            continue
        if c == "*" and (not out or out[-1] in ("^", "(", "|")):
            out.append(r"\*")
        elif c in "(){}|+?":
            out.append("\\" + c)
        elif c == "^" and out and out[-1] not in ("(", "|"):
            out.append(r"\^")
        elif c == "$" and i + 1 < len(p) and not p.startswith("\\)", i + 1) and not p.startswith("\\|", i + 1):
            out.append(r"\$")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _backslash(n: str, *, bre: bool) -> str:
    """Python syntax for the escape ``\\n`` (in a BRE, ``\\(`` ``\\{`` ``\\|`` ``\\+`` ``\\?`` are operators)."""
    if bre and n in "(){}|+?":
        return n
    if n in "<>":
        return r"\b"
    if n.isdigit() or n in "wWsSbB":
        return "\\" + n
    if n == "n":
        return "\n"
    if n == "t":
        return "\t"
    return re.escape(n)


def ere_to_re(p: str) -> str:
    """Extended regular expression to Python syntax."""
    out: list[str] = []
    i = 0
    while i < len(p):
        c = p[i]
        if c == "\\" and i + 1 < len(p):
            out.append(_backslash(p[i + 1], bre=False))
            i += 2
            continue
        if c == "[":
            s, i = _bracket(p, i)
            out.append(s)
            continue
        if c == "{" and not re.match(r"\{\d*(,\d*)?\}", p[i:]):
            out.append(r"\{")
        elif c == "*" and (not out or out[-1] in ("(", "|")):
            out.append(r"\*")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def compile_regex(p: str, *, extended: bool, icase: bool = False) -> re.Pattern[str]:
    flags = re.IGNORECASE if icase else 0
    try:
        return re.compile(ere_to_re(p) if extended else bre_to_re(p), flags)
    except re.error as e:
        raise ValueError(f"bad regex '{p}': {e}") from None


@builtin("grep", "egrep", "fgrep")
def grep(ctx: Ctx, args: list[str]) -> int:
    opts, rest = parse_flags(args, "qvicnlLrRHhEFwxos", "efmABC", repeat="ef")
    if ctx.name == "egrep":
        opts["E"] = True
    if ctx.name == "fgrep":
        opts["F"] = True
    try:
        max_count, after, before, around = (_count(opts, c) for c in "mABC")
    except ValueError as e:
        ctx.err(str(e))
        return 2
    after = around if after is None else after
    before = around if before is None else before
    if opts.get("c") or opts.get("q") or opts.get("l") or opts.get("L"):  # busybox drops -n and context here
        opts["n"] = False
        after = before = None
    patterns = values(opts, "e")
    invert = bool(opts.get("v"))
    if "f" in opts:
        for pf in values(opts, "f"):
            try:
                lines = dec(ctx.read_input(pf)).split("\n")
            except OSError as e:
                ctx.oserr(e, pf)
                return 2
            if lines and lines[-1] == "":
                lines.pop()
            patterns[:0] = reversed(lines)  # busybox puts -f patterns before the -e ones, each file's reversed
        if not patterns:  # -f EMPTY: nothing matches
            patterns, invert = [""], not invert
    if not patterns:
        if not rest:
            ctx.err("usage: grep [-qvicnlrEF] PATTERN [FILE]...")
            return 2
        patterns, rest = [rest[0]], rest[1:]
    pats = [p for pat in patterns for p in pat.split("\n")]
    try:
        if opts.get("F"):
            rxs = [re.compile(re.escape(p), re.IGNORECASE if opts.get("i") else 0) for p in pats]
        else:
            rxs = [compile_regex(p, extended=bool(opts.get("E")), icase=bool(opts.get("i"))) for p in pats]
    except ValueError as e:
        ctx.err(str(e))
        return 2
    if opts.get("w"):
        rxs = [re.compile(r"(?<!\w)(?:" + r.pattern + r")(?!\w)", r.flags) for r in rxs]
    if opts.get("x"):
        rxs = [re.compile(r"(?:" + r.pattern + r")\Z", r.flags) for r in rxs]
    recursive = bool(opts.get("r") or opts.get("R"))
    files: list[str] = []
    errors = False
    if recursive:
        for f in rest or ["."]:
            files.extend(_walk(ctx, f))
    else:
        files = rest or ["-"]
    show_name = (len(files) > 1 or recursive) and not opts.get("h") or bool(opts.get("H"))
    found_any = False
    listed = False
    context = bool(after or before)
    last_printed = 0  # busybox keeps these across files: a group in the next file may get a "--" too
    printed_any = False
    for f in files:
        try:
            data = ctx.read_input(f)
        except IsADirectoryError:
            data = b""  # busybox grep: a directory reads as an empty file (-c counts 0, -L names it)
        except OSError as e:
            if not opts.get("s"):
                ctx.oserr(e, f)
            errors = True
            continue
        name = "(standard input)" if f == "-" else f
        count = 0
        text = dec(data)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        held: deque[tuple[int, str]] = deque(maxlen=before or 1)
        after_left = 0

        def emit(no: int, line: str, mark: str) -> None:
            nonlocal last_printed, printed_any
            if context and printed_any and last_printed != no - 1:
                ctx.out("--\n")
            printed_any, last_printed = True, no
            ctx.out((name + mark if show_name else "") + (f"{no}{mark}" if opts.get("n") else "") + line + "\n")

        for no, line in enumerate(lines, 1):
            hit_rx = next((r for r in rxs if (r.match(line) if opts.get("x") else r.search(line))), None)
            if (hit_rx is not None) != invert:
                count += 1
                found_any = True
                if opts.get("q"):
                    return 0
                if opts.get("l") or opts.get("L"):
                    break
                if max_count is not None and count > max_count:  # the match after the last wanted one
                    break
                if not opts.get("c"):
                    while held:
                        emit(*held.popleft(), "-")
                    after_left = after or 0
                    if opts.get("o") and not invert and hit_rx is not None:
                        for m in hit_rx.finditer(line):
                            if m.group():
                                emit(no, m.group(), ":")
                    elif not (opts.get("o") and invert):
                        emit(no, line, ":")
            elif after_left:
                emit(no, line, "-")
                after_left -= 1
            elif before:
                held.append((no, line))
            if max_count is not None and not after_left and count == max_count:
                break
        if opts.get("c"):
            ctx.out((name + ":" if show_name else "") + f"{count}\n")
        if opts.get("l") and count:
            ctx.out(name + "\n")
        if opts.get("L") and not count:
            ctx.out(name + "\n")
            listed = True
    if errors and not (found_any and opts.get("q")):
        return 2
    if opts.get("L"):  # busybox: -L succeeds when it names a file
        return 0 if listed else 1
    return 0 if found_any else 1


def _count(opts: dict[str, str | bool], flag: str) -> int | None:
    """The number given to -m/-A/-B/-C, or None when the option is absent (busybox: 'invalid number')."""
    v = opts.get(flag)
    if not isinstance(v, str):
        return None
    if not v.isdigit() or not v.isascii():
        raise ValueError(f"invalid number '{v}'")
    return int(v)


def _walk(ctx: Ctx, top: str) -> list[str]:
    out: list[str] = []
    try:
        st = ctx.fs.stat(ctx.path(top))
    except OSError:
        return [top]
    if not stat.S_ISDIR(st.st_mode):
        return [top]
    host = ctx.path(top)
    for name in sorted(ctx.fs.listdir(host)):
        child = top.rstrip("/") + "/" + name
        try:
            cst = ctx.fs.lstat(ctx.path(child, follow=False))
        except OSError:
            continue
        if stat.S_ISDIR(cst.st_mode):
            out.extend(_walk(ctx, child))
        elif stat.S_ISREG(cst.st_mode):
            out.append(child)
    return out


__all__ = ["bre_to_re", "ere_to_re", "compile_regex", "enc"]
