"""Content-addressed blobs under blobs/sha256/<hex>: atomic verified writes, verified reads."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO, Protocol

from minibuild.digest import CHUNK, Digest
from minibuild.errors import StoreError
from minibuild.store.dirs import names, opened, remove
from minibuild.store.lock import FileLock, fsync_dir, unwritable


class Pin(Protocol):
    """Something that keeps blobs alive through prune (a build lease)."""

    def add(self, *digests: Digest) -> None: ...


class RemoteBlobSource(Protocol):
    """Somewhere blobs can be fetched from on demand (a registry or OCI layout build cache); see ``BlobStore.remote``."""

    name: str

    def blob_size(self, digest: Digest) -> int | None:
        """The size of ``digest`` when this source can provide it, else None (no network needed to answer)."""
        ...

    def fetch(self, digest: Digest, pin: Pin | None) -> None:
        """Write ``digest`` into the store (through ``blobs.writer(expected=digest)``), verified."""
        ...


class VerifyingReader(io.RawIOBase):
    """Reads a blob file and raises StoreError at end of file when its sha256 or size is wrong."""

    def __init__(self, fh: BinaryIO, digest: Digest, path: Path) -> None:
        self._fh = fh
        self._digest = digest
        self._path = path
        self._hash = hashlib.sha256()
        self._size = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._fh.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._hash.update(memoryview(buffer)[:n])
            self._size += n
        elif not self._checked and len(buffer) > 0:
            self._checked = True
            actual = "sha256:" + self._hash.hexdigest()
            if actual != self._digest.value:
                raise StoreError(
                    f"blob {self._digest} is corrupt (content hashes to {actual}); run `minibuild fsck --repair` "
                    f"and rebuild or reload the image")
        return n or 0

    def close(self) -> None:
        self._fh.close()
        super().close()


class BlobWriter:
    """Streams a new blob to a locked temp file, hashing as it goes; ``commit()`` publishes it atomically.

    Use as a context manager: leaving the block without ``commit()`` (or by an exception) deletes the temp
    file, so a crash or Ctrl-C never leaves a blob under its final name that was not fully hashed.
    """

    def __init__(self, store: BlobStore, *, expected: Digest | None = None, pin: Pin | None = None) -> None:
        self._store = store
        self._expected = expected
        self._pin = pin
        self._hash = hashlib.sha256()
        self.size = 0
        self._tmp = store.tmp_dir / f"blob-{os.getpid()}-{os.urandom(8).hex()}"
        with store.shared_lock():  # prune (exclusive) never sees this file before it is locked
            try:
                fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except PermissionError as exc:
                raise unwritable(store.tmp_dir, exc) from None
            fcntl.flock(fd, fcntl.LOCK_EX)  # tells prune this temp file belongs to a live writer
        self._fh: IO[bytes] | None = os.fdopen(fd, "wb")
        self.result: Digest | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._fh is None:
            raise StoreError("write to a blob writer that is already committed or aborted")
        self._hash.update(data)
        self.size += len(data)
        try:
            self._fh.write(data)
        except OSError as err:
            self.abort()
            raise self._write_error(err) from None
        return len(data)

    def _write_error(self, err: OSError) -> StoreError:
        """A host refusal while writing (a full disk, a quota, EIO) as one line; the temp file is already gone."""
        return StoreError(f"cannot write a blob to the store {self._store.root}: {err.strerror or err}")

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    @property
    def digest(self) -> Digest:
        """The digest of what was written so far."""
        return Digest("sha256:" + self._hash.hexdigest())

    def commit(self) -> Digest:
        """fsync, verify against ``expected``, rename into blobs/sha256/<hex>; return the digest."""
        if self._fh is None:
            raise StoreError("blob writer is already committed or aborted")
        digest = self.digest
        if self._expected is not None and digest != self._expected:
            self.abort()
            raise StoreError(f"blob content does not match its digest: expected {self._expected}, got {digest}")
        fh = self._fh
        try:
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as err:
            self.abort()
            raise self._write_error(err) from None
        final = self._store.path(digest)
        with self._store.shared_lock():
            if self._pin is not None:
                self._pin.add(digest)
            if self._store.has(digest):  # a regular file already; a symlink there is replaced, never trusted
                os.unlink(self._tmp)
            else:
                os.replace(self._tmp, final)
                if self._store._deferred is None:
                    fsync_dir(final.parent)
                else:  # inside defer_dir_sync(): one directory fsync for the lot (before any ref names them)
                    self._store._deferred = True
        fh.close()
        self._fh = None
        self.result = digest
        return digest

    def abort(self) -> None:
        """Discard the temp file (idempotent)."""
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()  # flushes what is buffered: on a full disk that fails too, and the file still goes
            except OSError:
                pass
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.abort()


class BlobStore:
    """The blobs of one store: ``root/blobs/sha256/<hex>``, temp files in ``tmp_dir``."""

    def __init__(self, root: Path, *, tmp_dir: Path, lock_path: Path) -> None:
        self.root = root
        self.dir = root / "blobs" / "sha256"
        self.tmp_dir = tmp_dir
        self._lock_path = lock_path
        self.remote: list[RemoteBlobSource] = []  # consulted by available/open/size/ensure for absent blobs
        self.fetched: list[tuple[Digest, str]] = []  # (digest, source name) of every blob fetched from a remote
        self._deferred: bool | None = None  # None: fsync the directory per commit; else whether renames are pending

    @contextmanager
    def defer_dir_sync(self) -> Iterator[None]:
        """Within the block, a commit fsyncs its file but not the blobs directory; the directory is fsynced once
        when the block ends (or earlier by ``sync_dir``). A blob whose rename a crash loses is simply absent (its
        data was fsynced before the rename, and readers verify digests); ``Store.tag`` syncs the directory before
        it writes a name, so no durable ref can point at a lost rename."""
        outer = self._deferred
        if outer is None:
            self._deferred = False
        try:
            yield
        finally:
            if outer is None:
                try:
                    self.sync_dir()
                finally:
                    self._deferred = None

    def sync_dir(self, *, force: bool = False) -> None:
        """fsync the blobs directory if a deferred commit renamed a blob into it since the last sync (``force``:
        in any case, e.g. before a ref is written: another process may have renamed blobs it has not synced)."""
        if self._deferred or force:
            fsync_dir(self.dir)
            if self._deferred:
                self._deferred = False

    def shared_lock(self) -> FileLock:
        return FileLock(self._lock_path, shared=True)

    def path(self, digest: Digest) -> Path:
        if digest.algorithm != "sha256":
            raise StoreError(f"unsupported digest algorithm in {digest}")
        return self.dir / digest.hex

    def has(self, digest: Digest) -> bool:
        """True when the blob is here as a regular file (a symlink in blobs/sha256 is corrupt: never followed)."""
        try:
            return stat.S_ISREG(os.lstat(self.path(digest)).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def remote_source(self, digest: Digest) -> RemoteBlobSource | None:
        """The first remote source that can provide ``digest`` (None when there is none)."""
        for src in self.remote:
            if src.blob_size(digest) is not None:
                return src
        return None

    def available(self, digest: Digest) -> bool:
        """True when the blob is here or a remote source can provide it on demand (nothing is fetched)."""
        return self.has(digest) or self.remote_source(digest) is not None

    def ensure(self, digest: Digest, *, pin: Pin | None = None) -> bool:
        """Make the blob local, fetching it from a remote source if needed; False when nobody has it."""
        if self.has(digest):
            return True
        src = self.remote_source(digest)
        if src is None:
            return False
        src.fetch(digest, pin)
        if not self.has(digest):
            raise StoreError(f"blob {digest} was not stored by its source {src.name}")
        self.fetched.append((digest, src.name))
        return True

    def size(self, digest: Digest) -> int:
        try:
            st = os.lstat(self.path(digest))
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFoundError
            return st.st_size
        except FileNotFoundError:
            src = self.remote_source(digest) if self.remote else None
            if src is not None:
                size = src.blob_size(digest)
                assert size is not None
                return size
            raise self._missing(digest) from None

    def _missing(self, digest: Digest) -> StoreError:
        return StoreError(f"blob {digest} is not in the store {self.root}")

    def open(self, digest: Digest, *, verify: bool = True) -> BinaryIO:
        """Open a blob for reading; with ``verify`` the digest is checked when the end is read. A blob that is
        not here but that a remote source has is fetched (verified) first."""
        if self.remote and not self.has(digest):
            self.ensure(digest)
        try:
            fd = os.open(self.path(digest), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise self._missing(digest) from None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise StoreError(f"blob {digest} is a symlink, not a file: the store is damaged (minibuild never "
                             f"follows it); run `minibuild fsck --repair`") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StoreError(f"blob {digest} is not a regular file: the store is damaged; run `minibuild fsck --repair`")
        fh = os.fdopen(fd, "rb")
        if not verify:
            return fh
        return io.BufferedReader(VerifyingReader(fh, digest, self.path(digest)), CHUNK)

    def read_bytes(self, digest: Digest) -> bytes:
        """The whole blob, verified."""
        with self.open(digest) as fh:
            data = fh.read()
        return data

    def verify(self, digest: Digest) -> bool:
        """True when the blob exists and hashes to its name."""
        try:
            with self.open(digest) as fh:
                while fh.read(CHUNK):
                    pass
        except StoreError:
            return False
        return True

    def writer(self, *, expected: Digest | None = None, pin: Pin | None = None) -> BlobWriter:
        """A BlobWriter (context manager); ``pin`` (a Lease) keeps the blob alive until used."""
        return BlobWriter(self, expected=expected, pin=pin)

    def put_bytes(self, data: bytes, *, expected: Digest | None = None, pin: Pin | None = None) -> Digest:
        """Store ``data``; when ``expected`` is given the content must hash to it."""
        digest = Digest.of_bytes(data)
        if expected is not None and digest != expected:
            raise StoreError(f"blob content does not match its digest: expected {expected}, got {digest}")
        if self.has(digest):
            if pin is not None:
                with self.shared_lock():
                    pin.add(digest)
                    if self.has(digest):
                        return digest
            else:
                return digest
        with self.writer(expected=digest, pin=pin) as w:
            w.write(data)
            return w.commit()

    def put_stream(self, src: IO[bytes] | BinaryIO, *, expected: Digest | None = None, pin: Pin | None = None) -> Digest:
        """Copy a readable stream into the store."""
        with self.writer(expected=expected, pin=pin) as w:
            while chunk := src.read(CHUNK):
                w.write(chunk)
            return w.commit()

    def delete(self, digest: Digest) -> int:
        """Remove a blob; return the bytes freed (0 if absent). Callers hold the store lock."""
        with opened(self.root, "blobs", "sha256") as fd:
            return remove(fd, self.path(digest).name, measure=True) if fd is not None else 0

    @staticmethod
    def digests(fd: int) -> Iterator[Digest]:
        """Every blob name in the open blobs directory ``fd`` (not verified)."""
        for name in names(fd):
            if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
                yield Digest("sha256:" + name)

    def __iter__(self) -> Iterator[Digest]:
        """Every blob name in the store (not verified); the directory is never followed through a symlink."""
        with opened(self.root, "blobs", "sha256") as fd:
            found = list(self.digests(fd)) if fd is not None else []
        yield from found
