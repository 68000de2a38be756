"""raft_zmq: a Raft library: a pure consensus core, LMDB storage, a ZeroMQ transport under Trio.

It knows nothing about queues: the caller supplies a state machine (see ``raft_zmq.statemachine``).
"""
