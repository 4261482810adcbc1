"""Go behaviours container-structure-test relies on: os.Expand, RE2 regexps (via Python re), Duration and %v."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence

_SPECIAL = set("*#$@!?-0123456789")


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isascii() and c.isalnum()


def _shell_name(s: str) -> tuple[str, int]:
    if s[0] == "{":
        if len(s) > 2 and s[1] in _SPECIAL and s[2] == "}":
            return s[1:2], 3
        for i in range(1, len(s)):
            if s[i] == "}":
                if i == 1:
                    return "", 2
                return s[1:i], i + 1
        return "", 1
    if s[0] in _SPECIAL:
        return s[0:1], 1
    i = 0
    while i < len(s) and _is_alnum(s[i]):
        i += 1
    return s[:i], i


def go_expand(s: str, mapping: Mapping[str, str] | Callable[[str], str]) -> str:
    """Go's ``os.Expand``: ``$NAME`` and ``${NAME}`` replaced (unknown -> ""), bad ``${`` syntax eaten."""
    get = mapping if callable(mapping) else (lambda k: mapping.get(k, ""))
    out: list[str] = []
    i = 0
    j = 0
    while j < len(s):
        if s[j] == "$" and j + 1 < len(s):
            out.append(s[i:j])
            name, w = _shell_name(s[j + 1:])
            if name == "" and w > 0:
                pass
            elif name == "":
                out.append("$")
            else:
                out.append(get(name))
            j += w
            i = j + 1
        j += 1
    out.append(s[i:])
    return "".join(out)


# ------------------------------------------------------------------------------------------- RE2 -> Python re
class GoRegexError(ValueError):
    """The pattern does not compile in Go's RE2 (or uses RE2 syntax minibuild cannot translate)."""


_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z", "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}
_GO_PERL = {"d": "0-9", "s": "\\t\\n\\f\\r ", "w": "0-9A-Za-z_"}


def translate_re2(pattern: str) -> str:
    """Translate a Go RE2 pattern to an equivalent Python ``re`` pattern, or raise GoRegexError where Go would
    refuse it (lookaround, backreferences, possessive/nested repetition) or minibuild cannot follow (\\p{..}).

    Differences handled: ``$`` without the ``m`` flag matches only at the very end of the text (Python's also
    matches before a final newline), ``\\z``, ``\\Q..\\E``, ``\\x{..}``, ``(?<name>..)``, POSIX classes
    ``[[:alpha:]]``, ASCII-only ``\\d \\s \\w \\b``.
    """
    multiline = bool(re.search(r"\(\?[a-zA-Z]*m", pattern))
    out: list[str] = []
    i = 0
    n = len(pattern)
    in_class = False
    class_start = False
    last_quant = False  # the previous token was a repetition operator (incl. its lazy '?')
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise GoRegexError("trailing backslash at end of expression")
            e = pattern[i + 1]
            if e == "Q":
                end = pattern.find("\\E", i + 2)
                lit = pattern[i + 2:] if end < 0 else pattern[i + 2:end]
                out.append(re.escape(lit))
                i = n if end < 0 else end + 2
                last_quant = False
                continue
            if e.isdigit() and e != "0":
                raise GoRegexError(f"invalid escape sequence: \\{e} (RE2 has no backreferences)")
            if e in "pP":
                raise GoRegexError(f"Unicode class \\{e} is not supported by minibuild's regex translation")
            if e == "z":
                out.append("\\Z")
            elif e == "Z":
                raise GoRegexError("invalid escape sequence: \\Z")
            elif e == "x" and i + 2 < n and pattern[i + 2] == "{":
                end = pattern.find("}", i + 3)
                if end < 0:
                    raise GoRegexError("invalid escape sequence: \\x{")
                out.append(f"\\U{int(pattern[i + 3:end], 16):08x}")
                i = end + 1
                last_quant = False
                continue
            elif e in "dsw" and not in_class:
                out.append(f"[{_GO_PERL[e]}]")
            elif e in "DSW" and not in_class:
                out.append(f"[^{_GO_PERL[e.lower()]}]")
            elif e in "dsw" and in_class:
                out.append(_GO_PERL[e])
            else:
                out.append(c + e)
            i += 2
            last_quant = False
            class_start = False
            continue
        if in_class:
            if c == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                name = pattern[i + 2:end] if end > 0 else ""
                if name in _POSIX:
                    out.append(_POSIX[name])
                    i = end + 2
                    continue
                if name.startswith("^") and name[1:] in _POSIX:
                    raise GoRegexError(f"negated POSIX class [:{name}:] is not supported by minibuild")
                out.append("\\[")
                i += 1
                continue
            if c == "]" and not class_start:
                in_class = False
            elif c == "[":
                out.append("\\[")
                i += 1
                class_start = False
                continue
            class_start = False if not (class_start and c == "^") else True
            if c == "^" and class_start:
                class_start = True
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            class_start = True
            out.append(c)
            if i + 1 < n and pattern[i + 1] == "^":
                out.append("^")
                i += 1
            i += 1
            last_quant = False
            continue
        if c == "(" and pattern.startswith("(?", i):
            rest = pattern[i + 2:i + 4]
            if rest[:1] in ("=", "!", ">") or rest in ("<=", "<!"):
                raise GoRegexError("invalid or unsupported Perl syntax: lookaround and atomic groups are not RE2")
            if rest[:1] == "<":
                out.append("(?P<")
                i += 3
                last_quant = False
                continue
            if rest[:1] == "U" or re.match(r"\(\?[a-zA-Z-]*U", pattern[i:]):
                raise GoRegexError("the RE2 'U' (ungreedy) flag is not supported by minibuild")
        if c in "*+?" or (c == "{" and re.match(r"\{\d+(,\d*)?\}", pattern[i:])):
            if last_quant:
                raise GoRegexError(f"invalid nested repetition operator: {pattern[max(0, i - 1):i + 1]}")
            if c == "{":
                m = re.match(r"\{\d+(,\d*)?\}", pattern[i:])
                assert m is not None
                out.append(m.group(0))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
            if i < n and pattern[i] == "?":
                out.append("?")
                i += 1
            last_quant = True
            continue
        last_quant = False
        if c == "$" and not multiline:
            out.append("\\Z")
        else:
            out.append(c)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=512)
