"""Running an awk program (busybox awk's semantics): records, fields, variables, arrays, builtins, output."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from minibuild.sh.awk.parse import (Assign, Binary, Block, Builtin, Call, Cond, Delete, Expr, ExprStmt, Field, For,
                                    ForIn, Getline, Grouping, If, In, IncDec, Index, Jump, Logic, Match, Num, Print,
                                    Program, Regex, Stmt, Str, Unary, Var, While)
from minibuild.sh.awk.value import (PROGRAM_END, AwkError, StrNum, Value, compare, format_number, is_numeric, num_to_str, to_num,
                                    to_str, truth)
from minibuild.sh.builtins.grep import bre_to_re, ere_to_re
from minibuild.sh.cformat import Spec, render_bytes
from minibuild.sh.streams import Buffer

if TYPE_CHECKING:
    from minibuild.sh.builtins.base import Ctx

_PRIMES = (251, 1021, 4093, 16381, 65521)
_SPACE = re.compile(r"[^ \t\n\v\f\r]+")


def latin(data: bytes) -> str:
    return data.decode("latin-1")


def unlatin(text: str) -> bytes:
    return text.encode("latin-1")


def _hashidx(name: str) -> int:
    idx = 0
    for ch in name:
        c = ord(ch)
        idx = ((c - 256 if c >= 128 else c) + (idx << 6) - idx) & 0xFFFFFFFF
    return idx


class AwkArray:
    """An associative array that iterates in busybox's hash-table order (for-in must list keys as busybox does)."""

    def __init__(self) -> None:
        self.values: dict[str, Value] = {}
        self.buckets: list[list[str]] = [[] for _ in range(61)]
        self.nprime = 0

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def __len__(self) -> int:
        return len(self.values)

    def get(self, key: str) -> Value:
        if key not in self.values:
            self.set(key, None)
        return self.values[key]

    def set(self, key: str, value: Value) -> None:
        if key not in self.values:
            if (len(self.values) + 1) // len(self.buckets) > 10 and self.nprime < len(_PRIMES):
                size = _PRIMES[self.nprime]
                self.nprime += 1
                new: list[list[str]] = [[] for _ in range(size)]
                for chain in self.buckets:
                    for k in chain:
                        new[_hashidx(k) % size].insert(0, k)
                self.buckets = new
            self.buckets[_hashidx(key) % len(self.buckets)].insert(0, key)
        self.values[key] = value

    def delete(self, key: str) -> None:
        if key in self.values:
            del self.values[key]
            self.buckets[_hashidx(key) % len(self.buckets)].remove(key)

    def clear(self) -> None:
        self.values.clear()
        self.buckets = [[] for _ in self.buckets]

    def keys(self) -> list[str]:
        return [k for chain in self.buckets for k in chain]


@dataclass
class _Lazy:
    """An unset variable passed to a function: it becomes the caller's array if the function uses it as one."""

    scope: dict[str, "Slot"]
    name: str


Slot = Value | AwkArray | _Lazy


class _Reader:
    def __init__(self, data: str) -> None:
        self.data = data
        self.pos = 0

    def record(self, rs: str, regex: Callable[[str], re.Pattern[str]]) -> str | None:
        d, p = self.data, self.pos
        if rs == "":
            while p < len(d) and d[p] == "\n":
                p += 1
            if p >= len(d):
                self.pos = p
                return None
            i = d.find("\n\n", p)
            if i < 0:
                self.pos = len(d)
                return d[p:]
            j = i
            while j < len(d) and d[j] == "\n":
                j += 1
            self.pos = j
            return d[p:i]
        if p >= len(d):
            return None
        if len(rs) == 1:
            i = d.find(rs, p)
            if i < 0:
                self.pos = len(d)
                return d[p:]
            self.pos = i + 1
            return d[p:i]
        m = regex(rs).search(d, p)
        if not m or m.end() == m.start():
            self.pos = len(d)
            return d[p:]
        self.pos = m.end()
        return d[p:m.start()]


class _Next(Exception):
    pass


class _NextFile(Exception):
    pass


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    def __init__(self, value: Value) -> None:
        self.value = value


class _Output:
    def __init__(self, kind: str, fh: IO[bytes] | None = None, cmd: str = "") -> None:
        self.kind = kind  # "stdout" "stderr" "null" "file" "pipe"
        self.fh = fh
        self.cmd = cmd
        self.chunks: list[bytes] = []


