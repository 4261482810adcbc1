"""The executor a build uses, by name: the one place that knows every executor class."""

from __future__ import annotations

from minibuild.errors import ConfigError
from minibuild.executors.executor import KNOWN_EXECUTORS, EmulateExecutor, Executor


def get_executor(name: str) -> Executor:
    """Return a fresh executor by name: ``emulate`` (default) or ``chroot``; unknown names raise ConfigError."""
    if name == "emulate":
        return EmulateExecutor()
    if name == "chroot":
        from minibuild.executors.chroot import ChrootExecutor  # lazy: namespaces and seccomp only when asked for

        return ChrootExecutor()
    raise ConfigError(f"unknown executor {name!r}; known executors: {', '.join(KNOWN_EXECUTORS)}")
