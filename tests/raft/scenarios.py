"""A tiny interpreter for consensus scenarios written as text, with their expected traces, in the
manner of etcd's raft ``testdata/*.txt`` (datadriven tests).

A scenario file is a list of blocks. A block is a command line, a ``----`` line and the expected
output, up to the next blank line; lines starting with ``#`` between blocks are comments. The
interpreter runs the real core over tests/raft/harness.py's nodes (their MemoryLog disks are
written as the Ready contract says) and a network it drives itself, one command at a time:

    cluster voters=n1,n2,n3 [learners=n4] [prevote=false] [checkquorum=false] [append_bytes_max=N]
    campaign n1              tick n1 [count]         propose n1 data        transfer n1 n2
    process-ready [n1 ...]   deliver [from=n1] [to=n2,n3]   drop [from=..] [to=..]
    stabilize                crash n1                restart n1             crash-before-sync n1
    partition n1,n2 n3       heal                    status                 log n1 [n2 ...]

``crash-before-sync`` takes the node's next Ready, sends its early messages (what a driver sends
before it persists) and crashes the node before anything reaches its disk. Messages already on the
wire when their sender crashes still arrive; those to a crashed or cut-off node are lost.

Run: ``pytest tests/raft/test_core_scenarios.py``; after a deliberate change of behaviour,
``RAFT_SCENARIOS_REWRITE=1 pytest tests/raft/test_core_scenarios.py`` rewrites the expected
outputs, and ``git diff tests/raft/testdata`` shows what changed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import attrs

from raft_zmq.core.ready import (
    ConfigChangeRejected,
    CoreOptions,
    NotLeader,
    ProposalDropped,
    ProposalTooLarge,
    Ready,
)
from raft_zmq.core.types import ClusterConfig, Entry, EntryKind, Message, SnapshotMeta, Suffrage

from .harness import Cluster, Node


@attrs.frozen
class Block:
    comments: tuple[str, ...]
    command: str
    expected: tuple[str, ...]


def parse(text: str) -> list[Block]:
    blocks: list[Block] = []
    comments: list[str] = []
    lines = iter(text.splitlines())
    for line in lines:
        if not line.strip() or line.startswith("#"):
            if line.startswith("#"):
                comments.append(line)
            continue
        assert next(lines, None) == "----", f"expected ---- after {line!r}"
        expected = []
        for out in lines:
            if not out.strip():
                break
            expected.append(out)
        blocks.append(Block(tuple(comments), line, tuple(expected)))
        comments = []
    return blocks


def render(blocks: list[Block], outputs: list[list[str]]) -> str:
    parts = []
    for block, output in zip(blocks, outputs, strict=True):
        lines = [*block.comments, block.command, "----", *output]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


# --- formatting ----------------------------------------------------------------------------------


def fmt_entry(e: Entry) -> str:
    if e.kind == EntryKind.NOOP:
        return f"{e.index}/{e.term} noop"
    if e.kind == EntryKind.CONFIG:
        return f"{e.index}/{e.term} config"
    return f"{e.index}/{e.term} {e.data.decode()!r}"


def fmt_entries(entries: tuple[Entry, ...] | list[Entry]) -> str:
    return "[" + ", ".join(fmt_entry(e) for e in entries) + "]"


def fmt_config(config: ClusterConfig) -> str:
    return " ".join(
        s.id if s.suffrage == Suffrage.VOTER else f"{s.id}(learner)" for s in config.servers
    )


def fmt_value(value: object) -> str:
    if isinstance(value, tuple) and all(isinstance(e, Entry) for e in value):
        return fmt_entries(value)
    if isinstance(value, SnapshotMeta):
        return f"{value.index}/{value.term}"
    return str(value)


def fmt_message(m: Message) -> str:
    """``n1->n2 AppendEntries term=2 prev_index=1 ...``; fields at their default are left out."""
    fields = []
    for field in attrs.fields(type(m)):
        if field.name in ("sender", "to"):
            continue
        value = getattr(m, field.name)
        if field.default is not attrs.NOTHING and value == field.default:
            continue
        fields.append(f"{field.name}={fmt_value(value)}")
    return f"{m.sender}->{m.to} {type(m).__name__} " + " ".join(fields)


def fmt_ready(node_id: str, rd: Ready) -> list[str]:
    out = []
    if rd.soft_state is not None:
        soft = rd.soft_state
        out.append(f"{node_id}: {soft.role.value} term={soft.term} leader={soft.leader}")
    if rd.hard_state is not None:
        hs = rd.hard_state
        out.append(f"{node_id}: persist term={hs.term} vote={hs.vote} commit={hs.commit}")
    if rd.snapshot is not None:
        out.append(f"{node_id}: persist snapshot {fmt_value(rd.snapshot)}")
    if rd.entries:
        out.append(f"{node_id}: persist entries {fmt_entries(rd.entries)}")
    if rd.config is not None:
        out.append(f"{node_id}: config {fmt_config(rd.config)}")
    out += [f"{node_id}: send early {fmt_message(m)}" for m in rd.early_messages]
    out += [f"{node_id}: send {fmt_message(m)}" for m in rd.messages]
    if rd.committed:
        out.append(f"{node_id}: apply {fmt_entries(rd.committed)}")
    out += [f"{node_id}: read {r.ctx} at {r.index}" for r in rd.read_states]
    out += [f"{node_id}: read {ctx} failed" for ctx in rd.failed_reads]
    return out


# --- the interpreter -----------------------------------------------------------------------------


def _kwargs(args: list[str]) -> tuple[list[str], dict[str, str]]:
    positional = [a for a in args if "=" not in a]
    named = dict(a.split("=", 1) for a in args if "=" in a)
    return positional, named


def _ids(value: str | None) -> set[str] | None:
    return None if value is None else set(value.split(","))


class Scenario:
    def __init__(self) -> None:
        self.cluster: Cluster | None = None
        self.wire: deque[Message] = deque()
        self.commands: dict[str, Callable[[list[str]], list[str]]] = {
            "cluster": self.cmd_cluster,
            "campaign": self.cmd_campaign,
            "tick": self.cmd_tick,
            "propose": self.cmd_propose,
            "transfer": self.cmd_transfer,
            "process-ready": self.cmd_process_ready,
            "deliver": self.cmd_deliver,
            "drop": self.cmd_drop,
            "stabilize": self.cmd_stabilize,
            "crash": self.cmd_crash,
            "crash-before-sync": self.cmd_crash_before_sync,
            "restart": self.cmd_restart,
            "partition": self.cmd_partition,
            "heal": self.cmd_heal,
            "status": self.cmd_status,
            "log": self.cmd_log,
        }

    def run(self, command: str) -> list[str]:
        name, *args = command.split()
        assert name in self.commands, f"unknown command {name!r}"
        try:
            return self.commands[name](args) or ["ok"]
        except (NotLeader, ProposalDropped, ProposalTooLarge, ConfigChangeRejected) as e:
            return [f"error {type(e).__name__}: {e}"]

    @property
    def c(self) -> Cluster:
        assert self.cluster is not None, "no cluster yet: start with `cluster`"
        return self.cluster

    def node(self, node_id: str) -> Node:
        return self.c.nodes[node_id]

    # --- setup and inputs ---------------------------------------------------------------------
    def cmd_cluster(self, args: list[str]) -> list[str]:
        _, kw = _kwargs(args)
        voters = kw.pop("voters").split(",")
        learners = kw.pop("learners").split(",") if "learners" in kw else []
        options = CoreOptions(
            election_timeout_ticks=10,
            heartbeat_interval_ticks=1,
            pre_vote=kw.pop("prevote", "true") == "true",
            check_quorum=kw.pop("checkquorum", "true") == "true",
            append_bytes_max=int(kw.pop("append_bytes_max", 1024 * 1024)),
        )
        assert not kw, f"unknown cluster options {sorted(kw)}"
        self.cluster = Cluster(0, options=options, ids=[*voters, *learners], nonvoters=learners)
        # The first Ready of every node announces the configuration; nothing to see there.
        for node in self.c.nodes.values():
            node.handle_ready(self.wire.extend)
        return []

    def cmd_campaign(self, args: list[str]) -> list[str]:
        self.node(args[0]).core.campaign()
        return []

    def cmd_tick(self, args: list[str]) -> list[str]:
        for _ in range(int(args[1]) if len(args) > 1 else 1):
            self.node(args[0]).core.tick()
        return []

    def cmd_propose(self, args: list[str]) -> list[str]:
        index = self.node(args[0]).core.propose(args[1].encode())
        return [f"index {index}"]

    def cmd_transfer(self, args: list[str]) -> list[str]:
        self.node(args[0]).core.transfer_leadership(args[1])
        return []

    # --- the rounds and the network -----------------------------------------------------------
    def cmd_process_ready(self, args: list[str]) -> list[str]:
        out: list[str] = []
        for node_id in args or list(self.c.nodes):
            out += self._process_ready(node_id)
        return out

    def _process_ready(self, node_id: str) -> list[str]:
        node = self.node(node_id)
        if node_id in self.c.down or not node.core.has_ready():
            return []
        before = len(node.readies)
        node.handle_ready(self.wire.extend)
        return fmt_ready(node_id, node.readies[before])

    def _matches(self, m: Message, kw: dict[str, str]) -> bool:
        senders, recipients = _ids(kw.get("from")), _ids(kw.get("to"))
        return (senders is None or m.sender in senders) and (
            recipients is None or m.to in recipients
        )

    def cmd_deliver(self, args: list[str]) -> list[str]:
        _, kw = _kwargs(args)
        out, kept = [], deque[Message]()
        queued, self.wire = self.wire, deque()
        for m in queued:
            if not self._matches(m, kw):
                kept.append(m)
            elif m.to in self.c.down or (m.sender, m.to) in self.c.cut:
                out.append(f"lost {fmt_message(m)}")
            else:
                out.append(f"deliver {fmt_message(m)}")
                self.node(m.to).core.step(m)
        self.wire = kept + self.wire
        return out

    def cmd_drop(self, args: list[str]) -> list[str]:
        _, kw = _kwargs(args)
        dropped = [m for m in self.wire if self._matches(m, kw)]
        self.wire = deque(m for m in self.wire if not self._matches(m, kw))
        return [f"drop {fmt_message(m)}" for m in dropped]

    def cmd_stabilize(self, args: list[str]) -> list[str]:
        out: list[str] = []
        for _ in range(1000):
            step = self.cmd_process_ready([]) + self.cmd_deliver([])
            if not step:
                return out
            out += step
        raise AssertionError("the cluster did not settle in 1000 rounds")

    # --- faults ---------------------------------------------------------------------------------
    def cmd_crash(self, args: list[str]) -> list[str]:
        self.c.down.add(args[0])
        return []

    def cmd_crash_before_sync(self, args: list[str]) -> list[str]:
        node_id = args[0]
        rd = self.node(node_id).core.ready()
        self.wire.extend(rd.early_messages)
        self.c.down.add(node_id)
        out = [f"{node_id}: send early {fmt_message(m)}" for m in rd.early_messages]
        out += [f"{node_id}: never sent {fmt_message(m)}" for m in rd.messages]
        return [*out, f"{node_id}: crashed; lost {len(rd.entries)} entries, {rd.hard_state}"]

    def cmd_restart(self, args: list[str]) -> list[str]:
        self.c.down.discard(args[0])
        self.node(args[0]).restart()
        return self.cmd_status(args)

    def cmd_partition(self, args: list[str]) -> list[str]:
        groups = [g.split(",") for g in args]
        rest = set(self.c.nodes) - {n for g in groups for n in g}
        self.c.partition(*groups, *([rest] if rest else []))
        return []

    def cmd_heal(self, args: list[str]) -> list[str]:
        self.c.heal()
        return []

    # --- observations ---------------------------------------------------------------------------
    def cmd_status(self, args: list[str]) -> list[str]:
        out = []
        for node_id in args or list(self.c.nodes):
            core = self.node(node_id).core
            state = "down" if node_id in self.c.down else core.role.value
            out.append(
                f"{node_id}: {state} term={core.term} vote={core.vote} leader={core.leader} "
                f"commit={core.log.committed} applied={core.log.applied} "
                f"last={core.log.last_index()}/{core.log.last_term()}"
            )
        return out

    def cmd_log(self, args: list[str]) -> list[str]:
        out = []
        for node_id in args:
            disk = self.node(node_id).disk
            entries = disk.entries(disk.first_index(), disk.last_index() + 1, 1 << 30)
            out.append(f"{node_id}: {fmt_entries(entries)}")
        return out
