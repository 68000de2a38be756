"""``python -m doq.bench.http_ipc``: what one hop over ZeroMQ IPC costs, for the multi-process HTTP
front of docs/benchmarks.md ("More cores").

The design it prices: several HTTP worker processes per node parse requests and hand each write
to the node's Raft process as one small frame over an ``ipc://`` socket, and get its result back
the same way. This measures that hop alone, between two processes on this machine, with plain
blocking pyzmq (a lower bound: a Trio task waiting on the socket adds a scheduling round):

- round trip: one request of ``REQUEST_BYTES`` and its answer of ``ANSWER_BYTES``, one at a time
  (what a single connection would add to its latency): p50 and p99 in microseconds;
- pipelined: ``PIPELINE_DEPTH`` requests in flight (many connections sharing one worker's
  socket): frames per second, and the CPU seconds each side spent per frame.

``--json`` prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import tempfile
import time

import zmq

REQUEST_BYTES = 160  # an encoded single-message Enqueue command with a 100-byte content
ANSWER_BYTES = 60  # an encoded result: the message ID and a status
PIPELINE_DEPTH = 64
ROUND_TRIPS_DEFAULT = 20_000
PIPELINED_DEFAULT = 200_000
STOP = b""


def _echo(address: str, answer_bytes: int, ready: multiprocessing.Event) -> None:
    """The Raft process's side: answer every frame until an empty one; report its CPU time."""
    context = zmq.Context()
    socket = context.socket(zmq.ROUTER)
    socket.bind(address)
    ready.set()
    answer = b"a" * answer_bytes
    while True:
        peer, frame = socket.recv_multipart()
        if frame == STOP:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            socket.send_multipart([peer, str(usage.ru_utime + usage.ru_stime).encode()])
            break
        socket.send_multipart([peer, answer], copy=False)
    socket.close(linger=1000)
    context.term()


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def _round_trips(socket: zmq.Socket[bytes], count: int) -> dict[str, float]:
    request = b"r" * REQUEST_BYTES
    times_us = []
    for _ in range(count):
        started = time.perf_counter_ns()
        socket.send(request)
        socket.recv()
        times_us.append((time.perf_counter_ns() - started) / 1000)
    times_us.sort()
    return {
        "round_trip_p50_us": round(_percentile(times_us, 0.5), 1),
        "round_trip_p99_us": round(_percentile(times_us, 0.99), 1),
    }


def _pipelined(socket: zmq.Socket[bytes], count: int) -> dict[str, float]:
    request = b"r" * REQUEST_BYTES
    cpu_before = time.process_time()
    started = time.perf_counter()
    sent = received = 0
    while received < count:
        while sent < count and sent - received < PIPELINE_DEPTH:
            socket.send(request)
            sent += 1
        socket.recv()
        received += 1
    elapsed = time.perf_counter() - started
    return {
        "pipelined_frames_per_s": round(count / elapsed),
        "pipelined_client_cpu_us_per_frame": round(
            (time.process_time() - cpu_before) / count * 1e6, 2
        ),
    }


def measure(round_trips: int, pipelined: int) -> dict[str, float]:
    directory = tempfile.mkdtemp(prefix="doq-ipc-")
    address = f"ipc://{os.path.join(directory, 'raft.sock')}"
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_echo, args=(address, ANSWER_BYTES, ready))
    server.start()
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    try:
        ready.wait(10)
        socket.connect(address)
        figures: dict[str, float] = {"request_bytes": REQUEST_BYTES, "answer_bytes": ANSWER_BYTES}
        figures.update(_round_trips(socket, round_trips))
        figures.update(_pipelined(socket, pipelined))
        socket.send(STOP)
        server_cpu_s = float(socket.recv())
        figures["pipelined_server_cpu_us_per_frame"] = round(
            server_cpu_s / (round_trips + pipelined) * 1e6, 2
        )
    finally:
        socket.close(linger=0)
        context.term()
        server.join(10)
        if server.is_alive():
            server.kill()
        shutil.rmtree(directory, ignore_errors=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m doq.bench.http_ipc", description=__doc__)
    parser.add_argument("--round-trips", type=int, default=ROUND_TRIPS_DEFAULT)
    parser.add_argument("--pipelined", type=int, default=PIPELINED_DEFAULT)
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args(argv)
    figures = measure(args.round_trips, args.pipelined)
    for name, value in figures.items():
        print(f"  {name:<36} {value:>12,}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
