"""The sort builtin as busybox sorts: each -k key with its own modifiers, C-locale bytes, atof/strtod numbers."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from minibuild.sh.builtins.base import Ctx, UsageError, builtin, parse_flags, values
from minibuild.sh.cformat import strtod as c_strtod
from minibuild.sh.streams import dec, enc

KEY_TYPES = "ngbrdfi"  # the modifiers a -k key may carry (busybox: b after the comma strips trailing blanks)
SPACE = b" \t\n\v\f\r"


@dataclass(frozen=True)
class Key:
    """One -k key: start field and char, end field and char (0 = unset), and its modifier letters."""

    start: int
    start_char: int
    end: int
    end_char: int
    flags: frozenset[str]


def strtod(s: bytes, *, whole: bool = False) -> float | None:
    """The number C's strtod reads at the start of `s`, or None when it reads none (atof then gives 0);
    with `whole`, None too when anything follows the number (busybox's bb_strtod)."""
    text = dec(s)
    value, end, _ = c_strtod(text)
    return None if end == 0 or whole and end != len(text) else value


def parse_key(spec: str) -> Key:
    """A -k argument (`2,2n`, `1.3b,1.5`, `3nr`); raises UsageError with busybox's message when it is malformed."""
    nums = [0, 0, 0, 0]
    flags: set[str] = set()
    i = 0
    part = 0
    while i < len(spec):
        for slot in (2 * part, 2 * part + 1):
            m = re.match(r"\d+", spec[i:])
            if not m or int(m.group()) == 0:
                raise UsageError("bad field specification")
            nums[slot] = int(m.group())
            i += len(m.group())
            if slot % 2 or i >= len(spec) or spec[i] != ".":
                break
            i += 1
        while i < len(spec):
            c = spec[i]
            i += 1
            if c == "," and part == 0:
                part = 1
                break
            if c not in "ngMVucszbrdfimSTokt":
                raise UsageError("unknown key option")
            if c not in KEY_TYPES:
                raise UsageError("unknown sort type")
            flags.add("B" if part and c == "b" else c)
    return Key(nums[0], nums[1], nums[2], nums[3], frozenset(flags))


def key_text(line: bytes, key: Key, flags: frozenset[str], sep: bytes | None) -> bytes:
    """The part of `line` that `key` compares, with -b/-d/-i/-f applied (busybox's field rules)."""
    n = len(line)
    bounds = [0, 0]
    for j, field in enumerate((key.start, key.end)):
        if not field:
            bounds[j] = n
            continue
        pos, ch = 0, b""
        for _ in range(1, field + j):
            if sep is not None:
                ch = b""
                while pos < n:
                    ch = line[pos:pos + 1]
                    pos += 1
                    if ch == sep:
                        break
            else:
                while pos < n and line[pos] in SPACE:
                    pos += 1
                while pos < n and line[pos] not in SPACE:
                    pos += 1
        if j and sep is not None and ch == sep:
            pos -= 1  # "abc:def:" => "abc:def"
        bounds[j] = pos
    start, end = bounds
    if "b" in flags:
        while start < n and line[start] in SPACE:
            start += 1
    if "B" in flags:
        while end > start and line[end - 1] in SPACE:
            end -= 1
    if key.end_char:
        end = min(key.end_char, n)
    if key.start_char:
        start = min(start + key.start_char - 1, n)
    text = line[start:max(end, start)]
    if "d" in flags:
        text = bytes(c for c in text if c in SPACE or chr(c).isalnum() and c < 128)
    if "i" in flags:
        text = bytes(c for c in text if 32 <= c < 127)
    if "f" in flags:
        text = text.upper()
    return text


def _cmp_values(x: bytes, y: bytes, flags: frozenset[str]) -> int:
    if "g" in flags:
        dx, dy = strtod(x), strtod(y)
        if dx is None or dy is None:
            return 0 if dx is None and dy is None else (-1 if dx is None else 1)
        if dx != dx or dy != dy:  # NaN sorts below every number
            return 0 if dx != dx and dy != dy else (-1 if dx != dx else 1)
        return (dx > dy) - (dx < dy)
    if "n" in flags:
        fx, fy = strtod(x) or 0.0, strtod(y) or 0.0
        return (fx > fy) - (fx < fy)
    return (x > y) - (x < y)


@builtin("sort")
def sort(ctx: Ctx, args: list[str]) -> int:
    try:
        opts, files = parse_flags(args, "ngucszbrdfim", "ktSTo", repeat="k")
        keys = [parse_key(k) for k in values(opts, "k")]
        sep_s = str(opts["t"]) if "t" in opts else None
        if sep_s is not None and len(enc(sep_s)) != 1:
            raise UsageError("bad -t parameter")
    except UsageError as e:
        ctx.err(str(e))
        return 2
    if opts.get("z"):
        ctx.err("-z is not available in the emulated shell; use --executor chroot")
        return 2
    sep = enc(sep_s) if sep_s is not None else None
    glob = frozenset(c for c in "ngbrdfi" if opts.get(c)) | ({"B"} if opts.get("b") else set())
    keys = keys or [Key(1, 0, 0, 0, frozenset())]
    stable = bool(opts.get("s"))
    lines: list[bytes] = []
    for f in files or ["-"]:
        try:
            data = ctx.read_input(f)
        except OSError as e:  # busybox stops at the first file it cannot open
            ctx.oserr(e, f)
            return 2
        chunks = data.split(b"\n")
        if chunks[-1] == b"":
            chunks.pop()
        lines.extend(chunks)

    def compare(x: tuple[int, bytes], y: tuple[int, bytes], *, tie_break: bool = True) -> int:
        flags = glob
        r = 0
        for key in keys:
            flags = key.flags or glob
            r = _cmp_values(key_text(x[1], key, flags, sep), key_text(y[1], key, flags, sep), flags)
            if r:
                break
        if not r and stable:
            r = (x[0] > y[0]) - (x[0] < y[0])
        elif not r and tie_break:
            flags = glob
            r = (x[1] > y[1]) - (x[1] < y[1])
        return -r if "r" in flags else r

    numbered = list(enumerate(lines))
    if opts.get("c"):
        worst = -1 if opts.get("u") else 0
        for i in range(1, len(numbered)):
            if compare(numbered[i - 1], numbered[i]) > worst:
                ctx.stderr.write(enc(f"Check line {i}\n"))
                return 1
        return 0
    ordered = sorted(numbered, key=functools.cmp_to_key(compare))
    if opts.get("u"):
        kept: list[tuple[int, bytes]] = []
        for item in ordered:
            if not kept or compare(kept[-1], item, tie_break=False) != 0:
                kept.append(item)
        ordered = kept
    result = b"".join(line + b"\n" for _, line in ordered)
    if "o" in opts:
        with ctx.fs.open_write(ctx.path(str(opts["o"]))) as f:
            f.write(result)
    else:
        ctx.out(result)
    return 0
