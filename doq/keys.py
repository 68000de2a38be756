"""The cluster's CURVE key for a node: ``doq keys init`` makes one, the settings name it.

Every member of a cluster must hold the same key (raft_zmq/curve.py says what it protects). It
comes from ``--raft.curve_key_file`` (a file ``doq keys init`` wrote, mode 0600, or a Kubernetes
Secret mounted as a file) or from ``--raft.curve_key`` (the key itself, suited to an environment
variable filled from a Secret: ``DOQ_RAFT_CURVE_KEY``). Giving both is refused: one source of
truth. The key is never printed or logged; ``doq keys init`` prints only the file's path and the
public half, which identifies the key without revealing it.

doq keys init PATH      write a new cluster key to PATH (refuses to overwrite a file)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from doq.config import ConfigError, Settings
from raft_zmq.curve import ClusterKey, ClusterKeyError

USAGE = "usage: doq keys init PATH   (writes a new cluster key, mode 0600)"


def cluster_key(settings: Settings) -> ClusterKey | None:
    """The key the settings name, or None for plaintext peer links; ConfigError if bad."""
    if settings.raft__curve_key_file and settings.raft__curve_key:
        raise ConfigError("give raft.curve_key_file or raft.curve_key, not both")
    try:
        if settings.raft__curve_key_file:
            return ClusterKey.read(settings.raft__curve_key_file)
        if settings.raft__curve_key:
            return ClusterKey.from_text(settings.raft__curve_key)
    except ClusterKeyError as exc:
        raise ConfigError(f"raft.curve_key: {exc}") from None
    return None


def main(args: Sequence[str]) -> int:
    if len(args) != 2 or args[0] != "init":
        print(USAGE, file=sys.stderr)
        return 2
    path = args[1]
    key = ClusterKey.generate()
    try:
        key.write(path)
    except FileExistsError:
        print(f"doq keys: {path} exists; not overwriting a cluster key", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"doq keys: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote a new cluster key to {path} (public half {key.public.decode()})")
    return 0
