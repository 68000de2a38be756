"""``/API/v1/queues/{name}/stream``: the WebSocket of a streaming consumer and producer.

Binds a stream session (doq/api/streams.py) to Quart-Trio's WebSocket: the socket is accepted,
then, before any frame is read, the serve decision says where the stream is served
(doq/api/serving.py): a follower sends an error frame naming the leader and closes (1013), and so
does a leader whose queue is not there (404, 1008). Otherwise the session runs until the client
leaves or it ends, and its error frame, if any, is sent before the close.

The query takes ``ack`` as a dequeue does: with ``ack=true`` messages are removed as they are
delivered; without it they stay in flight until acked, nacked, or their ack deadline passes.
"""

from __future__ import annotations

import trio
from quart import Quart, websocket

from doq.api.context import ApiContext
from doq.api.errors import ApiProblem, problem_for_service_error
from doq.api.routes_messages import MESSAGES_PATH
from doq.api.serving import parse_bool_query, request_deadline
from doq.api.stream_frames import ENCODER
from doq.api.streams import (
    CLOSE_TRY_AGAIN,
    ClientGone,
    Ending,
    StreamSession,
    error_frame,
    problem_ending,
)
from doq.api.validation import check_queue_name
from doq.service import ServiceError

STREAM_PATH = MESSAGES_PATH.removesuffix("/messages") + "/stream"


async def _receive() -> str | bytes:
    try:
        return await websocket.receive()
    except trio.ClosedResourceError:
        raise ClientGone() from None


async def _send_text(text: str) -> None:
    await websocket.send(text)


async def _close(ending: Ending) -> None:
    try:
        if ending.frame is not None:
            await websocket.send(ENCODER.encode(ending.frame).decode())
        await websocket.close(ending.code)
    except Exception:  # the client left first: nothing to tell it
        pass


def register_stream_routes(app: Quart, api: ApiContext) -> None:
    decision = api.dispatcher.decision

    async def stream(name: str) -> None:
        await websocket.accept()
        try:
            queue = check_queue_name(name)
            ack = parse_bool_query("ack", websocket.args.get("ack"))
            deadline = request_deadline(websocket.scope, api.settings.request_timeout_s)
            leader = await decision.stream_home(deadline)
            if leader is not None:
                problem = ApiProblem(503, f"this node is not the leader; stream at {leader}")
                await _close(Ending(error_frame(problem, f"http://{leader}"), CLOSE_TRY_AGAIN))
                return
            with trio.move_on_at(deadline):
                await api.service.queue_info(queue)
        except ApiProblem as problem:
            await _close(problem_ending(problem))
            return
        except ServiceError as exc:
            await _close(problem_ending(problem_for_service_error(exc)))
            return
        session = StreamSession(api, queue, ack, _send_text)
        await _close(await session.run(_receive))

    app.add_websocket(STREAM_PATH, view_func=stream)
