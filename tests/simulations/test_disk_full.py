"""A node whose disk is full retries its log's writes and its state machine's applies (as
raft_zmq/node.py's shell does on StorageFull) instead of dying, refuses writes meanwhile, and
the run passes every check once the disk has room again."""

from __future__ import annotations

from simulations.simulation import RunConfig, Simulation

SEED = 3  # 7 nodes, brutal: five disks fill up during the run, twelve retries
TIME_S = 10.0


def test_a_full_disk_blocks_and_retries_and_the_run_stays_correct():
    sim = Simulation(RunConfig(SEED, time_s=TIME_S))
    result = sim.run()
    assert result.ok, (result.invariant, result.detail)
    assert result.faults.get("disk_full", 0) >= 1
    assert result.stats["storage_full_retries"] >= 1
    assert all(
        node.driver is None or not node.driver.storage_blocked for node in sim.nodes.values()
    )
