"""Account builtins editing the root's /etc/passwd, /etc/group, /etc/shadow: adduser, addgroup, useradd, groupadd."""

from __future__ import annotations

import os
from pathlib import Path

from minibuild.fs.confine import read_small_file
from minibuild.sh.builtins.accounts import lookup_gid, lookup_uid, numeric_id, read_db
from minibuild.sh.builtins.base import Ctx, UsageError, builtin, parse_flags
from minibuild.sh.builtins.fileops import copy_tree
from minibuild.sh.streams import enc


def _append(ctx: Ctx, vpath: str, line: str) -> None:
    host = ctx.path(vpath)
    existing = read_small_file(ctx.fs.root, vpath, what=vpath, error=UsageError) or b""
    with ctx.fs.open_write(host, append=True, mode=0o644) as f:
        if existing and not existing.endswith(b"\n"):
            f.write(b"\n")
        f.write(enc(line + "\n"))


def _rewrite(ctx: Ctx, vpath: str, rows: list[list[str]]) -> None:
    host = ctx.path(vpath)
    mode = ctx.fs.stat(host).st_mode & 0o7777 if host.exists() else 0o644
    with ctx.fs.open_write(host, mode=0o644) as f:
        f.write(enc("".join(":".join(r) + "\n" for r in rows)))
    ctx.fs.chmod(host, mode)


def _free_id(used: set[int], lo: int, hi: int, descending: bool = False) -> int:
    rng = range(hi, lo - 1, -1) if descending else range(lo, hi + 1)
    for i in rng:
        if i not in used:
            return i
    raise UsageError("no free id")


def _used(ctx: Ctx, db: str) -> set[int]:
    return {n for r in read_db(ctx, db) if len(r) > 2 and (n := numeric_id(r[2], "id")) is not None}


def _add_group(ctx: Ctx, name: str, gid: int | None, system: bool, descending: bool = False) -> int:
    if any(g[0] == name for g in read_db(ctx, "/etc/group")):
        raise UsageError(f"group '{name}' in use")
    used = _used(ctx, "/etc/group")
    if gid is None:
        gid = _free_id(used, 100, 999, descending) if system else _free_id(used, 1000, 60000)
    elif gid in used:
        raise UsageError(f"gid '{gid}' in use")
    _append(ctx, "/etc/group", f"{name}:x:{gid}:")
    if ctx.path("/etc/gshadow").exists():
        _append(ctx, "/etc/gshadow", f"{name}:!::")
    return gid


def _add_member(ctx: Ctx, user: str, group: str) -> None:
    rows = read_db(ctx, "/etc/group")
    for r in rows:
        if r[0] == group:
            while len(r) < 4:
                r.append("")
            members = [m for m in r[3].split(",") if m]
            if user not in members:
                members.append(user)
            r[3] = ",".join(members)
            _rewrite(ctx, "/etc/group", rows)
            return
    raise UsageError(f"unknown group {group}")


def _make_home(ctx: Ctx, home: str, uid: int, gid: int) -> None:
    host = ctx.path(home)
    parent = ctx.path(os.path.dirname(home.rstrip("/")) or "/")
    missing: list[Path] = []
    p = parent
    while not p.exists() and p != ctx.fs.root:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        ctx.fs.check_write(d)
        os.mkdir(d, 0o700)
        ctx.fs.own(d, 0, 0)
        ctx.fs.chmod(d, 0o755)
    if not host.exists():
        ctx.fs.check_write(host)
        os.mkdir(host, 0o700)
        ctx.fs.own(host, uid, gid)
        ctx.fs.chmod(host, 0o755 & ~ctx.fs.umask | 0o700)
        skel = ctx.path("/etc/skel")
        if skel.is_dir():  # copied by cp's confined copier: links stay links, nodes are re-made, never opened
            vhome = ctx.fs.to_virtual(host)
            for item in sorted(ctx.fs.listdir(skel)):
                copy_tree(ctx, ctx.fs.to_virtual(skel) + "/" + item, vhome + "/" + item)
    for dirpath, dirnames, filenames in ctx.fs.walk(host):
        ctx.fs.chown(dirpath, uid, gid)
        for n in dirnames + filenames:
            ctx.fs.chown(os.path.join(dirpath, n), uid, gid)


def _add_user(ctx: Ctx, name: str, *, uid: int | None, gid: int, gecos: str, home: str, shell: str, system: bool,
              make_home: bool, descending: bool = False) -> None:
    if any(u[0] == name for u in read_db(ctx, "/etc/passwd")):
        raise UsageError(f"user '{name}' in use")
    used = _used(ctx, "/etc/passwd")
    if uid is None:
        uid = _free_id(used, 100, 999, descending) if system else _free_id(used, 1000, 60000)
    _append(ctx, "/etc/passwd", f"{name}:x:{uid}:{gid}:{gecos}:{home}:{shell}")
    if ctx.path("/etc/shadow").exists():
        days = ctx.now // 86400
        _append(ctx, "/etc/shadow", f"{name}:!:{days}:0:99999:7:::")
    if make_home:
        _make_home(ctx, home, uid, gid)


def _root_shell(ctx: Ctx) -> str:
    return next((u[6] for u in read_db(ctx, "/etc/passwd") if u[0] == "root" and len(u) > 6 and u[6]), "/bin/sh")


