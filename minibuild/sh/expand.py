"""Word expansion: parameters, command substitution, arithmetic, field splitting and globbing in the root."""

from __future__ import annotations

import os
import re
import stat

from minibuild.errors import ShellError
from minibuild.sh import arith, pattern
from minibuild.sh.ast import DQ, SQ, Arith, CmdSub, Lit, Param, Part, Word
from minibuild.sh.protocol import ShellLike
from minibuild.sh.streams import dec, enc

BREAK = ("", "B")  # a field break produced by "$@"
Piece = tuple[str, str]  # (text, kind): L unquoted literal, E unquoted expansion, Q quoted


class ExpansionError(ShellError):
    """An expansion failed (`${x?}`, set -u, bad arithmetic): the shell prints it and exits."""


def expand_words(sh: ShellLike, words: tuple[Word, ...]) -> list[str]:
    """Expand command words to fields: all expansions, field splitting, pathname expansion."""
    out: list[str] = []
    for w in words:
        out.extend(expand_fields(sh, w))
    return out


def expand_fields(sh: ShellLike, word: Word, *, glob: bool = True) -> list[str]:
    pieces = _parts(sh, word.parts, in_dq=False, first=True)
    fields = _split(pieces, sh.ifs())
    result: list[str] = []
    for f in fields:
        chars = [(c, k == "Q") for text, k in f for c in text]
        if glob and not sh.options.get("noglob") and pattern.has_magic(chars):
            matches = glob_root(sh, chars)
            if matches:
                result.extend(matches)
                continue
        result.append("".join(c for c, _ in chars))
    return result


def expand_string(sh: ShellLike, word: Word | None) -> str:
    """Expand a word to one string without splitting or globbing (assignments, redirection targets, case)."""
    if word is None:
        return ""
    pieces = _parts(sh, word.parts, in_dq=False, first=True, assign=False)
    return "".join(t if k != "B" else " " for t, k in pieces)


def expand_pattern(sh: ShellLike, word: Word | None) -> list[tuple[str, bool]]:
    """Expand a word into (char, quoted) pairs for pattern matching."""
    if word is None:
        return []
    pieces = _parts(sh, word.parts, in_dq=False, first=False)
    return [(c, k == "Q") for t, k in pieces for c in t]


def expand_heredoc(sh: ShellLike, word: Word) -> str:
    pieces = _parts(sh, word.parts, in_dq=True, first=False)
    return "".join(t for t, _ in pieces)


def _tilde(sh: ShellLike, text: str) -> str:
    if not text.startswith("~"):
        return text
    head, sep, rest = text.partition("/")
    if head == "~":
        home = sh.get("HOME")
        return (home if home is not None else "~") + sep + rest
    home = sh.user_home(head[1:])
    return (home + sep + rest) if home is not None else text


