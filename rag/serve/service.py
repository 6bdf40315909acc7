"""What the endpoints share: indexes and their embedders, generators per adapter, the generation queue,
recent answers and the feedback log.

Indexes are opened on first use (the default one at start-up) and kept. A rebuilt index is picked up without a
restart: at most every `reload_check_s` seconds a request stats the index's manifest, and when `rag index` has
committed a new generation the request that noticed opens it while the others go on with the one they have
(a request that started on the old generation finishes on it: its files stay readable after the indexer
deletes them, being read into memory or memory-mapped when the index is opened). A new generation that cannot
be opened is logged once and the old one is kept until the manifest changes again. Embedders, generators and
the reader's models do not depend on the generation and stay loaded. Each index is searched with the
embedder it was built with, as its manifest records it; indexes built with the same embedder (same id and
prefixes) share one loaded model. An embedder object given to `Service` is used for the indexes it matches;
an `embed_config` (the user named an embedder) is forced on every index, and one built otherwise is refused
with a message naming both.

Generation takes one of `generation_slots` in arrival order; at most `max_queue` requests wait. An
in-process model generates in a child process at a lower priority (`rag.serve.generation`), so searches keep
their latency during a burst of generative chats; a model behind an HTTP server needs none.

What this module does not do: HTTP (routes and response bodies are `rag.serve.app` and
`rag.serve.responses`), or answering (that is `rag.pipeline.RAG`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from .. import store
from ..adapters import is_adapter_folder, list_adapters
from ..config import Config, EmbedConfig
from ..embeddings import Embedder, check_compatible, embedder_id, load_embedder
from ..errors import ConfigError, EmbedderMismatchError, IndexFormatError, IndexLockedError, RagError
from .config import DEFAULT_MODEL, ServeConfig
from .errors import APIError

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # index and adapter names: no path, no traversal
REMEMBERED = 10_000  # answer ids kept for feedback; older ones are still logged, with known=false


def plain_name(name: str, what: str) -> str:
    """`name` if it is a plain folder name (no path, no traversal), else a 400 naming the parameter.

    >>> plain_name("support-v1", "model")
    'support-v1'
    >>> plain_name("../x", "index")
    Traceback (most recent call last):
    ...
    rag.serve.errors.APIError: index names are letters, digits, '.', '_' and '-' (no paths), got '../x'
    """
    if not NAME.match(name) or ".." in name:
        raise APIError(
            400, f"{what} names are letters, digits, '.', '_' and '-' (no paths), got {name!r}", f"invalid_{what}", what
        )
    return name


@dataclasses.dataclass
class _Served:
    """How an open index stands against its committed manifest."""

    signature: tuple | None  # the manifest file's (inode, mtime, size) when the served generation was opened
    checked: float  # time.monotonic() of the last check
    failed: tuple | None = None  # the manifest whose generation could not be opened (not retried)
    error: str | None = None  # why


def _signature(folder: Path) -> tuple | None:
    """What changes whenever the manifest of the index in `folder` is replaced (a commit renames a new file
    over it: a new inode), or None when it is missing."""
    try:
        st = os.stat(folder / store.MANIFEST)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Service:
    """The state the endpoints share. Cheap to construct: indexes and models load on first use."""

    def __init__(
        self,
        serve: ServeConfig,
        config: Config | None = None,
        embedder: Embedder | None = None,
        generator_factory: Callable[[str | None], Any] | None = None,
        mmap: bool = False,
        embed_config: EmbedConfig | None = None,
    ):
        """`embedder` is used for the indexes built with it (tests pass a HashEmbedder); `embed_config`, when
        given, is the embedder every index must have been built with (the user named one). Otherwise each
        index uses its own. `generator_factory` maps an adapter folder (None: the base model) to a generator
        (tests pass fakes). `mmap` opens indexes memory-mapped, so worker processes share their pages."""
        self.serve = serve
        self.config = config or Config()
        self.mmap = mmap
        self.embed_config = embed_config
        self._embedder = embedder
        self._generator_factory = generator_factory
        self._embedders: dict[tuple[str, str, str], Embedder] = {}
        self._retrievers: dict[str, Any] = {}  # the generation served, per index folder
        self._served: dict[str, _Served] = {}  # when each was opened and last checked against its manifest
        self._generators: dict[str | None, Any] = {}
        self._rags: dict[tuple[str | None, str | None], Any] = {}
        # the reader's models (weights, scorer, ask model, character scorer: none depends on the index) of a
        # replaced generation's pipelines, per index folder, for the next generation's pipelines
        self._reader_models: dict[str, tuple] = {}
        self._lock = threading.Lock()  # guards the dicts above; never held while an index or model loads
        self._opening: dict[str, threading.Lock] = {}  # one per index folder: each opens once
        self._slots: asyncio.Semaphore | None = None
        self.waiting = 0
        self.answers: OrderedDict[str, dict] = OrderedDict()  # recent answer ids, for feedback
        self._feedback_lock = threading.Lock()
        self.started = time.time()

    # Names -> things ------------------------------------------------------------------------------------

    def index_folder(self, name: str | None) -> Path:
        """The folder of the index a request names (None or "default": the served one); 400 for a path-like
        name, 404 for an unknown one."""
        if name is None or name == "default":
            return Path(self.serve.index)
        folder = Path(self.serve.indexes_dir) / plain_name(name, "index")
        if not (folder / store.MANIFEST).is_file():
            raise APIError(404, f"no index named {name!r} under {self.serve.indexes_dir}/", "index_not_found", "index")
        return folder

    def adapter_folder(self, model: str) -> str | None:
        """The tuned folder a request's `model` names (None: the base model); 400 for a path-like name, 404
        for one that is not a tuned folder under `adapters_dir`."""
        if model in (DEFAULT_MODEL, self.config.generate.model):
            return None
        folder = Path(self.serve.adapters_dir) / plain_name(model, "model")
        if not is_adapter_folder(folder):
            raise APIError(
                404, f"the model {model!r} does not exist; GET /v1/models lists the models", "model_not_found", "model"
            )
        return str(folder)

    def models(self) -> list[dict]:
        """OpenAI model objects: "rag" (the base model), then each tuned folder under `adapters_dir`."""
        base_model = self.config.generate.model
        base = {"id": DEFAULT_MODEL, "object": "model", "created": int(self.started), "owned_by": "rag"}
        found = [base | {"base_model": base_model, "adapter": None}]
        for row in list_adapters(self.serve.adapters_dir, recursive=False):
            if NAME.match(row["name"]):  # a name a request could not use is not offered
                found.append(
                    base
                    | {
                        "id": row["name"],
                        "created": row["modified"],
                        "base_model": base_model,
                        "adapter": row["name"],
                        "method": row["method"],
                        "trained_on": row["base"],
                    }
                )
        return found

    # Indexes and their embedders ------------------------------------------------------------------------

    def embedder_for(self, stored: dict) -> Embedder:
        """The embedder to search an index whose manifest records `stored` (its embedder's `describe()`).
        Raises `EmbedderMismatchError` when the user forced another one."""
        if self._embedder is not None:
            try:
                check_compatible(stored, self._embedder.describe())
                return self._embedder
            except EmbedderMismatchError:
                pass  # built with another embedder: use that one
        if self.embed_config is not None:
            config = self.embed_config
            if config.model != stored.get("id"):
                check_compatible(stored, {**stored, "id": config.model})  # raises, naming both
        else:
            same = embedder_id(self.config.embed.model) == stored.get("id")
            config = dataclasses.replace(
                self.config.embed,  # keeps the runtime settings (device, batch sizes)
                model=stored["id"],
                query_prefix=stored.get("query_prefix", ""),
                document_prefix=stored.get("document_prefix", ""),
                languages=self.config.embed.languages if same else None,
            )
        key = (config.model, config.query_prefix, config.document_prefix)
        with self._lock:
            if key not in self._embedders:
                self._embedders[key] = load_embedder(config)  # cheap: the model loads on first use
            return self._embedders[key]

    def retriever(self, folder: Path):
        """The open retriever of the index in `folder`, opened (files and embedder loaded) on first use, so
        that a broken index is a 503 naming the problem before any answer starts. A failed open is retried by
        the next request (the index may have been rebuilt meanwhile). Once open, a newer committed generation
        replaces it (see `_refresh`)."""
        key = str(folder)
        found = self._retrievers.get(key)
        if found is not None:
            return self._refresh(folder, found)
        with self._lock:
            opening = self._opening.setdefault(key, threading.Lock())
        with opening:
            if key not in self._retrievers:
                signature = _signature(folder)  # before the manifest is read: a commit after it is seen later
                retriever = self._open(folder)
                with self._lock:
                    self._retrievers[key] = retriever
                    self._served[key] = _Served(signature, time.monotonic())
        return self._retrievers[key]

    def _refresh(self, folder: Path, current):
        """The generation of `folder` to answer from: `current`, or a newer committed one, opened now by the
        request that notices it (at most one check every `reload_check_s` seconds: a stat of the manifest).
        While one request opens it the others keep `current`; if it cannot be opened `current` stays, the
        error is logged once, and the next commit is tried again."""
        key = str(folder)
        served = self._served.get(key)
        now = time.monotonic()
        if served is None or now - served.checked < self.serve.reload_check_s:
            return current
        served.checked = now
        signature = _signature(folder)
        if signature is None or signature in (served.signature, served.failed):
            return current  # unchanged (a missing manifest: the index is being replaced by hand; keep serving)
        opening = self._opening[key]
        if not opening.acquire(blocking=False):
            return current  # another request is opening it
        try:
            current = self._retrievers[key]  # what the other request may have opened meanwhile
            if served.signature == signature:
                return current
            try:
                committed = store.require_manifest(folder).generation
                if committed == current.manifest.generation:  # rewritten, not rebuilt (`rag index`, no changes)
                    served.signature, served.failed, served.error = signature, None, None
                    return current
                fresh = self._open(folder)
            except Exception as exc:  # whatever it is, the generation being served still answers
                served.failed = signature
                served.error = exc.message if isinstance(exc, APIError) else f"{type(exc).__name__}: {exc}"
                log.error(
                    "index %s: keeping generation %s, the newly committed one cannot be opened: %s",
                    folder,
                    current.manifest.generation,
                    served.error,
                )
                return current
            with self._lock:
                self._retrievers[key] = fresh
                served.signature, served.failed, served.error = signature, None, None
                # the old generation's pipelines go (it is freed when the requests answering from it are done),
                # their reader's models stay for the new one's
                for pair in [pair for pair, rag in self._rags.items() if pair[0] == key and rag.retriever is current]:
                    r = getattr(self._rags.pop(pair), "_reader", None)
                    if r is not None:
                        self._reader_models[key] = (r.model, r.scorer, r.coverage, r.asks, r.chars)
            log.info(
                "index %s: now serving %s (was %s)", folder, fresh.manifest.generation, current.manifest.generation
            )
            return fresh
        finally:
            opening.release()

    def refresh(self) -> None:
        """Check every open index for a newer committed generation now (as a request would), e.g. for /health."""
        for key in list(self._retrievers):
            self.retriever(Path(key))

    def indexes(self) -> list[dict]:
        """The indexes opened so far, each with the generation it serves (for /health); `reload_error` when a
        newer committed generation could not be opened."""
        default = str(Path(self.serve.index))
        found = []
        for key, retriever in list(self._retrievers.items()):
            manifest = retriever.manifest
            row = {
                "index": "default" if key == default else Path(key).name,
                "path": key,
                "generation": manifest.generation,
                "updated": manifest.updated,
                "chunks": manifest.chunks,
            }
            served = self._served.get(key)
            if served is not None and served.error is not None:
                row["reload_error"] = served.error
            found.append(row)
        return found

    def _open(self, folder: Path):
        from ..retrieve import Retriever

        try:
            manifest = store.require_manifest(folder)
            retriever = Retriever(
                folder, self.config.retrieve, embedder=self.embedder_for(manifest.embedder), mmap=self.mmap
            )
            retriever.chunks  # noqa: B018 - reads the index files now
        except (ConfigError, IndexFormatError, EmbedderMismatchError, IndexLockedError) as exc:
            raise APIError(503, f"the index {folder.name!r} is not available: {exc}", "index_unavailable") from exc
        except OSError as exc:  # a file of the index is missing or unreadable
            raise APIError(
                503,
                f"the index {folder.name!r} cannot be read ({exc.strerror or exc}); "
                f"rebuild it with `rag index PATH --index {folder} --rebuild`",
                "index_unavailable",
            ) from exc
        log.info("opened index %s (%d chunks, embedder %s)", folder, len(retriever), manifest.embedder.get("id"))
        return retriever

    # Generators and pipelines -----------------------------------------------------------------------------

    def generator(self, adapter: str | None):
        """The generator for a tuned folder (None: the base model), made once. Models load on first use."""
        with self._lock:
            if adapter not in self._generators:
                self._generators[adapter] = self._make_generator(adapter)
            return self._generators[adapter]

    def _make_generator(self, adapter: str | None):
        if self._generator_factory is not None:
            return self._generator_factory(adapter)
        from ..generate import backend_of, load_generator

        settings = dataclasses.replace(self.config.generate, adapter=adapter)
        remote = backend_of(settings) == "openai"
        if adapter is not None and not remote and not (Path(adapter) / "adapter_config.json").is_file():
            # `rag tune --method full` writes a whole model, which loads as the model, not as an adapter
            settings = dataclasses.replace(settings, model=adapter, adapter=None)
        if self.serve.generation_process and not remote:  # a served model runs elsewhere: nothing to isolate
            from .generation import ProcessGenerator

            return ProcessGenerator(settings)
        return load_generator(settings)

    def loaded_models(self) -> list[str]:
        """The names of the models a request has used so far."""
        return [Path(a).name if a else DEFAULT_MODEL for a in list(self._generators)]

    def rag(self, index: str | None, adapter: str | None, closed_book: bool = False):
        """The answering pipeline for an index (by request name) and a tuned folder, made once per pair and
        generation (it caches the index's word statistics); a new generation gets a new pipeline with the
        previous one's generator and reader models."""
        from ..pipeline import RAG

        folder = None if closed_book else str(self.index_folder(index))
        key = (folder, adapter)
        retriever = None if folder is None else self.retriever(Path(folder))
        found = self._rags.get(key)
        if found is None or found.retriever is not retriever:
            found = RAG(None, self.config, retriever=retriever, generator=self.generator(adapter))
            kept = self._reader_models.get(folder) if folder is not None else None
            if kept is not None:  # a rebuilt index: its reader's models are loaded already
                from ..evidence import Reader

                model, scorer, coverage, asks, chars = kept
                found._reader = Reader(model, scorer, coverage, found.idf, asks, chars)
            with self._lock:
                stored = self._rags.get(key)
                if stored is not None and stored.retriever is retriever:
                    found = stored  # another request made it first
                elif folder is None or self._retrievers.get(folder) is retriever:
                    self._rags[key] = found  # (one for a generation replaced meanwhile serves this request only)
        return found

    def warm_up(self) -> None:
        """Open the default index and load its embedder now, so the first request does not pay for it.
        Raises the `RagError` that makes the index unusable (the CLI prints it in one line)."""
        try:
            retriever = self.retriever(Path(self.serve.index))
        except APIError as exc:
            if isinstance(exc.__cause__, RagError):
                raise exc.__cause__ from None
            raise IndexFormatError(exc.message) from exc
        retriever.search("warm up", k=1)

    # Generation queue -------------------------------------------------------------------------------------

    def admit(self) -> None:
        """503 with Retry-After when `max_queue` answers already wait for a generation slot."""
        if self._slots is not None and self._slots.locked() and self.waiting >= self.serve.max_queue:
            raise APIError(
                503,
                "the server is busy: too many answers are waiting; retry shortly",
                "busy",
                headers={"Retry-After": "2"},
            )

    @contextlib.asynccontextmanager
    async def generation_slot(self) -> AsyncIterator[None]:
        """Hold one of `generation_slots` (waiting in arrival order) for the body of the `async with`."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.serve.generation_slots)
        self.admit()
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._slots.release()

    # Answers and feedback ---------------------------------------------------------------------------------

    def record(self, answer_id: str, model: str, answer, seconds: float, question: str) -> None:
        """Remember an answer for feedback and log it: ids, mode, timing and the question's length (the
        question itself only with `log_questions`: it may hold personal data)."""
        self.answers[answer_id] = {
            "model": model,
            "refused": answer.refused,
            "mode": answer.mode,
            "sources": [h.chunk.source for h in answer.sources],
            "chunk_ids": [h.chunk.id for h in answer.sources],
            "citations": answer.citations,
            # kept in memory only; written to the feedback log when someone rates this answer, so that the
            # rating can train the evidence scorer (the question is what makes it a training example)
            "question": question,
            "answer": answer.answer,
        }
        while len(self.answers) > REMEMBERED:
            self.answers.popitem(last=False)
        shown = f" question={question!r}" if self.serve.log_questions else f" question_chars={len(question)}"
        log.info(
            "answer %s model=%s mode=%s refused=%s %.2fs%s",
            answer_id,
            model,
            answer.mode,
            answer.refused,
            seconds,
            shown,
        )

    def feedback(self, record: dict) -> None:
        """Append one feedback record to the JSONL log, durably."""
        line = json.dumps(record, ensure_ascii=False) + "\n"
        path = Path(self.serve.feedback_log)
        with self._feedback_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:  # one write per record: lines never interleave
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
