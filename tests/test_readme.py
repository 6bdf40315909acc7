"""The README's code runs as written: every ```python block, and the ```toml settings example.

Each Python block runs in a fresh interpreter, in README order, in one working folder holding a copy of the
sample knowledge base (the first block indexes it with the real bundled embedder). A block that talks to
`rag serve` gets a real server on a free port (the only change made to a block is that port number).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest
import tomllib
from conftest import CORPUS, ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
KEY = "YOUR-RAG-API-KEY-HERE"


def test_every_toml_example_is_a_valid_config():
    from rag.config import Config

    blocks = re.findall(r"```toml\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 3
    configs = [Config.from_dict(tomllib.loads(block), "README.md") for block in blocks]
    assert configs[0].retrieve.mode == "hybrid" and configs[0].answer.mode == "auto"


@pytest.mark.slow
def test_every_python_block_runs_as_written(tmp_path):
    assert len(BLOCKS) >= 4
    shutil.copytree(CORPUS, tmp_path / "corpora")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    server = None
    try:
        for number, block in enumerate(BLOCKS, start=1):
            if "127.0.0.1:8000" in block:
                if server is None:
                    port = _free_port()
                    server = subprocess.Popen(
                        [sys.executable, "-m", "rag", "serve", "--port", str(port)],
                        cwd=tmp_path,
                        env={**env, "RAG_API_KEYS": KEY},
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                    _wait_healthy(f"http://127.0.0.1:{port}", server)
                block = block.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            result = subprocess.run(
                [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
            )
            assert result.returncode == 0, f"README python block {number} failed:\n{block}\n{result.stderr[-3000:]}"
            assert result.stdout.strip(), f"README python block {number} printed nothing"
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"rag serve exited: {server.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} never became healthy")
