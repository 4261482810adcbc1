"""The public API: ``minibuild.build`` stays callable however often it is used and whatever was imported before."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_PRELUDE = """
import os, sys
ctx, store = sys.argv[1], sys.argv[2]
"""

_SCRIPTS = {
    # exactly the report: the first call imports the engine package (minibuild.engine.*)
    "twice": """
import minibuild
a = minibuild.build(ctx, store=store)
b = minibuild.build(ctx, store=store)
assert a.config_digest == b.config_digest, (a, b)
""",
    "from-import-after-engine": """
import minibuild
import minibuild.engine.builder
from minibuild import build
r = build(ctx, store=store)
print(r.config_digest)
""",
    "attribute-after-engine": """
import minibuild.engine.builder
import minibuild
r = minibuild.build(ctx, store=store)
print(r.config_digest)
""",
    "engine-modules-still-reachable": """
import minibuild
minibuild.build(ctx, store=store)
import minibuild.engine.copy as copy_mod
assert copy_mod.__name__ == "minibuild.engine.copy"
assert minibuild.engine.builder.__name__ == "minibuild.engine.builder"
assert callable(minibuild.build) and not hasattr(minibuild.build, "__path__")
""",
}


@pytest.mark.parametrize("name", sorted(_SCRIPTS))
def test_build_is_callable_in_a_fresh_interpreter(name: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
    (ctx / "a").write_text("hi\n")
    script = textwrap.dedent(_PRELUDE) + textwrap.dedent(_SCRIPTS[name])
    proc = subprocess.run(
        [sys.executable, "-c", script, str(ctx), str(tmp_path / "store")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_an_unreadable_context_is_one_context_error(tmp_path: Path) -> None:
    """As an ordinary user a context you may not enter is a ContextError naming why, not a PermissionError."""
    import os

    import minibuild
    from minibuild.errors import ContextError

    if os.geteuid() == 0:
        pytest.skip("root may enter any directory (CI's unprivileged run checks this)")
    locked = tmp_path / "locked"  # a directory you may not search: its children cannot even be stat'ed
    ctx = locked / "ctx"
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    locked.chmod(0o000)
    try:
        with pytest.raises(ContextError, match=r"build context .* cannot be read: Permission denied"):
            minibuild.build(ctx, store=tmp_path / "store")
    finally:
        locked.chmod(0o755)