@builtin("addgroup")
def addgroup(ctx: Ctx, args: list[str]) -> int:
    """busybox: addgroup [-g GID] [-S] GROUP | addgroup USER GROUP."""
    opts, rest = parse_flags(args, "S", "g")
    try:
        if len(rest) == 2:
            if lookup_uid(ctx, rest[0]) is None:
                raise UsageError(f"unknown user {rest[0]}")
            _add_member(ctx, rest[0], rest[1])
            return 0
        if len(rest) != 1:
            raise UsageError("usage: addgroup [-g GID] [-S] [USER] GROUP")
        _add_group(ctx, rest[0], int(str(opts["g"])) if "g" in opts else None, bool(opts.get("S")))
    except UsageError as e:
        ctx.err(str(e))
        return 1
    return 0


@builtin("adduser")
def adduser(ctx: Ctx, args: list[str]) -> int:
    """busybox: adduser [-h DIR] [-g GECOS] [-s SHELL] [-G GRP] [-S] [-D] [-H] [-u UID] [-k SKEL] USER [GROUP]."""
    opts, rest = parse_flags(args, "SDH", "hgsGuk")
    try:
        if len(rest) == 2:
            _add_member(ctx, rest[0], rest[1])
            return 0
        if len(rest) != 1:
            raise UsageError("usage: adduser [OPTIONS] USER [GROUP]")
        name = rest[0]
        system = bool(opts.get("S"))
        uid = int(str(opts["u"])) if "u" in opts else None
        if "G" in opts:
            gid = lookup_gid(ctx, str(opts["G"]))
            if gid is None:
                raise UsageError(f"unknown group {opts['G']}")
        else:
            existing = lookup_gid(ctx, name)
            if existing is not None and not system:
                raise UsageError(f"group '{name}' in use")
            if system:
                gid = lookup_gid(ctx, "nogroup") or _add_group(ctx, name, None, True)
            else:
                used = _used(ctx, "/etc/group")
                want = uid if uid is not None else _free_id(_used(ctx, "/etc/passwd") | used, 1000, 60000)
                gid = _add_group(ctx, name, want if want not in used else None, False)
        shell = str(opts.get("s", "/sbin/nologin" if system else _root_shell(ctx)))
        home = str(opts.get("h", f"/home/{name}"))
        gecos = str(opts.get("g", "Linux User,,,"))
        if uid is None and not system:
            uid = gid if gid not in _used(ctx, "/etc/passwd") and gid >= 1000 else None
        _add_user(ctx, name, uid=uid, gid=gid, gecos=gecos, home=home, shell=shell, system=system,
                  make_home=not opts.get("H"))
    except (UsageError, ValueError) as e:
        ctx.err(str(e))
        return 1
    return 0


@builtin("groupadd")
def groupadd(ctx: Ctx, args: list[str]) -> int:
    """shadow-utils: groupadd [-r] [-g GID] [-f] GROUP."""
    opts, rest = parse_flags(args, "rfo", "gK")
    if len(rest) != 1:
        ctx.err("usage: groupadd [-r] [-g GID] GROUP")
        return 2
    if opts.get("f") and lookup_gid(ctx, rest[0]) is not None:
        return 0
    try:
        _add_group(ctx, rest[0], int(str(opts["g"])) if "g" in opts else None, bool(opts.get("r")), descending=True)
    except UsageError as e:
        ctx.err(str(e))
        return 9 if "in use" in str(e) else 4
    return 0


@builtin("useradd")
def useradd(ctx: Ctx, args: list[str]) -> int:
    """shadow-utils: useradd [-r] [-u UID] [-g GROUP] [-G GROUPS] [-m|-M] [-d HOME] [-s SHELL] [-c GECOS] [-U|-N] USER."""
    opts, rest = parse_flags(args, "rmMUNlo", "ugGdscek")
    if len(rest) != 1:
        ctx.err("usage: useradd [options] LOGIN")
        return 2
    name = rest[0]
    system = bool(opts.get("r"))
    try:
        uid = int(str(opts["u"])) if "u" in opts else None
        if "g" in opts:
            gid = lookup_gid(ctx, str(opts["g"]))
            if gid is None:
                ctx.err(f"group '{opts['g']}' does not exist")
                return 6
        elif opts.get("N"):
            gid = 100
        else:
            used = _used(ctx, "/etc/group")
            want = uid if uid is not None and uid not in used else None
            if want is None and not system:
                cand = _free_id(_used(ctx, "/etc/passwd") | used, 1000, 60000)
                want = cand
            gid = _add_group(ctx, name, want, system, descending=True)
        if uid is None and system:
            uid = gid if gid not in _used(ctx, "/etc/passwd") and 100 <= gid <= 999 else None
        home = str(opts.get("d", f"/home/{name}"))
        _add_user(ctx, name, uid=uid, gid=gid, gecos=str(opts.get("c", "")), home=home,
                  shell=str(opts.get("s", "/bin/sh")), system=system, make_home=bool(opts.get("m")), descending=True)
        for g in str(opts.get("G", "")).split(","):
            if g:
                _add_member(ctx, name, g)
    except UsageError as e:
        ctx.err(str(e))
        return 9 if "in use" in str(e) else 1
    return 0
