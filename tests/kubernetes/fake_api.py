"""A stand-in for the few Kubernetes API calls doq makes, served on 127.0.0.1: get, create and
replace one EndpointSlice (with resourceVersion conflicts, as the real API server checks them) and
get a StatefulSet. It can fail the next N requests, and it records every slice it stores, so a
test can ask which pod the client Service named and when. Bearer tokens are required, as from a
service account. Not Kubernetes: only what doq's calls need."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "stand-in-token"
_SLICE = re.compile(r"/apis/discovery\.k8s\.io/v1/namespaces/([^/]+)/endpointslices(?:/([^/?]+))?")
_SET = re.compile(r"/apis/apps/v1/namespaces/([^/]+)/statefulsets/([^/?]+)")


class FakeKubernetesApi:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.slices: dict[tuple[str, str], dict[str, Any]] = {}
        self.statefulsets: dict[tuple[str, str], dict[str, Any]] = {}
        self.history: list[tuple[float, str | None]] = []  # (monotonic time, pod named)
        self.fail_next = 0  # answer this many requests with 500
        self.refuse_naming: set[str] = set()  # writes that name these pods answer 500
        self.failed = 0
        self.requests = 0
        self._version = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, namespace: str) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "stand-in", "cluster": {"server": self.url}}],
                "users": [{"name": "doq", "user": {"token": TOKEN}}],
                "contexts": [
                    {
                        "name": "stand-in",
                        "context": {"cluster": "stand-in", "user": "doq", "namespace": namespace},
                    }
                ],
                "current-context": "stand-in",
            }
        )

    def set_replicas(self, namespace: str, name: str, replicas: int) -> None:
        with self.lock:
            self.statefulsets[(namespace, name)] = {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
                "spec": {
                    "replicas": replicas,
                    "serviceName": "doq-internal",
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}},
                },
            }

    def named(self, namespace: str, name: str) -> str | None:
        """The pod the slice names now (None: no slice, or an empty one)."""
        with self.lock:
            found = self.slices.get((namespace, name))
            return _pod_named(found) if found else None

    def slice(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self.slices.get((namespace, name))

    # --- the server ----------------------------------------------------------------------------
    def _answer(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        with self.lock:
            self.requests += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                self.failed += 1
                return 500, _status(500, "InternalError", "the stand-in fails on purpose")
            if match := _SET.fullmatch(path):
                found = self.statefulsets.get((match[1], match[2]))
                if method != "GET" or found is None:
                    return 404, _status(404, "NotFound", "no such statefulset")
                return 200, found
            if match := _SLICE.fullmatch(path):
                return self._slice(method, match[1], match[2], body)
            return 404, _status(404, "NotFound", f"the stand-in does not serve {path}")

    def _slice(self, method: str, ns: str, name: str | None, body: Any) -> tuple[int, Any]:
        current = self.slices.get((ns, name)) if name else None
        if method == "GET" and name:
            return (200, current) if current else (404, _status(404, "NotFound", "no slice"))
        if method == "POST" and not name and isinstance(body, dict):
            key = (ns, body["metadata"]["name"])
            if key in self.slices:
                return 409, _status(409, "AlreadyExists", "slice exists")
            status, answer = self._store(key, body)
            return (201 if status == 200 else status), answer
        if method == "PUT" and name and isinstance(body, dict):
            if current is None:
                return 404, _status(404, "NotFound", "no slice")
            wanted = body["metadata"].get("resourceVersion")
            if wanted != current["metadata"]["resourceVersion"]:
                return 409, _status(409, "Conflict", "the object has been modified")
            if body.get("addressType") != current.get("addressType"):
                return 422, _status(422, "Invalid", "addressType is immutable")
            return self._store((ns, name), body)
        return 405, _status(405, "MethodNotAllowed", method)

    def _store(self, key: tuple[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        if _pod_named(body) in self.refuse_naming:
            self.failed += 1
            return 500, _status(500, "InternalError", "the stand-in refuses this pod")
        self._version += 1
        body = json.loads(json.dumps(body))
        body["metadata"]["resourceVersion"] = str(self._version)
        self.slices[key] = body
        self.history.append((time.monotonic(), _pod_named(body)))
        return 200, body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    status, answer = 401, _status(401, "Unauthorized", "no token")
                else:
                    try:
                        body = json.loads(raw) if raw else None
                    except ValueError:
                        body = None
                    status, answer = api._answer(method, self.path.split("?")[0], body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _pod_named(body: dict[str, Any]) -> str | None:
    for endpoint in body.get("endpoints") or []:
        ref = endpoint.get("targetRef") or {}
        if ref.get("name"):
            return ref["name"]
    return None


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
