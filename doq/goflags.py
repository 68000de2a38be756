"""The Go server's settings that mean nothing to doq, and why: one warning at start-up names those
that were given.

doq accepts every flag and config key of the Go server (kgantsov/doq, ``pkg/config/config.go``),
so that its command lines, environment and config files start a node unchanged (issue 11, §4).
Those with a meaning here are settings of their own in doq/config.py and are honoured; the ones
below are accepted and do nothing, and saying so once, with the reason, is better than both a
refusal (a migration blocked on a tuning knob) and silence (an operator who believes a knob
works). Keys the Go server never had are still refused by doq/config.py.
"""

from __future__ import annotations

from typing import Any

_BADGER = "Badger tuning: doq keeps its state in LMDB, which has no such knob"

NO_EFFECT: dict[str, str] = {
    "raft.apply_timeout": "a request's whole deadline, Raft round included, is "
    "--http.request_timeout",
    "profiling.enabled": "Go's pprof endpoints have no Python equivalent here",
    "profiling.port": "Go's pprof endpoints have no Python equivalent here",
    "queue.acknowledgement_check_interval": "there is no periodic check: an expired message is "
    "returned to its queue by the next command, at that command's time",
    "queue.acknowledgement_timeout": "the Go server ignored this key of its sample config.yaml "
    "too; the default is queue.default_acknowledgement_timeout",
    "storage.gc_interval": _BADGER,
    "storage.gc_discard_ratio": _BADGER,
    "storage.compression": _BADGER,
    "storage.zstd_compression_level": _BADGER,
    "storage.block_cache_size": _BADGER,
    "storage.index_cache_size": _BADGER,
    "storage.base_table_size": _BADGER,
    "storage.base_level_size": _BADGER,
    "storage.num_compactors": _BADGER,
    "storage.num_level_zero_tables": _BADGER,
    "storage.num_level_zero_tables_stall": _BADGER,
    "storage.num_memtables": _BADGER,
    "storage.value_log_file_size": _BADGER,
}


def given_without_effect(settings: Any) -> list[str]:
    """The no-effect keys that ``settings`` (doq.config.Settings) were given, in NO_EFFECT's
    order."""
    return [key for key in NO_EFFECT if getattr(settings, key.replace(".", "__")) is not None]


def no_effect_warning(settings: Any) -> str | None:
    """The one start-up warning, or None when no such key was given."""
    keys = given_without_effect(settings)
    if not keys:
        return None
    lines = [f"  {key}: {NO_EFFECT[key]}" for key in keys]
    return "settings of the Go server that have no effect here:\n" + "\n".join(lines)
