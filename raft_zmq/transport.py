"""How a node's Raft messages travel: ZeroMQ over TCP, under Trio, lossy by design.

Each node binds one ROUTER on its Raft address for everything it receives, and connects one DEALER
to each peer's ROUTER for everything it sends; the DEALER's routing identity is the node's ID, so
the receiver knows who is talking and a restarted peer's new connection takes over the old one
(ROUTER_HANDOVER). Raft retries on its own, so the transport never waits and never buffers without
bound: ``send_nowait`` hands the frame to ZeroMQ or drops it (counted) when the peer is not
connected (IMMEDIATE) or its queue is full (SNDHWM). Inbound frames are decoded by one task, checked
(decodes, identity matches the sender, addressed to us) and queued for the driver in a bounded
queue; whatever fails a check, or finds the queue full, is dropped and counted, never raised.
``take_waiting`` hands over, without waiting, everything that has arrived, whether queued or
still in the socket (a stalled node reads it before it counts its missed ticks, docs/raft.md,
"Stalls").

The fault layer (``raft_zmq.faults``) sits in front of the send path and behind the receive path;
when it is off it costs one attribute test per message.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from pathlib import Path

import attrs
import trio
import zmq

from raft_zmq.codec import FRAME_BYTES_MAX, NODE_ID_CHARS_MAX, CodecError, decode, encode
from raft_zmq.core.types import Message, NodeId
from raft_zmq.curve import ClusterKey, CurveGate
from raft_zmq.faults import FaultLayer, FaultSpec
from raft_zmq.trio_zmq import TrioZmqSocket

# Defaults of TransportConfig, each with its reason.
PEER_SEND_HWM_MESSAGES = 1_000  # outbound queue per peer; beyond it messages are dropped
ROUTER_RECEIVE_HWM_MESSAGES = 1_000  # inbound queue per connected peer inside ZeroMQ
INBOUND_QUEUE_MESSAGES_MAX = 8_192  # decoded messages waiting for the driver
RECEIVE_BATCH_MESSAGES_MAX = 1_024  # frames taken from the ROUTER per wakeup
RECONNECT_INTERVAL_MS = 50  # first retry soon after a peer restarts...
RECONNECT_INTERVAL_MS_MAX = 1_000  # ...then back off while it stays down
CONNECT_TIMEOUT_MS = 1_000  # a SYN to a black-holed host gives up and retries
# A dead connection (peer host gone, a partition: no RST) is found by the kernel, not by ZMTP
# heartbeats, which libzmq 4.3.5 can abort on (docs/transport.md, "No ZMTP heartbeats"):
DEAD_CONNECTION_TIMEOUT_MS = 5_000  # data unacknowledged this long ends the connection...
KEEPALIVE_IDLE_S = 2  # ...and an idle one is probed after this long...
KEEPALIVE_INTERVAL_S = 1  # ...this often, until DEAD_CONNECTION_TIMEOUT_MS has passed unanswered
# libzmq drops a connection that sends a message above this; frames between FRAME_BYTES_MAX and
# this are received, counted as oversize and dropped (a correct peer never sends them).
INBOUND_MESSAGE_HARD_BYTES_MAX = 2 * FRAME_BYTES_MAX


@attrs.frozen
class TransportConfig:
    peer_send_hwm_messages: int = PEER_SEND_HWM_MESSAGES
    router_receive_hwm_messages: int = ROUTER_RECEIVE_HWM_MESSAGES
    inbound_queue_max_messages: int = INBOUND_QUEUE_MESSAGES_MAX
    receive_batch_max_messages: int = RECEIVE_BATCH_MESSAGES_MAX
    reconnect_interval_ms: int = RECONNECT_INTERVAL_MS
    reconnect_interval_max_ms: int = RECONNECT_INTERVAL_MS_MAX
    connect_timeout_ms: int = CONNECT_TIMEOUT_MS
    dead_connection_timeout_ms: int = DEAD_CONNECTION_TIMEOUT_MS
    keepalive_idle_s: int = KEEPALIVE_IDLE_S
    keepalive_interval_s: int = KEEPALIVE_INTERVAL_S


@attrs.frozen
class TransportStats:
    """Counters since the transport was opened. Every message handed to ``send_nowait`` ends in
    exactly one of ``sent`` (possibly after a delay, plus duplicates) or a ``dropped_*`` /
    ``fault_*`` drop; every frame the ROUTER delivers ends in ``received`` or a ``dropped_*``."""

    sent: int  # frames handed to ZeroMQ
    received: int  # messages handed to the driver
    bytes_out: int
    bytes_in: int
    dropped_unreachable: int  # peer not connected, or its send queue full
    dropped_unknown_peer: int  # no DEALER for the recipient
    dropped_oversize_out: int  # would exceed FRAME_BYTES_MAX
    dropped_oversize_in: int
    dropped_decode: int  # not a frame of this codec version, or not one frame
    dropped_identity: int  # ZeroMQ identity differs from the message's sender
    dropped_misaddressed: int  # addressed to another node
    dropped_inbound_full: int  # the inbound queue (waiting for the node) was full
    fault_dropped: int
    fault_duplicated: int
    fault_delayed: int
    fault_delay_overflow: int
    fault_partitioned_outbound: int
    fault_partitioned_inbound: int
    # With a cluster key (raft_zmq/curve.py): handshakes refused, of them for a wrong key.
    refused_handshake: int = 0
    refused_key: int = 0


@attrs.define
class _Counters:
    sent: int = 0
    received: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    dropped_unreachable: int = 0
    dropped_unknown_peer: int = 0
    dropped_oversize_out: int = 0
    dropped_oversize_in: int = 0
    dropped_decode: int = 0
    dropped_identity: int = 0
    dropped_misaddressed: int = 0
    dropped_inbound_full: int = 0


@attrs.define
class _Peer:
    address: str
    socket: TrioZmqSocket


def tcp_endpoint(address: str, *, allow_port_zero: bool = False) -> str:
    """``"host:port"`` (``"[::1]:port"`` for IPv6) as a ZeroMQ TCP endpoint; ValueError if not."""
    host, sep, port_text = address.rpartition(":")
    low_port = 0 if allow_port_zero else 1
    if not sep or not host or not port_text.isdigit() or not low_port <= int(port_text) <= 65535:
        raise ValueError(f"not a host:port address: {address!r}")
    return f"tcp://{host}:{int(port_text)}"


def _check_node_id(node_id: NodeId) -> None:
    if not isinstance(node_id, str) or not 1 <= len(node_id) <= NODE_ID_CHARS_MAX:
        raise ValueError(f"a node ID is a string of 1 to {NODE_ID_CHARS_MAX} characters")
    if node_id[0] == "\0":
        raise ValueError("a node ID cannot start with NUL (ZeroMQ reserves such identities)")


class Transport:
    """The node's endpoint. Open it, start ``run`` in a nursery (``await nursery.start(t.run)``),
    call ``set_peers`` with the configuration's addresses, then ``send_nowait`` and
    ``receive_batch``. ``aclose`` (or cancelling ``run``) closes every socket."""

    def __init__(
        self,
        node_id: NodeId,
        bind_address: str,
        *,
        config: TransportConfig = TransportConfig(),
        faults: FaultSpec | None = None,
        faults_file: Path | None = None,
        context: zmq.Context | None = None,
        cluster_key: ClusterKey | None = None,
    ) -> None:
        _check_node_id(node_id)
        self.node_id = node_id
        self.config = config
        self.faults: FaultLayer[Message] = FaultLayer(faults)
        self._faults_file = faults_file
        self._identity = node_id.encode()
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._peers: dict[NodeId, _Peer] = {}
        self._counters = _Counters()
        # Accepted messages wait here for the node. A deque, not a memory channel: a channel
        # hands a message straight to a waiting receiver task, where nobody else can see it until
        # that task runs; in a deque it stays where ``take_waiting`` finds it.
        self._inbound: deque[Message] = deque()
        self._inbound_lot = trio.lowlevel.ParkingLot()
        self._running = False
        self._closed = False
        self._cluster_key = cluster_key
        self._gate: CurveGate | None = None
        try:
            if cluster_key is not None:  # the ZAP handler must exist before the ROUTER binds
                self._gate = CurveGate(self._context, cluster_key)
            self._router = TrioZmqSocket(self._bind_router(bind_address))
            if self._gate is not None:
                self._gate.watch(self._router.zmq_socket)
        except BaseException:
            if self._gate is not None:
                self._gate.close()
            if self._own_context:
                self._context.term()
            raise
        self.address = self._bound_address()

    # --- sockets ---------------------------------------------------------------------------------

    def _bind_router(self, bind_address: str) -> zmq.Socket:
        endpoint = tcp_endpoint(bind_address, allow_port_zero=True)
        sock = self._context.socket(zmq.ROUTER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
            sock.setsockopt(zmq.RCVHWM, self.config.router_receive_hwm_messages)
            sock.setsockopt(zmq.MAXMSGSIZE, INBOUND_MESSAGE_HARD_BYTES_MAX)
            if self._cluster_key is not None:
                self._cluster_key.serve(sock)
            self._set_dead_connection_detection(sock)
            if endpoint.startswith("tcp://["):
                sock.setsockopt(zmq.IPV6, 1)
            sock.bind(endpoint)
        except BaseException:
            sock.close(linger=0)
            raise
        return sock

    def _bound_address(self) -> str:
        endpoint = self._router.zmq_socket.getsockopt(zmq.LAST_ENDPOINT).decode()
        assert endpoint.startswith("tcp://"), endpoint
        return endpoint.removeprefix("tcp://")

    def _set_dead_connection_detection(self, sock: zmq.Socket) -> None:
        """TCP_USER_TIMEOUT (ZMQ_TCP_MAXRT) and TCP keepalives, on every connection of ``sock``.
        ZMTP heartbeats stay off (0 is libzmq's default; set here so that nobody turns them on by
        accident): with them, libzmq 4.3.5 aborts the process when a peer's connection is reset
        while our receive queue for it is full (docs/transport.md, "No ZMTP heartbeats")."""
        config = self.config
        sock.setsockopt(zmq.HEARTBEAT_IVL, 0)
        sock.setsockopt(zmq.TCP_MAXRT, config.dead_connection_timeout_ms)
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, config.keepalive_idle_s)
        sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, config.keepalive_interval_s)
        # Enough probes that TCP_USER_TIMEOUT, not the probe count, decides (tcp(7)).
        probes = config.dead_connection_timeout_ms // (1_000 * config.keepalive_interval_s) + 1
        sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, probes)

    def _connect_dealer(self, address: str) -> TrioZmqSocket:
        endpoint = tcp_endpoint(address)
        config = self.config
        sock = self._context.socket(zmq.DEALER)
        try:
            sock.setsockopt(zmq.ROUTING_ID, self._identity)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # no queue for a peer we are not connected to
            sock.setsockopt(zmq.SNDHWM, config.peer_send_hwm_messages)
            sock.setsockopt(zmq.RECONNECT_IVL, config.reconnect_interval_ms)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, config.reconnect_interval_max_ms)
            sock.setsockopt(zmq.CONNECT_TIMEOUT, config.connect_timeout_ms)
            if self._cluster_key is not None:
                self._cluster_key.dial(sock)
            self._set_dead_connection_detection(sock)
            if endpoint.startswith("tcp://["):
                sock.setsockopt(zmq.IPV6, 1)
            sock.connect(endpoint)
        except BaseException:
            sock.close(linger=0)
            raise
        return TrioZmqSocket(sock)

    def set_peers(self, peers: Mapping[NodeId, str]) -> None:
        """Makes the set of peers exactly ``peers`` (node ID -> "host:port"): connects to new ones
        and to moved ones, closes the connections to the others. Our own ID is ignored, so the
        whole configuration can be passed. ValueError (and nothing changed) for a bad entry."""
        self._check_open()
        wanted = {node_id: address for node_id, address in peers.items() if node_id != self.node_id}
        for node_id, address in wanted.items():
            _check_node_id(node_id)
            tcp_endpoint(address)
        for node_id in list(self._peers):
            peer = self._peers[node_id]
            if wanted.get(node_id) != peer.address:
                peer.socket.close()
                del self._peers[node_id]
        for node_id, address in wanted.items():
            if node_id not in self._peers:
                self._peers[node_id] = _Peer(address, self._connect_dealer(address))

    @property
    def peers(self) -> Mapping[NodeId, str]:
        return {node_id: peer.address for node_id, peer in self._peers.items()}

    # --- sending ---------------------------------------------------------------------------------

    def send_nowait(self, msg: Message) -> bool:
        """Hands ``msg`` to ZeroMQ for ``msg.to`` without blocking. False if it was dropped (and
        counted): unknown recipient, peer unreachable or its queue full, frame too large, or a
        fault. True if it was sent, or held by the fault layer for a delayed send."""
        assert msg.sender == self.node_id, f"{self.node_id} cannot send as {msg.sender}"
        if self.faults.enabled:
            return self._send_with_faults(msg)
        return self._send_now(msg)

    def _send_with_faults(self, msg: Message) -> bool:
        accepted = False
        for delay_s in self.faults.plan_outbound(msg.to):
            if delay_s > 0.0:
                accepted = self.faults.hold(delay_s, msg) or accepted
            else:
                accepted = self._send_now(msg) or accepted
        return accepted

    def _send_now(self, msg: Message) -> bool:
        counters = self._counters
        peer = self._peers.get(msg.to)
        if peer is None:
            counters.dropped_unknown_peer += 1
            return False
        try:
            frame = encode(msg)
        except CodecError:
            counters.dropped_oversize_out += 1
            return False
        if not peer.socket.send_nowait((frame,)):
            counters.dropped_unreachable += 1
            return False
        counters.sent += 1
        counters.bytes_out += len(frame)
        return True

    def _release_delayed(self, msg: Message) -> None:
        if not self._closed:
            self._send_now(msg)

    # --- receiving -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Receives until cancelled or closed, then closes the transport. Reports the bound
        address to ``nursery.start``. Also releases the fault layer's delayed messages and, if
        a faults file was given, keeps the fault spec in step with it."""
        self._check_open()
        assert not self._running, "Transport.run is already running"
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.faults.run_releases, self._release_delayed)
                if self._faults_file is not None:
                    nursery.start_soon(self.faults.watch_file, self._faults_file)
                if self._gate is not None:
                    nursery.start_soon(self._gate.run)
                task_status.started(self.address)
                await self._receive_loop()
                nursery.cancel_scope.cancel()
        finally:
            self._close()

    async def _receive_loop(self) -> None:
        batch_max = self.config.receive_batch_max_messages
        while True:
            try:
                batch = await self._router.recv_batch(batch_max)
            except trio.ClosedResourceError:
                return  # aclose() from another task
            for parts in batch:
                self._accept(parts)

    def _accept(self, parts: list[bytes]) -> None:
        counters = self._counters
        if len(parts) != 2:  # [identity, frame]: anything else is not from a transport DEALER
            counters.dropped_decode += 1
            return
        identity, frame = parts
        counters.bytes_in += len(frame)
        if len(frame) > FRAME_BYTES_MAX:
            counters.dropped_oversize_in += 1
            return
        try:
            msg = decode(frame)
        except CodecError:
            counters.dropped_decode += 1
            return
        if identity != msg.sender.encode():
            counters.dropped_identity += 1
            return
        if msg.to != self.node_id:
            counters.dropped_misaddressed += 1
            return
        if self.faults.enabled and not self.faults.admits_inbound(msg.sender):
            return
        if len(self._inbound) >= self.config.inbound_queue_max_messages:
            counters.dropped_inbound_full += 1
            return
        self._inbound.append(msg)
        counters.received += 1
        if self._inbound_lot:
            self._inbound_lot.unpark_all()

    async def receive_batch(self, max_n: int) -> list[Message]:
        """Waits for a message, then returns it with every other one already waiting, up to
        ``max_n``, in arrival order. ``trio.EndOfChannel`` once the transport is closed and
        what it had received is taken. Like ``TrioZmqSocket.recv_batch`` it yields before it
        takes, never after."""
        assert max_n >= 1, max_n
        await trio.lowlevel.checkpoint()
        while not self._inbound:
            if self._closed:
                raise trio.EndOfChannel
            await self._inbound_lot.park()
        return self._take(max_n)

    def take_waiting(self, max_n: int) -> list[Message]:
        """What has arrived and not been taken, up to ``max_n``, in arrival order, without
        waiting: the messages accepted already, then those still in the socket (read and checked
        here, as the receive loop would). A node that was stalled calls it before it counts the
        ticks it missed, so it reads what its peers said meanwhile first (raft_zmq/node.py)."""
        if not self._closed and len(self._inbound) < max_n:
            for parts in self._router.recv_batch_nowait(max_n - len(self._inbound)):
                self._accept(parts)
        return self._take(max_n)

    def _take(self, max_n: int) -> list[Message]:
        inbound = self._inbound
        if len(inbound) <= max_n:
            batch = list(inbound)
            inbound.clear()
            return batch
        return [inbound.popleft() for _ in range(max_n)]

    # --- statistics and closing ------------------------------------------------------------------

    def stats(self) -> TransportStats:
        fault = self.faults.stats()
        gate = self._gate.counters if self._gate is not None else None
        return TransportStats(
            refused_handshake=gate.refused_handshake if gate is not None else 0,
            refused_key=gate.refused_key if gate is not None else 0,
            **attrs.asdict(self._counters),
            fault_dropped=fault.dropped,
            fault_duplicated=fault.duplicated,
            fault_delayed=fault.delayed,
            fault_delay_overflow=fault.delay_overflow,
            fault_partitioned_outbound=fault.partitioned_outbound,
            fault_partitioned_inbound=fault.partitioned_inbound,
        )

    async def aclose(self) -> None:
        """Closes every socket at once (linger 0) and ends ``run``. Idempotent."""
        self._close()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the transport is closed")

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for peer in self._peers.values():
            peer.socket.close()
        self._peers.clear()
        if self._gate is not None:
            self._gate.close()
        self._router.close()
        self._inbound_lot.unpark_all()  # a waiting receive_batch ends with EndOfChannel
        if self._own_context:
            self._context.term()  # returns at once: every socket is closed with linger 0


assert DEAD_CONNECTION_TIMEOUT_MS > 1_000 * KEEPALIVE_IDLE_S, "an idle connection is probed first"