class Awk:
    """One awk run over a program, its operands and the ctx's streams and root."""

    def __init__(self, ctx: "Ctx", program: Program, operands: list[str], assigns: list[tuple[str, str]],
                 fs: str | None) -> None:
        self.ctx = ctx
        self.prog = program
        self.limit = ctx.shell.limits.max_bytes
        self.g: dict[str, Slot] = {
            "CONVFMT": "%.6g", "OFMT": "%.6g", "FS": " ", "OFS": " ", "ORS": "\n", "RS": "\n", "SUBSEP": "\x1c",
            "NR": 0.0, "FNR": 0.0, "NF": 0.0, "FILENAME": None, "RSTART": 0.0, "RLENGTH": -1.0}
        env = AwkArray()
        for k, v in ctx.env.items():
            env.set(latin(k.encode("utf-8", "surrogateescape")), StrNum(latin(v.encode("utf-8", "surrogateescape"))))
        self.g["ENVIRON"] = env
        argv = AwkArray()
        argv.set("0", StrNum("awk"))
        for i, a in enumerate(operands, 1):
            argv.set(str(i), StrNum(a))
        self.g["ARGV"] = argv
        self.g["ARGC"] = float(len(operands) + 1)
        if fs is not None:
            self.g["FS"] = fs
        for name, val in assigns:
            self.g[name] = StrNum(val)
        self.frames: list[dict[str, Slot]] = []
        self.record = ""
        self.record_value: Value = ""
        self.fields: list[Value] | None = []
        self.split_fs = " "
        self.regex_cache: dict[tuple[str, bool], re.Pattern[str]] = {}
        self.outputs: dict[str, _Output] = {}
        self.readers: dict[str, _Reader | None] = {}
        self.main: _Reader | None = None
        self.argind = 0
        self.files_seen = False
        self.range_on: dict[int, bool] = {}
        self.exiting = False
        self.ticks = 0
        self.depth = 0
        self.exit_code = 0

    # ---- running ----
    def run(self) -> int:
        code = 0
        try:
            try:
                for b in self.prog.begin:
                    self.block(b)
                if self.prog.rules or self.prog.end:
                    self.main_loop()
            except _Exit as e:
                code = e.code
            except (_Next, _NextFile):
                pass
            self.exiting = True
            try:
                for b in self.prog.end:
                    self.block(b)
            except _Exit as e:
                code = e.code
            except (_Next, _NextFile):
                pass
        finally:
            self.close_all()
        return code & 0xFF

    def main_loop(self) -> None:
        while True:
            if self.main is None:
                self.main = self.next_file()
                if self.main is None:
                    return
                self.g["FNR"] = 0.0
            rec = self.main.record(self.rs(), self.regex)
            if rec is None:
                self.main = None
                continue
            self.g["NR"] = to_num(self.val("NR")) + 1
            self.g["FNR"] = to_num(self.val("FNR")) + 1
            self.set_record(StrNum(rec))
            self.tick()
            try:
                for n, rule in enumerate(self.prog.rules):
                    if rule.end_pattern is not None:
                        assert rule.pattern is not None
                        if self.range_on.get(n) or truth(self.eval(rule.pattern)):
                            self.range_on[n] = not truth(self.eval(rule.end_pattern))
                        else:
                            continue
                    elif rule.pattern is not None and not truth(self.eval(rule.pattern)):
                        continue
                    if rule.body is None:
                        self.write(None, None, unlatin(self.record + self.sval("ORS")))
                    else:
                        self.block(rule.body)
            except _Next:
                pass
            except _NextFile:
                self.main = None

    def next_file(self) -> _Reader | None:
        while True:
            argc = int(to_num(self.val("ARGC")))
            if self.argind + 1 >= argc:
                if self.files_seen:
                    return None
                self.files_seen = True
                self.g["FILENAME"] = "-"
                return _Reader(latin(self.ctx.stdin.read()))
            self.argind += 1
            argv = self.array("ARGV")
            key = str(self.argind)
            name = to_str(argv.values.get(key)) if key in argv else ""
            if not name:
                continue
            m = re.fullmatch(r"([A-Za-z0-9_][A-Za-z0-9_]*)=(.*)", name, re.DOTALL)
            if m and not m.group(1)[0].isdigit() or (m and name[0] == "_"):
                from minibuild.sh.awk.parse import unescape
                assert m is not None
                self.assign_var(m.group(1), StrNum(unescape(m.group(2))))
                continue
            self.files_seen = True
            self.g["FILENAME"] = StrNum(name)
            return _Reader(latin(self.read_file(name)))

    def read_file(self, name: str) -> bytes:
        try:
            return self.ctx.read_input(name.encode("latin-1").decode("utf-8", "surrogateescape"))
        except IsADirectoryError as e:  # busybox opens it, then fails to read: a program-located error
            raise AwkError(e.strerror or "Is a directory", PROGRAM_END) from None
        except OSError as e:
            raise AwkError(f"{name}: {e.strerror or e}", -1) from None

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks % 4096 == 0:
            self.ctx.shell.check_time()

    # ---- variables ----
    def rs(self) -> str:
        return self.sval("RS")

    def sval(self, name: str) -> str:
        return to_str(self.val(name), self.convfmt())

    def convfmt(self) -> str:
        v = self.g.get("CONVFMT")
        return v if isinstance(v, str) else "%.6g"

    def scope_of(self, name: str) -> dict[str, Slot]:
        if self.frames and name in self.frames[-1]:
            return self.frames[-1]
        return self.g

    def val(self, name: str) -> Value:
        if name == "NF":
            self.split()
            return self.g["NF"] if isinstance(self.g["NF"], (float, str)) else 0.0
        v = self.scope_of(name).get(name)
        if isinstance(v, AwkArray):
            raise AwkError(f"can't use array {name} in scalar context")
        return None if isinstance(v, _Lazy) else v

    def assign_var(self, name: str, value: Value) -> None:
        scope = self.scope_of(name)
        if isinstance(scope.get(name), AwkArray):
            raise AwkError(f"can't assign to {name}; it's an array name.")
        if scope is self.g:
            if name == "NF":
                self.split()
                self.g["NF"] = value
                n = int(to_num(value))
                if n < 0:
                    raise AwkError("NF set to negative value")
                assert self.fields is not None
                self.fields = (self.fields + [None] * n)[:n]
                self.rebuild()
                return
            if name == "FS":
                self.split()
        scope[name] = value

    def array(self, name: str) -> AwkArray:
        scope = self.scope_of(name)
        v = scope.get(name)
        if isinstance(v, AwkArray):
            return v
        if isinstance(v, _Lazy):
            arr = v.scope.get(v.name)
            if not isinstance(arr, AwkArray):
                arr = AwkArray()
                v.scope[v.name] = arr
            scope[name] = arr
            return arr
        arr = AwkArray()  # busybox turns a scalar into an array without a word
        scope[name] = arr
        return arr

    def key(self, subs: tuple[Expr, ...]) -> str:
        cf = self.convfmt()
        if len(subs) == 1:
            return to_str(self.eval(subs[0]), cf)
        return self.sval("SUBSEP").join(to_str(self.eval(s), cf) for s in subs)

    # ---- records and fields ----
    def set_record(self, value: Value) -> None:
        self.record_value = value
        self.record = to_str(value, self.convfmt())
        self.fields = None

    def split(self) -> None:
        if self.fields is None:
            parts = self.split_text(self.record, self.sval("FS"))
            self.fields = list(parts)
            self.g["NF"] = float(len(parts))

    def split_text(self, s: str, fs: str, regex: re.Pattern[str] | None = None) -> list[StrNum]:
        para = self.rs() == ""
        if regex is None and len(fs) > 1:
            regex = self.regex(fs)
        if regex is not None:
            if not s:
                return []
            out: list[StrNum] = []
            pos = 0
            while True:
                m = regex.search(s, pos)
                if m is None:
                    out.append(StrNum(s[pos:]))
                    break
                so, eo = m.span()
                if eo == so:  # busybox: an empty match takes one character as the field
                    if so == pos:
                        so = eo = pos + 1
                    out.append(StrNum(s[pos:so]))
                    pos = so
                else:
                    out.append(StrNum(s[pos:so]))
                    pos = eo
                if pos >= len(s):
                    if eo != so and m.end() == len(s):
                        out.append(StrNum(""))
                    break
            return out
        if fs == " ":
            return [StrNum(w) for w in _SPACE.findall(s)]
        if fs == "":
            return [StrNum(c) for c in s]
        if not s:
            return []
        if para:
            return [StrNum(w) for w in re.split("[" + re.escape(fs) + "\n]", s)]
        return [StrNum(w) for w in s.split(fs)]

    def field(self, i: int) -> Value:
        if i < 0:
            raise AwkError("Access to negative field")
        if i == 0:
            return self.record_value
        self.split()
        assert self.fields is not None
        return self.fields[i - 1] if i <= len(self.fields) else None

    def set_field(self, i: int, value: Value) -> None:
        if i < 0:
            raise AwkError("Access to negative field")
        if i == 0:
            self.set_record(value)
            return
        self.split()
        assert self.fields is not None
        if i > len(self.fields):
            self.fields.extend([None] * (i - len(self.fields)))
            self.g["NF"] = float(i)
        self.fields[i - 1] = value
        self.rebuild()

    def rebuild(self) -> None:
        assert self.fields is not None
        cf = self.convfmt()
        text = self.sval("OFS").join(to_str(f, cf) for f in self.fields)
        self.check(text)
        self.record = self.record_value = text

    def check(self, s: str) -> str:
        if len(s) > self.limit:
            from minibuild.errors import ShellError
            raise ShellError("awk: " + self.ctx.shell.limits.bytes_message("a string"))
        return s

    # ---- regular expressions ----
    def regex(self, source: str, dynamic: bool = True) -> re.Pattern[str]:
        key = (source, dynamic)
        rx = self.regex_cache.get(key)
        if rx is None:
            try:
                rx = re.compile(ere_to_re(source), re.ASCII | re.DOTALL)
            except re.error:
                if not dynamic:
                    raise AwkError(f"bad regex '{source}'") from None
                try:
                    rx = re.compile(bre_to_re(source), re.ASCII | re.DOTALL)
                except re.error:
                    raise AwkError(f"bad regex '{source}'") from None
            self.regex_cache[key] = rx
        return rx

    def as_regex(self, e: Expr) -> re.Pattern[str]:
        if isinstance(e, Regex):
            return self.regex(e.source, dynamic=False)
        return self.regex(to_str(self.eval(e), self.convfmt()))

    # ---- statements ----
    def block(self, b: Block) -> None:
        for s in b.body:
            self.stmt(s)

    def stmt(self, s: Stmt) -> None:
        if isinstance(s, ExprStmt):
            self.eval(s.expr)
        elif isinstance(s, Print):
            self.print_(s)
        elif isinstance(s, Block):
            self.block(s)
        elif isinstance(s, If):
            if truth(self.eval(s.test)):
                self.stmt(s.yes)
            elif s.no is not None:
                self.stmt(s.no)
        elif isinstance(s, While):
            first = s.do
            while first or truth(self.eval(s.test)):
                first = False
                self.tick()
                try:
                    self.stmt(s.body)
                except _Break:
                    break
                except _Continue:
                    continue
        elif isinstance(s, For):
            if s.init is not None:
                self.eval(s.init)
            while s.test is None or truth(self.eval(s.test)):
                self.tick()
                try:
                    self.stmt(s.body)
                except _Break:
                    break
                except _Continue:
                    pass
                if s.step is not None:
                    self.eval(s.step)
        elif isinstance(s, ForIn):
            for k in self.array(s.array).keys():
                self.tick()
                self.assign(s.var, k)
                try:
                    self.stmt(s.body)
                except _Break:
                    break
                except _Continue:
                    continue
        elif isinstance(s, Delete):
            arr = self.array(s.name)
            if s.subs is None:
                arr.clear()
            else:
                arr.delete(self.key(s.subs))
        elif isinstance(s, Jump):
            self.jump(s)
        else:  # pragma: no cover
            raise AwkError("Possible syntax error")

    def jump(self, s: Jump) -> None:
        if s.kind == "break":
            raise _Break()
        if s.kind == "continue":
            raise _Continue()
        if s.kind == "next":
            raise _Next()
        if s.kind == "nextfile":
            raise _NextFile()
        if s.kind == "return":
            raise _Return(self.eval(s.value) if s.value is not None else None)
        if s.value is not None:
            self.exit_code = int(to_num(self.eval(s.value))) & 0xFF
        raise _Exit(self.exit_code)

    def print_(self, s: Print) -> None:
        cf = self.convfmt()
        if s.printf:
            text = self.sprintf([self.eval(a) for a in s.args])
        elif not s.args:
            text = self.record + self.sval("ORS")
        else:
            ofmt = self.sval("OFMT")
            parts = []
            for a in s.args:
                v = self.eval(a)
                parts.append(num_to_str(v, ofmt) if isinstance(v, float) else to_str(v, cf))
            text = self.sval("OFS").join(parts) + self.sval("ORS")
        self.check(text)
        dest = to_str(self.eval(s.dest), cf) if s.dest is not None else None
        self.write(s.redirect, dest, unlatin(text))

    def write(self, how: str | None, dest: str | None, data: bytes) -> None:
        if dest is None:
            self.ctx.out(data)
            return
        out = self.outputs.get(dest)
        if out is None:
            if how == "|":
                out = _Output("pipe", cmd=dest)
            elif dest == "/dev/stdout" or dest == "-" and False:
                out = _Output("stdout")
            elif dest == "/dev/stderr":
                out = _Output("stderr")
            elif dest == "/dev/null":
                out = _Output("null")
            else:
                path = dest.encode("latin-1").decode("utf-8", "surrogateescape")
                try:
                    fh = self.ctx.fs.open_write(self.ctx.path(path), append=how == ">>")
                except OSError as e:
                    raise AwkError(f"can't open '{dest}': {e.strerror or e}", -1) from None
                out = _Output("file", fh)
            self.outputs[dest] = out
        if out.kind == "stdout":
            self.ctx.out(data)
        elif out.kind == "stderr":
            self.ctx.stderr.write(data)
        elif out.kind == "file":
            assert out.fh is not None
            out.fh.write(data)
            out.fh.flush()
        elif out.kind == "pipe":
            out.chunks.append(data)

    def close(self, name: str) -> float:
        code = 0
        out = self.outputs.pop(name, None)
        if out is not None:
            code = self.finish(out)
        if name in self.readers:
            del self.readers[name]
        return float(code)

    def finish(self, out: _Output) -> int:
        if out.kind == "file" and out.fh is not None:
            out.fh.close()
        elif out.kind == "pipe":
            return self.shell(out.cmd, b"".join(out.chunks))
        return 0

    def close_all(self) -> None:
        for name in list(self.outputs):
            self.finish(self.outputs.pop(name))

    def shell(self, cmd: str, stdin: bytes, capture: Buffer | None = None) -> int:
        argv = ["sh", "-c", cmd.encode("latin-1").decode("utf-8", "surrogateescape")]
        return self.ctx.shell.run_utility(argv, stdin=stdin, stdout=capture or self.ctx.stdout,
                                          stderr=self.ctx.stderr)

    # ---- expressions ----
    def eval(self, e: Expr) -> Value:
        t = type(e)
        if t is Num:
            assert isinstance(e, Num)
            return e.value
        if t is Str:
            assert isinstance(e, Str)
            return e.value
        if t is Var:
            assert isinstance(e, Var)
            return self.val(e.name)
        if t is Field:
            assert isinstance(e, Field)
            return self.field(int(to_num(self.eval(e.index))))
        if t is Index:
            assert isinstance(e, Index)
            return self.array(e.name).get(self.key(e.subs))
        if t is Binary:
            assert isinstance(e, Binary)
            return self.binary(e)
        if t is Assign:
            assert isinstance(e, Assign)
            if e.op == "=":
                v = self.eval(e.value)
            else:
                right = to_num(self.eval(e.value))
                v = self.arith(e.op[0], to_num(self.eval(e.target)), right)
            self.assign(e.target, v)
            return v
        if t is Logic:
            assert isinstance(e, Logic)
            left = truth(self.eval(e.left))
            if e.op == "&&":
                return 1.0 if left and truth(self.eval(e.right)) else 0.0
            return 1.0 if left or truth(self.eval(e.right)) else 0.0
        if t is Cond:
            assert isinstance(e, Cond)
            return self.eval(e.yes) if truth(self.eval(e.test)) else self.eval(e.no)
        if t is Unary:
            assert isinstance(e, Unary)
            v = self.eval(e.operand)
            if e.op == "!":
                return 0.0 if truth(v) else 1.0
            n = to_num(v)
            return -n if e.op == "-" else n
        if t is IncDec:
            assert isinstance(e, IncDec)
            old = to_num(self.eval(e.target))
            new = old + e.delta
            self.assign(e.target, new)
            return new if e.prefix else old
        if t is Regex:
            assert isinstance(e, Regex)
            return 1.0 if self.regex(e.source, dynamic=False).search(self.record) else 0.0
        if t is Match:
            assert isinstance(e, Match)
            s = to_str(self.eval(e.left), self.convfmt())
            hit = self.as_regex(e.regex).search(s) is not None
            return 1.0 if hit != e.negate else 0.0
        if t is In:
            assert isinstance(e, In)
            return 1.0 if self.key(e.subs) in self.array(e.name) else 0.0
        if t is Builtin:
            assert isinstance(e, Builtin)
            return self.builtin(e)
        if t is Call:
            assert isinstance(e, Call)
            return self.call(e)
        if t is Getline:
            assert isinstance(e, Getline)
            return self.getline(e)
        if t is Grouping:
            raise AwkError("Possible syntax error")
        raise AwkError("Possible syntax error")  # pragma: no cover

    def assign(self, target: Expr, v: Value) -> None:
        if isinstance(target, Var):
            self.assign_var(target.name, v)
        elif isinstance(target, Index):
            self.array(target.name).set(self.key(target.subs), v)
        elif isinstance(target, Field):
            self.set_field(int(to_num(self.eval(target.index))), v)

    def arith(self, op: str, a: float, b: float) -> float:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                raise AwkError("Division by zero")
            return a / b
        if op == "%":
            if b == 0:
                raise AwkError("Division by zero")
            q = a / b
            return a - float(math.trunc(q) if math.isfinite(q) else 0) * b
        if op == "^":
            try:
                return math.pow(a, b)
            except (OverflowError, ValueError):
                return math.inf if a > 0 else math.nan
        raise AwkError("Possible syntax error")  # pragma: no cover

    def binary(self, e: Binary) -> Value:
        op = e.op
        if op == "concat":
            cf = self.convfmt()
            return self.check(to_str(self.eval(e.left), cf) + to_str(self.eval(e.right), cf))
        left = self.eval(e.left)
        right = self.eval(e.right)
        if op in ("<", "<=", "==", "!=", ">", ">="):
            c = compare(left, right, self.convfmt())
            r = {"<": c < 0, "<=": c <= 0, "==": c == 0, "!=": c != 0, ">": c > 0, ">=": c >= 0}[op]
            return 1.0 if r else 0.0
        return self.arith(op, to_num(left), to_num(right))

    def call(self, e: Call) -> Value:
        fn = self.prog.functions.get(e.name)
        if fn is None:
            raise AwkError("Call to undefined function", e.line)
        if len(e.args) > len(fn.params):
            raise AwkError(f"function '{e.name}' called with more arguments than declared", e.line)
        frame: dict[str, Slot] = {}
        for i, p in enumerate(fn.params):
            if i >= len(e.args):
                frame[p] = None
                continue
            a = e.args[i]
            if isinstance(a, Var):
                scope = self.scope_of(a.name)
                cur = scope.get(a.name)
                if isinstance(cur, (AwkArray, _Lazy)):
                    frame[p] = cur
                    continue
                if cur is None and a.name not in ("NF",):
                    frame[p] = _Lazy(scope, a.name)
                    continue
            frame[p] = self.eval(a)
        self.depth += 1
        if self.depth > self.ctx.shell.limits.max_depth:
            from minibuild.errors import ShellError
            raise ShellError("awk: " + self.ctx.shell.limits.depth_message())
        self.frames.append(frame)
        try:
            self.block(fn.body)
            return None
        except _Return as r:
            return r.value
        finally:
            self.frames.pop()
            self.depth -= 1

    def getline(self, e: Getline) -> Value:
        if e.kind == "main":
            if self.main is None:
                self.main = self.next_file()
                if self.main is None:
                    return 0.0
            rec = self.main.record(self.rs(), self.regex)
            if rec is None:
                return 0.0
            self.g["NR"] = to_num(self.val("NR")) + 1
            self.g["FNR"] = to_num(self.val("FNR")) + 1
        else:
            assert e.source is not None
            name = to_str(self.eval(e.source), self.convfmt())
            if name not in self.readers:
                if e.kind == "cmd":
                    buf = Buffer(self.limit)
                    self.shell(name, b"", capture=buf)
                    self.readers[name] = _Reader(latin(buf.getvalue()))
                else:
                    try:
                        self.readers[name] = _Reader(latin(self.ctx.read_input(
                            name.encode("latin-1").decode("utf-8", "surrogateescape"))))
                    except OSError:
                        self.readers[name] = None
            reader = self.readers[name]
            if reader is None:
                return -1.0
            rec = reader.record(self.rs(), self.regex)
            if rec is None:
                return 0.0
        if e.target is None:
            self.set_record(StrNum(rec))
        else:
            self.assign(e.target, StrNum(rec))
        return 1.0

    # ---- printf ----
    def sprintf(self, args: list[Value]) -> str:
        if not args:
            raise AwkError("Too few arguments for builtin")
        fmt = to_str(args[0], self.convfmt())
        rest = args[1:]
        out: list[str] = []
        i = 0
        ai = 0
        while i < len(fmt):
            j = i
            while j < len(fmt):
                if fmt[j] == "%":
                    if fmt[j + 1:j + 2] == "%":
                        j += 2
                        continue
                    j += 1
                    break
                j += 1
            else:
                out.append(fmt[i:j].replace("%%", "%"))
                break
            while j < len(fmt) and not fmt[j].isalpha():
                if fmt[j] == "*":
                    raise AwkError("%*x formats are not supported")
                j += 1
            seg = fmt[i:j + 1]
            i = j + 1
            arg = rest[ai] if ai < len(rest) else None
            ai += 1
            conv = seg[-1] if j < len(fmt) else ""
            pct = seg.rfind("%")
            head, spec = seg[:pct].replace("%%", "%"), seg[pct:]
            if conv == "c" or not conv:
                if not conv:
                    out.append(head + spec)
                    continue
                if is_numeric(arg):
                    ch = chr(int(to_num(arg)) & 0xFF) if math.isfinite(to_num(arg)) else "\0"
                else:
                    ch = (to_str(arg)[:1] or "\0")
                out.append(head + _c_string(spec[:-1] + "s", ch))
            elif conv == "s":
                out.append(head + _c_string(spec, to_str(arg, self.convfmt())))
            else:
                out.append(format_number(seg.replace("%%", "\0"), to_num(arg)).replace("\0", "%"))
        return self.check("".join(out))

    # ---- builtin functions ----
    def builtin(self, e: Builtin) -> Value:
        name, args = e.name, e.args
        cf = self.convfmt()

        def s(i: int) -> str:
            return to_str(self.eval(args[i]), cf)

        def n(i: int) -> float:
            return to_num(self.eval(args[i]))

        need = {"substr": 2, "index": 2, "split": 2, "sub": 2, "gsub": 2, "match": 2, "sprintf": 1, "tolower": 1,
                "toupper": 1, "int": 1, "gensub": 3, "and": 2, "or": 2, "xor": 2, "lshift": 2, "rshift": 2,
                "compl": 1, "close": 1, "system": 1, "atan2": 2, "sqrt": 1, "exp": 1, "log": 1, "sin": 1,
                "cos": 1}.get(name, 0)
        if len(args) < need:
            raise AwkError("Too few arguments for builtin", e.line)
        if name == "length":
            if not args:
                return float(len(self.record))
            a = args[0]
            if isinstance(a, Var):
                slot = self.scope_of(a.name).get(a.name)
                if isinstance(slot, AwkArray):
                    return float(len(slot))
            return float(len(s(0)))
        if name == "substr":
            text = s(0)
            start = int(n(1) - 1) if math.isfinite(n(1)) else 0
            start = max(0, min(start, len(text)))
            count = int(n(2)) if len(args) > 2 else len(text) - start
            return text[start:start + max(count, 0)]
        if name == "index":
            hay, needle = s(0), s(1)
            return float(hay.find(needle) + 1) if needle else 0.0
        if name == "split":
            text = s(0)
            if not isinstance(args[1], Var):
                raise AwkError("Not an array", e.line)
            if len(args) > 2:
                sep = args[2]
                parts = self.split_text(text, "", self.regex(sep.source, False)) if isinstance(sep, Regex) else \
                    self.split_text(text, s(2))
            else:
                parts = self.split_text(text, self.sval("FS"))
            arr = self.array(args[1].name)
            arr.clear()
            for k, p in enumerate(parts, 1):
                arr.set(str(k), p)
            return float(len(parts))
        if name in ("sub", "gsub", "gensub"):
            return self.substitute(e, cf)
        if name == "match":
            m = self.as_regex(args[1]).search(s(0)) if True else None
            start, length = (m.start() + 1, m.end() - m.start()) if m else (0, -1)
            self.g["RSTART"] = float(start)
            self.g["RLENGTH"] = float(length)
            return float(start)
        if name == "sprintf":
            text = self.sprintf([self.eval(a) for a in args])
            nul = text.find("\0")
            return text if nul < 0 else text[:nul]  # the value is a C string (printf writes the NUL)
        if name in ("tolower", "toupper"):
            text = s(0)
            return "".join((c.lower() if name == "tolower" else c.upper()) if c.isascii() else c for c in text)
        if name == "int":
            v = n(0)
            return float(math.trunc(v)) if math.isfinite(v) else v
        if name in ("and", "or", "xor", "lshift", "rshift", "compl"):
            u = _ulong(n(0))
            if name == "compl":
                return float(~u & (2**64 - 1))
            w = _ulong(n(1))
            r = {"and": u & w, "or": u | w, "xor": u ^ w, "lshift": (u << (w & 63)) & (2**64 - 1),
                 "rshift": u >> (w & 63)}[name]
            return float(r)
        if name == "close":
            return self.close(s(0))
        if name == "system":
            return float(self.shell(s(0), b""))
        if name == "fflush":
            return 0.0
        if name in ("sqrt", "exp", "log", "sin", "cos", "atan2"):
            x = n(0)
            try:
                if name == "atan2":
                    return math.atan2(x, n(1))
                if name == "log":
                    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)
                if name == "sqrt":
                    return math.sqrt(x) if x >= 0 else math.nan
                return {"exp": math.exp, "sin": math.sin, "cos": math.cos}[name](x)
            except OverflowError:
                return math.inf
        from minibuild.errors import UnsupportedCommandError
        raise UnsupportedCommandError(f"awk: {name}() is not available in the emulated shell (its value depends on "
                                      f"the C library or the clock); use --executor chroot", command="awk")

    def substitute(self, e: Builtin, cf: str) -> Value:
        args = e.args
        rx = self.as_regex(args[0])
        repl = to_str(self.eval(args[1]), cf)
        if e.name == "gensub":
            how = self.eval(args[2])
            count = 0 if to_str(how, cf)[:1] in ("g", "G") else max(int(to_num(how)), 1)
            target_val = self.eval(args[3]) if len(args) > 3 else self.record_value
            text, _ = _awk_sub(rx, repl, count, to_str(target_val, cf), subexp=True)
            return text
        count = 1 if e.name == "sub" else 0
        target = args[2] if len(args) > 2 else Field(Num(0.0))
        text, nsub = _awk_sub(rx, repl, count, to_str(self.eval(target), cf), subexp=False)
        if nsub:
            if isinstance(target, (Var, Index, Field)):
                self.assign(target, self.check(text))
        return float(nsub)


