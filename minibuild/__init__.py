"""minibuild: a pure-Python container image builder (public API)."""

from minibuild.errors import MinibuildError
from minibuild.view import FileInfo, ImageView, load

__version__ = "0.1.0"

__all__ = ["MinibuildError", "__version__", "ImageView", "FileInfo", "load"]
