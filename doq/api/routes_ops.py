"""Operations: /db/backup, /db/restore, /livez, /readyz, /metrics, /openapi.yaml and the JSON
schemas behind every ``$schema`` URL (API.md "Cluster and operations")."""

from __future__ import annotations

import msgspec
import yaml
from quart import Quart, Response, request
from quart_schema import DataSource, document_request, hide, tag

from doq.api.context import ApiContext
from doq.api.links import SCHEMAS_PATH, schema_url
from doq.api.openapi import standalone_schema
from doq.api.problems import ApiProblem, unavailable, validation_problem
from doq.api.render import answers, fails, json_response
from doq.api.schemas import BackupRequest, RestoreForm, StatusBody
from doq.api.validation import BODY_REQUIRED, accepts
from doq.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from doq.state.results import StateRestored

SCHEMA_NAME_CHARS_MAX = 128
# doq's backup is a snapshot of LMDB, never a diff: an incremental one cannot be made.
FULL_BACKUPS_ONLY = (
    "expected 0: doq makes complete backups only (a snapshot of the whole state), so there is "
    "no backup of what changed since a version"
)


def register_ops_routes(app: Quart, api: ApiContext) -> None:
    served = api.dispatcher.served
    service = api.service

    @tag(["Operations"])
    @fails(400, 422, 503)
    @served(is_write=False)
    @accepts(BackupRequest)
    async def backup(body: BackupRequest) -> Response:
        """Download a consistent snapshot of the queue state (application/octet-stream)

        Only complete backups exist: since must be 0, else 422. X-Last-Version (a header, sent
        before the body) is the backup's version, the Raft log index whose state it holds."""
        if body.since != 0:
            raise validation_problem(FULL_BACKUPS_ONLY, "body.since", body.since)
        taken = await service.backup_at()
        headers = {
            "Content-Disposition": 'attachment; filename="doq-backup.db"',
            "X-Last-Version": str(taken.index),
        }
        return Response(
            taken.data, status=200, headers=headers, content_type="application/octet-stream"
        )

    @tag(["Operations"])
    @answers(StatusBody)
    @fails(400, 413, 422, 503)
    @served(is_write=True)
    async def restore() -> Response:
        """Replace the whole cluster's state with a backup (multipart field "file")"""
        data = await _uploaded_file()
        result = await service.restore(data)
        assert isinstance(result, StateRestored), result
        return json_response(StatusBody(schema=schema_url("StatusBody"), status="SUCCEDED"))

    @tag(["Operations"])
    @answers(StatusBody)
    async def livez() -> Response:
        """200 while the process serves (also at /healthz, the Go server's path)"""
        return json_response(StatusBody(schema=schema_url("StatusBody"), status="OK"))

    @hide  # the same operation as /livez: one operation id in the document
    async def healthz() -> Response:
        """The Go server's Kubernetes liveness path, answered as /livez"""
        return await livez()

    @tag(["Operations"])
    @answers(StatusBody)
    @fails(503)
    async def readyz() -> Response:
        """200 once this node knows a leader, has applied everything it knows committed and has
        room on disk above its reserve"""
        if not service.is_ready():
            raise unavailable("not ready: no leader known, or the log is not applied yet")
        if service.storage_short():
            disk = service.disk
            raise unavailable(
                f"not ready: {disk.free_bytes} bytes free on disk, below the reserve of "
                f"{disk.reserve_bytes}: writes are refused (reads still work)"
            )
        return json_response(StatusBody(schema=schema_url("StatusBody"), status="READY"))

    @hide
    async def metrics() -> Response:
        return Response(api.metrics.exposition(), content_type=METRICS_CONTENT_TYPE)

    @hide
    async def openapi_yaml() -> Response:
        document = app.extensions["QUART_SCHEMA"].openapi_provider.schema()
        # Through JSON first, so status-code keys are strings in YAML as they are in JSON.
        as_json = msgspec.json.decode(msgspec.json.encode(document))
        text = yaml.safe_dump(as_json, sort_keys=False, allow_unicode=True)
        return Response(text, content_type="application/yaml")

    @hide
    async def json_schema(schema_name: str) -> Response:
        document = app.extensions["QUART_SCHEMA"].openapi_provider.schema()
        schema = standalone_schema(document, schema_name)
        if schema is None:
            raise ApiProblem(404, f"no schema named {schema_name[:SCHEMA_NAME_CHARS_MAX]}")
        return Response(msgspec.json.encode(schema), content_type="application/schema+json")

    document_request(RestoreForm, source=DataSource.FORM_MULTIPART)(restore)
    app.add_url_rule("/db/backup", view_func=backup, methods=["POST"])
    app.add_url_rule("/db/restore", view_func=restore, methods=["POST"])
    app.add_url_rule("/livez", view_func=livez, methods=["GET"])
    app.add_url_rule("/healthz", view_func=healthz, methods=["GET"])
    app.add_url_rule("/readyz", view_func=readyz, methods=["GET"])
    if api.settings.prometheus_enabled:
        app.add_url_rule("/metrics", view_func=metrics, methods=["GET"])
    app.add_url_rule("/openapi.yaml", view_func=openapi_yaml, methods=["GET"])
    app.add_url_rule(f"{SCHEMAS_PATH}/<schema_name>.json", view_func=json_schema, methods=["GET"])


async def _uploaded_file() -> bytes:
    """The bytes of multipart field ``file``: 400 without a body, 422 without the field."""
    data = await request.get_data(cache=True, parse_form_data=False)
    if not data:
        raise ApiProblem(400, BODY_REQUIRED)
    files = await request.files
    upload = files.get("file")
    if upload is None:
        raise validation_problem(
            "expected a multipart/form-data body with a file in field file", "body.file"
        )
    return upload.read()
