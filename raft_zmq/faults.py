"""Network faults injected by the transport itself: loss, duplication, delay, partitions.

TCP turns packet loss into delay, and ``tc netem`` is missing on these machines, so the faults Raft
must survive (lost, duplicated and reordered messages, one-way and two-way partitions) are injected
where the node sends and receives. Tests switch them on in-process; the real-process fault suite
switches them on in a node through the environment or a JSON file that the node re-reads while it
runs (see docs/transport.md):

    RAFT_ZMQ_FAULTS='{"drop_rate": 0.05, "delay_min_s": 0.001, "delay_max_s": 0.02, "seed": 7}'
    RAFT_ZMQ_FAULTS_FILE=/tmp/node-1.faults.json   # polled; a missing file means no faults

Decisions come from the layer's own seeded ``random.Random`` so that a run can be replayed. The
layer is off unless a spec with an effect is set; the transport checks one boolean per message.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import math
import os
import random
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

import attrs
import trio

ENV_FAULTS = "RAFT_ZMQ_FAULTS"
ENV_FAULTS_FILE = "RAFT_ZMQ_FAULTS_FILE"
DELAY_S_MAX = 60.0  # a larger delay is a partition, and should be asked for as one
DELAYED_MESSAGES_MAX = 100_000  # held for later release; beyond this a delayed message is dropped
FAULTS_FILE_POLL_INTERVAL_S = 0.2
SPEC_JSON_BYTES_MAX = 64 * 1024

log = logging.getLogger(__name__)
T = TypeVar("T")


def _rate(_instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if isinstance(value, bool) or not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"{attribute.name} must be a number in [0, 1], not {value!r}")


def _delay(_instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if isinstance(value, bool) or not (
        isinstance(value, int | float) and 0.0 <= value <= DELAY_S_MAX
    ):
        raise ValueError(f"{attribute.name} must be a number of seconds in [0, {DELAY_S_MAX}]")


def _node_ids(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"a partition is a list of node IDs, not {value!r}")
    return frozenset(value)


@attrs.frozen
class FaultSpec:
    """What to inject. Rates are probabilities per message; each copy of a message is delayed by a
    uniform draw from [delay_min_s, delay_max_s] (so delays reorder messages); messages to the
    nodes in ``partition_outbound`` and from those in ``partition_inbound`` are dropped (two-way:
    name a node in both). ``seed`` reseeds the layer's RNG when the spec is set."""

    drop_rate: float = attrs.field(default=0.0, validator=_rate)
    duplicate_rate: float = attrs.field(default=0.0, validator=_rate)
    delay_min_s: float = attrs.field(default=0.0, validator=_delay)
    delay_max_s: float = attrs.field(default=0.0, validator=_delay)
    partition_outbound: frozenset[str] = attrs.field(default=frozenset(), converter=_node_ids)
    partition_inbound: frozenset[str] = attrs.field(default=frozenset(), converter=_node_ids)
    seed: int | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.delay_min_s > self.delay_max_s:
            raise ValueError(f"delay_min_s {self.delay_min_s} > delay_max_s {self.delay_max_s}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValueError(f"seed must be an integer, not {self.seed!r}")

    @property
    def has_effect(self) -> bool:
        return bool(
            self.drop_rate
            or self.duplicate_rate
            or self.delay_max_s
            or self.partition_outbound
            or self.partition_inbound
        )

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> FaultSpec:
        """From a JSON-like mapping with the field names above; ``ValueError`` if it is not one."""
        if not isinstance(spec, Mapping):
            raise ValueError(f"a fault spec is a JSON object, not {type(spec).__name__}")
        unknown = set(spec) - {f.name for f in attrs.fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault spec fields: {sorted(unknown)}")
        try:
            return cls(**spec)
        except TypeError as exc:
            raise ValueError(f"bad fault spec: {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> FaultSpec:
        if len(text) > SPEC_JSON_BYTES_MAX:
            raise ValueError(f"fault spec larger than {SPEC_JSON_BYTES_MAX} B")
        try:
            return cls.from_mapping(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ValueError(f"fault spec is not JSON: {exc}") from exc

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> FaultSpec:
        """The spec in ``$RAFT_ZMQ_FAULTS`` (JSON), or no faults when it is unset or empty."""
        text = environ.get(ENV_FAULTS, "").strip()
        return cls.from_json(text) if text else cls()

    def to_json(self) -> str:
        body = attrs.asdict(self, value_serializer=lambda _i, _a, v: _jsonable(v))
        return json.dumps(body, sort_keys=True)


def _jsonable(value: Any) -> Any:
    return sorted(value) if isinstance(value, frozenset) else value


def faults_file_from_env(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The file named by ``$RAFT_ZMQ_FAULTS_FILE`` for the node to poll, if any."""
    text = environ.get(ENV_FAULTS_FILE, "").strip()
    return Path(text) if text else None


@attrs.frozen
class FaultStats:
    dropped: int = 0  # by drop_rate
    duplicated: int = 0  # extra copies made by duplicate_rate
    delayed: int = 0  # copies held back for later release
    delay_overflow: int = 0  # delayed copies dropped because DELAYED_MESSAGES_MAX were held
    partitioned_outbound: int = 0
    partitioned_inbound: int = 0


@attrs.define
class _Counters:
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0
    delay_overflow: int = 0
    partitioned_outbound: int = 0
    partitioned_inbound: int = 0


class FaultLayer(Generic[T]):
    """Decides the fate of each message and holds delayed ones until their release time.

    ``enabled`` is a plain attribute the hot path reads; it is true only while the spec has an
    effect. Items (whatever the owner sends) held for a delay are released even after the spec is
    cleared, like packets already in flight."""

    def __init__(self, spec: FaultSpec | None = None) -> None:
        self.enabled = False
        self._spec = FaultSpec()
        self._rng = random.Random(0)
        self._counters = _Counters()
        self._held: list[tuple[float, int, T]] = []  # heap of (release time, sequence, item)
        self._sequence = itertools.count()  # keeps equal release times in arrival order
        self._release_wakeup = trio.Event()
        self.set(spec or FaultSpec())

    @property
    def spec(self) -> FaultSpec:
        return self._spec

    def set(self, spec: FaultSpec) -> None:
        """Replaces the spec at once (messages already delayed are still released on time)."""
        if spec.seed is not None:
            self._rng.seed(spec.seed)
        self._spec = spec
        self.enabled = spec.has_effect

    def update(self, **changes: Any) -> None:
        """Changes some fields of the spec, e.g. ``update(drop_rate=0.1)``."""
        self.set(attrs.evolve(self._spec, **changes))

    def clear(self) -> None:
        self.set(FaultSpec())

    def partition(self, node_ids: Iterable[str], *, inbound: bool, outbound: bool) -> None:
        """Cuts this node off from ``node_ids`` in the directions given (adds to the spec)."""
        cut = frozenset(node_ids)
        spec = self._spec
        inbound_cut = spec.partition_inbound | cut if inbound else spec.partition_inbound
        outbound_cut = spec.partition_outbound | cut if outbound else spec.partition_outbound
        self.set(attrs.evolve(spec, partition_inbound=inbound_cut, partition_outbound=outbound_cut))

    def heal(self) -> None:
        """Ends every partition; other faults stay."""
        self.update(partition_inbound=frozenset(), partition_outbound=frozenset())

    def stats(self) -> FaultStats:
        return FaultStats(**attrs.asdict(self._counters))

    @property
    def held(self) -> int:
        """How many delayed copies wait for release."""
        return len(self._held)

    # --- decisions -------------------------------------------------------------------------------

    def admits_inbound(self, sender: str) -> bool:
        """False if a message from ``sender`` is cut off by an inbound partition (and counts it)."""
        if sender in self._spec.partition_inbound:
            self._counters.partitioned_inbound += 1
            return False
        return True

    def plan_outbound(self, to: str) -> tuple[float, ...]:
        """The delay in seconds of each copy of a message to ``to``: () drops it, (0.0,) sends it
        as it is, two values duplicate it."""
        spec, rng, counters = self._spec, self._rng, self._counters
        if to in spec.partition_outbound:
            counters.partitioned_outbound += 1
            return ()
        if spec.drop_rate and rng.random() < spec.drop_rate:
            counters.dropped += 1
            return ()
        copies = 1
        if spec.duplicate_rate and rng.random() < spec.duplicate_rate:
            counters.duplicated += 1
            copies = 2
        if not spec.delay_max_s:
            return (0.0,) * copies
        return tuple(rng.uniform(spec.delay_min_s, spec.delay_max_s) for _ in range(copies))

    # --- delayed delivery ------------------------------------------------------------------------

    def hold(self, delay_s: float, item: T) -> bool:
        """Keeps ``item`` until ``delay_s`` from now (Trio's clock); False if the hold is full."""
        if len(self._held) >= DELAYED_MESSAGES_MAX:
            self._counters.delay_overflow += 1
            return False
        self._counters.delayed += 1
        heapq.heappush(self._held, (trio.current_time() + delay_s, next(self._sequence), item))
        self._release_wakeup.set()
        return True

    async def run_releases(self, deliver: Callable[[T], object]) -> None:
        """Calls ``deliver(item)`` for each held item when its time comes; runs until cancelled."""
        while True:
            now = trio.current_time()
            while self._held and self._held[0][0] <= now:
                _, _, item = heapq.heappop(self._held)
                deliver(item)
            release_at = self._held[0][0] if self._held else math.inf
            self._release_wakeup = trio.Event()
            with trio.move_on_at(release_at):
                await self._release_wakeup.wait()

    async def watch_file(
        self, path: Path, poll_interval_s: float = FAULTS_FILE_POLL_INTERVAL_S
    ) -> None:
        """Keeps the spec equal to the JSON in ``path``; runs until cancelled. Replace the file
        atomically (write elsewhere, rename over it). Removing the file clears the faults; an
        invalid file is logged and leaves the current spec in force. Until the file first appears,
        the spec given at start (e.g. from the environment) stays."""
        last_seen: bytes | None = None
        while True:
            last_seen = self._reload_file(path, last_seen)
            await trio.sleep(poll_interval_s)

    def _reload_file(self, path: Path, last_seen: bytes | None) -> bytes | None:
        # The content, not the mtime, tells a change: mtimes are coarse and inodes are reused.
        # Synchronous read: a few hundred bytes of a local file five times a second cost less
        # than a thread round trip.
        try:
            with path.open("rb") as file:
                text = file.read(SPEC_JSON_BYTES_MAX + 1)
        except FileNotFoundError:
            if last_seen is not None:
                log.warning("fault file %s removed: faults cleared", path)
                self.clear()
            return None
        except OSError as exc:
            log.error("fault file %s unreadable, previous spec kept: %s", path, exc)
            return last_seen
        if text == last_seen:
            return last_seen
        try:
            self.set(FaultSpec.from_json(text))
            log.warning("fault spec from %s in force: %s", path, self._spec.to_json())
        except ValueError as exc:
            log.error("fault file %s refused, previous spec kept: %s", path, exc)
        return text
