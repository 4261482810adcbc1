"""File builtins confined to the root: mkdir, rm, rmdir, cp, mv, ln, touch, chmod, chown, ls, readlink, stat, ..."""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import time
from pathlib import Path

from minibuild.fsperm import parse_mode_spec
from minibuild.sh.builtins.accounts import group_name, login_gid, lookup_gid, lookup_uid, user_name
from minibuild.sh.builtins.base import Ctx, UsageError, builtin, parse_flags
from minibuild.sh.builtins.timestr import BadTime, parse_time
from minibuild.sh.fs import vnorm
from minibuild.sh.streams import enc
from minibuild.store.tarlayer import EntryType


def _lstat(ctx: Ctx, p: str) -> os.stat_result | None:
    try:
        return ctx.fs.lstat(ctx.path(p, follow=False))
    except OSError:
        return None


def _stat(ctx: Ctx, p: str) -> os.stat_result | None:
    try:
        return ctx.fs.stat(ctx.path(p))
    except OSError:
        return None


def _is_dir(ctx: Ctx, p: str) -> bool:
    st = _stat(ctx, p)
    return st is not None and stat.S_ISDIR(st.st_mode)


@builtin("mkdir")
def mkdir(ctx: Ctx, args: list[str]) -> int:
    opts, paths = parse_flags(args, "pv", "m")
    mode = parse_mode(str(opts["m"]), 0o777, umask=0) if "m" in opts else None
    code = 0
    for p in paths:
        try:
            if opts.get("p"):
                absp = vnorm(p, ctx.cwd)
                comps = [c for c in absp.split("/") if c]
                for i in range(1, len(comps) + 1):
                    sub = "/" + "/".join(comps[:i])
                    host = ctx.path(sub)
                    st = ctx.fs.stat(host) if os.path.lexists(host) else None
                    if st is None:
                        ctx.fs.mkdir(host)
                        if mode is not None and i == len(comps):
                            ctx.fs.chmod(host, mode)
                    elif not stat.S_ISDIR(st.st_mode):
                        raise FileExistsError(errno.EEXIST, "File exists")
            else:
                host = ctx.path(p)
                if os.path.lexists(host):
                    raise FileExistsError(errno.EEXIST, "File exists")
                ctx.fs.mkdir(host)
                if mode is not None:
                    ctx.fs.chmod(host, mode)
        except OSError as e:
            ctx.err(f"can't create directory '{p}': {e.strerror}")
            code = 1
    return code


@builtin("rmdir")
def rmdir(ctx: Ctx, args: list[str]) -> int:
    opts, paths = parse_flags(args, "p")
    code = 0
    for p in paths:
        targets = [p]
        if opts.get("p"):
            cur = p.rstrip("/")
            while "/" in cur.strip("/"):
                cur = posixpath.dirname(cur)
                targets.append(cur)
        for t in targets:
            try:
                ctx.fs.check_write(ctx.path(t, follow=False), remove=True)
                os.rmdir(ctx.path(t, follow=False))
            except OSError as e:
                ctx.err(f"'{t}': {e.strerror}")
                code = 1
                break
    return code


def _remove(ctx: Ctx, host: Path) -> None:
    st = os.lstat(host)
    if stat.S_ISDIR(st.st_mode):
        for name in ctx.fs.listdir(host):
            _remove(ctx, host / name)
        ctx.fs.check_write(host, remove=True)
        os.rmdir(host)
    else:
        ctx.fs.check_write(host, remove=True)
        os.unlink(host)


def _remove_asking(ctx: Ctx, host: Path, shown: str) -> int:
    """rm -i: a question per file, and for a directory whether to descend and then whether to remove it."""
    if not stat.S_ISDIR(ctx.fs.lstat(host).st_mode):
        if ctx.ask(f"remove '{shown}'"):
            ctx.fs.check_write(host, remove=True)
            os.unlink(host)
        return 0
    if not ctx.ask(f"descend into directory '{shown}'"):
        return 0
    code = 0
    for name in sorted(ctx.fs.listdir(host)):
        code |= _remove_asking(ctx, host / name, shown + "/" + name)
    if ctx.ask(f"remove directory '{shown}'"):
        try:
            ctx.fs.check_write(host, remove=True)
            os.rmdir(host)
        except OSError as e:
            ctx.err(f"can't remove '{shown}': {e.strerror}")
            return 1
    return code


