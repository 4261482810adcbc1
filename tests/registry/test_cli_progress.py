"""The CLI progress line: drawn on stderr only when enabled (a TTY), erased at the end."""

from __future__ import annotations

import pytest

from minibuild.digest import Digest
from minibuild.registry import TransferEvent
from minibuild.cli.registry_cmds import ProgressLine

D = Digest("sha256:" + "ab" * 32)


def test_progress_line_draws_and_erases(capsys: pytest.CaptureFixture[str]) -> None:
    line = ProgressLine(True)
    line(TransferEvent(action="push", digest=D, status="uploading", done=50, total=100))
    line(TransferEvent(action="push", digest=D, status="done", done=100, total=100))
    line.finish()
    err = capsys.readouterr().err
    assert "push abababababab uploading   [##########          ] 50/100 B" in err
    assert "[####################] 100/100 B" in err
    assert err.endswith("\r") and err.count("\r") == 4


def test_progress_line_is_silent_when_disabled(capsys: pytest.CaptureFixture[str]) -> None:
    line = ProgressLine(False)
    line(TransferEvent(action="pull", digest=D, status="downloading", done=1, total=None))
    line.finish()
    assert capsys.readouterr().err == ""
