"""The CLI boundary: help, version, unknown commands, and errors as one line."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from minibuild.cli import cli


def test_help_lists_group() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "build, explain and test Dockerfiles" in result.output


def test_python_dash_m_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "minibuild", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "0.1.0" in proc.stdout


def test_unknown_command_is_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "minibuild", "no-such-command"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_version_is_the_package_version() -> None:
    """``--version`` prints ``minibuild.__version__`` (no metadata look-up); the installed metadata agrees."""
    from importlib.metadata import version

    import minibuild

    proc = subprocess.run([sys.executable, "-m", "minibuild", "--version"], capture_output=True, text=True)
    assert proc.stdout.strip() == f"minibuild, version {minibuild.__version__}" == f"minibuild, version {version('minibuild')}"
