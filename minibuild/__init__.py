"""minibuild: a pure-Python container image builder (public API)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minibuild.errors import MinibuildError

__version__ = "0.1.0"

__all__ = ["MinibuildError", "__version__", "build", "ImageView", "FileInfo", "load"]

_VIEW_NAMES = frozenset({"ImageView", "FileInfo", "load"})


def __getattr__(name: str) -> Any:
    """``MinibuildError``, ``minibuild.build`` and the image view (``load``, ``ImageView``, ``FileInfo``) are
    imported lazily so that ``import minibuild`` (and a fully cached CLI build) stays fast. The engine package
    is ``minibuild.engine``, so no submodule import can rebind ``minibuild.build``."""
    if name == "MinibuildError":
        from minibuild.errors import MinibuildError

        return MinibuildError
    if name == "build":
        from minibuild.api import build

        return build
    if name in _VIEW_NAMES:
        from minibuild import view

        return getattr(view, name)
    raise AttributeError(f"module 'minibuild' has no attribute {name!r}")
