"""The syntax tree of the emulated shell: frozen dataclasses for words, redirections and commands."""

from __future__ import annotations

from typing import Union

from minibuild.record import record


@record(kw_only=False)
class Lit:
    """Unquoted literal text (backslash escapes already removed; `escaped` chars are kept literal)."""

    text: str
    escaped: bool = False


@record(kw_only=False)
class SQ:
    """Single-quoted text (or any text that must stay literal and unsplit)."""

    text: str


@record(kw_only=False)
class DQ:
    """A double-quoted run of parts."""

    parts: tuple["Part", ...]


@record(kw_only=False)
class Param:
    """`$name` or `${name<op><arg>}`; `op` is '' for plain, '#len' for `${#name}`."""

    name: str
    op: str = ""
    arg: "Word | None" = None
    arg2: "Word | None" = None


@record(kw_only=False)
class CmdSub:
    """`$(...)` or backquotes."""

    body: "Node"


@record(kw_only=False)
class Arith:
    """`$((...))`: the expression is a word expanded first, then evaluated."""

    expr: "Word"


Part = Union[Lit, SQ, DQ, Param, CmdSub, Arith]


@record(kw_only=False)
class Word:
    """One shell word: a sequence of parts, with its raw source text."""

    parts: tuple[Part, ...]
    raw: str = ""


@record(kw_only=False)
class Redirect:
    """`[fd]op target`; for here-documents `heredoc` is the body as a word (literal when quoted)."""

    fd: int
    op: str
    target: Word
    heredoc: Word | None = None


@record(kw_only=False)
class Simple:
    """A simple command: assignments, words and redirections."""

    assigns: tuple[tuple[str, Word], ...]
    words: tuple[Word, ...]
    redirects: tuple[Redirect, ...] = ()
    line: int = 0


@record(kw_only=False)
class Pipeline:
    """`[!] cmd | cmd ...`."""

    commands: tuple["Node", ...]
    negate: bool = False


@record(kw_only=False)
class AndOr:
    """`p1 && p2 || p3`: the first pipeline and (operator, pipeline) pairs."""

    first: Pipeline
    rest: tuple[tuple[str, Pipeline], ...] = ()


@record(kw_only=False)
class Seq:
    """A command list separated by `;`, `&` or newlines."""

    items: tuple[AndOr, ...]


@record(kw_only=False)
class Subshell:
    body: Seq
    redirects: tuple[Redirect, ...] = ()


@record(kw_only=False)
class Group:
    body: Seq
    redirects: tuple[Redirect, ...] = ()


@record(kw_only=False)
class If:
    branches: tuple[tuple[Seq, Seq], ...]
    orelse: Seq | None = None
    redirects: tuple[Redirect, ...] = ()


@record(kw_only=False)
class For:
    var: str
    words: tuple[Word, ...] | None
    body: Seq
    redirects: tuple[Redirect, ...] = ()


@record(kw_only=False)
class While:
    cond: Seq
    body: Seq
    until: bool = False
    redirects: tuple[Redirect, ...] = ()


@record(kw_only=False)
class Case:
    word: Word
    items: tuple[tuple[tuple[Word, ...], Seq], ...]
    redirects: tuple[Redirect, ...] = ()


@record(kw_only=False)
class FuncDef:
    name: str
    body: "Node"


Node = Union[Simple, Pipeline, AndOr, Seq, Subshell, Group, If, For, While, Case, FuncDef]
