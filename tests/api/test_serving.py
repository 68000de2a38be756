"""The one serve decision's framework-free pieces (doq/api/serving.py): the query and path rules
every front shares."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from doq.api.errors import ApiProblem
from doq.api.serving import ACK_QUERIES, messages_queue, parse_bool_query
from doq.commands import QUEUE_NAME_CHARS_MAX


def test_the_raw_ack_table_reads_as_the_query_rule():
    """The fast path's whole-query table and the routes' parser are one rule."""
    for raw, value in ACK_QUERIES.items():
        words = parse_qs(raw.decode(), keep_blank_values=True).get("ack", [None])
        assert parse_bool_query("ack", words[0]) is value, raw


def test_a_query_value_that_is_no_boolean_is_a_422_naming_it():
    with pytest.raises(ApiProblem) as caught:
        parse_bool_query("ack", "perhaps")
    assert caught.value.status == 422
    assert caught.value.errors is not None
    assert caught.value.errors[0].location == "query.ack"


@pytest.mark.parametrize(
    ("path", "queue"),
    [
        ("/API/v1/queues/q/messages", "q"),
        ("/API/v1/queues/a.b-c/messages", "a.b-c"),
        ("/API/v1/queues//messages", None),
        ("/API/v1/queues/q/messages/1", None),
        ("/API/v1/queues/a/b/messages", None),
        ("/API/v1/queues/q", None),
        (f"/API/v1/queues/{'n' * (QUEUE_NAME_CHARS_MAX + 1)}/messages", None),
    ],
)
def test_the_messages_path_names_its_queue(path, queue):
    assert messages_queue(path) == queue
