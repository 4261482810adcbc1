"""Text builtins: echo, printf, head, tail, wc, sort, uniq, tee, cut, tr, seq, basename, dirname, expr, ..."""

from __future__ import annotations

import errno
import posixpath
import re

from minibuild.errors import ShellError
from minibuild.sh.builtins.base import Ctx, UsageError, builtin, parse_flags
from minibuild.sh.builtins.sort import strtod
from minibuild.sh.cformat import C_SPACE, UINT64_MAX, Spec, render_bytes, render_float, render_int, strtoll
from minibuild.sh.cformat import strtod as c_strtod
from minibuild.sh.streams import dec, enc

ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "e": "\x1b"}


def unescape(s: str, *, echo: bool) -> tuple[str, bool]:
    """Interpret backslash escapes (echo -e / printf %b); returns (text, stop) where stop means \\c was seen."""
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 >= len(s):
            out.append(c)
            i += 1
            continue
        n = s[i + 1]
        if n == "c":
            return "".join(out), True
        if n in ESCAPES:
            out.append(ESCAPES[n])
            i += 2
        elif n in "01234567":
            j = i + 2 if n == "0" and echo else i + 1  # echo and %b: \0NNN; printf's format: \NNN, a 0 counts
            digits = ""
            while j < len(s) and len(digits) < 3 and s[j] in "01234567":
                digits += s[j]
                j += 1
            out.append(_byte(int(digits or "0", 8) & 0xFF))
            i = j
        elif n == "x":
            m = re.match(r"[0-9a-fA-F]{1,2}", s[i + 2:])
            if m:
                out.append(_byte(int(m.group(), 16)))
                i += 2 + m.end()
            else:
                out.append("\\x")
                i += 2
        else:
            out.append("\\" + n)
            i += 2
    return "".join(out), False


def _byte(v: int) -> str:
    """The character that `enc` turns into the single byte `v` (a raw byte above 0x7f, not its UTF-8 form)."""
    return chr(v) if v < 0x80 else dec(bytes([v]))


@builtin("echo")
def echo(ctx: Ctx, args: list[str]) -> int:
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        for c in args[0][1:]:
            if c == "n":
                newline = False
            elif c == "e":
                escapes = True
            else:
                escapes = False
        args = args[1:]
    text = " ".join(args)
    if escapes:
        text, stop = unescape(text, echo=True)
        if stop:
            ctx.out(text)
            return 0
    ctx.out(text + ("\n" if newline else ""))
    return 0


INT_CONVS, FLOAT_CONVS = "diouxX", "feEgG"
ALNUM = re.compile(r"[0-9A-Za-z]")


def _int_arg(ctx: Ctx, arg: str, unsigned: bool) -> tuple[int, bool]:
    """busybox's my_xstrto[u]ll: blanks skipped, 'c is the byte's code, one + dropped, then the whole rest must
    be a C integer in range (an unsigned one may be negative: strtoll's value modulo 2**64); else 0 and a message."""
    a = arg.lstrip(C_SPACE)
    if a[:1] in ("'", '"'):
        return enc(a)[1:2][0] if len(a) > 1 else 0, True
    t = a[1:] if a[:1] == "+" else a
    if unsigned and ALNUM.match(t):
        v, end, over = strtoll(t, unsigned=True)
        if end == len(t) and not over:
            return v, True
    if ALNUM.match(t[1:] if t[:1] == "-" else t):
        v, end, over = strtoll(t)
        if end == len(t) and not over:
            return (v & UINT64_MAX if unsigned else v), True
    ctx.err(f"invalid number '{a}'")
    return 0, False


def _float_arg(ctx: Ctx, arg: str) -> tuple[float, bool]:
    """busybox's my_xstrtod: 'c is the byte's code; else strtod must read it all (else 0), in range (else its
    inf or denormal, with a message)."""
    if arg[:1] in ("'", '"'):
        return float(enc(arg)[1:2][0] if len(arg) > 1 else 0), True
    v, end, out_of_range = c_strtod(arg)
    if end != len(arg):
        v = 0.0
    if end != len(arg) or out_of_range:
        ctx.err(f"invalid number '{arg}'")
        return v, False
    return v, True


