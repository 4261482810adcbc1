"""The build engine: run the needed stages of a Dockerfile against the store, step by step, with the layer cache."""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from minibuild.engine.cachekey import base_key, key_of, layer_step_inputs, step_inputs
from minibuild.engine.cachesync import CHAIN_KINDS, SOURCE_FIELD, chain_hit, hit_reason
from minibuild.engine.context import BuildContext, StatCache
from minibuild.engine.copy import HeredocSource, source_checksum
from minibuild.engine.dockerignore import IgnoreMatcher, load_ignore
from minibuild.engine.explain import explain_miss, history_key, source_files
from minibuild.executors.runlog import LogEmitter, tail_lines
from minibuild.digest import Digest
from minibuild.dockerfile import (
    AddInstruction,
    ArgInstruction,
    CmdInstruction,
    CopyInstruction,
    Dockerfile,
    EntrypointInstruction,
    EnvInstruction,
    ExposeInstruction,
    HealthcheckInstruction,
    Instruction,
    LabelInstruction,
    MaintainerInstruction,
    OnbuildInstruction,
    RunInstruction,
    ShellInstruction,
    StopsignalInstruction,
    UserInstruction,
    VolumeInstruction,
    WorkdirInstruction,
    expand,
    expand_heredoc,
    parse_instruction_line,
    replace_invalid_bytes,
)
from minibuild.dockerfile.ports import expose_ports
from minibuild.errors import BuildError, ExecutorError, MinibuildError, PlanError, SourceNotFoundError, StoreError
from minibuild.oci.image import Image, Layer
from minibuild.oci.model import Descriptor, Healthcheck, History, format_created
from minibuild.plan.graph import StageGraph, graph_of, resolve_stage_ref, unexpanded_from
from minibuild.plan.scope import DEFAULT_PATH, GlobalScope, StageScope, global_scope, platform_args, unused_build_args
from minibuild.plan.steps import describe, instruction_inputs, progress_text, vertex_numbers
from minibuild.record import record
from minibuild.store import Store
from minibuild.store.gc import reap_if_idle
from minibuild.units import image_size

if TYPE_CHECKING:  # imported where a step misses: a fully cached build never loads them (start-up is its floor)
    from minibuild.dockerfile.mounts import Mount
    from minibuild.engine.runmounts import Held
    from minibuild.executors.executor import Executor
    from minibuild.executors.mountpoints import RunMount
    from minibuild.executors.stagemount import StageMounts
    from minibuild.limits import RunLimits
    from minibuild.engine.layertree import LayerTree
    from minibuild.fs.layered import LayeredRoot
    from minibuild.store.gc import Lease, Scratch
    from minibuild.store.tarlayer import Entry

Progress = Callable[[dict[str, Any]], None]
DEFAULT_SHELL = ("/bin/sh", "-c")
_METADATA = (EnvInstruction, LabelInstruction, CmdInstruction, EntrypointInstruction, ShellInstruction,
             UserInstruction, ExposeInstruction, VolumeInstruction, StopsignalInstruction, HealthcheckInstruction,
             OnbuildInstruction, MaintainerInstruction, ArgInstruction)


# ---------------------------------------------------------------------------------------------- results


@record
class StepResult:
    """One executed (or cached) step."""

    stage: str
    stage_index: int
    index: int  # 1-based within the stage (FROM is 0)
    total: int
    instruction: str  # expanded, as executed
    line: int
    cached: bool
    key: str
    layer: str | None  # layer digest, None for metadata-only or empty steps
    size: int
    seconds: float
    reason: str = ""  # HIT, or MISS: <why> (see minibuild.engine.explain)
    vertex: int | None = None  # BuildKit's step number in the stage (FROM = 1); None for config-only steps
    vertices: int = 0  # how many numbered steps the stage has (FROM + filesystem steps)
    prefix: str = ""  # the stage label progress prints before the number ("" in a single-stage build)


@record
class StageResult:
    """What happened to one stage: built, cached (every step hit) or skipped (not needed by the target)."""

    index: int
    name: str | None
    status: str  # built | cached | skipped
    reason: str
    base: str
    layers: tuple[tuple[str, int], ...] = ()  # (digest, size) of the layers this stage added
    kept_by_final: tuple[str, ...] = ()  # "COPY --from=... src" steps of the final image that read this stage
    kept_bytes: int = 0  # bytes of the final image's layers made by those COPY --from steps
    image_layers: tuple[tuple[str, int], ...] = ()  # (digest, size) of every layer of the stage image, base first
    base_layers: int = 0  # how many of image_layers came with its FROM (base image or base stage)
    shared_bytes: int = 0  # bytes of image_layers the final image has too (e.g. the same base)
    feeds: tuple[tuple[str, int, int], ...] = ()  # (stage label, files, file bytes) per COPY --from of this stage
    base_stage: int | None = None  # the stage its FROM names (minibuild.plan.graph), None for an image

    @property
    def label(self) -> str:
        return self.name if self.name is not None else f"stage-{self.index}"

    @property
    def size(self) -> int:
        return sum(s for _, s in self.layers)

    @property
    def total_bytes(self) -> int:
        """The stage image's size: base + own layers (sum of layer blob sizes)."""
        return sum(s for _, s in self.image_layers)

    @property
    def discarded_bytes(self) -> int:
        """What of the stage image the final image does not have."""
        return self.total_bytes - self.shared_bytes


@record
class CopyFrom:
    """One COPY --from of a build: which stage (or image) fed which stage, at which line, with which sources."""

    from_stage: str  # label of the source stage, or the image reference
    from_index: int | None  # None for an image
    to_index: int
    line: int
    dest: str
    sources: tuple[str, ...]
    source_image: Image = field(repr=False, compare=False)
    layer: str | None  # the layer the COPY made (None: nothing changed)


@record
class BuildResult:
    """The outcome of a build: the image, its digests and size, every step and stage, and warnings."""

    image: Image = field(repr=False)
    digest: Digest  # manifest digest
    config_digest: Digest  # the image ID Docker shows
    layers: int
    size: int  # sum of the layer blob sizes (minibuild.units.image_size)
    tags: tuple[str, ...]
    target: str
    steps: tuple[StepResult, ...]
    stages: tuple[StageResult, ...]
    warnings: tuple[str, ...] = ()
    output: str | None = None
    transfers: tuple[CopyFrom, ...] = ()
    stage_images: tuple[tuple[int, Image], ...] = field(default=(), repr=False)  # (stage index, image) that ran

    @property
    def cached(self) -> bool:
        """True when every step was a cache hit."""
        return all(s.cached for s in self.steps)


@record
class PlanResult:
    """A dry run (``minibuild plan``): per step whether it would hit, why, and the ARG/ENV values it sees."""

    target: str
    steps: tuple[StepResult, ...]
    stages: tuple[StageResult, ...]
    scopes: tuple[tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], ...]  # (args, env) per step
    warnings: tuple[str, ...] = ()


