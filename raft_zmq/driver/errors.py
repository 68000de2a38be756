"""How a proposal can end other than with its result: the driver hands these out as outcomes, the
Trio shell raises them to the proposer, the simulator turns them into what a client sees."""

from __future__ import annotations


class LeadershipLost(Exception):
    """This node stopped being leader before the proposal was applied: its outcome is unknown
    (the entry may still be committed by the next leader). Retry only if that is safe."""


class ProposalLost(Exception):
    """The proposal's entry was overwritten by another leader's: it was not applied."""
