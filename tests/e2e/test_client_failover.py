"""The Python client against real node processes: producers that keep sending while the leader
is killed with SIGKILL leave every acknowledged message in the queue exactly once (the client
fails over and its retried enqueues carry the same ID), and typed errors cross a relay."""

from __future__ import annotations

import json
import threading

import pytest

from doq.client import Client, QueueEmpty, QueueNotFound, StaleReceipt, Unavailable

from .cluster import ProcessCluster, wait_for

pytestmark = pytest.mark.slow

PRODUCERS = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # One cluster for the module: the typed-errors test runs first, the kill -9 test last.
    c = ProcessCluster(str(tmp_path_factory.mktemp("cluster")))
    try:
        c.start()
        yield c
    finally:
        c.stop()


class _Producer:
    def __init__(self, urls: list[str], name: str) -> None:
        self.client = Client(urls, timeout_s=5.0)
        self.name = name
        self.acknowledged: list[str] = []
        self.failed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with self.client:
            n = 0
            while not self.stop.is_set():
                content = f"{self.name}-{n}"
                n += 1
                try:
                    self.client.enqueue("work", content)
                except Unavailable:
                    self.failed += 1  # outcome unknown: it may be in the queue, at most once
                    continue
                self.acknowledged.append(content)


def _sent(producers: list[_Producer]) -> int:
    return sum(len(p.acknowledged) for p in producers)


def test_errors_are_typed_through_a_follower(cluster):
    follower = cluster.followers()[0]
    with Client(follower.url) as client:
        with pytest.raises(QueueNotFound):
            client.queue("nope")
        client.create_queue("jobs", ack_timeout=60)
        client.enqueue("jobs", "x")
        taken = client.dequeue("jobs")
        client.nack("jobs", taken.id, receipt=taken.receipt)
        with pytest.raises(StaleReceipt):
            client.ack("jobs", taken.id, receipt=taken.receipt)
        client.dequeue("jobs", ack=True)
        with pytest.raises(QueueEmpty):
            client.dequeue("jobs")
        assert client.leader_url == cluster.leader().url


def test_kill_9_of_the_leader_while_sending_leaves_every_acknowledged_message_once(cluster):
    urls = [n.url for n in cluster.nodes]
    with Client(urls) as admin:
        admin.create_queue("work", ack_timeout=60)
    producers = [_Producer(urls, f"p{k}") for k in range(PRODUCERS)]
    threads = [threading.Thread(target=p.run) for p in producers]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: _sent(producers) >= 100, 60, "100 enqueues")
        victim = cluster.leader()
        victim.kill()
        before = _sent(producers)
        wait_for(lambda: _sent(producers) >= before + 100, 60, "enqueues after the kill")
    finally:
        for p in producers:
            p.stop.set()
        for t in threads:
            t.join(timeout=60)
    survivors = [n.url for n in cluster.nodes if n is not victim]
    delivered: list[str] = []
    with Client(survivors) as consumer:
        while batch := consumer.dequeue_many("work", 1000, ack=True):
            delivered.extend(m.content for m in batch)
    assert len(delivered) == len(set(delivered)), "a message is in the queue twice"
    acknowledged = {c for p in producers for c in p.acknowledged}
    assert acknowledged <= set(delivered), "an acknowledged message was lost"


def test_cluster_transfer_and_leave_from_the_command_line(cluster, capsys):
    """Runs after the kill -9 test: one node is dead; leadership moves to the other survivor and
    the dead node leaves, so the two that are alive are the whole cluster."""
    from doq.cli import main

    alive = [n for n in cluster.nodes if n.alive]
    dead = [n for n in cluster.nodes if not n.alive]
    servers = [arg for n in alive for arg in ("--server", n.url)]
    leader = cluster.leader(among=alive)
    other = next(n for n in alive if n is not leader)
    assert main(["cluster", "transfer", other.id, *servers]) == 0
    wait_for(lambda: cluster.leader(among=alive) is other, 30, "the transfer")
    for node in dead:
        assert main(["cluster", "leave", node.id, *servers]) == 0
    capsys.readouterr()
    assert main(["cluster", "status", "-o", "json", *servers]) == 0
    members = json.loads(capsys.readouterr().out)
    assert sorted(m["id"] for m in members) == sorted(n.id for n in alive)
    assert [m["id"] for m in members if m["is_leader"]] == [other.id]
    assert main(["cluster", "leave", *servers]) == 2  # which node?
