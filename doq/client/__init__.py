"""doq's Python client: ``Client`` (blocking) and ``AsyncClient`` (Trio or asyncio) with the same
surface, typed results and errors, failover and idempotent retries (docs/client.md)."""

from doq.client.aio import AsyncClient
from doq.client.calls import delay_priority
from doq.client.consume import Delivery
from doq.client.errors import (
    BadRequest,
    Conflict,
    DoqError,
    InsufficientStorage,
    MessageNotFound,
    NotFound,
    QueueEmpty,
    QueueNotFound,
    ServerError,
    StaleReceipt,
    TooLarge,
    TooManyRequests,
    Unavailable,
    ValidationFailed,
)
from doq.client.models import (
    Backup,
    Enqueued,
    ItemError,
    ItemResult,
    Member,
    Message,
    NewMessage,
    Queue,
    QueueSettings,
    Server,
)
from doq.client.sync import Client

__all__ = [
    "AsyncClient",
    "Backup",
    "BadRequest",
    "Client",
    "Conflict",
    "Delivery",
    "DoqError",
    "Enqueued",
    "InsufficientStorage",
    "ItemError",
    "ItemResult",
    "Member",
    "Message",
    "MessageNotFound",
    "NewMessage",
    "NotFound",
    "Queue",
    "QueueEmpty",
    "QueueNotFound",
    "QueueSettings",
    "Server",
    "ServerError",
    "StaleReceipt",
    "TooLarge",
    "TooManyRequests",
    "Unavailable",
    "ValidationFailed",
    "delay_priority",
]
