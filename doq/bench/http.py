"""``doq bench http``: HTTP load on a doq node, and the trivial servers that give its ceiling.

    doq bench http --url URL [--connections N] [--seconds S] [--json] [--client raw|httpx]
                   [--batch B]
    doq bench http --serve-trivial PORT [--trivial asgi|quart]

The load: create a queue, enqueue 100-byte messages one per request over N keep-alive
connections for S seconds, then dequeue them with ack=true (until the queue is empty or S seconds
pass), and print requests per second and p50/p99 latency of each phase; ``--json`` prints one
JSON object last. The queue is deleted at the end.

``--batch B`` measures the batch endpoints instead (docs/api.md "Batches"): each enqueue request
carries B messages (``POST .../messages/batch``), and each consume step is a batch dequeue
(``GET ...?count=B``) followed by a batch ack of what it got, with receipts (``POST .../ack``);
a step's latency covers both requests. Messages per second are reported beside requests.

The generator shares the machine's cores with what it measures, so each request must cost it as
little as possible. ``--client raw`` (the default) is a minimal HTTP/1.1 keep-alive client on
Trio streams: one ``send_all`` of a preformatted request, and a response parser that reads the
status line, finds Content-Length and reads that many bytes. ``--client httpx`` is the general
client, for comparison (docs/api.md has the measured difference).

``--serve-trivial PORT`` serves, on Hypercorn's Trio worker, an app that answers every request
with a small JSON body: a bare ASGI app (``--trivial asgi``, the HTTP stack's ceiling) or a
Quart-Trio app with one JSON route (``--trivial quart``, the framework's ceiling). Point the load
at it (``--url http://127.0.0.1:PORT``) to measure the ceiling with the same generator.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
import trio

MESSAGE_CONTENT_BYTES = 100
RESPONSE_HEAD_BYTES_MAX = 64 * 1024
RECEIVE_CHUNK_BYTES = 64 * 1024
REQUEST_TIMEOUT_S = 30.0
CONNECTIONS_DEFAULT = 16
SECONDS_DEFAULT = 10.0

Request = Callable[[str, str, bytes], Awaitable[tuple[int, bytes]]]
Step = Callable[[Request], Awaitable[tuple[int, int]]]  # one step: (status, messages moved)


class HttpProtocolError(Exception):
    """The server's answer is not HTTP/1.1 this client understands."""


# --- the raw client -------------------------------------------------------------------------------


class RawConnection:
    """One keep-alive HTTP/1.1 connection; requests on it are sequential."""

    def __init__(self, stream: trio.SocketStream, host: str, port: int) -> None:
        self._stream: trio.SocketStream | None = stream
        self._host, self._port = host, port
        self._buffer = bytearray()

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        return cls(await trio.open_tcp_stream(host, port), host, port)

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self._stream is None:
            # The server ended the last exchange with "Connection: close" (Hypercorn does after
            # keep_alive_max_requests): open a new connection.
            self._stream = await trio.open_tcp_stream(self._host, self._port)
            self._buffer.clear()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        await self._stream.send_all(head.encode("latin-1") + body)
        return await self._read_response()

    async def _read_response(self) -> tuple[int, bytes]:
        buffer = self._buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > RESPONSE_HEAD_BYTES_MAX:
                raise HttpProtocolError("response head too large")
            await self._receive_more()
        head = bytes(buffer[:end]).decode("latin-1")
        del buffer[: end + 4]
        status, length, close = _parse_head(head)
        while len(buffer) < length:
            await self._receive_more()
        body = bytes(buffer[:length])
        del buffer[:length]
        if close:
            await self.aclose()
        return status, body

    async def _receive_more(self) -> None:
        assert self._stream is not None
        data = await self._stream.receive_some(RECEIVE_CHUNK_BYTES)
        if not data:
            raise HttpProtocolError("connection closed by the server")
        self._buffer += data


def _parse_head(head: str) -> tuple[int, int, bool]:
    """(status, Content-Length, whether the server closes the connection) of a response head;
    no Content-Length means no body (204, 304)."""
    lines = head.split("\r\n")
    if not lines[0].startswith("HTTP/1."):
        raise HttpProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    status = int(lines[0][9:12])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        lowered = name.strip().lower()
        if lowered == "content-length":
            length = int(value.strip())
        elif lowered == "connection":
            close = value.strip().lower() == "close"
        elif lowered == "transfer-encoding":
            raise HttpProtocolError("chunked responses are not supported by the raw client")
    return status, length, close


# --- the load ------------------------------------------------------------------------------------


@attrs.define
class Phase:
    name: str
    latencies_s: list[float] = attrs.field(factory=list)
    errors: int = 0
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    messages: int = 0

    @property
    def rps(self) -> float:
        return len(self.latencies_s) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies_s:
            return 0.0
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


