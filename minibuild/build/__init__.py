"""Building images: context, COPY, RUN executors, tree diffs and root filesystems.

The import system binds the attribute ``minibuild.build`` to this package as soon as any ``minibuild.build.*``
module is imported, replacing the public function of that name; so the package itself is callable, and calling
it is calling ``minibuild.api.build`` (until the engine package gets its own name).
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from minibuild.api import build as _api_build


class _CallablePackage(types.ModuleType):
    """The type of this package: a module that, called, builds (the public ``minibuild.build``)."""

    if TYPE_CHECKING:
        __call__ = staticmethod(_api_build)
    else:

        def __call__(self, *args, **kwargs):
            from minibuild.api import build

            return build(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
