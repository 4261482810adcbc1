"""pytest plugin: build Dockerfiles once per session (memoised) and hand tests the image and the build record.

Registered through the ``pytest11`` entry point, so installing minibuild enables it.  Importing this module does not
import the build engine: ``minibuild.api`` is imported the first time a build is asked for.

Fixtures: ``minibuild_store`` (session: a temporary store, or a shared one), ``minibuild_build`` (session: a factory
``minibuild_build(context, dockerfile=None, target=None, build_args=None, executor="auto", allow=()) -> BuiltImage``
that builds each distinct request once per session; ``allow`` grants entitlements such as ``network.host``),
``image`` (the ``BuiltImage`` that the test's ``@pytest.mark.minibuild(...)`` marker asks for).  Options: ``--minibuild-store DIR`` and the ini option
``minibuild_store`` (``temp``, the default, or ``shared``).  See docs/pytest-plugin.md.
"""

from __future__ import annotations

import inspect
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from minibuild.record import record
from minibuild.testing import assert_config, assert_env, assert_file, assert_no_file

if TYPE_CHECKING:
    from minibuild.api import BuildResult, StageResult, StepResult
    from minibuild.digest import Digest
    from minibuild.store import Store
    from minibuild.view import ConfigView, FileInfo, FileTree, ImageView, LayerView

__all__ = ["BuildRequest", "BuiltImage", "SessionBuilds", "assert_config", "assert_env", "assert_file",
           "assert_no_file"]

STORE_MODES = ("temp", "shared")
_MARKER_HELP = ("minibuild(context='.', dockerfile=None, target=None, build_args=None, executor='auto', "
                "allow=()): the "
                "image the `image` fixture builds (context relative to the rootdir, dockerfile relative to the context)")


# --------------------------------------------------------------------------------------------- records
@record
class BuildRequest:
    """One distinct build: absolute context and Dockerfile paths, target, build args (sorted), executor name,
    entitlements granted (sorted)."""

    context: Path
    dockerfile: Path
    target: str | None
    build_args: tuple[tuple[str, str], ...]
    executor: str
    allow: tuple[str, ...] = ()

    def describe(self, rootdir: Path | None = None) -> str:
        """``examples/node-nginx (Dockerfile.single, target build, NODE_VERSION=20)``."""
        ctx = self.context
        if rootdir is not None and ctx.is_relative_to(rootdir):
            ctx = ctx.relative_to(rootdir)
        df = self.dockerfile.relative_to(self.context) if self.dockerfile.is_relative_to(self.context) else self.dockerfile
        extra = [str(df)]
        if self.target is not None:
            extra.append(f"target {self.target}")
        extra.extend(f"{k}={v}" for k, v in self.build_args)
        if self.executor != "auto":
            extra.append(f"executor {self.executor}")
        extra.extend(f"allow {a}" for a in self.allow)
        return f"{ctx} ({', '.join(extra)})"


@record
class BuiltImage:
    """A built image: ``view`` (files, config, layers), the build ``result`` (steps, stages, size), its ``store``.

    The common questions are properties: ``files``, ``config``, ``layers``, ``steps``, ``stages``, ``size``,
    ``digest``, and ``stat``/``exists``/``read``/``read_text``/``listdir`` of the view.
    """

    request: BuildRequest
    result: BuildResult = field(repr=False)
    view: ImageView = field(repr=False)
    store: Store = field(repr=False)
    label: str

    @property
    def files(self) -> FileTree:
        return self.view.files

    @property
    def config(self) -> ConfigView:
        return self.view.config

    @property
    def layers(self) -> tuple[LayerView, ...]:
        return self.view.layers

    @property
    def steps(self) -> tuple[StepResult, ...]:
        return self.result.steps

    @property
    def stages(self) -> tuple[StageResult, ...]:
        return self.result.stages

    @property
    def size(self) -> int:
        """The image size (minibuild.units.image_size: its distinct layer blobs), as the build reported."""
        return self.result.size

    @property
    def digest(self) -> Digest:
        return self.result.digest

    def __repr__(self) -> str:
        return f"<BuiltImage {self.label} {self.result.digest.short} layers={len(self.view.layers)}>"

    def stat(self, path: str, *, follow_symlinks: bool = False) -> FileInfo | None:
        return self.view.stat(path, follow_symlinks=follow_symlinks)

    def exists(self, path: str, *, follow_symlinks: bool = False) -> bool:
        return self.view.exists(path, follow_symlinks=follow_symlinks)

    def read(self, path: str) -> bytes:
        return self.view.read(path)

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.view.read_text(path, encoding)

    def listdir(self, path: str = "/") -> tuple[str, ...]:
        return self.view.listdir(path)


