"""Arithmetic expansion `$((...))`: integer expressions with C operators and shell variables."""

from __future__ import annotations

import re
from collections.abc import Callable

from minibuild.errors import ShellError

TOKEN_RE = re.compile(r"\s*(\d[\w@#]*|[A-Za-z_][A-Za-z0-9_]*|\*\*=?|<<=|>>=|\+\+|--|&&|\|\||[<>=!]=|<<|>>|[-+*/%&|^]=|[-+*/%<>&|^!~?:=(),])")

BINARY = {
    ",": 1, "?": 3, "||": 4, "&&": 5, "|": 6, "^": 7, "&": 8, "==": 9, "!=": 9, "<": 10, "<=": 10, ">": 10,
    ">=": 10, "<<": 11, ">>": 11, "+": 12, "-": 12, "*": 13, "/": 13, "%": 13, "**": 14,
}
ASSIGN = {"=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "|=", "^=", "**="}


class ArithError(ShellError):
    """A bad arithmetic expression."""


_DIGIT_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ@_"


def number(tok: str) -> int:
    """A numeric constant as busybox ash reads it: 10, 017, 0x1f, BASE#DIGITS (2..64); wraps at 64 bits."""
    base, digits = 10, tok
    if "#" in tok:
        b, _, digits = tok.partition("#")
        base = int(b) if b.isdigit() else 0
        if not 2 <= base <= 64:
            raise ArithError("arithmetic syntax error")
    elif tok[:2] in ("0x", "0X"):
        base, digits = 16, tok[2:]
    elif tok.startswith("0") and len(tok) > 1:
        base, digits = 8, tok[1:]
    v = 0
    for c in digits if digits or "#" in tok else "!":  # 0x alone is an error, 8# is 0
        d = _DIGIT_CHARS.find(c.lower() if base <= 36 else c)
        if not 0 <= d < base:
            raise ArithError("arithmetic syntax error")
        v = (v * base + d) & ((1 << 64) - 1)  # wrapped as it goes: a literal of any length is O(n)
    return _wrap(v)


def _c_div(a: int, b: int) -> int:
    if b == 0:
        raise ArithError("divide by zero")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _c_mod(a: int, b: int) -> int:
    return a - b * _c_div(a, b)


def _wrap(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def apply(op: str, a: int, b: int) -> int:
    match op:
        case "+": return _wrap(a + b)
        case "-": return _wrap(a - b)
        case "*": return _wrap(a * b)
        case "/": return _c_div(a, b)
        case "%": return _c_mod(a, b)
        case "**": return _wrap(pow(a, b, 1 << 64)) if b >= 0 else 0  # mod 2**64: never a huge power
        case "<<": return _wrap(a << (b & 63))
        case ">>": return a >> (b & 63)
        case "&": return a & b
        case "|": return a | b
        case "^": return a ^ b
        case "==": return int(a == b)
        case "!=": return int(a != b)
        case "<": return int(a < b)
        case "<=": return int(a <= b)
        case ">": return int(a > b)
        case ">=": return int(a >= b)
    raise ArithError("arithmetic syntax error")


def evaluate(text: str, get: Callable[[str], str | None], set_: Callable[[str, str], None]) -> int:
    """Evaluate an arithmetic expression; variables are read with `get` and assigned with `set_`."""
    toks: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if not m:
            raise ArithError("arithmetic syntax error")
        toks.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    p = _P(toks, get, set_)
    if not toks:
        return 0
    v = p.expr(0)
    if p.i != len(toks):
        raise ArithError("arithmetic syntax error")
    return v


class _P:
    def __init__(self, toks: list[str], get: Callable[[str], str | None], set_: Callable[[str, str], None]) -> None:
        self.t = toks
        self.i = 0
        self.get = get
        self.set = set_
        self.skip = 0

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> str:
        if self.i >= len(self.t):
            raise ArithError("arithmetic syntax error")
        tok = self.t[self.i]
        self.i += 1
        return tok

    def var(self, name: str) -> int:
        raw = (self.get(name) or "").strip()
        if raw == "":
            return 0
        if raw[0].isdigit():  # a constant, or busybox's syntax error (x=08; $((x)))
            return number(raw)
        return evaluate(raw, self.get, self.set)

    def assign(self, name: str, v: int) -> None:
        if not self.skip:
            self.set(name, str(v))

    def primary(self) -> int:
        tok = self.take()
        if tok == "(":
            v = self.expr(0)
            if self.take() != ")":
                raise ArithError("arithmetic syntax error")
            return v
        if tok in ("-", "+", "!", "~"):
            v = self.unary_operand()
            return {"-": -v, "+": v, "!": int(not v), "~": ~v}[tok]
        if tok in ("++", "--") and not re.fullmatch(r"[A-Za-z_]\w*", self.peek() or ""):
            self.i -= 1
            self.t[self.i:self.i + 1] = [tok[0], tok[0]]
            return self.primary()
        if tok in ("++", "--"):
            name = self.take()
            v = self.var(name) + (1 if tok == "++" else -1)
            self.assign(name, v)
            return v
        if tok[0].isdigit():
            return number(tok)
        if re.fullmatch(r"[A-Za-z_]\w*", tok):
            nxt = self.peek()
            if nxt in ASSIGN:
                self.take()
                rhs = self.expr(2)
                v = rhs if nxt == "=" else apply(nxt[:-1], self.var(tok), rhs)
                self.assign(tok, v)
                return v
            if nxt in ("++", "--"):
                self.take()
                v = self.var(tok)
                self.assign(tok, v + (1 if nxt == "++" else -1))
                return v
            return self.var(tok)
        raise ArithError("arithmetic syntax error")

    def unary_operand(self) -> int:
        return self.primary()

    def expr(self, minp: int) -> int:
        left = self.primary()
        while True:
            op = self.peek()
            if op in ("++", "--"):  # `5--6` is 5 - -6
                self.t[self.i:self.i + 1] = [op[0], op[0]]
                op = op[0]
            if op is None or op not in BINARY or BINARY[op] < minp:
                return left
            prec = BINARY[op]
            self.take()
            if op == "?":
                if not left:
                    self.skip += 1
                a = self.expr(0)
                if not left:
                    self.skip -= 1
                if self.take() != ":":
                    raise ArithError("arithmetic syntax error")
                if left:
                    self.skip += 1
                b = self.expr(3)
                if left:
                    self.skip -= 1
                left = a if left else b
                continue
            if op in ("&&", "||"):
                short = (op == "&&" and not left) or (op == "||" and left)
                if short:
                    self.skip += 1
                right = self.expr(prec + 1)
                if short:
                    self.skip -= 1
                left = int(bool(left) and bool(right)) if op == "&&" else int(bool(left) or bool(right))
                continue
            right = self.expr(prec if op == "**" else prec + 1)
            if op == ",":
                left = right
            elif self.skip and op in ("/", "%") and right == 0:
                left = 0
            else:
                left = apply(op, left, right)
