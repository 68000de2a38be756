"""The clients: threads in the root namespace that enqueue, dequeue and ack against any node,
recording every operation (simulations/realnet/history.py).

Every enqueue carries an ID no other enqueue uses, so a message seen twice is a duplicate and a
message nobody enqueued is invented. The queues come in generations of ``ops_per_queue``
operations: a short history per queue keeps the linearizability search small even with many
unknown outcomes. Every queue is created before the faults begin.
"""

from __future__ import annotations

import random
import threading
import time

import attrs
import httpx

from simulations.realnet.history import FAILED, OK, UNKNOWN, Op, Recorder

Q = "/API/v1/queues"
CLIENT_TIMEOUT_S = 6.0  # above the nodes' request deadline (3 s): a node answers first
# Leases outlive the run and its drain, so the model need not guess when they expire: with one
# hour, the 31-minute soak's 30-minute drain outlasted the first leases, the nodes returned those
# messages (a redelivery the checker reports) and the applied index never held still to settle.
ACK_TIMEOUT_S = 86_400
DRAIN_QUEUE_S_MAX = 120.0
# Messages one drain request takes; small, because a request without a definite answer counts
# as this many unknown acking dequeues, which the linearizability search must place.
DRAIN_BATCH_MESSAGES_MAX = 10
RETRY_PAUSE_S = 0.1  # after an answer that is not a success: real clients back off


@attrs.frozen
class Plan:
    clients: int
    queues_per_generation: int
    ops_per_queue: int
    ops_max: int
    seconds: float
    # Messages in one enqueue at most: a producer with several at hand sends them in one batch
    # request (one Raft entry); each message is recorded as an enqueue of its own, all with the
    # batch's invocation and completion, which the checkers may order any way (docs/api.md: a
    # batch answers as the same single requests one after the other, so that is no weaker).
    batch_max: int = 1


def queue_name(generation: int, k: int) -> str:
    return f"g{generation}-q{k}"


