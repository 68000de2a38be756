"""``doq queues|send|recv|ack|nack|touch|get|delete|cluster|backup|restore``: the command-line
client's arguments, and the one place that turns a typed client error into a message and an
exit code (doq/cmd/output.py). The node launcher (``doq --flag ...``) never takes a positional
word, so these names cannot collide with how a node is started."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from doq.client import Client, DoqError
from doq.client.routing import SERVERS_ENV
from doq.cmd import online
from doq.cmd.output import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REFUSED,
    OUTPUTS,
    emit,
    exit_code_for,
    fail,
)

EXAMPLES = f"""examples:
  doq queues create emails --type delayed --ack-timeout 60
  doq send emails 'hello' --priority 5 --metadata to=a@example.com
  doq send emails 'later' --delay 30s
  seq 1000 | doq send emails -          one message a line, in batches, retried idempotently
  doq recv emails --count 10 --wait 5 -o jsonl
  doq ack emails 383465512212230144 --receipt 383465512212230144.1
  doq cluster status --server http://127.0.0.1:8002
  doq get queues --data-dir data/node-1          offline, on a stopped node
  doq get messages -q emails -n 20 --data-dir data/node-1
  doq restore -f doq-backup.db --data-dir data/node-1    offline; without --data-dir: the cluster

servers: --server URL (repeatable) or {SERVERS_ENV}=URL,URL; default http://127.0.0.1:8001.
exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 queue empty, 5 conflict or stale receipt,
  6 invalid value, 7 no node or leader answered, 8 the leader's disk is full, 9 a node is running
  on the data directory.
