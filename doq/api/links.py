"""The URL of a body's JSON schema, the value of every response's ``$schema``.

Absolute, like the Go server's (``http://host:port/schemas/Name.json``), built from the host the
client addressed. A follower relaying a request to the leader passes the client's host along in
``X-Forwarded-Host`` so the leader's answer names schemas on the node the client talked to.
"""

from __future__ import annotations

from quart import request

FORWARDED_HOST_HEADER = "X-Forwarded-Host"
SCHEMAS_PATH = "/schemas"


def schema_url(name: str) -> str:
    headers = request.headers
    # "in" first: a missing key makes werkzeug's Headers.get raise and catch an exception.
    if FORWARDED_HOST_HEADER in headers:
        host = headers[FORWARDED_HOST_HEADER]
    else:
        host = request.host or "localhost"
    return f"{request.scheme}://{host}{SCHEMAS_PATH}/{name}.json"
