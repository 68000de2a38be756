"""doq: a distributed priority queue on Raft, with the REST API of kgantsov/doq."""
