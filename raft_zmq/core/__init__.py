"""The consensus state machine: a pure function of received messages, ticks and proposals.

It imports no trio, zmq, lmdb, time or random: the same code runs under Trio in production and
under the simulator's virtual time, and a failing seed replays exactly.
"""
