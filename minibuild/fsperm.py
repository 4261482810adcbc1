"""File mode bits, the one implementation of each: entry type names (``file_type``, ``ENTRY_TYPE_BITS``) and mode
specs (chmod(1)): octal or symbolic clauses, parsed once and applied to a mode.

The grammar, used by both the shell's ``chmod``/``mkdir -m`` and ``COPY --chmod``, is busybox's (``bb_parse_mode``),
and so is the meaning (checked against real busybox), but for the one ``rules`` switch below:

* ``[ugoa]*`` then one or more actions ``[-+=]`` followed by ONE of ``u``/``g``/``o`` (copy that class's rwx) or
  any of ``rwxXst``; clauses are separated by ``,`` (empty clauses are allowed and do nothing);
* ``u`` covers the owner rwx and set-uid, ``g`` the group rwx and set-gid, ``o`` the other rwx ONLY (so ``o+t`` and
  ``o+s`` change nothing), ``a`` everything; with no who at all, every bit except those in the umask;
* ``=`` first clears the who bits (all 07777 when no who is given), then sets like ``+``;
* ``X`` is ``x`` if the entry is a directory or has an execute bit in the mode as it stands at that action (after
  the clear of ``=``), and ``u``/``g``/``o`` copy that same mode; ``s`` is set-uid and set-gid, ``t`` sticky;
* octal: 0 to 07777, replacing the permission bits.

``rules="chmod1"`` changes one thing, for ``COPY --chmod``: as GNU chmod(1) does (and BuildKit's reference, which
says ``u=rwX,go=rX`` keeps a file's execute bit), ``X`` and the copies read the mode before the action's ``=`` clears
it. Busybox gives 0644 for ``u=rwX,go=rX`` on a 0744 file, GNU and this 0755. (BSD's setmode, which BuildKit's
mode package ports, tests ``X`` against the mode before the whole spec: ``=rw,+X`` keeps a file's x there only.)
"""

from __future__ import annotations

import stat
from typing import Literal

from minibuild.record import record

ENTRY_TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "char": stat.S_IFCHR,
                   "block": stat.S_IFBLK, "fifo": stat.S_IFIFO, "socket": stat.S_IFSOCK}
_TYPE_OF_BITS = {bits: name for name, bits in ENTRY_TYPE_BITS.items()}


def file_type(mode: int) -> str:
    """The entry type name of a stat mode: file, dir, symlink, char, block, fifo or socket."""
    return _TYPE_OF_BITS.get(stat.S_IFMT(mode), "socket")


_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o0007, "a": 0o7777}
_PERM = {"r": 0o444, "w": 0o222, "x": 0o111, "X": 0o111, "s": 0o6000, "t": 0o1000}
_COPY_SHIFT = {"u": 6, "g": 3, "o": 0}


@record
class ModeAction:
    """One ``op`` of a clause: ``=rX`` is op ``=`` with perms ``rX``; ``g=u`` is op ``=`` copying from ``u``."""

    op: str  # "+", "-" or "="
    perms: str = ""  # letters of rwxXst
    copy_from: str = ""  # "u", "g" or "o" (then perms is empty)


@record
class ModeClause:
    """``[ugoa]*`` and its actions; ``who`` 0 means none was written (the umask then applies)."""

    who: int
    actions: tuple[ModeAction, ...]


@record
class ModeSpec:
    """A parsed mode: ``octal`` (0..07777), or symbolic ``clauses`` applied in order."""

    text: str
    octal: int | None = None
    clauses: tuple[ModeClause, ...] = ()

    def apply(self, mode: int, *, is_dir: bool, umask: int = 0, rules: Literal["busybox", "chmod1"] = "busybox") -> int:
        """The permission bits (07777) that an entry with ``mode`` (its type bits ignored) gets."""
        if self.octal is not None:
            return self.octal
        cur = mode & 0o7777
        for clause in self.clauses:
            for action in clause.actions:
                seen = cur  # what X and u/g/o look at: before the clear of "=" (chmod1), or after it (busybox)
                if action.op == "=":
                    cur &= ~(clause.who or 0o7777)
                if rules == "busybox":
                    seen = cur
                bits = 0
                if action.copy_from:
                    src = (seen >> _COPY_SHIFT[action.copy_from]) & 0o7
                    bits = src << 6 | src << 3 | src
                for p in action.perms:
                    if p != "X" or is_dir or seen & 0o111:
                        bits |= _PERM[p]
                bits &= clause.who if clause.who else ~umask & 0o7777
                cur = cur & ~bits if action.op == "-" else cur | bits
        return cur & 0o7777


def parse_mode_spec(text: str) -> ModeSpec | None:
    """``text`` as a ModeSpec, or None when it is not a valid mode (each caller words its own error)."""
    if text[:1] in tuple("01234567"):
        if not all(c in "01234567" for c in text):
            return None
        value = int(text, 8)
        return ModeSpec(text=text, octal=value) if value <= 0o7777 else None
    clauses: list[ModeClause] = []
    for part in text.split(","):
        if part == "":
            continue
        i, who = 0, 0
        while i < len(part) and part[i] in _WHO:
            who |= _WHO[part[i]]
            i += 1
        actions: list[ModeAction] = []
        while i < len(part):
            op = part[i]
            if op not in "+-=":
                return None
            i += 1
            if i < len(part) and part[i] in _COPY_SHIFT:
                actions.append(ModeAction(op=op, copy_from=part[i]))
                i += 1
                continue
            j = i
            while j < len(part) and part[j] in _PERM:
                j += 1
            actions.append(ModeAction(op=op, perms=part[i:j]))
            i = j
        if not actions:
            return None  # a who with no action ("u")
        clauses.append(ModeClause(who=who, actions=tuple(actions)))
    return ModeSpec(text=text, clauses=tuple(clauses))
