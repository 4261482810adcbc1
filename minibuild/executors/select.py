"""The executor a build uses, by name: the one place that knows every executor class."""

from __future__ import annotations

from minibuild.errors import ConfigError
from minibuild.executors.auto import AUTO, RootFiles, choose
from minibuild.executors.executor import KNOWN_EXECUTORS, EmulateExecutor, Executor, RunRequest, RunResult

EXECUTOR_CHOICES: tuple[str, ...] = (AUTO, *KNOWN_EXECUTORS)  # what --executor takes


def check_executor_name(name: str) -> str:
    """``name`` when it is ``auto`` or a known executor, else ConfigError (nothing is imported)."""
    if name not in EXECUTOR_CHOICES:
        raise ConfigError(f"unknown executor {name!r}; known executors: {', '.join(EXECUTOR_CHOICES)}")
    return name


def get_executor(name: str) -> Executor:
    """Return a fresh executor by name: ``auto``, ``emulate`` or ``chroot``; unknown names raise ConfigError."""
    if name == "emulate":
        return EmulateExecutor()
    if name == "chroot":
        from minibuild.executors.chroot import ChrootExecutor  # lazy: namespaces and seccomp only when asked for

        return ChrootExecutor()
    if name == AUTO:
        return AutoExecutor()
    raise ConfigError(f"unknown executor {name!r}; known executors: {', '.join(EXECUTOR_CHOICES)}")


class AutoExecutor:
    """``auto`` per command (structure tests' commands): each request runs with the executor ``choose`` picks for
    its argv[0] in its root. A build resolves ``auto`` per stage itself, since the name is in its cache keys."""

    name = AUTO

    def __init__(self) -> None:
        self._by_name: dict[str, Executor] = {}

    def run(self, req: RunRequest) -> RunResult:
        picked = choose(RootFiles(req.root), req.argv, req.env_dict().get("PATH", ""), req.workdir).executor
        ex = self._by_name.get(picked)
        if ex is None:
            ex = self._by_name[picked] = get_executor(picked)
        return ex.run(req)
