"""The actors of a simulated cluster: the node process around the real driver, the queue service
on it, and the clients (docs/simulations.md)."""