@builtin("rm", "unlink")
def rm(ctx: Ctx, args: list[str]) -> int:
    opts, paths = parse_flags(args, "rRfiv")
    code = 0
    recursive = opts.get("r") or opts.get("R")
    ask = bool(opts.get("i")) and not opts.get("f")
    if not paths and not opts.get("f"):
        ctx.err("missing operand")
        return 1
    for p in paths:
        base = p.rstrip("/").rsplit("/", 1)[-1]
        if base in (".", ".."):
            ctx.err(f"can't remove '.' or '..'")
            code = 1
            continue
        try:
            host = ctx.path(p.rstrip("/") or "/", follow=False)  # busybox: rm FILE/ removes FILE
            st = ctx.fs.lstat(host)
            if ask and not (stat.S_ISDIR(st.st_mode) and not recursive):
                code |= _remove_asking(ctx, host, p.rstrip("/") or "/")
                continue
            if stat.S_ISDIR(st.st_mode):
                if not recursive:
                    ctx.err(f"'{p}' is a directory")
                    code = 1
                    continue
                if host == ctx.fs.root:
                    for name in ctx.fs.listdir(host):
                        _remove(ctx, host / name)
                    continue
                _remove(ctx, host)
            else:
                ctx.fs.check_write(host, remove=True)
                os.unlink(host)
        except FileNotFoundError:
            if not opts.get("f"):
                ctx.err(f"can't remove '{p}': No such file or directory")
                code = 1
        except OSError as e:
            ctx.err(f"can't remove '{p}': {e.strerror}")
            code = 1
    return code


