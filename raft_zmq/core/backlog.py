"""The leader's uncommitted backlog: the entries of its term not yet committed, and their bytes.

A leader whose followers fall behind would otherwise buffer proposals without bound; past
``CoreOptions.max_uncommitted_bytes`` it refuses new ones (``ProposalDropped``, safe to retry),
as etcd's ``MaxUncommittedEntriesSize`` does. The backlog is emptied when the term changes.
"""

from __future__ import annotations

from collections import deque

import attrs


@attrs.frozen(slots=True)
class Uncommitted:
    index: int
    size_bytes: int


class Backlog:
    def __init__(self) -> None:
        self._entries: deque[Uncommitted] = deque()
        self.size_bytes = 0

    def add(self, index: int, size_bytes: int) -> None:
        self._entries.append(Uncommitted(index, size_bytes))
        self.size_bytes += size_bytes

    def committed_to(self, index: int) -> None:
        entries = self._entries
        while entries and entries[0].index <= index:
            self.size_bytes -= entries.popleft().size_bytes

    def clear(self) -> None:
        self._entries.clear()
        self.size_bytes = 0
