"""md5sum, sha1sum, sha256sum, sha512sum (and sha3sum) with -c, as busybox's md5_sha1_sum prints them."""

from __future__ import annotations

import hashlib

from minibuild.sh.builtins.base import Ctx, UsageError, builtin, parse_flags
from minibuild.sh.streams import dec

_ALGO = {"md5sum": "md5", "sha1sum": "sha1", "sha256sum": "sha256", "sha512sum": "sha512", "sha3sum": "sha3_224"}
_SHA3 = {"224": "sha3_224", "256": "sha3_256", "384": "sha3_384", "512": "sha3_512"}


def _hash(ctx: Ctx, algo: str, name: str) -> str | None:
    """The hex digest of a file (`-` is stdin), or None after busybox's message."""
    try:
        data = ctx.read_input(name)
    except IsADirectoryError:
        ctx.err(f"can't read '{name}': Is a directory")
        return None
    except OSError as e:
        ctx.err(f"can't open '{name}': {e.strerror or e}")
        return None
    return hashlib.new(algo, data).hexdigest()


@builtin(*_ALGO)
def digest(ctx: Ctx, args: list[str]) -> int:
    try:
        opts, files = parse_flags(args, "cswbt", with_value="a" if ctx.name == "sha3sum" else "")
    except UsageError as e:
        ctx.err(str(e))
        return 1
    algo = _ALGO[ctx.name]
    if "a" in opts:
        bits = str(opts["a"])
        if bits not in _SHA3:
            ctx.err(f"invalid number '{bits}'")
            return 1
        algo = _SHA3[bits]
    code = 0
    for name in files or ["-"]:
        if not opts.get("c"):
            h = _hash(ctx, algo, name)
            if h is None:
                code = 1
            else:
                ctx.out(f"{h}  {name}\n")
            continue
        try:
            listing = ctx.read_input(name)
        except OSError as e:
            ctx.err(f"can't open '{name}': {e.strerror or e}")
            code = 1
            continue
        total = failed = 0
        lines = listing.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        for raw in lines:
            line = dec(raw)
            total += 1
            cut = line.find("  ")
            if cut < 0:
                cut = line.find(" *")
            if cut < 0:
                if opts.get("w"):
                    ctx.err("invalid format")
                failed += 1
                code = 1
                continue
            want, fname = line[:cut], line[cut + 2:]
            got = _hash(ctx, algo, fname)
            ok = got is not None and got == want
            if not opts.get("s"):
                ctx.out(f"{fname}: {'OK' if ok else 'FAILED'}\n")
            if not ok:
                failed += 1
                code = 1
        if failed and not opts.get("s"):
            ctx.err(f"WARNING: {failed} of {total} computed checksums did NOT match")
        if total == 0:
            ctx.err(f"{name}: no checksum lines found")
            code = 1
    return code
