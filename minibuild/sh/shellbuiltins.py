"""Builtins that change the shell itself: cd, export, set, unset, local, read, eval, ., exit, return, ..."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable

from minibuild.errors import UnsupportedCommandError
from minibuild.sh import arith
from minibuild.sh.builtins.base import REGISTRY, UsageError
from minibuild.sh.builtins.fileops import parse_mode
from minibuild.sh.control import ExitShell, LoopCtl, ReturnFn
from minibuild.sh.expand import ExpansionError
from minibuild.sh.fs import vnorm
from minibuild.sh.names import DEFAULT_PATH, SHELLS
from minibuild.sh.parser import parse
from minibuild.sh.protocol import ShellLike
from minibuild.sh.streams import Input, dec, enc

ShellBuiltin = Callable[[ShellLike, list[str]], int]
SHELL_BUILTINS: dict[str, ShellBuiltin] = {}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def sb(*names: str) -> Callable[[ShellBuiltin], ShellBuiltin]:
    def deco(fn: ShellBuiltin) -> ShellBuiltin:
        for n in names:
            SHELL_BUILTINS[n] = fn
        return fn
    return deco


def out(sh: ShellLike, text: str) -> None:
    stream = sh.fds.get(1)
    if stream:
        stream.write(enc(text))


@sb(":")
def _colon(sh: ShellLike, args: list[str]) -> int:
    return 0


@sb("cd")
def _cd(sh: ShellLike, args: list[str]) -> int:
    args = [a for a in args if a not in ("-L", "-P")]
    if not args:
        target = sh.get("HOME") or "/"
    elif args[0] == "-":
        target = sh.get("OLDPWD") or sh.cwd
        out(sh, target + "\n")
    else:
        target = args[0]
    new = vnorm(target, sh.cwd)
    try:
        st = sh.fs.stat(sh.fs.path(new, "/"))
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(20, "Not a directory")
    except OSError as e:
        sh.err(f"sh: cd: line {sh.lineno - 1}: can't cd to {target}: {e.strerror}")
        return 2
    sh.vars["OLDPWD"] = sh.cwd
    sh.cwd = new
    sh.vars["PWD"] = new
    return 0


def _assign_list(sh: ShellLike, args: list[str], mark: Callable[[str], None], who: str = "export") -> int:
    code = 0
    for a in args:
        name, eq, value = a.partition("=")
        if not NAME.match(name):
            sh.err(f"sh: {who}: {a}: bad variable name")
            code = 2
            continue
        if eq:
            sh.set_var(name, value, who=who)
        mark(name)
    return code


@sb("export")
def _export(sh: ShellLike, args: list[str]) -> int:
    if args and args[0] == "-n":
        for n in args[1:]:
            sh.exported.discard(n)
        return 0
    args = [a for a in args if a != "-p"]
    if not args:
        for k in sorted(sh.exported):
            if k in sh.vars:
                out(sh, f"export {k}={_q(sh.vars[k])}\n")
        return 0
    return _assign_list(sh, args, sh.exported.add)


@sb("readonly")
def _readonly(sh: ShellLike, args: list[str]) -> int:
    args = [a for a in args if a != "-p"]
    if not args:
        for k in sorted(sh.readonly):
            out(sh, f"readonly {k}={_q(sh.vars[k])}\n" if k in sh.vars else f"readonly {k}\n")
        return 0
    return _assign_list(sh, args, sh.readonly.add, "readonly")


def _q(v: str) -> str:
    return "'" + v.replace("'", "'\"'\"'") + "'"


@sb("unset")
def _unset(sh: ShellLike, args: list[str]) -> int:
    funcs = False
    if args and args[0] in ("-f", "-v"):
        funcs = args[0] == "-f"
        args = args[1:]
    for n in args:
        if funcs:
            sh.functions.pop(n, None)
        elif n in sh.readonly:
            raise ExpansionError(f"sh: unset: line {sh.lineno - 1}: {n}: is read only")
        else:
            sh.vars.pop(n, None)
            sh.exported.discard(n)
    return 0


OPTS = {"e": "errexit", "u": "nounset", "x": "xtrace", "f": "noglob", "a": "allexport", "C": "noclobber"}


@sb("set")
def _set(sh: ShellLike, args: list[str]) -> int:
    if not args:
        for k in sorted(sh.vars):
            out(sh, f"{k}={_q(sh.vars[k])}\n")
        return 0
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            sh.positional = args[i + 1:]
            return 0
        if a in ("-o", "+o"):
            if i + 1 >= len(args):
                for name in ("errexit", "noglob", "nounset", "pipefail", "xtrace"):
                    out(sh, f"{name:<15} {'on' if sh.options.get(name) else 'off'}\n")
                return 0
            opt = args[i + 1]
            if opt not in ("errexit", "nounset", "xtrace", "pipefail", "noglob", "allexport", "noclobber", "posix"):
                sh.err(f"sh: set: illegal option -o {opt}")
                return 2
            sh.options[opt] = a == "-o"
            i += 2
            continue
        if len(a) > 1 and a[0] in "-+" and all(c in OPTS or c == "o" for c in a[1:]) and a.count("o") <= 1:
            for c in a[1:]:
                if c != "o":
                    sh.options[OPTS[c]] = a[0] == "-"
            if "o" in a[1:]:
                args = args[: i + 1] + [a[0] + "o"] + args[i + 1:]
            i += 1
            continue
        if a[0] in "-+" and len(a) > 1:
            sh.err(f"sh: set: illegal option {a}")
            return 2
        sh.positional = args[i:]
        return 0
    return 0


@sb("local")
def _local(sh: ShellLike, args: list[str]) -> int:
    if not sh.locals:
        sh.err(f"sh: local: line {sh.lineno - 1}: not in a function")
        return 2
    scope = sh.locals[-1]
    for a in args:
        name, eq, value = a.partition("=")
        if name in sh.readonly:
            raise ExpansionError(f"sh: local: line {sh.lineno - 1}: {name}: is read only")
        if name not in scope:
            scope[name] = sh.vars.get(name)
        if eq:
            sh.vars[name] = value
    return 0


@sb("shift")
def _shift(sh: ShellLike, args: list[str]) -> int:
    n = int(args[0]) if args and args[0].isdigit() else 1
    if n > len(sh.positional):
        return 1
    sh.positional = sh.positional[n:]
    return 0


@sb("read")
def _read(sh: ShellLike, args: list[str]) -> int:
    raw = False
    names: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-r":
            raw = True
        elif a in ("-p", "-t", "-n", "-d", "-u"):
            i += 1
        elif a.startswith("-") and len(a) > 1:
            pass
        else:
            names.append(a)
        i += 1
    if not names:
        names = ["REPLY"]
    stream = sh.fds.get(0)
    line_parts: list[str] = []
    eof = True
    while stream is not None:
        chunk = dec(stream.readline())
        if not chunk:
            break
        if chunk.endswith("\n"):
            chunk = chunk[:-1]
            if not raw and chunk.endswith("\\") and not chunk.endswith("\\\\"):
                line_parts.append(chunk[:-1])
                continue
            eof = False
            line_parts.append(chunk)
            break
        line_parts.append(chunk)
        break
    line = "".join(line_parts)
    if not raw:
        line = re.sub(r"\\(.)", r"\1", line)
    ifs = sh.ifs()
    ws = "".join(c for c in ifs if c in " \t\n")
    fields: list[str] = []
    rest = line.strip(ws) if ws else line
    for idx in range(len(names)):
        if idx == len(names) - 1:
            fields.append(rest.rstrip(ws) if ws else rest)
            break
        m = re.search(f"[{re.escape(ifs)}]", rest) if ifs else None
        if not m:
            fields.append(rest)
            rest = ""
            continue
        fields.append(rest[: m.start()])
        rest = rest[m.end():]
        rest = rest.lstrip(ws) if ws else rest
        if m.group() in ws and rest[:1] and rest[:1] in ifs and rest[:1] not in ws:
            rest = rest[1:].lstrip(ws)
    for n, v in zip(names, fields + [""] * len(names)):
        if n in sh.readonly:  # not fatal for read: status 2
            sh.err(f"sh: read: line {sh.lineno - 1}: {n}: is read only")
            return 2
        sh.set_var(n, v)
    return 1 if eof and not line_parts else (1 if eof else 0)


@sb(".", "source")
def _dot(sh: ShellLike, args: list[str]) -> int:
    if not args:
        sh.err("sh: .: filename argument required")
        return 2
    path = args[0]
    if "/" not in path:
        for d in (sh.get("PATH") or DEFAULT_PATH).split(":"):
            cand = d.rstrip("/") + "/" + path
            if os.path.isfile(sh.fs.path(cand, sh.cwd)):
                path = cand
                break
    try:
        text = dec(sh.fs.read_bytes(sh.fs.path(path, sh.cwd)))
    except OSError:
        sh.err(f"sh: .: can't open '{args[0]}'")
        raise ExitShell(2)
    saved = sh.positional
    if len(args) > 1:
        sh.positional = args[1:]
    try:
        sh.execute(parse(text))
    except ReturnFn as e:
        sh.status = e.code
    finally:
        if len(args) > 1:
            sh.positional = saved
    return sh.status


@sb("eval")
def _eval(sh: ShellLike, args: list[str]) -> int:
    text = " ".join(args)
    if not text.strip():
        return 0
    sh.status = 0
    sh.execute(parse(text))
    return sh.status


def _num(sh: ShellLike, args: list[str], default: int) -> int:
    if not args:
        return default
    try:
        return int(args[0]) & 0xFF
    except ValueError:
        sh.err(f"sh: Illegal number: {args[0]}")
        return 2


@sb("exit")
def _exit(sh: ShellLike, args: list[str]) -> int:
    raise ExitShell(_num(sh, args, sh.status))


@sb("return")
def _return(sh: ShellLike, args: list[str]) -> int:
    raise ReturnFn(_num(sh, args, sh.status))


@sb("break", "continue")
def _break(sh: ShellLike, args: list[str]) -> int:
    return 0


def _loopctl(kind: str) -> ShellBuiltin:
    def fn(sh: ShellLike, args: list[str]) -> int:
        n = int(args[0]) if args and args[0].isdigit() else 1
        if sh.loop_depth == 0:
            return 0
        raise LoopCtl(kind, min(max(n, 1), sh.loop_depth))
    return fn


SHELL_BUILTINS["break"] = _loopctl("break")
SHELL_BUILTINS["continue"] = _loopctl("continue")


@sb("exec")
def _exec(sh: ShellLike, args: list[str]) -> int:
    if not args:
        return 0
    raise ExitShell(sh.run_utility(args))


@sb("trap")
def _trap(sh: ShellLike, args: list[str]) -> int:
    if len(args) >= 2:
        action = args[0]
        for sig in args[1:]:
            if sig in ("0", "EXIT"):
                if action == "-" or action == "":
                    sh.traps.pop("EXIT", None)
                else:
                    sh.traps["EXIT"] = action
    return 0


@sb("wait", "hash", "times", "alias", "unalias", "ulimit")
def _noop(sh: ShellLike, args: list[str]) -> int:
    return 0


@sb("umask")
def _umask(sh: ShellLike, args: list[str]) -> int:
    symbolic = bool(args) and args[0] == "-S"
    args = args[1:] if symbolic else args
    if not args:
        if symbolic:  # the bits it lets through, as u=rwx,g=rx,o=rx
            allowed = ~sh.fs.umask & 0o777
            out(sh, ",".join(f"{who}=" + "".join(c for c, bit in zip("rwx", (4, 2, 1)) if allowed >> shift & bit)
                             for who, shift in (("u", 6), ("g", 3), ("o", 0))) + "\n")
        else:
            out(sh, f"{sh.fs.umask:04o}\n")
        return 0
    spec = args[0]
    try:
        if spec and all(c in "01234567" for c in spec):
            sh.fs.umask = int(spec, 8) & 0o777
        else:  # u=rwx,g=rx,o= names the bits to let through
            sh.fs.umask = ~parse_mode(spec, ~sh.fs.umask & 0o777) & 0o777
    except UsageError:
        sh.err(f"sh: umask: line {sh.lineno - 1}: illegal mode: {spec}")
        return 2
    return 0


def describe(sh: ShellLike, name: str) -> str | None:
    """What `command -v` prints for name, or None."""
    if name in sh.functions or name in SHELL_BUILTINS or name in REGISTRY or name in SHELLS:
        return name  # busybox ash (standalone shell) reports its applets by name
    if "/" in name:
        return name if sh.lexists(name) else None
    path = sh.get("PATH") or DEFAULT_PATH
    for d in path.split(":"):
        cand = (d or ".").rstrip("/") + "/" + name
        try:
            host = sh.fs.path(cand, sh.cwd)
            if os.path.isfile(host) and os.access(host, os.X_OK):
                return cand
        except OSError:
            continue
    return None


@sb("command")
def _command(sh: ShellLike, args: list[str]) -> int:
    if args and args[0] in ("-v", "-V"):
        code = 0
        for n in args[1:]:
            d = describe(sh, n)
            if d is None:
                code = 127 if args[0] == "-V" else 1
            else:
                out(sh, (d if args[0] == "-v" else f"{n} is {d}") + "\n")
        return code
    if args and args[0] == "-p":
        args = args[1:]
    if not args:
        return 0
    if args[0] in SHELL_BUILTINS:
        return SHELL_BUILTINS[args[0]](sh, args[1:])
    return sh.run_utility(args)


@sb("type")
def _type(sh: ShellLike, args: list[str]) -> int:
    code = 0
    for n in args:
        d = describe(sh, n)
        if d is None:
            sh.err(f"sh: {n}: not found")
            code = 127
        elif d == n and "/" not in n:
            out(sh, f"{n} is a shell builtin\n" if n not in sh.functions else f"{n} is a function\n")
        else:
            out(sh, f"{n} is {d}\n")
    return code


@sb("getopts")
def _getopts(sh: ShellLike, args: list[str]) -> int:
    if len(args) < 2:
        return 2
    spec, var = args[0], args[1]
    argv = args[2:] if len(args) > 2 else sh.positional
    ind = int(sh.get("OPTIND") or "1")
    sub = int(sh.vars.get("_GETOPTS_SUB", "1"))
    if ind > len(argv) + 1:  # ash starts over when OPTIND is past the arguments
        ind, sub = 1, 1
    if ind > len(argv) or not argv[ind - 1].startswith("-") or argv[ind - 1] in ("-", "--"):
        if ind <= len(argv) and argv[ind - 1] == "--":
            sh.vars["OPTIND"] = str(ind + 1)
        sh.set_var(var, "?")
        return 1
    silent = spec.startswith(":")
    letters = spec[1:] if silent else spec
    word = argv[ind - 1]
    c = word[sub]
    rest = word[sub + 1:]
    sub += 1
    if sub >= len(word):
        ind, sub = ind + 1, 1
    sh.vars.pop("OPTARG", None)  # busybox unsets OPTARG unless this option sets it
    pos = letters.find(c) if c != ":" else -1
    if pos < 0:
        sh.set_var(var, "?")
        if silent:
            sh.vars["OPTARG"] = c
        else:
            sh.err(f"Illegal option -{c}")
    elif letters[pos + 1:pos + 2] == ":":
        if rest:
            sh.vars["OPTARG"] = rest
            ind, sub = ind + 1, 1
        elif ind <= len(argv):
            sh.vars["OPTARG"] = argv[ind - 1]
            ind += 1
        elif silent:
            sh.set_var(var, ":")
            sh.vars["OPTARG"] = c
        else:
            sh.set_var(var, "?")
            sh.err(f"No arg for -{c} option")
        if "OPTARG" in sh.vars and sh.vars.get(var) != ":":
            sh.set_var(var, c)
    else:
        sh.set_var(var, c)
        sh.vars["OPTARG"] = ""
    sh.vars["OPTIND"] = str(ind)
    sh.vars["_GETOPTS_SUB"] = str(sub)
    return 0


__all__ = ["SHELL_BUILTINS", "UnsupportedCommandError", "Input", "describe"]


@sb("let")
def _let(sh: ShellLike, args: list[str]) -> int:
    """ash's let: each argument an arithmetic expression; status 1 when the last is 0, 2 on an error."""
    if not args:
        sh.err(f"sh: let: line {sh.lineno - 1}: expression expected")
        return 2
    value = 0
    for a in args:
        try:
            value = arith.evaluate(a, sh.get, sh.set_var)
        except arith.ArithError as e:
            sh.err(f"sh: let: line {sh.lineno - 1}: {e.message.split(': ')[-1]}")
            return 2
    return 0 if value else 1
