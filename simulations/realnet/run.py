"""One run: build the network, start the nodes, create the queues, start the clients, run the
nemesis, heal, drain, compare the replicas, check the history. Everything it creates it removes
(processes by PID, mounts, namespaces, the bridge), also when it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable

import attrs
import httpx

from simulations.checkers.queue_safety import state_digest
from simulations.realnet import check
from simulations.realnet.history import Recorder
from simulations.realnet.history import load as load_history
from simulations.realnet.nemesis import FAULTS, LEADER_FAULTS, Event, Nemesis, leader, wait
from simulations.realnet.netns import Network
from simulations.realnet.nodes import Node
from simulations.realnet.workload import Plan, Workload

FORM_TIMEOUT_S = 90.0
SETTLE_TIMEOUT_S = 90.0
POLL_S = 0.2


@attrs.frozen
class Profile:
    name: str
    nodes: int
    faults: int
    hold_s: float  # how long each fault lasts
    quiet_s: float  # healed time after each fault
    plan: Plan


PROFILES = {
    "ci": Profile(
        "ci",
        3,
        len(FAULTS),
        4.0,
        3.0,
        Plan(
            clients=4,
            queues_per_generation=6,
            ops_per_queue=100,
            ops_max=30_000,
            seconds=150,
            # One message an enqueue: CI's verdict must be conclusive, and a batch whose answer
            # is lost is several unknown operations at once, which widen the search; with
            # batches on, a CI run's search gave up on one queue (g1-q0 of seed 1, 0
            # violations). The soak keeps batches of up to 3.
            batch_max=1,
        ),
    ),
    "soak": Profile(
        "soak",
        5,
        1_000,  # the time bound ends it first
        6.0,
        6.0,
        # 20 clients on 20 queues a generation: the same few clients a queue as with 10 on 10
        # (the linearizability search stays small), twice the rate; 10 on 10 without batches
        # made 54 operations a second, short of 100,000 in 30 minutes.
        Plan(
            clients=20,
            queues_per_generation=20,
            ops_per_queue=120,  # iterations; with batches about 160 operations
            # Never the bound: a quiet machine made 180 iterations a second (seed 3), and the
            # clients of a soak must ask for the whole run.
            ops_max=600_000,
            seconds=1_860,
            batch_max=3,
        ),
    ),
}


KEPT_FILE = "kept.json"


@attrs.frozen
class Kept:
    """What a finished run keeps beside its history for ``recheck``: what the checks need that
    the history does not hold."""

    profile: str
    seed: int
    stored: list[tuple[str, int]]  # (queue, id) still stored after the drain
    replicas: dict[str, str]  # node -> "applied index: digest"
    crashed: list[str]
    start_us: int
    end_us: int


@attrs.define
class Outcome:
    profile: str
    seed: int
    ops: int
    ok_ops: int
    unknown_ops: int
    failed_ops: int
    seconds: float
    events: list[Event]
    verdict: check.Verdict
    replicas: dict[str, str]  # node -> "applied index: digest"
    failovers_us: list[int]
    longest_gap_us: int
    crashed: list[str]

    @property
    def passed(self) -> bool:
        same = len(set(self.replicas.values())) == 1
        return self.verdict.ok and same and not self.crashed


def poll(predicate: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            value = predicate()
            if value:
                return value
        time.sleep(POLL_S)
    raise TimeoutError(f"timed out waiting for {what}")


def applied_index(node: Node) -> int:
    text = httpx.get(node.url + "/metrics", timeout=2.0).text
    for line in text.splitlines():
        if line.startswith("doq_raft_applied_index"):
            return int(float(line.split()[-1]))
    raise KeyError("doq_raft_applied_index")


def form(nodes: list[Node]) -> None:
    for node in nodes:
        node.prepare()
        node.start()

    def formed() -> bool:
        servers = httpx.get(nodes[0].url + "/API/v1/cluster/servers", timeout=2.0).json()["servers"]
        voters = [s for s in servers if s["suffrage"] == "Voter"]
        return len(voters) == len(nodes) and any(s["is_leader"] for s in servers)

    poll(formed, FORM_TIMEOUT_S, f"{len(nodes)} voters and a leader")


def settle(nodes: list[Node]) -> None:
    """Every node up, a leader, and every replica at the same applied index."""
    poll(lambda: leader(nodes), SETTLE_TIMEOUT_S, "a leader after healing")

    def same() -> bool:
        first = [applied_index(n) for n in nodes]
        time.sleep(0.5)  # the index must also hold still: nothing is in flight any more
        return len(set(first)) == 1 and [applied_index(n) for n in nodes] == first

    poll(same, SETTLE_TIMEOUT_S, "every replica at the same applied index")


def freeze_and_kill(nodes: list[Node]) -> None:
    """Stop every node at the same applied index: SIGSTOP them all first (a graceful stop of one
    would let the others elect a leader, whose first entry would move them on), then kill -9.
    What each replica applied is durable (the state commits with sync), so nothing is lost."""
    for node in nodes:
        node.signal(signal.SIGSTOP)
    for node in nodes:
        node.kill()


def digests(nodes: list[Node], scratch: str) -> dict[str, str]:
    """Open each stopped node's state and hash its snapshot (the same bytes on every replica
    holding the same state, docs/state-machine.md)."""
    from doq.state.machine import QueueStateMachine

    out = {}
    for node in nodes:
        state = QueueStateMachine(os.path.join(node.data_dir, node.id, "state"))
        try:
            index = state.last_applied()[0]
            out[node.id] = f"{index}: {state_digest(state, scratch)}"
        finally:
            state.close()
    return out


def stored_ids(url: str, ops: list, seen: set) -> set[tuple[str, int]]:
    """Of the enqueues answered ok and never seen delivered: those a GET still finds."""
    found = set()
    with httpx.Client(timeout=10.0) as http:
        for op in ops:
            key = (op.queue, op.id)
            if op.kind == "enqueue" and op.outcome == "ok" and key not in seen:
                r = http.get(f"{url}/API/v1/queues/{op.queue}/messages/{op.id}")
                if r.status_code == 200:
                    found.add(key)
    return found


def execute(
    profile: Profile,
    seed: int,
    workdir: str,
    log: Callable[[str], None] = print,
    faults: tuple[str, ...] = FAULTS,
) -> Outcome:
    network = Network.create(profile.nodes)
    nodes: list[Node] = []
    nemesis: Nemesis | None = None
    workload: Workload | None = None
    try:
        for host in network.hosts:
            join = None if host.index == 1 else network.hosts[0].address + ":8000"
            root = os.path.join(workdir, f"node-{host.index}")
            nodes.append(Node(host, root, join, small_disk=host.index != 1))
        log(f"network {network.bridge} {network.client_address}/24, {len(nodes)} nodes")
        form(nodes)
        recorder = Recorder()
        workload = Workload(profile.plan, [n.url for n in nodes], recorder, seed)
        workload.create_queues(nodes[0].url)
        nemesis = Nemesis(network, nodes, seed, recorder.now_us, log)
        start_us = recorder.now_us()
        workload.start()
        for fault in nemesis.schedule(profile.faults, faults):
            event = nemesis.inject(fault)
            wait(profile.hold_s)
            nemesis.heal(event)
            wait(profile.quiet_s)
            log(f"  {len(recorder.ops)} operations so far")
            if recorder.now_us() > profile.plan.seconds * 1e6:
                break
        workload.stopping.set()
        workload.join()
        end_us = recorder.now_us()
        crashed = [f"{n.id} exited with {code}" for n in nodes for code in n.exits()]
        for node in nodes:
            if not node.alive:
                node.start()  # a crash is reported; the checks still want every replica
        recorder.dump(os.path.join(workdir, "history.jsonl"))  # kept even if what follows fails
        _dump_events(nemesis.events, os.path.join(workdir, "nemesis.jsonl"))
        settle(nodes)
        # Only the queues the clients used: the others hold nothing (each costs a request).
        queues = sorted({op.queue for op in recorder.ops if op.client >= 0})
        workload.drain(nodes[0].url, queues)
        recorder.dump(os.path.join(workdir, "history.jsonl"))  # the drain too, come what may
        seen = {(o.queue, o.id) for o in recorder.ops if check.delivered(o)}
        stored = stored_ids(nodes[0].url, recorder.ops, seen)
        settle(nodes)
        freeze_and_kill(nodes)
        replicas = digests(nodes, os.path.join(workdir, "digest.scratch"))
        recorder.dump(os.path.join(workdir, "history.jsonl"))
        _dump_events(nemesis.events, os.path.join(workdir, "nemesis.jsonl"))
        kept = Kept(profile.name, seed, sorted(stored), replicas, crashed, start_us, end_us)
        with open(os.path.join(workdir, KEPT_FILE), "w") as f:
            json.dump(attrs.asdict(kept), f)
        verdict = check.check_all(recorder.ops, stored)
        return _outcome(profile, kept, recorder.ops, nemesis.events, verdict)
    finally:
        if workload is not None:
            workload.stopping.set()
        if nemesis is not None:
            nemesis.close()
        for node in nodes:
            node.stop()
            node.unmount()
        network.close()


def _dump_events(events: list[Event], path: str) -> None:
    with open(path, "w") as f:
        for event in events:
            f.write(json.dumps(attrs.asdict(event)) + "\n")


def recheck(workdir: str) -> Outcome:
    """The checks again, over what a finished run kept in ``workdir`` (its history, nemesis log
    and ``KEPT_FILE``): for a checker changed since the run, or a search that ran out of time."""
    with open(os.path.join(workdir, KEPT_FILE)) as f:
        raw = json.load(f)
    kept = Kept(**{**raw, "stored": [tuple(pair) for pair in raw["stored"]]})
    ops = load_history(os.path.join(workdir, "history.jsonl"))
    with open(os.path.join(workdir, "nemesis.jsonl")) as f:
        events = [Event(**json.loads(line)) for line in f if line.strip()]
    verdict = check.check_all(ops, set(kept.stored))
    return _outcome(PROFILES[kept.profile], kept, ops, events, verdict)


def _outcome(profile: Profile, kept: Kept, all_ops: list, events: list, verdict) -> Outcome:
    start_us, end_us = kept.start_us, kept.end_us
    ops = [o for o in all_ops if o.client >= 0]
    failovers = []
    for event in events:
        if event.fault in LEADER_FAULTS and not event.skipped:
            took = check.recovery_us(ops, event.start_us)
            if took is not None:
                failovers.append(took)
    # Availability is measured while clients ask: to their last request, if they stopped
    # before the nemesis did (a plan's ops_max reached), not over the quiet after it.
    asked_us = max((o.invoke_us for o in ops if o.invoke_us <= end_us), default=end_us)
    gaps = check.write_gaps_us(ops, start_us, asked_us)
    return Outcome(
        profile=profile.name,
        seed=kept.seed,
        ops=len(ops),
        ok_ops=sum(o.outcome == "ok" for o in ops),
        unknown_ops=sum(o.outcome == "unknown" for o in ops),
        failed_ops=sum(o.outcome == "failed" for o in ops),
        seconds=(end_us - start_us) / 1e6,
        events=events,
        verdict=verdict,
        replicas=kept.replicas,
        failovers_us=failovers,
        longest_gap_us=gaps[0][1] - gaps[0][0] if gaps else 0,
        crashed=kept.crashed,
    )