def _star_arg(ctx: Ctx, arg: str | None) -> int:
    """The value of a * width or precision: a plain decimal int (else 0, with a message that leaves the status)."""
    if arg is None:
        return 0
    if re.fullmatch(r"-?[0-9]+", arg) and -2**31 <= int(arg) < 2**31:
        return int(arg)
    ctx.err(f"invalid number '{arg}'")
    return 0


DIRECTIVE = re.compile(r"%([-+ #0]*)(\*|\d*)(?:\.(\*|\d*))?([lLhz]*)(.?)", re.DOTALL)


@builtin("printf")
def printf(ctx: Ctx, args: list[str]) -> int:
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        ctx.err("usage: printf FORMAT [ARGUMENT...]")
        return 1
    fmt, rest = args[0], args[1:]
    code = 0
    out = ctx.out  # written as it is made: busybox flushes its output before each message
    first = True
    while first or rest:
        first = False
        consumed = False
        pos = 0
        while pos < len(fmt):
            lit_end = fmt.find("%", pos)
            lit_end = len(fmt) if lit_end < 0 else lit_end
            text, stop = unescape(fmt[pos:lit_end], echo=False)
            out(enc(text))
            if stop or lit_end == len(fmt):
                if stop:
                    return code
                break
            if fmt[lit_end + 1:lit_end + 2] in ("%", "b"):
                pos = lit_end + 2
                if fmt[lit_end + 1] == "%":
                    out(b"%")
                    continue
                if rest:  # %b only straight after the %, as busybox has it; without an argument, nothing
                    consumed = True
                    val, stop = unescape(rest.pop(0), echo=True)
                    out(enc(val))
                    if stop:
                            return code
                continue
            m = DIRECTIVE.match(fmt, lit_end)
            assert m is not None  # every part after the % may be empty
            flags, width, prec, mods, conv = m.groups()
            if not conv or conv not in INT_CONVS + FLOAT_CONVS + "cs":
                ctx.err(fmt[lit_end:m.start(4)] + fmt[m.end(4):] + ": invalid format")
                return 1
            pos = m.end()
            w = p = None
            if width == "*":
                consumed = consumed or bool(rest)
                w = _star_arg(ctx, rest.pop(0) if rest else None)
            elif width:
                w = int(width)
            if prec == "*":
                consumed = consumed or bool(rest)
                p = _star_arg(ctx, rest.pop(0) if rest else None)
                p = None if p < 0 else p
            elif prec is not None:
                p = int(prec or 0)
            if w is not None and w < 0:
                flags, w = flags + "-", -w
            for field in (w, p):  # a field as wide as the memory limit is never built
                if field and field > ctx.shell.limits.max_bytes:
                    raise ShellError("printf: " + ctx.shell.limits.bytes_message(f"the field width {field}"))
            spec = Spec(flags, w, p, conv)
            arg = rest.pop(0) if rest else None
            consumed = consumed or arg is not None
            if conv == "s":
                out(render_bytes(spec, enc(arg or "")))
            elif conv == "c":
                out(render_bytes(Spec(flags, w, None, conv), enc(arg or "")[:1] or b"\0"))
            elif conv in INT_CONVS:
                n, ok = _int_arg(ctx, arg or "", unsigned=conv not in "di")  # busybox: "" is an error
                code = code if ok else 1
                out(render_int(spec, n).encode())
            else:
                f, ok = _float_arg(ctx, arg or "")
                code = code if ok else 1
                out(render_float(spec, f).encode())
        if not consumed:
            break
    return code


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


IS_DIR = b"\0directory"  # _inputs' marker of an operand that is a directory (each applet says it its own way)


def _inputs(ctx: Ctx, files: list[str], limit: int | None = None,
            dirs: bool = False) -> list[tuple[str, bytes | None]]:
    """Each operand's bytes (None after an error was shown); with ``dirs`` a directory is IS_DIR, unreported:
    busybox opens it, and what its read's failure prints differs from applet to applet."""
    out: list[tuple[str, bytes | None]] = []
    for f in files or ["-"]:
        try:
            out.append((f, ctx.read_input(f, limit)))
        except OSError as e:
            if dirs and e.errno == errno.EISDIR:
                out.append((f, IS_DIR))
                continue
            ctx.oserr(e, f)
            out.append((f, None))
    return out


def _shown_name(name: str) -> str:
    return "standard input" if name == "-" else name


