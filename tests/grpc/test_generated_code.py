"""The committed doq/grpc/doq_pb2*.py are what `make grpc-code` makes from doq/grpc/doq.proto, and
the proto is the Go server's service unchanged (its names are what its generated clients call)."""

from __future__ import annotations

from pathlib import Path

from grpc_tools import protoc

from doq.grpc import doq_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("doq_pb2.py", "doq_pb2_grpc.py")


def test_the_committed_code_is_generated_from_the_proto(tmp_path):
    status = protoc.main(
        [
            "protoc",
            f"-I{ROOT}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(ROOT / "doq" / "grpc" / "doq.proto"),
        ]
    )
    assert status == 0
    for name in GENERATED:
        made = (tmp_path / "doq" / "grpc" / name).read_text()
        assert made == (ROOT / "doq" / "grpc" / name).read_text(), f"run make grpc-code: {name}"


def test_the_service_has_the_go_servers_names():
    service = pb.DESCRIPTOR.services_by_name["DOQ"]
    assert service.full_name == "queue.DOQ"
    assert [m.name for m in service.methods] == [
        *("GenerateIDs", "CreateQueue", "UpdateQueue", "DeleteQueue", "GetQueue", "GetQueues"),
        *("Enqueue", "EnqueueStream", "Dequeue", "DequeueStream", "Get", "Delete", "Ack"),
        *("Nack", "UpdatePriority", "Touch"),
    ]
    fields = pb.EnqueueRequest.DESCRIPTOR.fields_by_name
    assert [(f, fields[f].number) for f in ("queueName", "id", "content", "metadata")] == [
        ("queueName", 1),
        ("id", 2),
        ("content", 5),
        ("metadata", 6),
    ]
