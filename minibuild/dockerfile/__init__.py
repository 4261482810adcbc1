"""The Dockerfile front end: syntax tree, word expansion and typed instructions (pure, no I/O)."""

from __future__ import annotations

from minibuild.dockerfile.expand import ExpansionError, ShellLexer, expand_word, expand_words
from minibuild.dockerfile.source import parse, parse_line
from minibuild.dockerfile.syntax import Directive, Heredoc, SyntaxNode, SyntaxTree

__all__ = [
    "Directive",
    "ExpansionError",
    "Heredoc",
    "ShellLexer",
    "SyntaxNode",
    "SyntaxTree",
    "expand_word",
    "expand_words",
    "parse",
    "parse_line",
]
