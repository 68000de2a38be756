"""``fast_path``: a module that uses it (``pytestmark = pytest.mark.usefixtures("fast_path")``)
runs each test twice, with enqueue and dequeue answered by the fast path (doq/api/fastpath.py) and
by the Quart routes alone: the answers must not depend on which one served them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import Defaults


@pytest.fixture(params=[True, False], ids=["fast-path", "routes-only"])
def fast_path(request: pytest.FixtureRequest) -> Iterator[bool]:
    saved = dict(Defaults.settings)
    Defaults.settings["fast_path"] = request.param
    try:
        yield request.param
    finally:
        Defaults.settings.clear()
        Defaults.settings.update(saved)