@builtin("cat")
def cat(ctx: Ctx, args: list[str]) -> int:
    opts, files = parse_flags(args, "unAevtb")
    code = 0
    show = any(opts.get(c) for c in "vteA")  # -v, and -t -e -A that imply it
    tabs, ends = bool(opts.get("t") or opts.get("A")), bool(opts.get("e") or opts.get("A"))
    number = bool(opts.get("n") or opts.get("b"))
    n = 0
    for name in files or ["-"]:
        try:
            data = ctx.read_input(name)
        except OSError as e:
            if e.errno == errno.EFBIG:  # the emulator's own refusal (an endless /dev/zero)
                ctx.oserr(e, name)
            elif e.errno == errno.EISDIR:  # busybox opens a directory, then its read fails
                ctx.err(f"read error: {e.strerror}")
            else:
                ctx.err(f"can't open '{name}': {e.strerror or e}")
            code = 1
            continue
        if not show and not number:
            ctx.out(data)
            continue
        for line in _lines(data):
            body, nl = (line[:-1], True) if line.endswith(b"\n") else (line, False)
            prefix = b""
            if number and not (opts.get("b") and body == b""):
                n += 1
                prefix = b"%6d" % n + (b"  " if show else b"\t")
            if show:  # busybox: ^X for controls, M- for bytes over 127; no newline is added at the end
                ctx.out(prefix + b"".join(_visible(c, tabs) for c in body) + (b"$" if ends and nl else b"")
                        + (b"\n" if nl else b""))
            else:  # numbering reads lines: the last one gets its newline
                ctx.out(prefix + body + b"\n")
    return code


def _visible(c: int, tabs: bool) -> bytes:
    """One byte as cat -v shows it."""
    meta = b"M-" if c >= 0x80 else b""
    c &= 0x7F
    if c == 0x09 and not tabs and not meta:
        return b"\t"
    if c < 0x20:
        return meta + b"^" + bytes([c + 0x40])
    return meta + (b"^?" if c == 0x7F else bytes([c]))


def _count_arg(v: str) -> tuple[int, bool]:
    """(n, from_start) for head/tail -n values like 5, -5, +5."""
    if v.startswith("+"):
        return int(v[1:]), True
    return abs(int(v)), False


def _legacy_num(args: list[str]) -> list[str]:
    if args and re.fullmatch(r"-\d+", args[0]):
        return ["-n", args[0][1:]] + args[1:]
    return args


@builtin("head")
def head(ctx: Ctx, args: list[str]) -> int:
    opts, files = parse_flags(_legacy_num(args), "qv", "nc")
    code = 0
    limit = int(str(opts["c"])) if "c" in opts and str(opts["c"]).isdigit() else None
    ins = _inputs(ctx, files, limit, dirs=True)  # head -c N reads only N bytes (of /dev/zero too)
    for idx, (name, data) in enumerate(ins):
        if data is None:
            code = 1
            continue
        if len(ins) > 1:
            ctx.out(("\n" if idx else "") + f"==> {name} <==\n")
        if data is IS_DIR:  # busybox's head reports a directory's failed read as EIO
            ctx.err(f"{_shown_name(name)}: Input/output error")
            code = 1
            continue
        if "c" in opts:
            n = int(str(opts["c"]))
            ctx.out(data[:n] if n >= 0 else data[:n])
        else:
            n = int(str(opts.get("n", "10")))
            lines = _lines(data)
            ctx.out(b"".join(lines[:n] if n >= 0 else lines[:n]))
    return code


@builtin("tail")
def tail(ctx: Ctx, args: list[str]) -> int:
    opts, files = parse_flags(_legacy_num(args), "qvfF", "nc")
    code = 0
    ins = _inputs(ctx, files)
    for idx, (name, data) in enumerate(ins):
        if data is None:
            code = 1
            continue
        if len(ins) > 1:
            ctx.out(("\n" if idx else "") + f"==> {name} <==\n")
        if "c" in opts:
            n, start = _count_arg(str(opts["c"]))
            ctx.out(data[n - 1:] if start else (data[-n:] if n else b""))
        else:
            n, start = _count_arg(str(opts.get("n", "10")))
            lines = _lines(data)
            ctx.out(b"".join(lines[max(n - 1, 0):] if start else (lines[-n:] if n else [])))
    return code


