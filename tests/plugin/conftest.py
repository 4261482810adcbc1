"""tests/plugin: pytester is enabled by tests/conftest.py (pytest refuses pytest_plugins in a nested conftest).

pytester's in-process runs drop every module first imported inside them when they end.  A later run then imports
such a module afresh while older modules still hold the previous copy, so exception classes stop matching (the
emulated shell's control-flow exceptions, for one).  Importing all of minibuild here, before any inner run, keeps one
copy of each module; it also keeps the inner runs fast (hypothesis' pytest plugin imports the observability module at
every session's end).
"""

import importlib
import pkgutil

import hypothesis.internal.observability  # noqa: F401

import minibuild

for _mod in pkgutil.walk_packages(minibuild.__path__, "minibuild."):
    if _mod.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(_mod.name)
    except Exception:  # noqa: BLE001, S112 - a broken module fails the tests that use it, not this package's setup
        continue
