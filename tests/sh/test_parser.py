"""Parser: the syntax tree of representative scripts, and syntax errors."""

from __future__ import annotations

import pytest

from minibuild.errors import ShellError
from minibuild.sh.ast import DQ, SQ, AndOr, Arith, Case, CmdSub, For, FuncDef, Group, If, Lit, Param, Pipeline, Simple, Subshell, While
from minibuild.sh.parser import parse


def only(script: str):  # type: ignore[no-untyped-def]
    seq = parse(script)
    assert len(seq.items) == 1
    item = seq.items[0]
    assert isinstance(item, AndOr) and not item.rest and len(item.first.commands) == 1
    return item.first.commands[0]


def test_simple_command_with_assignments_and_redirects() -> None:
    cmd = only('A=1 B="x $y" echo hi >out 2>&1 <in')
    assert isinstance(cmd, Simple)
    assert [a[0] for a in cmd.assigns] == ["A", "B"]
    assert cmd.assigns[1][1].parts == (DQ((SQ("x "), Param("y"))),)
    assert [w.parts for w in cmd.words] == [(Lit("echo"),), (Lit("hi"),)]
    assert [(r.fd, r.op) for r in cmd.redirects] == [(1, ">"), (2, ">&"), (0, "<")]


def test_and_or_pipeline_negation() -> None:
    seq = parse("! a | b && c || d")
    ao = seq.items[0]
    assert ao.first.negate and len(ao.first.commands) == 2
    assert [op for op, _ in ao.rest] == ["&&", "||"]


def test_compound_commands() -> None:
    assert isinstance(only("if a; then b; elif c; then d; else e; fi"), If)
    assert len(only("if a; then b; elif c; then d; else e; fi").branches) == 2
    assert isinstance(only("for i in 1 2; do echo $i; done"), For)
    assert only("for i; do :; done").words is None
    assert isinstance(only("while a; do b; done"), While)
    assert only("until a; do b; done").until
    c = only("case $x in a|b) echo;; (*) :;; esac")
    assert isinstance(c, Case) and len(c.items) == 2 and len(c.items[0][0]) == 2
    assert isinstance(only("( a; b )"), Subshell)
    assert isinstance(only("{ a; b; }"), Group)
    f = only("f() { echo; }")
    assert isinstance(f, FuncDef) and f.name == "f"


def test_expansions_in_words() -> None:
    cmd = only("echo ${x:-d} $(pwd) `date` $((1+2)) '$no' \\$no")
    parts = [w.parts for w in cmd.words[1:]]
    assert parts[0] == (Param("x", ":-", parts[0][0].arg),)
    assert isinstance(parts[1][0], CmdSub) and isinstance(parts[2][0], CmdSub)
    assert isinstance(parts[3][0], Arith)
    assert parts[4] == (SQ("$no"),)
    assert parts[5] == (SQ("$"), Lit("no"))


def test_heredocs_are_read_after_the_line() -> None:
    seq = parse("cat <<A; cat <<-'B'\nline $x\nA\n\tlit $y\n\tB\necho done\n")
    assert len(seq.items) == 3
    first = seq.items[0].first.commands[0]
    second = seq.items[1].first.commands[0]
    assert first.redirects[0].heredoc.parts == (SQ("line "), Param("x"), SQ("\n"))
    assert second.redirects[0].heredoc.parts == (SQ("lit $y\n"),)


def test_reserved_words_only_in_command_position() -> None:
    cmd = only("echo if then fi done")
    assert len(cmd.words) == 5


def test_line_continuation_and_comments() -> None:
    cmd = only("echo a \\\n  b # comment here")
    assert len(cmd.words) == 3


@pytest.mark.parametrize("bad", ["if true; then", "echo 'unterminated", "( echo", "for do", "case x in", "a && ", "| b", "fi", "echo ${"])
def test_syntax_errors(bad: str) -> None:
    with pytest.raises(ShellError):
        parse(bad)
