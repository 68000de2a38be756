"""The command-line client's commands that talk to a cluster (docs/client.md, "Command line"):
queues, send, recv, ack, nack, touch, get, delete, cluster, backup and restore over the API."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from typing import Any

from doq.client import Client, NewMessage, Unavailable, delay_priority
from doq.cmd.output import EXIT_EMPTY, EXIT_OK, emit, fail
from doq.cmd.progress import progress

QUEUE_COLUMNS = (
    "name",
    "type",
    "ready",
    "unacked",
    "total",
    "settings.ack_timeout",
    "settings.max_unacked",
    "settings.strategy",
)
MESSAGE_COLUMNS = ("id", "priority", "group", "content", "metadata", "receipt")
SEND_BATCH_DEFAULT = 100
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration_s(text: str) -> float:
    """``30s``, ``5m``, ``1h``, ``250ms`` or a number of seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (say 30s, 5m, 1h or 250ms)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def metadata_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"metadata is KEY=VALUE, not {text!r}")
    return key, value


def queues(client: Client, args: argparse.Namespace) -> int:
    settings = {
        "strategy": args.strategy,
        "max_unacked": args.max_unacked,
        "ack_timeout": args.ack_timeout,
    }
    if args.action == "list":
        emit(client.list_queues(), QUEUE_COLUMNS, args.output)
    elif args.action == "create":
        emit(
            [client.create_queue(args.name, args.type, **settings)],
            QUEUE_COLUMNS,
            args.output,
            single=True,
        )
    elif args.action == "info":
        emit([client.queue(args.name)], QUEUE_COLUMNS, args.output, single=True)
    elif args.action == "update":
        emit([client.update_queue(args.name, **settings)], QUEUE_COLUMNS, args.output, single=True)
    elif args.action == "delete":
        client.delete_queue(args.name)
    return EXIT_OK


def send(client: Client, args: argparse.Namespace) -> int:
    priority = args.priority if args.delay is None else delay_priority(args.delay)
    metadata = dict(args.metadata) if args.metadata else None
    if args.content != "-":
        result = client.enqueue(
            args.queue,
            args.content,
            priority=priority,
            group=args.group,
            metadata=metadata,
            id=args.id,
        )
        emit(
            [{"id": result.id, "status": "DUPLICATE" if result.duplicate else "ENQUEUED"}],
            ("id", "status"),
            args.output,
            single=True,
        )
        return EXIT_OK
    sent = duplicates = 0
    with progress("sending", None) as advance:
        for batch in _batches(sys.stdin, args.batch):
            ids = client.generate_ids(len(batch))
            messages = [
                NewMessage(line, priority, args.group, metadata, message_id)
                for line, message_id in zip(batch, ids, strict=True)
            ]
            results = _until_acknowledged(client, args.queue, messages)
            duplicates += sum(r.duplicate for r in results)
            sent += len(results)
            advance(len(results))
            if args.output == "jsonl":
                for r in results:
                    emit(
                        [{"id": r.id, "status": "DUPLICATE" if r.duplicate else "ENQUEUED"}],
                        ("id", "status"),
                        "jsonl",
                    )
    if args.output != "jsonl":
        emit(
            [{"sent": sent, "duplicates": duplicates}],
            ("sent", "duplicates"),
            args.output,
            single=True,
        )
    return EXIT_OK


def _batches(lines: Any, size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in lines:
        batch.append(line.rstrip("\n"))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _until_acknowledged(client: Client, queue: str, messages: list[NewMessage]) -> Any:
    """The batch again and again, with the same IDs, until a node acknowledges it: a repeat
    finds what an earlier attempt stored (``DUPLICATE``) and adds nothing."""
    while True:
        try:
            return client.enqueue_many(queue, messages)
        except Unavailable as exc:
            print(f"doq: {exc}; sending the batch again", file=sys.stderr)


def recv(client: Client, args: argparse.Namespace) -> int:
    messages = client.dequeue_many(args.queue, args.count, ack=args.ack, wait=args.wait)
    if not messages:
        return fail(f"no message ready in {args.queue}", EXIT_EMPTY)
    emit(messages, MESSAGE_COLUMNS, args.output, single=args.count == 1)
    return EXIT_OK


def in_flight(client: Client, args: argparse.Namespace) -> int:
    if args.command == "ack":
        client.ack(args.queue, args.id, receipt=args.receipt)
    elif args.command == "touch":
        client.touch(args.queue, args.id, receipt=args.receipt)
    else:
        client.nack(
            args.queue, args.id, priority=args.priority, delay=args.delay, receipt=args.receipt
        )
    return EXIT_OK


def get(client: Client, args: argparse.Namespace) -> int:
    emit([client.get_message(args.queue, args.id)], MESSAGE_COLUMNS[:-1], args.output, single=True)
    return EXIT_OK


def delete(client: Client, args: argparse.Namespace) -> int:
    client.delete_message(args.queue, args.id)
    return EXIT_OK


def cluster(client: Client, args: argparse.Namespace) -> int:
    if args.action == "status":
        columns = (
            "id",
            "is_leader",
            "suffrage",
            "role",
            "term",
            "applied_index",
            "lag",
            "reachable",
            "http_addr",
            "addr",
        )
        emit(client.members(), columns, args.output)
    elif args.action == "leave":
        client.leave(args.node)
    else:
        client.transfer(args.node)
    return EXIT_OK


def backup(client: Client, args: argparse.Namespace) -> int:
    with progress("backing up", None):
        taken = client.backup()
    with open(args.file, "wb") as f:
        f.write(taken.data)
    emit(
        [{"file": args.file, "bytes": len(taken.data), "version": taken.last_version}],
        ("file", "bytes", "version"),
        args.output,
        single=True,
    )
    return EXIT_OK


def restore(client: Client, args: argparse.Namespace) -> int:
    with open(args.file, "rb") as f:
        data = f.read()
    with progress("restoring", None):
        client.restore(data)
    emit(
        [{"file": args.file, "bytes": len(data), "status": "RESTORED"}],
        ("file", "bytes", "status"),
        args.output,
        single=True,
    )
    return EXIT_OK
