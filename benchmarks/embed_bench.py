"""Embedder backends: torch vs ONNX fp32 vs ONNX int8, each against a baseline measured in the same run.

- cold `rag ask` (extractive, default index): wall time and peak RSS of a fresh process, next to a bare
  `python -c "import torch"`; the CLI runs the default backend, and the same question through the Python API
  (`Retriever(embed_config=...)` + `RAG`) in a fresh process gives each backend's number;
- `rag index` as a whole process on 300 short documents (one SQuAD paragraph each), per backend, vs a bare
  sentence-transformers script that loads the model, reads the same files, encodes and saves the vectors;
- encoder throughput on the same chunks, warm, in one process;
- retrieval quality (nDCG@10, dense and hybrid) on the SQuAD 2.0 dev half and XQuAD en.

Timings are medians of repeated runs with the page cache warm and the ONNX export made beforehand (`rag prepare`),
processes alternating between rag and its baseline so that the machine's noise hits both alike.

Usage: python -m benchmarks.embed_bench [--quick]   (`make bench` runs it as `embed_backends`)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work" / "embed"
DATA = ROOT.parent / "shared" / "data"
SQUAD = DATA / "squad2-dev-half" / "dev-v2.0.json"
XQUAD = DATA / "xquad-eval" / "xquad.en.json"
QUESTION = "How long do I hold the RESET button to factory reset the HomeHub R7?"
BACKENDS = {"torch": ("torch", "none"), "onnx": ("onnx", "none"), "int8": ("onnx", "int8")}
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child would report its parent's peak
PEAK = "int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024"


def _timed(code: str, cwd: Path) -> tuple[float, float, str]:
    """Run `python -c code` in a fresh process: (wall seconds, its peak RSS in MB, its stdout). The code ends
    by printing PEAK on the last line of stderr."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark process failed:\n{code}\n{proc.stderr}")
    return wall, float(proc.stderr.strip().splitlines()[-1]), proc.stdout


def _cli(args: list[str]) -> str:
    return (
        f"import sys; from rag.cli import main; code = main({args!r}); print({PEAK}, file=sys.stderr); sys.exit(code)"
    )


def _api_ask(index: str, backend: str) -> str:
    kind, quantize = BACKENDS[backend]
    return (
        "import sys; from rag.config import EmbedConfig; from rag.pipeline import RAG; from rag.retrieve import Retriever\n"
        f"r = Retriever({index!r}, embed_config=EmbedConfig(backend={kind!r}, quantize={quantize!r}))\n"
        f"print(RAG({index!r}, retriever=r).ask({QUESTION!r}).answer); print({PEAK}, file=sys.stderr)"
    )


def _median_runs(codes: dict[str, str], cwd: Path, repeats: int) -> dict[str, dict]:
    """Each code run `repeats` times, interleaved; median wall seconds and the largest peak RSS of each."""
    walls: dict[str, list[float]] = {name: [] for name in codes}
    peaks: dict[str, float] = dict.fromkeys(codes, 0.0)
    for code in codes.values():  # one untimed run each: page cache, .pyc files
        _timed(code, cwd)
    for _ in range(repeats):
        for name, code in codes.items():
            wall, peak, _ = _timed(code, cwd)
            walls[name].append(wall)
            peaks[name] = max(peaks[name], peak)
    return {name: {"wall_s": round(statistics.median(walls[name]), 2), "peak_mb": round(peaks[name])} for name in codes}


def sentence_transformer():
    """The default embedder as a plain SentenceTransformer (the baseline scripts' model)."""
    from sentence_transformers import SentenceTransformer

    from rag.config import DEFAULT_EMBEDDER
    from rag.models import embedder_location

    return SentenceTransformer(embedder_location(DEFAULT_EMBEDDER), device="cpu")


