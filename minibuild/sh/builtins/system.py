"""Process-ish builtins: true, false, pwd, env, test/[, sleep, date, uname, which, id, whoami, xargs, ..."""

from __future__ import annotations

import os
import re
import stat
import time

from minibuild.errors import UnsupportedCommandError
from minibuild.sh import pattern
from minibuild.sh.builtins.accounts import field_id, group_name, read_db, user_name
from minibuild.sh.builtins.base import REGISTRY, Ctx, UsageError, builtin, parse_flags
from minibuild.sh.builtins.grep import compile_regex
from minibuild.sh.builtins.timestr import BadTime, parse_time
from minibuild.sh.fs import vnorm
from minibuild.sh.names import DEFAULT_PATH, SHELLS, missing_hint


@builtin("true", ":")
def true(ctx: Ctx, args: list[str]) -> int:
    return 0


@builtin("false")
def false(ctx: Ctx, args: list[str]) -> int:
    return 1


@builtin("pwd")
def pwd(ctx: Ctx, args: list[str]) -> int:
    ctx.out((ctx.fs.resolve(ctx.cwd) if "-P" in args else ctx.cwd) + "\n")
    return 0


@builtin("env")
def env(ctx: Ctx, args: list[str]) -> int:
    e = dict(ctx.env)
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-i", "-"):
            e = {}
        elif a == "-u":
            e.pop(args[i + 1], None)
            i += 1
        elif "=" in a and not a.startswith("="):
            k, _, v = a.partition("=")
            e[k] = v
        else:
            return _run_env(ctx, args[i:], e)
        i += 1
    ctx.out("".join(f"{k}={v}\n" for k, v in e.items()))
    return 0


def _run_env(ctx: Ctx, argv: list[str], e: dict[str, str]) -> int:
    saved = ctx.shell.fds
    ctx.shell.fds = {0: ctx.stdin, 1: ctx.stdout, 2: ctx.stderr}
    try:
        return ctx.shell.run_utility(argv, env=e)
    finally:
        ctx.shell.fds = saved


@builtin("printenv")
def printenv(ctx: Ctx, args: list[str]) -> int:
    if not args:
        ctx.out("".join(f"{k}={v}\n" for k, v in ctx.env.items()))
        return 0
    code = 0
    for a in args:
        if a in ctx.env:
            ctx.out(ctx.env[a] + "\n")
        else:
            code = 1
    return code


# ----- test / [
def _file_test(ctx: Ctx, op: str, p: str) -> bool:
    if p == "":
        return False
    try:
        if op == "-h" or op == "-L":
            return stat.S_ISLNK(ctx.fs.lstat(ctx.path(p, follow=False)).st_mode)
        st = ctx.fs.stat(ctx.path(p))
    except (OSError, ValueError):
        return False
    m = st.st_mode
    uid = ctx.shell.fs.uid
    match op:
        case "-e" | "-a":
            return True
        case "-f":
            return stat.S_ISREG(m)
        case "-d":
            return stat.S_ISDIR(m)
        case "-s":
            return st.st_size > 0
        case "-r":
            return uid == 0 or bool(m & 0o444)
        case "-w":
            return uid == 0 or bool(m & 0o222)
        case "-x":
            return bool(m & 0o111) or (uid == 0 and stat.S_ISDIR(m)) or (uid != 0 and stat.S_ISDIR(m) and bool(m & 0o111))
        case "-p":
            return stat.S_ISFIFO(m)
        case "-b":
            return stat.S_ISBLK(m)
        case "-c":
            return stat.S_ISCHR(m)
        case "-S":
            return stat.S_ISSOCK(m)
        case "-u":
            return bool(m & stat.S_ISUID)
        case "-g":
            return bool(m & stat.S_ISGID)
        case "-k":
            return bool(m & stat.S_ISVTX)
        case "-O":
            return st.st_uid == uid
        case "-G":
            return st.st_gid == ctx.shell.fs.gid
    return False


UNARY_FILE = {"-e", "-a", "-f", "-d", "-s", "-r", "-w", "-x", "-h", "-L", "-p", "-b", "-c", "-S", "-u", "-g", "-k", "-O", "-G"}
BINARY = {"=", "==", "!=", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "<", ">", "-nt", "-ot", "-ef"}


