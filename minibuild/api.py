"""The facade the CLI, tests and users call: ``build(...)`` a Dockerfile into the store (and a tarball)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minibuild.fs.confine import read_build_file
from minibuild.engine.builder import Builder, BuildResult, PlanResult, StageResult, StepResult
from minibuild.dockerfile import decode_dockerfile, parse_dockerfile
from minibuild.errors import ConfigError, ContextError
from minibuild.store import Store, default_store_path

if TYPE_CHECKING:
    from minibuild.executors.executor import Executor

_EXECUTORS = ("auto", "emulate", "chroot")  # resolved by the builder at a stage's first RUN (lazy import)

__all__ = ["BuildResult", "PlanResult", "StageResult", "StepResult", "build", "plan"]


def _sde() -> int | None:
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"SOURCE_DATE_EPOCH must be an integer, got {raw!r}") from None


def _context_dir(context: str | Path) -> Path:
    """The build context, which must be a directory this process may reach (else one line, no traceback)."""
    ctx = Path(context)
    try:
        st = os.stat(ctx)
    except FileNotFoundError:
        raise ContextError(f"build context {ctx} is not a directory") from None
    except OSError as exc:
        raise ContextError(f"build context {ctx} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ContextError(f"build context {ctx} is not a directory")
    return ctx


def _read_dockerfile(ctx: Path, dockerfile: Path | str | None, dockerfile_text: str | None) -> tuple[Any, Path | None]:
    df_path: Path | None
    if dockerfile_text is None:
        df_path = Path(dockerfile) if dockerfile is not None else ctx / "Dockerfile"
        data = read_build_file(ctx, df_path, what=f"Dockerfile {df_path}", error=ContextError)
        if data is None:
            raise ContextError(f"cannot read Dockerfile {df_path}: no such file")
        text = decode_dockerfile(data)
        filename = df_path.name
    else:
        text = dockerfile_text
        df_path = Path(dockerfile) if dockerfile is not None else None
        filename = df_path.name if df_path is not None else "Dockerfile"
    return parse_dockerfile(text, filename=filename), df_path


def _executor_name(name: str) -> str:
    """A known executor name as given (its module is imported only when a RUN runs), else ConfigError."""
    if name not in _EXECUTORS:
        from minibuild.executors.select import check_executor_name

        check_executor_name(name)  # raises the unknown-executor error
    return name


def plan(
    context: Path | str = ".",
    dockerfile: Path | str | None = None,
    *,
    target: str | None = None,
    build_args: Mapping[str, str] | None = None,
    store: Store | Path | str | None = None,
    no_cache: bool = False,
    dockerfile_text: str | None = None,
    executor: str = "auto",
    source_date_epoch: int | None = None,
    allow: Sequence[str] = (),
) -> PlanResult:
    """Predict what ``build`` with the same arguments would do: per step HIT or MISS with the reason, the
    expanded instruction and the ARG/ENV values it sees. Runs nothing and writes no layer or cache record (a
    step needing an entitlement that ``allow`` lacks is a warning). ``executor`` (``auto``: resolved per stage as
    build resolves it) and ``source_date_epoch`` (default $SOURCE_DATE_EPOCH) are in the keys as they are in
    build's."""
    ctx = _context_dir(context)
    df, df_path = _read_dockerfile(ctx, dockerfile, dockerfile_text)
    st = store if isinstance(store, Store) else Store.open(Path(store) if store is not None else default_store_path())
    builder = Builder(store=st, dockerfile=df, context=ctx, dockerfile_path=df_path, target=target,
                      build_args=build_args, executor=_executor_name(executor), no_cache=no_cache, dry_run=True,
                      source_date_epoch=source_date_epoch if source_date_epoch is not None else _sde(), allow=allow)
    return builder.plan()


