"""Generator backends: transformers fp32 vs llama.cpp in process vs llama.cpp's server over HTTP, on the bundled
SmolLM2 and the same prompts, plus `rag serve`'s search latency while it generates.

- speed: prompt tokens/s (prefill), time to first token and decode tokens/s on one ~400-token RAG prompt, the
  prompt never cached (llama.cpp reuses a shared prefix between calls; that is measured apart), best of 3;
- answers: `RAG.ask(mode="generative")` end to end on sample questions, warm, per backend (and over HTTP to
  llama-cpp-python's server: the protocol's overhead), with how often llama.cpp's answer equals transformers';
- cold: a fresh `rag ask --mode generative` process per backend;
- quality: `rag eval` of the `rag` system on the sample suite per backend (contains-gold accuracy, refusals);
- serve: `rag serve` search p50/p99 idle vs during a burst of generative chats, with generation in the server's
  process (the old way), in its niced child process (the default), and on llama.cpp.

Usage: python -m benchmarks.gen_backends [--quick]   (`make bench` runs it as `gen_backends`)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work" / "gen"
QUESTIONS = ROOT / "eval" / "questions.jsonl"
QUESTION = "How long do I hold the RESET button to factory reset the HomeHub R7?"


def _questions(n: int) -> list[str]:
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["question"] for r in rows if r.get("answerable") and r["question"].isascii()][:n]


def _index() -> Path:
    """The sample knowledge base, indexed once for these benchmarks."""
    index = WORK / "indexes" / "default"
    if not (index / "manifest.json").is_file():
        from rag.ingest import build_index

        shutil.rmtree(WORK, ignore_errors=True)
        shutil.copytree(ROOT / "corpora", WORK / "corpora")
        build_index([WORK / "corpora"], index, progress=False)
    return index


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, seconds: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


# Speed on one prompt ----------------------------------------------------------------------------------------


def _prompt_messages() -> list[dict]:
    from rag.prompt import build_messages
    from rag.retrieve import Retriever

    hits = Retriever(_index()).search(QUESTION, k=3)
    return build_messages(QUESTION, hits)


def speed(new: int, threads: list[int]) -> dict:
    from rag.config import GenerateConfig
    from rag.generate import Generator
    from rag.llamacpp import LlamaCppGenerator

    messages = _prompt_messages()
    out = {}
    hf = Generator(GenerateConfig(threads=threads[0])).load()
    prompt = hf.render(messages)
    hf.generate(prompt, max_new_tokens=2)  # warm up
    best = None
    for _ in range(3):
        one = hf.generate(prompt, max_new_tokens=1)
        full = hf.generate(prompt, max_new_tokens=new, min_new_tokens=new)
        row = (one.seconds, full.seconds, one.prompt_tokens)
        best = row if best is None or row[1] < best[1] else best
    out["transformers_fp32"] = _speed_row(*best, new)
    for n in threads:
        gen = LlamaCppGenerator(GenerateConfig(backend="llamacpp", threads=n)).load()
        llm = gen.llm
        tokens = llm.tokenize(gen.render(messages).encode(), add_bos=False, special=True)
        best = None
        for _ in range(3):
            llm.reset()  # a cold prompt, as transformers sees it
            started = time.perf_counter()
            first = None
            for i, _token in enumerate(llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0)):
                if first is None:
                    first = time.perf_counter() - started
                if i + 1 >= new:
                    break
            row = (first, time.perf_counter() - started, len(tokens))
            best = row if best is None or row[1] < best[1] else best
        out[f"llamacpp_{n}_threads"] = _speed_row(*best, new)
        # the same prompt again: llama.cpp keeps the evaluated prefix, as a chat's system prompt would be kept
        started = time.perf_counter()
        next(iter(llm.generate(tokens, temp=0.0, top_k=1)))
        out[f"llamacpp_{n}_threads"]["first_token_s_prefix_cached"] = round(time.perf_counter() - started, 4)
        del gen, llm
    base = out["transformers_fp32"]
    for row in out.values():
        row["decode_vs_transformers"] = round(row["decode_tok_s"] / base["decode_tok_s"], 2)
        row["prefill_vs_transformers"] = round(row["prefill_tok_s"] / base["prefill_tok_s"], 2)
    return out


def _speed_row(first_s: float, total_s: float, prompt_tokens: int, new: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "first_token_s": round(first_s, 4),
        "prefill_tok_s": round(prompt_tokens / first_s, 1),
        "decode_tok_s": round((new - 1) / (total_s - first_s), 2),
    }


# Answers end to end ------------------------------------------------------------------------------------------


def _llama_server(threads: int) -> tuple[subprocess.Popen, str]:
    from rag.config import DEFAULT_GENERATOR
    from rag.llamacpp import gguf_file

    port = _port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_file(DEFAULT_GENERATOR)), "--model_alias",
         "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", str(threads),
         "--n_threads_batch", str(threads)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )  # fmt: skip
    _wait(f"http://127.0.0.1:{port}/v1/models", proc)
    return proc, f"http://127.0.0.1:{port}/v1"


def answers(questions: list[str], threads: int, server_url: str) -> dict:
    from rag.config import Config
    from rag.pipeline import RAG

    variants = {
        "transformers_fp32": {"threads": threads},
        "llamacpp": {"backend": "llamacpp", "threads": threads},
        "http_llamacpp_server": {"base_url": server_url, "model": "smollm2"},
    }
    out, texts = {}, {}
    for name, generate in variants.items():
        bot = RAG(_index(), Config().override(generate=generate, answer={"mode": "generative"}))
        bot.ask(questions[0], max_new_tokens=4)  # load
        times, first, texts[name] = [], [], []
        for q in questions:
            started = time.perf_counter()
            answer = bot.ask(q)
            times.append(time.perf_counter() - started)
            first.append(answer.timings.get("first_token_s") or 0.0)
            texts[name].append(answer.answer)
        out[name] = {
            "answer_s_median": round(statistics.median(times), 3),
            "answer_s_mean": round(statistics.mean(times), 3),
            "first_token_s_median": round(statistics.median(first), 3),
        }
    base = out["transformers_fp32"]["answer_s_mean"]
    for row in out.values():
        row["speedup_vs_transformers"] = round(base / row["answer_s_mean"], 2)
    out["http_overhead_ratio"] = round(
        out["http_llamacpp_server"]["answer_s_mean"] / out["llamacpp"]["answer_s_mean"], 3
    )
    same = sum(a == b for a, b in zip(texts["transformers_fp32"], texts["llamacpp"]))
    out["llamacpp_same_answer_as_transformers"] = f"{same}/{len(questions)}"
    out["questions"] = len(questions)
    return out


def cold(runs: int) -> dict:
    out = {}
    for name, extra in (("transformers_fp32", []), ("llamacpp", ["--backend", "llamacpp"])):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "rag", "ask", QUESTION, "--mode", "generative", "--json", *extra],
                cwd=WORK,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr)
            times.append(time.perf_counter() - started)
        out[name] = {"rag_ask_generative_cold_s": round(min(times), 2)}
    return out


def quality(limit: int) -> dict:
    from rag.eval.harness import run_eval
    from rag.eval.report import summarize
    from rag.eval.suite import load_suite

    out = {}
    for name, generate in (("transformers_fp32", {}), ("llamacpp", {"backend": "llamacpp"})):
        suite = load_suite(ROOT / "eval" / "suites" / "sample.yaml")
        suite.config = suite.config.override(generate=generate)
        run = run_eval(suite, systems=["rag"], limit=limit, work=WORK / "eval", progress=False, log=lambda m: None)
        metrics = summarize(run)["systems"]["rag"]["metrics"]
        out[name] = {
            k: metrics[k]["mean"] for k in ("accuracy", "contains", "refusal_accuracy", "false_refusal") if k in metrics
        }
    out["questions"] = limit
    return out


# rag serve: searches while it generates -------------------------------------------------------------------------


def serve(label: str, extra: list[str], chats: int, max_tokens: int) -> dict:
    import httpx

    port = _port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--no-auth", "--port", str(port), "--max-queue", "64", *extra],
        cwd=WORK,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    search_qs = _questions(40)
    chat_qs = _questions(chats)
    try:
        _wait(f"{url}/health", proc)
        http = httpx.Client(timeout=600)
        body = {
            "model": "rag",
            "mode": "generative",
            "max_tokens": 4,
            "messages": [{"role": "user", "content": QUESTION}],
        }
        http.post(f"{url}/v1/chat/completions", json=body).raise_for_status()  # loads the generator

        def search(q) -> float:
            started = time.perf_counter()
            http.post(f"{url}/v1/search", json={"query": q, "k": 5}).raise_for_status()
            return time.perf_counter() - started

        for q in search_qs[:5]:
            search(q)
        idle = [search(q) for q in search_qs]
        chat_times: list[float] = []

        def chat(q) -> None:
            started = time.perf_counter()
            with httpx.Client(timeout=600) as c:
                r = c.post(
                    f"{url}/v1/chat/completions",
                    json={**body, "max_tokens": max_tokens, "messages": [{"role": "user", "content": q}]},
                )
            r.raise_for_status()
            chat_times.append(time.perf_counter() - started)

        workers = [threading.Thread(target=chat, args=(q,)) for q in chat_qs]
        for w in workers:
            w.start()
        time.sleep(0.5)  # the burst is generating
        busy = []
        i = 0
        while any(w.is_alive() for w in workers):
            busy.append(search(search_qs[i % len(search_qs)]))
            i += 1
        for w in workers:
            w.join()
    finally:
        proc.terminate()
        proc.wait(30)
    row = {
        "setup": label,
        "idle_p50_ms": round(1000 * statistics.median(idle), 1),
        "idle_p99_ms": round(1000 * _pct(idle, 0.99), 1),
        "burst_p50_ms": round(1000 * statistics.median(busy), 1) if busy else None,
        "burst_p99_ms": round(1000 * _pct(busy, 0.99), 1) if busy else None,
        "burst_searches": len(busy),
        "chats": chats,
        "chat_p50_s": round(statistics.median(chat_times), 2),
    }
    row["burst_vs_idle_p50"] = round(row["burst_p50_ms"] / row["idle_p50_ms"], 2) if busy else None
    return row


def run(quick: bool) -> dict:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return {"skipped": "llama-cpp-python is not installed (make llamacpp)"}
    threads = [1] if quick else [1, os.cpu_count() or 1]
    n_questions, chats, max_tokens = (4, 4, 24) if quick else (12, 8, 48)
    _index()
    out = {"load": {"la_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}}
    out["speed"] = speed(16 if quick else 64, threads)
    proc, url = _llama_server(threads[-1])
    try:
        out["answers"] = answers(_questions(n_questions), threads[-1], url)
        serve_setups = [
            ("transformers, generation in the server process", ["--no-generation-process"]),
            ("transformers, generation in a niced child (default)", []),
        ]
        if not quick:
            serve_setups += [
                ("llama.cpp, niced child", ["--backend", "llamacpp"]),
                ("llama.cpp server over HTTP", ["--base-url", url, "--model", "smollm2"]),
            ]
        out["serve"] = [serve(label, extra, chats, max_tokens) for label, extra in serve_setups]
    finally:
        proc.terminate()
        proc.wait(30)
    out["cold"] = cold(1 if quick else 3)
    out["quality"] = quality(8 if quick else 49)
    out["load"]["la_1min_after"] = round(os.getloadavg()[0], 2)
    return out


def report_lines(r: dict | None) -> list[str]:
    """The RESULTS.md section for `run`'s results."""
    if not r or "speed" not in r:
        return [] if not r else ["## Generator backends", "", f"Skipped: {r.get('skipped')}", ""]
    lines = [
        "## Generator backends: transformers fp32 vs llama.cpp vs HTTP",
        "",
        f"Bundled SmolLM2-135M, one RAG prompt ({r['speed']['transformers_fp32']['prompt_tokens']} tokens), greedy; "
        f"load average {r['load']['la_1min']} on {r['load']['cpus']} CPUs when it started.",
        "",
        "| backend | first token s | prefill tok/s | decode tok/s | decode x transformers | prefill x transformers |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in r["speed"].items():
        lines.append(
            f"| {name} | {row['first_token_s']} | {row['prefill_tok_s']} | {row['decode_tok_s']} | "
            f"{row['decode_vs_transformers']} | {row['prefill_vs_transformers']} |"
        )
    a = r["answers"]
    lines += [
        "",
        f"Generative RAG answers end to end ({a['questions']} sample questions, warm):",
        "",
        "| backend | answer s (median) | answer s (mean) | first token s | speed-up x transformers |",
        "|---|---|---|---|---|",
    ]
    for name in ("transformers_fp32", "llamacpp", "http_llamacpp_server"):
        row = a[name]
        lines.append(
            f"| {name} | {row['answer_s_median']} | {row['answer_s_mean']} | {row['first_token_s_median']} | "
            f"{row['speedup_vs_transformers']} |"
        )
    lines += [
        "",
        f"HTTP to llama.cpp's server vs llama.cpp in process: {a['http_overhead_ratio']}x the time per answer; "
        f"llama.cpp gave transformers' answer word for word on {a['llamacpp_same_answer_as_transformers']}.",
        "",
        "Cold `rag ask --mode generative`: "
        + ", ".join(f"{k} {v['rag_ask_generative_cold_s']} s" for k, v in r["cold"].items())
        + ".",
        "",
        f"Answer quality, `rag` system on the sample suite ({r['quality']['questions']} questions): "
        + "; ".join(
            f"{k}: " + ", ".join(f"{m} {v}" for m, v in q.items())
            for k, q in r["quality"].items()
            if isinstance(q, dict)
        )
        + ".",
        "",
        "`rag serve` searches while generative chats run:",
        "",
        "| setup | idle p50 ms | idle p99 ms | burst p50 ms | burst p99 ms | burst / idle p50 | chat p50 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["serve"]:
        lines.append(
            f"| {row['setup']} | {row['idle_p50_ms']} | {row['idle_p99_ms']} | {row['burst_p50_ms']} | "
            f"{row['burst_p99_ms']} | {row['burst_vs_idle_p50']} | {row['chat_p50_s']} |"
        )
    return lines + [""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer questions and setups, for a smoke run")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()
    results = run(args.quick)
    print(json.dumps(results, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print("\n".join(report_lines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
