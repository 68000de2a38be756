"""The checkers: Raft safety, queue safety, linearizability against a model, liveness after
healing, and the client history they read (docs/simulations.md)."""