class Workload:
    def __init__(self, plan: Plan, urls: list[str], recorder: Recorder, seed: int) -> None:
        self.plan = plan
        self.urls = urls
        self.recorder = recorder
        self.seed = seed
        self.stopping = threading.Event()
        self._count = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def generations(self) -> int:
        per_generation = self.plan.queues_per_generation * self.plan.ops_per_queue
        return self.plan.ops_max // per_generation + 1

    def create_queues(self, url: str) -> None:
        with httpx.Client(timeout=30.0) as http:
            for generation in range(self.generations):
                for k in range(self.plan.queues_per_generation):
                    name = queue_name(generation, k)
                    body = {
                        "name": name,
                        "type": "delayed",
                        "settings": {"ack_timeout": ACK_TIMEOUT_S},
                    }
                    op = self.recorder.invoke(client=-1, queue=name, kind="create", node=url)
                    r = http.post(url + Q, json=body)
                    assert r.status_code == 200, r.text
                    self.recorder.complete(op, OK, r.status_code)

    def start(self) -> None:
        for client in range(self.plan.clients):
            thread = threading.Thread(target=self._client, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _next(self) -> int | None:
        with self._lock:
            if self._count >= self.plan.ops_max:
                return None
            self._count += 1
            return self._count

    def _client(self, client: int) -> None:
        rng = random.Random(f"{self.seed}:client:{client}")
        held: dict[str, list[int]] = {}
        serial = 0
        deadline = time.monotonic() + self.plan.seconds
        per_generation = self.plan.queues_per_generation * self.plan.ops_per_queue
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
            while not self.stopping.is_set() and time.monotonic() < deadline:
                n = self._next()
                if n is None:
                    return
                queue = queue_name(
                    n // per_generation, rng.randrange(self.plan.queues_per_generation)
                )
                url = rng.choice(self.urls)
                roll = rng.random()
                mine = held.setdefault(queue, [])
                if roll < 0.2 and mine:
                    self._ack(http, client, queue, url, mine.pop(rng.randrange(len(mine))))
                elif roll < 0.55:
                    count = rng.randint(1, self.plan.batch_max)
                    ids = [client * 1_000_000_000 + serial + k for k in range(1, count + 1)]
                    serial += count
                    self._enqueue(http, client, queue, url, ids, rng)
                else:
                    got = self._dequeue(http, client, queue, url, ack=roll > 0.85)
                    if got is not None:
                        mine.append(got)
                if self.recorder.ops and self.recorder.last_failed(client):
                    time.sleep(RETRY_PAUSE_S)  # a client's pacing after an error, not a wait

    def _send(
        self, http: httpx.Client, ops: Op | list[Op], method: str, url: str, **kw
    ) -> httpx.Response | None:
        """The request, or None with every operation it carries recorded as failed (it never
        reached a server) or unknown (it may have)."""
        try:
            return http.request(method, url, **kw)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            outcome = FAILED
        except httpx.HTTPError:
            outcome = UNKNOWN
        for op in ops if isinstance(ops, list) else [ops]:
            self.recorder.complete(op, outcome)
        return None

    def _judge(self, op: Op, r: httpx.Response, definite: int = 0) -> bool:
        """Record the outcome of an answer; True when it is a success."""
        if r.is_success or r.status_code == definite:
            self.recorder.complete(op, OK, r.status_code)
            return r.is_success
        outcome = FAILED if r.status_code == 507 or r.status_code < 500 else UNKNOWN
        self.recorder.complete(op, outcome, r.status_code)
        return False

    def _enqueue(self, http, client, queue, url, message_ids: list[int], rng) -> None:
        """One message alone, or several in one batch request."""
        ops, items = [], []
        for message_id in message_ids:
            priority, content = rng.randrange(4), f"m{message_id}"
            ops.append(
                self.recorder.invoke(
                    client=client,
                    queue=queue,
                    kind="enqueue",
                    node=url,
                    id=message_id,
                    priority=priority,
                    content=content,
                )
            )
            items.append({"id": str(message_id), "priority": priority, "content": content})
        if len(items) == 1:
            r = self._send(http, ops, "POST", f"{url}{Q}/{queue}/messages", json=items[0])
        else:
            body = {"messages": items}
            r = self._send(http, ops, "POST", f"{url}{Q}/{queue}/messages/batch", json=body)
        if r is not None:
            for op in ops:
                self._judge(op, r)

    def _dequeue(self, http, client, queue, url, ack: bool) -> int | None:
        op = self.recorder.invoke(client=client, queue=queue, kind="dequeue", node=url, ack=ack)
        params = {"ack": "true" if ack else "false"}
        r = self._send(http, op, "GET", f"{url}{Q}/{queue}/messages", params=params)
        if r is None:
            return None
        op.empty = r.status_code == 400
        if not self._judge(op, r, definite=400):
            return None
        body = r.json()
        op.id, op.priority, op.content = int(body["id"]), body["priority"], body["content"]
        return None if ack else op.id

    def _ack(self, http, client, queue, url, message_id) -> None:
        op = self.recorder.invoke(client=client, queue=queue, kind="ack", node=url, id=message_id)
        r = self._send(http, op, "POST", f"{url}{Q}/{queue}/messages/{message_id}/ack")
        if r is not None:
            op.not_found = r.status_code == 404
            self._judge(op, r, definite=404)

    def drain(self, url: str, queues: list[str]) -> None:
        """After healing: empty every queue with acking batch dequeues of up to
        ``DRAIN_BATCH_MESSAGES_MAX`` (one request, one Raft entry: one message a request made the
        31-minute soak drain for 30 minutes), so that every message still stored is seen (a lost
        one is then missing for good). Each message taken is recorded as an acking dequeue of its
        own, all with the request's invocation and completion; a request without a definite
        answer (a slow node's 503) is recorded as that many unknown acking dequeues (each may
        have taken one message unseen) and retried, within ``DRAIN_QUEUE_S_MAX`` a queue."""
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
            for queue in queues:
                deadline = time.monotonic() + DRAIN_QUEUE_S_MAX
                while self._dequeue_final(http, queue, url, deadline):
                    pass

    def _dequeue_final(self, http, queue, url, deadline: float) -> bool:
        """One acking batch dequeue; False once the queue answered empty."""
        first = self.recorder.invoke(client=-2, queue=queue, kind="dequeue", node=url, ack=True)
        params = {"ack": "true", "count": str(DRAIN_BATCH_MESSAGES_MAX)}
        r = self._send(http, first, "GET", f"{url}{Q}/{queue}/messages", params=params)
        if r is not None and r.is_success:
            messages = r.json()["messages"]
            if not messages:
                first.empty = True
                self.recorder.complete(first, OK, r.status_code)
                return False
            for k, message in enumerate(messages):
                op = first if k == 0 else self._alike(first)
                op.id, op.priority, op.content = (
                    int(message["id"]),
                    message["priority"],
                    message["content"],
                )
                self.recorder.complete(op, OK, r.status_code)
            return True
        if r is not None:
            self._judge(first, r)
        if first.outcome == UNKNOWN:
            for _ in range(DRAIN_BATCH_MESSAGES_MAX - 1):
                self.recorder.complete(self._alike(first), UNKNOWN, first.status)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the healed cluster did not drain {queue} in time")
        time.sleep(RETRY_PAUSE_S)
        return True

    def _alike(self, first: Op) -> Op:
        """Another operation of the same request: its invocation is the request's."""
        op = self.recorder.invoke(
            client=first.client, queue=first.queue, kind=first.kind, node=first.node, ack=first.ack
        )
        op.invoke_us = first.invoke_us
        return op