@builtin("wc")
def wc(ctx: Ctx, args: list[str]) -> int:
    opts, files = parse_flags(args, "lwcmL")
    sel = [c for c in "lwmcL" if opts.get(c)] or ["l", "w", "c"]
    code = 0
    totals = dict.fromkeys("lwmcL", 0)
    ins = _inputs(ctx, files, dirs=True)
    # busybox: %9u columns joined by a space, except one column for one input, which is bare
    fmt = "{:d}" if len(ins) <= 1 and len(sel) == 1 else "{:9d}"
    for name, data in ins:
        if data is None:
            code = 1
            continue
        if data is IS_DIR:  # the read fails after the open: the error, then the counts so far (none)
            ctx.err(f"{_shown_name(name)}: Is a directory")
            code, data = 1, b""
        counts = _wc_counts(data)
        for k in totals:
            totals[k] = max(totals[k], counts[k]) if k == "L" else totals[k] + counts[k]
        label = "" if not files else " " + name
        ctx.out(" ".join(fmt.format(counts[c]) for c in sel) + label + "\n")
    if len(ins) > 1:
        ctx.out(" ".join(fmt.format(totals[c]) for c in sel) + " total\n")
    return code


def _wc_counts(data: bytes) -> dict[str, int]:
    """busybox wc's counts: a word starts at a printable ASCII byte, -L widens tabs, -m counts bytes (C locale)."""
    lines = words = longest = pos = 0
    in_word = False
    for c in data:
        if 0x21 <= c <= 0x7E:
            pos += 1
            if not in_word:
                words, in_word = words + 1, True
            continue
        if c == 0x20:
            pos += 1
        elif c == 0x09:
            pos = (pos | 7) + 1
        elif c in (0x0A, 0x0B, 0x0C, 0x0D):
            longest = max(longest, pos)
            lines += c == 0x0A
            pos = pos if c == 0x0B else 0
        else:
            continue  # other bytes neither end a word nor take a column
        in_word = False
    longest = max(longest, pos)
    return {"l": lines, "w": words, "m": len(data), "c": len(data), "L": longest}


@builtin("uniq")
def uniq(ctx: Ctx, args: list[str]) -> int:
    opts, files = parse_flags(args, "cdui")
    data = ctx.read_input(files[0] if files else "-")
    lines = dec(data).splitlines()
    groups: list[tuple[str, int]] = []
    for line in lines:
        k = line.lower() if opts.get("i") else line
        if groups and (groups[-1][0].lower() if opts.get("i") else groups[-1][0]) == k:
            groups[-1] = (groups[-1][0], groups[-1][1] + 1)
        else:
            groups.append((line, 1))
    out: list[str] = []
    for line, n in groups:
        if opts.get("d") and n < 2:
            continue
        if opts.get("u") and n > 1:
            continue
        out.append(f"{n:>7} {line}\n" if opts.get("c") else line + "\n")
    text = "".join(out)
    if len(files) > 1:
        with ctx.fs.open_write(ctx.path(files[1])) as f:
            f.write(enc(text))
    else:
        ctx.out(text)
    return 0


@builtin("tee")
def tee(ctx: Ctx, args: list[str]) -> int:
    opts, files = parse_flags(args, "ai")
    data = ctx.stdin.read()
    code = 0
    for f in files:
        if f == "/dev/null":
            continue
        try:
            with ctx.fs.open_write(ctx.path(f), append=bool(opts.get("a"))) as fh:
                fh.write(data)
        except OSError as e:
            ctx.oserr(e, f)
            code = 1
    ctx.out(data)
    return code


