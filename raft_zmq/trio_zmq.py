"""A pyzmq socket used from Trio tasks, without threads and without hangs.

pyzmq has no Trio support, and the obvious integration (try a non-blocking call, else sleep on the
socket's file descriptor) hangs under load, because ``ZMQ_FD`` is not a readiness descriptor: it is
an edge-triggered "socket state may have changed" signal, and any libzmq call on the socket (send,
recv, reading ``EVENTS``) may consume the edge while messages are waiting. The rules below are the
ones that kept a million-RPC soak running here (docs/design.md, "ZeroMQ under Trio"):

1. Try the operation, or read ``EVENTS``, before sleeping on the fd.
2. After the fd wakes us, loop on ``EVENTS``: waking up does not mean that a message arrived. Wait
   only for the fd to be readable, even when we want to send.
3. After every operation, by any task, re-check ``EVENTS`` and wake the sleepers ("poke"), since our
   operation may have consumed the edge that they were waiting for. Trio lets one task wait on an fd
   at a time: one task sleeps on the fd and the others park in a ``ParkingLot``.

Receivers drain with NOBLOCK until ``zmq.Again`` (or a batch limit) per wakeup, about three times
the throughput of one message per wakeup. Closing notifies Trio first (``notify_closing``) so that
a sleeper gets ``ClosedResourceError`` instead of waiting on a recycled fd, and lingers 0 so that
close never blocks. A socket wrapped here must never be touched from another thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio
import zmq

# Plain ints: pyzmq's enum members cost an enum operation each time they are combined.
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_SNDMORE = int(zmq.NOBLOCK | zmq.SNDMORE)


class TrioZmqSocket:
    """Wraps a pyzmq socket (which it then owns: ``close`` closes it).

    Any number of tasks may send and receive concurrently. ``*_nowait`` methods never block; the
    async ones wait (cancellably) until the socket can do what was asked.
    """

    def __init__(self, sock: zmq.Socket) -> None:
        self._sock = sock
        self._fd: int = sock.getsockopt(zmq.FD)
        self._lot = trio.lowlevel.ParkingLot()  # tasks waiting while another sleeps on the fd
        self._fd_sleeper: trio.CancelScope | None = None  # the task sleeping on the fd
        self._want_in = 0  # number of tasks waiting to receive
        self._want_out = 0  # number of tasks waiting to send
        self._closed = False

    @property
    def zmq_socket(self) -> zmq.Socket:
        """The wrapped socket, for options and endpoints; send and receive through the wrapper."""
        return self._sock

    @property
    def closed(self) -> bool:
        return self._closed

    # --- non-blocking operations -----------------------------------------------------------------

    def send_nowait(self, parts: Sequence[bytes]) -> bool:
        """Sends one message of ``parts``; False (nothing sent) if zmq says it would block."""
        self._check_open()
        send = self._sock.send
        try:
            # A message's parts are queued atomically: Again can only come with the first part.
            # (pyzmq's send_multipart costs four times a send, measured, for one part.)
            for part in parts[:-1]:
                send(part, _NOBLOCK_SNDMORE)
            send(parts[-1], _NOBLOCK)
        except zmq.Again:
            return False
        finally:
            self._poke()
        return True

    def recv_nowait(self) -> list[bytes] | None:
        """The next message's parts, or None if none is waiting."""
        self._check_open()
        try:
            return self._recv_parts()
        except zmq.Again:
            return None
        finally:
            self._poke()

    def _recv_parts(self) -> list[bytes]:
        # A Frame says whether more parts follow; pyzmq's recv_multipart asks getsockopt instead,
        # measured 25 % slower for a two-part ROUTER message.
        recv = self._sock.recv
        frame = recv(_NOBLOCK, copy=False)
        parts = [frame.bytes]
        while frame.more:
            frame = recv(_NOBLOCK, copy=False)
            parts.append(frame.bytes)
        return parts

    def _drain(self, batch: list[list[bytes]], max_n: int) -> None:
        """Moves up to ``max_n`` waiting messages into ``batch`` (rule: drain per wakeup)."""
        recv_parts = self._recv_parts
        try:
            while len(batch) < max_n:
                batch.append(recv_parts())
        except zmq.Again:
            pass
        finally:
            self._poke()

    # --- waiting operations ----------------------------------------------------------------------

    async def send(self, parts: Sequence[bytes]) -> None:
        """Sends one message, waiting while the socket cannot take it (high-water mark)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self.send_nowait(parts):
            await self._wait(_POLLOUT)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def recv(self) -> list[bytes]:
        """The next message's parts, waiting for one."""
        (parts,) = await self.recv_batch(1)
        return parts

    async def recv_batch(self, max_n: int) -> list[list[bytes]]:
        """Waits for at least one message, then takes every waiting one, up to ``max_n``.

        The one checkpoint comes first: once messages are taken they are returned without
        another yield, so no other task can run while they are in neither the socket nor the
        caller's hands (a task that reads the socket with ``recv_batch_nowait`` sees every message
        that has arrived; raft_zmq/node.py's ticker relies on it). Cancellation loses nothing."""
        assert max_n >= 1, max_n
        await trio.lowlevel.checkpoint()
        batch = self.recv_batch_nowait(max_n)
        while not batch:
            await self._wait(_POLLIN)
            self._drain(batch, max_n)
        return batch

    def recv_batch_nowait(self, max_n: int) -> list[list[bytes]]:
        """Every waiting message, up to ``max_n``; an empty list if none is waiting."""
        self._check_open()
        batch: list[list[bytes]] = []
        self._drain(batch, max_n)
        return batch

    # --- the edge-triggered fd -------------------------------------------------------------------

    def _poke(self) -> None:
        """Wakes the waiters if the socket can now do what they wait for (rule 3)."""
        if self._closed:
            return
        want = (_POLLIN if self._want_in else 0) | (_POLLOUT if self._want_out else 0)
        if want and self._sock.getsockopt(_EVENTS) & want:
            if self._fd_sleeper is not None:
                self._fd_sleeper.cancel()
            self._lot.unpark_all()

    async def _wait(self, mask: int) -> None:
        """Returns once ``EVENTS`` has a bit of ``mask`` set (rules 1 and 2)."""
        if mask & _POLLIN:
            self._want_in += 1
        else:
            self._want_out += 1
        try:
            while True:
                self._check_open()
                if self._sock.getsockopt(_EVENTS) & mask:
                    return
                if self._fd_sleeper is None:
                    await self._sleep_on_fd()
                else:
                    await self._lot.park()
        finally:
            if mask & _POLLIN:
                self._want_in -= 1
            else:
                self._want_out -= 1

    async def _sleep_on_fd(self) -> None:
        with trio.CancelScope() as scope:
            self._fd_sleeper = scope
            try:
                await trio.lowlevel.wait_readable(self._fd)
            finally:
                self._fd_sleeper = None
                # Woken, poked, cancelled or closed: either way the parked tasks must re-check
                # EVENTS, and one of them must take over the fd if we leave.
                self._lot.unpark_all()

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the ZeroMQ socket is closed")

    # --- closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the socket at once (linger 0); waiting tasks get ``trio.ClosedResourceError``.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        trio.lowlevel.notify_closing(self._fd)  # before libzmq frees the fd for reuse
        self._lot.unpark_all()
        self._sock.close(linger=0)