def _copy_meta(ctx: Ctx, src: Path, dst: Path, st: os.stat_result, preserve: bool) -> None:
    if stat.S_ISLNK(st.st_mode):
        if preserve:
            ctx.fs.chown(dst, st.st_uid, st.st_gid)
        return
    if preserve:
        ctx.fs.chown(dst, st.st_uid, st.st_gid)
        ctx.fs.chmod(dst, stat.S_IMODE(st.st_mode))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_one(ctx: Ctx, src_v: str, dst_v: str, *, recursive: bool, deref: bool, preserve: bool, top: bool,
              force: bool, no_clobber: bool, deref_top: bool = False, update: bool = False,
              ask: bool = False) -> bool:
    """Copy src to dst (both virtual paths, dst not a directory to copy into). Returns success."""
    follow = deref or (top and deref_top)
    try:
        src = ctx.path(src_v, follow=follow)
        st = ctx.fs.lstat(src)
    except OSError as e:
        ctx.err(f"can't stat '{src_v}': {e.strerror}")
        return False
    dst_unres = ctx.path(dst_v, follow=False)
    if stat.S_ISLNK(st.st_mode) and os.path.lexists(dst_unres) and os.path.samestat(st, ctx.fs.lstat(dst_unres)):
        ctx.err(f"'{src_v}' and '{dst_v}' are the same file")
        return False
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(src)
        if os.path.lexists(dst_unres):
            if stat.S_ISDIR(ctx.fs.lstat(dst_unres).st_mode):
                ctx.err(f"cannot overwrite directory '{dst_v}' with non-directory")
                return False
            if not force:  # busybox replaces an existing file with a link only under -f
                ctx.err(f"can't create '{dst_v}': File exists")
                return False
            ctx.fs.check_write(dst_unres, remove=True)
            os.unlink(dst_unres)
        ctx.fs.symlink(target, dst_unres)
        _copy_meta(ctx, src, dst_unres, st, preserve)
        return True
    if stat.S_ISDIR(st.st_mode):
        if not recursive:
            ctx.err(f"omitting directory '{src_v}'")
            return False
        dst = ctx.path(dst_v)
        if (os.path.lexists(dst_unres) or os.path.lexists(dst)) and not os.path.isdir(dst):
            ctx.err(f"target '{dst_v}' is not a directory")
            return False
        if (st.st_dev, st.st_ino) in _CREATED:
            ctx.err(f"recursion detected, omitting directory '{src_v}'")
            return False
        created = False
        if not os.path.exists(dst):
            try:
                ctx.fs.mkdir(dst, stat.S_IMODE(st.st_mode))
            except OSError as e:
                ctx.err(f"can't create directory '{dst_v}': {e.strerror}")
                return False
            created = True
            dst_st = ctx.fs.stat(dst)
            _CREATED.add((dst_st.st_dev, dst_st.st_ino))
        ok = True
        for name in sorted(ctx.fs.listdir(src)):
            ok &= _copy_one(ctx, src_v.rstrip("/") + "/" + name, ctx.fs.to_virtual(dst) + "/" + name,
                            recursive=True, deref=deref, preserve=preserve, top=False, force=force,
                            no_clobber=no_clobber, update=update, ask=ask)
        if preserve or created:
            _copy_meta(ctx, src, dst, st, preserve)
        return ok
    dst = ctx.path(dst_v)
    try:
        if os.path.lexists(dst):
            if no_clobber:
                return True
            if update and int(st.st_mtime) <= int(ctx.fs.stat(dst).st_mtime):  # -u: only a newer source (seconds)
                return True
            if ask and not ctx.ask(f"overwrite '{dst_v}'"):
                return True
            if os.path.isdir(dst):
                ctx.err(f"cannot overwrite directory '{dst_v}' with non-directory")
                return False
            if os.path.samefile(src, dst):
                ctx.err(f"'{src_v}' and '{dst_v}' are the same file")
                return False
        if stat.S_ISREG(st.st_mode) and not follow:  # busybox keeps hard links when it does not dereference
            first = _LINKED.setdefault((st.st_dev, st.st_ino), dst)
            if first != dst:
                if os.path.lexists(dst):
                    if not force:
                        ctx.err(f"can't create '{dst_v}': File exists")
                        return False
                    ctx.fs.check_write(dst, remove=True)
                    os.unlink(dst)
                ctx.fs.check_write(dst)
                os.link(first, dst, follow_symlinks=False)
                return True
        if stat.S_ISREG(st.st_mode):
            existed = os.path.exists(dst)
            try:
                f = ctx.fs.open_write(dst, mode=stat.S_IMODE(st.st_mode))
            except PermissionError:
                if not force:
                    raise
                ctx.fs.check_write(dst, remove=True)
                os.unlink(dst)
                existed = False
                f = ctx.fs.open_write(dst, mode=stat.S_IMODE(st.st_mode))
            with ctx.fs.open_read(src) as s, f:
                shutil.copyfileobj(s, f)
            if not existed and not preserve:
                ctx.fs.chmod(dst, stat.S_IMODE(st.st_mode) & ~ctx.fs.umask)
        else:
            kind: EntryType = "fifo" if stat.S_ISFIFO(st.st_mode) else "char" if stat.S_ISCHR(st.st_mode) else "block"
            ctx.fs.check_write(dst)
            ctx.fs.meta.make_node(dst, kind, stat.S_IMODE(st.st_mode) & ~ctx.fs.umask, st.st_rdev,
                                  ctx.fs.uid, ctx.fs.gid)
        _copy_meta(ctx, src, dst, st, preserve)
    except OSError as e:
        ctx.err(f"can't create '{dst_v}': {e.strerror}")
        return False
    return True


_CREATED: set[tuple[int, int]] = set()  # directories made by the running cp (recursion guard)
_LINKED: dict[tuple[int, int], Path] = {}  # (dev, inode) of a file the running cp copied -> its copy


def copy_tree(ctx: Ctx, src_v: str, dst_v: str) -> bool:
    """`cp -a SRC DST` for other builtins (useradd's /etc/skel): the one confined, special-file-aware copy."""
    _CREATED.clear()
    return _copy_one(ctx, src_v, dst_v, recursive=True, deref=False, preserve=True, top=True, force=False,
                     no_clobber=False)


