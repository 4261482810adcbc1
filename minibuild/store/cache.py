"""Generic cache records keyed by string, stored atomically, each naming the blobs it keeps alive."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minibuild.digest import Digest, canonical_json
from minibuild.errors import ImageFormatError, StoreError
from minibuild.store.lock import atomic_write


class CacheStore:
    """Records at ``<dir>/<sha256(key)>.json`` = {"key", "record", "refs"}; unreadable records are misses."""

    def __init__(self, directory: Path, *, tmp_dir: Path, has_blob: Any = None) -> None:
        self.dir = directory
        self._prefix = os.path.join(directory, "")  # string joins: a warm build reads two records per step
        self._tmp_dir = tmp_dir
        self._has_blob = has_blob

    def _path(self, key: str) -> str:
        return self._prefix + hashlib.sha256(key.encode("utf-8")).hexdigest() + ".json"

    def _load(self, path: str | Path) -> dict[str, Any] | None:
        try:
            with open(path, "rb") as fh:
                doc = json.loads(fh.read())
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("key"), str) or not isinstance(doc.get("refs"), list):
            return None
        return doc

    def get(self, key: str) -> dict[str, Any] | None:
        """The record stored under ``key``, or None (also when a blob it refers to has gone)."""
        doc = self._load(self._path(key))
        if doc is None or doc["key"] != key or not isinstance(doc.get("record"), dict):
            return None
        if self._has_blob is not None:
            for ref in doc["refs"]:
                try:
                    if not self._has_blob(Digest(ref)):
                        return None
                except ImageFormatError:
                    return None
        record: dict[str, Any] = doc["record"]
        return record

    def entry(self, key: str) -> tuple[dict[str, Any], tuple[Digest, ...]] | None:
        """(record, refs) stored under ``key`` without checking that the blobs exist (for exporting a cache)."""
        doc = self._load(self._path(key))
        if doc is None or doc["key"] != key or not isinstance(doc.get("record"), dict):
            return None
        try:
            return doc["record"], tuple(Digest(r) for r in doc["refs"])
        except (ImageFormatError, TypeError):
            return None

    def put(self, key: str, record: dict[str, Any], refs: tuple[Digest, ...] = ()) -> None:
        """Store ``record`` (JSON-able) under ``key``; ``refs`` are blobs kept alive through prune."""
        try:
            data = canonical_json({"key": key, "record": record, "refs": sorted({r.value for r in refs})})
        except (TypeError, ValueError) as exc:
            raise StoreError(f"cache record for {key!r} is not JSON-serialisable: {exc}") from None
        # no fsync: a record is only a cache (a lost or torn one reads as a miss, and get() re-checks that its
        # blobs exist, which were fsynced when committed); two fsyncs per step made cold builds I/O-bound
        atomic_write(Path(self._path(key)), data, tmp_dir=self._tmp_dir, durable=False)

    def delete(self, key: str) -> bool:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            return False
        return True

    def records(self) -> Iterator[tuple[str, tuple[Digest, ...]]]:
        """(key, refs) of every readable record."""
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return
        for name in names:
            if not name.endswith(".json"):
                continue
            doc = self._load(self.dir / name)
            if doc is None:
                continue
            refs = []
            for ref in doc["refs"]:
                try:
                    refs.append(Digest(ref))
                except ImageFormatError:
                    continue
            yield doc["key"], tuple(refs)

    def clear(self) -> int:
        """Delete every record; return how many."""
        count = 0
        for name in os.listdir(self.dir):
            if name.endswith(".json"):
                os.unlink(self.dir / name)
                count += 1
        return count
