"""Where the store lives when no ``--store`` is given (standard library only: the entry point reads it too)."""

from __future__ import annotations

import os
from collections.abc import Mapping


def default_store_dir(environ: Mapping[str, str] | None = None) -> str:
    """$MINIBUILD_HOME, else $XDG_CACHE_HOME/minibuild, else ~/.cache/minibuild."""
    env = os.environ if environ is None else environ
    home = env.get("MINIBUILD_HOME")
    if home:
        return home
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "minibuild")
