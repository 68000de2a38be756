"""The configurations a node's log holds, and how a single-server change produces the next one.

A configuration takes effect when its entry is appended, not when it commits (the paper's choice,
and hashicorp's); a truncation of the log reverts to the newest configuration still in it. So the
core keeps every configuration from its snapshot's on, oldest first: the last one is in force,
``at(index)`` answers for a snapshot's metadata, and compaction forgets those no longer needed.
docs/raft.md ("Membership") says what the library promises about changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from raft_zmq.core.configcodec import decode_config
from raft_zmq.core.ready import ConfigChange, ConfigChangeKind, ConfigChangeRejected
from raft_zmq.core.types import ClusterConfig, Entry, EntryKind, Server, SnapshotMeta, Suffrage


@attrs.frozen(slots=True)
class ConfigAt:
    """The configuration whose entry is at ``index`` (or the snapshot's, at its index)."""

    index: int
    config: ClusterConfig


class ConfigHistory:
    def __init__(self, base: SnapshotMeta) -> None:
        self._history: list[ConfigAt] = [ConfigAt(base.index, base.config)]

    @property
    def current(self) -> ClusterConfig:
        return self._history[-1].config

    @property
    def current_index(self) -> int:
        """Where the configuration in force was appended (committed once commit reaches it)."""
        return self._history[-1].index

    def at(self, index: int) -> ClusterConfig:
        """The configuration in force at ``index`` (which must not be compacted away)."""
        for entry in reversed(self._history):
            if entry.index <= index:
                return entry.config
        raise IndexError(f"configuration at {index} is compacted away")

    def appended(self, entries: Sequence[Entry]) -> bool:
        """``entries`` were appended (replacing any suffix from the first one's index on);
        returns whether the configuration in force changed."""
        history, first = self._history, entries[0].index
        before = history[-1].config
        touched = False
        while len(history) > 1 and history[-1].index >= first:
            history.pop()
            touched = True
        for entry in entries:
            if entry.kind == EntryKind.CONFIG:
                history.append(ConfigAt(entry.index, decode_config(entry.data)))
                touched = True
        return touched and history[-1].config != before

    def compacted(self, floor: int) -> None:
        """The log holds nothing at or below ``floor`` any more: keep only the configuration in
        force there and those after it."""
        while len(self._history) > 1 and self._history[1].index <= floor:
            self._history.pop(0)

    def restored(self, meta: SnapshotMeta) -> None:
        """The log was replaced by a snapshot."""
        self._history = [ConfigAt(meta.index, meta.config)]

    def indexes_increase(self) -> bool:
        return all(a.index < b.index for a, b in zip(self._history, self._history[1:]))


def changed_config(config: ClusterConfig, change: ConfigChange) -> ClusterConfig:
    """The configuration ``change`` makes of ``config`` (equal to it when nothing changes)."""
    current = config.get(change.node_id)
    if change.kind is ConfigChangeKind.REMOVE:
        if current is None:
            return config
        new = config.without(change.node_id)
        if not new.voters:
            raise ConfigChangeRejected("cannot remove the last voter")
        return new
    if not change.address:
        raise ConfigChangeRejected("a new server needs an address")
    suffrage = Suffrage.VOTER if change.kind is ConfigChangeKind.ADD_VOTER else Suffrage.NONVOTER
    if current is not None and current.suffrage == Suffrage.VOTER and suffrage != Suffrage.VOTER:
        raise ConfigChangeRejected(f"{change.node_id} is a voter; remove it to demote it")
    return config.with_server(Server(change.node_id, change.address, suffrage, change.metadata))
