"""Probing the voters' clocks over HTTP, so that the leader can bound its command times.

Every node, leader or not (a new leader then has its estimates at once), asks each other voter
with a published HTTP address for ``GET /API/v1/cluster/time`` every ``CLOCK_PROBE_INTERVAL_S``,
notes its own clock before and after, and hands the three times to ``PeerClocks``
(doq/clockbound.py, which says what the bound guarantees). The Raft messages carry no time
(raft_zmq knows nothing of doq), so this rides the HTTP channel the nodes already serve.
"""

from __future__ import annotations

import logging
import ssl

import httpx
import msgspec
import trio

from doq.api.routes_cluster import CLOCK_PATH
from doq.clockbound import CLOCK_PROBE_RTT_MS_MAX
from doq.membership import http_address
from doq.service import QueueService

CLOCK_PROBE_INTERVAL_S = 1.0
CLOCK_PROBE_RETRY_S = 0.1  # the interval while a majority's estimate is missing: writes wait on it
CLOCK_PROBE_TIMEOUT_S = CLOCK_PROBE_RTT_MS_MAX / 1000

logger = logging.getLogger("doq.peerclock")


class _Time(msgspec.Struct):
    unix_ms: int


_DECODE = msgspec.json.Decoder(_Time).decode


async def probe_peer_clocks(
    service: QueueService,
    *,
    interval_s: float = CLOCK_PROBE_INTERVAL_S,
    tls: ssl.SSLContext | None = None,
    scheme: str = "http",
) -> None:
    """Probe every voter's clock, forever (cancel it to stop); over HTTPS, verified with
    ``tls``, when the nodes serve HTTPS (the route is open: no token needed)."""
    verify: ssl.SSLContext | bool = tls if tls is not None else True
    async with httpx.AsyncClient(timeout=CLOCK_PROBE_TIMEOUT_S, verify=verify) as client:
        while True:
            await probe_once(service, client, scheme)
            short = service.clock_window() is None
            await trio.sleep(min(interval_s, CLOCK_PROBE_RETRY_S) if short else interval_s)


async def probe_once(
    service: QueueService, client: httpx.AsyncClient, scheme: str = "http"
) -> None:
    """One probe of each other voter, concurrently; a peer that does not answer in time keeps
    its last sample, which ages out (doq/clockbound.py)."""
    core = service.raft.core
    if core is None:
        return
    peers = {}
    for voter in core.config.voters - {service.raft.node_id}:
        address = http_address(service.raft.server(voter))
        if address:
            peers[voter] = address
    service.peer_clocks.forget_others(peers)
    async with trio.open_nursery() as nursery:
        for peer, address in peers.items():
            nursery.start_soon(_probe, service, client, peer, f"{scheme}://{address}")


async def _probe(service: QueueService, client: httpx.AsyncClient, peer: str, url: str) -> None:
    sent_ms = service.local_clock_ms()
    try:
        response = await client.get(f"{url}{CLOCK_PATH}")
        received_ms = service.local_clock_ms()
        response.raise_for_status()
        peer_ms = _DECODE(response.content).unix_ms
    except (httpx.HTTPError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        logger.debug("clock probe of %s at %s failed: %s", peer, url, exc)
        return
    service.peer_clocks.record(peer, sent_ms, peer_ms, received_ms, service.monotonic_ms())
