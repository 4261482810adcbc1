"""`minibuild run`: start an image's process over a throwaway copy of its filesystem, ports published on loopback."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, Literal

from minibuild.errors import ConfigError, ExecutorError, MinibuildError
from minibuild.record import record
from minibuild.run.spec import ContainerSpec, container_spec, parse_env, parse_publish
from minibuild.run.web import Listener

Executor = Literal["auto", "emulate", "chroot"]
EXECUTORS: tuple[str, ...] = ("auto", "emulate", "chroot")


class RunError(MinibuildError):
    """`minibuild run` could not start the container (docker run's status 125); ``status`` may say otherwise
    (127: the command was not found, as Docker's)."""

    def __init__(self, message: str, *, status: int = 125) -> None:
        super().__init__(message)
        self.status = status


@record
class RunOptions:
    """docker run's options minibuild takes: ``-e``, ``-p``, ``--entrypoint``, ``-w``, ``-u`` and the command."""

    cmd: tuple[str, ...] = ()
    entrypoint: str | None = None
    env: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    executor: Executor = "auto"
    interactive: bool = False  # -i: the program reads minibuild's stdin (else it reads nothing)


def choose_executor(root: Path, spec: ContainerSpec, wanted: Executor) -> Literal["emulate", "chroot"]:
    """``auto``: a real program (an ELF binary) runs in the chroot executor; a stand-in (a script, or a placeholder
    binary of a stand-in base) in the emulated shell (``minibuild.executors.auto``, the rule builds use too; a real
    server cannot be emulated, so here the chroot executor's own error says when it cannot run). RunError 127 when
    argv[0] is nowhere, as Docker's exec fails."""
    if wanted != "auto":
        return wanted
    from minibuild.executors.auto import RootFiles, find_program
    from minibuild.sh import BUILTINS

    found = find_program(RootFiles(root), spec.argv[0], spec.env_dict().get("PATH", ""), spec.workdir)
    if found is None:
        if "/" not in spec.argv[0] and spec.argv[0] in BUILTINS:
            return "emulate"  # a busybox applet of a stand-in base (its busybox is a placeholder)
        where = "no such file or directory" if "/" in spec.argv[0] else "executable file not found in $PATH"
        raise RunError(f'exec: "{spec.argv[0]}": {where}', status=127)
    return "chroot" if found.real else "emulate"


def _rmtree(path: Path) -> None:
    from minibuild.structure.runner import _rmtree as rm

    rm(path)


def _bind(spec: ContainerSpec) -> dict[int, list[Listener]]:
    listeners: dict[int, list[Listener]] = {}
    try:
        for p in spec.publish:
            listeners.setdefault(p.container_port, []).append(Listener(p.host_ip, p.host_port))
    except ConfigError:
        _close(listeners)
        raise
    return listeners


def _close(listeners: Mapping[int, list[Listener]]) -> None:
    for ls in listeners.values():
        for listener in ls:
            listener.stop()


def run_image(ref: str, store_dir: Path, opts: RunOptions, *, stdout: BinaryIO, stderr: BinaryIO,
              host_env: Mapping[str, str] | None = None, stop: threading.Event | None = None,
              stdin: BinaryIO | None = None) -> int:
    """Run image ``ref`` (a name or ID in the store at ``store_dir``, or an image tarball) as docker run would:
    its ENTRYPOINT + CMD over a throwaway copy of its filesystem (the stored image never changes), ``-p`` ports
    on the host's loopback. Returns the process's exit status; RunError (status 125/127) when it cannot start.
    A stand-in server runs until SIGINT/SIGTERM/SIGQUIT (when called in the main thread) or until ``stop`` is
    set (as `docker stop`: it ends as on SIGTERM). With ``opts.interactive`` the program reads ``stdin`` (the
    emulated shell reads it whole first; the chroot executor gets file descriptor 0 itself)."""
    from minibuild.run.emulated import Passthrough, run_emulated
    from minibuild.view import ImageView, open_image

    publish = [parse_publish(p) for p in opts.publish]
    env = parse_env(opts.env, os.environ if host_env is None else host_env)
    if opts.executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {opts.executor!r} (choose from {', '.join(EXECUTORS)})")
    if os.path.exists(ref) or ref.endswith((".tar", ".tar.gz", ".tgz")):
        view = open_image(Path(ref))
    else:
        from minibuild.store import Store

        if not (Path(store_dir) / "index.json").exists():
            raise RunError(f"Unable to find image '{ref}' locally (the store {store_dir} is empty; build or load it "
                           "first)")
        try:
            store = Store.open(store_dir)
        except MinibuildError as exc:
            raise RunError(str(exc)) from None
        try:
            digest = store.resolve_digest(ref)
        except MinibuildError as exc:
            raise RunError(f"Unable to find image '{ref}' locally: {exc}") from None
        view = ImageView(store, store.get_image(digest), names=(ref,))
    spec = container_spec(view.image.config, entrypoint=opts.entrypoint, cmd=opts.cmd, env=env, publish=publish,
                          workdir=opts.workdir, user=opts.user)
    tmp = Path(tempfile.mkdtemp(prefix="minibuild-run-"))
    listeners: dict[int, list[Listener]] = {}
    try:
        root = tmp / "rootfs"
        view.materialize(root)
        how = choose_executor(root, spec, opts.executor)
        err = Passthrough(stderr)
        if how == "chroot":
            from minibuild.run.real import run_chroot

            try:
                return run_chroot(root, spec, note=err, interactive=opts.interactive)
            except ExecutorError as exc:
                raise RunError(str(exc)) from None
        listeners = _bind(spec)
        data = (stdin.read() if stdin is not None else b"") if opts.interactive else b""
        return run_emulated(root, spec, listeners, stdout=Passthrough(stdout), stderr=err, note=err,
                            stop=stop, stdin=data)
    finally:
        _close(listeners)
        _rmtree(tmp)
