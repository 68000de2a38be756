"""The leader's uncommitted backlog: the entries of its term not yet committed, and their bytes.

A leader whose followers fall behind would otherwise buffer proposals without bound; past
``CoreOptions.uncommitted_bytes_max`` it refuses new ones (``ProposalDropped``, safe to retry),
as etcd's ``MaxUncommittedEntriesSize`` does. The backlog is emptied when the term changes.

A leader appends its entries at consecutive indexes and never truncates them, so the backlog is
the index of its oldest entry and one size per entry: no object per proposal on the hot path.
"""

from __future__ import annotations

from collections import deque


class Backlog:
    def __init__(self) -> None:
        self.first_index = 0  # the index of the oldest uncommitted entry (when there is one)
        self._sizes: deque[int] = deque()  # bytes of first_index, first_index + 1, ...
        self.size_bytes = 0

    def add(self, index: int, size_bytes: int) -> None:
        sizes = self._sizes
        if not sizes:
            self.first_index = index
        assert index == self.first_index + len(sizes), "a leader appends consecutive entries"
        sizes.append(size_bytes)
        self.size_bytes += size_bytes

    def committed_to(self, index: int) -> None:
        sizes = self._sizes
        while sizes and self.first_index <= index:
            self.size_bytes -= sizes.popleft()
            self.first_index += 1

    def clear(self) -> None:
        self._sizes.clear()
        self.size_bytes = 0

    def __len__(self) -> int:
        return len(self._sizes)
