"""The queue state machine on LMDB: what every replica applies the committed log to."""
