"""``doq repair``: bring back a node whose Raft storage is corrupt, the one way safe for Raft.

Why it exists: a node whose log fails its checksum refuses to start (raft_zmq/storage.py). It may
not truncate the damage away, because it may have acknowledged the damaged entry, and it may not
come back empty under its old membership, because a voter that forgot what it promised can help
elect a leader that lacks a committed entry. What is safe is to leave and join again as a fresh
member (docs/storage.md, "The repair"):

1. remove the server from the configuration, through ``--cluster.join_addr`` (any live member:
   a follower relays it to the leader);
2. move the node's directory aside, ``<data_dir>/<node_id>.corrupt-<UTC time>`` (never deleted);
3. leave an empty node directory holding only the rejoin marker: the node, started again with
   ``--cluster.join_addr``, joins as a non-voter, receives a snapshot and the log, and is promoted.
   The marker makes the launcher refuse to start it without ``--cluster.join_addr`` (an empty
   node without it would bootstrap a cluster of its own under the old name), and the node removes
   the marker once it is a voter again.

Every step can be run again: removing a server that is not a member does nothing, and a directory
that holds only the marker is not moved again.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Sequence

import httpx

from doq import config

REJOIN_MARKER = "REJOIN-REQUIRED"
LEAVE_TIMEOUT_S = 60.0  # the cluster may be electing a leader when the repair starts
LEAVE_RETRY_S = 0.5
PROBE_TIMEOUT_S = 2.0
EXIT_REPAIRED = 0
EXIT_USAGE = 2
EXIT_FAILED = 1

_MARKER_TEXT = """This node's data directory was moved aside by 'doq repair' (its storage was
corrupt) and the node was removed from the cluster. Start it with --cluster.join_addr so that it
joins as a fresh member; this file is removed once it is a voter again.
"""


class RepairError(Exception):
    """A step of the repair could not be done; nothing after it was."""


def repair_command(settings: config.Settings) -> str:
    """The command line an operator runs to repair this node (printed when its storage is
    corrupt)."""
    join = settings.cluster__join_addr or "<HTTP host:port of a live member>"
    return (
        f"doq repair --storage.data_dir {settings.storage__data_dir} "
        f"--cluster.node_id {settings.cluster__node_id} --cluster.join_addr {join}"
    )


def rejoin_refusal(settings: config.Settings) -> str | None:
    """Why this node must not start as configured (a repaired node without a join address), or
    None."""
    marker = os.path.join(settings.node_dir, REJOIN_MARKER)
    if settings.cluster__join_addr or not os.path.exists(marker):
        return None
    return (
        f"{settings.node_dir} was emptied by 'doq repair': start the node with "
        f"--cluster.join_addr (any live member's HTTP address) so that it rejoins the cluster; "
        f"without it the node would bootstrap a cluster of its own"
    )


def clear_rejoin_marker(node_dir: str) -> None:
    """The node is a voter again: a later start without --cluster.join_addr is a plain restart."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(node_dir, REJOIN_MARKER))


def main(args: Sequence[str]) -> int:
    try:
        settings = config.load(args)
    except config.ConfigError as exc:
        print(f"doq repair: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not settings.cluster__join_addr:
        print(
            "doq repair: --cluster.join_addr is required: the HTTP host:port of a live member, "
            "through which this node is removed from the cluster",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        aside = repair(settings)
    except RepairError as exc:
        print(f"doq repair: {exc}", file=sys.stderr)
        return EXIT_FAILED
    node = settings.cluster__node_id
    moved = f"its data was moved to {aside}" if aside else "its data had been moved aside before"
    print(
        f"doq repair: {node} was removed from the cluster and {moved}.\n"
        f"Start it again with the same settings and --cluster.join_addr "
        f"{settings.cluster__join_addr}: it joins as a non-voter, catches up and is promoted."
    )
    return EXIT_REPAIRED


def repair(settings: config.Settings) -> str | None:
    """Steps 1-3 of the module docstring; the directory the data was moved to (None when it had
    been moved by an earlier run)."""
    with httpx.Client(timeout=PROBE_TIMEOUT_S) as client:
        _refuse_if_running(client, settings)
        _leave(client, settings)
    return _move_aside(settings.node_dir)


def _refuse_if_running(client: httpx.Client, settings: config.Settings) -> None:
    """Moving a running node's directory away would pull its files from under it."""
    try:
        client.get(f"http://{settings.advertised_http}/livez")
    except httpx.HTTPError:
        return
    raise RepairError(
        f"{settings.cluster__node_id} answers on {settings.advertised_http}: stop it first"
    )


def _leave(client: httpx.Client, settings: config.Settings) -> None:
    url = f"http://{settings.cluster__join_addr}/API/v1/cluster/leave"
    body = {"id": settings.cluster__node_id}
    deadline = time.monotonic() + LEAVE_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        try:
            response = client.post(url, json=body, timeout=LEAVE_TIMEOUT_S)
        except httpx.HTTPError as exc:
            last = f"{url}: {exc!r}"
        else:
            if response.status_code == 200:
                return
            last = f"{url} answered {response.status_code}: {response.text[:300]}"
            if response.status_code not in (409, 503):  # not "busy, or no leader yet": give up
                break
        time.sleep(LEAVE_RETRY_S)
    raise RepairError(f"could not remove the node from the cluster ({last}); nothing was moved")


def _move_aside(node_dir: str) -> str | None:
    marker = os.path.join(node_dir, REJOIN_MARKER)
    aside = None
    if os.path.isdir(node_dir) and os.listdir(node_dir) != [REJOIN_MARKER]:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = f"{node_dir.rstrip(os.sep)}.corrupt-{stamp}"
        if os.path.exists(aside):
            raise RepairError(f"{aside} exists already; move it away and run the repair again")
        os.rename(node_dir, aside)
    os.makedirs(node_dir, exist_ok=True)
    with open(marker, "w") as f:
        f.write(_MARKER_TEXT)
        f.flush()
        os.fsync(f.fileno())
    for directory in (node_dir, os.path.dirname(os.path.abspath(node_dir))):
        _fsync_directory(directory)
    return aside


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