def _parts(sh: ShellLike, parts: tuple[Part, ...], *, in_dq: bool, first: bool, assign: bool = False) -> list[Piece]:
    out: list[Piece] = []
    kind = "Q" if in_dq else "E"
    for idx, p in enumerate(parts):
        if isinstance(p, Lit):
            text = p.text
            if first and idx == 0 and not in_dq:
                text = _tilde(sh, text)
            out.append((text, "Q" if in_dq else "L"))
        elif isinstance(p, SQ):
            out.append((p.text, "Q"))
        elif isinstance(p, DQ):
            inner = _parts(sh, p.parts, in_dq=True, first=False)
            if not any(isinstance(q, Param) and q.name == "@" and q.op == "" for q in p.parts):
                out.append(("", "Q"))  # "" is one empty field, but "$@" with no arguments is none
            out.extend(inner)
        elif isinstance(p, Param):
            if p.name in ("@", "*") and p.op == "":
                args = sh.positional
                if in_dq and p.name == "*":
                    sep = sh.ifs()[:1] if sh.get("IFS") is not None else " "
                    out.append((sep.join(args), "Q"))
                elif in_dq:
                    for i, a in enumerate(args):
                        if i:
                            out.append(BREAK)
                        out.append((a, "Q"))
                else:
                    for i, a in enumerate(args):
                        if i:
                            out.append(BREAK)
                        out.append((a, "E"))
                continue
            if not in_dq and p.op in (":-", "-", ":+", "+") and p.arg is not None:
                cur = sh.get(p.name)
                null = cur is None or (p.op.startswith(":") and cur == "")
                if null == (p.op in (":-", "-")):  # the word is used: its quoted parts stay quoted
                    out.extend((t, "E" if k == "L" else k) for t, k in _parts(sh, p.arg.parts, in_dq=False,
                                                                             first=False))
                    continue
            val = _param(sh, p, in_dq)
            out.append((val, kind))
        elif isinstance(p, CmdSub):
            text = sh.command_subst(p.body)
            out.append((text.rstrip("\n"), kind))
        elif isinstance(p, Arith):
            expr = "".join(t for t, _ in _parts(sh, p.expr.parts, in_dq=True, first=False))
            try:
                num = arith.evaluate(expr, sh.get, sh.set_var)
            except arith.ArithError as e:  # not a limit (ShellError) raised while evaluating
                raise ExpansionError(f"sh: {e.message}") from None
            out.append((str(num), kind))
    return out


def _param(sh: ShellLike, p: Param, in_dq: bool) -> str:
    name, op = p.name, p.op
    val = sh.get(name)
    if op == "#len":
        if val is None and sh.options.get("nounset") and name not in ("@", "*", "#"):
            raise ExpansionError(f"sh: {name}: parameter not set")
        if name in ("@", "*"):
            return str(len(sh.positional))
        return str(len(enc(val or "")))  # busybox counts bytes
    if op in ("", "#", "##", "%", "%%", "/", "//", ":"):
        if val is None and sh.options.get("nounset") and name not in ("@", "*"):
            raise ExpansionError(f"sh: {name}: parameter not set")
        val = val or ""
    if op == "":
        return val or ""
    unset_or_null = val is None or (op.startswith(":") and val == "")
    if op in (":-", "-"):
        return expand_string_dq(sh, p.arg, in_dq) if unset_or_null else (val or "")
    if op in (":=", "="):
        if unset_or_null:
            new = expand_string_dq(sh, p.arg, in_dq)
            sh.set_var(name, new)
            return new
        return val or ""
    if op in (":+", "+"):
        return "" if unset_or_null else expand_string_dq(sh, p.arg, in_dq)
    if op in (":?", "?"):
        if unset_or_null:
            msg = expand_string(sh, p.arg) or ("parameter null or not set" if op == ":?" else "parameter not set")
            raise ExpansionError(f"sh: {name}: {msg}")
        return val or ""
    assert val is not None
    if op in ("#", "##", "%", "%%"):
        wc = pattern.compile_pattern(expand_pattern(sh, p.arg))
        if op in ("#", "##"):  # the shortest / longest matching prefix
            ends = list(wc.ends(val))
            return val[(ends[0] if op == "#" else ends[-1]):] if ends else val
        ends = list(wc.reversed().ends(val[::-1]))  # suffixes, as prefixes of the reversed text
        return val[:len(val) - (ends[0] if op == "%" else ends[-1])] if ends else val
    if op in ("/", "//"):
        pat = expand_pattern(sh, p.arg)
        rep = expand_string(sh, p.arg2)
        if not pat:
            return val
        wc = pattern.compile_pattern(pat)  # busybox 1.35 has no ${v/#p/r} ${v/%p/r} anchors: # and % are literal
        out: list[str] = []  # the longest match at the leftmost position; `//` then goes on after it
        i = 0
        while i < len(val):
            sh.check_time()
            end = max(wc.ends(val, i), default=i)
            if end > i:
                out.append(rep)
                i = end
                if op == "/":
                    break
            else:
                out.append(val[i])
                i += 1
        return "".join(out) + val[i:]
    if op == ":":
        def num(w: Word | None) -> int:
            s = expand_string(sh, w).strip()
            return arith.evaluate(s, sh.get, sh.set_var) if s else 0
        raw = enc(val)  # busybox counts bytes
        off = num(p.arg)
        if off < 0:
            off = max(0, len(raw) + off)
        if p.arg2 is None:
            return dec(raw[off:])
        ln = num(p.arg2)
        return dec(raw[off : off + ln] if ln >= 0 else raw[off : len(raw) + ln])
    raise ExpansionError(f"sh: bad substitution: {op}")


