"""Helpers for the build-engine tests: write a context, build it, read an image's merged filesystem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minibuild.api import build
from minibuild.engine.builder import BuildResult
from minibuild.executors.executor import FakeExecutor
from minibuild.store import Store
from minibuild.store.tarread import iter_layer


def write_context(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def run_build(ctx: Path, store: Path, dockerfile: str, **kw: Any) -> BuildResult:
    kw.setdefault("executor", FakeExecutor())
    return build(ctx, dockerfile_text=dockerfile, store=store, **kw)


def image_files(store: Path, result: BuildResult) -> dict[str, Any]:
    """path -> (type, mode, uid, gid, content or linkname) of the image's merged filesystem (whiteouts applied)."""
    st = Store.open(store)
    fs: dict[str, Any] = {}
    for layer in result.image.layers:
        with st.blobs.open(layer.digest) as fh:
            for e, stream in iter_layer(fh):
                parent, _, name = e.path.rpartition("/")
                if name == ".wh..wh..opq":
                    for k in [k for k in fs if k.startswith(parent + "/")]:
                        del fs[k]
                    continue
                if name.startswith(".wh."):
                    gone = (parent + "/" if parent else "") + name[4:]
                    for k in [k for k in fs if k == gone or k.startswith(gone + "/")]:
                        del fs[k]
                    continue
                body = stream.read() if stream is not None else e.linkname
                fs[e.path] = (e.type, e.mode, e.uid, e.gid, body)
    return fs
