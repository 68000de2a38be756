"""Benchmarks that print figures (they are not timed tests): ``doq bench <name>``."""
