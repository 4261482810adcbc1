"""The exceptions that carry the shell's control flow out of a builtin: exit, return, break and continue."""

from __future__ import annotations


class ExitShell(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class ReturnFn(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class LoopCtl(Exception):
    def __init__(self, kind: str, n: int) -> None:
        self.kind = kind
        self.n = n
