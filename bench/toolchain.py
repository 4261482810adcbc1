"""The real-toolchain base: Debian bookworm (minbase) with gcc and libc6-dev made by debootstrap, as an image archive.

    python bench/toolchain.py [--work-root DIR] [--mirror URL]   # make (or find) the cached archive, print its path

The mirror is the machine's configured Debian mirror (the first ``bookworm`` source in /etc/apt/sources.list and
/etc/apt/sources.list.d/), so the bench fetches nothing from elsewhere. The made archive is cached under the bench's
work root (``cache/``) and reused by later runs; when it cannot be made (no debootstrap, not root, no mirror or
the mirror unreachable) :class:`Unavailable` says why, and the bench lists the scenario as skipped with that reason.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SUITE = "bookworm"
PACKAGES = ("gcc", "libc6-dev")
IMAGE_NAME = "mbbench/debian-gcc:bookworm"
ARCHIVE = f"debian-{SUITE}-gcc.tar"
# not part of an image: the engines mount their own /dev, /proc, /sys; the package cache and lists are install-time
_DROP = re.compile(r"^(dev|proc|sys|run)/.|^var/cache/apt/archives/.+\.deb$|^var/lib/apt/lists/.|^tmp/.")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Unavailable(Exception):
    """The base cannot be made here; the message is the reason the results table shows."""


def configured_mirror(etc: Path = Path("/etc/apt")) -> str | None:
    """The URI of the first configured source carrying suite ``bookworm`` (deb822 ``.sources`` or one-line form)."""
    files = [etc / "sources.list"] + sorted((etc / "sources.list.d").glob("*.list")) + \
        sorted((etc / "sources.list.d").glob("*.sources"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for para in re.split(r"\n\s*\n", text):
                fields = dict((k.strip().lower(), v.strip()) for k, _, v in
                              (line.partition(":") for line in para.splitlines()
                               if ":" in line and not line.lstrip().startswith("#")))
                if "deb" in fields.get("types", "").split() and SUITE in fields.get("suites", "").split():
                    return fields.get("uris", "").split()[0] if fields.get("uris") else None
        else:
            for line in text.splitlines():
                parts = line.split("#", 1)[0].split()
                if len(parts) >= 3 and parts[0] == "deb":
                    rest = [p for p in parts[1:] if not p.startswith("[")]
                    if len(rest) >= 2 and rest[1] == SUITE:
                        return rest[0]
    return None


def _pack(rootfs: Path, out: Path) -> None:
    """A ``docker save`` (manifest.json) archive of ``rootfs`` as one layer named IMAGE_NAME."""
    layer = out.with_suffix(".layer.tmp")

    def keep(ti: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = ti.name[2:] if ti.name.startswith("./") else ti.name
        if _DROP.match(name) or ti.type in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
            return None
        ti.uname = ti.gname = ""
        return ti

    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tf:
        for entry in sorted(os.listdir(rootfs)):
            tf.add(rootfs / entry, arcname=entry, filter=keep)
    h = hashlib.sha256()
    with open(layer, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    hexd = h.hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Env": [PATH_ENV], "Cmd": ["bash"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hexd}"]},
        "history": [{"created": "1970-01-01T00:00:00Z",
                     "created_by": f"debootstrap --variant=minbase --include={','.join(PACKAGES)} {SUITE}"}],
    }, sort_keys=True, separators=(",", ":")).encode()
    cfg = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{cfg}.json", "RepoTags": [IMAGE_NAME],
                            "Layers": [f"{hexd}/layer.tar"]}]).encode()
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo(f"{hexd}/")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(d)
        ti = tarfile.TarInfo(f"{hexd}/layer.tar")
        ti.size, ti.mode = layer.stat().st_size, 0o644
        with open(layer, "rb") as f:
            tf.addfile(ti, f)
        for name, data in ((f"{cfg}.json", config), ("manifest.json", manifest)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tf.addfile(ti, io.BytesIO(data))
    layer.unlink()
    tmp.replace(out)


def debian_gcc_base(cache: Path, *, mirror: str | None = None, log=print) -> Path:  # type: ignore[no-untyped-def]
    """The cached archive under ``cache``, made first when missing; raises Unavailable with the reason."""
    out = cache / ARCHIVE
    if out.exists():
        return out
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise Unavailable("no debootstrap (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise Unavailable("debootstrap needs root")
    mirror = mirror or configured_mirror()
    if mirror is None:
        raise Unavailable(f"no {SUITE} source in /etc/apt/sources.list(.d)")
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=cache))
    try:
        rootfs = work / "rootfs"
        log(f"debootstrap {SUITE} + {','.join(PACKAGES)} from {mirror} (once; cached as {out})")
        proc = subprocess.run([debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
                               str(rootfs), mirror], capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["?"]
            raise Unavailable(f"debootstrap from {mirror} failed (exit {proc.returncode}): {tail[0][:200]}")
        _pack(rootfs, out)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


HELLO_C = """\
#include <stdio.h>

static unsigned long fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int main(void) {
    printf("hello from a static binary: fib(20) = %lu\\n", fib(20));
    return 0;
}
"""

DOCKERFILE = f"""\
FROM {IMAGE_NAME} AS build
WORKDIR /src
COPY hello.c .
RUN gcc -static -O2 -o hello hello.c && ./hello

FROM scratch
COPY --from=build /src/hello /hello
ENTRYPOINT ["/hello"]
"""


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import default_work_root  # noqa: PLC0415 (the bench's own default)

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--work-root", default=str(default_work_root()))
    ap.add_argument("--mirror", default=None)
    args = ap.parse_args()
    try:
        print(debian_gcc_base(Path(args.work_root) / "cache", mirror=args.mirror))
    except Unavailable as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
