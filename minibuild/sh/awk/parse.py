"""The awk language: tokens and a recursive-descent parser to a tree of frozen dataclasses (POSIX grammar)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from minibuild.sh.awk.value import AwkError, strtod

BUILTINS = frozenset({
    "length", "substr", "index", "split", "sub", "gsub", "match", "sprintf", "tolower", "toupper", "int",
    "gensub", "and", "or", "xor", "lshift", "rshift", "compl", "close", "system", "fflush", "sqrt", "exp", "log",
    "sin", "cos", "atan2", "rand", "srand", "systime", "strftime", "mktime"})
KEYWORDS = frozenset({"BEGIN", "END", "function", "func", "if", "else", "while", "for", "do", "break", "continue",
                      "next", "nextfile", "exit", "return", "delete", "print", "printf", "getline", "in"})
_PUNCT = ["**=", "&&", "||", "==", "!=", "<=", ">=", "+=", "-=", "*=", "/=", "%=", "^=", "**", "++", "--", ">>",
          "!~", "{", "}", "(", ")", "[", "]", ";", ",", "+", "-", "*", "/", "%", "^", "!", ">", "<", "|", "?", ":",
          "~", "$", "="]
# after these a newline is not a terminator (busybox: TC_NOTERM)
_NOTERM = {",", "{", "}", ";", "&&", "||", "do", "else", "NEWLINE", "==", "!=", "<=", ">=", "+=", "-=", "*=", "/=",
           "%=", "^=", "**=", "=", "+", "-", "*", "/", "%", "^", "**", "!~", "~", "<", ">", "|", "?", ":", "in",
           "BEGIN", "END"}
_OPERAND_END = {"NAME", "FUNC_NAME", "NUMBER", "STRING", "ERE", ")", "]", "++", "--", "BUILTIN", "$"}
_ESC = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "\\": "\\", "/": "/", '"': '"'}


@dataclass(frozen=True)
class Tok:
    kind: str  # NAME FUNC_NAME BUILTIN NUMBER STRING ERE NEWLINE EOF, a keyword or a punctuation string
    text: str
    line: int
    num: float = 0.0


def unescape(s: str) -> str:
    """A string literal's (or -v value's) escapes as busybox's bb_process_escape_sequence takes them."""
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 >= len(s):
            out.append(c)
            i += 1
            continue
        n = s[i + 1]
        if n in "01234567":
            m = re.match(r"[0-7]{1,3}", s[i + 1:])
            assert m is not None
            out.append(chr(int(m.group(), 8) & 0xFF))
            i += 1 + m.end()
        elif n == "x" and re.match(r"[0-9a-fA-F]", s[i + 2:i + 3]):
            m = re.match(r"[0-9a-fA-F]{1,2}", s[i + 2:])
            assert m is not None
            out.append(chr(int(m.group(), 16)))
            i += 2 + m.end()
        else:
            out.append(_ESC.get(n, n))  # an unknown \z is z
            i += 2
    return "".join(out)


