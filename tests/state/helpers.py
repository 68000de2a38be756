"""Helpers of the state machine tests: open a state for tests, turn commands into consecutive log
entries, apply them."""

from __future__ import annotations

from typing import Any

from doq.commands import Command, encode_command
from doq.state.machine import QueueStateMachine
from raft_zmq.core.types import Entry, EntryKind

TEST_MAP_SIZE_BYTES = 256 << 20


class Log:
    """Hands out consecutive entries for commands, like a Raft log of one term."""

    def __init__(self, term: int = 1) -> None:
        self.index = 0
        self.term = term

    def entries(self, *items: Command | bytes | EntryKind) -> list[Entry]:
        out = []
        for item in items:
            self.index += 1
            if isinstance(item, EntryKind):
                out.append(Entry(self.index, self.term, item))
            elif isinstance(item, bytes):
                out.append(Entry(self.index, self.term, EntryKind.NORMAL, item))
            else:
                out.append(Entry(self.index, self.term, EntryKind.NORMAL, encode_command(item)))
        return out


def open_machine(path: str, **kwargs: Any) -> QueueStateMachine:
    kwargs.setdefault("map_size_bytes", TEST_MAP_SIZE_BYTES)
    kwargs.setdefault("sync", False)  # the tests exercise logic; durability has its own tests
    return QueueStateMachine(path, **kwargs)


def run(sm: QueueStateMachine, log: Log, *commands: Command) -> list[Any]:
    """Apply the commands as one batch; return their results."""
    return sm.apply(log.entries(*commands))


def run_one(sm: QueueStateMachine, log: Log, command: Command) -> Any:
    return run(sm, log, command)[0]