def _inside(src: Path, dst: Path) -> bool:
    try:
        return os.path.commonpath([os.path.realpath(src), os.path.realpath(dst)]) == os.path.realpath(src) and \
            os.path.realpath(src) != os.path.realpath(dst).rstrip("/") and os.path.isdir(src) and \
            str(os.path.realpath(dst)).startswith(str(os.path.realpath(src)) + "/")
    except ValueError:
        return False


@builtin("cp")
def cp(ctx: Ctx, args: list[str]) -> int:
    opts, paths = parse_flags(args, "rRapfdPLHnuvTi", "t")
    recursive = bool(opts.get("r") or opts.get("R") or opts.get("a"))
    preserve = bool(opts.get("p") or opts.get("a"))
    deref = bool(opts.get("L")) or (not recursive and not opts.get("d") and not opts.get("P"))
    if opts.get("d") or opts.get("P") or opts.get("a"):
        deref = False
    deref_top = bool(opts.get("H"))  # -H: follow the operands' links, not those found inside them
    if "t" in opts:
        paths = paths + [str(opts["t"])]
    if len(paths) < 2:
        ctx.err("missing file operand" if not paths else f"missing destination file operand after '{paths[0]}'")
        return 1
    *srcs, dest = paths
    into = _is_dir(ctx, dest) and not opts.get("T")
    if len(srcs) > 1 and not into:
        ctx.err(f"'{dest}' is not a directory")
        return 1
    ok = True
    _CREATED.clear()
    _LINKED.clear()
    for s in srcs:
        target = dest.rstrip("/") + "/" + posixpath.basename(s.rstrip("/")) if into else dest
        if s.rstrip("/") == "":
            target = dest
        ok &= _copy_one(ctx, s, target, recursive=recursive, deref=deref, preserve=preserve, top=True,
                        force=bool(opts.get("f")), no_clobber=bool(opts.get("n")), deref_top=deref_top,
                        update=bool(opts.get("u")), ask=bool(opts.get("i")))
    return 0 if ok else 1


@builtin("mv")
def mv(ctx: Ctx, args: list[str]) -> int:
    opts, paths = parse_flags(args, "finvT", "t")
    if "t" in opts:
        paths = paths + [str(opts["t"])]
    if len(paths) < 2:
        ctx.err("missing file operand")
        return 1
    *srcs, dest = paths
    into = _is_dir(ctx, dest) and not opts.get("T")
    if len(srcs) > 1 and not into:
        ctx.err(f"'{dest}' is not a directory")
        return 1
    code = 0
    for s in srcs:
        target = dest.rstrip("/") + "/" + posixpath.basename(s.rstrip("/")) if into else dest
        try:
            src = ctx.path(s, follow=False)
            if not os.path.lexists(src):
                raise FileNotFoundError(errno.ENOENT, "No such file or directory")
            dst = ctx.path(target, follow=False)
            if os.path.lexists(dst) and opts.get("n"):
                continue
            if os.path.lexists(dst) and opts.get("i") and not opts.get("f") and not ctx.ask(f"overwrite '{target}'"):
                continue
            if os.path.isdir(src) and not os.path.islink(src) and str(dst).startswith(str(src) + "/"):
                ctx.err(f"can't rename '{s}': Invalid argument")  # busybox shows rename(2)'s EINVAL
                code = 1
                continue
            if os.path.lexists(dst) and os.path.isdir(dst) and not os.path.islink(dst) and not os.path.isdir(src):
                ctx.err(f"can't overwrite directory '{target}'")
                code = 1
                continue
            ctx.fs.check_write(src, remove=True)
            ctx.fs.check_write(dst, remove=True)
            ctx.fs.before_rename(src)
            os.rename(src, dst)
        except OSError as e:
            ctx.err(f"can't rename '{s}': {e.strerror}")
            code = 1
    return code


