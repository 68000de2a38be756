"""The named caps on what one node serves at once, declared once for the settings
(doq/config.py) and the layer that applies them (doq/api/limits.py). Pure values: importing this
module loads neither the API nor the service, so the settings stay cheap to load."""

from __future__ import annotations

import attrs

REQUESTS_IN_FLIGHT_MAX = 4_096  # HTTP requests one node handles at once
REQUESTS_PER_CONNECTION_MAX = 128  # of them on one connection (HTTP/2 streams)
LONG_POLLS_IN_FLIGHT_MAX = 4_096  # waiting dequeues (each costs a task and a little memory)
WEBSOCKET_STREAMS_MAX = 1_024  # open WebSocket streams


@attrs.frozen
class InFlightCaps:
    requests_in_flight_max: int = REQUESTS_IN_FLIGHT_MAX
    requests_per_connection_max: int = REQUESTS_PER_CONNECTION_MAX
    long_polls_in_flight_max: int = LONG_POLLS_IN_FLIGHT_MAX
    websocket_streams_max: int = WEBSOCKET_STREAMS_MAX

    def __attrs_post_init__(self) -> None:
        for field in attrs.fields(InFlightCaps):
            if getattr(self, field.name) < 1:
                raise ValueError(f"{field.name} must be at least 1")
