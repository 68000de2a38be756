"""Encoding of cluster configurations inside CONFIG log entries and snapshot metadata.

Configuration entries are rare and small, so a readable JSON form is used: it survives upgrades of
the wire codec, and an operator can read it straight out of the log.
"""

from __future__ import annotations

import json

from raft_zmq.core.types import ClusterConfig, Server, Suffrage

CONFIG_FORMAT_VERSION = 1


class ConfigDecodeError(ValueError):
    """The bytes are not a configuration this version understands."""


def encode_config(config: ClusterConfig) -> bytes:
    body = {
        "v": CONFIG_FORMAT_VERSION,
        "servers": [[s.id, s.address, int(s.suffrage), s.metadata] for s in config.servers],
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def decode_config(data: bytes) -> ClusterConfig:
    try:
        body = json.loads(data)
        if body.get("v") != CONFIG_FORMAT_VERSION:
            raise ConfigDecodeError(f"unknown configuration format {body.get('v')!r}")
        servers = []
        for node_id, address, suffrage, *rest in body["servers"]:
            metadata = rest[0] if rest else ""
            if not isinstance(node_id, str) or not isinstance(address, str) or not node_id:
                raise ConfigDecodeError("server id and address must be non-empty strings")
            if not isinstance(metadata, str) or len(rest) > 1:
                raise ConfigDecodeError("server metadata must be one string")
            servers.append(Server(node_id, address, Suffrage(suffrage), metadata))
    except ConfigDecodeError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigDecodeError(f"malformed configuration: {exc}") from exc
    if len({s.id for s in servers}) != len(servers):
        raise ConfigDecodeError("duplicate server id in configuration")
    return ClusterConfig(tuple(servers))