def _request(rootdir: Path, context: str | os.PathLike[str] = ".", dockerfile: str | os.PathLike[str] | None = None,
             target: str | None = None, build_args: Mapping[str, str] | None = None,
             executor: str = "auto", allow: Sequence[str] = ()) -> BuildRequest:
    """Normalise build arguments: context relative to ``rootdir``, Dockerfile relative to the context."""
    if not isinstance(executor, str):
        raise TypeError(f"executor must be an executor name such as 'auto', 'emulate' or 'chroot', got {executor!r}")
    if target is not None and not isinstance(target, str):
        raise TypeError(f"target must be a stage name or None, got {target!r}")
    if isinstance(allow, str) or not all(isinstance(a, str) for a in allow):
        raise TypeError(f"allow must be a list of entitlement names such as ['network.host'], got {allow!r}")
    ctx = (rootdir / Path(context).expanduser()).resolve()
    df = ctx / "Dockerfile" if dockerfile is None else (ctx / Path(dockerfile).expanduser()).resolve()
    args = tuple(sorted((str(k), str(v)) for k, v in (build_args or {}).items()))
    return BuildRequest(context=ctx, dockerfile=df, target=target, build_args=args, executor=executor,
                        allow=tuple(sorted(set(allow))))


# --------------------------------------------------------------------------------------------- the session's builds
class SessionBuilds:
    """The ``minibuild_build`` factory: builds each distinct request once and returns the same BuiltImage after.

    A failed build is remembered too: every test asking for it fails with the build's error, without rebuilding.
    ``built`` lists the requests actually built, in order.
    """

    def __init__(self, store: Store, rootdir: Path) -> None:
        self.store = store
        self.rootdir = rootdir
        self.built: list[BuildRequest] = []
        self._done: dict[BuildRequest, BuiltImage | BaseException] = {}

    def __call__(self, context: str | os.PathLike[str] = ".", dockerfile: str | os.PathLike[str] | None = None,
                 target: str | None = None, build_args: Mapping[str, str] | None = None,
                 executor: str = "auto", allow: Sequence[str] = ()) -> BuiltImage:
        __tracebackhide__ = True
        req = _request(self.rootdir, context, dockerfile, target, build_args, executor, allow)
        if req not in self._done:
            self._done[req] = self._build(req)
        outcome = self._done[req]
        if isinstance(outcome, BaseException):
            from minibuild.errors import MinibuildError

            if isinstance(outcome, MinibuildError):
                pytest.fail(f"minibuild could not build {req.describe(self.rootdir)}:\n{outcome}", pytrace=False)
            raise outcome
        return outcome

    def _build(self, req: BuildRequest) -> BuiltImage | BaseException:
        from minibuild import api
        from minibuild.view import ImageView

        self.built.append(req)
        try:
            result = api.build(req.context, req.dockerfile, target=req.target, build_args=dict(req.build_args),
                               store=self.store, executor=req.executor, allow=req.allow)
        except Exception as exc:  # noqa: BLE001 - remembered and re-raised to every test that asks
            return exc
        return BuiltImage(request=req, result=result, view=ImageView(self.store, result.image), store=self.store,
                          label=req.describe(self.rootdir))

    def __repr__(self) -> str:
        return f"<minibuild_build: {len(self.built)} build(s) into {self.store.root}>"

    def summary(self) -> str:
        ok = [o for o in self._done.values() if isinstance(o, BuiltImage)]
        failed = len(self._done) - len(ok)
        steps = sum(len(o.steps) for o in ok)
        cached = sum(1 for o in ok for s in o.steps if s.cached)
        text = f"minibuild: {len(self.built)} image build(s), {steps} steps ({cached} cached)"
        return text + (f", {failed} failed" if failed else "")


_BUILDS_KEY = pytest.StashKey[SessionBuilds]()


