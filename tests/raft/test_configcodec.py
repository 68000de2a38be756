"""Configuration entries: what the log and snapshot metadata store about membership."""

from __future__ import annotations

import pytest

from raft_zmq.core.configcodec import ConfigDecodeError, decode_config, encode_config
from raft_zmq.core.types import ClusterConfig, Server, Suffrage


def test_a_configuration_round_trips_with_suffrage_and_metadata():
    config = ClusterConfig(
        (
            Server("b", "10.0.0.2:9000", Suffrage.NONVOTER, '{"http":"10.0.0.2:8000"}'),
            Server("a", "10.0.0.1:9000"),
        )
    )
    assert decode_config(encode_config(config)) == config
    assert [s.id for s in config.servers] == ["a", "b"]  # kept sorted: equal configs are equal


def test_an_entry_written_before_metadata_existed_still_decodes():
    data = b'{"servers":[["a","h:1",0]],"v":1}'
    assert decode_config(data) == ClusterConfig((Server("a", "h:1"),))


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"v":2,"servers":[]}',
        b'{"v":1,"servers":[["","h:1",0]]}',
        b'{"v":1,"servers":[["a","h:1",7]]}',
        b'{"v":1,"servers":[["a","h:1",0],["a","h:2",0]]}',
        b'{"v":1,"servers":[["a","h:1",0,5]]}',
        b'{"v":1,"servers":[["a","h:1",0,"m","extra"]]}',
    ],
)
def test_malformed_configurations_are_refused_with_one_error_type(data):
    with pytest.raises(ConfigDecodeError):
        decode_config(data)