@builtin("ln")
def ln(ctx: Ctx, args: list[str]) -> int:
    opts, paths = parse_flags(args, "sfnvTLP", "t")
    if "t" in opts:
        paths = paths + [str(opts["t"])]
    if not paths:
        ctx.err("missing file operand")
        return 1
    if len(paths) == 1:
        paths = paths + ["."]
    *srcs, dest = paths
    dst_st = _lstat(ctx, dest)
    into = (not opts.get("T")) and _is_dir(ctx, dest) and not (
        opts.get("n") and dst_st is not None and stat.S_ISLNK(dst_st.st_mode))
    if len(srcs) > 1 and not into:
        ctx.err(f"'{dest}' is not a directory")
        return 1
    code = 0
    for s in srcs:
        target = dest.rstrip("/") + "/" + posixpath.basename(s.rstrip("/")) if into else dest
        try:
            dst = ctx.path(target, follow=False)
            if os.path.lexists(dst):
                if not opts.get("f"):
                    raise FileExistsError(errno.EEXIST, "File exists")
                if os.path.isdir(dst) and not os.path.islink(dst):
                    raise IsADirectoryError(errno.EISDIR, "Is a directory")
                ctx.fs.check_write(dst, remove=True)
                os.unlink(dst)
            if opts.get("s"):
                ctx.fs.symlink(s, dst)
            else:
                src = ctx.path(s, follow=False)
                ctx.fs.check_write(dst)
                os.link(src, dst, follow_symlinks=False)
        except OSError as e:
            ctx.err(f"{target}: {e.strerror}")
            code = 1
    return code


@builtin("touch")
def touch(ctx: Ctx, args: list[str]) -> int:
    opts, paths = parse_flags(args, "cham", "dtr")
    when: float | None = None
    for flag in "dt":
        if flag in opts:
            try:
                when = parse_time(str(opts[flag]), ctx.now)
            except BadTime:
                ctx.err(f"invalid date '{opts[flag]}'")
                return 1
    if "r" in opts:
        st = _stat(ctx, str(opts["r"]))
        when = st.st_mtime if st else None
    follow = not opts.get("h")
    code = 0
    for p in paths:
        try:
            host = ctx.path(p, follow=follow)
            if not os.path.lexists(host):
                if opts.get("c"):
                    continue
                ctx.fs.open_write(host).close()
            times = None
            if when is not None or opts.get("a") or opts.get("m"):
                now = time.time() if when is None else when
                old = ctx.fs.stat(host, follow_symlinks=follow)
                only_a, only_m = opts.get("a") and not opts.get("m"), opts.get("m") and not opts.get("a")
                times = (old.st_atime if only_m else now, old.st_mtime if only_a else now)
            ctx.fs.check_write(host)
            os.utime(host, times, follow_symlinks=follow)
        except (OverflowError, ValueError):
            ctx.err(f"{p}: time out of range")
            code = 1
        except OSError as e:
            ctx.err(f"{p}: {e.strerror}")
            code = 1
    return code


def parse_mode(spec: str, current: int, *, umask: int = 0, is_dir: bool = False) -> int:
    """An octal or symbolic (u+x,go-w,a=rX,+t) mode applied to `current` (busybox's rules: minibuild.fsperm)."""
    parsed = parse_mode_spec(spec)
    if parsed is None:
        raise UsageError(f"invalid mode '{spec}'")
    return parsed.apply(current, is_dir=is_dir, umask=umask)