class _TestError(Exception):
    pass


def _int(v: str) -> int:
    if not re.fullmatch(r"\s*[-+]?\d+\s*", v):
        raise _TestError(f"{v}: bad number" if v else "bad number")
    return int(v)


def _eval_test(ctx: Ctx, a: list[str], dbl: bool = False) -> bool:
    """test's expression; `dbl` is ash's [[ ]]: && and || instead of -a and -o, = == != match a pattern, =~."""
    pos = 0
    binary = BINARY | {"=~"} if dbl else BINARY
    and_op, or_op = ("&&", "||") if dbl else ("-a", "-o")

    def prim() -> bool:
        nonlocal pos
        if pos >= len(a):
            raise _TestError("argument expected")
        t = a[pos]
        if t == "!" and pos + 1 < len(a):
            pos += 1
            return not prim()
        if t == "(" and pos + 2 < len(a) and ")" in a[pos:]:
            pos += 1
            v = or_()
            if pos >= len(a) or a[pos] != ")":
                raise _TestError("missing )")
            pos += 1
            return v
        if pos + 2 < len(a) + 0 and pos + 1 < len(a) and a[pos + 1] in binary and pos + 2 < len(a):
            l, op, r = a[pos], a[pos + 1], a[pos + 2]
            pos += 3
            return _binary(ctx, l, op, r, dbl)
        if t in UNARY_FILE | {"-n", "-z", "-t"} and pos + 1 < len(a):
            pos += 2
            arg = a[pos - 1]
            if t == "-n":
                return arg != ""
            if t == "-z":
                return arg == ""
            if t == "-t":
                return False
            return _file_test(ctx, t, arg)
        pos += 1
        return t != ""

    def and_() -> bool:
        nonlocal pos
        v = prim()
        while pos < len(a) and a[pos] == and_op:
            pos += 1
            w = prim()
            v = v and w
        return v

    def or_() -> bool:
        nonlocal pos
        v = and_()
        while pos < len(a) and a[pos] == or_op:
            pos += 1
            w = and_()
            v = v or w
        return v

    # POSIX rules by argument count
    n = len(a)
    if n == 0:
        return False
    if n == 1:
        return a[0] != ""
    if n == 2:
        if a[0] == "!":
            return a[1] == ""
        if a[0] in UNARY_FILE | {"-n", "-z", "-t"}:
            pos = 0
            return prim()
        if a[1] in (and_op, or_op):
            raise _TestError("argument expected")
        raise _TestError(f"{a[1]}: argument expected" if a[1] in binary else f"{a[1]}: unknown operand")
    if n == 3:
        if a[1] in binary:
            return _binary(ctx, a[0], a[1], a[2], dbl)
        if a[0] == "!":
            return not _eval_test(ctx, a[1:], dbl)
        if a[0] == "(" and a[2] == ")":
            return a[1] != ""
    if n == 4 and a[0] == "!":
        return not _eval_test(ctx, a[1:], dbl)
    v = or_()
    if pos != len(a):
        raise _TestError(f"{a[pos]}: unknown operand")
    return v


class _RegexError(Exception):
    pass


def _binary(ctx: Ctx, l: str, op: str, r: str, dbl: bool = False) -> bool:
    if dbl and op in ("=", "==", "!="):
        return pattern.fullmatch(pattern.unquoted(r), l) != (op == "!=")
    if op == "=~":
        if re.search(r"(?<!\\)\[(?!\]?[^\]]*\])", r):  # an unclosed bracket: regcomp fails
            raise _RegexError()
        try:
            return compile_regex(r, extended=True).search(l) is not None
        except ValueError:
            raise _RegexError() from None
    match op:
        case "=" | "==":
            return l == r
        case "!=":
            return l != r
        case "<":
            return l < r
        case ">":
            return l > r
        case "-eq":
            return _int(l) == _int(r)
        case "-ne":
            return _int(l) != _int(r)
        case "-lt":
            return _int(l) < _int(r)
        case "-le":
            return _int(l) <= _int(r)
        case "-gt":
            return _int(l) > _int(r)
        case "-ge":
            return _int(l) >= _int(r)
    try:
        sl, sr = ctx.fs.stat(ctx.path(l)), ctx.fs.stat(ctx.path(r))
    except OSError:
        return False
    if op == "-ef":
        return (sl.st_dev, sl.st_ino) == (sr.st_dev, sr.st_ino)
    return sl.st_mtime_ns > sr.st_mtime_ns if op == "-nt" else sl.st_mtime_ns < sr.st_mtime_ns


