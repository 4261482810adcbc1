"""What a RUN --mount gives the command, build side: secrets and agent sockets handed to the build, the store's
persistent cache-mount directories, and private copies for writable binds; every one made for one RUN lives in
a ``Held`` that releases it (locks, temporary copies) when the RUN ends."""

from __future__ import annotations

import csv
import fcntl
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path

from minibuild.errors import ConfigError

CACHE_MOUNTS_DIR = "cache-mounts"  # under the store's .minibuild directory


def parse_secret(spec: str, environ: Mapping[str, str]) -> tuple[str, bytes]:
    """``--secret`` as ``docker build --secret`` reads it: ``id=ID[,src=FILE|,env=VAR][,type=file|env]``; with
    neither src nor env, the environment variable named ID when set, else the file named ID. (id, value)."""
    try:
        fields = next(csv.reader([spec], strict=True), [])
    except csv.Error as exc:
        raise ConfigError(f"invalid --secret {spec!r}: {exc}") from None
    sid = src = env = typ = ""
    for field in fields:
        key, eq, value = field.partition("=")
        key = key.lower()
        if not eq:
            raise ConfigError(f"invalid --secret {spec!r}: invalid field '{field}' must be a key=value pair")
        if key == "type":
            if value not in ("file", "env"):
                raise ConfigError(f'invalid --secret {spec!r}: unsupported secret type "{value}"')
            typ = value
        elif key == "id":
            sid = value
        elif key in ("source", "src"):
            src = value
        elif key == "env":
            env = value
        else:
            raise ConfigError(f"invalid --secret {spec!r}: unexpected key '{key}' in '{field}'")
    if typ == "env" and not env:
        env, src = src, ""
    if not sid:
        raise ConfigError(f"invalid --secret {spec!r}: secret ID missing")
    if not src and not env:
        if sid in environ:
            env = sid
        else:
            src = sid
    if env:
        if env not in environ:
            raise ConfigError(f"--secret id={sid}: environment variable {env} is not set")
        return sid, os.fsencode(environ[env])
    try:
        with open(src, "rb") as f:
            return sid, f.read()
    except OSError as exc:
        raise ConfigError(f"--secret id={sid}: cannot read {src}: {exc.strerror}") from None


def parse_ssh(spec: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """``--ssh`` as ``docker build --ssh``: ``default`` (the agent at $SSH_AUTH_SOCK) or ``ID=SOCKET``; (id, path
    of the agent socket). Only agent sockets are forwarded (no key files)."""
    sid, eq, path = spec.partition("=")
    if not sid:
        raise ConfigError(f"invalid --ssh {spec!r}: expected ID[=SOCKET]")
    if not eq:
        path = environ.get("SSH_AUTH_SOCK", "")
        if not path:
            raise ConfigError(f"--ssh {sid}: SSH_AUTH_SOCK is not set (start an agent, or give --ssh {sid}=SOCKET)")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"--ssh {sid}: cannot use {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigError(f"--ssh {sid}: {path} is not an agent socket (key files are not supported)")
    return sid, path


def cache_mounts_dir(meta_dir: Path) -> Path:
    """Where a store keeps its cache mounts."""
    return meta_dir / CACHE_MOUNTS_DIR


def prune_cache_mounts(meta_dir: Path, *, dry_run: bool = False) -> tuple[int, int]:
    """Empty the store's cache mounts (each taken under its exclusive lock, so one in use by a running build is
    waited for): (directories removed, bytes freed)."""
    top = cache_mounts_dir(meta_dir)
    try:
        names = sorted(n for n in os.listdir(top) if not n.endswith(".lock"))
    except FileNotFoundError:
        return 0, 0
    count = freed = 0
    for name in names:
        path = top / name
        if os.path.islink(path) or not path.is_dir():
            continue
        with open(top / f"{name}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            freed += _size(path)
            count += 1
            if not dry_run:
                shutil.rmtree(path)
    return count, freed


def _size(path: Path) -> int:
    total = 0
    for dirpath, dirs, files in os.walk(path):
        for n in files + dirs:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
            except OSError:
                pass
    return total


class Held:
    """What one RUN's mounts hold until it ends: cache-mount locks, temporary copies and files."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.stack = ExitStack()

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def scratch(self, prefix: str, where: Path | None = None) -> Path:
        """A private directory (in the build's temporary directory, or ``where``), removed when the RUN ends."""
        d = Path(tempfile.mkdtemp(prefix=prefix, dir=where or self.tmp))
        self.stack.callback(shutil.rmtree, d, True)
        return d

    def secret_file(self, data: bytes, mode: int, uid: int, gid: int) -> Path:
        """The secret in a private file with the mount's mode and owner (the owner only as root); in memory
        (/dev/shm) where the host has it, so a killed build leaves no secret on disk."""
        shm = Path("/dev/shm")
        d = self.scratch("minibuild-secret-", shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None)
        os.chmod(d, 0o700)
        path = d / "secret"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if os.geteuid() == 0:
            os.chown(path, uid, gid)
        os.chmod(path, mode)
        os.chmod(d, 0o711)  # a USER the RUN runs as reaches the file (its mode decides who reads it), unlisted
        return path

    def copy(self, source: Path) -> Path:
        """A private copy of a bind source, for a writable bind whose writes are discarded."""
        d = self.scratch("bind-")
        os.chmod(d, 0o755)
        dest = d / "src"
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, dest, symlinks=True)
        else:
            shutil.copy2(source, dest, follow_symlinks=False)
        return dest

    def cache_dir(self, top: Path, ident: str, sharing: str, mode: int, uid: int, gid: int,
                  seed: Callable[[Path], None] | None) -> Path:
        """The persistent directory of a cache mount, made with ``mode``, ``uid``:``gid`` (owner as root only)
        when new and filled by ``seed`` (a ``from=`` source). ``shared`` holds a shared lock, ``locked`` waits
        for an exclusive one, ``private`` takes the first instance no other RUN holds."""
        top.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        n = 0
        while True:
            name = digest if n == 0 else f"{digest}-{n}"
            lock = open(top / f"{name}.lock", "a+b")
            if sharing == "private":
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    lock.close()
                    n += 1
                    continue
            else:
                fcntl.flock(lock, fcntl.LOCK_SH if sharing == "shared" else fcntl.LOCK_EX)
            self.stack.callback(lock.close)
            path = top / name
            if os.path.islink(path):
                raise ConfigError(f"cache mount directory {path} is a symlink; refusing to use it")
            if not path.is_dir():
                work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=top))
                if seed is not None:
                    os.rmdir(work)
                    seed(work)
                os.chmod(work, mode)
                if os.geteuid() == 0:
                    os.chown(work, uid, gid)
                try:
                    os.rename(work, path)
                except OSError:  # another shared user made it first
                    shutil.rmtree(work, ignore_errors=True)
            return path
