"""A stand-in for the two kubectl commands deploy/smoke-test.sh runs, so the script can be run
against pods on 127.0.0.1:

- ``kubectl -n NS run NAME ... -- curl ARGS URL``: runs curl here, with the client Service's URL
  (``http://doq.NS.svc:8000``) replaced by the address the Service's EndpointSlice names in the
  stand-in API server: the requests follow the leader exactly as a Service would route them.
- ``kubectl -n NS delete pod NAME ...``: kill -9 of that pod's process.

State comes from the JSON file named by $FAKE_KUBECTL_STATE: {"api": url, "token": token,
"pids": {pod: pid}}.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request


def _state() -> dict:
    with open(os.environ["FAKE_KUBECTL_STATE"]) as f:
        return json.load(f)


def _service_address(state: dict, namespace: str, service: str) -> str | None:
    url = f"{state['api']}/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{service}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {state['token']}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            body = json.load(answer)
    except urllib.error.URLError:
        return None
    endpoints = body.get("endpoints") or []
    if not endpoints or not body.get("ports"):
        return None
    return f"{endpoints[0]['addresses'][0]}:{body['ports'][0]['port']}"


def main(argv: list[str]) -> int:
    namespace = argv[argv.index("-n") + 1]
    state = _state()
    if "delete" in argv:
        pod = argv[argv.index("pod") + 1]
        os.kill(state["pids"][pod], signal.SIGKILL)
        return 0
    command = argv[argv.index("--") + 1 :]
    pattern = re.compile(r"http://([a-z0-9-]+)\." + re.escape(namespace) + r"\.svc:8000")
    for i, arg in enumerate(command):
        match = pattern.match(arg)
        if match:
            address = _service_address(state, namespace, match[1])
            if address is None:  # a Service without endpoints refuses connections
                print("curl: (7) Failed to connect: no endpoints", file=sys.stderr)
                return 7
            command[i] = pattern.sub(f"http://{address}", arg, count=1)
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
