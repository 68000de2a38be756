"""A one-node doq served from a background thread for the client tests of a module (each test
uses its own queues)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import ThreadedNode, threaded_node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedNode]:
    with threaded_node(str(tmp_path_factory.mktemp("node"))) as served:
        yield served
