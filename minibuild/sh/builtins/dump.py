"""od: busybox's (coreutils-style) dump with -t types, -A radix, -N, -j, -w, -v and the one-letter forms."""

from __future__ import annotations

import errno

import re

from minibuild.errors import UnsupportedCommandError
from minibuild.sh.builtins.base import Ctx, builtin

_NAMES = ("nul soh stx etx eot enq ack bel bs ht nl vt ff cr so si dle dc1 dc2 dc3 dc4 nak syn etb can em sub esc "
          "fs gs rs us sp").split()
_ESC = {0: "\\0", 7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
_SIZES = {"C": 1, "S": 2, "I": 4, "L": 8}
_WIDTH = {("o", 1): 3, ("o", 2): 6, ("o", 4): 11, ("o", 8): 22, ("x", 1): 2, ("x", 2): 4, ("x", 4): 8,
          ("x", 8): 16, ("d", 1): 4, ("d", 2): 6, ("d", 4): 11, ("d", 8): 20, ("u", 1): 3, ("u", 2): 5,
          ("u", 4): 10, ("u", 8): 20}
_LETTERS = {"a": ("a", 1), "b": ("o", 1), "c": ("c", 1), "d": ("u", 2), "h": ("x", 2), "i": ("d", 2),
            "l": ("d", 4), "o": ("o", 2), "s": ("d", 2), "x": ("x", 2)}
USAGE = "Usage: od [-abcdfhilovxs] [-t TYPE] [-A RADIX] [-N SIZE] [-j SKIP] [-S MINSTR] [-w WIDTH] [FILE]..."


class _OdError(Exception):
    pass


def _types(spec: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    i = 0
    while i < len(spec):
        c = spec[i]
        i += 1
        if c in "ac":
            out.append((c, 1))
            continue
        if c == "f":
            raise UnsupportedCommandError("od: floating-point types (-t f, -f) are not available in the emulated "
                                          "shell; use --executor chroot", command="od")
        if c not in "doux":
            raise _OdError(f"invalid character '{c}' in type string '{spec}'")
        m = re.match(r"\d+|[CSIL]", spec[i:])
        size = 4
        if m:
            size = _SIZES[m.group()] if m.group() in _SIZES else int(m.group())
            i += m.end()
        if size not in (1, 2, 4, 8):
            raise _OdError(f"invalid type string '{spec}'; {size}-byte integral type is not supported")
        if i < len(spec) and spec[i] == "z":
            raise _OdError(f"invalid type string '{spec}'; 4294967295-byte integral type is not supported")
        out.append((c, size))
    return out


def _number(text: str) -> int:
    m = re.fullmatch(r"(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)([bkm]?)", text)
    if not m:
        raise _OdError(f"invalid number '{text}'")
    n = int(m.group(1), 0) if not re.fullmatch(r"0[0-7]+", m.group(1)) else int(m.group(1), 8)
    return n * {"": 1, "b": 512, "k": 1024, "m": 1024 * 1024}[m.group(2)]


def _field(kind: str, size: int, chunk: bytes) -> str:
    if kind == "c":
        b = chunk[0]
        return "%4s" % (_ESC[b] if b in _ESC else chr(b) if 32 <= b < 127 else "%03o" % b)
    if kind == "a":
        b = chunk[0] & 0x7F
        return "%4s" % (_NAMES[b] if b <= 32 else "del" if b == 127 else chr(b))
    v = int.from_bytes(chunk, "little", signed=kind == "d")
    w = _WIDTH[(kind, size)]
    if kind == "o":
        return " %0*o" % (w, v)
    if kind == "x":
        return " %0*x" % (w, v)
    return " %*d" % (w, v)


@builtin("od")
def od(ctx: Ctx, args: list[str]) -> int:
    types: list[tuple[str, int]] = []
    radix, limit, skip, width, verbose = "o", None, 0, 16, False
    files: list[str] = []
    try:
        i = 0
        while i < len(args):
            a = args[i]
            i += 1
            if a == "--":
                files.extend(args[i:])
                break
            if not a.startswith("-") or a == "-":
                files.append(a)
                continue
            j = 1
            while j < len(a):
                c = a[j]
                j += 1
                if c in "tANjwS":
                    val = a[j:]
                    j = len(a)
                    if not val and c != "w":
                        if i >= len(args):
                            raise _OdError(f"option requires an argument -- '{c}'")
                        val = args[i]
                        i += 1
                    if c == "t":
                        types.extend(_types(val))
                    elif c == "A":
                        if val not in ("o", "d", "x", "n"):
                            raise _OdError(f"bad output address radix '{val}'; it must be one character from "
                                           f"[doxn]")
                        radix = val
                    elif c == "N":
                        limit = _number(val)
                    elif c == "j":
                        skip = _number(val)
                    elif c == "w":
                        width = _number(val) if val else 32
                    else:
                        raise UnsupportedCommandError("od: -S (strings) is not available in the emulated shell; "
                                                      "use --executor chroot", command="od")
                elif c in _LETTERS:
                    types.append(_LETTERS[c])
                elif c == "v":
                    verbose = True
                elif c == "f":
                    types.extend(_types("f"))
                else:
                    ctx.err(f"invalid option -- '{c}'")
                    ctx.stderr.write(USAGE.encode() + b"\n")
                    return 1
    except _OdError as e:
        ctx.err(str(e))
        return 1
    types = types or [("o", 2)]
    code = 0
    data = bytearray()
    opened = False
    for f in files or ["-"]:
        try:
            data += ctx.read_input(f)
            opened = True
        except OSError as e:
            if e.errno == errno.EISDIR:  # opened, then the read fails: busybox's words, and the dump goes on
                ctx.err(f"{'standard input' if f == '-' else f}: read error")
                opened = True
            else:
                ctx.oserr(e, f)
            code = 1
    if not opened:
        return code
    if skip > len(data):
        ctx.err("can't skip past end of combined input")
        return 1
    body = bytes(data[skip:])
    if limit is not None:
        body = body[:limit]
    big = max(s for _, s in types)
    width = max(width - width % big, big) if width % big else width
    addr = {"o": "%07o", "d": "%07d", "x": "%06x", "n": ""}[radix]
    pad = " " * len(addr % 0) if addr else ""
    out: list[str] = []
    prev: bytes | None = None
    starred = False
    for off in range(0, len(body), width):
        chunk = body[off:off + width]
        if not verbose and chunk == prev and len(chunk) == width:
            if not starred:
                out.append("*\n")
                starred = True
            continue
        prev, starred = chunk, False
        padded = chunk + bytes(-len(chunk) % big)
        for n, (kind, size) in enumerate(types):
            head = (addr % (skip + off)) if addr and n == 0 else pad
            out.append(head + "".join(_field(kind, size, padded[k:k + size]) for k in range(0, len(padded), size))
                       + "\n")
    if addr:
        out.append(addr % (skip + len(body)) + "\n")
    ctx.out("".join(out))
    return code
