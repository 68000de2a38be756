"""The checkers: Raft safety, queue safety, message IDs, linearizability against a model, liveness
(and hung reads) after healing, and the client history they read (docs/simulations.md)."""