@attrs.frozen
class LoadSpec:
    host: str
    port: int
    connections: int
    seconds: float
    client: str
    queue: str
    batch: int = 0  # messages per request; 0: the single-message endpoints


async def _with_clients(spec: LoadSpec, work: Callable[[list[Request]], Awaitable[None]]) -> None:
    """Run ``work`` with one request function per connection."""
    if spec.client == "raw":
        connections = [
            await RawConnection.open(spec.host, spec.port) for _ in range(spec.connections)
        ]
        try:
            await work([connection.request for connection in connections])
        finally:
            for connection in connections:
                await connection.aclose()
        return
    import httpx

    limits = httpx.Limits(
        max_connections=spec.connections, max_keepalive_connections=spec.connections
    )
    base = f"http://{spec.host}:{spec.port}"
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=REQUEST_TIMEOUT_S) as http:

        async def request(method: str, path: str, body: bytes) -> tuple[int, bytes]:
            headers = {"Content-Type": "application/json"}
            answer = await http.request(method, path, content=body or None, headers=headers)
            return answer.status_code, answer.content

        await work([request] * spec.connections)


async def _run_phase(
    phase: Phase,
    requests: list[Request],
    one: Callable[[Request], Awaitable[tuple[int, int]]],
    seconds: float,
) -> None:
    """Each connection repeats ``one`` (returning its status and how many messages it moved)
    until ``seconds`` pass or it answers 400 (the queue is empty)."""
    deadline = trio.current_time() + seconds
    started_s, cpu_started_s = time.perf_counter(), time.process_time()

    async def worker(request: Request) -> None:
        while trio.current_time() < deadline:
            sent_s = time.perf_counter()
            status, moved = await one(request)
            if 200 <= status < 300:
                phase.latencies_s.append(time.perf_counter() - sent_s)
                phase.messages += moved
            elif status == 400:
                return
            else:
                phase.errors += 1

    async with trio.open_nursery() as nursery:
        for request in requests:
            nursery.start_soon(worker, request)
    phase.elapsed_s = time.perf_counter() - started_s
    phase.client_cpu_s = time.process_time() - cpu_started_s


def _single_steps(messages_path: str) -> tuple[Step, Step]:
    message = json.dumps({"priority": 0, "content": "x" * MESSAGE_CONTENT_BYTES}).encode()

    async def enqueue_one(request: Request) -> tuple[int, int]:
        return (await request("POST", messages_path, message))[0], 1

    async def dequeue_one(request: Request) -> tuple[int, int]:
        return (await request("GET", f"{messages_path}?ack=true", b""))[0], 1

    return enqueue_one, dequeue_one


def _batch_steps(messages_path: str, batch: int) -> tuple[Step, Step]:
    """A batch enqueue of ``batch`` messages; a batch dequeue plus the batch ack of what it got
    (400 when it got nothing, which ends the worker as an empty queue does)."""
    one = {"priority": 0, "content": "x" * MESSAGE_CONTENT_BYTES}
    enqueue_body = json.dumps({"messages": [one] * batch}).encode()

    async def enqueue_batch(request: Request) -> tuple[int, int]:
        return (await request("POST", f"{messages_path}/batch", enqueue_body))[0], batch

    async def consume_batch(request: Request) -> tuple[int, int]:
        status, body = await request("GET", f"{messages_path}?count={batch}", b"")
        if status != 200:
            return status, 0
        got = json.loads(body)["messages"]
        if not got:
            return 400, 0
        ids = [{"id": m["id"], "receipt": m["receipt"]} for m in got]
        status, _ = await request("POST", f"{messages_path}/ack", json.dumps({"ids": ids}).encode())
        return status, len(got)

    return enqueue_batch, consume_batch


async def run_load(spec: LoadSpec) -> tuple[Phase, Phase]:
    enqueue, dequeue = Phase("enqueue"), Phase("dequeue")
    queues = "/API/v1/queues"
    messages_path = f"{queues}/{spec.queue}/messages"
    if spec.batch:
        enqueue_one, dequeue_one = _batch_steps(messages_path, spec.batch)
    else:
        enqueue_one, dequeue_one = _single_steps(messages_path)

    async def work(requests: list[Request]) -> None:
        create = json.dumps({"name": spec.queue, "type": "delayed", "settings": {}}).encode()
        status, body = await requests[0]("POST", queues, create)
        if status != 200:
            raise SystemExit(f"creating the queue failed: {status} {body[:200]!r}")
        try:
            await _run_phase(enqueue, requests, enqueue_one, spec.seconds)
            await _run_phase(dequeue, requests, dequeue_one, spec.seconds)
        finally:
            await requests[0]("DELETE", f"{queues}/{spec.queue}", b"")

    await _with_clients(spec, work)
    return enqueue, dequeue


