"""``python -m doq.bench.http_trace``: where one single-message enqueue's time goes, stage by stage.

    python -m doq.bench.http_trace [--seconds 5] [--json]

Starts a 3-node cluster on 127.0.0.1 (as ``doq devcluster`` does, on free ports) whose nodes run
with timing probes, loads its leader with ``doq bench http --connections 1`` (one request at a
time, so every event between a request's arrival and its answer belongs to it), stops the
cluster, and prints the p50 of each stage of the leader's path (docs/benchmarks.md,
"Single-message latency"):

1. the request reaches the fast path until it is proposed (body, route, validation, stamp);
2. the proposal until the core loop's round that carries it starts;
3. that round hands its AppendEntries to ZeroMQ; 4. the leader's log fsync;
5. the leader's write is durable until the follower's acknowledgement was received;
6. the acknowledgement until the round that commits; 7. until the apply starts;
8. the apply (LMDB transaction, and its fdatasync when applies are synced);
9. the apply's end until the proposer's waiter is set; 10. until the request task runs again;
11. until the response starts; 12. the response's writes.

Debug only: the probes are functions wrapped in the node processes this tool starts (``--node``
is how it starts them), nothing of the kind runs in a node started otherwise. Each probe costs
about a microsecond; the figures are of the traced cluster, compare them with each other.
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

TRACE_DIR_ENV = "DOQ_TRACE_DIR"
EVENTS_KEPT_MAX = 400_000

Event = tuple[int, str, int]

_events: list[Event] = []


def _event(name: str, n: int = 0) -> None:
    _events.append((time.perf_counter_ns(), name, n))


def _wrap_async(owner: Any, attribute: str, before: str, after: str | None, n: Any = None) -> None:
    original = getattr(owner, attribute)

    async def wrapped(self: Any, *args: Any) -> Any:
        _event(before, n(*args) if n else 0)
        try:
            return await original(self, *args)
        finally:
            if after:
                _event(after)

    setattr(owner, attribute, wrapped)


def _wrap_sync(owner: Any, attribute: str, name: str, n: Callable[..., int]) -> None:
    original = getattr(owner, attribute)

    def wrapped(self: Any, *args: Any) -> Any:
        _event(name, n(*args))
        return original(self, *args)

    setattr(owner, attribute, wrapped)


def install_probes() -> None:
    """Wrap the functions of the leader's path (see the module doc)."""
    from doq.api import fastpath
    from raft_zmq import node
    from raft_zmq.driver import driver

    original_call = fastpath.FastPath.__call__

    async def call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or fastpath.route_of(scope) is None:
            await original_call(self, scope, receive, send)
            return
        _event("http_in")

        async def traced_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                _event("resp_start")
            await send(message)
            if message["type"] == "http.response.body":
                _event("resp_sent")

        await original_call(self, scope, receive, traced_send)

    fastpath.FastPath.__call__ = call  # type: ignore[method-assign]
    _wrap_async(node.RaftNode, "propose", "propose", "propose_returned")
    _wrap_async(
        node.RaftNode,
        "_handle_round",
        "round",
        "round_end",
        lambda rnd: len(rnd.ready.entries) * 1000 + len(rnd.ready.committed),
    )
    _wrap_async(node.RaftNode, "_persist", "persist", "persist_end", lambda rd: len(rd.entries))
    _wrap_async(node.RaftNode, "_apply_now", "apply", "apply_end")
    _wrap_sync(node._Waiter, "set", "waiter_set", lambda _value: 0)
    _wrap_sync(driver.Driver, "receive", "recv", lambda _messages: 0)


def _dump() -> None:
    directory = os.environ.get(TRACE_DIR_ENV)
    if directory:
        with open(os.path.join(directory, f"{os.getpid()}.json"), "w") as f:
            json.dump(_events[-EVENTS_KEPT_MAX:], f)


def run_node(argv: list[str]) -> int:
    """A node process with probes: ``doq`` with ``argv``, events written at exit."""
    install_probes()
    atexit.register(_dump)
    from doq.cli import main

    sys.argv = ["doq", *argv]
    return main()


STAGES = (
    "1 request in -> proposed",
    "2 proposed -> round starts",
    "3 round starts -> AppendEntries sent",
    "4 leader log fsync",
    "5 leader durable -> follower ack received",
    "6 ack received -> commit round",
    "7 commit round -> apply starts",
    "8 apply",
    "9 apply done -> waiter set",
    "10 waiter set -> request task runs",
    "11 task runs -> response starts",
    "12 response written",
)


