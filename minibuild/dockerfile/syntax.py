"""Raw syntax nodes of a Dockerfile (BuildKit's parser.Node, flattened) and their AST dump."""

from __future__ import annotations

from dataclasses import field

from minibuild.dockerfile.godump import go_quote, go_quote_slice, go_trim_space
from minibuild.errors import SourceSpan
from minibuild.record import record

__all__ = ["Directive", "Heredoc", "SyntaxNode", "SyntaxTree", "chomp_heredoc", "is_file_name"]


@record
class Heredoc:
    """One here-document attached to a RUN/COPY/ADD line: its body is read at parse time."""

    name: str
    file_descriptor: int = 0
    expand: bool = True
    chomp: bool = False
    content: str = ""

    def chomped(self) -> str:
        """The content with leading tabs removed from every line when ``<<-`` was used."""
        return chomp_heredoc(self.content) if self.chomp else self.content


def is_file_name(name: str) -> bool:
    """Whether ``name`` is ONE file name (what a COPY/ADD heredoc creates): not empty, ``.``, ``..``, no ``/``/NUL."""
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name


def chomp_heredoc(content: str) -> str:
    """BuildKit's ChompHeredocContent: strip leading tabs of every line."""
    return "\n".join(line.lstrip("\t") for line in content.split("\n"))


@record
class Directive:
    """A parser directive at the top of the file (``# syntax=``, ``# escape=``, ``# check=``)."""

    name: str
    value: str
    line: int


@record
class SyntaxNode:
    """One instruction as the raw parser sees it.

    ``keyword`` is the first word as written; ``args`` are the Next-chain values; for ONBUILD the
    trigger is ``sub`` (and ``args`` is empty).  ``json`` is the exec-form attribute.
    """

    keyword: str
    args: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    json: bool = False
    sub: SyntaxNode | None = None
    heredocs: tuple[Heredoc, ...] = ()
    original: str = ""
    start_line: int = 0
    end_line: int = 0
    comments: tuple[str, ...] = ()
    filename: str = field(default="Dockerfile", compare=False)

    @property
    def value(self) -> str:
        """The keyword in lower case (what BuildKit dispatches on)."""
        return self.keyword.lower()

    @property
    def span(self) -> SourceSpan:
        """Where this instruction stands: first and last physical line."""
        return SourceSpan(file=self.filename, line=self.start_line, end_line=self.end_line)

    def dump(self) -> str:
        """This node's part of BuildKit's AST dump, without the surrounding parentheses."""
        parts = [self.keyword.lower()]
        if self.flags:
            parts.append(" " + go_quote_slice(self.flags))
        if self.sub is not None:
            parts.append(" (" + self.sub.dump() + ")")
        for arg in self.args:
            parts.append(" " + go_quote(arg))
        return go_trim_space("".join(parts))


@record
class SyntaxTree:
    """A parsed Dockerfile: instructions in order, directives, escape token and warnings."""

    children: tuple[SyntaxNode, ...]
    directives: tuple[Directive, ...] = ()
    escape: str = "\\"
    warnings: tuple[str, ...] = ()
    filename: str = "Dockerfile"

    @property
    def start_line(self) -> int:
        return self.children[0].start_line if self.children else 0

    @property
    def end_line(self) -> int:
        return self.children[-1].end_line if self.children else 0

    def directive(self, name: str) -> str | None:
        """The value of a directive (``syntax``, ``escape``, ``check``) or None."""
        for d in self.directives:
            if d.name == name:
                return d.value
        return None

    def dump(self) -> str:
        """BuildKit's ``AST.Dump()`` byte for byte (the golden ``result`` files add one ``\\n``)."""
        return go_trim_space("".join("(" + c.dump() + ")\n" for c in self.children))