def tokenize(src: str, funcs: frozenset[str]) -> list[Tok]:
    toks: list[Tok] = []
    i, line, n = 0, 1, len(src)

    def last() -> str:
        return toks[-1].kind if toks else "NEWLINE"

    while i < n:
        c = src[i]
        if c in " \t\r":
            i += 1
            continue
        if c == "\\" and src[i + 1:i + 2] == "\n":
            i, line = i + 2, line + 1
            continue
        if c == "#":
            while i < n and src[i] != "\n":
                i += 1
            continue
        if c == "\n":
            line += 1
            i += 1
            if last() not in _NOTERM:
                toks.append(Tok("NEWLINE", "\n", line - 1))
            continue
        if c == '"':
            j = i + 1
            buf: list[str] = []
            while True:
                if j >= n or src[j] == "\n":
                    raise AwkError("Unexpected end of string", line)
                if src[j] == '"':
                    break
                if src[j] == "\\" and j + 1 < n:
                    buf.append(src[j:j + 2])
                    j += 2
                    continue
                buf.append(src[j])
                j += 1
            toks.append(Tok("STRING", unescape("".join(buf)), line))
            i = j + 1
            continue
        if c == "/" and last() not in _OPERAND_END:
            j = i + 1
            buf = []
            while True:
                if j >= n or src[j] == "\n":
                    raise AwkError("Unexpected end of string", line)
                if src[j] == "/":
                    break
                if src[j] == "\\" and j + 1 < n:
                    buf.append("/" if src[j + 1] == "/" else src[j:j + 2])
                    j += 2
                    continue
                buf.append(src[j])
                j += 1
            toks.append(Tok("ERE", "".join(buf), line))
            i = j + 1
            continue
        if c.isdigit() or (c == "." and src[i + 1:i + 2].isdigit()):
            v, end = strtod(src[i:])
            j = i + max(end, 1)
            if src[j:j + 1] == ".":
                raise AwkError("Unexpected token", line)
            toks.append(Tok("NUMBER", src[i:j], line, v))
            i = j
            continue
        if c.isalpha() or c == "_":
            m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(src, i)
            assert m is not None
            word = m.group()
            i = m.end()
            if word in KEYWORDS:
                toks.append(Tok(word, word, line))
            elif word in BUILTINS:
                toks.append(Tok("BUILTIN", word, line))
            elif src[i:i + 1] == "(" or (word in funcs and re.match(r"[ \t]*\(", src[i:])):
                toks.append(Tok("FUNC_NAME", word, line))
            else:
                toks.append(Tok("NAME", word, line))
            continue
        for p in _PUNCT:
            if src.startswith(p, i):
                toks.append(Tok(p, p, line))
                i += len(p)
                break
        else:
            raise AwkError("Unexpected token", line)
    toks.append(Tok("EOF", "", line))
    return toks


# ---- the tree ----

class Expr:
    __slots__ = ()


@dataclass(frozen=True)
class Num(Expr):
    value: float


@dataclass(frozen=True)
class Str(Expr):
    value: str


@dataclass(frozen=True)
class Regex(Expr):
    source: str


@dataclass(frozen=True)
class Var(Expr):
    name: str


@dataclass(frozen=True)
class Index(Expr):
    name: str
    subs: tuple[Expr, ...]


@dataclass(frozen=True)
class Field(Expr):
    index: Expr


@dataclass(frozen=True)
class Assign(Expr):
    op: str  # "=" or "+=" ...
    target: Expr
    value: Expr


@dataclass(frozen=True)
class Cond(Expr):
    test: Expr
    yes: Expr
    no: Expr


@dataclass(frozen=True)
class Logic(Expr):
    op: str  # && ||
    left: Expr
    right: Expr


@dataclass(frozen=True)
class In(Expr):
    subs: tuple[Expr, ...]
    name: str


@dataclass(frozen=True)
class Match(Expr):
    negate: bool
    left: Expr
    regex: Expr


@dataclass(frozen=True)
class Binary(Expr):
    op: str  # + - * / % ^ < <= == != > >= concat
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # - + !
    operand: Expr


@dataclass(frozen=True)
class IncDec(Expr):
    prefix: bool
    delta: int
    target: Expr


@dataclass(frozen=True)
class Call(Expr):
    name: str
    args: tuple[Expr, ...]
    line: int


@dataclass(frozen=True)
class Builtin(Expr):
    name: str
    args: tuple[Expr, ...]
    line: int


@dataclass(frozen=True)
class Getline(Expr):
    kind: str  # "main", "file", "cmd"
    target: Expr | None
    source: Expr | None


@dataclass(frozen=True)
class Grouping(Expr):
    items: tuple[Expr, ...]  # (a, b) before `in`


class Stmt:
    __slots__ = ()


