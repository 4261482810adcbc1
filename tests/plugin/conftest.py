"""tests/plugin: pytester is enabled by tests/conftest.py (pytest refuses pytest_plugins in a nested conftest).

pytester's in-process runs drop every module first imported inside them; importing the heavy ones here keeps the
inner sessions fast (hypothesis' pytest plugin imports this module at every session's end, and the build engine is
imported on the first build).
"""

import hypothesis.internal.observability  # noqa: F401

import minibuild.api  # noqa: F401
import minibuild.build.copy  # noqa: F401
