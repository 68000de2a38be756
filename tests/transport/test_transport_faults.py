"""The fault layer on its own: specs, seeded decisions, delayed release on Trio's clock, the file
that switches faults at run time. (The transport's use of it is in test_transport_transport.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trio

from raft_zmq import faults as faults_module
from raft_zmq.faults import ENV_FAULTS, ENV_FAULTS_FILE, FaultLayer, FaultSpec, faults_file_from_env

# --- specs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"drop_rate": 1.5},
        {"drop_rate": -0.1},
        {"drop_rate": True},
        {"duplicate_rate": "0.1"},
        {"delay_min_s": -1},
        {"delay_max_s": faults_module.DELAY_S_MAX + 1},
        {"delay_min_s": 0.2, "delay_max_s": 0.1},
        {"partition_outbound": "node-1"},
        {"partition_inbound": [1, 2]},
        {"seed": 1.5},
        {"seed": True},
        {"loss": 0.1},
    ],
)
def test_a_bad_spec_is_refused_with_value_error(fields) -> None:
    with pytest.raises(ValueError):
        FaultSpec.from_mapping(fields)


def test_a_spec_round_trips_through_json() -> None:
    spec = FaultSpec(0.1, 0.2, 0.001, 0.01, frozenset({"b", "a"}), frozenset({"c"}), seed=7)
    assert FaultSpec.from_json(spec.to_json()) == spec
    assert json.loads(spec.to_json())["partition_outbound"] == ["a", "b"]


def test_the_environment_switches_faults_on_and_names_the_file() -> None:
    env = {ENV_FAULTS: '{"drop_rate": 0.25, "seed": 3}', ENV_FAULTS_FILE: "/tmp/f.json"}
    assert FaultSpec.from_env(env) == FaultSpec(drop_rate=0.25, seed=3)
    assert faults_file_from_env(env) == Path("/tmp/f.json")
    assert FaultSpec.from_env({}) == FaultSpec()
    assert not FaultSpec.from_env({ENV_FAULTS: "  "}).has_effect
    assert faults_file_from_env({}) is None
    with pytest.raises(ValueError, match="not JSON"):
        FaultSpec.from_env({ENV_FAULTS: "{drop_rate: 1}"})
    with pytest.raises(ValueError, match="JSON object"):
        FaultSpec.from_env({ENV_FAULTS: "[1]"})


def test_a_spec_without_effect_leaves_the_layer_disabled() -> None:
    layer: FaultLayer[str] = FaultLayer(FaultSpec(seed=4))
    assert not layer.enabled
    layer.update(duplicate_rate=0.5)
    assert layer.enabled
    layer.clear()
    assert not layer.enabled


# --- decisions -----------------------------------------------------------------------------------


def test_drop_rate_drops_that_share_of_messages_and_counts_them() -> None:
    layer: FaultLayer[str] = FaultLayer(FaultSpec(drop_rate=0.3, seed=11))
    plans = [layer.plan_outbound("b") for _ in range(10_000)]
    dropped = plans.count(())
    assert 2_700 < dropped < 3_300
    assert layer.stats().dropped == dropped
    assert all(plan in ((), (0.0,)) for plan in plans)


def test_decisions_replay_exactly_from_the_seed() -> None:
    spec = FaultSpec(drop_rate=0.2, duplicate_rate=0.2, delay_max_s=0.05, seed=99)
    runs = []
    for _ in range(2):
        layer: FaultLayer[str] = FaultLayer(spec)
        runs.append([layer.plan_outbound("b") for _ in range(500)])
    assert runs[0] == runs[1]
    layer.set(spec)  # setting a seeded spec again restarts its sequence
    assert [layer.plan_outbound("b") for _ in range(500)] == runs[0]


def test_duplicate_rate_one_sends_every_message_twice() -> None:
    layer: FaultLayer[str] = FaultLayer(FaultSpec(duplicate_rate=1.0))
    assert [layer.plan_outbound("b") for _ in range(5)] == [(0.0, 0.0)] * 5
    assert layer.stats().duplicated == 5


def test_delays_are_drawn_from_the_range_per_copy() -> None:
    layer: FaultLayer[str] = FaultLayer(
        FaultSpec(duplicate_rate=0.5, delay_min_s=0.01, delay_max_s=0.03, seed=5)
    )
    delays = [d for _ in range(2_000) for d in layer.plan_outbound("b")]
    assert all(0.01 <= d <= 0.03 for d in delays)
    assert len(set(delays)) > 1_000  # copies get their own delays, so they reorder
    assert len(delays) == 2_000 + layer.stats().duplicated


def test_a_partition_is_per_peer_and_per_direction() -> None:
    layer: FaultLayer[str] = FaultLayer()
    layer.partition({"c"}, inbound=False, outbound=True)
    assert layer.plan_outbound("c") == ()
    assert layer.plan_outbound("b") == (0.0,)
    assert layer.admits_inbound("c")
    layer.partition({"d"}, inbound=True, outbound=False)
    assert not layer.admits_inbound("d")
    assert layer.plan_outbound("d") == (0.0,)
    stats = layer.stats()
    assert (stats.partitioned_outbound, stats.partitioned_inbound) == (1, 1)
    layer.update(drop_rate=0.5)
    layer.heal()
    assert layer.spec == FaultSpec(drop_rate=0.5)


# --- delayed release -----------------------------------------------------------------------------


async def test_held_items_are_released_in_time_order(autojump_clock) -> None:
    layer: FaultLayer[str] = FaultLayer()
    released: list[tuple[str, float]] = []
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            layer.run_releases, lambda item: released.append((item, trio.current_time()))
        )
        for item, delay_s in [("c", 0.3), ("a", 0.1), ("b", 0.2), ("a2", 0.1)]:
            assert layer.hold(delay_s, item)
        while len(released) < 4:
            await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert [item for item, _ in released] == ["a", "a2", "b", "c"]
    for (_item, at), delay_s in zip(released, [0.1, 0.1, 0.2, 0.3]):
        assert at - start == pytest.approx(delay_s)
    assert layer.held == 0
    assert layer.stats().delayed == 4


async def test_an_earlier_item_wakes_the_releaser_sleeping_on_a_later_one(autojump_clock) -> None:
    layer: FaultLayer[str] = FaultLayer()
    released: list[float] = []
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(layer.run_releases, lambda _item: released.append(trio.current_time()))
        layer.hold(10.0, "late")
        await trio.sleep(1.0)
        layer.hold(0.5, "early")
        while len(released) < 2:
            await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert released[0] - start == pytest.approx(1.5)
    assert released[1] - start == pytest.approx(10.0)


async def test_the_hold_is_bounded_and_overflow_is_counted(monkeypatch) -> None:
    monkeypatch.setattr(faults_module, "DELAYED_MESSAGES_MAX", 3)
    layer: FaultLayer[int] = FaultLayer()
    assert [layer.hold(1.0, n) for n in range(5)] == [True] * 3 + [False] * 2
    assert layer.held == 3
    assert layer.stats().delay_overflow == 2


# --- the faults file -----------------------------------------------------------------------------


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def _until(predicate, step_s: float = 0.05) -> None:
    with trio.fail_after(60):
        while not predicate():
            await trio.sleep(step_s)


async def test_the_faults_file_switches_faults_at_run_time(tmp_path, autojump_clock) -> None:
    path = tmp_path / "faults.json"
    start_spec = FaultSpec(duplicate_rate=0.1)  # e.g. from the environment
    layer: FaultLayer[str] = FaultLayer(start_spec)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(layer.watch_file, path, 0.1)
        await trio.sleep(0.5)
        assert layer.spec == start_spec  # no file yet: the starting spec stays
        _write_atomically(path, FaultSpec(partition_outbound=frozenset({"b"})).to_json())
        await _until(lambda: layer.spec.partition_outbound == {"b"})
        _write_atomically(path, '{"drop_rate": 7}')
        await trio.sleep(0.5)
        assert layer.spec.partition_outbound == {"b"}  # an invalid file changes nothing
        _write_atomically(path, '{"drop_rate": 0.5}')
        await _until(lambda: layer.spec == FaultSpec(drop_rate=0.5))
        path.unlink()
        await _until(lambda: not layer.enabled)
        nursery.cancel_scope.cancel()