# --------------------------------------------------------------------------------------------- hooks
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("minibuild", "minibuild image builds")
    group.addoption("--minibuild-store", metavar="DIR", default=None,
                    help="build into the minibuild store DIR (kept between runs, so cached layers are reused) "
                         "instead of a temporary store")
    parser.addini("minibuild_store", "where the minibuild fixtures build: 'temp' (default; a store removed at the "
                  "end of the session) or 'shared' (--minibuild-store DIR, else $MINIBUILD_HOME, else "
                  "~/.cache/minibuild)", default="temp")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)
    store_mode(config)  # a bad ini value is a usage error at startup, not an error in every test


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    builds = config.stash.get(_BUILDS_KEY, None)
    if builds is not None and builds.built:
        terminalreporter.write_line(builds.summary())


def store_mode(config: pytest.Config) -> str:
    """The ini option ``minibuild_store``: ``temp`` (default; ``tmp`` too) or ``shared``; UsageError otherwise."""
    raw = config.getini("minibuild_store") or "temp"
    mode = str(raw).strip().lower()
    mode = "temp" if mode == "tmp" else mode
    if mode not in STORE_MODES:
        raise pytest.UsageError(f"ini option minibuild_store = {raw!r}: use 'temp' (a store for the session) or "
                                "'shared' (--minibuild-store DIR, else $MINIBUILD_HOME)")
    return mode


def store_location(config: pytest.Config) -> Path | None:
    """The shared store directory the options ask for, or None for a temporary store."""
    mode = store_mode(config)
    option = config.getoption("minibuild_store", None)
    if option:
        return (config.invocation_params.dir / Path(option).expanduser()).resolve()
    if mode == "shared":
        from minibuild.store import default_store_path

        return default_store_path()
    return None


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def minibuild_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The store the session builds into: temporary (removed at the end) unless a shared one is asked for."""
    from minibuild.store import Store

    location = store_location(request.config)
    if location is not None:
        yield Store.open(location)
        return
    path = tmp_path_factory.mktemp("minibuild-store")
    try:
        yield Store.open(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def minibuild_build(request: pytest.FixtureRequest, minibuild_store: Store) -> SessionBuilds:
    """``minibuild_build(context, dockerfile=None, target=None, build_args=None, executor="auto", allow=())``
    builds once per session per distinct request and returns a BuiltImage.  ``context`` is relative to the
    rootdir, ``dockerfile`` relative to the context (default ``CONTEXT/Dockerfile``); ``allow`` grants
    entitlements (``["network.host"]`` for ``RUN --network=host``)."""
    builds = SessionBuilds(minibuild_store, request.config.rootpath)
    request.config.stash[_BUILDS_KEY] = builds
    return builds


def _marker_args(context: str | os.PathLike[str] = ".", dockerfile: str | os.PathLike[str] | None = None,
                 target: str | None = None, build_args: Mapping[str, str] | None = None,
                 executor: str = "auto", allow: Sequence[str] = ()) -> dict[str, Any]:
    return {"context": context, "dockerfile": dockerfile, "target": target, "build_args": build_args,
            "executor": executor, "allow": allow}


@pytest.fixture
def image(request: pytest.FixtureRequest, minibuild_build: SessionBuilds) -> BuiltImage:
    """The BuiltImage of the closest ``@pytest.mark.minibuild(...)`` (on the test, its class or its module)."""
    __tracebackhide__ = True
    marker = request.node.get_closest_marker("minibuild")
    if marker is None:
        pytest.fail(f"{request.node.nodeid}: the `image` fixture needs a @pytest.mark.minibuild(context=..., "
                    "dockerfile=..., target=..., build_args=...) marker on the test, its class, or the module "
                    "(pytestmark = pytest.mark.minibuild(...))", pytrace=False)
    known = tuple(inspect.signature(_marker_args).parameters)
    for name in marker.kwargs:
        if name not in known:
            from minibuild.dockerfile.suggest import with_suggestion

            unknown = with_suggestion(f"unknown argument {name!r}", name, known, case_sensitive=True)
            pytest.fail(f"{request.node.nodeid}: bad @pytest.mark.minibuild arguments: {unknown}; the marker "
                        f"takes {', '.join(known)}", pytrace=False)
    try:
        kwargs = _marker_args(*marker.args, **marker.kwargs)
    except TypeError as exc:
        pytest.fail(f"{request.node.nodeid}: bad @pytest.mark.minibuild arguments: {exc}", pytrace=False)
    return minibuild_build(**kwargs)
