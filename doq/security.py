"""What the settings say about security, as the objects the node needs (docs/operations.md,
"Security"): the API's bearer tokens, the TLS contexts of the HTTP listener's peers, and the
in-flight caps. ``check`` builds them all once at start-up, so that a bad tokens file, a missing
certificate or a bad cluster key stops the launcher with a message (exit 2) and not a node that
serves half-configured.
"""

from __future__ import annotations

import os
import ssl

from doq.api.auth import TokenError, TokenTable, read_tokens, tokens_from_text
from doq.caps import InFlightCaps
from doq.config import ConfigError, Settings
from doq.keys import cluster_key


def api_tokens(settings: Settings) -> TokenTable | None:
    """The token table, or None: no token configured, the API is open."""
    if settings.http__tokens_file and settings.http__tokens:
        raise ConfigError("give http.tokens_file or http.tokens, not both")
    try:
        if settings.http__tokens_file:
            return read_tokens(settings.http__tokens_file)
        if settings.http__tokens:
            return tokens_from_text(settings.http__tokens, "http.tokens")
    except TokenError as exc:
        raise ConfigError(str(exc)) from None
    return None


def tls_enabled(settings: Settings) -> bool:
    if bool(settings.http__certfile) != bool(settings.http__keyfile):
        raise ConfigError("http.certfile and http.keyfile go together")
    return bool(settings.http__certfile)


def peer_tls(settings: Settings) -> ssl.SSLContext | None:
    """The context this node verifies other nodes' HTTPS with (relays, joins, clock probes);
    None when the listener is plain HTTP (then so are the other members')."""
    if not tls_enabled(settings):
        return None
    for key, path in (
        ("http.certfile", settings.http__certfile),
        ("http.keyfile", settings.http__keyfile),
        ("http.ca_file", settings.http__ca_file),
    ):
        if path and not os.path.isfile(path):
            raise ConfigError(f"{key}: no such file {path}")
    try:
        return ssl.create_default_context(cafile=settings.http__ca_file or None)
    except ssl.SSLError as exc:
        raise ConfigError(f"http.ca_file: {exc}") from None


def http_scheme(settings: Settings) -> str:
    return "https" if tls_enabled(settings) else "http"


def caps(settings: Settings) -> InFlightCaps:
    return InFlightCaps(
        requests_in_flight_max=settings.http__requests_in_flight_max,
        requests_per_connection_max=settings.http__requests_per_connection_max,
        long_polls_in_flight_max=settings.http__long_polls_in_flight_max,
        websocket_streams_max=settings.http__websocket_streams_max,
    )


def check(settings: Settings) -> None:
    """Raises ConfigError for any security setting the node could not start with."""
    cluster_key(settings)
    api_tokens(settings)
    peer_tls(settings)
