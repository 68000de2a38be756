"""raft_zmq: a Raft library with a pure consensus core, LMDB storage and a ZeroMQ transport under Trio.

It knows nothing about queues: the caller supplies a state machine (see ``raft_zmq.statemachine``).
"""
