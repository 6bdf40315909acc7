"""The evidence scorer: a cross-encoder that reads a question and a passage (or one sentence of it, under its
heading path) together and gives a logit for "this answers the question".

It is the bundled embedder's encoder (all-MiniLM-L6-v2) with a LoRA adapter and a one-logit head, trained by
`rag tune --task scorer` on public QA data (`make scorer` reproduces the shipped one, in `rag/weights/scorer`)
or on a team's own labelled questions. It runs on the embedder's backend: with ONNX (the default) the
adapter is merged into the encoder and exported once to the model cache (`prepare_scorer`, like the
embedder's export), and scoring needs only onnxruntime, tokenizers and numpy; with torch, transformers and
PEFT load it in process. MiniLM's vocabulary reads English: `coverage` says how much of a question it reads,
and `rag.evidence` leans on other features where it reads little (Chinese).

What this module does not do: pick sentences or decide refusals (`rag.evidence`), or train (`rag.tune`).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np

from .atomic import atomic_dir
from .errors import ConfigError, require

BUNDLED_SCORER = Path(__file__).resolve().parent / "weights" / "scorer"
MAX_TOKENS = 256  # question + passage; a sentence pair is far shorter, a whole chunk fits
BATCH_TOKENS = 4096  # padded tokens per forward pass on a CPU
EXPORT_FORMAT = 1  # bump when the export's layout changes: older exports are then redone


HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")  # "cross-encoder/ms-marco-MiniLM-L6-v2"


def scorer_folder(name: str | None) -> Path | None:
    """The folder of the scorer a config names: "bundled" (the shipped one), a folder (`rag tune --task scorer`
    wrote it, or any one-logit cross-encoder), a model hub id (downloaded once, where a hub is reachable), or
    "none" (None)."""
    if name in (None, "", "none"):
        return None
    folder = BUNDLED_SCORER if name == "bundled" else Path(name).expanduser()
    if not folder.exists() and HUB_ID.fullmatch(name):
        folder = _download(name)
    if not (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        raise ConfigError(
            f"the scorer {name!r} is not a scorer folder (no adapter_config.json or config.json in {folder}); "
            "give a folder `rag tune --task scorer` wrote, a cross-encoder's folder or hub id, 'bundled', or 'none'"
        )
    return folder


def _download(model_id: str) -> Path:
    """A model hub id's files in the hub's local cache (downloaded on first use)."""
    require("huggingface_hub", purpose=f"downloading the scorer {model_id!r} from the model hub")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_id))
    except Exception as exc:  # offline, no such model, gated: all end the same way
        raise ConfigError(
            f"the scorer {model_id!r} is not a local folder and could not be fetched from the model hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]}); give a local folder, or this id where the hub "
            "is reachable"
        ) from exc


def _base_location(folder: Path) -> str:
    """Where the encoder under a scorer comes from: an adapter's base embedder, or the folder itself."""
    from .models import embedder_location

    adapter = folder / "adapter_config.json"
    if adapter.is_file():
        return embedder_location(json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path"))
    return str(folder)


def _load_torch(folder: Path, eager: bool = False):
    """The scorer as a transformers model (adapter merged) and its tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    location = _base_location(folder)
    kwargs = {"attn_implementation": "eager"} if eager else {}
    model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=1, **kwargs)
    if (folder / "adapter_config.json").is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    return model.eval(), AutoTokenizer.from_pretrained(location)


def export_path(folder: Path) -> Path:
    from .models import cache_dir, folder_key

    return cache_dir() / "onnx" / f"scorer-{folder_key(folder)}"


def _fingerprint(folder: Path) -> str:
    from .models import source_fingerprint

    return f"{source_fingerprint(str(folder))}-{source_fingerprint(_base_location(folder))}"


def prepare_scorer(folder: str | Path = BUNDLED_SCORER, progress=None) -> Path:
    """The ONNX export of the scorer in `folder` (made once, atomically, and again when its weights change)."""
    folder = Path(folder)
    target = export_path(folder)
    try:
        meta = json.loads((target / "export.json").read_text(encoding="utf-8"))
        if meta.get("format") == EXPORT_FORMAT and meta.get("fingerprint") == _fingerprint(folder):
            return target
    except (OSError, ValueError):
        pass
    if progress:
        progress(f"exporting the evidence scorer to ONNX in {target} (once, about 10 s)")
    existed = target.exists()
    with atomic_dir(target, keep_existing=not existed) as tmp:
        _export(folder, tmp)
    return target


def _export(folder: Path, out: Path) -> None:
    import shutil
    import warnings

    from .models import ONNX_OPSET

    torch = require("torch", purpose="exporting the evidence scorer to ONNX, once; or set [embed] backend = 'torch'")
    model, tokenizer = _load_torch(folder, eager=True)  # eager attention traces to a faster graph (rag.models)
    names = ["input_ids", "attention_mask", "token_type_ids"]

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    sample = tokenizer(["a question", "another, longer question"], ["a passage", "and its text"], padding=True)
    args = tuple(torch.tensor(sample[n], dtype=torch.long) for n in names)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits(model),
            args,
            str(out / "model.onnx"),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    base = Path(_base_location(folder))
    if (base / "README.md").is_file():  # the model card says which languages it reads
        shutil.copyfile(base / "README.md", out / "README.md")
    meta = {
        "format": EXPORT_FORMAT,
        "fingerprint": _fingerprint(folder),
        "source": str(folder),
        "pad_id": int(tokenizer.pad_token_id or 0),
        "unk_id": tokenizer.unk_token_id,
    }
    (out / "export.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


class Scorer:
    """(question, passages) -> logits. Loads on first use (exporting once for ONNX); safe to share."""

    def __init__(self, folder: str | Path = BUNDLED_SCORER, backend: str = "onnx", device: str | None = None):
        if backend not in ("onnx", "torch"):
            raise ConfigError(f"scorer backend must be onnx or torch, got {backend!r}")
        self.folder, self.backend, self.device = Path(folder), backend, device
        self.memo: dict | None = None  # (question, passage) -> logit, when a caller wants repeats remembered
        self._ready = False
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            from .embeddings import model_card_languages

            if self.backend == "onnx":
                ort = require("onnxruntime", purpose="the evidence scorer on ONNX ([embed] backend = 'onnx')")
                from tokenizers import Tokenizer

                from .onnx_embed import _note

                export = prepare_scorer(self.folder, progress=_note)
                meta = json.loads((export / "export.json").read_text(encoding="utf-8"))
                self._pad, self._unk = meta["pad_id"], meta.get("unk_id")
                self._tok = Tokenizer.from_file(str(export / "tokenizer.json"))
                self._tok.no_padding()
                self._tok.no_truncation()
                options = ort.SessionOptions()
                options.log_severity_level = 3
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as for the embedder
                self._session = ort.InferenceSession(
                    str(export / "model.onnx"), options, providers=["CPUExecutionProvider"]
                )
                self._languages = model_card_languages(export)
            else:
                import torch

                model, tokenizer = _load_torch(self.folder)
                device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
                self._model, self._hf = model.to(device), tokenizer
                self._pad, self._unk = tokenizer.pad_token_id or 0, tokenizer.unk_token_id
                self._languages = model_card_languages(Path(_base_location(self.folder)))
            self._ready = True

    def _ids(self, text: str) -> list[int]:
        if self.backend == "onnx":
            return self._tok.encode(text, add_special_tokens=False).ids
        return self._hf(text, add_special_tokens=False)["input_ids"]

    def coverage(self, text: str) -> float:
        """Share of `text` the scorer can read (0..1): CJK characters count as unread when its model card
        declares no Chinese (all-MiniLM-L6-v2: English), otherwise unknown tokens do."""
        from .embeddings import coverage_of

        self._load()
        return coverage_of(text, self._languages, self._ids, self._unk)

    def logits(self, question: str, passages: list[str]) -> np.ndarray:
        """One logit per passage (higher: more likely to answer `question`), in input order."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        if self.memo is not None:
            todo = list(dict.fromkeys(p for p in passages if (question, p) not in self.memo))
            if todo:
                self.memo.update({(question, p): float(v) for p, v in zip(todo, self._logits(question, todo))})
            return np.array([self.memo[(question, p)] for p in passages], dtype=np.float32)
        return self._logits(question, passages)

    def _logits(self, question: str, passages: list[str]) -> np.ndarray:
        self._load()
        rows = self._encode(question, passages)
        lengths = [len(r[0]) for r in rows]
        order = sorted(range(len(passages)), key=lambda i: -lengths[i])
        out = np.zeros(len(passages), dtype=np.float32)
        start = 0
        while start < len(order):  # batches of similar length under a padded-token budget
            batch = order[start : start + max(1, BATCH_TOKENS // lengths[order[start]])]
            out[batch] = self._run([rows[i] for i in batch])
            start += len(batch)
        return out

    def _encode(self, question: str, passages: list[str]) -> list[tuple[list[int], list[int]]]:
        """(token ids, token type ids) per pair, cut to fit MAX_TOKENS: the passage, or, for a question longer than
        half of that (a pasted e-mail), the longer of the two until both fit; for a question of usual length the
        passage alone is cut, as the scorer was trained ("only_second" fails on a question that alone is too long)."""
        if self.backend == "onnx":
            self._tok.enable_truncation(MAX_TOKENS, strategy="longest_first")
            encodings = self._tok.encode_batch([(question, p) for p in passages])
            return [(e.ids, e.type_ids) for e in encodings]
        enc = self._hf([question] * len(passages), passages, truncation="longest_first", max_length=MAX_TOKENS)
        return list(zip(enc["input_ids"], enc["token_type_ids"]))

    def _run(self, rows: list[tuple[list[int], list[int]]]) -> np.ndarray:
        width = max(len(ids) for ids, _ in rows)
        ids = np.full((len(rows), width), self._pad, dtype=np.int64)
        types = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, (row_ids, row_types) in enumerate(rows):
            ids[i, : len(row_ids)], types[i, : len(row_ids)], mask[i, : len(row_ids)] = row_ids, row_types, 1
        if self.backend == "onnx":
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            return self._session.run(None, feeds)[0][:, 0].astype(np.float32)
        import torch

        with torch.inference_mode():
            tensors = {k: torch.from_numpy(v).to(self._model.device) for k, v in
                       (("input_ids", ids), ("attention_mask", mask), ("token_type_ids", types))}  # fmt: skip
            return self._model(**tensors).logits[:, 0].float().cpu().numpy()