@dataclass(frozen=True)
class Print(Stmt):
    printf: bool
    args: tuple[Expr, ...]
    redirect: str | None  # ">", ">>", "|"
    dest: Expr | None


@dataclass(frozen=True)
class ExprStmt(Stmt):
    expr: Expr


@dataclass(frozen=True)
class Block(Stmt):
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class If(Stmt):
    test: Expr
    yes: Stmt
    no: Stmt | None


@dataclass(frozen=True)
class While(Stmt):
    test: Expr
    body: Stmt
    do: bool


@dataclass(frozen=True)
class For(Stmt):
    init: Expr | None
    test: Expr | None
    step: Expr | None
    body: Stmt


@dataclass(frozen=True)
class ForIn(Stmt):
    var: Expr
    array: str
    body: Stmt


@dataclass(frozen=True)
class Jump(Stmt):
    kind: str  # break continue next nextfile exit return
    value: Expr | None = None


@dataclass(frozen=True)
class Delete(Stmt):
    name: str
    subs: tuple[Expr, ...] | None


@dataclass(frozen=True)
class Rule:
    pattern: Expr | None
    end_pattern: Expr | None  # a range pattern's second half
    body: Block | None  # None: print $0


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[str, ...]
    body: Block


@dataclass(frozen=True)
class Program:
    begin: tuple[Block, ...]
    rules: tuple[Rule, ...]
    end: tuple[Block, ...]
    functions: dict[str, Function] = field(default_factory=dict)


