"""The ID checker (simulations/checkers/ids.py) and the node names that make finding 8 visible."""

from __future__ import annotations

import zlib

import pytest

from doq.ids import ID_NODE_MAX, compose_id
from simulations.checkers.ids import IdUniqueness
from simulations.checkers.raft_safety import Violation
from simulations.world.profile import draw_profile


def test_a_node_number_used_by_two_nodes_is_a_violation():
    checker = IdUniqueness()
    checker.on_generated("node-9", [compose_id(5, 3, 0), compose_id(5, 3, 1)])
    checker.on_generated("node-1", [compose_id(5, 4, 0)])
    with pytest.raises(Violation) as caught:
        checker.on_generated("node-16", [compose_id(900, 3, 7)])  # not the same ID, same number
    assert caught.value.invariant == "node numbers unique"


def test_an_id_handed_out_twice_is_a_violation():
    checker = IdUniqueness()
    checker.on_handed_out([1, 2, 3], "#1 client-0")
    checker.on_handed_out([4], "#2 client-1")
    with pytest.raises(Violation) as caught:
        checker.on_handed_out([5, 3], "#7 client-2")
    assert caught.value.invariant == "IDs handed out once"


def test_some_seeds_name_two_nodes_whose_crc32_collides():
    colliding = 0
    for seed in range(40):
        profile = draw_profile(seed)
        names = profile.node_names()
        assert len(names) == len(set(names)) == profile.nodes + profile.membership.spares
        numbers = [zlib.crc32(name.encode()) & ID_NODE_MAX for name in names[:2]]
        if profile.colliding_pair:
            assert numbers[0] == numbers[1]
            colliding += 1
    assert 5 < colliding < 35