def report(spec: LoadSpec, enqueue: Phase, dequeue: Phase) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "connections": spec.connections,
        "client": spec.client,
        "batch": spec.batch,
    }
    for phase in (enqueue, dequeue):
        figures[f"{phase.name}_rps"] = round(phase.rps, 1)
        figures[f"{phase.name}_messages_per_s"] = round(phase.messages_per_s, 1)
        figures[f"{phase.name}_p50_ms"] = round(phase.percentile_ms(0.50), 3)
        figures[f"{phase.name}_p99_ms"] = round(phase.percentile_ms(0.99), 3)
        figures[f"{phase.name}_requests"] = len(phase.latencies_s)
        figures[f"{phase.name}_errors"] = phase.errors
        cpu_per_request_us = (
            phase.client_cpu_s / len(phase.latencies_s) * 1e6 if phase.latencies_s else 0.0
        )
        figures[f"{phase.name}_client_cpu_us_per_request"] = round(cpu_per_request_us, 1)
    return figures


# --- the trivial servers -------------------------------------------------------------------------

_TRIVIAL_BODY = b'{"status":"OK"}'


async def trivial_asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every request with a small JSON body: what the HTTP stack costs alone."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"15")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _TRIVIAL_BODY})


def trivial_quart_app() -> Any:
    """One Quart-Trio JSON route for every path: what the framework costs on top."""
    from quart import request
    from quart_trio import QuartTrio

    app = QuartTrio("trivial")

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "DELETE", "PUT"])
    @app.route("/<path:path>", methods=["GET", "POST", "DELETE", "PUT"])
    async def anything(path: str) -> dict[str, str]:
        await request.get_data()
        return {"status": "OK"}

    return app


async def serve_trivial(port: int, kind: str) -> None:
    import hypercorn.trio
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.graceful_timeout = 1
    app = trivial_asgi_app if kind == "asgi" else trivial_quart_app()

    async def until_signalled() -> None:
        # Its own handlers: a process started in the background may inherit SIGINT ignored.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                return

    print(f"serving a trivial {kind} app on http://127.0.0.1:{port} (Ctrl-C stops)", flush=True)
    await hypercorn.trio.serve(app, config, shutdown_trigger=until_signalled)  # type: ignore[arg-type]


# --- command line --------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doq bench http", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a doq node, e.g. http://127.0.0.1:8001")
    parser.add_argument("--connections", type=int, default=CONNECTIONS_DEFAULT)
    parser.add_argument("--seconds", type=float, default=SECONDS_DEFAULT, help="per phase")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--queue", help="queue name (default: a fresh bench-<random> queue)")
    parser.add_argument(
        "--batch", type=int, default=0, help="messages per request: the batch endpoints (0: off)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--serve-trivial", type=int, metavar="PORT", help="serve a trivial app")
    parser.add_argument("--trivial", choices=("asgi", "quart"), default="asgi")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.serve_trivial is not None:
        trio.run(serve_trivial, args.serve_trivial, args.trivial)
        return 0
    if not args.url or args.connections < 1 or args.seconds <= 0 or not 0 <= args.batch <= 1000:
        _parser().print_usage(sys.stderr)
        print(
            "--url is required; --connections >= 1, --seconds > 0, --batch in 0..1000",
            file=sys.stderr,
        )
        return 2
    parts = urlsplit(args.url)
    if parts.scheme != "http" or not parts.hostname:
        print(f"not an http:// URL: {args.url}", file=sys.stderr)
        return 2
    spec = LoadSpec(
        host=parts.hostname,
        port=parts.port or 80,
        connections=args.connections,
        seconds=args.seconds,
        client=args.client,
        queue=args.queue or f"bench-{uuid.uuid4().hex[:12]}",
        batch=args.batch,
    )
    enqueue, dequeue = trio.run(run_load, spec)
    figures = report(spec, enqueue, dequeue)
    for phase in (enqueue, dequeue):
        print(
            f"{phase.name}: {phase.rps:,.0f} requests/s ({phase.messages_per_s:,.0f} messages/s)"
            f" over {phase.elapsed_s:.1f} s, "
            f"p50 {phase.percentile_ms(0.5):.2f} ms, p99 {phase.percentile_ms(0.99):.2f} ms, "
            f"{len(phase.latencies_s)} ok, {phase.errors} errors "
            f"({spec.connections} connections, {spec.client} client)"
        )
    if args.json:
        print(json.dumps(figures))
    return 0
