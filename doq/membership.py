"""What doq keeps about each member in the Raft configuration's per-server metadata: its HTTP
address, so that any node can forward a request to the leader. A JSON object, so later fields can
be added without breaking older readers."""

from __future__ import annotations

import json

from raft_zmq.core.types import Server, Suffrage

METADATA_VERSION = 1


def encode_metadata(http_address: str) -> str:
    return json.dumps({"v": METADATA_VERSION, "http": http_address}, separators=(",", ":"))


def http_address(server: Server | None) -> str | None:
    """The member's HTTP address ("host:port"), or None when it never told us."""
    if server is None or not server.metadata:
        return None
    try:
        body = json.loads(server.metadata)
    except ValueError:
        return None
    address = body.get("http") if isinstance(body, dict) else None
    return address if isinstance(address, str) and address else None


def suffrage_name(server: Server) -> str:
    """hashicorp/raft's names, which the Go server reported."""
    return "Voter" if server.suffrage == Suffrage.VOTER else "Nonvoter"
