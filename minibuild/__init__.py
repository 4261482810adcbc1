"""minibuild: a pure-Python container image builder (public API)."""

from typing import Any

from minibuild.errors import MinibuildError

__version__ = "0.1.0"

__all__ = ["MinibuildError", "__version__", "build"]


def __getattr__(name: str) -> Any:
    """``minibuild.build`` is imported lazily so that ``import minibuild`` (and the CLI) stays fast."""
    if name == "build":
        from minibuild.api import build

        return build
    raise AttributeError(f"module 'minibuild' has no attribute {name!r}")
