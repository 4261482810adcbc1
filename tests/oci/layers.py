"""Test helper: tiny deterministic layer tars built with tarfile (independent of minibuild's tar writer)."""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass

from minibuild.digest import Digest
from minibuild.oci.model import MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP


@dataclass(frozen=True)
class TestLayer:
    blob: bytes
    diff_id: Digest
    digest: Digest
    size: int
    media_type: str


def tar_bytes(files: dict[str, bytes | str | None], *, modes: dict[str, int] | None = None,
              symlinks: dict[str, str] | None = None, hardlinks: dict[str, str] | None = None) -> bytes:
    """A tar with the given entries in the given order: bytes -> file, None -> directory."""
    modes = modes or {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, content in files.items():
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            ti.uname = ti.gname = ""
            if content is None:
                ti.type = tarfile.DIRTYPE
                ti.mode = modes.get(name, 0o755)
                tf.addfile(ti)
            else:
                data = content.encode() if isinstance(content, str) else content
                ti.size = len(data)
                ti.mode = modes.get(name, 0o644)
                tf.addfile(ti, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            ti.mode = 0o777
            tf.addfile(ti)
        for name, target in (hardlinks or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.LNKTYPE
            ti.linkname = target
            ti.mode = 0o644
            tf.addfile(ti)
    return buf.getvalue()


def make_layer(files: dict[str, bytes | str | None], *, gz: bool = False, **kw: dict[str, str]) -> TestLayer:
    raw = tar_bytes(files, **kw)  # type: ignore[arg-type]
    blob = gzip.compress(raw, mtime=0) if gz else raw
    return TestLayer(blob=blob, diff_id=Digest.of_bytes(raw), digest=Digest.of_bytes(blob), size=len(blob),
                     media_type=MEDIA_OCI_LAYER_GZIP if gz else MEDIA_OCI_LAYER)
