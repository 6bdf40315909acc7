import json
import signal
import subprocess
import sys
import time

from conftest import ROOT, run_cli


def test_help_does_not_import_torch():
    code = "import sys; from rag.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip().endswith("False False")


def test_index_and_search_json_contracts(tmp_path, kb):
    res = run_cli("index", "kb", "--index", "indexes/idx", "--embedder", "hash", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["files"]["indexed"] == 3 and summary["index"] == "indexes/idx"
    res = run_cli("search", "reset button", "--index", "indexes/idx", "-k", "2", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["query"] == "reset button" and len(out["hits"]) == 2
    hit = out["hits"][0]
    assert set(hit) >= {"rank", "score", "source", "page", "chunk_id", "text"}
    assert hit["rank"] == 1 and hit["source"] == "kb/router.md" and hit["chunk_id"].startswith("kb/router.md#")
    # re-run with nothing changed
    again = json.loads(run_cli("index", "kb", "--index", "indexes/idx", "--json", cwd=tmp_path).stdout)
    assert again["files"]["unchanged"] == 3 and again["files"]["indexed"] == 0


def test_search_reads_queries_from_stdin(tmp_path, kb):
    run_cli("index", "kb", "--index", "indexes/idx", "--embedder", "hash", cwd=tmp_path)
    res = run_cli("search", "-", "--index", "indexes/idx", "--json", "-k", "1", cwd=tmp_path, stdin="reset\n\n退货\n")
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [x["query"] for x in lines] == ["reset", "退货"]
    assert lines[1]["hits"][0]["source"] == "kb/退货.md"


def test_output_read_only_in_part_ends_quietly(tmp_path, kb):
    """`rag search - | head -1`: when the reader closes the pipe, rag stops without a traceback (exit 141, as a
    tool killed by SIGPIPE)."""
    import os

    run_cli("index", "kb", "--index", "indexes/idx", "--embedder", "hash", cwd=tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "search", "-", "--index", "indexes/idx", "-k", "3"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    proc.stdin.write(b"reset button\n" * 2000)
    proc.stdin.close()
    assert proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141 and "Traceback" not in stderr, stderr


def test_bare_index_name_means_indexes_folder(tmp_path, kb):
    assert run_cli("index", "kb", "--index", "support", "--embedder", "hash", cwd=tmp_path).returncode == 0
    assert (tmp_path / "indexes" / "support" / "manifest.json").exists()


def test_errors_are_one_line_and_nonzero(tmp_path):
    (tmp_path / "only.png").write_bytes(b"\x89PNG")
    res = run_cli("index", "only.png", "--index", "indexes/idx", "--embedder", "hash", cwd=tmp_path)
    assert res.returncode == 1 and res.stderr.startswith("rag: error: no file") and "Traceback" not in res.stderr
    res = run_cli("search", "x", "--index", "indexes/idx", cwd=tmp_path)
    assert res.returncode == 1 and "no index at" in res.stderr
    res = run_cli("index", "missing-folder", cwd=tmp_path)
    assert res.returncode == 1 and "does not exist" in res.stderr
    res = run_cli("index", "--chunk-size", "100", "--chunk-overlap", "200", cwd=tmp_path)
    assert res.returncode == 1 and "overlap" in res.stderr


def test_exit_zero_when_some_files_are_skipped(tmp_path, kb):
    (kb / "bad.txt").write_bytes(b"")
    res = run_cli("index", "kb", "--index", "indexes/idx", "--embedder", "hash", cwd=tmp_path)
    assert res.returncode == 0 and "skipped kb/bad.txt: empty file" in res.stderr


def test_killed_mid_index_leaves_a_loadable_index(tmp_path):
    """SIGKILL `rag index` at many moments of a rebuild; every time, the index must load and be whole."""
    from rag import store
    from rag.retrieve import Retriever

    kb = tmp_path / "kb"
    kb.mkdir()
    for i in range(150):
        (kb / f"doc{i:03d}.md").write_text(f"# Doc {i}\n\n" + f"Paragraph about topic {i}. " * 80, encoding="utf-8")
    assert run_cli("index", "kb", "--index", "indexes/idx", "--embedder", "hash", cwd=tmp_path).returncode == 0
    good = store.read_manifest(tmp_path / "indexes/idx")
    for delay in (0.2, 0.5, 0.8, 1.1, 1.4, 1.8, 2.2):
        for f in list(kb.iterdir())[::3]:
            f.write_text(f.read_text() + f" change {delay}", encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag", "index", "kb", "--index", "indexes/idx", "--rebuild"],
            cwd=tmp_path,
            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        m = store.read_manifest(tmp_path / "indexes/idx")
        r = Retriever(tmp_path / "indexes/idx")
        hits = r.search("topic 7", k=3)
        assert len(hits) == 3 and len(r.chunks) == m.chunks
        assert m.generation == good.generation or m.chunks > 0
    # and a normal run afterwards recovers cleanly
    assert run_cli("index", "kb", "--index", "indexes/idx", cwd=tmp_path).returncode == 0


def test_a_refusal_names_the_closest_passages_read(tmp_path, kb):
    run_cli("index", "kb", "--index", "indexes/idx", "--embedder", "hash", cwd=tmp_path)
    (tmp_path / "strict.toml").write_text("[answer]\nmin_evidence = 0.999\n")  # nothing is evidence enough
    res = run_cli(
        "ask", "How long do I hold the reset button?", "--index", "indexes/idx",
        cwd=tmp_path, env={"RAG_CONFIG": str(tmp_path / "strict.toml")},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    first, second = res.stdout.splitlines()[:2]
    assert first == "I could not find this in the knowledge base."
    assert second.startswith("  (no passage answers it; the closest read: kb/router.md")


def test_extractive_mode_says_the_generator_it_was_given_is_not_used(tmp_path, kb):
    # --adapter with --mode extractive was ignored without a word
    assert run_cli("index", "kb", "--index", "idx", "--embedder", "hash", cwd=tmp_path).returncode == 0
    res = run_cli("ask", "How long do I hold RESET?", "--index", "idx", "--adapter", "none", "--mode", "extractive", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0 and "without a generator: --adapter not used" in res.stderr
