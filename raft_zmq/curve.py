"""Peer links authenticated and encrypted with ZeroMQ CURVE: the cluster key and the gate.

Every member holds the same CURVE key pair, the cluster key (docs/transport.md, "Authenticated
links"). Each ROUTER is a CURVE server with the cluster's secret key; each DEALER is a CURVE
client that presents the cluster key pair as its own and expects the server to hold it too. CURVE
proves that a client holds the secret half of the key it presents, so a ZAP handler that admits
only the cluster's public key admits only peers that hold the cluster's secret key: a process
without it cannot complete a handshake, so it cannot join, vote or append, and none of its frames
reach the decoder. Every refused handshake is counted (the ROUTER's monitor events), and the
links are encrypted as a side effect.

The key is only the 40-character Z85 form of the secret key (the public half is derived from it),
so one line in a file (0600) or one environment variable carries it, as a Kubernetes Secret does.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

import attrs
import trio
import zmq
import zmq.utils.monitor
import zmq.utils.z85

from raft_zmq.trio_zmq import TrioZmqSocket

CURVE_KEY_Z85_CHARS = 40  # a 32-byte CURVE key in Z85
ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq asks; fixed by RFC 27
ZAP_DOMAIN = b"raft"
KEY_FILE_MODE = 0o600
# Handshakes that did not complete: wrong key, no key (a plaintext peer), or garbage.
HANDSHAKE_FAILED_EVENTS = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


class ClusterKeyError(ValueError):
    """The text is not a cluster key; the message never contains the key."""


@attrs.frozen(repr=False)
class ClusterKey:
    """The cluster's CURVE key pair, both halves in Z85. Its repr shows the public half only, so
    that a log line or a traceback never carries the secret."""

    secret: bytes
    public: bytes

    def __repr__(self) -> str:
        return f"ClusterKey(public={self.public.decode()!r})"

    @classmethod
    def generate(cls) -> ClusterKey:
        public, secret = zmq.curve_keypair()
        return cls(secret=secret, public=public)

    @classmethod
    def from_text(cls, text: str | bytes) -> ClusterKey:
        """The key from its Z85 secret (surrounding whitespace ignored)."""
        raw = (text.encode("ascii", "replace") if isinstance(text, str) else text).strip()
        if len(raw) != CURVE_KEY_Z85_CHARS:
            raise ClusterKeyError(
                f"a cluster key is {CURVE_KEY_Z85_CHARS} Z85 characters, got {len(raw)}"
            )
        try:
            zmq.utils.z85.decode(raw)
            public = zmq.curve_public(raw)
        except (ValueError, KeyError, zmq.ZMQError):
            raise ClusterKeyError(
                "a cluster key is Z85 text ('doq keys init' writes one)"
            ) from None
        return cls(secret=raw, public=public)

    @classmethod
    def read(cls, path: str | Path) -> ClusterKey:
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise ClusterKeyError(f"cannot read the cluster key {path}: {exc.strerror}") from None
        return cls.from_text(text)

    def write(self, path: str | Path) -> None:
        """Writes the secret to a new file readable by its owner only; never overwrites."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(self.secret + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def serve(self, sock: zmq.Socket) -> None:
        """Makes ``sock`` (a ROUTER, before bind) a CURVE server that asks the ZAP handler."""
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)  # no handler answering: refuse, never admit

    def dial(self, sock: zmq.Socket) -> None:
        """Makes ``sock`` (a DEALER, before connect) a CURVE client holding the cluster key."""
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.public)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)


@attrs.define
class GateCounters:
    admitted: int = 0  # CURVE handshakes the ZAP handler admitted
    refused_key: int = 0  # CURVE clients presenting another key
    refused_handshake: int = 0  # every handshake that failed (the above, plaintext, garbage)


class CurveGate:
    """The ZAP handler and the ROUTER's handshake monitor for one ZeroMQ context.

    Create it before the ROUTER binds (libzmq asks the handler during each handshake), then
    ``watch`` the ROUTER and run ``run`` for as long as the transport runs. One per context:
    ZAP has one fixed endpoint per context."""

    def __init__(self, context: zmq.Context, key: ClusterKey) -> None:
        self._public_raw = zmq.utils.z85.decode(key.public)
        self.counters = GateCounters()
        zap = context.socket(zmq.REP)
        try:
            zap.setsockopt(zmq.LINGER, 0)
            zap.bind(ZAP_ENDPOINT)
        except BaseException:
            zap.close(linger=0)
            raise
        self._zap = TrioZmqSocket(zap)
        self._monitor: TrioZmqSocket | None = None

    def watch(self, router: zmq.Socket) -> None:
        self._monitor = TrioZmqSocket(router.get_monitor_socket(HANDSHAKE_FAILED_EVENTS))

    async def run(self) -> None:
        """Answers ZAP requests and counts failed handshakes until closed."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._answer_zap)
            if self._monitor is not None:
                nursery.start_soon(self._count_failures, self._monitor)

    async def _answer_zap(self) -> None:
        while True:
            try:
                parts = await self._zap.recv()
                self._zap.send_nowait(self.answer(parts))  # REP: a reply is always sendable
            except trio.ClosedResourceError:
                return

    def answer(self, parts: list[bytes]) -> list[bytes]:
        """The ZAP reply to one request (RFC 27): 200 for the cluster's key, 400 otherwise."""
        request_id = parts[1] if len(parts) > 1 else b""
        if len(parts) < 7 or parts[0] != b"1.0" or parts[5] != b"CURVE":
            self.counters.refused_key += 1
            return [b"1.0", request_id, b"400", b"CURVE with the cluster key only", b"", b""]
        if not hmac.compare_digest(parts[6], self._public_raw):
            self.counters.refused_key += 1
            return [b"1.0", request_id, b"400", b"not the cluster key", b"", b""]
        self.counters.admitted += 1
        return [b"1.0", request_id, b"200", b"OK", b"", b""]

    async def _count_failures(self, monitor: TrioZmqSocket) -> None:
        while True:
            try:
                parts = await monitor.recv()
            except trio.ClosedResourceError:
                return
            try:
                event = zmq.utils.monitor.parse_monitor_message(parts)["event"]
            except (ValueError, KeyError, IndexError):
                continue
            if event & HANDSHAKE_FAILED_EVENTS:
                self.counters.refused_handshake += 1

    def close(self) -> None:
        if self._monitor is not None:
            self._monitor.close()
        self._zap.close()