"""


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "-s", "--server", action="append", help=f"a node's URL (repeatable; {SERVERS_ENV})"
    )
    p.add_argument("-o", "--output", choices=OUTPUTS, default="table")
    return p


def _settings_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strategy", choices=["round_robin", "weighted"])
    p.add_argument("--max-unacked", type=int)
    p.add_argument("--ack-timeout", type=int, help="seconds")


def parser() -> argparse.ArgumentParser:
    common = _common()
    top = argparse.ArgumentParser(
        prog="doq",
        description="doq's command-line client (a node starts with doq --flags ...)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True)
    q = sub.add_parser("queues", parents=[common], help="list, create, info, update, delete")
    q.add_argument("action", choices=["list", "create", "info", "update", "delete"])
    q.add_argument("name", nargs="?")
    q.add_argument("--type", choices=["delayed", "fair"], default="delayed")
    _settings_flags(q)
    s = sub.add_parser("send", parents=[common], help="enqueue CONTENT, or - for stdin lines")
    s.add_argument("queue")
    s.add_argument("content")
    s.add_argument("--priority", type=int, default=0)
    s.add_argument("--group", default="default")
    s.add_argument("--delay", type=online.duration_s, help="30s, 5m, 1h: on a delayed queue")
    s.add_argument("--id", type=int, help="the message's ID (a repeat with it adds nothing)")
    s.add_argument("--metadata", type=online.metadata_pair, action="append", help="KEY=VALUE")
    s.add_argument(
        "--batch", type=int, default=online.SEND_BATCH_DEFAULT, help="stdin: per request"
    )
    r = sub.add_parser("recv", parents=[common], help="dequeue messages")
    r.add_argument("queue")
    r.add_argument("--count", type=int, default=1)
    r.add_argument("--wait", type=online.duration_s, default=0.0, help="long poll, up to 20s")
    r.add_argument("--ack", action="store_true", help="take them for good (no ack needed)")
    for verb in ("ack", "nack", "touch"):
        v = sub.add_parser(verb, parents=[common], help=f"{verb} an in-flight message")
        v.add_argument("queue")
        v.add_argument("id", type=int)
        v.add_argument("--receipt", help="the delivery's receipt, from recv")
        if verb == "nack":
            v.add_argument("--priority", type=int, default=0, help="0 keeps its own")
            v.add_argument("--delay", type=online.duration_s, help="on a delayed queue")
    g = sub.add_parser("get", parents=[common], help="QUEUE ID; or queues / messages (offline too)")
    g.add_argument("what", help="a queue name, or 'queues' or 'messages'")
    g.add_argument("ids", nargs="*", type=int)
    g.add_argument("-q", "--queue", help="get messages: the queue")
    g.add_argument("-n", type=int, default=10, help="get messages: how many")
    g.add_argument("--data-dir", help="offline: a stopped node's data directory")
    g.add_argument("--node-id", help="offline: which node's data, if the directory has several")
    d = sub.add_parser("delete", parents=[common], help="delete a message")
    d.add_argument("queue")
    d.add_argument("id", type=int)
    c = sub.add_parser("cluster", parents=[common], help="status, leave NODE, transfer NODE")
    c.add_argument("action", choices=["status", "leave", "transfer"])
    c.add_argument("node", nargs="?")
    b = sub.add_parser("backup", parents=[common], help="a consistent snapshot into FILE")
    b.add_argument("-f", "--file", required=True)
    rs = sub.add_parser("restore", parents=[common], help="the whole cluster (or offline a node)")
    rs.add_argument("-f", "--file", required=True)
    rs.add_argument("--data-dir", help="offline: a stopped node's data directory")
    rs.add_argument("--node-id")
    return top


def main(argv: Sequence[str]) -> int:
    top = parser()
    args, extra = top.parse_known_args(list(argv))
    # argparse takes all positionals of a command at once: IDs after an option (``get messages
    # -q Q 1 2``) come back as extras.
    if args.command == "get" and extra and all(e.isdigit() for e in extra):
        args.ids += [int(e) for e in extra]
    elif extra:
        top.error(f"unrecognized arguments: {' '.join(extra)}")
    problem = _check(args)
    if problem is not None:
        return fail(problem, 2)
    if getattr(args, "data_dir", None):
        return _offline(args)
    try:
        with Client(args.server) as client:
            return _online(client, args)
    except DoqError as exc:
        return fail(str(exc), exit_code_for(exc))
    except OSError as exc:  # a file to send or restore
        return fail(str(exc), EXIT_ERROR)


def _check(args: argparse.Namespace) -> str | None:
    if args.command == "queues" and args.action != "list" and not args.name:
        return f"doq queues {args.action} needs a queue NAME"
    if args.command == "cluster" and args.action != "status" and not args.node:
        return f"doq cluster {args.action} needs a NODE id"
    if args.command == "get" and args.what == "messages" and not args.queue:
        return "doq get messages needs -q QUEUE"
    if args.command == "get" and args.what not in ("queues", "messages") and len(args.ids) != 1:
        if args.data_dir:
            return "offline, doq get takes 'queues' or 'messages'"
        return "doq get QUEUE ID takes one message ID"
    if args.command == "send" and args.delay is not None and args.priority:
        return "--delay sets the priority (the time it is due at): give one or the other"
    return None


def _online(client: Client, args: argparse.Namespace) -> int:
    command = args.command
    if command == "get" and args.what == "queues":
        online.emit(client.list_queues(), online.QUEUE_COLUMNS, args.output)
        return EXIT_OK
    if command == "get" and args.what == "messages":
        if args.ids:
            found = [client.get_message(args.queue, i) for i in args.ids]
        else:
            found = client.peek(args.queue, args.n)
        online.emit(found, online.MESSAGE_COLUMNS[:-1], args.output)
        return EXIT_OK
    if command == "get":
        args.queue, args.id = args.what, args.ids[0]
    handlers = {
        "queues": online.queues,
        "send": online.send,
        "recv": online.recv,
        "ack": online.in_flight,
        "nack": online.in_flight,
        "touch": online.in_flight,
        "get": online.get,
        "delete": online.delete,
        "cluster": online.cluster,
        "backup": online.backup,
        "restore": online.restore,
    }
    return handlers[command](client, args)


def _offline(args: argparse.Namespace) -> int:
    from doq.cmd import offline

    try:
        path = offline.node_dir(args.data_dir, args.node_id)
        if args.command == "restore":
            index, _term = offline.restore(path, args.file)
            emit(
                [{"data_dir": path, "file": args.file, "index": index}],
                ("data_dir", "file", "index"),
                args.output,
                single=True,
            )
        elif args.what == "queues":
            emit(offline.list_queues(path), online.QUEUE_COLUMNS, args.output)
        else:
            rows = offline.list_messages(path, args.queue, args.n, args.ids)
            emit(rows, ("id", "priority", "group", "content", "metadata", "in_flight"), args.output)
    except offline.NodeRunning as exc:
        return fail(str(exc), EXIT_REFUSED)
    except offline.OfflineError as exc:
        return fail(str(exc), EXIT_NOT_FOUND)
    except OSError as exc:
        return fail(str(exc), EXIT_ERROR)
    return EXIT_OK
