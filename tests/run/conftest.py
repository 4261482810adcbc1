"""The `running` fixture: every `minibuild run` a test starts is killed at its end if still running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.run.support import Running


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for r in started:
        r.kill()
