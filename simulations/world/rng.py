"""Per-subsystem random number generators, all derived from the run's one seed.

Each subsystem (the network, the disk, the faults, every client, every core) draws from its own
``random.Random`` seeded with ``"<seed>:<name>"``: a change in how often one subsystem draws
(say, one more message on the wire) then leaves every other subsystem's draws untouched, so a
small change to the code perturbs a seed's run as little as possible. String seeds are hashed
with SHA-512 by ``random.Random``, never with Python's randomized ``hash``, so a seed gives the
same numbers in every process.
"""

from __future__ import annotations

import random


def derive(seed: int, name: str) -> random.Random:
    """The generator of subsystem ``name`` in the run of ``seed``."""
    assert name, "a subsystem needs a name"
    return random.Random(f"{seed}:{name}")
