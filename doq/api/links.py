"""The URL of a body's JSON schema, the value of every response's ``$schema``.

Absolute, like the Go server's (``http://host:port/schemas/Name.json``), built from the host the
client addressed. A follower relaying a request to the leader passes the client's host along in
``X-Forwarded-Host`` so the leader's answer names schemas on the node the client talked to.

Two ways to the same URL: from Quart's request (the routes) and from the ASGI scope (the fast
path of doq/api/fastpath.py, which answers before Quart builds a request). Both use Werkzeug's
``get_host``, which is what Quart's ``request.host`` calls, so they cannot disagree.
"""

from __future__ import annotations

from typing import Any

from quart import request
from werkzeug.sansio.utils import get_host

from doq.api.forwarding import FORWARDED_HOST_HEADER

SCHEMAS_PATH = "/schemas"
HOST_UNKNOWN = "localhost"  # no Host header and no server address (HTTP/1.0 without Host)

_FORWARDED_HOST_KEY = FORWARDED_HOST_HEADER.lower().encode("latin-1")


def schema_url(name: str) -> str:
    """From the current Quart request."""
    headers = request.headers
    # "in" first: a missing key makes werkzeug's Headers.get raise and catch an exception.
    if FORWARDED_HOST_HEADER in headers:
        host = headers[FORWARDED_HOST_HEADER]
    else:
        host = request.host or HOST_UNKNOWN
    return schema_url_at(schema_base(request.scheme, host), name)


def schema_base(scheme: str, host: str) -> str:
    """What every schema URL of one request starts with."""
    return f"{scheme}://{host}{SCHEMAS_PATH}/"


def schema_url_at(base: str, name: str) -> str:
    return f"{base}{name}.json"


def schema_base_of_scope(scope: dict[str, Any]) -> str:
    """``schema_base`` from an ASGI HTTP scope, as ``schema_url`` computes it from the request
    Quart would build from that scope (header values are latin-1, the first of a name wins)."""
    forwarded: bytes | None = None
    host_header: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"host":
            if host_header is None:
                host_header = value
        elif name == _FORWARDED_HOST_KEY and forwarded is None:
            forwarded = value
    scheme = scope["scheme"]
    if forwarded is not None:
        return schema_base(scheme, forwarded.decode("latin-1"))
    header = host_header.decode("latin-1") if host_header is not None else None
    host = get_host(scheme, header, scope.get("server"), None) or HOST_UNKNOWN
    return schema_base(scheme, host)