@builtin("test", "[", "[[")
def test(ctx: Ctx, args: list[str]) -> int:
    if ctx.name in ("[", "[["):
        close = "]" if ctx.name == "[" else "]]"
        if not args or args[-1] != close:
            ctx.err(f"missing {close}")
            return 2
        args = args[:-1]
    try:
        return 0 if _eval_test(ctx, args, dbl=ctx.name == "[[") else 1
    except _TestError as e:
        ctx.err(str(e))
        return 2
    except _RegexError:  # busybox: a bad =~ regex is status 2 without a message
        return 2


@builtin("sleep", "usleep")
def sleep(ctx: Ctx, args: list[str]) -> int:
    for a in args:
        if not re.fullmatch(r"\d+(\.\d+)?[smhd]?|inf(inity)?", a):
            ctx.err(f"invalid number '{a}'")
            return 1
    return 0


def _strftime(fmt: str, t: time.struct_time, epoch: int) -> str:
    fmt = fmt.replace("%s", str(epoch)).replace("%N", "000000000").replace("%-d", str(t.tm_mday))
    return time.strftime(fmt, t)


_ISO = {"date": "%Y-%m-%d", "hours": "%Y-%m-%dT%H+00:00", "minutes": "%Y-%m-%dT%H:%M+00:00",
        "seconds": "%Y-%m-%dT%H:%M:%S+00:00", "ns": "%Y-%m-%dT%H:%M:%S,%N+00:00"}


@builtin("date")
def date(ctx: Ctx, args: list[str]) -> int:
    sde = ctx.env.get("SOURCE_DATE_EPOCH", "")
    epoch = int(sde) if sde.isascii() and sde.isdigit() else ctx.now
    fmt = "%a %b %e %H:%M:%S UTC %Y"
    when: str | None = None
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-u", "--utc"):
            pass
        elif a == "-R":
            fmt = "%a, %d %b %Y %H:%M:%S +0000"
        elif a[:2] in ("-d", "-r") or a in ("--date", "--reference"):
            flag = a[1] if a[1] != "-" else a[2]
            if len(a) > 2 and a[1] != "-":
                v = a[2:]
            elif i + 1 < len(args):
                i += 1
                v = args[i]
            else:
                ctx.err(f"option requires an argument -- '{flag}'")
                return 1
            if flag == "d":
                when = v
            else:
                try:
                    epoch = int(ctx.fs.stat(ctx.path(v)).st_mtime)
                except OSError as e:
                    ctx.err(f"can't stat '{v}': {e.strerror}")
                    return 1
        elif a.startswith("-I"):
            if a[2:] and a[2:] not in _ISO:
                ctx.err(f"invalid -I argument '{a[2:]}'")
                return 1
            fmt = _ISO[a[2:] or "date"]
        elif a.startswith("+"):
            fmt = a[1:]
        else:  # -s TIME, -D FMT or a TIME operand set the clock or parse with strptime: not emulated
            ctx.err(f"{a}: setting the date or -D is not available in the emulated shell; use --executor chroot")
            return 1
        i += 1
    if when is not None:
        try:
            epoch = parse_time(when, epoch)  # relative forms (hh:mm) take the day from -r FILE or now
        except BadTime:
            ctx.err(f"invalid date '{when}'")
            return 1
    ctx.out(_strftime(fmt, time.gmtime(epoch), epoch) + "\n")
    return 0


@builtin("uname")
def uname(ctx: Ctx, args: list[str]) -> int:
    vals = {"s": "Linux", "n": "minibuild", "r": "6.1.0", "v": "#1 SMP", "m": "x86_64", "o": "GNU/Linux"}
    flags = "".join(a[1:] for a in args if a.startswith("-")) or "s"
    if "a" in flags:
        flags = "snrvmo"
    ctx.out(" ".join(vals[c] for c in "snrvmo" if c in flags) + "\n")
    return 0


