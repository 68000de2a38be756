"""Fixtures of the state machine tests: a fresh LMDB state in a temporary directory, and a log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from doq.state.machine import QueueStateMachine

from .helpers import Log, open_machine


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[QueueStateMachine]:
    sm = open_machine(str(tmp_path / "state"))
    yield sm
    sm.close()


@pytest.fixture
def log() -> Log:
    return Log()
