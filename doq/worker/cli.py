"""``doq worker MODULE:HANDLER --queue Q``: the worker runtime from a shell, and ``run_worker``,
the same from Python (docs/client.md, "Worker").

The first SIGTERM or SIGINT stops taking messages and lets those in hand finish within the grace
period, then exits 0; a second one exits at once (130), and what was in hand comes back when its
ack deadline passes. Logs are structured (``--log-mode json``); ``--metrics-port`` serves
Prometheus metrics; on a terminal a progress line is printed every few seconds.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import anyio

from doq import logs
from doq.client import AsyncClient
from doq.worker.policy import RetryPolicy
from doq.worker.runtime import Handler, Worker, WorkerSettings
from doq.worker.stats import WorkerStats

PROGRESS_EVERY_S = 5.0
EXIT_AT_ONCE = 130

EXAMPLES = """examples:
  doq worker myapp.tasks:handle --queue transcode --concurrency 16
  DOQ_SERVERS=http://h1:8001,http://h2:8002 doq worker myapp.tasks:handle -q emails
  doq worker myapp.tasks:handle -q emails --attempts 3 --dead-queue failed --metrics-port 9100
"""


def load_handler(spec: str) -> Handler:
    """``package.module:function`` (or ``:object.attr``), imported from the current directory
    too, as ``python -m`` would."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"a handler is MODULE:FUNCTION, not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{spec} is not callable")
    return target  # type: ignore[no-any-return]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="doq worker",
        description="Run a handler on every message of a queue: ack on success, retry with "
        "backoff on an exception, park in a dead queue after the last attempt.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("handler", help="MODULE:FUNCTION; a function of one Job, sync or async")
    p.add_argument("-q", "--queue", required=True)
    p.add_argument("-s", "--server", action="append", help="a node's URL (repeatable; DOQ_SERVERS)")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument(
        "--prefetch",
        type=int,
        help="messages held at most, running or waiting (default: the concurrency)",
    )
    p.add_argument("--poll", action="store_true", help="long polls instead of the stream")
    p.add_argument("--attempts", type=int, default=5, help="failures before a message is parked")
    p.add_argument("--backoff", type=float, default=1.0, help="first retry delay, seconds")
    p.add_argument("--backoff-max", type=float, default=300.0, help="largest retry delay, seconds")
    p.add_argument("--dead-queue", help="where parked messages go (default QUEUE.dead)")
    p.add_argument("--grace", type=float, default=30.0, help="seconds to finish on SIGTERM")
    p.add_argument("--heartbeat-fraction", type=float, default=0.5)
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--log-mode", choices=["console", "json"], default="console")
    p.add_argument("--log-level", default="info")
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    logs.setup("worker", args.log_level, args.log_mode)
    try:
        handler = load_handler(args.handler)
        settings = WorkerSettings(
            queue=args.queue,
            concurrency=args.concurrency,
            retry=RetryPolicy(args.attempts, args.backoff, args.backoff_max),
            dead_queue=args.dead_queue,
            heartbeat_fraction=args.heartbeat_fraction,
            grace_s=args.grace,
            prefetch=args.prefetch,
            stream=not args.poll,
        )
    except (ImportError, AttributeError, ValueError) as exc:
        print(f"doq worker: {exc}", file=sys.stderr)
        return 2
    return run_worker(handler, settings, servers=args.server, metrics_port=args.metrics_port)


def run_worker(
    handler: Handler,
    settings: WorkerSettings,
    *,
    servers: Sequence[str] | None = None,
    metrics_port: int | None = None,
    progress: bool | None = None,
) -> int:
    """Runs until SIGTERM or SIGINT (see the module's docstring); the exit status."""
    show_progress = sys.stderr.isatty() if progress is None else progress
    return anyio.run(
        _serve, handler, settings, servers, metrics_port, show_progress, backend="trio"
    )


async def _serve(
    handler: Handler,
    settings: WorkerSettings,
    servers: Sequence[str] | None,
    metrics_port: int | None,
    show_progress: bool,
) -> int:
    async with AsyncClient(servers) as client:
        worker = Worker(client, handler, settings)
        if metrics_port is not None:
            from doq.worker.metrics import serve_metrics

            serve_metrics(worker.stats, settings.queue, metrics_port)
        async with anyio.create_task_group() as group:
            group.start_soon(_signals, worker)
            if show_progress:
                group.start_soon(_progress, worker.stats)
            code = 0
            try:
                await worker.run()
            except Exception as exc:
                logging.getLogger("doq.worker").error("the worker failed: %s", exc)
                code = 1
            group.cancel_scope.cancel()  # the signal receiver and the progress line
    return code


async def _signals(worker: Worker) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if worker._stopping.is_set():
                logging.getLogger("doq.worker").warning(
                    "%s again: exiting at once", signal.Signals(signum).name
                )
                logging.shutdown()
                os._exit(EXIT_AT_ONCE)  # in-hand messages come back at their ack deadlines
            worker.stop()


async def _progress(stats: WorkerStats) -> None:
    started = time.monotonic()
    while True:
        await anyio.sleep(PROGRESS_EVERY_S)
        print(f"\r{stats.progress_line(time.monotonic() - started)}", end="", file=sys.stderr)