def _ranges(spec: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out.append((int(a) if a else 1, int(b) if b else 1 << 30))
        else:
            out.append((int(part), int(part)))
    return out


@builtin("cut")
def cut(ctx: Ctx, args: list[str]) -> int:
    opts, files = parse_flags(args, "s", "fdcb")
    delim = str(opts.get("d", "\t"))
    code = 0
    for name, data in _inputs(ctx, files):
        if data is None:
            code = 1
            continue
        for line in dec(data).splitlines():
            if "f" in opts:
                rs = _ranges(str(opts["f"]))
                if delim not in line:
                    if not opts.get("s"):
                        ctx.out(line + "\n")
                    continue
                parts = line.split(delim)
                sel = [p for i, p in enumerate(parts, 1) if any(a <= i <= b for a, b in rs)]
                ctx.out(delim.join(sel) + "\n")
            else:
                rs = _ranges(str(opts.get("c", opts.get("b", "1-"))))
                ctx.out("".join(ch for i, ch in enumerate(line, 1) if any(a <= i <= b for a, b in rs)) + "\n")
    return code


TR_CLASSES = {
    "[:lower:]": "abcdefghijklmnopqrstuvwxyz", "[:upper:]": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "[:digit:]": "0123456789", "[:space:]": " \t\n\r\f\v", "[:blank:]": " \t",
    "[:alpha:]": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "[:alnum:]": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "[:punct:]": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
}


def _tr_set(s: str) -> str:
    s, _ = unescape(s, echo=False)
    for k, v in TR_CLASSES.items():
        s = s.replace(k, v)
    out: list[str] = []
    i = 0
    while i < len(s):
        if i + 2 < len(s) and s[i + 1] == "-":
            a, b = ord(s[i]), ord(s[i + 2])
            out.extend(chr(c) for c in range(a, b + 1))
            i += 3
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


@builtin("tr")
def tr(ctx: Ctx, args: list[str]) -> int:
    opts, sets = parse_flags(args, "dscC")
    text = dec(ctx.stdin.read())
    s1 = _tr_set(sets[0]) if sets else ""
    s2 = _tr_set(sets[1]) if len(sets) > 1 else ""
    if opts.get("c") or opts.get("C"):
        inside = set(s1)
        comp = sorted({ch for ch in text if ch not in inside})
        s1 = "".join(comp)
    if opts.get("d"):
        text = "".join(ch for ch in text if ch not in set(s1))
        squeeze = set(s2)
    else:
        if s2:
            s2 = s2 + s2[-1] * max(0, len(s1) - len(s2))
            table = {ord(a): b for a, b in zip(s1, s2)}
            text = text.translate(table)
        squeeze = set(s2 or s1)
    if opts.get("s"):
        out: list[str] = []
        for ch in text:
            if out and out[-1] == ch and ch in squeeze:
                continue
            out.append(ch)
        text = "".join(out)
    ctx.out(text)
    return 0


@builtin("seq")
def seq(ctx: Ctx, args: list[str]) -> int:
    try:
        opts, nums = parse_flags(args, "w", "s")  # busybox: a negative FIRST is an unknown option too
    except UsageError as e:
        ctx.err(str(e))
        return 1
    parsed = [strtod(enc(n), whole=True) for n in nums]
    vals = [v for v in parsed if v is not None]
    if not 1 <= len(nums) <= 3 or len(vals) != len(nums):
        ctx.err("usage: seq [-w] [-s SEP] [FIRST [INC]] LAST")
        return 1
    first, step, last = 1.0, 1.0, vals[-1]
    if len(vals) == 2:
        first = vals[0]
    elif len(vals) == 3:
        first, step = vals[0], vals[1]
    if step == 0:
        ctx.err("an INC of 0 prints forever; not emulated (use --executor chroot)")
        return 1
    prec = max((len(n) - n.index(".") - 1 for n in nums if "." in n), default=0)  # digits after the dot
    width = max(len("%.*f" % (prec, first)), len("%.*f" % (prec, last))) if opts.get("w") else 0
    sep = str(opts.get("s", "\n"))
    chunk: list[str] = []
    wrote = False
    i, v = 0, first
    while (v <= last) if step > 0 else (v >= last):
        chunk.append("%0*.*f" % (width, prec, v))
        i += 1
        v = first + i * step
        if len(chunk) == 4096:  # written in chunks: `seq 1 10000000000` never builds its list
            ctx.shell.check_time()
            ctx.out((sep if wrote else "") + sep.join(chunk))
            wrote, chunk = True, []
    if chunk:
        ctx.out((sep if wrote else "") + sep.join(chunk))
        wrote = True
    if wrote:
        ctx.out("\n")
    return 0


@builtin("basename")
def basename(ctx: Ctx, args: list[str]) -> int:
    opts, names = parse_flags(args, "a", "s")
    suffix = str(opts["s"]) if "s" in opts else ""
    if not names:
        raise UsageError("usage: basename FILE [SUFFIX] | -a FILE... | -s SUFFIX FILE...")
    if not ("a" in opts or "s" in opts):  # basename FILE [SUFFIX]
        if len(names) > 2:
            raise UsageError("usage: basename FILE [SUFFIX] | -a FILE... | -s SUFFIX FILE...")
        names, suffix = names[:1], names[1] if len(names) > 1 else ""
    for p in names:
        stripped = p.rstrip("/")
        base = "/" if p and not stripped else posixpath.basename(stripped)
        if suffix and base != suffix and base.endswith(suffix):
            base = base[: -len(suffix)]
        ctx.out(base + "\n")
    return 0


@builtin("dirname")
def dirname(ctx: Ctx, args: list[str]) -> int:
    if not args:
        raise UsageError("usage: dirname FILE")
    p = args[0].rstrip("/") or ("/" if args[0].startswith("/") else ".")
    if p == "/":
        ctx.out("/\n")
        return 0
    d = posixpath.dirname(p).rstrip("/")
    ctx.out((d or ("/" if p.startswith("/") else ".")) + "\n")
    return 0


def _expr_val(v: str) -> int | None:
    return int(v) if re.fullmatch(r"-?\d+", v) else None


@builtin("expr")
def expr(ctx: Ctx, args: list[str]) -> int:
    toks = list(args)
    pos = 0

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(toks):
            raise UsageError("syntax error")
        pos += 1
        return toks[pos - 1]

    def primary() -> str:
        t = take()
        if t == "(":
            v = or_()
            if take() != ")":
                raise UsageError("syntax error")
            return v
        if t == "length":
            return str(len(take()))
        if t == "substr":
            s, p, n = take(), int(take()), int(take())
            return s[p - 1 : p - 1 + n] if p > 0 and n > 0 else ""
        if t == "index":
            s, chars = take(), take()
            return str(next((i + 1 for i, c in enumerate(s) if c in chars), 0))
        if t == "match":
            return match(take(), take())
        return t

    def match(s: str, pat: str) -> str:
        from minibuild.sh.builtins.grep import bre_to_re
        m = re.match(bre_to_re(pat), s)
        if m and m.groups():
            return m.group(1) or ""
        if m and not m.groups():
            return str(m.end())
        return "" if re.compile(bre_to_re(pat)).groups else "0"

    def colon() -> str:
        v = primary()
        while peek() == ":":
            take()
            v = match(v, primary())
        return v

    def mul() -> str:
        v = colon()
        while peek() in ("*", "/", "%"):
            op = take()
            a, b = _expr_val(v), _expr_val(colon())
            if a is None or b is None:
                raise UsageError("non-integer argument")
            if op != "*" and b == 0:
                raise UsageError("division by zero")
            v = str(a * b if op == "*" else (int(a / b) if op == "/" else a - b * int(a / b)))
        return v

    def add() -> str:
        v = mul()
        while peek() in ("+", "-"):
            op = take()
            a, b = _expr_val(v), _expr_val(mul())
            if a is None or b is None:
                raise UsageError("non-integer argument")
            v = str(a + b if op == "+" else a - b)
        return v

    def cmp() -> str:
        v = add()
        while peek() in ("=", "==", "!=", "<", "<=", ">", ">="):
            op = take()
            w = add()
            a, b = _expr_val(v), _expr_val(w)
            x, y = (a, b) if a is not None and b is not None else (v, w)
            r = {"=": x == y, "==": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]  # type: ignore[operator]
            v = "1" if r else "0"
        return v

    def truthy(v: str) -> bool:
        return v not in ("", "0") and _expr_val(v) != 0

    def and_() -> str:
        v = cmp()
        while peek() == "&":
            take()
            w = cmp()
            v = v if truthy(v) and truthy(w) else "0"
        return v

    def or_() -> str:
        v = and_()
        while peek() == "|":
            take()
            w = and_()
            v = v if truthy(v) else (w if truthy(w) else "0")
        return v

    try:
        v = or_()
        if pos != len(toks):
            raise UsageError("syntax error")
    except UsageError as e:
        ctx.err(str(e))
        return 2
    ctx.out(v + "\n")
    return 0 if truthy(v) else 1
