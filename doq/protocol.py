"""The API's limits, declared once: the server enforces them and the client checks them before
it sends (docs/api.md). A module of constants with no imports, so that the client, which may not
import the node's modules (the import contracts in pyproject.toml), shares them with the server."""

from __future__ import annotations

BATCH_ITEMS_MAX = 1_000  # items in one batch request (enqueue, ack, nack, touch) or stream bundle
DEQUEUE_COUNT_MAX = 1_000  # messages one dequeue (one Dequeue command) may deliver
WAIT_S_MAX = 20  # the longest a dequeue may wait (SQS's long-poll limit)
GENERATE_IDS_MAX = 1_000  # IDs one POST /API/v1/ids may ask for
STREAM_CREDIT_MAX = 10_000  # messages a stream consumer may have granted and not yet received
