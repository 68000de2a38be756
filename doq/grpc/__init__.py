"""The Go server's gRPC service (``queue.DOQ``) on ``--grpc.address`` (docs/grpc.md).

doq/grpc/doq.proto is the Go server's file, unchanged; doq_pb2.py and doq_pb2_grpc.py beside it
are generated from it by ``make grpc-code`` (grpcio-tools) and committed.
"""