def _first(events: list[Event], name: str, after: int, test: Callable[[int], bool]) -> int:
    return next(t for t, nm, n in events if nm == name and t >= after and test(n))


def _stages(request: list[Event]) -> list[float] | None:
    """The 12 stage durations (ms) of one request's events, None if it did not commit here."""
    anything: Callable[[int], bool] = lambda _n: True
    try:
        t0 = request[0][0]
        proposed = _first(request, "propose", t0, anything)
        carried = _first(request, "round", proposed, lambda n: n // 1000 > 0)
        persisting = _first(request, "persist", carried, anything)
        durable = _first(request, "persist_end", persisting, anything)
        commits = _first(request, "round", durable, lambda n: n % 1000 > 0)
        acked = max([t for t, nm, _ in request if nm == "recv" and t <= commits] or [commits])
        applying = _first(request, "apply", commits, anything)
        applied = _first(request, "apply_end", applying, anything)
        woken = _first(request, "waiter_set", applied, anything)
        runs = _first(request, "propose_returned", woken, anything)
        starts = _first(request, "resp_start", runs, anything)
        sent = _first(request, "resp_sent", starts, anything)
    except StopIteration:
        return None
    marks = [t0, proposed, carried, persisting, durable, max(acked, durable), commits, applying]
    marks += [applied]
    marks += [woken, runs, starts, sent]
    return [(b - a) / 1e6 for a, b in itertools.pairwise(marks)]


def breakdown(directory: str) -> dict[str, Any]:
    """The p50 of each stage over the leader's requests, from the files the nodes wrote."""
    traces = []
    for name in os.listdir(directory):
        if name.endswith(".json") and name[:-5].isdigit():
            with open(os.path.join(directory, name)) as f:
                traces.append([tuple(e) for e in json.load(f)])
    leader = max(traces, key=lambda events: sum(1 for e in events if e[1] == "http_in"))
    requests, current = [], None
    for event in leader:
        if event[1] == "http_in":
            current = [event]
        elif current is not None:
            current.append(event)
            if event[1] == "resp_sent":
                requests.append(current)
                current = None
    rows = [s for s in map(_stages, requests) if s is not None]
    figures: dict[str, Any] = {"requests": len(rows)}
    for index, stage in enumerate(STAGES):
        figures[stage] = round(statistics.median(row[index] for row in rows), 3)
    figures["in the server, p50"] = round(statistics.median(sum(row) for row in rows), 3)
    return figures


def _cluster_and_load(directory: str, seconds: float) -> dict[str, Any]:
    from doq.bench.compare import _free_port
    from doq.devcluster import HOST, wait_for_voters

    data = os.path.join(directory, "data")
    ports = [(_free_port(), _free_port()) for _ in range(3)]
    procs = []
    env = {**os.environ, TRACE_DIR_ENV: directory}
    try:
        for node, (http_port, raft_port) in enumerate(ports, start=1):
            argv = [sys.executable, "-m", "doq.bench.http_trace", "--node", "--"]
            argv += ["--cluster.node_id", f"node-{node}", "--storage.data_dir", data]
            argv += ["--http.host", HOST, "--http.port", str(http_port)]
            argv += ["--raft.address", f"{HOST}:{raft_port}", "--logging.level", "warning"]
            if node > 1:
                argv += ["--cluster.join_addr", f"{HOST}:{ports[0][0]}"]
            procs.append(subprocess.Popen(argv, env=env, start_new_session=True))
        servers = wait_for_voters(procs, 3, http_port=ports[0][0])["servers"]
        leader = "http://" + next(s for s in servers if s["is_leader"])["http_addr"]
        argv = [sys.executable, "-m", "doq", "bench", "http", "--url", leader, "--json"]
        argv += ["--connections", "1", "--seconds", str(seconds)]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]
    finally:
        from doq.devcluster import stop_all

        stop_all(procs)  # SIGTERM: the nodes exit and write their events


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["--node", "--"]:
        return run_node(argv[2:])
    parser = argparse.ArgumentParser(prog="python -m doq.bench.http_trace", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args(argv)
    directory = tempfile.mkdtemp(prefix="doq-trace-")
    try:
        load = _cluster_and_load(directory, args.seconds)
        figures = breakdown(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    figures["client p50"] = load["enqueue_p50_ms"]
    figures["client req/s"] = load["enqueue_rps"]
    for name, value in figures.items():
        print(f"  {name:<46} {value:>9}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