def compile_re2(pattern: str) -> re.Pattern[str]:
    """Compile a Go regexp as Python; GoRegexError when Go (or the translation) would reject it."""
    try:
        return re.compile(translate_re2(pattern), re.ASCII)
    except re.error as exc:
        raise GoRegexError(str(exc)) from None


def compile_and_run_regex(pattern: str, text: str, should_match: bool) -> bool:
    """container-structure-test's CompileAndRunRegex: unanchored search; a bad pattern is False either way."""
    try:
        rx = compile_re2(pattern)
    except GoRegexError:
        return False
    return should_match == (rx.search(text) is not None)


# ------------------------------------------------------------------------------------------- formatting
def go_list(items: Sequence[str] | None) -> str:
    """Go's ``%v`` of a []string: ``[a b c]`` (nil and empty both print ``[]``)."""
    return "[" + " ".join(items or ()) + "]"


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()`` for ``ns`` nanoseconds."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    u = abs(ns)
    if u < 1_000_000_000:
        if u < 1_000:
            s = f"{u}ns"
        elif u < 1_000_000:
            s = _frac(u, 3) + "µs"
        else:
            s = _frac(u, 6) + "ms"
    else:
        h, rem = divmod(u, 3_600_000_000_000)
        m, rem = divmod(rem, 60_000_000_000)
        s = _frac(rem, 9) + "s"
        if h:
            s = f"{h}h{m}m{s}"
        elif m:
            s = f"{m}m{s}"
    return ("-" if neg else "") + s


def _frac(v: int, digits: int) -> str:
    whole, frac = divmod(v, 10 ** digits)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


def go_float(x: float) -> str:
    """strconv.FormatFloat(x, 'g', -1, 64) for the small non-negative values JUnit times take."""
    if x == 0:
        return "0"
    text = repr(float(x))
    if "e" in text:
        mant, exp = text.split("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").lstrip("0") or "0"
        return f"{mant.removesuffix('.0')}e{sign}{digits.zfill(2)}"
    return text.removesuffix(".0")
