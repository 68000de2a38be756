"""``doq bench state``: how fast the queue state machine applies commands, with no network.

Commands go straight to ``QueueStateMachine.apply`` as encoded log entries, 64 entries per apply
(one LMDB transaction and one fdatasync each, as the Raft driver's group commit hands them over):
enqueues of one message each, then dequeue+ack pairs (a batch of 64 dequeues, then a batch of the
64 acks). Both run once on an empty queue and once on a queue holding ``--queued`` messages
(1,000,000 by default), to show that the indexes stay O(log n). Entries are encoded before the
clock starts: encoding is the leader's cost, not the state's.

The default queue is a fair queue with 10 groups and equal priorities. What decides the figures
with sync on is how many distinct LMDB pages a transaction dirties: each group's messages are
contiguous in the fair index, so a batch spread over G groups writes about min(G, 64) pages of it
and the fdatasync pays for each. ``--groups``, ``--type delayed`` and ``--random-priorities`` show
the range (docs/state-machine.md has the figures).

Each figure is given per wall-clock second and per CPU second of this process (``*_per_cpu_s``):
on a shared machine the second still measures the state machine. With ``--json`` the last line is
one JSON object with the eight rates.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence

from doq.commands import (
    Ack,
    AckMany,
    Command,
    CreateQueue,
    Dequeue,
    Enqueue,
    InFlightItem,
    NewMessage,
    QueueType,
    Strategy,
    encode_command,
)
from doq.state.machine import QueueStateMachine
from doq.state.results import Dequeued
from raft_zmq.core.types import Entry, EntryKind

DEFAULT_BATCH_ENTRIES = 64
DEFAULT_GROUPS = 10
DEFAULT_QUEUED = 1_000_000
DEFAULT_MEASURED_BATCHES = 300  # 19,200 operations a measurement
PREFILL_MESSAGES_PER_COMMAND = 1_000
PREFILL_COMMANDS_PER_APPLY = 10
CONTENT = "x" * 100  # a typical small message body
ACK_TIMEOUT_S = 1800
START_MS = 1_750_000_000_000
SEED = 20240601


class Timed:
    """Wall-clock and CPU seconds (this process's) spent in the measured calls: on a machine
    shared with other work, CPU seconds per operation still say what the state machine costs."""

    def __init__(self) -> None:
        self.wall_s = 0.0
        self.cpu_s = 0.0

    def apply(self, sm: QueueStateMachine, entries: list[Entry]) -> list[object]:
        wall, cpu = time.perf_counter(), time.process_time()
        results = sm.apply(entries)
        self.wall_s += time.perf_counter() - wall
        self.cpu_s += time.process_time() - cpu
        return results

    def rates(self, operations: int) -> tuple[float, float]:
        """(per wall-clock second, per CPU second)."""
        return operations / self.wall_s, operations / max(self.cpu_s, 1e-9)


class Bench:
    """A state machine in a scratch directory and the log position to append at."""

    def __init__(
        self,
        path: str,
        queue_type: QueueType,
        groups: int,
        random_priorities: bool,
        sync: bool,
        batch_entries: int = DEFAULT_BATCH_ENTRIES,
        batch_messages: int = 0,
    ) -> None:
        self.sm = QueueStateMachine(path, sync=sync)
        self.queue_type = queue_type
        self.groups = groups
        self.random_priorities = random_priorities
        self.batch_entries = batch_entries
        self.batch_messages = batch_messages
        self.index = 0
        self.next_id = 1
        self.rng = random.Random(SEED)

    def entries(self, commands: Sequence[Command]) -> list[Entry]:
        out = []
        for command in commands:
            self.index += 1
            out.append(Entry(self.index, 1, EntryKind.NORMAL, encode_command(command)))
        return out

    def create(self, name: str) -> None:
        strategy = Strategy.ROUND_ROBIN if self.queue_type is QueueType.FAIR else None
        command = CreateQueue(START_MS, name, self.queue_type, ACK_TIMEOUT_S, strategy)
        self.sm.apply(self.entries([command]))

    def new_messages(self, count: int) -> tuple[NewMessage, ...]:
        # Random groups. Priorities: the same for all (delivery in ID order within a group, as
        # most producers use it), or random (every insert and delivery lands somewhere else in
        # the indexes: the worst case for the pages each transaction writes). All are due.
        out = []
        for _ in range(count):
            group = f"tenant{self.rng.randrange(self.groups)}"
            priority = self.rng.randrange(1000) if self.random_priorities else 0
            out.append(NewMessage(self.next_id, priority, CONTENT, group))
            self.next_id += 1
        return tuple(out)

    def prefill(self, name: str, count: int) -> None:
        while count > 0:
            commands = []
            for _ in range(PREFILL_COMMANDS_PER_APPLY):
                size = min(count, PREFILL_MESSAGES_PER_COMMAND)
                if size:
                    commands.append(Enqueue(START_MS, name, self.new_messages(size)))
                    count -= size
            self.sm.apply(self.entries(commands))

    def enqueue_rate(self, name: str, batches: int) -> tuple[float, float]:
        prepared = [
            self.entries(
                [Enqueue(START_MS, name, self.new_messages(1)) for _ in range(self.batch_entries)]
            )
            for _ in range(batches)
        ]
        timed = Timed()
        for entries in prepared:
            timed.apply(self.sm, entries)
        return timed.rates(batches * self.batch_entries)

    def dequeue_ack_rate(self, name: str, batches: int) -> tuple[float, float]:
        if self.batch_messages:
            return self.batched_dequeue_ack_rate(name, batches)
        timed = Timed()
        for _ in range(batches):
            entries = self.entries([Dequeue(START_MS, name) for _ in range(self.batch_entries)])
            results = timed.apply(self.sm, entries)
            ids = [r.messages[0].id for r in results if isinstance(r, Dequeued)]
            assert len(ids) == self.batch_entries, "the queue ran dry during the measurement"
            acks = self.entries([Ack(START_MS, name, message_id) for message_id in ids])
            timed.apply(self.sm, acks)
        return timed.rates(batches * self.batch_entries)

    def batched_dequeue_ack_rate(self, name: str, batches: int) -> tuple[float, float]:
        """Pairs/s when each entry is a Dequeue of ``batch_messages`` and its acks one AckMany,
        as batch and streaming consumers send them: ``batch_entries`` dequeues per apply, then
        their acks in the next."""
        count = self.batch_messages
        info = self.sm.queue_info(name)
        assert info is not None
        needed = batches * self.batch_entries * count - info.ready
        if needed > 0:  # the enqueue measurement left too few: topped up, not timed
            self.prefill(name, needed)
        timed = Timed()
        for _ in range(batches):
            entries = self.entries(
                [Dequeue(START_MS, name, count=count) for _ in range(self.batch_entries)]
            )
            results = timed.apply(self.sm, entries)
            acks = []
            for result in results:
                assert isinstance(result, Dequeued) and len(result.messages) == count, (
                    "the queue ran dry during the measurement"
                )
                items = tuple(InFlightItem(message.id) for message in result.messages)
                acks.append(AckMany(START_MS, name, items))
            timed.apply(self.sm, self.entries(acks))
        return timed.rates(batches * self.batch_entries * count)


def run(args: argparse.Namespace) -> dict[str, float]:
    scratch = tempfile.mkdtemp(prefix="doq-bench-state-", dir=args.dir)
    try:
        bench = Bench(
            f"{scratch}/state",
            QueueType(args.type),
            args.groups,
            args.random_priorities,
            not args.no_sync,
            args.batch_entries,
            args.batch_messages,
        )
        figures: dict[str, float] = {}

        def measure(key: str, rates: tuple[float, float]) -> None:
            figures[key], figures[key.replace("_per_s", "_per_cpu_s")] = rates

        bench.create("empty")
        measure("enqueue_per_s", bench.enqueue_rate("empty", args.batches))
        measure("dequeue_ack_per_s", bench.dequeue_ack_rate("empty", args.batches))
        bench.create("full")
        started = time.perf_counter()
        bench.prefill("full", args.queued)
        print(f"prefilled {args.queued:,} messages in {time.perf_counter() - started:.1f} s")
        measure("enqueue_per_s_1m", bench.enqueue_rate("full", args.batches))
        measure("dequeue_ack_per_s_1m", bench.dequeue_ack_rate("full", args.batches))
        bench.sm.close()
        return figures
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="doq bench state", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="end with one JSON line of rates")
    parser.add_argument("--type", choices=[t.value for t in QueueType], default="fair")
    parser.add_argument(
        "--groups", type=int, default=DEFAULT_GROUPS, help="fair queue: groups messages spread over"
    )
    parser.add_argument(
        "--batch-entries",
        type=int,
        default=DEFAULT_BATCH_ENTRIES,
        help="entries per apply (the targets are set for 64)",
    )
    parser.add_argument(
        "--batch-messages",
        type=int,
        default=0,
        help="dequeue+ack as batch commands of this many messages (Dequeue count=N, AckMany)",
    )
    parser.add_argument("--queued", type=int, default=DEFAULT_QUEUED, help="the full queue's size")
    parser.add_argument(
        "--random-priorities",
        action="store_true",
        help="random priorities instead of one for all (the worst case for pages written)",
    )
    parser.add_argument("--batches", type=int, default=DEFAULT_MEASURED_BATCHES)
    parser.add_argument("--no-sync", action="store_true", help="skip the fdatasync per apply")
    parser.add_argument("--dir", default=None, help="where the scratch environment goes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures = run(args)
    priorities = "random" if args.random_priorities else "equal"
    print(
        f"queue type {args.type}, {args.groups} groups, {priorities} priorities, "
        f"{args.batch_entries} entries per apply, sync {'off' if args.no_sync else 'on'}"
    )
    full = f"{args.queued:,} queued"
    rows = [
        ("enqueue, empty queue", "enqueue_per_s", ""),
        ("dequeue+ack, empty queue", "dequeue_ack_per_s", " pairs"),
        (f"enqueue, {full}", "enqueue_per_s_1m", ""),
        (f"dequeue+ack, {full}", "dequeue_ack_per_s_1m", " pairs"),
    ]
    for label, key, unit in rows:
        cpu = figures[key.replace("_per_s", "_per_cpu_s")]
        print(f"  {label:<36}{figures[key]:>10,.0f}{unit}/s {cpu:>10,.0f}{unit}/CPU-s")
    if args.json:
        print(json.dumps({key: round(value, 1) for key, value in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
