"""The find builtin: -name -iname -path -type -maxdepth -mindepth -newer -empty -perm -exec -delete -print, ! -a -o ( )."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass

from minibuild.sh.builtins.accounts import lookup_gid, lookup_uid
from minibuild.sh.builtins.base import Ctx, UsageError, builtin
from minibuild.sh.builtins.fileops import parse_mode
from minibuild.sh.pattern import compile_pattern, unquoted

TYPES = {"f": stat.S_ISREG, "d": stat.S_ISDIR, "l": stat.S_ISLNK, "p": stat.S_ISFIFO, "c": stat.S_ISCHR,
         "b": stat.S_ISBLK, "s": stat.S_ISSOCK}


@dataclass
class Item:
    path: str
    name: str
    st: os.stat_result
    depth: int


Pred = Callable[[Item], bool]


class _Find:
    def __init__(self, ctx: Ctx, expr: list[str]) -> None:
        self.ctx = ctx
        self.t = expr
        self.i = 0
        self.maxdepth: int | None = None
        self.mindepth = 0
        self.depth_first = False
        self.has_action = False
        self.batches: list[tuple[list[str], list[str]]] = []
        self.code = 0
        self.follow = False

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> str:
        if self.i >= len(self.t):
            raise UsageError("missing argument")
        self.i += 1
        return self.t[self.i - 1]

    def parse(self) -> Pred:
        if not self.t:
            return lambda it: True
        p = self.or_()
        if self.i != len(self.t):
            raise UsageError(f"unexpected '{self.t[self.i]}'")
        return p

    def or_(self) -> Pred:
        left = self.and_()
        while self.peek() in ("-o", "-or"):
            self.take()
            right = self.and_()
            left = (lambda a, b: lambda it: a(it) or b(it))(left, right)
        return left

    def and_(self) -> Pred:
        left = self.unary()
        while self.peek() not in (None, "-o", "-or", ")"):
            if self.peek() in ("-a", "-and"):
                self.take()
            right = self.unary()
            left = (lambda a, b: lambda it: a(it) and b(it))(left, right)
        return left

    def unary(self) -> Pred:
        if self.peek() in ("!", "-not"):
            self.take()
            inner = self.unary()
            return lambda it: not inner(it)
        if self.peek() == "(":
            self.take()
            inner = self.or_()
            if self.take() != ")":
                raise UsageError("missing )")
            return inner
        return self.primary()

    def primary(self) -> Pred:
        tok = self.take()
        ctx = self.ctx
        match tok:
            case "-name" | "-iname":
                pat = self.take()
                rx = compile_pattern(unquoted(pat.lower() if tok == "-iname" else pat))
                return lambda it: rx.fullmatch(it.name.lower() if tok == "-iname" else it.name) is not None
            case "-path" | "-wholename" | "-ipath":
                rx = compile_pattern(unquoted(self.take()))
                return lambda it: rx.fullmatch(it.path) is not None
            case "-regex":
                rx2 = re.compile(self.take())
                return lambda it: rx2.fullmatch(it.path) is not None
            case "-type":
                kinds = self.take().split(",")
                tests = [TYPES[k] for k in kinds if k in TYPES]
                return lambda it: any(t(it.st.st_mode) for t in tests)
            case "-maxdepth":
                self.maxdepth = int(self.take())
                return lambda it: True
            case "-mindepth":
                self.mindepth = int(self.take())
                return lambda it: True
            case "-depth":
                self.depth_first = True
                return lambda it: True
            case "-xdev" | "-mount" | "-noleaf":
                return lambda it: True
            case "-follow":
                self.follow = True
                return lambda it: True
            case "-empty":
                def empty(it: Item) -> bool:
                    if stat.S_ISDIR(it.st.st_mode):
                        return not ctx.fs.listdir(ctx.path(it.path, follow=False))
                    return stat.S_ISREG(it.st.st_mode) and it.st.st_size == 0
                return empty
            case "-newer":
                ref = int(ctx.fs.stat(ctx.path(self.take())).st_mtime)  # busybox compares whole seconds
                return lambda it: int(it.st.st_mtime) > ref
            case "-perm":
                spec = self.take()
                kind = spec[:1] if spec[:1] in ("-", "/", "+") else ""
                try:  # busybox: octal or symbolic (u+x, g=w), applied to a mode of 0
                    m = parse_mode(spec[len(kind):], 0)
                except UsageError:
                    raise UsageError(f"invalid mode '{spec[len(kind):]}'") from None
                if kind == "-":
                    return lambda it: (it.st.st_mode & m) == m
                if kind:
                    return lambda it: bool(it.st.st_mode & m)
                return lambda it: stat.S_IMODE(it.st.st_mode) == m
            case "-user" | "-uid":
                uid = lookup_uid(ctx, self.take())
                return lambda it: it.st.st_uid == uid
            case "-group" | "-gid":
                gid = lookup_gid(ctx, self.take())
                return lambda it: it.st.st_gid == gid
            case "-size":
                spec = self.take()
                m2 = re.fullmatch(r"([-+]?)(\d+)([ckMGb]?)", spec)
                if not m2:
                    raise UsageError(f"invalid size '{spec}'")
                sign, num, unit = m2.groups()
                mult = {"c": 1, "k": 1024, "M": 1 << 20, "G": 1 << 30, "b": 512, "": 512}[unit]
                n = int(num)

                def size(it: Item) -> bool:
                    v = -(-it.st.st_size // mult)
                    return v > n if sign == "+" else (v < n if sign == "-" else v == n)
                return size
            case "-print" | "-print0":
                self.has_action = True
                end = "\0" if tok == "-print0" else "\n"

                def print_(it: Item) -> bool:
                    ctx.out(it.path + end)
                    return True
                return print_
            case "-delete":
                self.has_action = True
                self.depth_first = True

                def delete(it: Item) -> bool:
                    try:
                        host = ctx.path(it.path, follow=False)
                        if host == ctx.fs.root:
                            return True
                        if stat.S_ISDIR(it.st.st_mode):
                            ctx.fs.check_write(host, remove=True)
                            os.rmdir(host)
                        else:
                            ctx.fs.check_write(host, remove=True)
                            os.unlink(host)
                    except OSError as e:
                        ctx.err(f"{it.path}: {e.strerror}")
                        self.code = 1
                        return False
                    return True
                return delete
            case "-prune":
                return self._prune
            case "-exec" | "-ok" | "-execdir":
                self.has_action = True
                cmd: list[str] = []
                while True:
                    a = self.take()
                    if a == ";":
                        break
                    if a == "+" and cmd and cmd[-1] == "{}":
                        batch: tuple[list[str], list[str]] = (cmd[:-1], [])
                        self.batches.append(batch)

                        def collect(it: Item) -> bool:
                            batch[1].append(it.path)
                            return True
                        return collect
                    cmd.append(a)
                return lambda it: ctx.run([c.replace("{}", it.path) for c in cmd]) == 0
        raise UsageError(f"unrecognized: {tok}")

    def _prune(self, it: Item) -> bool:
        self.pruned.add(it.path)
        return True

    def walk(self, top: str, pred: Pred) -> None:
        self.pruned: set[str] = set()
        ctx = self.ctx
        try:
            st = ctx.fs.stat(ctx.path(top)) if self.follow else ctx.fs.lstat(ctx.path(top, follow=False))
            if stat.S_ISLNK(st.st_mode) and (top.endswith("/") or True):
                st2 = ctx.fs.stat(ctx.path(top)) if os.path.exists(ctx.path(top)) else st
                st = st2 if top.endswith("/") else st
        except OSError as e:
            ctx.err(f"{top}: {e.strerror}")
            self.code = 1
            return
        self._visit(Item(top, os.path.basename(top.rstrip("/")) or top, st, 0), pred)

    def _visit(self, it: Item, pred: Pred) -> None:
        ctx = self.ctx
        within = self.maxdepth is None or it.depth <= self.maxdepth
        if not within:
            return
        eval_here = it.depth >= self.mindepth
        if eval_here and not self.depth_first:
            if pred(it) and not self.has_action:
                ctx.out(it.path + "\n")
        if stat.S_ISDIR(it.st.st_mode) and it.path not in self.pruned and (self.maxdepth is None or it.depth < self.maxdepth):
            try:
                names = sorted(ctx.fs.listdir(ctx.path(it.path, follow=self.follow or it.depth == 0)))
            except OSError as e:
                ctx.err(f"{it.path}: {e.strerror}")
                self.code = 1
                names = []
            for n in names:
                child = (it.path if it.path.endswith("/") else it.path + "/") + n
                try:
                    host = ctx.path(child, follow=self.follow)
                    st = ctx.fs.stat(host) if self.follow else ctx.fs.lstat(host)
                except OSError:
                    continue
                self._visit(Item(child, n, st, it.depth + 1), pred)
        if eval_here and self.depth_first:
            if pred(it) and not self.has_action:
                ctx.out(it.path + "\n")


@builtin("find")
def find(ctx: Ctx, args: list[str]) -> int:
    follow = False
    while args and args[0] in ("-H", "-L", "-P"):
        follow = args[0] == "-L"
        args = args[1:]
    i = 0
    while i < len(args) and not (args[i].startswith("-") and len(args[i]) > 1) and args[i] not in ("!", "("):
        i += 1
    tops, expr = args[:i] or ["."], args[i:]
    f = _Find(ctx, expr)
    f.follow = follow
    try:
        pred = f.parse()
    except (UsageError, ValueError, KeyError) as e:
        ctx.err(str(e))
        return 1
    for top in tops:
        f.walk(top, pred)
    for cmd, items in f.batches:
        if items and ctx.run(cmd + items) != 0:
            f.code = 1
    return f.code