def _ulong(d: float) -> int:
    if not math.isfinite(d):
        return 0
    return int(d) & (2**64 - 1) if d >= 0 else (-(int(-d) & (2**64 - 1))) & (2**64 - 1)


def _c_string(spec: str, text: str) -> str:
    """printf's %s with C's flags, width and precision (no Python-only forms)."""
    m = re.fullmatch(r"%([-+ #0]*)(\d*)(?:\.(\d*))?[hlLqjzt]*s", spec)
    if not m:
        return spec
    flags, width, prec = m.groups()
    c_spec = Spec(flags, int(width) if width else None, int(prec or 0) if prec is not None else None, "s")
    return latin(render_bytes(c_spec, unlatin(text)))


def _awk_sub(rx: re.Pattern[str], repl: str, count: int, text: str, *, subexp: bool) -> tuple[str, int]:
    """busybox's awk_sub: replace the count-th match (0: every one); & and \\N (gensub) in repl."""
    out: list[str] = []
    pos = 0
    nmatch = 0
    while pos <= len(text):
        m = rx.search(text, pos)
        if m is None:
            break
        so, eo = m.span()
        out.append(text[pos:so])
        nmatch += 1
        if count == 0 or nmatch >= count:
            out.append(_replacement(repl, m, subexp))
        else:
            out.append(text[so:eo])
        pos = eo
        if count and nmatch == count:
            break
        if eo == so:
            if pos >= len(text):
                break
            out.append(text[pos])
            pos += 1
    out.append(text[pos:])
    done = nmatch if count == 0 else (1 if nmatch >= count else 0)
    return "".join(out), done


def _replacement(repl: str, m: re.Match[str], subexp: bool) -> str:
    """The text for one match: busybox's rules for `&`, `\\&`, `\\\\&` and (gensub) `\\N`."""
    out: list[str] = []
    nbs = 0
    for c in repl:
        if c == "\\":
            nbs += 1
            continue
        if c == "&" or (subexp and c.isdigit()):
            out.append("\\" * (nbs + 1 - ((nbs + 3) >> 1)))
            if (nbs if c == "&" else nbs + 1) % 2:
                out.append(c)
            else:
                g = 0 if c == "&" else int(c)
                out.append((m.group(g) or "") if g <= m.re.groups else "")
        else:
            out.append("\\" * nbs + c)
        nbs = 0
    out.append("\\" * nbs)
    return "".join(out)
