"""What the HTTP layer is told by the node launcher: one frozen value, so that every knob of the
API has a name, a unit and a default in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from doq.caps import InFlightCaps

if TYPE_CHECKING:
    import ssl

    from doq.api.auth import TokenTable

MAX_BODY_BYTES_DEFAULT = 4 * 1024 * 1024  # API.md: request bodies above 4 MiB answer 413
REQUEST_TIMEOUT_S_DEFAULT = 10.0  # a request is answered (or refused with 503) within this
STATS_WINDOW_S_DEFAULT = 10  # --queue.stats.window_side: the *_rps averaging window
FORWARD_HOPS_MAX = 3  # follower -> leader relays one request may take (leader changes mid-way)


@attrs.frozen
class ApiSettings:
    """``node_id`` names this node in logs and problem details; ``forwarding`` off makes a
    follower answer 503 (with the leader's address) instead of relaying to the leader;
    ``fast_path`` off sends enqueue and dequeue through the Quart routes too (the answers are the
    same either way, doq/api/fastpath.py)."""

    node_id: str
    max_body_bytes: int = MAX_BODY_BYTES_DEFAULT
    request_timeout_s: float = REQUEST_TIMEOUT_S_DEFAULT
    stats_window_s: int = STATS_WINDOW_S_DEFAULT
    prometheus_enabled: bool = True
    forwarding: bool = True
    forward_hops_max: int = FORWARD_HOPS_MAX
    fast_path: bool = True
    # Security (docs/operations.md, "Security"): bearer tokens (None: the API is open), the
    # in-flight caps, and the TLS context for relaying to the leader (None: plain HTTP).
    tokens: TokenTable | None = None
    caps: InFlightCaps = attrs.field(factory=InFlightCaps)
    peer_tls: ssl.SSLContext | None = None
    title: str = "doq: a distributed priority queue"
    version: str = "0.1.0"

    def __attrs_post_init__(self) -> None:
        if self.max_body_bytes <= 0:
            raise ValueError(f"max_body_bytes must be positive, got {self.max_body_bytes}")
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be positive, got {self.request_timeout_s}")
        if self.stats_window_s < 1:
            raise ValueError(f"stats_window_s must be at least 1, got {self.stats_window_s}")
        if self.forward_hops_max < 1:
            raise ValueError(f"forward_hops_max must be at least 1, got {self.forward_hops_max}")
