"""docs/client.md's examples, run as printed: its ``python`` blocks in one namespace, in order,
and its ``sh`` blocks through bash with this environment's ``doq`` on the PATH, against a real
node (``shell`` blocks are shown only: they start a cluster or run until stopped)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .test_async_client import in_own_thread

DOC = Path(__file__).parents[2] / "docs" / "client.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(language: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(DOC.read_text()) if lang == language]


def test_the_page_has_examples_of_each_kind():
    assert len(_blocks("python")) >= 4 and len(_blocks("sh")) >= 1 and _blocks("shell")


def test_the_python_examples_run(node, monkeypatch, tmp_path):
    monkeypatch.setenv("DOQ_SERVERS", node.url)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_client_examples"}

    def run_all() -> None:
        for number, block in enumerate(_blocks("python"), 1):
            code = compile(block, f"docs/client.md python block {number}", "exec")
            try:
                exec(code, namespace)
            except Exception as exc:
                raise AssertionError(f"python block {number} of docs/client.md failed") from exc

    in_own_thread(run_all)  # the examples call asyncio.run, which unsets the thread's loop


def test_the_shell_examples_run(node, tmp_path):
    env = dict(os.environ, DOQ_SERVERS=node.url)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for number, block in enumerate(_blocks("sh"), 1):
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"sh block {number} failed:\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "docs-backup.db").stat().st_size > 0