def cold_ask(quick: bool) -> dict:
    """Cold `rag ask` on the sample knowledge base, per backend, vs `python -c "import torch"`."""
    work = WORK / "sample"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ROOT / "corpora", work / "corpora")
    subprocess.run([sys.executable, "-m", "rag", "index", "corpora", "--no-progress"], cwd=work, check=True)
    codes = {
        "rag_ask_cli": _cli(["ask", QUESTION]),
        "import_torch": f"import sys, torch; print({PEAK}, file=sys.stderr)",
        **{f"api_ask_{b}": _api_ask("indexes/default", b) for b in BACKENDS},
    }
    runs = _median_runs(codes, work, 2 if quick else 5)
    torch_s = runs["import_torch"]["wall_s"]
    for run in runs.values():
        run["vs_import_torch"] = round(run["wall_s"] / torch_s, 2)
    _, _, answer = _timed(codes["rag_ask_cli"], work)
    return {"runs": runs, "answer": answer.strip().splitlines()[0], "target": "<= 3 s and <= 1.5x import torch"}


def _short_documents(n: int) -> Path:
    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
    texts = [p["context"] for a in data for p in a["paragraphs"]][:n]
    folder = WORK / f"docs{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, text in enumerate(texts):
        (folder / f"{i:03d}.txt").write_text(text + "\n", encoding="utf-8")
    return folder


def index_process(quick: bool) -> dict:
    """Whole `rag index` processes per backend vs a bare sentence-transformers script on the same files."""
    from rag.config import DEFAULT_EMBEDDER
    from rag.models import embedder_location

    docs = _short_documents(100 if quick else 300)
    bare = (
        "import sys, pathlib, numpy as np\nfrom sentence_transformers import SentenceTransformer\n"
        f"model = SentenceTransformer({embedder_location(DEFAULT_EMBEDDER)!r}, device='cpu')\n"
        f"texts = [p.read_text(encoding='utf-8') for p in sorted(pathlib.Path({str(docs)!r}).glob('*.txt'))]\n"
        "vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)\n"
        f"np.save({str(WORK / 'bare.npy')!r}, vectors); print({PEAK}, file=sys.stderr)"
    )
    codes = {"bare_sentence_transformers": bare}
    for backend, (kind, quantize) in BACKENDS.items():
        args = ["index", str(docs), "--index", str(WORK / f"index-{backend}"), "--rebuild", "--no-progress"]
        codes[f"rag_index_{backend}"] = _cli([*args, "--embed-backend", kind, "--embed-quantize", quantize])
    runs = _median_runs(codes, ROOT, 1 if quick else 3)
    bare_s = runs["bare_sentence_transformers"]["wall_s"]
    for run in runs.values():
        run["vs_bare"] = round(run["wall_s"] / bare_s, 2)
    return {"documents": len(list(docs.glob("*.txt"))), "runs": runs, "target": "<= 0.6x the bare script"}


def throughput(quick: bool) -> dict:
    """Chunks per second of each backend on the same chunk texts, warm, best of alternating rounds."""
    from rag import store
    from rag.config import EmbedConfig
    from rag.embeddings import load_embedder

    folder = WORK / "index-onnx"
    texts = [
        c.indexed_text
        for c in store.read_chunks(store.generation_path(folder, store.require_manifest(folder)) / store.CHUNKS)
    ]
    embedders = {b: load_embedder(EmbedConfig(backend=k, quantize=q)) for b, (k, q) in BACKENDS.items()}
    best = dict.fromkeys(BACKENDS, float("inf"))
    for emb in embedders.values():
        emb.embed_documents(texts[:16])  # load and warm up outside the timings
    for _ in range(2 if quick else 3):
        for name, emb in embedders.items():
            started = time.perf_counter()
            emb.embed_documents(texts)
            best[name] = min(best[name], time.perf_counter() - started)
    out = {"chunks": len(texts)}
    for name in BACKENDS:
        out[name] = {
            "chunks_per_s": round(len(texts) / best[name], 1),
            "vs_torch": round(best["torch"] / best[name], 2),
        }
    return out


