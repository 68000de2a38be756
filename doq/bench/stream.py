"""``doq bench stream``: streams and long polls on a doq node (issue 8's benchmark).

    doq bench stream --url URL [--seconds S] [--window N] [--credit N] [--wakeups N] [--json]

Three phases on a fresh queue, against the node at URL (the leader: streams are served there):

1. streaming enqueue: one WebSocket (docs/api.md "Streams") sending enqueue frames of 100-byte
   messages, ``--bundle`` (100) to a text frame, keeping ``--window`` frames unanswered, for S
   seconds: messages/s (results counted);
2. streaming consume+ack: one WebSocket granting ``--credit`` (256), acking every delivered
   message on the socket with its receipt (the acks of a delivery in one bundle) and granting
   credit again for each, until the queue
   from phase 1 is drained or S seconds pass: messages/s (acks answered ACKNOWLEDGED);
3. wake-up latency: a long-polling consumer (``GET ...?count=1&wait=5``) waits on the empty
   queue; another connection enqueues one message; the time from the enqueue's 200 to the
   consumer's answer, ``--wakeups`` times: p50 and p99 (a wake-up that answers before the
   enqueue's 200 arrives counts as 0). The consumer is given 20 ms to be waiting first.

``--json`` prints one JSON object last. The queue is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import trio

from doq.bench.http import MESSAGE_CONTENT_BYTES, RawConnection
from doq.bench.wsclient import WsClient

WINDOW_DEFAULT = 1_000
BUNDLE_DEFAULT = 100  # enqueue frames sent in one text frame (docs/api.md, "Streams": bundles)
BUNDLE_FRAMES_MAX = 1_000  # the server's limit (doq/api/stream_frames.py)
CREDIT_DEFAULT = 256
WAKEUPS_DEFAULT = 50
WAKEUP_WAIT_S = 5
WAITING_HEAD_START_S = 0.02  # for the long poll to reach the leader and wait before the enqueue
QUIET_END_S = 1.0  # a drained queue: no delivery for this long ends the consume phase
QUEUES = "/API/v1/queues"


def percentile_ms(latencies_s: list[float], fraction: float) -> float:
    if not latencies_s:
        return 0.0
    ordered = sorted(latencies_s)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 3)


async def stream_enqueue(
    host: str, port: int, queue: str, seconds: float, window: int, bundle: int
) -> float:
    """Messages/s of streaming enqueue: frames sent ``bundle`` to a text frame, at most
    ``window`` unanswered."""
    ws = await WsClient.connect(host, port, f"{QUEUES}/{queue}/stream")
    message = {"priority": 0, "content": "x" * MESSAGE_CONTENT_BYTES}
    answered = 0
    sent = 0
    room = trio.Semaphore(max(1, window // bundle))  # bundles in flight
    deadline = trio.current_time() + seconds
    started_s = time.perf_counter()

    async def send() -> None:
        nonlocal sent
        while trio.current_time() < deadline:
            await room.acquire()
            frames = [
                {"op": "enqueue", "ref": str(sent + n), "message": message} for n in range(bundle)
            ]
            sent += bundle
            await ws.send(json.dumps(frames))

    async def receive() -> None:
        nonlocal answered
        while trio.current_time() < deadline or answered < sent:
            for text in await ws.receive():
                frame = json.loads(text)
                if frame.get("op") != "results":
                    raise SystemExit(f"unexpected frame: {text[:200]}")
                for outcome in frame["results"]:
                    if outcome["result"]["status"] != "ENQUEUED":
                        raise SystemExit(f"unexpected result: {outcome}")
                    answered += 1
                    if answered % bundle == 0:
                        room.release()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        nursery.start_soon(receive)
    elapsed_s = time.perf_counter() - started_s
    await ws.aclose()
    return answered / elapsed_s


async def stream_consume(host: str, port: int, queue: str, seconds: float, credit: int) -> float:
    """Messages/s of a streaming consumer acking everything it gets on the socket."""
    ws = await WsClient.connect(host, port, f"{QUEUES}/{queue}/stream")
    await ws.send(json.dumps({"op": "credit", "credit": credit}))
    acked = 0
    started_s = time.perf_counter()
    with trio.move_on_after(seconds):
        while True:
            with trio.move_on_after(QUIET_END_S) as quiet:
                texts = await ws.receive()
            if quiet.cancelled_caught:
                break  # drained
            frames: list[dict[str, Any]] = []
            delivered = 0
            for text in texts:
                frame = json.loads(text)
                if frame["op"] == "deliver":
                    for m in frame["messages"]:
                        ref = m["id"]
                        ack = {"op": "ack", "ref": ref, "id": m["id"], "receipt": m["receipt"]}
                        frames.append(ack)
                    delivered += len(frame["messages"])
                elif frame["op"] == "results":
                    for outcome in frame["results"]:
                        acked += outcome["result"]["status"] == "ACKNOWLEDGED"
                else:
                    raise SystemExit(f"unexpected frame: {text[:200]}")
            if delivered:
                frames.append({"op": "credit", "credit": delivered})
            for start in range(0, len(frames), BUNDLE_FRAMES_MAX):  # acks in bundles
                await ws.send(json.dumps(frames[start : start + BUNDLE_FRAMES_MAX]))
    elapsed_s = time.perf_counter() - started_s - (QUIET_END_S if quiet.cancelled_caught else 0)
    await ws.aclose()
    return acked / max(elapsed_s, 1e-9)


async def wakeups(host: str, port: int, queue: str, count: int) -> list[float]:
    """Seconds from an enqueue's answer to the waiting consumer's, ``count`` times."""
    consumer = await RawConnection.open(host, port)
    producer = await RawConnection.open(host, port)
    path = f"{QUEUES}/{queue}/messages"
    body = json.dumps({"priority": 0, "content": "x" * MESSAGE_CONTENT_BYTES}).encode()
    latencies: list[float] = []
    try:
        for _ in range(count):
            latencies.append(await _one_wakeup(consumer, producer, path, body))
    finally:
        await consumer.aclose()
        await producer.aclose()
    return latencies


async def _one_wakeup(
    consumer: RawConnection, producer: RawConnection, path: str, body: bytes
) -> float:
    received: list[float] = []

    async def consume() -> None:
        status, _ = await consumer.request("GET", f"{path}?count=1&wait={WAKEUP_WAIT_S}", b"")
        received.append(time.perf_counter())
        if status != 200:
            raise SystemExit(f"long poll answered {status}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.sleep(WAITING_HEAD_START_S)
        status, _ = await producer.request("POST", path, body)
        enqueued = time.perf_counter()
        if status != 200:
            raise SystemExit(f"enqueue answered {status}")
    return max(0.0, received[0] - enqueued)


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    queue = f"bench-stream-{uuid.uuid4().hex[:8]}"
    control = await RawConnection.open(host, port)
    create = json.dumps({"name": queue, "type": "delayed", "settings": {}}).encode()
    status, answer = await control.request("POST", QUEUES, create)
    if status != 200:
        raise SystemExit(f"creating the queue failed: {status} {answer[:200]!r}")
    try:
        enqueue_per_s = await stream_enqueue(
            host, port, queue, args.seconds, args.window, args.bundle
        )
        consume_per_s = await stream_consume(host, port, queue, args.seconds, args.credit)
        await control.request("DELETE", f"{QUEUES}/{queue}", b"")
        await control.request("POST", QUEUES, create)  # empty again, for the wake-ups
        latencies = await wakeups(host, port, queue, args.wakeups)
    finally:
        await control.request("DELETE", f"{QUEUES}/{queue}", b"")
        await control.aclose()
    return {
        "stream_enqueue_messages_per_s": round(enqueue_per_s, 1),
        "stream_consume_ack_messages_per_s": round(consume_per_s, 1),
        "stream_credit": args.credit,
        "wakeup_p50_ms": percentile_ms(latencies, 0.50),
        "wakeup_p99_ms": percentile_ms(latencies, 0.99),
        "wakeups": len(latencies),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="doq bench stream", description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="the leader's HTTP URL")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each stream phase")
    p.add_argument("--window", type=int, default=WINDOW_DEFAULT)
    p.add_argument("--credit", type=int, default=CREDIT_DEFAULT)
    p.add_argument(
        "--bundle", type=int, default=BUNDLE_DEFAULT, help="enqueue frames to a text frame"
    )
    p.add_argument("--wakeups", type=int, default=WAKEUPS_DEFAULT)
    p.add_argument("--json", action="store_true", help="last line: one JSON object")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    figures = trio.run(run, args.url, args)
    print(
        f"stream enqueue {figures['stream_enqueue_messages_per_s']:,.0f} messages/s, "
        f"stream consume+ack {figures['stream_consume_ack_messages_per_s']:,.0f} messages/s "
        f"(credit {args.credit}), wake-up p50 {figures['wakeup_p50_ms']:.2f} ms "
        f"p99 {figures['wakeup_p99_ms']:.2f} ms"
    )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