class _NullSink:
    """A write-only sink that keeps nothing (a dry run hashes a fixture layer without storing it)."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------- state


@dataclass(slots=True)
class _State:
    """The mutable state of one stage (or external image) while it is built."""

    label: str
    index: int
    image: Image
    fs_key: str
    scope: StageScope
    cmd_set: bool = False
    root: Path | None = None
    root_layers: int = 0  # how many of image.layers the root reflects
    lazy: LayeredRoot | None = None  # the root is layered: filled from image.layers[:lazy_layers] on first touch
    lazy_layers: int = 0
    base_layers: int = 0
    base_image_layers: int = 0  # how many of image.layers are the base image's own (exported as they are)
    own_layers: list[tuple[str, int]] = field(default_factory=list)
    all_cached: bool = True
    kept: dict[int, list[tuple[str, int]]] = field(default_factory=dict)  # source stage -> (step, bytes)
    base: str = ""
    fs_step: int = 0  # the step that made fs_key (0 = FROM)
    fs_missed: bool = False  # ... and whether it missed in this build
    fs_text: str = ""  # ... and its instruction as shown
    from_n: int = 0  # the build-wide event number of the stage's FROM step (unpack events belong to it)
    unknown: bool = False  # dry run: a step before missed, so fs_key (and what follows) is not known
    vertex_of: dict[int, int] = field(default_factory=dict)  # step index -> BuildKit step number (FROM = 1)
    vertices: int = 1
    prefix: str = ""  # "" for a single-stage build (BuildKit prints [2/4]), else the stage label
    imported_here: bool = False  # this stage's FROM imported its fixture base (a later FROM of it is CACHED)


def _ref_parts(name: str) -> tuple[str, str] | None:
    """(repository, tag) of a plain image reference, None for digests."""
    if "@" in name:
        return None
    repo, tag = name, "latest"
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        repo, tag = name[:colon], name[colon + 1:]
    return repo, tag


def _env_pairs(env: Sequence[str]) -> tuple[tuple[str, str], ...]:
    out: dict[str, str] = {}
    for item in env:
        k, _, v = item.partition("=")
        out[k] = v
    return tuple(out.items())


def _set_env(env: Sequence[str], key: str, value: str) -> tuple[str, ...]:
    out = list(env)
    for i, item in enumerate(out):
        if item.partition("=")[0] == key:
            out[i] = f"{key}={value}"
            return tuple(out)
    out.append(f"{key}={value}")
    return tuple(out)


def _quoted(key: str, value: str, original: str) -> str:
    """A KEY=VALUE value as the Dockerfile wrote it: in double quotes when it was quoted there (or needs it)."""
    if f'{key}="' in original or f"{key}='" in original or not value or any(c.isspace() or c in "\"'\\" for c in value):
        return json.dumps(value, ensure_ascii=False)
    return value


def _shown(ex: Instruction, original: str) -> str:
    """The progress/history text of a config step: as written, expanded (LABEL k="v" keeps its quotes)."""
    if isinstance(ex, LabelInstruction):
        return "LABEL " + " ".join(f"{kv.key}={_quoted(kv.key, kv.value, original)}" for kv in ex.labels)
    if isinstance(ex, EnvInstruction):
        return "ENV " + " ".join(f"{kv.key}={_quoted(kv.key, kv.value, original)}" for kv in ex.env)
    return describe(ex)


class Builder:
    """Builds one Dockerfile; use ``Builder(...).build()``. Not thread-safe; one instance per build."""

    pull_base: Callable[[str, Any], Image] | None = None  # set for --pull: (name, lease) -> pulled image
    cache_images: Sequence[tuple[str, Image]] = ()  # --cache-from IMAGE: (label, image) whose history may hit

    def __init__(
        self,
        *,
        store: Store,
        dockerfile: Dockerfile,
        context: Path,
        dockerfile_path: Path | None = None,
        target: str | None = None,
        build_args: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
        executor: Executor | str,
        no_cache: bool = False,
        output: Path | None = None,
        progress: Progress | None = None,
        source_date_epoch: int | None = None,
        dry_run: bool = False,
        allow: Iterable[str] = (),
        labels: Mapping[str, str] | None = None,
        run_limits: RunLimits | None = None,
        secrets: Mapping[str, bytes] | None = None,
        ssh: Mapping[str, str] | None = None,
        layered: bool = True,
    ) -> None:
        from minibuild.engine.entitlements import parse_allow

        # stage roots filled from their layers on first touch (minibuild.fs.layered); False: extracted whole
        self.layered = layered and os.environ.get("MINIBUILD_LAYERED_ROOT", "1") != "0"
        # chroot RUNs on an overlay mount of the stage's tree (their layer is the upper directory); "0": diffed
        self.overlay_runs = os.environ.get("MINIBUILD_OVERLAY_RUN", "1") != "0"
        self._stage_mnt: StageMounts | None = None
        self._stage_mnt_failed = False
        self.allow = parse_allow(allow)  # entitlements granted on the command line (--allow network.host)
        self.store = store
        self.run_limits = run_limits  # None: read from the environment when a RUN runs (minibuild.limits)
        self.secrets = dict(secrets or {})  # --secret: id -> value (never in a key, a layer or the history)
        self.ssh = dict(ssh or {})  # --ssh: id -> agent socket path
        self.df = dockerfile
        self.context = Path(context)
        self.dockerfile_path = dockerfile_path
        self.target = target
        self.build_args = dict(build_args or {})
        self.tags = tuple(tags)
        self.labels = dict(labels or {})  # --label: added to the final image's config (no history entry, as BuildKit)
        self._executor = executor  # a name is resolved (and its module imported) on the first RUN that misses
        self._auto: dict[str, str] = {}  # --executor auto: stage label -> the executor its RUNs use
        self._auto_instances: dict[str, Executor] = {}
        self.no_cache = no_cache
        self.output = output
        self.progress = progress
        self.sde = source_date_epoch
        self.created = format_created(source_date_epoch)
        self.steps: list[StepResult] = []
        self.warnings: list[str] = list(dockerfile.warnings)
        self.states: dict[int, _State] = {}
        self.images: dict[str, _State] = {}
        self.lease: Lease | None = None
        self.tmp: Path | None = None
        self._scratch: Scratch | None = None
        self._ignore: IgnoreMatcher | None = None
        # one per store, kept across builds (git's index): an unchanged context file (same dev, inode, size,
        # mtime, ctime) is not read again; concurrent builds each rename a whole file (last writer wins)
        self._stat_cache = StatCache(None if dry_run else store.meta_dir / "stat-cache.json")
        self._layer_trees: dict[tuple[Digest, ...], LayerTree] = {}  # COPY --from sources read in place
        # hashes of the files of finished stage roots, for this build only (temp dirs: not worth persisting);
        # a finished stage's root is never written again, so its own fresh files need no racy-clean margin
        self._stage_hashes = StatCache(None, racy_margin_ns=0)
        self._step_no = 0
        self._unpack_seconds = 0.0  # time spent extracting layers into roots (reported as unpack events)
        self._imported: set[str] = set()  # fixture images imported into the store by this build
        self._resolved: dict[str, Image] = {}  # base images by name, as this build first resolved them
        self.dry_run = dry_run
        self._scopes: list[tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]] = []
        self._transfers: list[CopyFrom] = []
        self._df_id = self._dockerfile_id()

    def _dockerfile_id(self) -> str:
        """The Dockerfile's identity for step history: its path relative to the context, else its name."""
        if self.dockerfile_path is None:
            return self.df.filename
        try:
            return Path(os.path.abspath(self.dockerfile_path)).relative_to(os.path.abspath(self.context)).as_posix()
        except ValueError:
            return os.path.abspath(self.dockerfile_path)

    @property
    def executor(self) -> Executor:
        if isinstance(self._executor, str):
            from minibuild.executors.select import get_executor

            self._executor = get_executor(self._executor)
        return self._executor

    @property
    def executor_name(self) -> str:
        """The name of the executor RUN steps run with (``auto``: resolved per stage by ``_stage_executor``),
        without importing it."""
        return self._executor if isinstance(self._executor, str) else self._executor.name

    def _stage_executor(self, st: _State, argv: tuple[str, ...], env: Sequence[tuple[str, str]], workdir: str) -> str:
        """The executor name the RUN steps of stage ``st`` run with and have in their cache keys: ``auto`` is
        resolved at the stage's first RUN (``minibuild.executors.auto``) and announced once, never keyed."""
        if self.executor_name != "auto":
            return self.executor_name
        name = self._auto.get(st.label)
        if name is None:
            import hashlib

            from minibuild.engine.layertree import LayerTree
            from minibuild.executors.auto import ExecutorEvent, MemoFiles, ProgramFiles, RootFiles, TreeFiles, choose

            def files() -> ProgramFiles:  # the root when extracted, else its layers' headers (as COPY --from reads)
                src = self._source_tree(st)
                return TreeFiles(src.merged, src.head) if isinstance(src, LayerTree) else RootFiles(src.root)

            chain = hashlib.sha256(" ".join(str(la.digest) for la in st.image.layers).encode()).hexdigest()
            memo = MemoFiles(chain, files, None if self.dry_run else self.store.meta_dir / "program-heads.json")
            choice = choose(memo, argv, dict(env).get("PATH", DEFAULT_PATH), workdir)
            memo.save()
            name = self._auto[st.label] = choice.executor
            self._emit(dict(ExecutorEvent(type="executor", n=self._step_no + 1, stage=st.label,
                                          executor=choice.executor, reason=choice.reason)))
        return name

    def _executor_named(self, name: str) -> Executor:
        """The executor instance for a resolved name (one per name and build)."""
        if self.executor_name != "auto":
            return self.executor
        from minibuild.executors.select import get_executor

        ex = self._auto_instances.get(name)
        if ex is None:
            ex = self._auto_instances[name] = get_executor(name)
        return ex

    # ------------------------------------------------------------------ helpers
    def _emit(self, event: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress(event)

    @property
    def ignore(self) -> IgnoreMatcher:
        if self._ignore is None:
            self._ignore = load_ignore(self.context, self.dockerfile_path)
            try:  # a store inside the context (--store ./s) is never context: COPY . . would copy the store,
                # and the build's own temporary roots in it, into itself
                rel = Path(os.path.realpath(self.store.root)).relative_to(os.path.realpath(self.context)).as_posix()
            except ValueError:
                rel = "."
            if rel != ".":
                literal = "".join("\\" + c if c in "*?[]\\" else c for c in rel)
                self._ignore = IgnoreMatcher((*self._ignore.raw, literal), origin=self._ignore.origin)
        return self._ignore

    def _tmpdir(self) -> Path:
        if self.tmp is None:
            from minibuild.store.gc import Scratch

            self._scratch = Scratch(self.store)  # flocked while this build lives: reapers know it is not debris
            self.tmp = self._scratch.path
        return self.tmp

    def _drop_tmpdir(self) -> None:
        if self._stage_mnt is not None:  # the stage roots' mounts first: the scratch under them goes next
            self._stage_mnt.close()
            self._stage_mnt = None
        if self._scratch is not None:
            from minibuild.fs.ownership import release_under

            from minibuild.fs.confine import forget_fillers_under

            release_under(self._scratch.path)  # the roots' ownership overlays go with them
            forget_fillers_under(self._scratch.path)
            self._scratch.remove()
            self._scratch = None
        self.tmp = None

    def _ensure_root(self, st: _State, *, whole: bool = False, executor: str = "") -> Path:
        """The state's root, made on first use: layered (nothing unpacked; filled from the layers on first touch)
        when every layer can be read in place, else extracted. ``whole``: every path present on the host (the
        chroot executor's real processes read the tree without minibuild's resolver)."""
        if st.root is None:
            st.root = self._tmpdir() / f"root-{st.label.replace('/', '_')}-{os.urandom(4).hex()}"
            st.root.mkdir()
            st.root_layers = 0
            if st.image.layers and whole and executor == "chroot" and self._mount_stage(st):
                pass  # mounted straight away: the layers' folded tree is never needed
            elif st.image.layers and self.layered:
                self._layer_root(st)
        if st.lazy is not None and whole and executor == "chroot" and self._mount_stage(st):
            pass  # its tree is an overlay of its layers, unpacked once in the store: nothing copied
        elif st.lazy is not None and whole:
            self._fill_whole(st, executor)
        from minibuild.fs.rootfs import apply_layer

        todo = st.image.layers[st.root_layers:]
        if not todo:
            return st.root
        self.store.verify_layers(todo, where=f"stage {st.label}", pin=self.lease)  # claims checked before use
        t0 = time.monotonic()
        event = {"n": st.from_n, "stage": st.label, "layers": len(todo), "size": sum(la.size for la in todo),
                 "vertex": 1, "vertices": st.vertices, "prefix": st.prefix}
        self._emit({"type": "unpack_start", **event})
        for layer in todo:  # (onto a layered root: through its filler, so only the paths a layer names are filled)
            with self.store.blobs.open(layer.digest) as fh:
                apply_layer(st.root, fh)
        st.root_layers = len(st.image.layers)
        seconds = time.monotonic() - t0
        self._unpack_seconds += seconds
        self._emit({"type": "unpack", **event, "seconds": round(seconds, 3)})
        return st.root

    def _layer_root(self, st: _State) -> None:
        """Make ``st.root`` a layered root over the state's layers when they can all be read in place: their folded
        tree is kept in the store (minibuild.store.keptree), so a base is folded once, not once per build. A
        chain that has no kept tree but whose base part has one (a build's own steps on a loaded base) is that
        tree with the few small layers above it applied (``_ensure_root``): nothing of the base is folded again."""
        from minibuild.engine.layertree import folded_tree, kept_base, kept_tree, refold
        from minibuild.fs.layered import LayeredRoot
        from minibuild.store.keptree import LowerTable

        layers = st.image.layers
        k, tree = len(layers), kept_tree(self.store, layers)
        based = kept_base(self.store, layers, st.base_image_layers) if tree is None else None
        if based is not None:
            k, tree = based
        elif tree is None:
            tree = folded_tree(self.store, st.image, lambda: self._source_tree(st))
        if tree is None:
            return  # a compressed layer: extracted as before
        self.store.verify_layers(layers[:k], where=f"stage {st.label}", pin=self.lease)  # before reading in place
        assert st.root is not None

        def open_blob(digest: Digest) -> BinaryIO:
            return self.store.blobs.open(digest, verify=False)  # read in place: verified when stored (fsck: again)

        chain = [la.digest for la in layers[:k]]
        st.lazy = LayeredRoot(st.root, LowerTable(tree, open_blob, lambda: refold(self.store, chain)))
        st.root_layers = st.lazy_layers = k

    def _overlay_ok(self, executor: str) -> bool:
        """Whether RUNs of ``executor`` run on an overlay mount here (the chroot executor, where one mounts)."""
        if executor != "chroot" or not self.overlay_runs:
            return False
        from minibuild.executors.chroot import overlay_problem

        return overlay_problem() is None

    def _upper_dir(self, executor: str) -> Path | None:
        """A fresh upper directory for a chroot RUN's overlay mount, or None where overlays cannot be mounted
        (the step's layer is then a diff of the whole tree) or the executor is another."""
        if not self._overlay_ok(executor):
            return None
        path = self._tmpdir() / f"upper-{os.urandom(4).hex()}"
        path.mkdir()
        return path

    def _mount_stage(self, st: _State) -> bool:
        """Make the root of ``st`` (new, or layered) an overlay mount of its layers (each unpacked once in the store, as
        Docker unpacks at load) with an upper directory in the scratch; False where that cannot be (not root, no
        overlay, too many layers: the root is then filled)."""
        from minibuild.executors.stagemount import StageMounts, mounts_available, unpack_layer

        if not self.overlay_runs or self._stage_mnt_failed or not mounts_available():  # MINIBUILD_STAGE_MOUNT=0
            return False
        from minibuild.fs.ownership import release_under

        assert st.root is not None
        layers = st.image.layers
        self.store.verify_layers(layers, where=f"stage {st.label}", pin=self.lease)
        t0 = time.monotonic()
        event = {"n": st.from_n, "stage": st.label, "layers": len(layers), "size": sum(la.size for la in layers),
                 "vertex": 1, "vertices": st.vertices, "prefix": st.prefix}
        lowers: list[str] = []
        unpacked = False
        for layer in reversed(layers):  # topmost first, as overlayfs lists them
            try:
                path, made = unpack_layer(self.store, layer.digest, lambda d: self.store.blobs.open(d, verify=False))
            except (MinibuildError, OSError):
                return False  # (nothing half-made is left) the tree is filled instead, which says what is wrong
            if made and not unpacked:
                self._emit({"type": "unpack_start", **event})
            unpacked = unpacked or made
            lowers.append(str(path))
        base = self._tmpdir() / f"mount-{st.label.replace('/', '_')}-{os.urandom(4).hex()}"
        upper, work, merged = base / "upper", base / "work", base / "root"
        for d in (base, upper, work, merged):
            d.mkdir(mode=0o755)
        if self._stage_mnt is None:
            self._stage_mnt = StageMounts()
        try:
            self._stage_mnt.mount(lowers, str(upper), str(work), str(merged))
        except OSError as exc:
            self._stage_mnt_failed = True  # said once; every stage of the build is then filled
            self.warnings.append(f"stage {st.label}: its tree is copied, not mounted ({exc.strerror or exc})")
            return False
        old = st.root
        if st.lazy is not None:
            st.lazy.detach()
            st.lazy = None
        release_under(old)
        shutil.rmtree(old, ignore_errors=True)
        st.root = merged
        st.root_layers = len(layers)
        if unpacked:
            seconds = time.monotonic() - t0
            self._unpack_seconds += seconds
            self._emit({"type": "unpack", **event, "seconds": round(seconds, 3)})
        return True

    def _fill_whole(self, st: _State, executor: str = "") -> None:
        """Fill a layered root completely and detach it (reported as the stage's unpack)."""
        lazy = st.lazy
        assert lazy is not None
        t0 = time.monotonic()
        layers = st.image.layers[:st.lazy_layers]
        event = {"n": st.from_n, "stage": st.label, "layers": len(layers), "size": sum(la.size for la in layers),
                 "vertex": 1, "vertices": st.vertices, "prefix": st.prefix}
        self._emit({"type": "unpack_start", **event})
        lazy.ensure_all()
        lazy.detach()
        st.lazy = None
        seconds = time.monotonic() - t0
        self._unpack_seconds += seconds
        self._emit({"type": "unpack", **event, "seconds": round(seconds, 3)})

    def _source_tree(self, st: _State) -> BuildContext:
        """A COPY --from source as it stands: its root when materialised, else its layers read in place (no
        extraction: only the headers, and the content of the files the checksum needs). Either way each file is
        hashed once per build: the cache key and the explain record share the tree's hashes."""
        if st.root is not None and st.root_layers == len(st.image.layers) and st.lazy is None:
            return BuildContext(st.root, stat_cache=self._stage_hashes)
        if self._layered_source(st):
            return BuildContext(self._ensure_root(st), stat_cache=self._stage_hashes)
        key = tuple(layer.digest for layer in st.image.layers)
        tree = self._layer_trees.get(key)
        if tree is None:
            from minibuild.engine.layertree import LayerTree

            self.store.verify_layers(st.image.layers, where=f"stage {st.label}", pin=self.lease)
            from minibuild.store.layerindex import INDEX_DIR

            tree = self._layer_trees[key] = LayerTree(self.store.blobs, st.image,
                                                      index_dir=self.store.meta_dir / INDEX_DIR)
        return tree

    def _layered_source(self, st: _State) -> bool:
        """Whether a COPY --from source is best read through its layered root: it has one, or one can be made over a
        kept tree (then only the paths the checksum and the copy read are filled, and each is filled once, where
        the layers' headers of a big base would all be merged first)."""
        if self.dry_run or not self.layered or not st.image.layers:
            return False
        if st.lazy is not None:
            return True
        if st.root is not None:
            return False  # extracted, and behind its layers (they are applied by the copy)
        from minibuild.engine.layertree import kept_base, kept_tree

        layers = st.image.layers
        return kept_tree(self.store, layers) is not None or kept_base(self.store, layers, st.base_image_layers) \
            is not None

    def _write_layer(self, entries: list[Entry]) -> Layer:
        from minibuild.store.tarlayer import write_layer

        assert self.lease is not None
        with self.store.blobs.writer(pin=self.lease) as w:
            info = write_layer(entries, w, clamp_mtimes=False)  # real mtimes inside the build (build/export.py)
            digest = w.commit()
        if digest != info.digest:
            raise StoreError(f"layer digest mismatch: wrote {digest}, expected {info.digest}")
        self.store.record_diff_id(info.digest, info.diff_id)  # written here: no need to hash it again
        return Layer.from_info(info)

    # ------------------------------------------------------------------ base images
    def resolve_image(self, name: str, span: Any = None) -> Image:
        """An image from the store, else a fixture imported into the store; never the network. Resolved once
        per build: every stage FROM the same name sees the same image (and its manifest and config are read and
        verified once, not once per stage)."""
        image = self._resolved.get(name)
        if image is None:
            image = self._resolved[name] = self._resolve_image(name, span)
        return image

    def _resolve_image(self, name: str, span: Any) -> Image:
        from minibuild.oci.reference import parse_reference

        try:
            parse_reference(name)  # not a name: never looked up as a fixture (``node:`` is not ``node:latest``)
        except MinibuildError as exc:
            raise BuildError(f"{name!r} is not a valid image name: {exc}", span=span) from None
        try:
            image = self.store.resolve(name)
        except StoreError:
            pass
        else:
            if not self.dry_run:  # stored before diff_ids were verified on entry (older stores): checked once here
                self.store.verify_layers(image.layers, where=f"base image {name}", pin=self.lease)
            return image
        from minibuild.fixtures import find_fixture, fixture_repositories, fixture_tags

        parts = _ref_parts(name)
        fixture = find_fixture(*parts) if parts else None
        if fixture is None:
            if self.pull_base is not None and not self.dry_run:
                return self.pull_base(name, self.lease)
            stored = ", ".join(r.familiar for r in self.store.images()) or "none"
            tags = fixture_tags(parts[0]) if parts else ()
            fixtures = (f"The fixture {parts[0]} has the tags: {', '.join(tags)}." if parts and tags else
                        f"Fixtures: {', '.join(fixture_repositories())} (their tags: docs/fixtures.md).")
            raise BuildError(
                f"base image {name!r} is not in the store and is not a fixture (minibuild never uses the network "
                f"unless asked). Images in the store: {stored}. {fixtures} "
                f"Load an image with `minibuild load IMAGE.tar`, or pass --pull to pull it from its registry.",
                span=span)
        from minibuild.store.tarlayer import write_layer

        if self.dry_run:
            info = write_layer(fixture.entries(), _NullSink(), source_date_epoch=fixture.created)
        else:
            assert self.lease is not None
            with self.store.blobs.writer(pin=self.lease) as w:
                info = write_layer(fixture.entries(), w, source_date_epoch=fixture.created)
                w.commit()
            self.store.record_diff_id(info.digest, info.diff_id)
        cfg = fixture.config
        image = Image.scratch(source_date_epoch=fixture.created)
        ports = cfg.get("ExposedPorts") or ()
        vols = cfg.get("Volumes") or ()
        image = image.with_config(
            env=tuple(cfg.get("Env") or ()),
            cmd=tuple(cfg["Cmd"]) if cfg.get("Cmd") is not None else None,
            entrypoint=tuple(cfg["Entrypoint"]) if cfg.get("Entrypoint") is not None else None,
            working_dir=cfg.get("WorkingDir") or None,
            user=cfg.get("User") or None,
            stop_signal=cfg.get("StopSignal") or None,
            labels=dict(cfg.get("Labels") or {}),
            exposed_ports=tuple(ports),
            volumes=tuple(vols),
        )
        image = image.append_layer(info, history=History(
            created_by=f"minibuild fixture {fixture.reference}: {fixture.summary}"))
        if self.dry_run:
            self._imported.add(name)
            return image
        digest = self.store.put_image(image, pin=self.lease)
        self._imported.add(name)
        self.store.tag(fixture.reference if "/" in name or ":" in name else name, digest)
        self.store.tag(name if ":" in name else f"{name}:latest", digest)
        return image

    # ------------------------------------------------------------------ the build
    def build(self) -> BuildResult:
        reap_if_idle(self.store)  # debris of killed builds (dead leases, scratch trees): never waits
        try:
            with self.store.lease() as lease, self.store.blobs.defer_dir_sync():  # one directory fsync per build
                self.lease = lease
                return self._build()
        finally:
            self.lease = None
            self._drop_tmpdir()

    def plan(self) -> PlanResult:
        """Predict, without running RUN/COPY or writing anything, which steps would hit and which would run."""
        self.dry_run = True
        try:
            return self._build()  # type: ignore[return-value]
        finally:
            self._drop_tmpdir()

    def _plan_result(self, graph: StageGraph) -> PlanResult:
        stages: list[StageResult] = []
        skipped = f"not needed by target {graph.nodes[graph.target].label}"
        for node in graph.nodes:
            st = self.states.get(node.index)
            if st is None:
                stages.append(StageResult(index=node.index, name=node.name, status="skipped", base=node.base,
                                          reason=skipped, base_stage=node.base_stage))
            else:
                stages.append(StageResult(
                    index=node.index, name=node.name, status="cached" if st.all_cached else "built", base=node.base,
                    reason="every step would hit" if st.all_cached else "at least one step would run",
                    base_stage=node.base_stage))
        return PlanResult(target=graph.nodes[graph.target].label, steps=tuple(self.steps), stages=tuple(stages),
                          scopes=tuple(self._scopes), warnings=tuple(self.warnings))

    def _build(self) -> BuildResult:
        df = self.df
        graph = graph_of(df, self.target, self.build_args)
        target_stage = df.stages[graph.target]
        predefined = platform_args(target_stage=target_stage.name or str(graph.target))
        gscope = global_scope(df, self.build_args, predefined)
        self._check_entitlements(df.stages[idx].instructions for idx in graph.needed)
        used: set[str] = set(gscope.used_build_args)
        for idx in graph.needed:
            st = self._build_stage(idx, graph, gscope)
            self.states[idx] = st
            used |= st.scope.used_build_args
            status = "cached" if st.all_cached else "built"
            self._emit({"type": "stage", "stage": st.label, "index": idx, "status": status})
        for node in graph.nodes:
            if node.index not in graph.needed:
                self._emit({"type": "stage", "stage": node.label, "index": node.index, "status": "skipped",
                            "reason": f"not needed by target {graph.nodes[graph.target].label}"})
        unused = unused_build_args(self.build_args, used)
        if unused:
            self.warnings.append(f"One or more build-args [{' '.join(unused)}] were not consumed")
        if self.dry_run:
            return self._plan_result(graph)  # type: ignore[return-value]
        final = self.states[graph.target]
        image = self._exported(final).with_empty_layer()
        if self.labels:
            image = image.with_config(labels={**dict(image.config.labels), **self.labels})
        digest = self.store.put_image(image, pin=self.lease)
        tags = tuple(self.store.tag(t, digest) for t in self.tags)
        out = None
        if self.output is not None:
            from minibuild.oci.archive import save_image_tar

            save_image_tar(self.store.blobs, image, list(self.tags), self.output)
            out = str(self.output)
        final_digests = {layer.digest.value for layer in final.image.layers}  # the store's (unclamped) layers
        stages: list[StageResult] = []
        for node in graph.nodes:
            name = node.name
            if node.index not in self.states:
                stages.append(StageResult(index=node.index, name=name, status="skipped", base=node.base,
                                          reason=f"not needed by target {graph.nodes[graph.target].label}",
                                          base_stage=node.base_stage))
                continue
            st = self.states[node.index]
            kept = final.kept.get(node.index, [])
            discarded = tuple(x for x in st.own_layers if x[0] not in final_digests)
            all_layers = tuple((layer.digest.value, layer.size) for layer in st.image.layers)
            feeds = tuple((self.states[t.to_index].label, *self._layer_files(t.layer)) for t in self._transfers
                          if t.from_index == node.index)
            stages.append(StageResult(
                index=node.index, name=name, status="cached" if st.all_cached else "built", base=node.base,
                reason="every step was cached" if st.all_cached else "at least one step ran",
                layers=tuple(st.own_layers) if node.index == graph.target else discarded,
                kept_by_final=tuple(k for k, _ in kept), kept_bytes=sum(b for _, b in kept),
                image_layers=all_layers, base_layers=st.base_layers,
                shared_bytes=sum(s for d, s in dict(all_layers).items() if d in final_digests), feeds=feeds,
                base_stage=node.base_stage))
        size = image_size(image)
        self._emit({"type": "image", "digest": digest.value, "id": image.config_digest.value,
                    "layers": len(image.layers), "size": size, "tags": list(tags)})
        return BuildResult(image=image, digest=digest, config_digest=image.config_digest, layers=len(image.layers),
                           size=size, tags=tags, target=graph.nodes[graph.target].label, steps=tuple(self.steps),
                           stages=tuple(stages), warnings=tuple(self.warnings), output=out,
                           transfers=tuple(self._transfers),
                           stage_images=tuple((i, s.image) for i, s in sorted(self.states.items())))

    def _exported(self, st: _State) -> Image:
        """The state's image as a build exports it: the layers the build made with mtimes clamped to
        SOURCE_DATE_EPOCH (minibuild.engine.export), the base image's as they are."""
        from minibuild.engine.export import exported_image

        return exported_image(self.store, st.image, keep=st.base_image_layers, epoch=self.sde, pin=self.lease,
                              pin_blobs=self._pin)

    def _check_entitlements(self, instructions: Iterable[Sequence[Instruction]]) -> None:
        """Refuse, before any step runs (a cached one too), a needed instruction whose entitlement was not granted,
        as BuildKit does; a plan (which runs nothing) only warns."""
        from minibuild.engine.entitlements import check

        for instrs in instructions:
            try:
                check(instrs, self.allow)
            except PlanError as exc:
                if not self.dry_run:
                    raise
                warning = f"{exc}; a build without the grant fails"
                if warning not in self.warnings:
                    self.warnings.append(warning)

    def _layer_files(self, layer: str | None) -> tuple[int, int]:
        """(regular files, their content bytes) in a layer blob (a COPY --from's layer: small)."""
        if layer is None:
            return 0, 0
        key = f"layer-files:{layer}"  # by content digest: counted once per store, not once per build
        memo = self.store.cache.get(key)
        if memo is not None and isinstance(memo.get("files"), int) and isinstance(memo.get("bytes"), int):
            return memo["files"], memo["bytes"]
        from minibuild.store.tarread import read_entries

        with self.store.blobs.open(Digest(layer)) as fh:
            files = [e for e in read_entries(fh) if e.type == "file"]
        counted = len(files), sum(e.size for e in files)
        if not self.dry_run:
            # no refs: the record keeps nothing alive (the step's own record does) and names no layer in history
            self.store.cache.put(key, {"kind": "layer-files", "files": counted[0], "bytes": counted[1]})
        return counted

    # ------------------------------------------------------------------ stages
    def _start_state(self, idx: int, graph: StageGraph) -> _State:
        node = graph.nodes[idx]
        stage = self.df.stages[idx]
        unknown = False
        imported_here = False
        if node.base_stage is not None:
            parent = self.states[node.base_stage]
            image = parent.image
            unknown = parent.unknown
            image_layers = parent.base_image_layers
        elif node.base == "scratch":
            image = Image.scratch(source_date_epoch=self.sde)
            image_layers = 0
        else:
            was_imported = node.base in self._imported
            image = self.resolve_image(node.base, span=stage.from_.span)
            imported_here = node.base in self._imported and not was_imported
            image_layers = len(image.layers)
            if not self.dry_run and not self._pin(layer.digest for layer in image.layers):
                raise StoreError(f"layers of base image {node.base} were deleted (pruned?) as this build started")
        env = image.config.env
        if not any(e.partition("=")[0] == "PATH" for e in env):
            env = _set_env(env, "PATH", DEFAULT_PATH)
        image = image.with_config(env=env, created=self.created)
        st = _State(label=node.label, index=idx, image=image, fs_key=base_key(image.diff_ids),
                    scope=StageScope(env=_env_pairs(image.config.env)), base_layers=len(image.layers),
                    base=node.base, unknown=unknown, imported_here=imported_here,
                    base_image_layers=image_layers)
        return st

    def _build_stage(self, idx: int, graph: StageGraph, gscope: GlobalScope) -> _State:
        stage = self.df.stages[idx]
        st = self._start_state(idx, graph)
        triggers: list[Instruction] = []
        for expr in st.image.config.onbuild or ():
            try:
                trig = parse_instruction_line(expr, escape=self.df.escape, filename=self.df.filename)
            except MinibuildError as exc:
                raise exc.with_span(stage.from_.span)
            triggers.append(dataclasses.replace(trig, span=stage.from_.span))
        if st.image.config.onbuild:
            st.image = st.image.with_config(onbuild=None)
        instrs = [*triggers, *stage.instructions]
        total = len(instrs) + 1
        st.vertex_of = vertex_numbers(instrs)
        st.vertices = len(st.vertex_of)
        st.prefix = st.label if len(graph.nodes) > 1 else ""
        imported = st.imported_here
        if imported:
            st.all_cached = False
            st.fs_missed = True
        base = graph.nodes[idx].base
        if imported:
            reason = f"MISS: base image {base} {'would be' if self.dry_run else 'was'} imported from its fixture"
        elif st.unknown:
            reason = f"HIT (but base stage {base} would rebuild)"
        else:
            reason = "HIT"
        st.from_n = self._step_no + 1
        self._step(st, 0, total, f"FROM {base}" + (f" AS {stage.name}" if stage.name else ""),
                   stage.from_.span.line, not imported, "" if st.unknown else st.fs_key, None, 0, 0.0,
                   announce=True, reason=reason)
        for i, instr in enumerate(instrs, 1):
            try:
                self._run_instruction(st, instr, i, total, gscope, graph)
            except MinibuildError as exc:
                raise exc.with_span(instr.span) if instr.span.line else exc
        return st

    def _step(self, st: _State, index: int, total: int, text: str, line: int, cached: bool, key: str,
              layer: Layer | None, size: int, seconds: float, *, announce: bool = False, reason: str = "") -> None:
        self._step_no += 1
        if announce:
            self._emit({"type": "step_start", "n": self._step_no, "stage": st.label, "index": index,
                        "total": total, "instruction": text, **self._pos(st, index)})
        res = StepResult(stage=st.label, stage_index=st.index, index=index, total=total, instruction=text,
                         line=line, cached=cached, key=key, layer=layer.digest.value if layer else None, size=size,
                         seconds=round(seconds, 3), reason=reason, vertex=st.vertex_of.get(index),
                         vertices=st.vertices, prefix=st.prefix)
        self.steps.append(res)
        self._scopes.append((st.scope.args, st.scope.env))
        self._emit({"type": "step", "n": self._step_no, "stage": st.label, "stage_index": st.index,
                    "index": index, "total": total, "instruction": text, "line": line, "cached": cached,
                    "key": key, "layer": res.layer, "size": size, "seconds": res.seconds,
                    "reason": reason, **self._pos(st, index)})

    @staticmethod
    def _parent_words(st: _State) -> str:
        """The step that made the state's filesystem, as explanations name it: ``5/6 (COPY . .)`` (the numbers
        of ``[stage 5/6]`` in progress, minibuild.plan.steps.vertex_numbers)."""
        return f"{st.vertex_of.get(st.fs_step, st.fs_step)}/{st.vertices} ({st.fs_text})"

    @staticmethod
    def _pos(st: _State, index: int) -> dict[str, Any]:
        """BuildKit's numbering of a step for progress: ``vertex`` (FROM = 1; None for a config-only step, which
        BuildKit does not list), ``vertices`` and the ``prefix`` it prints ("" for a single-stage build)."""
        return {"vertex": st.vertex_of.get(index), "vertices": st.vertices, "prefix": st.prefix}

    # ------------------------------------------------------------------ instructions
    def _run_instruction(self, st: _State, instr: Instruction, i: int, total: int, gscope: GlobalScope,
                         graph: StageGraph) -> None:
        t0 = time.monotonic()
        if isinstance(instr, ArgInstruction):
            st.scope = st.scope.declare(instr, build_args=self.build_args, global_scope=gscope, escape=self.df.escape)
            values = dict(st.scope.args)  # the effective values (--build-arg over the default)
            shown = "ARG " + " ".join(
                f"{a.key}={_quoted(a.key, values[a.key], instr.original)}" if a.key in values else a.key
                for a in instr.args)
            self._meta_step(st, instr, shown, i, total, t0, history=False)
            return
        ex = expand(instr, st.scope.word_env(), self.df.escape)
        if isinstance(ex, _METADATA):
            text = _shown(ex, instr.original)
            self._apply_metadata(st, ex, History(created_by=text, comment="buildkit.dockerfile.v0", empty_layer=True))
            self._meta_step(st, ex, text, i, total, t0, history=False, chain=True)
            return
        if isinstance(ex, WorkdirInstruction):
            self._workdir(st, ex, i, total, t0)
        elif isinstance(ex, RunInstruction):
            self._run(st, ex, i, total, t0)
        elif isinstance(ex, (CopyInstruction, AddInstruction)):
            try:
                self._copy(st, ex, i, total, t0, graph)
            except SourceNotFoundError as exc:  # name the stage (or image) the source is missing from
                ref = ex.from_ if isinstance(ex, CopyInstruction) else ""
                idx = resolve_stage_ref(self.df, ref, st.index, ex.span) if ref else None
                where = f"stage {self.states[idx].label}" if idx is not None and idx in self.states else f"image {ref}"
                raise SourceNotFoundError(f"{ex.keyword} --from={ref} failed: {exc.source} not found in {where}",
                                          source=exc.source, span=ex.span) from None
        else:
            raise PlanError(f"{instr.keyword} is not supported by minibuild's builder", span=instr.span)

    def _meta_step(self, st: _State, ex: Instruction, text: str, i: int, total: int, t0: float, *,
                   history: bool, chain: bool = False) -> None:
        inputs = step_inputs(parent=st.fs_key, kind="metadata", instruction=instruction_inputs(ex),
                             config=ex.keyword)
        self._emit({"type": "step_start", "n": self._step_no + 1, "stage": st.label, "index": i, "total": total,
                    "instruction": text, **self._pos(st, i)})
        rec, reason, key = self._lookup(st, i, inputs, None, lambda r: True)
        if rec is None and chain:
            rec, reason = self._chain(st, inputs, key, text, reason, recorded=True)
        if rec is None:
            if not self.dry_run:
                self.store.cache.put(key, {"kind": "metadata", "inputs": inputs})
            st.all_cached = False
        if history:
            st.image = st.image.add_history(History(created_by=text, comment="buildkit.dockerfile.v0",
                                                    empty_layer=True))
        self._step(st, i, total, text, ex.span.line, rec is not None, key, None, 0, time.monotonic() - t0,
                   reason=reason)

    def _lookup(self, st: _State, i: int, inputs: dict[str, Any], files_fn: Callable[[], dict[str, Any]] | None,
                usable: Callable[[Mapping[str, Any]], bool]) -> tuple[dict[str, Any] | None, str, str]:
        """(the usable cache record or None, the HIT/MISS reason, the key) of a step; records the step's inputs
        under its identity (``step-history:``) so the next build can say what changed. A dry run writes nothing."""
        if st.unknown:
            if self.no_cache:
                return None, "MISS: --no-cache", ""
            if st.fs_step == 0:
                return None, f"MISS: base stage {st.base} would rebuild", ""
            return None, f"MISS: parent step {self._parent_words(st)} missed", ""
        key = key_of(inputs)
        hkey = history_key(dockerfile=self._df_id, stage=f"{st.index}:{st.label}", index=i, kind=str(inputs["kind"]))
        prev = self.store.cache.get(hkey)
        rec: dict[str, Any] | None = None
        reason = ""
        if self.no_cache:
            reason = "MISS: --no-cache"
        else:
            rec, damaged = self.store.cache.lookup(key)
            if rec is not None and not usable(rec):
                rec = None
            if rec is not None:
                reason = hit_reason(rec)
            elif damaged is not None:  # an edited or damaged record is never trusted: the step runs again
                reason = f"MISS: {damaged}"
                self.warnings.append(f"{damaged}; it was ignored and the step runs again "
                                     f"(`minibuild fsck --repair` removes damaged records)")
        prev_inputs = prev.get("inputs") if prev is not None else None
        files: dict[str, Any] | None = None
        need_files = files_fn is not None and (
            prev is None or not isinstance(prev_inputs, Mapping) or prev_inputs.get("sources") != inputs.get("sources")
            or prev.get("files") is None)
        if need_files:
            assert files_fn is not None
            try:
                files = files_fn()
            except (MinibuildError, OSError):
                files = None
        elif prev is not None and files_fn is not None:
            files = prev.get("files")
        if not reason:
            reason = explain_miss(previous=prev, inputs=inputs, files=files,
                                  args=frozenset(k for k, _ in st.scope.args), parent_step=st.fs_step,
                                  parent_missed=st.fs_missed, base=st.base, parent=self._parent_words(st))
        if not self.dry_run and (prev is None or prev_inputs != inputs or need_files or prev.get("base") != st.base):
            self.store.cache.put(hkey, {"kind": "step-history", "inputs": inputs, "files": files, "base": st.base})
        return rec, reason, key

    def _chain(self, st: _State, inputs: dict[str, Any], key: str, text: str, reason: str, *,
               recorded: bool = False) -> tuple[dict[str, Any] | None, str]:
        """A step that missed the cache may still hit a ``--cache-from`` image's history (Docker's classic
        builder, see ``cachesync.chain_hit``); the hit is recorded under the step's key, marked with its source.
        COPY/ADD never hit this way (a history line does not name the files copied): they run, and the chain
        goes on only if the layer they write is the image's. Nor does a RUN that sees an ARG (a history line
        does not carry ARG values)."""
        kind = str(inputs["kind"])
        if not self.cache_images or self.no_cache or self.dry_run or st.unknown:
            return None, reason
        if kind not in CHAIN_KINDS:
            return None, f"{reason}; {kind.upper()} runs with --cache-from IMAGE (history does not name the files)"
        if kind == "run" and st.scope.args:
            return None, f"{reason}; an ARG is in scope (history does not record ARG values)"
        if kind == "run" and any("source" in m or "from" in m for m in inputs.get("mounts", ())):
            return None, f"{reason}; it mounts files (history does not name what a bind mount read)"
        # the candidates are exported images: compared with this stage as it would be exported (clamped mtimes)
        hit = chain_hit(self.cache_images, self._exported(st), text, recorded=recorded)
        if hit is None or (hit.layer is not None and not self._pin((hit.layer.digest,))):
            return None, reason
        record: dict[str, Any] = {"kind": "metadata" if kind == "metadata" else "layer", "inputs": inputs,
                                  SOURCE_FIELD: hit.source}
        refs: tuple[Digest, ...] = ()
        if kind != "metadata":
            lay = hit.layer
            record["layer"] = None if lay is None else {"digest": lay.digest.value, "diffID": lay.diff_id.value,
                                                        "size": lay.size, "mediaType": lay.descriptor.media_type}
            refs = () if lay is None else (lay.digest,)
        self.store.cache.put(key, record, refs)
        return record, hit_reason(record)

    def _dry_miss(self, st: _State, i: int, total: int, text: str, line: int, reason: str) -> None:
        """A dry run's predicted miss whose key cannot be known: later steps of the stage are unknown too."""
        self._emit({"type": "step_start", "n": self._step_no + 1, "stage": st.label, "index": i, "total": total,
                    "instruction": text, **self._pos(st, i)})
        st.all_cached = False
        st.unknown = True
        st.fs_step, st.fs_missed, st.fs_text = i, True, text
        self._step(st, i, total, text, line, False, "", None, 0, 0.0, reason=reason)

    def _apply_metadata(self, st: _State, ex: Instruction, history: History | None = None) -> None:
        """Apply a config instruction, and add its ``history`` entry in the same derivation of the image."""
        cfg = st.image.config
        changes: dict[str, Any]
        match ex:
            case EnvInstruction():
                env = cfg.env
                for kv in ex.env:
                    env = _set_env(env, kv.key, kv.value)
                changes = {"env": env}
                st.scope = st.scope.with_env(_env_pairs(env))
            case LabelInstruction():
                labels = dict(cfg.labels)
                for kv in ex.labels:
                    labels[kv.key] = kv.value
                changes = {"labels": labels}
            case CmdInstruction():
                cmd = (*(cfg.shell or DEFAULT_SHELL), " ".join(ex.command)) if ex.prepend_shell else ex.command
                changes = {"cmd": tuple(cmd)}
                st.cmd_set = True
            case EntrypointInstruction():
                ep = (*(cfg.shell or DEFAULT_SHELL), " ".join(ex.command)) if ex.prepend_shell else ex.command
                changes = {"entrypoint": tuple(ep)}
                if not st.cmd_set:
                    changes["cmd"] = None
            case ShellInstruction():
                changes = {"shell": tuple(ex.shell)}
            case UserInstruction():
                changes = {"user": ex.user}
            case ExposeInstruction():
                ports = dict.fromkeys(cfg.exposed_ports)
                ports.update(dict.fromkeys(expose_ports(ex.ports, ex.span)))
                changes = {"exposed_ports": tuple(ports)}
            case VolumeInstruction():
                vols = tuple(v for v in ex.volumes if v.strip())
                if not vols:
                    raise BuildError("VOLUME specified can not be an empty string", span=ex.span)
                changes = {"volumes": tuple(cfg.volumes) + vols}
            case StopsignalInstruction():
                changes = {"stop_signal": ex.signal}
            case HealthcheckInstruction():
                hc = Healthcheck(test=tuple(ex.test), interval=ex.interval or None, timeout=ex.timeout or None,
                                 start_period=ex.start_period or None, start_interval=ex.start_interval or None,
                                 retries=ex.retries or None)
                changes = {"healthcheck": hc}
            case OnbuildInstruction():
                changes = {"onbuild": tuple(cfg.onbuild or ()) + (ex.expression,)}
            case MaintainerInstruction():
                changes = {"author": ex.maintainer}
            case _:
                changes = {}
        if history is not None:  # what Image.add_history does, in the same with_config
            if history.created is None:
                history = dataclasses.replace(history, created=cfg.created)
            changes["history"] = cfg.history + (history,)
        if changes:
            st.image = st.image.with_config(**changes)

    # ------------------------------------------------------------------ filesystem steps
    def _fs_step(self, st: _State, ex: Instruction, text: str, i: int, total: int, t0: float,
                 inputs: dict[str, Any], run: Callable[[], list[Entry]],
                 files_fn: Callable[[], dict[str, Any]] | None = None) -> None:
        shown = progress_text(ex) if isinstance(ex, RunInstruction) else text  # history keeps ``text``
        self._emit({"type": "step_start", "n": self._step_no + 1, "stage": st.label, "index": i, "total": total,
                    "instruction": shown, **self._pos(st, i)})
        rec, reason, key = self._lookup(st, i, inputs, files_fn,
                                        lambda r: r.get("layer") is None or self._pin_layer(r["layer"]))
        if rec is None:
            rec, reason = self._chain(st, inputs, key, text, reason)
        layer: Layer | None = None
        cached = False
        if rec is None and self.dry_run:
            st.all_cached = False
            st.unknown = True
            st.fs_step, st.fs_missed, st.fs_text = i, True, shown
            self._step(st, i, total, shown, ex.span.line, False, key, None, 0, time.monotonic() - t0, reason=reason)
            return
        if rec is not None:
            cached = True
            if rec.get("layer"):
                lr = rec["layer"]
                layer = Layer(descriptor=Descriptor(media_type=lr["mediaType"], digest=Digest(lr["digest"]),
                                                    size=lr["size"]), diff_id=Digest(lr["diffID"]))
                if rec.get(SOURCE_FIELD) and self.store.blobs.has(layer.digest):
                    # an imported record's diff_id claim: checked now when the blob is here, else (lazy cache
                    # import) when the layer is first extracted or read (_ensure_root, _source_tree) or stored
                    self.store.verify_layers((layer,), where=f"cache record from {rec[SOURCE_FIELD]}",
                                             pin=self.lease)
        else:
            st.all_cached = False
            unpacked = self._unpack_seconds
            entries = run()
            t0 += self._unpack_seconds - unpacked  # unpacking the base is its own event, not this step's time
            refs: tuple[Digest, ...] = ()
            if entries:
                layer = self._write_layer(entries)
                refs = (layer.digest,)
            record = {"kind": "layer", "inputs": inputs, "layer": None if layer is None else {
                "digest": layer.digest.value, "diffID": layer.diff_id.value, "size": layer.size,
                "mediaType": layer.descriptor.media_type}}
            self.store.cache.put(key, record, refs)  # only after the blob is committed
        if layer is not None:
            st.image = st.image.append_layer(layer, history=History(created_by=text,
                                                                     comment="buildkit.dockerfile.v0"))
            st.own_layers.append((layer.digest.value, layer.size))
            if not cached and st.root is not None:
                st.root_layers = len(st.image.layers)  # the root already holds this change
        else:
            st.image = st.image.add_history(History(created_by=text, comment="buildkit.dockerfile.v0",
                                                    empty_layer=True))
        st.fs_key = key
        st.fs_step, st.fs_missed, st.fs_text = i, not cached, shown
        self._step(st, i, total, shown, ex.span.line, cached, key, layer, layer.size if layer else 0,
                   time.monotonic() - t0, reason=reason)

    def _pin(self, digests: Iterable[Digest]) -> bool:
        """Add blobs to the build's lease under the shared store lock (as blob commits do), so a concurrent
        prune either ran before (then the blobs are checked missing here) or keeps them; True if all exist."""
        wanted = tuple(digests)
        if self.lease is None or not wanted:
            return all(self.store.blobs.has(d) for d in wanted)
        with self.store.lock(shared=True):
            self.lease.add(*wanted)
            return all(self.store.blobs.has(d) for d in wanted)

    def _pin_layer(self, lr: Mapping[str, Any]) -> bool:
        digest = Digest(lr["digest"])
        return self._pin((digest,)) or self.store.blobs.available(digest)  # available: or a --cache-from has it

    def _workdir(self, st: _State, ex: WorkdirInstruction, i: int, total: int, t0: float) -> None:
        cur = st.image.config.working_dir or "/"
        path = posixpath.normpath(posixpath.join(cur, ex.path)) if ex.path else cur
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        st.image = st.image.with_config(working_dir=path)
        user = st.image.config.user or ""
        text = f"WORKDIR {path}"
        inputs = layer_step_inputs(parent=st.fs_key, kind="workdir", instruction=instruction_inputs(ex),
                                   source_date_epoch=self.sde, path=path, user=user)

        def run() -> list[Entry]:
            from minibuild.fs.diff import entries_for_paths
            from minibuild.executors.executor import resolve_user

            root = self._ensure_root(st)
            ident = resolve_user(root, user) if user else None
            rel = path.strip("/")
            if not rel:
                return []
            created: list[str] = []
            cur_rel = ""
            from minibuild.fs.confine import resolve_in_root
            from minibuild.fs.ownership import overlay_of

            real_root = os.path.realpath(root)
            overlay = overlay_of(real_root)
            for part in rel.split("/"):
                cur_rel = f"{cur_rel}/{part}" if cur_rel else part
                phys = resolve_in_root(real_root, cur_rel)  # a planted symlink resolves inside the root
                if not os.path.lexists(phys):
                    missing = [str(phys)]  # a link may point to a deep missing path: MkdirAll it, in the root
                    while not os.path.lexists(os.path.dirname(missing[-1])):
                        missing.append(os.path.dirname(missing[-1]))
                    for new in reversed(missing):
                        try:
                            os.mkdir(new, 0o755)
                        except NotADirectoryError:
                            where = os.path.relpath(os.path.dirname(new), real_root)
                            raise BuildError(f"WORKDIR {path}: /{where} is not a directory") from None
                        overlay.created(new, *((ident.uid, ident.gid) if ident is not None else (0, 0)))
                        overlay.set_mode(new, 0o755)
                        created.append(os.path.relpath(new, real_root))
                elif not os.path.isdir(phys):
                    raise BuildError(f"WORKDIR {path}: /{os.path.relpath(phys, real_root)} is not a directory")
            return entries_for_paths(root, created, recursive=False) if created else []

        self._fs_step(st, ex, text, i, total, t0, inputs, run)

    def _run(self, st: _State, ex: RunInstruction, i: int, total: int, t0: float) -> None:
        self._check_entitlements([[ex]])  # again here: an ONBUILD trigger of the base image is met only now
        cfg = st.image.config
        shell = tuple(cfg.shell or DEFAULT_SHELL)
        if ex.heredocs:
            cmd = ex.command[0] if ex.command else ""
            h = ex.heredocs[0]
            simple = len(ex.heredocs) == 1 and cmd.strip().lstrip("<").lstrip("-").strip("'\"") == h.name
            if simple:
                argv = (*shell, h.chomped())
            else:
                script = cmd + "\n" + "".join(d.content + d.name + "\n" for d in ex.heredocs)
                argv = (*shell, script)
        elif ex.prepend_shell:
            argv = (*shell, " ".join(ex.command))
        else:
            argv = tuple(ex.command)
        env = st.scope.run_env(self.build_args)
        workdir = cfg.working_dir or "/"
        user = cfg.user or ""
        text = describe(ex)
        mounts = self._mounts(st, ex, workdir)
        if mounts is None:
            self._dry_miss(st, i, total, progress_text(ex), ex.span.line, "MISS: a mounted stage would rebuild")
            return
        extra: dict[str, Any] = {"mounts": [key for _, _, _, key in mounts]} if mounts else {}
        how = self._stage_executor(st, argv, env, workdir)
        inputs = layer_step_inputs(parent=st.fs_key, kind="run", instruction=instruction_inputs(ex),
                                   source_date_epoch=self.sde, executor=how, argv=list(argv),
                                   env=[f"{k}={v}" for k, v in env if k not in _proxy_names()], workdir=workdir,
                                   user=user, network=ex.network or "default", **extra)

        def run() -> list[Entry]:
            from minibuild.engine.runmounts import Held
            from minibuild.executors.executor import RunRequest
            from minibuild.fs.diff import TreeSnapshot, diff_snapshot, snapshot
            from minibuild.limits import run_limits

            root = self._ensure_root(st, whole=how != "emulate", executor=how)
            upper = self._upper_dir(how)  # the chroot executor's overlay: the step's changes land there, no snapshot
            before = snapshot(root) if upper is None else TreeSnapshot(root=str(root), records={})
            lazy = st.lazy
            if lazy is not None:
                lazy.begin_step()
            limits = self.run_limits or run_limits()
            log = self._log_emitter(st, i, limits.log_limit)
            with Held(self._tmpdir()) as held:
                run_mounts, mount_env = self._materialise(mounts, env, held, ex)
                run_env = [*env, *mount_env]
                req = RunRequest(root=root, argv=tuple(replace_invalid_bytes(a) for a in argv),
                                 env=tuple((replace_invalid_bytes(k), replace_invalid_bytes(v))
                                           for k, v in _with_epoch(run_env, self.sde)),
                                 workdir=workdir, user=user,
                                 network=ex.network == "host", source_date_epoch=self.sde or 0, span=ex.span,
                                 limits=limits, on_output=log, mounts=run_mounts, upper=upper)
                try:
                    result = self._executor_named(how).run(req)
                finally:
                    if log is not None:
                        log.close()
            if result.exit_code != 0:  # the last lines of stdout and stderr, interleaved as they were produced
                tail = "\n".join(tail_lines(result.output))
                stderr_tail = "\n".join(tail_lines(((2, result.stderr),)))
                shown = " ".join(ex.command) if ex.prepend_shell else str(list(ex.command))
                msg = f"RUN {shown} failed with exit code {result.exit_code}"
                if tail:
                    msg += ":\n" + tail
                if result.hint:
                    msg += "\nhint: " + result.hint
                self._emit({"type": "step_error", "n": self._step_no + 1, "stage": st.label, **self._pos(st, i),
                            "exit_code": result.exit_code,
                            "message": f"process {json.dumps(' '.join(req.argv), ensure_ascii=False)} did not "
                                       f"complete successfully: exit code: {result.exit_code}"})  # BuildKit's (%q)
                raise ExecutorError(msg, span=ex.span, exit_code=result.exit_code, stderr_tail=stderr_tail,
                                    output_tail=tail)
            self.warnings.extend(result.warnings)
            if upper is not None:  # the upper directory is the step's change; the stage's tree takes it in
                from minibuild.fs.diff import diff_upper
                from minibuild.fs.rootfs import apply_entries

                entries = diff_upper(upper, root)
                apply_entries(root, entries)
                return entries
            if lazy is not None:  # what the step filled, as it was: the diff sees only what it then changed
                before = TreeSnapshot(root=before.root, records={**lazy.end_step(), **before.records})
            return diff_snapshot(root, before)

        self._fs_step(st, ex, text, i, total, t0, inputs, run)

    def _mounts(self, st: _State, ex: RunInstruction,
                workdir: str) -> list[tuple[Mount, str, _State | None, dict[str, Any]]] | None:
        """Each ``--mount`` of a RUN (expanded) with its target, the stage or image it reads from, and its part
        of the cache key: what a bind reads (the context's checksum of its source, a stage's layers), never a
        cache mount's contents nor a secret. None in a dry run when a mounted stage is not known yet."""
        from minibuild.dockerfile.mounts import MountError, mount_target, parse_mount

        out: list[tuple[Mount, str, _State | None, dict[str, Any]]] = []
        ssh_n = 0
        for raw in ex.mounts:
            try:
                m = parse_mount(raw)
                target = mount_target(m, workdir, ssh_n)
            except MountError as exc:
                raise BuildError(str(exc), span=ex.span) from None
            ssh_n += m.type == "ssh"
            key: dict[str, Any] = {"type": m.type, "target": target}
            src: _State | None = None
            if m.from_ and m.type in ("bind", "cache"):
                src = self._mount_state(st, m, ex)
                if src.unknown:
                    return None
                key["from"] = base_key(src.image.diff_ids)
                key["source"] = m.source
            elif m.type == "bind":
                key["source"] = source_checksum(self.context, [m.source or "."], ignore=self.ignore,
                                                from_context=True, stat_cache=self._stat_cache,
                                                instruction="RUN --mount")
            out.append((m, target, src, key))
        return out

    def _mount_state(self, st: _State, m: Mount, ex: RunInstruction) -> _State:
        """The stage (built before this one: the stage graph makes it a dependency) or image a mount reads."""
        idx = resolve_stage_ref(self.df, m.from_, st.index, ex.span, mount_target=m.target)
        if idx is not None:
            if idx not in self.states:
                raise PlanError(f"--mount from={m.from_}: stage {idx} was not built", span=ex.span)
            return self.states[idx]
        if m.from_ not in self.images:
            image = self.resolve_image(m.from_, span=ex.span)
            if not self.dry_run and not self._pin(layer.digest for layer in image.layers):
                raise StoreError(f"layers of image {m.from_} were deleted (pruned?) while this build started")
            self.images[m.from_] = _State(label=m.from_, index=-1, image=image, fs_key=base_key(image.diff_ids),
                                          scope=StageScope())
        return self.images[m.from_]

    def _materialise(self, mounts: Sequence[tuple[Mount, str, _State | None, dict[str, Any]]],
                     env: Sequence[tuple[str, str]], held: Held,
                     ex: RunInstruction) -> tuple[tuple[RunMount, ...], list[tuple[str, str]]]:
        """The executor's view of a RUN's mounts (sources found through the confined resolver, cache directories
        locked, secrets written to private files, all released with ``held``) and the variables they add."""
        from minibuild.engine.copy import copy_into
        from minibuild.engine.runmounts import cache_mounts_dir
        from minibuild.executors.mountpoints import RunMount
        from minibuild.fs.confine import resolve_in_root
        from minibuild.dockerfile.mounts import cache_id, secret_id

        out: list[RunMount] = []
        add_env: list[tuple[str, str]] = []
        ssh_sock = ""
        targets = [target for _, target, _, _ in mounts]
        for n, (m, target, src, _key) in enumerate(mounts):
            shown = f"RUN --mount=type={m.type}"
            # a later mount inside this one needs its mount point made in it: then it is a private copy
            holds = any(t.startswith(target.rstrip("/") + "/") for t in targets[n + 1:])
            if m.type == "tmpfs":
                out.append(RunMount(target=target, size=m.size))
            elif m.type == "secret":
                sid = secret_id(m)
                if sid not in self.secrets:
                    if m.required:
                        raise BuildError(f"secret {sid}: not found (give it with --secret id={sid},src=FILE or "
                                         f"--secret id={sid},env=VARIABLE)", span=ex.span)
                    continue
                data = self.secrets[sid]
                if m.env is not None:
                    add_env.append((m.env, data.decode("utf-8", "surrogateescape")))
                if m.target or m.env is None:
                    path = held.secret_file(data, 0o400 if m.mode is None else m.mode, m.uid or 0, m.gid or 0)
                    out.append(RunMount(target=target, source=path, readonly=True, file=True))
            elif m.type == "ssh":
                sid = m.id or "default"
                if sid not in self.ssh:
                    raise BuildError(f"{shown}: no SSH agent {sid!r} is forwarded to this build (give "
                                     f"--ssh {sid}, which forwards $SSH_AUTH_SOCK, or --ssh {sid}=SOCKET)",
                                     span=ex.span)
                out.append(RunMount(target=target, source=Path(self.ssh[sid]), readonly=False, file=True))
                ssh_sock = ssh_sock or target
            else:
                base = self._ensure_root(src) if src is not None else None
                source: Path | None = None
                if base is not None and m.source.strip("/"):
                    source = resolve_in_root(base, m.source)
                    if not os.path.lexists(source):
                        raise SourceNotFoundError(f"{shown}: {m.source} not found in "
                                                  f"{'stage' if src is not None and src.index >= 0 else 'image'} "
                                                  f"{src.label if src is not None else ''}", source=m.source,
                                                  span=ex.span)
                elif base is not None:
                    source = base
                if source is not None and base is not None and src is not None and src.lazy is not None \
                        and source.is_dir() and not source.is_symlink():  # mounted: read past the resolver
                    rel = os.path.relpath(os.path.realpath(source), os.path.realpath(base))
                    src.lazy.ensure_tree("" if rel == "." else rel)
                if m.type == "cache":
                    seed = None
                    if source is not None:
                        seeded = source

                        def seed(dest: Path, seeded: Path = seeded) -> None:
                            import shutil

                            shutil.copytree(seeded, dest, symlinks=True)
                    ident = cache_id(m) + (f"\0from={_key.get('from')}:{m.source}" if src is not None else "")
                    path = held.cache_dir(cache_mounts_dir(self.store.meta_dir), ident, m.sharing or "shared",
                                          0o755 if m.mode is None else m.mode, m.uid or 0, m.gid or 0, seed)
                    out.append(RunMount(target=target, source=path, readonly=m.readonly))
                    continue
                if source is None:  # the build context, .dockerignore applied
                    ctx_src = resolve_in_root(self.context, m.source or ".")
                    if not os.path.lexists(ctx_src):
                        raise SourceNotFoundError(f"{shown}: {m.source} not found in the build context",
                                                  source=m.source, span=ex.span)
                    if self.ignore or not m.readonly or holds:
                        work = held.scratch("context-")
                        is_dir = os.path.isdir(ctx_src)
                        own = None if os.geteuid() == 0 else (os.getuid(), os.getgid())  # only root gives 0:0
                        copy_into(work, self.context, [m.source or "."], "/src/" if is_dir else "/", chown=own,
                                  ignore=self.ignore, from_context=True, instruction="RUN --mount")
                        source = work / "src" if is_dir else work / os.path.basename(ctx_src)
                    else:
                        source = ctx_src
                elif not m.readonly or holds:
                    source = held.copy(source)
                out.append(RunMount(target=target, source=source, readonly=m.readonly,
                                    file=not os.path.isdir(source)))
        if ssh_sock and not any(k == "SSH_AUTH_SOCK" for k, _ in env):
            add_env.append(("SSH_AUTH_SOCK", ssh_sock))
        return tuple(out), add_env

    def _log_emitter(self, st: _State, index: int, limit: int | None) -> LogEmitter | None:
        """The sink that shows a running RUN's output as ``log`` events of the step about to be reported (None
        without progress: output is then only kept for a failure's message)."""
        if self.progress is None:
            return None
        progress = self.progress
        return LogEmitter(lambda ev: progress(dict(ev)), n=self._step_no + 1, stage=st.label,
                          limit=limit, clock=time.monotonic, **self._pos(st, index))

    def _source_state(self, st: _State, ref: str, ex: Instruction, graph: StageGraph) -> tuple[_State, int | None]:
        idx = resolve_stage_ref(self.df, unexpanded_from(self.df, ref, ex.span), st.index, ex.span)
        if idx is not None:
            if idx not in self.states:
                raise PlanError(f"COPY --from={ref}: stage {idx} was not built", span=ex.span)
            return self.states[idx], idx
        if ref not in self.images:
            try:
                image = self.resolve_image(ref, span=ex.span)
            except BuildError as exc:
                raise self._not_a_stage(ref, st.index, exc) from None
            if not self.dry_run and not self._pin(layer.digest for layer in image.layers):
                raise StoreError(f"layers of image {ref} were deleted (pruned?) while this build started")
            self.images[ref] = _State(label=ref, index=-1, image=image, fs_key=base_key(image.diff_ids),
                                      scope=StageScope())
        return self.images[ref], None

    def _not_a_stage(self, ref: str, current: int, exc: BuildError) -> BuildError:
        """``COPY --from=REF`` where REF is neither an earlier stage nor a known image: say both, and suggest
        the stage REF is a misspelling of (BuildKit takes any other name for an image)."""
        from minibuild.dockerfile.suggest import search

        stages = [s.name for s in self.df.stages if s.name and s.index < current]
        match = search(ref, stages, case_sensitive=False)
        if match is not None:
            return BuildError(f"COPY --from={ref}: no stage is named {ref!r}, and no image {ref!r} is in the store "
                              f"or the fixtures: did you mean stage {match}?", span=exc.span)
        return BuildError(f"COPY --from={ref}: {ref!r} is not a stage "
                          f"({'stages: ' + ', '.join(stages) if stages else 'no earlier stage is named'}), so it is "
                          f"taken as an image name: {exc.message}", span=exc.span)

    def _copy(self, st: _State, ex: CopyInstruction | AddInstruction, i: int, total: int, t0: float,
              graph: StageGraph) -> None:
        is_add = isinstance(ex, AddInstruction)
        word_env = st.scope.word_env()
        heredocs = tuple(
            HeredocSource(name=c.path, data=(expand_heredoc(c.data, word_env) if c.expand else c.data).encode())
            for c in ex.contents)
        workdir = st.image.config.working_dir or "/"
        from_ref = ex.from_ if isinstance(ex, CopyInstruction) else ""
        parents = ex.parents if isinstance(ex, CopyInstruction) else False
        src_state: _State | None = None
        src_idx: int | None = None
        text = describe(ex)
        if from_ref:
            src_state, src_idx = self._source_state(st, from_ref, ex, graph)
            if self.dry_run and src_state.unknown:
                self._dry_miss(st, i, total, text, ex.span.line, f"MISS: source stage {src_state.label} would rebuild")
                return
            memo_inputs = {"kind": "copy-from-checksum", "source": base_key(src_state.image.diff_ids), "sources": list(ex.sources),
                           "exclude": list(ex.exclude), "parents": parents}
            if self.sde is not None:  # the checksum holds the mtimes older than the epoch
                memo_inputs["source_date_epoch"] = self.sde
            memo_key = key_of(memo_inputs)
            memo = self.store.cache.get(memo_key)
            if memo is not None and isinstance(memo.get("checksum"), str):
                checksum = memo["checksum"]
            elif self.dry_run and st.unknown:
                checksum = ""  # not needed: the step is a predicted miss whatever the sources hold
            else:
                try:
                    src_root = self._source_tree(src_state)
                except (MinibuildError, OSError):
                    if not self.dry_run:
                        raise
                    self._dry_miss(st, i, total, text, ex.span.line,
                                   f"MISS: sources in {src_state.label} not known before it is built")
                    return
                checksum = source_checksum(src_root, ex.sources, exclude=ex.exclude, parents=parents,
                                           from_context=False, heredocs=heredocs,
                                           instruction="ADD" if is_add else "COPY", source_date_epoch=self.sde)
                if not self.dry_run:
                    self.store.cache.put(memo_key, {"kind": "copy-from-checksum", "inputs": memo_inputs,
                                                    "checksum": checksum})
        else:
            checksum = source_checksum(self.context, ex.sources, ignore=self.ignore, exclude=ex.exclude,
                                       parents=parents, from_context=True, heredocs=heredocs,
                                       stat_cache=self._stat_cache, instruction="ADD" if is_add else "COPY",
                                       source_date_epoch=self.sde)
        inputs = layer_step_inputs(parent=st.fs_key, kind="add" if is_add else "copy",
                                   instruction=instruction_inputs(ex), source_date_epoch=self.sde,
                                   sources=checksum, workdir=workdir,
                                   heredocs=[[h.name, h.data.decode(errors="replace")] for h in heredocs])

        def run() -> list[Entry]:
            from minibuild.engine.copy import copy_into
            from minibuild.fs.diff import entries_for_paths

            root = self._ensure_root(st)
            src_root = self._ensure_root(src_state) if src_state is not None else self.context
            unpack = is_add and (ex.unpack is None or ex.unpack)  # type: ignore[union-attr]
            result = copy_into(root, src_root, ex.sources, ex.dest, workdir=workdir, chown=ex.chown or None,
                               chmod=ex.chmod or None, parents=parents, exclude=ex.exclude,
                               ignore=self.ignore if src_state is None else None, from_context=src_state is None,
                               heredocs=heredocs, unpack=unpack, instruction="ADD" if is_add else "COPY")
            if not result.changed_paths:
                return []
            return entries_for_paths(root, result.changed_paths, recursive=False)

        srcs_state = src_state

        def files() -> dict[str, Any]:
            if srcs_state is None:
                return source_files(self.context, ex.sources, ignore=self.ignore, exclude=ex.exclude,
                                    parents=parents, from_context=True, stat_cache=self._stat_cache,
                                    instruction="ADD" if is_add else "COPY")
            return source_files(self._source_tree(srcs_state), ex.sources, exclude=ex.exclude, parents=parents,
                                from_context=False, instruction="ADD" if is_add else "COPY")

        n_before = len(st.image.layers)
        self._fs_step(st, ex, text, i, total, t0, inputs, run, files)
        if src_idx is not None:
            size = st.image.layers[-1].size if len(st.image.layers) > n_before else 0
            st.kept.setdefault(src_idx, []).append((text, size))
        if src_state is not None and not self.dry_run:
            self._transfers.append(CopyFrom(
                from_stage=src_state.label, from_index=src_idx, to_index=st.index, line=ex.span.line,
                dest=ex.dest, sources=tuple(ex.sources), source_image=src_state.image,
                layer=st.image.layers[-1].digest.value if len(st.image.layers) > n_before else None))


def _with_epoch(env: Sequence[tuple[str, str]], sde: int | None) -> tuple[tuple[str, str], ...]:
    """A RUN's environment with SOURCE_DATE_EPOCH (the build's, "0" when unset) unless ENV or ARG set one: tools
    that honour it (Python's hash-checked .pyc, gzip, tar --clamp-mtime) then agree with the exported image. Not
    in the cache key's ``env``: the key has ``source_date_epoch`` itself."""
    if any(k == "SOURCE_DATE_EPOCH" for k, _ in env):
        return tuple(env)
    return (*env, ("SOURCE_DATE_EPOCH", str(sde if sde is not None else 0)))


def _proxy_names() -> frozenset[str]:
    from minibuild.plan.scope import PROXY_ARGS

    return PROXY_ARGS