def quality(quick: bool) -> dict:
    """nDCG@10 (dense and hybrid) per backend on SQuAD 2.0 dev half and XQuAD en."""
    from rag.config import EmbedConfig
    from rag.embeddings import load_embedder
    from rag.eval.datasets import retrieval_data
    from rag.eval.retrieval import evaluate

    out = {}
    for name, path in (("squad2_dev_half", SQUAD), ("xquad_en", XQUAD)):
        data = retrieval_data("squad", path)
        rows = {}
        for backend, (kind, quantize) in BACKENDS.items():
            emb = load_embedder(EmbedConfig(backend=kind, quantize=quantize))
            report = evaluate(data, modes=("dense", "hybrid"), limit=300 if quick else None, embedder=emb)
            rows[backend] = {mode: round(m["ndcg@10"], 4) for mode, m in report["modes"].items()}
        for backend in ("onnx", "int8"):
            rows[backend]["dense_delta"] = round(rows[backend]["dense"] - rows["torch"]["dense"], 4)
        out[name] = {"queries": report["queries"], "documents": report["documents"], "ndcg@10": rows}
    out["target"] = "onnx fp32 within 0.002 of torch, int8 within 0.01 (dense nDCG@10)"
    return out


def run(quick: bool = False) -> dict:
    from rag.models import prepare_embedder

    WORK.mkdir(parents=True, exist_ok=True)
    prepare_embedder()  # the one-time export is not what these measure
    out = {"cold_ask": cold_ask(quick), "index_process": index_process(quick)}
    out["throughput"] = throughput(quick)
    out["quality"] = quality(quick)
    return out


def report_lines(r: dict | None) -> list[str]:
    """The RESULTS.md section for `run`'s results."""
    if not r:
        return []
    ask, idx, thr, q = r["cold_ask"]["runs"], r["index_process"], r["throughput"], r["quality"]
    lines = [
        "## Embedder backends: torch vs ONNX Runtime (fp32, int8)",
        "",
        f"Cold `rag ask` (extractive, sample knowledge base, default backend): **{ask['rag_ask_cli']['wall_s']} s**, "
        f'peak RSS {ask["rag_ask_cli"]["peak_mb"]} MB; a bare `python -c "import torch"` in the same run: '
        f"{ask['import_torch']['wall_s']} s, {ask['import_torch']['peak_mb']} MB: **ratio "
        f"{ask['rag_ask_cli']['vs_import_torch']}** (target {r['cold_ask']['target']}).",
        "",
        f"| backend | cold ask (API, fresh process) s | x import torch | peak RSS MB | `rag index` {idx['documents']} docs s | "
        "x bare ST script | peak RSS MB | encode chunks/s | x torch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b in BACKENDS:
        a, i, t = ask[f"api_ask_{b}"], idx["runs"][f"rag_index_{b}"], thr[b]
        lines.append(
            f"| {b} | {a['wall_s']} | {a['vs_import_torch']} | {a['peak_mb']} | {i['wall_s']} | {i['vs_bare']} | "
            f"{i['peak_mb']} | {t['chunks_per_s']} | {t['vs_torch']} |"
        )
    bare = idx["runs"]["bare_sentence_transformers"]
    lines += [
        f"| bare sentence-transformers script | | | | {bare['wall_s']} | 1.0 | {bare['peak_mb']} | | |",
        "",
        f"`rag index` runs as a whole process over {idx['documents']} short documents (one SQuAD paragraph each, "
        f"{thr['chunks']} chunks), model load included, target {idx['target']}; the bare script loads the model, "
        "reads the same files, encodes and saves the vectors.",
        "",
        "| retrieval nDCG@10 | queries | torch dense | onnx dense (delta) | int8 dense (delta) | torch hybrid | "
        "onnx hybrid | int8 hybrid |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("squad2_dev_half", "xquad_en"):
        n = q[name]["ndcg@10"]
        lines.append(
            f"| {name} | {q[name]['queries']} | {n['torch']['dense']} | {n['onnx']['dense']} ({n['onnx']['dense_delta']:+}) | "
            f"{n['int8']['dense']} ({n['int8']['dense_delta']:+}) | {n['torch']['hybrid']} | {n['onnx']['hybrid']} | "
            f"{n['int8']['hybrid']} |"
        )
    lines += ["", f"Target: {q['target']}.", ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer documents, queries and repeats: a smoke run")
    args = parser.parse_args()
    results = run(args.quick)
    print(json.dumps(results, indent=1))
    print("\n".join(report_lines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