@builtin("chmod")
def chmod(ctx: Ctx, args: list[str]) -> int:
    recursive = False
    flags = ""
    rest: list[str] = []
    for a in args:
        if len(a) > 1 and a[0] == "-" and all(c in "Rfvc" for c in a[1:]) and not rest:
            flags += a[1:]
            recursive = recursive or "R" in a
        else:
            rest.append(a)
    if len(rest) < 2:
        ctx.err("missing operand")
        return 1
    spec, paths = rest[0], rest[1:]
    code = 0

    def apply(host: Path, shown: str) -> None:
        nonlocal code
        try:
            st = ctx.fs.stat(host)
            new = parse_mode(spec, st.st_mode, umask=ctx.fs.umask, is_dir=stat.S_ISDIR(st.st_mode))
            ctx.fs.chmod(host, new)
            if "v" in flags or ("c" in flags and new != stat.S_IMODE(st.st_mode)):  # -v says so even unchanged
                ctx.out(f"mode of '{shown}' changed to {new:04o} ({mode_string(new)[1:]})\n")
        except UsageError as e:
            ctx.err(str(e))
            code = 1
        except OSError as e:
            ctx.err(f"{shown}: {e.strerror}")
            code = 1

    for p in paths:
        try:
            host = ctx.path(p)
        except OSError as e:
            ctx.err(f"{p}: {e.strerror}")
            code = 1
            continue
        if not os.path.exists(host):
            ctx.err(f"{p}: No such file or directory")
            code = 1
            continue
        apply(host, p)
        if recursive and os.path.isdir(host):
            for dirpath, dirnames, filenames in ctx.fs.walk(host):
                for n in sorted(dirnames + filenames):
                    child = Path(dirpath) / n
                    if not os.path.islink(child):
                        apply(child, p.rstrip("/") + "/" + os.path.relpath(child, host))
    return code


def _parse_owner(ctx: Ctx, spec: str, group_only: bool = False) -> tuple[int | None, int | None]:
    if group_only:
        g = lookup_gid(ctx, spec)
        if g is None:
            raise UsageError(f"unknown group {spec}")
        return None, g
    user, sep, group = spec.partition(":") if ":" in spec else spec.partition(".")
    uid = gid = None
    if user:
        uid = lookup_uid(ctx, user)
        if uid is None:
            raise UsageError(f"unknown user {user}")
    if group:
        gid = lookup_gid(ctx, group)
        if gid is None:
            raise UsageError(f"unknown group {group}")
    elif sep and user:
        gid = login_gid(ctx, user)
    return uid, gid


@builtin("chown", "chgrp")
def chown(ctx: Ctx, args: list[str]) -> int:
    opts, rest = parse_flags(args, "RhfvcHLP")
    if len(rest) < 2:
        ctx.err("missing operand")
        return 1
    try:
        uid, gid = _parse_owner(ctx, rest[0], group_only=ctx.name == "chgrp")
    except UsageError as e:
        ctx.err(str(e))
        return 1
    code = 0

    def apply(host: Path, follow: bool, shown: str) -> None:
        nonlocal code
        try:
            st = ctx.fs.lstat(host)  # recorded in the ownership overlay, as root and as any user alike
            ctx.fs.chown(host, st.st_uid if uid is None else uid, st.st_gid if gid is None else gid)
        except OSError as e:
            ctx.err(f"{shown}: {e.strerror}")
            code = 1

    for p in rest[1:]:
        try:
            host = ctx.path(p, follow=not opts.get("h"))
        except OSError as e:
            ctx.err(f"{p}: {e.strerror}")
            code = 1
            continue
        apply(host, False, p)
        if opts.get("R") and os.path.isdir(host) and not os.path.islink(host):
            for dirpath, dirnames, filenames in ctx.fs.walk(host):
                for n in sorted(dirnames + filenames):
                    apply(Path(dirpath) / n, False, n)
    return code


def mode_string(m: int) -> str:
    kind = {stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFCHR: "c", stat.S_IFBLK: "b", stat.S_IFIFO: "p",
            stat.S_IFSOCK: "s"}.get(stat.S_IFMT(m), "-")
    out = [kind]
    for shift, special, ch in ((6, stat.S_ISUID, "s"), (3, stat.S_ISGID, "s"), (0, stat.S_ISVTX, "t")):
        bits = (m >> shift) & 7
        out.append("r" if bits & 4 else "-")
        out.append("w" if bits & 2 else "-")
        x = bool(bits & 1)
        if m & special:
            out.append(ch if x else ch.upper())
        else:
            out.append("x" if x else "-")
    return "".join(out)


