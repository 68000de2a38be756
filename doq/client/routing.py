"""Where the next attempt of a request goes, and how long to wait before it: the failover half
of the doq client, without I/O so both clients share it and tests can drive it.

Writes go to the leader when the client knows it (any node would relay them, docs/api.md: this
saves the hop); reads are spread round-robin over the nodes. The client learns the leader and
the nodes it was not told about from ``/API/v1/cluster/servers``, and forgets the leader when an
attempt to it fails, so the next write finds the new one. Waits between attempts are exponential
with full jitter (so clients that lost the same leader do not come back in step), at least the
server's ``Retry-After`` and never more than ``BACKOFF_S_MAX``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

from doq.client.models import Server

BACKOFF_S_FIRST = 0.05
BACKOFF_S_MAX = 2.0
RETRY_AFTER_S_MAX = 5.0  # a Retry-After larger than this is not waited in full
ATTEMPTS_MAX_DEFAULT = 8
RETRY_S_MAX_DEFAULT = 30.0  # no request is retried past this many seconds after its start


def normalize(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


SERVERS_ENV = "DOQ_SERVERS"
SERVER_DEFAULT = "http://127.0.0.1:8001"  # the first node of ``make run`` and ``doq devcluster``


def servers_from_env(servers: str | Sequence[str] | None) -> list[str]:
    """The servers given, else ``DOQ_SERVERS`` (comma-separated URLs), else the local node."""
    if isinstance(servers, str):
        servers = [servers]
    if servers:
        return list(servers)
    env = [s for s in os.environ.get(SERVERS_ENV, "").split(",") if s.strip()]
    return env or [SERVER_DEFAULT]


def backoff_s(attempt: int, rng: random.Random, retry_after_s: float | None = None) -> float:
    """The wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
    ceiling = min(BACKOFF_S_MAX, BACKOFF_S_FIRST * (2**attempt))
    wait = rng.uniform(0, ceiling)
    if retry_after_s is not None:
        wait = max(wait, min(retry_after_s, RETRY_AFTER_S_MAX))
    return wait


class Router:
    def __init__(self, servers: list[str]) -> None:
        if not servers:
            raise ValueError("give the client at least one server URL")
        self.urls = list(dict.fromkeys(normalize(s) for s in servers))
        self.leader: str | None = None
        self.discovered = False
        self._next = 0

    def pick(self, to_leader: bool) -> str:
        if to_leader and self.leader is not None:
            return self.leader
        url = self.urls[self._next % len(self.urls)]
        self._next += 1
        return url

    def failed(self, url: str) -> None:
        """An attempt to ``url`` failed to get an answer, or got a 503: try elsewhere next."""
        if url == self.leader:
            self.leader = None
            self.discovered = False
        if self.urls[(self._next - 1) % len(self.urls)] == url:
            return  # the round-robin has moved past it already
        self._next += 1

    def learn(self, servers: list[Server]) -> None:
        self.discovered = True
        for server in servers:
            if server.http_addr is None:
                continue
            url = normalize(server.http_addr)
            if url not in self.urls:
                self.urls.append(url)
            if server.is_leader:
                self.leader = url