class _Parser:
    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0
        self.no_gt = False  # inside print's expression list, > is a redirection
        self.no_in = False  # inside for( ... ) init, `in` is the for-in keyword

    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def at(self, *kinds: str) -> bool:
        return self.tok.kind in kinds

    def take(self, kind: str) -> Tok:
        t = self.tok
        if t.kind != kind:
            self.fail(t)
        self.i += 1
        return t

    def fail(self, t: Tok) -> None:
        raise AwkError("Unexpected end of string" if t.kind in ("EOF", "NEWLINE") else "Unexpected token", t.line)

    def skip_nl(self) -> None:
        while self.at("NEWLINE", ";") and self.tok.kind == "NEWLINE":
            self.i += 1

    def skip_terms(self) -> None:
        while self.at("NEWLINE", ";"):
            self.i += 1

    # ---- program ----
    def program(self) -> Program:
        begin: list[Block] = []
        end: list[Block] = []
        rules: list[Rule] = []
        funcs: dict[str, Function] = {}
        self.skip_terms()
        while not self.at("EOF"):
            if self.at("BEGIN"):
                self.i += 1
                self.skip_nl()
                begin.append(self.block())
            elif self.at("END"):
                self.i += 1
                self.skip_nl()
                end.append(self.block())
            elif self.at("function", "func"):
                self.i += 1
                t = self.tok
                if t.kind not in ("FUNC_NAME", "NAME"):
                    self.fail(t)
                self.i += 1
                self.take("(")
                params: list[str] = []
                while not self.at(")"):
                    params.append(self.take("NAME").text)
                    if self.at(","):
                        self.i += 1
                        self.skip_nl()
                self.take(")")
                self.skip_nl()
                funcs[t.text] = Function(t.text, tuple(params), self.block())
            elif self.at("{"):
                rules.append(Rule(None, None, self.block()))
            else:
                pat = self.expr()
                pat2 = None
                if self.at(","):
                    self.i += 1
                    self.skip_nl()
                    pat2 = self.expr()
                body = self.block() if self.at("{") else None
                rules.append(Rule(pat, pat2, body))
            if not self.at("EOF", "NEWLINE", ";", "{", "BEGIN", "END", "function", "func") and \
                    self.toks[self.i - 1].kind != "}":
                self.fail(self.tok)
            self.skip_terms()
        return Program(tuple(begin), tuple(rules), tuple(end), funcs)

    def block(self) -> Block:
        self.take("{")
        body: list[Stmt] = []
        self.skip_terms()
        while not self.at("}"):
            if self.at("EOF"):
                self.fail(self.tok)
            body.append(self.stmt())
            self.skip_terms()
        self.take("}")
        return Block(tuple(body))

    def end_simple(self) -> None:
        if self.at(";", "NEWLINE"):
            self.i += 1
        elif not self.at("}", "EOF"):
            self.fail(self.tok)

    def body(self) -> Stmt:
        self.skip_nl()
        if self.at(";"):
            self.i += 1
            return Block(())
        return self.stmt()

    def stmt(self) -> Stmt:
        t = self.tok
        k = t.kind
        if k == "{":
            return self.block()
        if k == "if":
            self.i += 1
            self.take("(")
            test = self.expr()
            self.take(")")
            yes = self.body()
            save = self.i
            self.skip_terms()
            if self.at("else"):
                self.i += 1
                return If(test, yes, self.body())
            self.i = save
            return If(test, yes, None)
        if k == "while":
            self.i += 1
            self.take("(")
            test = self.expr()
            self.take(")")
            if self.at(";"):
                self.i += 1
                return While(test, Block(()), False)
            return While(test, self.body(), False)
        if k == "do":
            self.i += 1
            body = self.body()
            self.skip_terms()
            self.take("while")
            self.take("(")
            test = self.expr()
            self.take(")")
            self.end_simple()
            return While(test, body, True)
        if k == "for":
            self.i += 1
            self.take("(")
            if self.at("NAME") and self.peek().kind == "in" and self.peek(2).kind == "NAME" and \
                    self.peek(3).kind == ")":
                var = Var(self.take("NAME").text)
                self.i += 1
                arr = self.take("NAME").text
                self.take(")")
                return ForIn(var, arr, self.body())
            if self.at("(") and self.peek().kind == "NAME" and self.peek(2).kind == "in" and \
                    self.peek(3).kind == "NAME" and self.peek(4).kind == ")" and self.peek(5).kind == ")":
                self.i += 1
                var = Var(self.take("NAME").text)
                self.i += 1
                arr = self.take("NAME").text
                self.take(")")
                self.take(")")
                return ForIn(var, arr, self.body())
            init = None if self.at(";") else self.simple_expr()
            self.take(";")
            self.skip_nl()
            cond = None if self.at(";") else self.expr()
            self.take(";")
            self.skip_nl()
            step = None if self.at(")") else self.simple_expr()
            self.take(")")
            if self.at(";"):
                self.i += 1
                return For(init, cond, step, Block(()))
            return For(init, cond, step, self.body())
        if k in ("break", "continue", "next", "nextfile"):
            self.i += 1
            self.end_simple()
            return Jump(k)
        if k in ("exit", "return"):
            self.i += 1
            value = None if self.at(";", "NEWLINE", "}", "EOF") else self.expr()
            self.end_simple()
            return Jump(k, value)
        if k == "delete":
            self.i += 1
            name = self.take("NAME").text
            subs = None
            if self.at("["):
                subs = self.subscripts()
            self.end_simple()
            return Delete(name, subs)
        if k in ("print", "printf"):
            self.i += 1
            args = self.print_args()
            if k == "printf" and not args:
                self.fail(self.tok)
            redirect = dest = None
            if self.at(">", ">>", "|"):
                redirect = self.tok.kind
                self.i += 1
                dest = self.concat(no_gt=True)
            self.end_simple()
            return Print(k == "printf", tuple(args), redirect, dest)
        e = self.simple_expr()
        self.end_simple()
        return ExprStmt(e)

    def print_args(self) -> list[Expr]:
        if self.at(";", "NEWLINE", "}", ">", ">>", "|", "EOF"):
            return []
        if self.at("("):  # print (a, b) > "f" -- or print (a)(b), (a) + 1
            save = self.i
            self.i += 1
            try:
                items = self.expr_list(")")
                self.take(")")
                if self.at(";", "NEWLINE", "}", ">", ">>", "|", "EOF"):
                    return items
            except AwkError:
                pass
            self.i = save
        old = self.no_gt
        self.no_gt = True
        try:
            items = [self.expr()]
            while self.at(","):
                self.i += 1
                self.skip_nl()
                items.append(self.expr())
        finally:
            self.no_gt = old
        return items

    def expr_list(self, end: str) -> list[Expr]:
        old_gt, old_in = self.no_gt, self.no_in
        self.no_gt = self.no_in = False
        try:
            items: list[Expr] = []
            self.skip_nl()
            while not self.at(end):
                items.append(self.expr())
                self.skip_nl()
                if self.at(","):
                    self.i += 1
                    self.skip_nl()
                elif not self.at(end):
                    self.fail(self.tok)
            return items
        finally:
            self.no_gt, self.no_in = old_gt, old_in

    def subscripts(self) -> tuple[Expr, ...]:
        self.take("[")
        items = self.expr_list("]")
        self.take("]")
        if not items:
            self.fail(self.tok)
        return tuple(items)

    # ---- expressions, lowest precedence first ----
    def simple_expr(self) -> Expr:
        return self.expr()

    def expr(self) -> Expr:
        return self.ternary()

    def ternary(self) -> Expr:
        test = self.logic_or()
        if self.at("?"):
            self.i += 1
            self.skip_nl()
            yes = self.ternary()
            self.skip_nl()
            self.take(":")
            self.skip_nl()
            no = self.ternary()
            return Cond(test, yes, no)
        if self.at("=", "+=", "-=", "*=", "/=", "%=", "^=", "**=") and _lvalue(test):
            op = self.tok.kind
            self.i += 1
            self.skip_nl()
            value = self.ternary()
            return Assign("^=" if op == "**=" else op, test, value)
        return test

    def logic_or(self) -> Expr:
        e = self.logic_and()
        while self.at("||"):
            self.i += 1
            self.skip_nl()
            e = Logic("||", e, self.logic_and())
        return e

    def logic_and(self) -> Expr:
        e = self.in_expr()
        while self.at("&&"):
            self.i += 1
            self.skip_nl()
            e = Logic("&&", e, self.in_expr())
        return e

    def in_expr(self) -> Expr:
        e = self.match()
        while self.at("in") and not self.no_in:
            self.i += 1
            name = self.take("NAME").text
            e = In(e.items if isinstance(e, Grouping) else (e,), name)
        return e

    def match(self) -> Expr:
        e = self.compare()
        while self.at("~", "!~"):
            neg = self.tok.kind == "!~"
            self.i += 1
            e = Match(neg, e, self.compare())
        return e

    def compare(self) -> Expr:
        e = self.concat(no_gt=self.no_gt)
        ops = ("<", "<=", "==", "!=", ">=") if self.no_gt else ("<", "<=", "==", "!=", ">=", ">")
        if self.at(*ops):
            op = self.tok.kind
            self.i += 1
            e = Binary(op, e, self.concat(no_gt=self.no_gt))
        return e

    def concat(self, no_gt: bool = False) -> Expr:
        e = self.additive()
        while True:
            if self.at("|") and self.peek().kind == "getline":
                self.i += 2
                target = self.getline_target()
                e = Getline("cmd", target, e)
                continue
            if self.at("NAME", "FUNC_NAME", "BUILTIN", "NUMBER", "STRING", "ERE", "$", "!", "(", "-", "+", "++",
                       "--") and not (self.at("in")):
                if self.at("-", "+"):
                    break
                if self.at("(") and isinstance(e, Grouping):
                    break
                e = Binary("concat", e, self.additive())
                continue
            break
        return e

    def additive(self) -> Expr:
        e = self.multiplicative()
        while self.at("+", "-"):
            op = self.tok.kind
            self.i += 1
            e = Binary(op, e, self.multiplicative())
        return e

    def multiplicative(self) -> Expr:
        e = self.unary()
        while self.at("*", "/", "%"):
            op = self.tok.kind
            self.i += 1
            e = Binary(op, e, self.unary())
        return e

    def unary(self) -> Expr:
        if self.at("!", "-", "+"):
            op = self.tok.kind
            self.i += 1
            return Unary(op, self.unary())
        return self.power()

    def power(self) -> Expr:
        e = self.postfix()
        if self.at("^", "**"):
            self.i += 1
            return Binary("^", e, self.unary_power())
        return e

    def unary_power(self) -> Expr:
        if self.at("-", "+", "!"):
            op = self.tok.kind
            self.i += 1
            return Unary(op, self.unary_power())
        return self.power()

    def postfix(self) -> Expr:
        if self.at("++", "--"):
            d = 1 if self.tok.kind == "++" else -1
            self.i += 1
            target = self.postfix()
            if not _lvalue(target):
                self.fail(self.tok)
            return IncDec(True, d, target)
        e = self.primary()
        if self.at("++", "--") and _lvalue(e):
            d = 1 if self.tok.kind == "++" else -1
            self.i += 1
            return IncDec(False, d, e)
        return e

    def getline_target(self) -> Expr | None:
        if self.at("$"):
            self.i += 1
            return Field(self.field_operand())
        if self.at("NAME"):
            name = self.take("NAME").text
            if self.at("["):
                return Index(name, self.subscripts())
            return Var(name)
        return None

    def field_operand(self) -> Expr:
        if self.at("++", "--"):
            return self.postfix()
        if self.at("-", "+", "!"):
            op = self.tok.kind
            self.i += 1
            return Unary(op, self.field_operand())
        return self.primary()

    def primary(self) -> Expr:
        t = self.tok
        k = t.kind
        if k == "NUMBER":
            self.i += 1
            return Num(t.num)
        if k == "STRING":
            self.i += 1
            return Str(t.text)
        if k == "ERE":
            self.i += 1
            return Regex(t.text)
        if k == "$":
            self.i += 1
            return Field(self.field_operand())
        if k == "(":
            self.i += 1
            items = self.expr_list(")")
            self.take(")")
            if not items:
                raise AwkError("Empty sequence", t.line)
            if len(items) > 1:
                if not self.at("in"):
                    self.fail(self.tok)
                return Grouping(tuple(items))
            return items[0]
        if k == "NAME":
            self.i += 1
            if self.at("["):
                return Index(t.text, self.subscripts())
            return Var(t.text)
        if k == "FUNC_NAME":
            self.i += 1
            self.take("(")
            args = self.expr_list(")")
            self.take(")")
            return Call(t.text, tuple(args), t.line)
        if k == "BUILTIN":
            self.i += 1
            if t.text == "length" and not self.at("("):
                return Builtin("length", (), t.line)
            self.take("(")
            args = self.expr_list(")")
            self.take(")")
            return Builtin(t.text, tuple(args), t.line)
        if k == "getline":
            self.i += 1
            target = self.getline_target()
            if self.at("<"):
                self.i += 1
                return Getline("file", target, self.primary_for_redirect())
            return Getline("main", target, None)
        if k in ("-", "+", "!"):
            self.i += 1
            return Unary(k, self.unary())
        self.fail(t)
        raise AssertionError("unreachable")

    def primary_for_redirect(self) -> Expr:
        if self.at("$"):
            self.i += 1
            return Field(self.field_operand())
        return self.primary()


def _lvalue(e: Expr) -> bool:
    return isinstance(e, (Var, Index, Field))


def parse(src: str) -> Program:
    funcs = frozenset(re.findall(r"\bfunc(?:tion)?[ \t]+([A-Za-z_][A-Za-z0-9_]*)", src))
    return _Parser(tokenize(src, funcs)).program()
