"""Deterministic, seeded network-fault simulations of whole doq clusters."""