@builtin("hostname")
def hostname(ctx: Ctx, args: list[str]) -> int:
    try:
        name = ctx.fs.read_bytes(ctx.path("/etc/hostname")).decode(errors="replace").strip()
    except OSError:
        name = "minibuild"
    ctx.out((name or "minibuild") + "\n")
    return 0


@builtin("which")
def which(ctx: Ctx, args: list[str]) -> int:
    code = 0
    path = ctx.env.get("PATH", DEFAULT_PATH)
    for name in (a for a in args if not a.startswith("-")):
        found = None
        if "/" in name:
            found = name if os.access(ctx.path(name), os.X_OK) else None
        else:
            for d in path.split(":"):
                cand = (d or ".").rstrip("/") + "/" + name
                try:
                    host = ctx.path(cand)
                except OSError:
                    continue
                if os.path.isfile(host) and os.access(host, os.X_OK):
                    found = cand
                    break
        if found is None:
            code = 1
        else:
            ctx.out(found + "\n")
    return code


@builtin("id")
def id_(ctx: Ctx, args: list[str]) -> int:
    try:
        opts, users = parse_flags(args, "ugGnr")
    except UsageError as e:
        ctx.err(str(e))
        return 1
    mode = "".join(c for c in "ugG" if opts.get(c))
    if len(mode) > 1 or len(users) > 1 or (opts.get("n") and not mode):
        ctx.err("usage: id [-ugGnr] [USER]")
        return 1
    uid, gid = ctx.fs.uid, ctx.fs.gid
    name = user_name(ctx, uid)
    if users:  # busybox looks a USER up by name only; a numeric field it cannot read is (uid_t)-1
        ent = next((u for u in read_db(ctx, "/etc/passwd") if u[0] == users[0] and len(u) > 3), None)
        if ent is None:
            ctx.err(f"unknown user {users[0]}")
            return 1
        name = ent[0]
        uid, gid = (0xFFFFFFFF if n is None else n for n in (field_id(ent[2]), field_id(ent[3])))
    # supplementary groups as getgrouplist gives them from the image's /etc/group (what a container's id shows);
    # a group line whose gid busybox cannot read is skipped
    gids = [gid] + [n for g in read_db(ctx, "/etc/group")
                    if len(g) > 3 and (n := field_id(g[2])) is not None and name in g[3].split(",")]
    gids = list(dict.fromkeys(gids))
    code = 0

    def shown(n: int, group: bool, *, paren: bool) -> str:
        nonlocal code
        known = group_name(ctx, n) if group else user_name(ctx, n)
        if not paren and opts.get("n") and known == str(n):
            ctx.err(f"unknown ID {n}")
            code = 1
        if paren:
            return f"{n}({known})" if known != str(n) else str(n)
        return known if opts.get("n") else str(n)

    if mode == "u":
        ctx.out(shown(uid, False, paren=False) + "\n")
    elif mode == "g":
        ctx.out(shown(gid, True, paren=False) + "\n")
    elif mode == "G":
        ctx.out(" ".join(shown(g, True, paren=False) for g in gids) + "\n")
    else:
        ctx.out(f"uid={shown(uid, False, paren=True)} gid={shown(gid, True, paren=True)} groups="
                + ",".join(shown(g, True, paren=True) for g in gids) + "\n")
    return code


@builtin("whoami")
def whoami(ctx: Ctx, args: list[str]) -> int:
    name = user_name(ctx, ctx.fs.uid)
    if name == str(ctx.fs.uid):
        ctx.err(f"unknown uid {ctx.fs.uid}")
        return 1
    ctx.out(name + "\n")
    return 0


