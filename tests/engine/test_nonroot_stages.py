"""Owners, modes, device nodes and hard links survive steps and stages as an ordinary user, as they do as root.

A base image carries what an ordinary user cannot hold on the host (a char device, a setuid file, files of other
owners, a 0555 directory, a 0000 file, a hard link); a stage changes owners and modes in the emulated shell, and a
second stage copies the whole root (``COPY --from``).  Built as root and as uid 65534 (forked children: one stays
root, one drops), the final tarballs are identical and the copied layer holds the values written here by hand.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from minibuild.store.tarlayer import Entry, write_layer
from tests.security.hostile import docker_save_archive
from tests.support import require_root

NOBODY = 65534
DOCKERFILE = """\
FROM hostile:latest AS one
RUN chown app:app /bin/su && chmod 4711 /bin/su && mkdir -p /home/app && chown app /home/app && echo hi > /srv/new
FROM scratch
COPY --from=one / /
"""


def _base_layer() -> bytes:
    passwd = b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
    group = b"root:x:0:\napp:x:1000:\n"
    entries = [
        Entry(path="bin", type="dir", mode=0o755), Entry(path="bin/su", type="file", mode=0o4755, data=b"su"),
        Entry(path="bin/busybox", type="file", mode=0o755, data=b"\x7fELF stand-in"),
        Entry(path="bin/sh", type="symlink", linkname="busybox"),  # the emulated shell runs RUN
        Entry(path="dev", type="dir", mode=0o755),
        Entry(path="dev/null", type="char", mode=0o666, devmajor=1, devminor=3),
        Entry(path="etc", type="dir", mode=0o755), Entry(path="etc/passwd", type="file", mode=0o644, data=passwd),
        Entry(path="etc/group", type="file", mode=0o644, data=group),
        Entry(path="srv", type="dir", mode=0o555, uid=5, gid=7),
        Entry(path="srv/secret", type="file", mode=0o000, uid=1000, gid=1000, data=b"s"),
        Entry(path="srv/twin", type="hardlink", linkname="srv/secret", mode=0o000, uid=1000, gid=1000),
    ]
    buf = io.BytesIO()
    write_layer(entries, buf, source_date_epoch=0)
    return buf.getvalue()


def _build_in_child(work: Path, side: str, uid: int | None) -> int:
    """Fork; drop to ``uid`` when given; load the base and build into ``work/<side>.tar``; the exit code."""
    from minibuild.cli import main

    store, out = work / f"store-{side}", work / f"{side}.tar"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 3
        try:
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            for argv in (["load", str(work / "base.tar")],
                         ["build", str(work / "ctx"), "-o", str(out)]):
                try:
                    main(["--store", str(store), *argv])
                except SystemExit as exc:
                    if exc.code not in (0, None):
                        raise
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _last_layer(tarball: Path) -> dict[str, tuple[str, int, int, int, str]]:
    """name -> (type, mode, uid, gid, link or device) of the image's last layer, read from the tar headers."""
    with tarfile.open(tarball) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = outer.extractfile(manifest[0]["Layers"][-1])
        assert layer is not None
        data = layer.read()
    kinds = {tarfile.DIRTYPE: "dir", tarfile.REGTYPE: "file", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char"}
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf:
            extra = m.linkname if m.islnk() else f"{m.devmajor}:{m.devminor}" if m.ischr() else ""
            out[m.name.rstrip("/")] = (kinds.get(m.type, "other"), m.mode, m.uid, m.gid, extra)
    return out


def test_owners_modes_nodes_and_links_cross_stages_alike_as_root_and_as_a_user() -> None:
    require_root()  # to build once as root and once as uid 65534
    import importlib
    import pkgutil

    import minibuild

    for mod in pkgutil.walk_packages(minibuild.__path__, "minibuild."):  # uid 65534 may not read this checkout
        if mod.name != "minibuild.pytest_plugin":
            importlib.import_module(mod.name)
    work = Path(tempfile.mkdtemp(prefix="mb-stages-"))
    try:
        (work / "base.tar").write_bytes(docker_save_archive(_base_layer()))
        (work / "ctx").mkdir()
        (work / "ctx" / "Dockerfile").write_text(DOCKERFILE)
        for p in (work / "base.tar", work / "ctx", work / "ctx" / "Dockerfile"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        (work / "store-user").mkdir()
        os.chown(work / "store-user", NOBODY, NOBODY)
        os.chmod(work, 0o1777)  # sticky, as /tmp: both children write their tarball here
        assert _build_in_child(work, "root", None) == 0
        assert _build_in_child(work, "user", NOBODY) == 0
        assert (work / "user.tar").read_bytes() == (work / "root.tar").read_bytes()
        got = _last_layer(work / "user.tar")
        assert {k: got[k] for k in ("bin/su", "dev/null", "home/app", "srv", "srv/secret", "srv/twin", "srv/new")} == {
            "bin/su": ("file", 0o4711, 1000, 1000, ""),  # chown cleared setuid, chmod set it again
            "dev/null": ("char", 0o666, 0, 0, "1:3"),
            "home/app": ("dir", 0o755, 1000, 0, ""),  # chown USER keeps the group
            "srv": ("dir", 0o555, 5, 7, ""),
            "srv/secret": ("file", 0o000, 1000, 1000, ""),
            "srv/twin": ("hardlink", 0o000, 1000, 1000, "srv/secret"),
            "srv/new": ("file", 0o644, 0, 0, ""),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
