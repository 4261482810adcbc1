"""Parser of the emulated shell: tokens to the syntax tree of `minibuild.sh.ast` (POSIX sh grammar subset)."""

from __future__ import annotations

import re

from minibuild.errors import ShellError
from minibuild.sh.ast import (
    SQ, AndOr, Case, For, FuncDef, Group, If, Lit, Node, Pipeline, Redirect, Seq, Simple, Subshell, While, Word,
)
from minibuild.sh.lexer import Lexer, Token, literal_text, plain_text

RESERVED = {"if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for", "{", "}", "!", "in"}
LIST_STOPS = {"then", "else", "elif", "fi", "do", "done", "esac", "}"}
ASSIGN_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
REDIR_OPS = {">", ">>", "<", ">&", "<&", ">|", "<>", "<<", "<<-"}


def parse(src: str) -> Seq:
    """Parse a whole script; raise ShellError on a syntax error."""
    p = Parser(Lexer(src, _subparse, parse))
    return p.parse_program()


def _subparse(lexer: Lexer) -> Node:
    p = Parser(lexer)
    body = p.parse_list(stop_paren=True)
    tok = p.next()
    if tok.kind != "OP" or tok.value != ")":
        raise lexer.error("missing ')'")
    return body


class Parser:
    """Recursive-descent parser with one token of lookahead."""

    def __init__(self, lexer: Lexer) -> None:
        self.lx = lexer
        self.tok: Token | None = None

    def peek(self) -> Token:
        if self.tok is None:
            self.tok = self.lx.next_token()
        return self.tok

    def next(self) -> Token:
        t = self.peek()
        self.tok = None
        return t

    def error(self, tok: Token, what: str = "") -> ShellError:
        raw = tok.value.raw if isinstance(tok.value, Word) else str(tok.value)
        shown = {"EOF": "end of file", "NL": "newline"}.get(tok.kind) or (
            "word" if tok.kind == "WORD" and raw not in RESERVED else f'"{raw}"')  # ash's words
        expecting = '")"' if what == "a pattern" else f'"{what}"' if what and " " not in what else what
        return ShellError(f"sh: line {tok.line}: syntax error: unexpected {shown}"
                          + (f" (expecting {expecting})" if what else ""))

    def is_word(self, tok: Token, *texts: str) -> bool:
        if tok.kind != "WORD" or not isinstance(tok.value, Word):
            return False
        text = literal_text(tok.value)
        return text is not None and text in texts

    def skip_nl(self) -> None:
        while self.peek().kind == "NL":
            self.next()

    def parse_program(self) -> Seq:
        body = self.parse_list()
        tok = self.peek()
        if tok.kind != "EOF":
            raise self.error(tok)
        return body

    def parse_list(self, stop_paren: bool = False) -> Seq:
        items: list[AndOr] = []
        self.skip_nl()
        while True:
            tok = self.peek()
            if tok.kind == "EOF":
                break
            if tok.kind == "OP" and tok.value in (")", ";;"):
                break
            if self.is_word(tok, *LIST_STOPS):
                break
            items.append(self.parse_and_or())
            tok = self.peek()
            if tok.kind == "OP" and tok.value in (";", "&"):
                self.next()
                self.skip_nl()
            elif tok.kind == "NL":
                self.skip_nl()
            else:
                break
        return Seq(tuple(items))

    def parse_and_or(self) -> AndOr:
        first = self.parse_pipeline()
        rest: list[tuple[str, Pipeline]] = []
        while True:
            tok = self.peek()
            if tok.kind == "OP" and tok.value in ("&&", "||"):
                self.next()
                self.skip_nl()
                rest.append((str(tok.value), self.parse_pipeline()))
            else:
                break
        return AndOr(first, tuple(rest))

    def parse_pipeline(self) -> Pipeline:
        negate = False
        if self.is_word(self.peek(), "!"):
            self.next()
            negate = True
            if self.is_word(self.peek(), "!"):  # ash: `! !` is a syntax error
                raise ShellError(f'sh: line {self.peek().line}: syntax error: unexpected "!"')
        cmds = [self.parse_command()]
        while self.peek().kind == "OP" and self.peek().value == "|":
            self.next()
            self.skip_nl()
            cmds.append(self.parse_command())
        return Pipeline(tuple(cmds), negate)

    def expect_word(self, text: str) -> None:
        tok = self.next()
        if not self.is_word(tok, text):
            raise self.error(tok, text)

    def parse_command(self) -> Node:
        tok = self.peek()
        if tok.kind == "OP" and tok.value == "(":
            self.next()
            body = self.parse_list()
            t = self.next()
            if not (t.kind == "OP" and t.value == ")"):
                raise self.error(t, ")")
            return Subshell(body, self.parse_redirects())
        if tok.kind == "WORD":
            text = literal_text(tok.value)  # type: ignore[arg-type]
            if text == "{":
                self.next()
                body = self.parse_list()
                self.expect_word("}")
                return Group(body, self.parse_redirects())
            if text == "if":
                return self.parse_if()
            if text in ("while", "until"):
                self.next()
                cond = self.parse_list()
                self.expect_word("do")
                body = self.parse_list()
                self.expect_word("done")
                return While(cond, body, text == "until", self.parse_redirects())
            if text == "for":
                return self.parse_for()
            if text == "case":
                return self.parse_case()
            if text in LIST_STOPS or text == "in":
                raise self.error(tok)
        if tok.kind in ("EOF", "NL") or (tok.kind == "OP" and tok.value not in REDIR_OPS):
            raise self.error(tok)
        return self.parse_simple()

    def parse_if(self) -> If:
        self.next()
        branches: list[tuple[Seq, Seq]] = []
        cond = self.parse_list()
        self.expect_word("then")
        body = self.parse_list()
        branches.append((cond, body))
        orelse = None
        while True:
            tok = self.next()
            if self.is_word(tok, "elif"):
                cond = self.parse_list()
                self.expect_word("then")
                branches.append((cond, self.parse_list()))
            elif self.is_word(tok, "else"):
                orelse = self.parse_list()
                self.expect_word("fi")
                break
            elif self.is_word(tok, "fi"):
                break
            else:
                raise self.error(tok, "fi")
        return If(tuple(branches), orelse, self.parse_redirects())

    def parse_for(self) -> For:
        self.next()
        tok = self.next()
        name = literal_text(tok.value) if tok.kind == "WORD" else None  # type: ignore[arg-type]
        if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise self.error(tok, "a name")
        words: tuple[Word, ...] | None = None
        if self.peek().kind == "OP" and self.peek().value == ";":
            self.next()
        self.skip_nl()
        if self.is_word(self.peek(), "in"):
            self.next()
            ws: list[Word] = []
            while self.peek().kind == "WORD":
                ws.append(self.next().value)  # type: ignore[arg-type]
            words = tuple(ws)
            t = self.peek()
            if t.kind == "OP" and t.value == ";":
                self.next()
            elif t.kind != "NL":
                raise self.error(t)
        self.skip_nl()
        self.expect_word("do")
        body = self.parse_list()
        self.expect_word("done")
        return For(name, words, body, self.parse_redirects())

    def parse_case(self) -> Case:
        self.next()
        tok = self.next()
        if tok.kind != "WORD":
            raise self.error(tok, "a word")
        word: Word = tok.value  # type: ignore[assignment]
        self.skip_nl()
        self.expect_word("in")
        self.skip_nl()
        items: list[tuple[tuple[Word, ...], Seq]] = []
        while not self.is_word(self.peek(), "esac"):
            t = self.peek()
            if t.kind == "OP" and t.value == "(":
                self.next()
            pats: list[Word] = []
            while True:
                t = self.next()
                if t.kind != "WORD":
                    raise self.error(t, "a pattern")
                pats.append(t.value)  # type: ignore[arg-type]
                t = self.next()
                if t.kind == "OP" and t.value == "|":
                    continue
                if t.kind == "OP" and t.value == ")":
                    break
                raise self.error(t, ")")
            body = self.parse_list()
            items.append((tuple(pats), body))
            t = self.peek()
            if t.kind == "OP" and t.value == ";;":
                self.next()
                self.skip_nl()
            elif not self.is_word(t, "esac"):
                raise self.error(t, ";;")
        self.next()
        return Case(word, tuple(items), self.parse_redirects())

    def parse_redirects(self) -> tuple[Redirect, ...]:
        out: list[Redirect] = []
        while True:
            r = self.try_redirect()
            if r is None:
                return tuple(out)
            out.append(r)

    def try_redirect(self) -> Redirect | None:
        tok = self.peek()
        fd: int | None = None
        if tok.kind == "IONUM":
            self.next()
            assert isinstance(tok.value, int)  # the lexer makes IONUM values ints
            fd = tok.value
            tok = self.peek()
        if not (tok.kind == "OP" and tok.value in REDIR_OPS):
            if fd is not None:
                raise self.error(tok)
            return None
        self.next()
        op = str(tok.value)
        target = self.next()
        if target.kind != "WORD":
            raise self.error(target, "a file name")
        word: Word = target.value  # type: ignore[assignment]
        if fd is None:
            fd = 0 if op.startswith("<") else 1
        if op in ("<<", "<<-"):
            quoted = any(not isinstance(p, Lit) for p in word.parts)
            body = self.lx.read_heredoc(plain_text(word), op == "<<-", quoted)
            return Redirect(fd, "<<", word, body)
        return Redirect(fd, op, word)

    def parse_simple(self) -> Node:
        assigns: list[tuple[str, Word]] = []
        words: list[Word] = []
        redirects: list[Redirect] = []
        line = self.peek().line
        dbl_open = False
        while True:
            r = self.try_redirect()
            if r is not None:
                redirects.append(r)
                continue
            tok = self.peek()
            if tok.kind == "OP" and tok.value in ("&&", "||") and dbl_open:  # ash: words inside [[ ... ]]
                self.next()
                words.append(Word((Lit(str(tok.value)),), str(tok.value)))
                continue
            if tok.kind != "WORD":
                break
            word: Word = tok.value  # type: ignore[assignment]
            if not words:
                first = word.parts[0] if word.parts else None
                if isinstance(first, Lit):
                    m = ASSIGN_RE.match(first.text)
                    if m:
                        self.next()
                        rest = first.text[m.end():]
                        parts = ((Lit(rest),) if rest else ()) + word.parts[1:]
                        assigns.append((m.group(1), Word(parts, word.raw)))
                        continue
            self.next()
            words.append(word)
            if len(words) == 1:
                dbl_open = literal_text(word) == "[["
            elif literal_text(word) == "]]":
                dbl_open = False
            if len(words) == 1 and not assigns and not redirects:
                t = self.peek()
                if t.kind == "OP" and t.value == "(":
                    name = literal_text(word)
                    if name is None:
                        raise self.error(t)
                    self.next()
                    t2 = self.next()
                    if not (t2.kind == "OP" and t2.value == ")"):
                        raise self.error(t2, ")")
                    self.skip_nl()
                    body = self.parse_command()
                    return FuncDef(name, body)
        if not words and not assigns and not redirects:
            raise self.error(self.peek())
        return Simple(tuple(assigns), tuple(words), tuple(redirects), line)


__all__ = ["parse", "Parser", "RESERVED", "SQ"]
