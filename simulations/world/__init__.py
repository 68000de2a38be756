"""The simulated world: virtual time and its event loop, seeded randomness, the clocks, the Raft
log's disk, the network, the fault schedule and each seed's profile (docs/simulations.md)."""
