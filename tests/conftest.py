"""Shared fixtures. Unit tests use the HashEmbedder (no model); `slow` tests load the real bundled models once."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpora"
QUESTIONS = ROOT / "eval" / "questions.jsonl"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture
def hash_embedder():
    from rag.embeddings import HashEmbedder

    return HashEmbedder(64)


@pytest.fixture
def write(tmp_path):
    """write("a/b.md", text_or_bytes) -> Path, creating folders."""

    def _write(name: str, content, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding=encoding)
        return path

    return _write


@pytest.fixture
def kb(tmp_path):
    """A tiny knowledge base folder with three documents (English and Chinese)."""
    root = tmp_path / "kb"
    root.mkdir()
    (root / "router.md").write_text(
        "# Router\n\n## Reset\n\nHold the RESET button for 12 seconds until the LED blinks amber.\n\n"
        "## Lights\n\nSolid red means a hardware fault.\n",
        encoding="utf-8",
    )
    (root / "shipping.txt").write_text(
        "Express shipping costs 14.90 euros and takes 1 business day.\n", encoding="utf-8"
    )
    (root / "退货.md").write_text(
        "# 退货政策\n\n自签收之日起 7 天内可无理由退货。退款在 3 个工作日内完成。\n", encoding="utf-8"
    )
    return root


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test with the temporary folder as working directory (source names are relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(*args: str, cwd: Path | None = None, stdin: str | None = None, env: dict | None = None):
    """Run `python -m rag ARGS` in a subprocess; returns CompletedProcess with text output."""
    import subprocess

    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rag", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=600,
    )


@pytest.fixture(scope="session")
def real_embedder():
    """The default embedder (all-MiniLM-L6-v2 from its PyPI package), loaded once per session."""
    from rag.config import EmbedConfig
    from rag.embeddings import load_embedder

    embedder = load_embedder(EmbedConfig())
    embedder.model  # noqa: B018 - load now, once
    return embedder


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory, real_embedder):
    """The sample knowledge base indexed with the real embedder, in a session temp folder."""
    from rag.ingest import build_index

    work = tmp_path_factory.mktemp("sample")
    shutil.copytree(CORPUS, work / "corpora")
    old = Path.cwd()
    os.chdir(work)
    try:
        summary = build_index(["corpora"], "indexes/default", embedder=real_embedder, progress=False)
    finally:
        os.chdir(old)
    return work, summary


def questions() -> list[dict]:
    with open(QUESTIONS, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
