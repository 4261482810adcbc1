"""A cold build reads and hashes each COPY --from source file once: the cache key and the explain record share
the hash, and the copy itself computes no checksum."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from minibuild.api import build


class _CountingSha256:
    """hashlib.sha256 that records the hasher objects whose result is the digest of a watched content."""

    real = hashlib.sha256

    def __init__(self, watched: set[str], seen: set[int], *args: Any, **kwargs: Any) -> None:
        self._h = self.real(*args, **kwargs)
        self._watched, self._seen = watched, seen

    def update(self, data: Any) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        out: str = self._h.hexdigest()
        if out in self._watched:
            self._seen.add(id(self))
        return out

    def digest(self) -> bytes:
        out: bytes = self._h.digest()
        if out.hex() in self._watched:
            self._seen.add(id(self))
        return out

    def copy(self) -> Any:
        return self._h.copy()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._h, name)


def test_each_copy_from_file_is_hashed_once_on_a_cold_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    one, two = os.urandom(50_000), os.urandom(40_000)
    (ctx / "one").write_bytes(one)
    (ctx / "two").write_bytes(two)
    # the stage makes files whose content is in no context file, so only their COPY --from hashes them
    (ctx / "Dockerfile").write_text("FROM busybox AS src\nCOPY one two /in/\n"
                                    "RUN mkdir /src && cat /in/one /in/one > /src/a && cat /in/two /in/one > /src/b\n"
                                    "FROM scratch\nCOPY --from=src /src /dst\n")
    made = [one + one, two + one]
    watched = {hashlib.sha256(data).hexdigest() for data in made}
    hashers: set[int] = set()
    keep: list[_CountingSha256] = []  # keep every hasher alive so that id() stays unique

    def sha256(*args: Any, **kwargs: Any) -> _CountingSha256:
        h = _CountingSha256(watched, hashers, *args, **kwargs)
        keep.append(h)
        return h

    monkeypatch.setattr(hashlib, "sha256", sha256)
    result = build(ctx, store=tmp_path / "store")
    assert [s.cached for s in result.steps if s.instruction.startswith("COPY --from")] == [False]
    assert len(hashers) == len(made)