@builtin("ls")
def ls(ctx: Ctx, args: list[str]) -> int:
    opts, paths = parse_flags(args, "laA1dFRhnrtSipL")
    code = 0
    files: list[str] = []
    dirs: list[str] = []
    # busybox follows an operand's symlink only without -l/-n/-F/-d (or always with -L); a trailing / always
    follow_operands = bool(opts.get("L")) or not any(opts.get(c) for c in "lnFd")
    for p in paths or ["."]:
        st = (_stat(ctx, p) if follow_operands else None) or _lstat(ctx, p)
        if st is None:
            ctx.err(f"{p}: No such file or directory")
            code = 1
            continue
        (dirs if stat.S_ISDIR(st.st_mode) and not opts.get("d") else files).append(p)

    def info(vpath: str) -> os.stat_result | None:
        return (_stat(ctx, vpath) if opts.get("L") else None) or _lstat(ctx, vpath)

    def order(entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """(name, path) pairs in busybox's order: by name (bytes), size (-S) or mtime (-t) first; -r reverses."""
        def key(e: tuple[str, str]) -> tuple[int, bytes]:
            st = info(e[1])
            first = 0 if st is None else -st.st_size if opts.get("S") else -int(st.st_mtime) if opts.get("t") else 0
            return first, enc(e[0])
        return sorted(entries, key=key, reverse=bool(opts.get("r")))

    def line(name: str, vpath: str) -> str:
        st = info(vpath)
        if st is None:
            return name
        suffix = ""
        if opts.get("F") or opts.get("p"):
            if stat.S_ISDIR(st.st_mode):
                suffix = "/"
            elif opts.get("F") and stat.S_ISLNK(st.st_mode):
                suffix = "@"
            elif opts.get("F") and st.st_mode & 0o111:
                suffix = "*"
        if not opts.get("l") and not opts.get("n"):
            return name + suffix
        owner = str(st.st_uid) if opts.get("n") else user_name(ctx, st.st_uid)
        group = str(st.st_gid) if opts.get("n") else group_name(ctx, st.st_gid)
        age = time.time() - st.st_mtime  # busybox: the year for files over half a year old or 15 min ahead
        when = time.strftime("%b %e %H:%M" if -15 * 60 < age < 3600 * 24 * 365 // 2 else "%b %e  %Y",
                             time.gmtime(st.st_mtime))
        text = f"{mode_string(st.st_mode)} {st.st_nlink:>4} {owner:<8} {group:<8} {st.st_size:>9} {when} {name}"
        if stat.S_ISLNK(st.st_mode):
            text += " -> " + os.readlink(ctx.path(vpath, follow=False))
        return text + suffix

    for f, _ in order([(f, f) for f in files]):
        ctx.out(line(f, f) + "\n")
    queue = [d for d, _ in order([(d, d) for d in dirs])]
    i = 0
    while i < len(queue):
        d = queue[i]
        if len(dirs) + len(files) > 1 or opts.get("R"):
            ctx.out(("\n" if i or files else "") + f"{d}:\n")
        i += 1
        if opts.get("R"):
            try:
                subs = [d.rstrip("/") + "/" + n for n in sorted(ctx.fs.listdir(ctx.path(d)))
                        if (opts.get("a") or opts.get("A") or not n.startswith("."))]
            except OSError:
                subs = []
            subs = [x for x in subs if (st_x := _lstat(ctx, x)) is not None and stat.S_ISDIR(st_x.st_mode)]
            queue[i:i] = subs
        try:
            names = ctx.fs.listdir(ctx.path(d))
        except OSError as e:
            ctx.err(f"{d}: {e.strerror}")
            code = 2
            continue
        if opts.get("a"):
            names = [".", ".."] + names
        elif not opts.get("A"):
            names = [n for n in names if not n.startswith(".")]
        names = [n for n, _ in order([(n, d.rstrip("/") + "/" + n) for n in names])]
        if opts.get("l") or opts.get("n"):
            blocks = 0
            for n in names:
                st_n = _lstat(ctx, d.rstrip("/") + "/" + n)
                blocks += st_n.st_blocks if st_n is not None else 0
            ctx.out(f"total {blocks // 2}\n")
        for n in names:
            ctx.out(line(n, d.rstrip("/") + "/" + n) + "\n")
    return code


def _known(name: str, n: int) -> str:
    """stat's %U/%G: the name, or UNKNOWN when the image has none for the id."""
    return "UNKNOWN" if name == str(n) else name


def _canonical(ctx: Ctx, p: str) -> str:
    """The symlink-free path of `p`, whose last component may be missing but not its directory (busybox)."""
    v = ctx.vpath(p)
    if not os.path.isdir(ctx.fs.host(posixpath.dirname(v))):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")
    return v


@builtin("readlink")
def readlink(ctx: Ctx, args: list[str]) -> int:
    opts, paths = parse_flags(args, "fenqsv")
    code = 0
    for p in paths:
        try:
            if opts.get("f") or opts.get("e"):
                v = _canonical(ctx, p)
                if opts.get("e") and not os.path.lexists(ctx.fs.host(v)):
                    code = 1
                    continue
                ctx.out(v + ("" if opts.get("n") else "\n"))
            else:
                ctx.out(os.readlink(ctx.path(p, follow=False)) + ("" if opts.get("n") else "\n"))
        except OSError:
            code = 1
    return code


@builtin("realpath")
def realpath(ctx: Ctx, args: list[str]) -> int:
    code = 0
    for p in (a for a in args if not a.startswith("-")):
        try:
            ctx.out(_canonical(ctx, p) + "\n")
        except OSError as e:
            ctx.err(f"{p}: {e.strerror}")
            code = 1
    return code


@builtin("stat")
def stat_(ctx: Ctx, args: list[str]) -> int:
    fmt: str | None = None
    follow = False
    paths: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-c":
            fmt = args[i + 1]
            i += 2
            continue
        if a.startswith("-c"):
            fmt = a[2:]
        elif a == "-L":
            follow = True
        else:
            paths.append(a)
        i += 1
    code = 0
    for p in paths:
        try:
            host = ctx.path(p, follow=follow)
            st = ctx.fs.stat(host) if follow else ctx.fs.lstat(host)
        except OSError as e:
            ctx.err(f"can't stat '{p}': {e.strerror}")
            code = 1
            continue
        kind = {stat.S_IFDIR: "directory", stat.S_IFLNK: "symbolic link", stat.S_IFREG: "regular file" if st.st_size else "regular empty file",
                stat.S_IFIFO: "fifo", stat.S_IFCHR: "character special file", stat.S_IFBLK: "block special file"}.get(stat.S_IFMT(st.st_mode), "unknown")
        vals = {"a": f"{stat.S_IMODE(st.st_mode):o}", "A": mode_string(st.st_mode), "s": str(st.st_size), "n": p,
                "N": f"'{p}'" + (f" -> '{os.readlink(host)}'" if stat.S_ISLNK(st.st_mode) else ""),
                "u": str(st.st_uid), "g": str(st.st_gid), "U": _known(user_name(ctx, st.st_uid), st.st_uid),
                "G": _known(group_name(ctx, st.st_gid), st.st_gid),
                "F": kind, "h": str(st.st_nlink), "f": f"{st.st_mode:x}", "Y": str(int(st.st_mtime)),
                "X": str(int(st.st_atime)), "Z": str(int(st.st_ctime)),
                "i": str(st.st_ino), "%": "%"}
        if fmt is None:
            ctx.out(f"  File: '{p}'\n  Size: {st.st_size}\t{kind}\nAccess: ({vals['a']:0>4}/{vals['A']})  Uid: ({st.st_uid}/{vals['U']})   Gid: ({st.st_gid}/{vals['G']})\n")
            continue
        out: list[str] = []
        j = 0
        while j < len(fmt):
            if fmt[j] == "%" and j + 1 < len(fmt):
                out.append(vals.get(fmt[j + 1], "?"))
                j += 2
            elif fmt[j] == "\\" and j + 1 < len(fmt) and fmt[j + 1] == "n":
                out.append("\n")
                j += 2
            else:
                out.append(fmt[j])
                j += 1
        ctx.out("".join(out) + "\n")
    return code
