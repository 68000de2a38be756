"""gRPC over TLS (docs/grpc.md, "TLS"): a node that serves HTTPS serves gRPC over TLS with the same
certificate, made here by a throwaway CA (trustme). A client that verifies the certificate is
served (grpclib's, and grpcio's, which insists on ALPN h2); one that does not trust the CA, or
speaks plaintext to the TLS port, fails at once with a clear error and changes nothing."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import attrs
import grpc
import httpx
import pytest
import trio
import trustme
from grpclib.client import Channel, UnaryUnaryMethod
from grpclib.exceptions import StreamTerminatedError

from doq.grpc import doq_pb2 as pb
from doq.grpc import doq_pb2_grpc as pb_grpc
from doq.server import DoqNode

from .support import READY_S_MAX, node_settings

ADMIN = "admin-token-0123456789"
CALL_S_MAX = 10  # a refused client must fail well within this, not hang


@pytest.fixture
def ca(tmp_path) -> tuple[str, str, str]:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = (str(tmp_path / n) for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    authority.cert_pem.write_to_path(cafile)
    return certfile, keyfile, cafile


def verifying(cafile: str | None) -> ssl.SSLContext:
    """A client context that verifies the server's certificate (against the system's CAs when
    ``cafile`` is None) and asks for HTTP/2, as gRPC clients do."""
    context = ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(["h2"])
    return context


def grpclib_call(port: int, tls: ssl.SSLContext | None, method: str, request: Any) -> Any:
    """One unary call with grpclib's client, on an asyncio loop of its own (run in a thread)."""
    reply = getattr(pb, type(request).__name__.replace("Request", "Response"))

    async def main() -> Any:
        channel = Channel("127.0.0.1", port, ssl=tls)
        try:
            call = UnaryUnaryMethod(channel, f"/queue.DOQ/{method}", type(request), reply)
            metadata = {"authorization": f"Bearer {ADMIN}"}
            return await call(request, timeout=CALL_S_MAX, metadata=metadata)
        finally:
            channel.close()

    return asyncio.run(main())


async def _tls_node(nursery: trio.Nursery, root: str, ca: tuple[str, str, str]) -> DoqNode:
    certfile, keyfile, cafile = ca
    settings = attrs.evolve(
        node_settings(root, "solo"),
        http__certfile=certfile,
        http__keyfile=keyfile,
        http__ca_file=cafile,
        http__tokens=f"{ADMIN} admin",
    )
    node = DoqNode(settings)
    await nursery.start(node.run)
    async with httpx.AsyncClient(verify=verifying(cafile)) as client:
        with trio.fail_after(READY_S_MAX):
            while True:
                try:
                    url = f"https://127.0.0.1:{settings.http__port}/readyz"
                    if (await client.get(url)).status_code == 200:
                        return node
                except httpx.HTTPError:
                    pass
                await trio.sleep(0.02)


async def test_a_client_that_verifies_the_certificate_is_served_over_tls(tmp_path, ca):
    async with trio.open_nursery() as nursery:
        node = await _tls_node(nursery, str(tmp_path), ca)
        port = node.grpc_port
        try:
            create = pb.CreateQueueRequest(name="q", type="delayed")
            assert (
                await trio.to_thread.run_sync(
                    grpclib_call, port, verifying(ca[2]), "CreateQueue", create
                )
            ).success
            enqueue = pb.EnqueueRequest(queueName="q", content="over tls")
            sent = await trio.to_thread.run_sync(
                grpclib_call, port, verifying(ca[2]), "Enqueue", enqueue
            )
            assert sent.content == "over tls"

            # grpcio's client, as the Go server's users generate it: it requires ALPN h2.
            with open(ca[2], "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
            channel = grpc.secure_channel(f"127.0.0.1:{port}", credentials)
            try:
                stub = pb_grpc.DOQStub(channel)
                info = await trio.to_thread.run_sync(
                    lambda: stub.GetQueue(
                        pb.GetQueueRequest(name="q"),
                        metadata=(("authorization", f"Bearer {ADMIN}"),),
                        timeout=CALL_S_MAX,
                    )
                )
                assert (info.name, info.total) == ("q", 1)
            finally:
                channel.close()
        finally:
            node.stop()


async def test_untrusted_and_plaintext_clients_fail_cleanly(tmp_path, ca):
    async with trio.open_nursery() as nursery:
        node = await _tls_node(nursery, str(tmp_path), ca)
        port = node.grpc_port
        create = pb.CreateQueueRequest(name="q", type="delayed")
        try:
            with trio.fail_after(CALL_S_MAX):
                # A client that does not trust the node's CA refuses the certificate.
                with pytest.raises(ssl.SSLCertVerificationError):
                    await trio.to_thread.run_sync(
                        grpclib_call, port, verifying(None), "CreateQueue", create
                    )
                # Plaintext HTTP/2 to the TLS port: the handshake fails, the call ends at once.
                with pytest.raises(StreamTerminatedError, match="Connection lost"):
                    await trio.to_thread.run_sync(grpclib_call, port, None, "CreateQueue", create)
                channel = grpc.insecure_channel(f"127.0.0.1:{port}")
                try:
                    stub = pb_grpc.DOQStub(channel)
                    with pytest.raises(grpc.RpcError) as plaintext:
                        await trio.to_thread.run_sync(
                            lambda: stub.CreateQueue(create, timeout=CALL_S_MAX)
                        )
                    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
                finally:
                    channel.close()
            # None of them created anything, and the node still serves a verifying client.
            listed = await trio.to_thread.run_sync(
                grpclib_call, port, verifying(ca[2]), "GetQueues", pb.GetQueuesRequest()
            )
            assert list(listed.queues) == []
        finally:
            node.stop()
