"""The ``doq`` command: a node (the default), a local cluster, a benchmark, or a preStop check.

doq [--config FILE] [--http.port 8001] [--raft.address 127.0.0.1:9001] ...   a node
doq repair --storage.data_dir D --cluster.node_id N --cluster.join_addr H     rejoin after
                                                                              corrupt storage
doq devcluster [--nodes 3] [--data-dir data]                                  a local cluster
doq bench state [...]                                                         state machine
doq bench http --url URL [...]                                                HTTP load
doq bench grpc --address HOST:PORT [...]                                      gRPC load
doq bench grpc-servers [...]                                                  gRPC libraries
doq bench worker [--url URL] [...]                                            worker runtime
doq bench stream --url URL [...]                                              streams, wake-ups
doq bench throughput [--short] [--json]                                       issue 8's figures
doq prestop                                                                   Kubernetes preStop
doq worker MODULE:HANDLER --queue Q [--concurrency 16]                       the worker runtime
doq queues|send|recv|ack|nack|touch|get|delete|cluster|backup|restore ...     the client
                                                                              (each takes --help)
doq keys init PATH                                                            a cluster key
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import trio

from doq import cmd as client_commands
from doq import config, goflags, logs, repair
from raft_zmq.storage import StorageCorruptError

EXIT_STORAGE_CORRUPT = 65  # sysexits.h EX_DATAERR: the data is bad, restarting will not help

if TYPE_CHECKING:
    from doq.kubernetes.setup import KubernetesParts


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)  # the subcommands; then the node's flags, from its own parser
    if args[:1] == ["devcluster"]:
        from doq import devcluster

        return devcluster.main(args[1:])
    if args[:1] == ["bench"]:
        return _bench(args[1:])
    if args[:1] == ["repair"]:
        return repair.main(args[1:])
    if args[:1] and args[0] in client_commands.COMMANDS:
        from doq.cmd import main as client_main

        return client_main.main(args)
    if args[:1] == ["worker"]:
        from doq.worker import cli as worker_cli

        return worker_cli.main(args[1:])
    if args[:1] == ["keys"]:
        from doq import keys

        return keys.main(args[1:])
    if args[:1] == ["prestop"]:
        from doq.kubernetes import prestop

        return prestop.main(args[1:])
    kubernetes = None
    try:
        settings = config.load(args)
        if settings.cluster__service_name:
            from doq.kubernetes.setup import prepare

            kubernetes = prepare(settings, os.environ)
            settings = kubernetes.settings
        from doq import security

        security.check(settings)  # a bad key, tokens file or certificate: exit code 2
    except config.ConfigError as exc:
        print(f"doq: {exc}", file=sys.stderr)
        return 2
    refusal = repair.rejoin_refusal(settings)
    if refusal is not None:
        print(f"doq: {refusal}", file=sys.stderr)
        return 2
    logs.setup(settings.cluster__node_id, settings.log_level, settings.logging__mode)
    warning = goflags.no_effect_warning(settings)
    if warning is not None:
        logging.getLogger("doq").warning("%s", warning)
    try:
        trio.run(_run_node, settings, kubernetes)
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130
    except OSError as exc:  # a port in use, a data directory we may not write
        logging.getLogger("doq").error("cannot run the node: %s", exc)
        return 1
    except BaseException as exc:
        corrupt = _find(exc, StorageCorruptError)
        if corrupt is None:
            raise
        logging.getLogger("doq").critical(
            "the Raft storage is corrupt; the node will not start: %s\nTo repair, with this "
            "node stopped: %s (docs/operations.md)",
            corrupt,
            repair.repair_command(settings),
        )
        return EXIT_STORAGE_CORRUPT
    return 0


def _find(exc: BaseException, kind: type[StorageCorruptError]) -> StorageCorruptError | None:
    """``exc`` or the first exception of that kind inside it (Trio's nurseries wrap what their
    tasks raise in exception groups)."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
    return None


async def _run_node(settings: config.Settings, kubernetes: KubernetesParts | None) -> None:
    from doq.server import DoqNode

    if kubernetes is None:
        node = DoqNode(settings)
    else:
        node = DoqNode(
            settings, discovery=kubernetes.discovery, leader_endpoint=kubernetes.leader_endpoint
        )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signals, node)
        await node.run()
        nursery.cancel_scope.cancel()


async def _stop_on_signals(node: object) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            logging.getLogger("doq").info("%s: shutting down", signal.Signals(signum).name)
            node.stop()  # type: ignore[attr-defined]


# `doq bench MODE`: the module of doq.bench that measures it (imported only when asked for).
BENCH_MODULES = {
    "state": "state",
    "http": "http",
    "grpc": "grpc",
    "grpc-servers": "grpc_servers",
    "compare": "compare",
    "worker": "worker",
    "stream": "stream",
    "throughput": "throughput",
}


def _bench(args: list[str]) -> int:
    module = BENCH_MODULES.get(args[0]) if args else None
    if module is None:
        modes = "|".join(BENCH_MODULES)
        print(f"usage: doq bench {modes} [options]  (each takes --help)", file=sys.stderr)
        return 2
    main: Callable[[list[str]], int] = importlib.import_module(f"doq.bench.{module}").main
    return main(args[1:])
