"""The evidence scorer: a cross-encoder that reads a question and a passage (or one sentence of it, under its
heading path) together and gives a logit for "this answers the question".

It is the bundled embedder's encoder (all-MiniLM-L6-v2) with a LoRA adapter and a one-logit head, trained by
`rag tune --task scorer` on public QA data (`make scorer` reproduces the shipped one, in `rag/weights/scorer`)
or on a team's own labelled questions. The adapter is merged into the encoder on load, so scoring costs one
MiniLM pass per pair. MiniLM's vocabulary reads English; on text it cannot read (Chinese) its logits carry
little, and `rag.evidence` leans on other features there.

What this module does not do: pick sentences or decide refusals (`rag.evidence`), or train (`rag.tune`).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from .errors import ConfigError

BUNDLED_SCORER = Path(__file__).resolve().parent / "weights" / "scorer"
MAX_TOKENS = 256  # question + passage; a sentence pair is far shorter, a whole chunk fits
BATCH_TOKENS = 4096  # padded tokens per forward pass on a CPU


def scorer_folder(name: str | None) -> Path | None:
    """The folder of the scorer a config names: "bundled" (the shipped one), a folder, or "none" (None)."""
    if name in (None, "", "none"):
        return None
    folder = BUNDLED_SCORER if name == "bundled" else Path(name).expanduser()
    if not (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        raise ConfigError(
            f"the scorer {name!r} is not a scorer folder (no adapter_config.json or config.json in {folder}); "
            "give a folder `rag tune --task scorer` wrote, 'bundled', or 'none'"
        )
    return folder


class Scorer:
    """(question, passages) -> logits. Loads on first use; safe to share between threads."""

    def __init__(self, folder: str | Path = BUNDLED_SCORER, device: str | None = None):
        self.folder = Path(folder)
        self.device = device
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            from .models import embedder_location

            adapter = self.folder / "adapter_config.json"
            if adapter.is_file():
                base = json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path")
                location = embedder_location(base)
                model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=1)
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(self.folder)).merge_and_unload()
            else:  # a fully tuned model
                location = str(self.folder)
                model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=1)
            from .embeddings import model_card_languages

            self._languages = model_card_languages(Path(location))
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._tokenizer = AutoTokenizer.from_pretrained(location)
            self._model = model.to(device).eval()

    def coverage(self, text: str) -> float:
        """Share of `text` the scorer can read (0..1): CJK characters count as unread when its model card
        declares no Chinese (all-MiniLM-L6-v2: English), otherwise unknown tokens do."""
        from .embeddings import coverage_of

        self._load()
        tok = self._tokenizer
        return coverage_of(
            text, self._languages, lambda t: tok(t, add_special_tokens=False)["input_ids"], tok.unk_token_id
        )

    def logits(self, question: str, passages: list[str]) -> np.ndarray:
        """One logit per passage (higher: more likely to answer `question`), in input order."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        import torch

        self._load()
        tok, model = self._tokenizer, self._model
        enc = tok([question] * len(passages), passages, truncation="only_second", max_length=MAX_TOKENS)
        lengths = [len(ids) for ids in enc["input_ids"]]
        order = sorted(range(len(passages)), key=lambda i: -lengths[i])
        out = np.zeros(len(passages), dtype=np.float32)
        start = 0
        while start < len(order):  # batches of similar length under a padded-token budget
            size = max(1, BATCH_TOKENS // lengths[order[start]])
            batch = order[start : start + size]
            features = tok.pad({k: [enc[k][i] for i in batch] for k in enc}, return_tensors="pt")
            with torch.inference_mode():
                result = model(**{k: v.to(model.device) for k, v in features.items()}).logits[:, 0]
            out[batch] = result.float().cpu().numpy()
            start += size
        return out
