"""The root's passwd/group look-ups the applets share (ids of names, names of ids), rows read by fs.userdb."""

from __future__ import annotations

from minibuild.fs import userdb
from minibuild.sh.builtins.base import Ctx, UsageError


def read_db(ctx: Ctx, vpath: str) -> list[list[str]]:
    """Rows of an account database of the root (``minibuild.fs.userdb.read_db``: a regular file, size-capped);
    a FIFO, device or oversized file makes the builtin fail with one line."""
    return userdb.read_db(ctx.fs.root, vpath, error=UsageError)


def field_id(text: str) -> int | None:
    """A database id field as busybox's passwd/group parser reads it: blanks around it ignored, ASCII digits
    only, at most 4294967295; anything else is None (busybox then stores (uid_t)-1 or skips the line)."""
    text = text.strip(" \t")
    if not text or not text.isascii() or not text.isdigit() or int(text) > 0xFFFFFFFF:
        return None
    return int(text)


def user_name(ctx: Ctx, uid: int) -> str:
    return next((u[0] for u in read_db(ctx, "/etc/passwd") if len(u) > 2 and field_id(u[2]) == uid), str(uid))


def group_name(ctx: Ctx, gid: int) -> str:
    return next((g[0] for g in read_db(ctx, "/etc/group") if len(g) > 2 and field_id(g[2]) == gid), str(gid))


def numeric_id(text: str, what: str) -> int | None:
    """``text`` as a numeric id (``userdb.parse_id``); None for a name; out of range fails the builtin."""
    return userdb.parse_id(text, what=what, error=UsageError)


def db_id(text: str, what: str = "id") -> int:
    """A numeric id (an argument or a database field): 0 to 4294967294, else the builtin fails with one line."""
    value = numeric_id(text, what)
    if value is None:
        raise UsageError(f"invalid {what} {text!r}")
    return value


def lookup_uid(ctx: Ctx, name: str) -> int | None:
    numeric = numeric_id(name, "user id")
    if numeric is not None:
        return numeric
    return next((db_id(u[2], "user id") for u in read_db(ctx, "/etc/passwd") if u[0] == name and len(u) > 2), None)


def lookup_gid(ctx: Ctx, name: str) -> int | None:
    numeric = numeric_id(name, "group id")
    if numeric is not None:
        return numeric
    return next((db_id(g[2], "group id") for g in read_db(ctx, "/etc/group") if g[0] == name and len(g) > 2), None)


def login_gid(ctx: Ctx, user: str) -> int | None:
    """The primary group of ``user`` (a name or the uid as written) in /etc/passwd, None when it has no entry."""
    return next((db_id(u[3], "group id") for u in read_db(ctx, "/etc/passwd")
                 if len(u) > 3 and (u[0] == user or u[2] == user)), None)
