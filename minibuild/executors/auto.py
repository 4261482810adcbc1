"""``auto``: the executor for a program, chroot for a real binary when the sandbox can run here, else emulate."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypedDict

from minibuild.errors import MinibuildError
from minibuild.record import record

if TYPE_CHECKING:
    from minibuild.oci.image import Image
    from minibuild.view import FileInfo, MergedTree, _BlobOpener

AUTO = "auto"
HEAD = 64  # bytes of a program read to tell a real ELF binary from a stand-in
Resolved = Literal["emulate", "chroot"]


class ProgramFiles(Protocol):
    """The files of a root as a program lookup sees them (an extracted root or an image's layer headers)."""

    def head(self, path: str, *, executable: bool) -> bytes | None:
        """The first bytes of the regular file at absolute ``path`` (symlinks followed inside the root), None
        when it is missing, not a regular file, or (with ``executable``) has no execute bit."""
        ...


@record
class Program:
    """The file argv[0] names in a root, and whether it is a real program (an ELF binary, not a stand-in)."""

    path: str
    real: bool


@record
class Choice:
    """The executor ``auto`` picked and why, in words (``real /bin/sh in the base; root``)."""

    executor: Resolved
    reason: str


class ExecutorEvent(TypedDict):
    """The ``executor`` progress event: what ``auto`` picked for a stage, at its first RUN (once per stage)."""

    type: Literal["executor"]
    n: int  # the build-wide step number of the stage's first RUN (as its ``step`` event)
    stage: str
    executor: Resolved
    reason: str  # e.g. ``real /bin/sh in the base; root``, ``/bin/sh is a stand-in``


def executor_line(ev: ExecutorEvent) -> str:
    """The plain progress line of an ``executor`` event: ``executor: chroot for stage build (real /bin/sh ...)``."""
    return f"executor: {ev['executor']} for stage {ev['stage']} ({ev['reason']})"


def is_elf(head: bytes) -> bool:
    """A real ELF header (magic, class 32/64, byte order, version 1): the stand-in bases' placeholders begin
    with ``\\x7fELF minibuild stand-in`` and are not."""
    return len(head) >= 7 and head[:4] == b"\x7fELF" and head[4] in (1, 2) and head[5] in (1, 2) and head[6] == 1


def find_program(files: ProgramFiles, name: str, path: str, workdir: str = "/") -> Program | None:
    """The file ``name`` names (a path, relative to ``workdir``, or the first executable on ``path``), None when
    there is none; exec's lookup."""
    if "/" in name:
        cands = [name if name.startswith("/") else workdir.rstrip("/") + "/" + name]
    else:
        cands = [(d or workdir).rstrip("/") + "/" + name for d in path.split(":")]
    for cand in cands:
        head = files.head(cand if cand.startswith("/") else "/" + cand, executable="/" not in name)
        if head is not None:
            return Program(path=cand, real=is_elf(head))
    return None


def _can_chroot(problem: Callable[[], str | None] | None) -> str | None:
    if problem is not None:
        return problem()
    from minibuild.executors.chroot import platform_problem

    return platform_problem()


def choose(files: ProgramFiles, argv: tuple[str, ...], path: str, workdir: str = "/", *,
           problem: Callable[[], str | None] | None = None, euid: int | None = None) -> Choice:
    """``auto`` for a RUN of ``argv``: chroot when argv[0] is a real binary in ``files`` and the chroot executor can
    run here (``problem`` says why not; default ``chroot.platform_problem``), else emulate; the reason in words."""
    name = argv[0] if argv else "/bin/sh"
    try:
        prog = find_program(files, name, path, workdir)
    except (OSError, MinibuildError) as exc:
        return Choice(executor="emulate", reason=f"cannot read {name} in the base: {exc}")
    if prog is None:
        return Choice(executor="emulate", reason=f"no {name} in the base")
    if not prog.real:
        return Choice(executor="emulate", reason=f"{prog.path} is a stand-in")
    why_not = _can_chroot(problem)
    if why_not is not None:
        return Choice(executor="emulate", reason=f"real {prog.path} in the base, but {why_not.split(' (')[0]}")
    who = "root" if (os.geteuid() if euid is None else euid) == 0 else "unprivileged user namespaces"
    return Choice(executor="chroot", reason=f"real {prog.path} in the base; {who}")


class RootFiles:
    """An extracted root's files, read through the emulated shell's confined resolver."""

    def __init__(self, root: Path) -> None:
        from minibuild.sh.fs import RootFS

        self.fs = RootFS(root=root)

    def head(self, path: str, *, executable: bool) -> bytes | None:
        try:
            host = self.fs.path(path)
            st = os.stat(host, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or (executable and not st.st_mode & 0o111):
                return None
            return self.fs.read_bytes(host, HEAD)
        except OSError:
            return None


class TreeFiles:
    """An image's files merged from its layer headers (``minibuild.view``): only the program's first bytes are
    read from its layer, nothing is extracted."""

    def __init__(self, tree: MergedTree, read_head: Callable[[FileInfo, int], bytes] | None = None) -> None:
        self.tree = tree
        self.read_head = read_head  # e.g. a seek in an uncompressed layer (engine.layertree); else FileInfo.head

    @classmethod
    def of_image(cls, blobs: _BlobOpener, image: Image) -> TreeFiles:
        from minibuild.view import merge_image

        return cls(merge_image(blobs, image))

    def head(self, path: str, *, executable: bool) -> bytes | None:
        rel = self.tree.lookup(path.strip("/"), follow_final=True)
        node = self.tree.nodes.get(rel) if rel else None
        if node is None or node.type != "file" or (executable and not node.mode & 0o111):
            return None
        return self.read_head(node, HEAD) if self.read_head is not None else node.head(HEAD)


class MemoFiles:
    """``ProgramFiles`` of an image remembered across builds: layers are content-addressed, so what a path held
    in a chain of layers (``chain``: a digest of their digests) never changes. ``files`` makes the real reader on
    the first path the memo lacks; the memo (a small JSON file, at most ``MEMO_LIMIT`` entries, replaced whole)
    is written by ``save``. ``memo_path`` None: remember for this object only."""

    MEMO_LIMIT = 512

    def __init__(self, chain: str, files: Callable[[], ProgramFiles], memo_path: Path | None) -> None:
        self.chain = chain
        self.make = files
        self.inner: ProgramFiles | None = None
        self.path = memo_path
        self.memo: dict[str, str | None] = {}
        self.dirty = False
        if memo_path is not None:
            try:
                raw = json.loads(memo_path.read_text())
                if isinstance(raw, dict):
                    self.memo = {k: v for k, v in raw.items() if v is None or isinstance(v, str)}
            except (OSError, ValueError):
                self.memo = {}

    def head(self, path: str, *, executable: bool) -> bytes | None:
        key = f"{self.chain} {int(executable)} {path}"
        if key in self.memo:
            hit = self.memo[key]
            try:
                return None if hit is None else bytes.fromhex(hit)
            except ValueError:
                pass  # a damaged memo entry: read the file again
        if self.inner is None:
            self.inner = self.make()
        got = self.inner.head(path, executable=executable)
        self.memo[key] = None if got is None else got.hex()
        self.dirty = True
        return got

    def save(self) -> None:
        """Write the memo when it learnt something (best effort: a read-only store just does not remember)."""
        if self.path is None or not self.dirty:
            return
        keep = dict(list(self.memo.items())[-self.MEMO_LIMIT:])
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(keep, sort_keys=False))
            os.replace(tmp, self.path)
        except OSError:
            try:
                tmp.unlink()
            except OSError:
                pass
        self.dirty = False