def build(
    context: Path | str = ".",
    dockerfile: Path | str | None = None,
    *,
    target: str | None = None,
    build_args: Mapping[str, str] | None = None,
    tags: Sequence[str] = (),
    store: Store | Path | str | None = None,
    executor: str | Executor = "auto",
    no_cache: bool = False,
    output: Path | str | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    dockerfile_text: str | None = None,
    source_date_epoch: int | None = None,
    pull: bool = False,
    cache_from: Sequence[str] = (),
    cache_to: Sequence[str] = (),
    registry_options: Any = None,
    report: Path | str | None = None,
    allow: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    iidfile: Path | str | None = None,
    run_timeout: float | None = None,
    secrets: Mapping[str, bytes | str] | None = None,
    ssh: Mapping[str, str] | None = None,
) -> BuildResult:
    """Build ``dockerfile`` (default ``CONTEXT/Dockerfile``; or the text in ``dockerfile_text``) with ``context``.

    The image is stored and tagged with ``tags`` in ``store`` (a Store, a path, or $MINIBUILD_HOME); ``output``
    also writes a ``docker load`` tarball. ``progress`` receives one dict per event (see docs/progress.md).
    ``source_date_epoch`` defaults to $SOURCE_DATE_EPOCH (else 0) for every timestamp in the image.
    ``pull`` pulls base images the store lacks (``registry_options``: a RegistryOptions); ``cache_from`` /
    ``cache_to`` are ``--cache-from``/``--cache-to`` values (see docs/cache-sharing.md).
    ``report`` (``*.json`` or ``*.html``) also writes the discard report (minibuild.teach.discard).
    ``allow`` grants entitlements, as ``docker buildx build --allow``: ``RUN --network=host`` needs
    ``"network.host"``, and without it the build fails before any step runs.
    ``output`` may also be buildx's ``type=docker|oci|tar|local,dest=PATH`` (minibuild.engine.outputs); ``labels``
    are added to the final image's config (``docker build --label``); ``iidfile`` receives the image ID. Tags and
    every destination are checked before the build starts.
    ``run_timeout`` is each RUN's wall-time limit in seconds (0 = none; default $MINIBUILD_RUN_TIMEOUT, else 1 h).
    ``executor`` is how RUN runs: ``auto`` (default) picks per stage at its first RUN, the chroot executor when
    the program the RUN starts is a real binary of the base and the sandbox can run here, else emulate (an
    ``executor`` progress event says which and why); ``emulate``/``chroot``/an Executor override it.
    ``secrets`` (id -> value) are what ``RUN --mount=type=secret`` reads, as ``docker build --secret``; they never
    reach a layer, a cache key or the history. ``ssh`` (id -> agent socket path) is ``docker build --ssh``."""
    from minibuild.engine.outputs import ARCHIVE_TYPES, check_file_dest, check_output, check_tags, parse_output
    from minibuild.limits import run_limits

    limits = run_limits(True if run_timeout is None else run_timeout)
    ctx = _context_dir(context)
    check_tags(tags)
    out_spec = parse_output(output) if output is not None else None
    if out_spec is not None:
        check_output(out_spec)
    if iidfile is not None:
        check_file_dest(Path(iidfile), "--iidfile")
    df, df_path = _read_dockerfile(ctx, dockerfile, dockerfile_text)
    st = store if isinstance(store, Store) else Store.open(Path(store) if store is not None else default_store_path())
    ex: Executor | str = executor
    if isinstance(executor, str) and executor not in _EXECUTORS:
        from minibuild.executors.select import get_executor

        ex = get_executor(executor)  # raises the unknown-executor error before anything runs
    builder = Builder(
        store=st, dockerfile=df, context=ctx, dockerfile_path=df_path, target=target, build_args=build_args,
        tags=tags, executor=ex, no_cache=no_cache,
        output=out_spec.dest if out_spec is not None and out_spec.type in ARCHIVE_TYPES else None,
        progress=progress, source_date_epoch=source_date_epoch if source_date_epoch is not None else _sde(),
        allow=allow, labels=labels, run_limits=limits,
        secrets={k: v.encode() if isinstance(v, str) else bytes(v) for k, v in (secrets or {}).items()},
        ssh=ssh,
    )
    from minibuild.engine.cachesync import run_build

    result: BuildResult = run_build(builder, st, pull=pull, cache_from=cache_from, cache_to=cache_to,
                       registry_options=registry_options)
    if out_spec is not None and out_spec.type not in ARCHIVE_TYPES:
        import dataclasses

        from minibuild.engine.outputs import write_filesystem

        write_filesystem(st, result.image, out_spec)
        result = dataclasses.replace(result, output=str(out_spec.dest))
    if iidfile is not None:
        from minibuild.engine.outputs import write_iidfile

        write_iidfile(Path(iidfile), result.config_digest.value)
    if report is not None:
        _write_report(st, result, df, df.filename, Path(report))
    return result


def _write_report(store: Store, result: BuildResult, df: Any, filename: str, path: Path) -> None:
    """Write the discard report of ``result`` (minibuild.teach.discard) as JSON or HTML, by the file suffix."""
    from minibuild.teach.discard import build_report
    from minibuild.teach.report import write_report

    write_report(build_report(store, result, df, dockerfile_name=filename), path)
