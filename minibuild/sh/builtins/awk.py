"""The awk command: busybox awk's options over the interpreter in minibuild.sh.awk."""

from __future__ import annotations

import re

from minibuild.sh.awk.parse import parse, unescape
from minibuild.sh.awk.run import Awk, latin
from minibuild.sh.awk.value import PROGRAM_END, AwkError
from minibuild.sh.builtins.base import Ctx, builtin
from minibuild.sh.streams import enc

_ASSIGN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_]*=", re.DOTALL)
USAGE = "Usage: awk [OPTIONS] [AWK_PROGRAM] [FILE]..."


@builtin("awk")
def awk(ctx: Ctx, args: list[str]) -> int:
    words = [latin(enc(a)) for a in args]
    fs: str | None = None
    assigns: list[tuple[str, str]] = []
    sources: list[str] = []
    i = 0
    while i < len(words):
        a = words[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        opt = a[1]
        if opt not in "Fvfe W":
            ctx.err(f"unrecognized option: {a[:2]}")
            ctx.stderr.write(enc(USAGE + "\n"))
            return 1
        val = a[2:]
        if not val:
            i += 1
            if i >= len(words):
                ctx.err(f"option requires an argument -- '{opt}'")
                return 1
            val = words[i]
        i += 1
        if opt == "F":
            fs = unescape(val)
        elif opt == "v":
            if not _ASSIGN.match(val):
                ctx.stderr.write(enc(USAGE + "\n"))
                return 1
            name, _, value = val.partition("=")
            assigns.append((name, unescape(value)))
        elif opt == "f":
            try:
                sources.append(latin(ctx.read_input(val.encode("latin-1").decode("utf-8", "surrogateescape"))))
            except OSError as e:
                ctx.err(f"can't open '{val}': {e.strerror or e}")
                return 1
        elif opt == "e":
            sources.append(val)
        else:
            ctx.err("warning: option -W is ignored")
    operands = words[i:]
    if not sources:
        if not operands:
            ctx.stderr.write(enc(USAGE + "\n"))
            return 1
        sources.append(operands.pop(0))
    try:
        program = parse("\n".join(sources))
        return Awk(ctx, program, operands, assigns, fs).run()
    except AwkError as e:
        line = e.line if e.line != PROGRAM_END else 1 + "\n".join(sources).rstrip("\n").count("\n")
        where = "" if line < 0 else f"cmd. line:{line or 1}: "
        ctx.stderr.write(enc("awk: " + where) + e.message.encode("latin-1", "replace") + b"\n")
        return 1
    except RecursionError:
        ctx.err("the program nests too deeply")
        return 1