def expand_string_dq(sh: ShellLike, word: Word | None, in_dq: bool) -> str:
    if word is None:
        return ""
    return "".join(t for t, k in _parts(sh, word.parts, in_dq=in_dq, first=not in_dq) if k != "B")


def _split(pieces: list[Piece], ifs: str) -> list[list[Piece]]:
    ws = "".join(c for c in ifs if c in " \t\n")
    nw = "".join(c for c in ifs if c not in " \t\n")
    if ifs:
        parts_rx = []
        if nw:
            parts_rx.append(f"[{re.escape(ws)}]*[{re.escape(nw)}][{re.escape(ws)}]*" if ws else f"[{re.escape(nw)}]")
        if ws:
            parts_rx.append(f"[{re.escape(ws)}]+")
        delim = re.compile("|".join(parts_rx))
    fields: list[list[Piece]] = []
    cur: list[Piece] = []

    def real(f: list[Piece]) -> bool:
        return any(t or k == "Q" for t, k in f)

    def finish(force: bool) -> None:
        nonlocal cur
        if force or real(cur):
            fields.append(cur)
        cur = []

    for text, kind in pieces:
        if kind == "B":  # each "$@" argument brings a quoted piece; an unquoted empty one vanishes
            finish(force=False)
            continue
        if kind != "E" or not ifs:
            cur.append((text, kind))
            continue
        pos = 0
        for m in delim.finditer(text):
            if m.start() > pos:
                cur.append((text[pos : m.start()], "E"))
            force = bool(nw) and any(c in nw for c in m.group())
            finish(force=force)
            pos = m.end()
        if pos < len(text):
            cur.append((text[pos:], "E"))
    if real(cur):
        fields.append(cur)
    return fields


def glob_root(sh: ShellLike, chars: list[tuple[str, bool]]) -> list[str]:
    """Pathname expansion against the shell's root filesystem; sorted matches or [] when none."""
    comps: list[list[tuple[str, bool]]] = [[]]
    for c, q in chars:
        if c == "/":
            comps.append([])
        else:
            comps[-1].append((c, q))
    absolute = bool(chars) and chars[0][0] == "/"
    prefixes = ["/" if absolute else ""]
    if absolute:
        comps = comps[1:]
    for i, comp in enumerate(comps):
        last = i == len(comps) - 1
        new: list[str] = []
        if not comp:
            new = [p + "/" if p and not p.endswith("/") else p for p in prefixes] if last else prefixes
            prefixes = new
            continue
        if not pattern.has_magic(comp):
            name = "".join(c for c, _ in comp)
            for p in prefixes:
                cand = p + name
                if last:
                    if sh.lexists(cand):
                        new.append(cand)
                else:
                    new.append(cand + "/")
            prefixes = new
            continue
        rx = pattern.compile_pattern(comp)
        dot_ok = comp[0][0] == "."
        for p in prefixes:
            try:
                host = sh.fs.path(p or ".", sh.cwd)
                names = sorted(sh.fs.listdir(host) + ([".", ".."] if dot_ok else []))  # .* matches . and ..
            except OSError:
                continue
            for n in names:
                if n.startswith(".") and not dot_ok:
                    continue
                if rx.fullmatch(n):
                    if last:
                        new.append(p + n)
                    else:
                        try:
                            if stat.S_ISDIR(sh.fs.stat(sh.fs.path(p + n, sh.cwd)).st_mode):
                                new.append(p + n + "/")
                        except OSError:
                            pass
        prefixes = new
    return sorted(prefixes)