@builtin("xargs")
def xargs(ctx: Ctx, args: list[str]) -> int:
    n: int | None = None
    repl: str | None = None
    no_empty = False
    delim: str | None = None
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-n":
            n = int(args[i + 1]); i += 2; continue
        if a.startswith("-n") and a[2:].isdigit():
            n = int(a[2:]); i += 1; continue
        if a == "-I":
            repl = args[i + 1]; i += 2; continue
        if a.startswith("-I"):
            repl = a[2:]; i += 1; continue
        if a in ("-r", "--no-run-if-empty"):
            no_empty = True; i += 1; continue
        if a == "-0":
            delim = "\0"; i += 1; continue
        if a in ("-t", "-x", "-p"):
            i += 1; continue
        if a == "-d":
            delim = args[i + 1]; i += 2; continue
        break
    cmd = args[i:] or ["echo"]
    text = ctx.text(ctx.stdin.read())
    if repl is not None:
        items = [line for line in text.split("\n") if line.strip()]
    elif delim is not None:
        items = [x for x in text.split(delim) if x != ""]
        if delim == "\n" and items and items[-1] == "":
            items.pop()
    else:
        items = _xargs_split(text)
    code = 0
    if repl is not None:
        for item in items:
            rc = ctx.run([c.replace(repl, item) for c in cmd])
            code = 123 if rc else code
        return code
    if not items:
        if no_empty:
            return 0
        return 123 if ctx.run(cmd) else 0
    size = n or len(items)
    for k in range(0, len(items), size):
        rc = ctx.run(cmd + items[k : k + size])
        if rc == 255:
            return 124
        code = 123 if rc else code
    return code


def _xargs_split(text: str) -> list[str]:
    out: list[str] = []
    for m in re.finditer(r"""(?:[^\s'"\\]|\\.|'[^']*'|"[^"]*")+""", text):
        tok = m.group()
        tok = re.sub(r"""\\(.)|'([^']*)'|"([^"]*)\"""", lambda x: x.group(1) or x.group(2) or x.group(3) or "", tok)
        out.append(tok)
    return out


@builtin("mktemp")
def mktemp(ctx: Ctx, args: list[str]) -> int:
    """busybox mktemp [-dqtu] [-p DIR] [TEMPLATE]; the XXXXXX become a counter, so builds stay reproducible."""
    try:
        opts, rest = parse_flags(args, "dqtu", "p")
    except UsageError as e:
        ctx.err(str(e))
        return 1
    tmpl = rest[0] if rest else "tmp.XXXXXX"
    if "p" in opts or opts.get("t") or not rest:  # relative to -p DIR, $TMPDIR or /tmp
        tmpl = str(opts.get("p") or ctx.env.get("TMPDIR") or "/tmp").rstrip("/") + "/" + tmpl
    xs = len(tmpl) - len(tmpl.rstrip("X"))
    if xs < 6:
        if not opts.get("q"):
            ctx.err(f"{tmpl}: Invalid argument")
        return 1
    n = 0
    while True:
        name = tmpl[:-xs] + f"{n:0{xs}d}"
        host = ctx.path(name)
        if not os.path.lexists(host):
            break
        n += 1
    try:
        if opts.get("u"):
            pass
        elif opts.get("d"):
            ctx.fs.mkdir(host, 0o700 | ctx.fs.umask)
            ctx.fs.chmod(host, 0o700)
        else:
            ctx.fs.open_write(host, mode=0o600).close()
            ctx.fs.chmod(host, 0o600)
    except OSError as e:
        if not opts.get("q"):
            ctx.oserr(e, name)
        return 1
    ctx.out(name + "\n")
    return 0


__all__ = ["UsageError"]


@builtin("busybox")
def busybox(ctx: Ctx, args: list[str]) -> int:
    """`busybox APPLET ARGS`: the emulated applet (or shell) itself, whatever else the image has on PATH."""
    if not args or args[0].startswith("-"):
        raise UnsupportedCommandError(
            f"busybox {args[0] if args else ''}".rstrip() + ": the applet list depends on the image's busybox "
            "build, which the emulated shell does not read; use --executor chroot", command="busybox")
    applet = args[0]
    if applet in SHELLS:
        return ctx.shell.run_utility(["sh", *args[1:]], env=ctx.env, stdin=ctx.stdin.read(), stdout=ctx.stdout,
                                     stderr=ctx.stderr)
    fn = REGISTRY.get(applet)
    if fn is None:
        ctx.shell.missing.append(missing_hint(applet))
        ctx.stderr.write(f"{applet}: applet not found\n".encode())
        return 127
    sub = Ctx(shell=ctx.shell, name=applet, env=ctx.env, stdin=ctx.stdin, stdout=ctx.stdout, stderr=ctx.stderr)
    try:
        return fn(sub, args[1:])
    except UsageError as e:
        sub.err(str(e))
        return 1
