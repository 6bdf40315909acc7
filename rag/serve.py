"""The HTTP API: OpenAI-compatible chat completions over a rag index, for customer-service bots.

`rag serve` runs `create_app(Service(...))` on uvicorn. Endpoints (all under /v1 need an API key):

    POST /v1/chat/completions   OpenAI's protocol (also `stream: true` as server-sent events ending with
                                `data: [DONE]`); the answer's sources, citations and refused flag are in an
                                extension field `rag`. `model` is "rag" (the base model) or an adapter's name.
    GET  /v1/models             "rag" and the adapters under the adapters folder
    POST /v1/search             the chunks most relevant to a query
    POST /v1/feedback           a rating and comment for an answer id, appended to a JSONL log
    GET  /health                liveness and what is loaded (no key needed)

This module imports FastAPI and pydantic: import it only to serve.
Models and indexes load once and are shared. Searches run concurrently in worker threads; generation waits
for one of `generation_slots` (one on a CPU) in arrival order, with at most `max_queue` requests waiting
(beyond that: 503 with Retry-After). A client that disconnects mid-stream stops its generation at the next
token. Logs carry answer ids, sizes and timings, never API keys, questions or prompts (unless `log_questions`).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from .config import Config
from .errors import ConfigError

log = logging.getLogger("rag.serve")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # index and adapter names: no path, no traversal
DEFAULT_MODEL = "rag"


@dataclass
class ServeConfig:
    """How the server runs and what it accepts."""

    host: str = "127.0.0.1"  # loopback by default; 0.0.0.0 exposes it (keys are then mandatory)
    port: int = 8000
    index: str = "indexes/default"  # the index answered from when a request names none
    indexes_dir: str = "indexes"  # requests may pick another index here by name ("index": "NAME")
    adapters_dir: str = "adapters"  # adapters offered as models, by folder name
    api_keys: list[str] = field(default_factory=list)
    no_auth: bool = False  # only on a loopback address
    max_body_bytes: int = 1_000_000
    max_messages: int = 64
    max_message_chars: int = 8_000
    max_k: int = 20
    max_new_tokens: int = 512  # the most a request's max_tokens may ask for
    generation_slots: int = 1  # concurrent generations (the model is memory-bound on a CPU: 1)
    max_queue: int = 32  # requests waiting for a generation slot before the server answers 503
    feedback_log: str = "feedback.jsonl"
    log_questions: bool = False  # put questions in the log (they may hold customers' personal data)

    def __post_init__(self) -> None:
        if self.no_auth and not is_loopback(self.host):
            raise ConfigError(
                f"--no-auth is only allowed on a loopback address (127.0.0.1, ::1, localhost), not {self.host!r}; "
                "set API keys with RAG_API_KEYS or --api-keys-file to serve on other addresses"
            )
        if not self.no_auth and not self.api_keys:
            raise ConfigError(
                "no API keys: set RAG_API_KEYS=key1,key2 or --api-keys-file FILE (one key per line), "
                "or use --no-auth on a loopback address for local testing"
            )
        short = [k for k in self.api_keys if len(k) < 16]
        if short:
            raise ConfigError(f"{len(short)} API key(s) are shorter than 16 characters; use long random keys")
        if self.generation_slots < 1 or self.max_queue < 0:
            raise ConfigError("`generation_slots` must be >= 1 and `max_queue` >= 0")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_api_keys(env: str | None = None, path: str | os.PathLike | None = None) -> list[str]:
    """Keys from a comma-separated variable and/or a file with one key per line (# comments allowed)."""
    keys = [k.strip() for k in (env or "").split(",") if k.strip()]
    if path is not None:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read the API keys file {path}: {exc.strerror}") from exc
        keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return list(dict.fromkeys(keys))


class APIError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None, headers=None):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.headers = status, message, code, param, headers

    def body(self) -> dict:
        kind = {401: "authentication_error", 404: "not_found_error", 413: "invalid_request_error"}.get(
            self.status, "server_error" if self.status >= 500 else "invalid_request_error"
        )
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def _plain_name(name: str, what: str) -> str:
    """`name` if it is a plain folder name (no path, no traversal), else a 400 naming the parameter."""
    if not NAME.match(name) or ".." in name:
        raise APIError(
            400, f"{what} names are letters, digits, '.', '_' and '-' (no paths), got {name!r}", f"invalid_{what}", what
        )
    return name


class Cancelled(Exception):
    """Raised from the streaming callback when the client has gone away: stops the generation."""


# ------------------------------------------------------------------------------------------------ service


class Service:
    """What the endpoints share: indexes, generators per adapter, the generation queue, recent answers."""

    def __init__(
        self,
        serve: ServeConfig,
        config: Config | None = None,
        embedder=None,
        generator_factory=None,
        mmap: bool = False,
    ):
        self.serve = serve
        self.mmap = mmap  # open indexes memory-mapped (several worker processes then share the pages)
        self.config = config or Config()
        self._embedder = embedder  # tests pass a HashEmbedder
        self._generator_factory = generator_factory  # tests pass fakes: adapter folder (or None) -> generator
        self._retrievers: dict[str, Any] = {}
        self._generators: dict[str | None, Any] = {}
        self._lock = threading.Lock()
        self._slots: asyncio.Semaphore | None = None
        self.waiting = 0
        self.answers: OrderedDict[str, dict] = OrderedDict()  # recent answer ids, for feedback
        self._feedback_lock = threading.Lock()
        self.started = time.time()

    # Names -> things ------------------------------------------------------------------------------------

    def index_folder(self, name: str | None) -> Path:
        if name is None or name == "default":
            return Path(self.serve.index)
        folder = Path(self.serve.indexes_dir) / _plain_name(name, "index")
        if not (folder / "manifest.json").is_file():
            raise APIError(404, f"no index named {name!r} under {self.serve.indexes_dir}/", "index_not_found", "index")
        return folder

    def adapter_folder(self, model: str) -> str | None:
        if model in (DEFAULT_MODEL, self.config.generate.model):
            return None
        folder = Path(self.serve.adapters_dir) / _plain_name(model, "model")
        if not (folder / "adapter_config.json").is_file() and not (folder / "rag_tune.json").is_file():
            raise APIError(
                404, f"the model {model!r} does not exist; GET /v1/models lists the models", "model_not_found", "model"
            )
        return str(folder)

    def models(self) -> list[dict]:
        base = {"id": DEFAULT_MODEL, "object": "model", "created": int(self.started), "owned_by": "rag"}
        found = [base | {"base_model": self.config.generate.model, "adapter": None}]
        root = Path(self.serve.adapters_dir)
        if root.is_dir():
            for folder in sorted(p for p in root.iterdir() if p.is_dir() and NAME.match(p.name)):
                if (folder / "adapter_config.json").is_file() or (folder / "rag_tune.json").is_file():
                    created = int(folder.stat().st_mtime)
                    found.append(
                        base
                        | {
                            "id": folder.name,
                            "created": created,
                            "base_model": self.config.generate.model,
                            "adapter": folder.name,
                        }
                    )
        return found

    def retriever(self, folder: Path):
        from .retrieve import Retriever

        key = str(folder)
        with self._lock:
            if key not in self._retrievers:
                try:
                    self._retrievers[key] = Retriever(
                        folder,
                        self.config.retrieve,
                        embedder=self._embedder,
                        embed_config=self.config.embed,
                        mmap=self.mmap,
                    )
                except ConfigError as exc:
                    raise APIError(503, f"the index is not available: {exc}", "index_unavailable") from exc
            return self._retrievers[key]

    def generator(self, adapter: str | None):
        with self._lock:
            if adapter not in self._generators:
                if self._generator_factory is not None:
                    self._generators[adapter] = self._generator_factory(adapter)
                else:
                    from dataclasses import replace

                    from .generate import Generator

                    self._generators[adapter] = Generator(replace(self.config.generate, adapter=adapter))
            return self._generators[adapter]

    def rag(self, index: str | None, adapter: str | None, closed_book: bool = False):
        from .pipeline import RAG

        retriever = None if closed_book else self.retriever(self.index_folder(index))
        return RAG(None, self.config, retriever=retriever, generator=self.generator(adapter))

    def warm_up(self) -> None:
        """Load the default index and its embedder now, so the first request does not pay for it."""
        retriever = self.retriever(Path(self.serve.index))
        retriever.search("warm up", k=1)

    # Generation queue -------------------------------------------------------------------------------------

    async def slot(self):
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.serve.generation_slots)
        if self._slots.locked() and self.waiting >= self.serve.max_queue:
            raise APIError(
                503,
                "the server is busy: too many answers are waiting; retry shortly",
                "busy",
                headers={"Retry-After": "2"},
            )
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        return self._slots

    # Feedback -------------------------------------------------------------------------------------------

    def remember(self, answer_id: str, info: dict) -> None:
        self.answers[answer_id] = info
        while len(self.answers) > 10_000:
            self.answers.popitem(last=False)

    def feedback(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        path = Path(self.serve.feedback_log)
        with self._feedback_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:  # one write per record: lines never interleave
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())


# ------------------------------------------------------------------------------------------------ requests


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # clients send many optional OpenAI fields; they are ignored
    model: str = DEFAULT_MODEL
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    # extensions
    index: str | None = None
    k: int | None = Field(default=None, ge=1)
    mode: Literal["extractive", "generative", "auto"] | None = None
    closed_book: bool = False


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1)
    k: int = Field(default=5, ge=1)
    mode: Literal["dense", "bm25", "hybrid"] | None = None
    index: str | None = None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer_id: str = Field(min_length=1, max_length=100)
    rating: int = Field(ge=-1, le=1, description="-1 unhelpful, 0 neutral, 1 helpful")
    comment: str | None = Field(default=None, max_length=4000)


# ------------------------------------------------------------------------------------------------ app


def create_app(service: Service):
    """The FastAPI application for `service`."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool

    serve = service.serve

    app = FastAPI(title="rag", version=_version(), docs_url="/docs", redoc_url=None)

    @app.exception_handler(APIError)
    async def api_error(request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        where = ".".join(loc) or None
        if first.get("type") == "json_invalid":
            message, where = "the request body is not valid JSON", None
        elif where is None:
            message = f"the request body must be a JSON object ({first.get('msg', 'invalid')})"
        else:
            message = f"{where}: {first.get('msg', 'invalid value')}"
        return JSONResponse(APIError(400, message, "invalid_request", where).body(), status_code=400)

    app.add_middleware(_BodyLimit, limit=serve.max_body_bytes)

    app.add_middleware(_Auth, serve=serve)  # outermost: a caller without a key learns nothing else

    @app.get("/health")
    @app.get("/v1/health")
    async def health():
        return {
            "status": "ok",
            "pid": os.getpid(),
            "index": serve.index,
            "models_loaded": [a or DEFAULT_MODEL for a in service._generators],
            "waiting": service.waiting,
            "uptime_s": round(time.time() - service.started, 1),
        }

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": service.models()}

    @app.get("/v1/models/{model}")
    async def model(model: str):
        for m in service.models():
            if m["id"] == model:
                return m
        service.adapter_folder(model)  # raises the precise error
        raise APIError(404, f"the model {model!r} does not exist", "model_not_found", "model")

    @app.post("/v1/search")
    async def search(body: SearchRequest):
        if body.k > serve.max_k:
            raise APIError(400, f"k must be at most {serve.max_k}, got {body.k}", "invalid_k", "k")
        retriever = service.retriever(service.index_folder(body.index))
        started = time.perf_counter()
        hits = await run_in_threadpool(retriever.search, body.query, body.k, body.mode)
        log.info("search k=%d hits=%d %.3fs", body.k, len(hits), time.perf_counter() - started)
        return {"object": "list", "query": body.query, "data": [h.to_dict() for h in hits]}

    @app.post("/v1/feedback")
    async def feedback(body: FeedbackRequest):
        known = service.answers.get(body.answer_id)
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "answer_id": body.answer_id,
            "rating": body.rating,
            "comment": body.comment,
            "known": known is not None,
            **(known or {}),
        }
        await run_in_threadpool(service.feedback, record)
        return {"object": "feedback", "answer_id": body.answer_id, "recorded": True}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request):
        question, history = _conversation(body.messages, serve)
        adapter = service.adapter_folder(body.model)
        if body.k is not None and body.k > serve.max_k:
            raise APIError(400, f"k must be at most {serve.max_k}, got {body.k}", "invalid_k", "k")
        limit = body.max_completion_tokens or body.max_tokens
        if limit is not None and limit > serve.max_new_tokens:
            raise APIError(
                400,
                f"max_tokens must be at most {serve.max_new_tokens}, got {limit}",
                "invalid_max_tokens",
                "max_tokens",
            )
        mode = body.mode or service.config.answer.mode
        if adapter is not None and body.mode is None and mode == "extractive":
            mode = "generative"  # naming an adapter asks for its answers
        rag = await run_in_threadpool(service.rag, body.index, adapter, body.closed_book)
        needs_model = body.closed_book or mode != "extractive"
        answer_id = f"chatcmpl-{uuid.uuid4().hex}"
        kwargs = {
            "k": body.k,
            "mode": mode,
            "closed_book": body.closed_book,
            "history": history,
            "max_new_tokens": limit,
        }
        if body.stream:
            return StreamingResponse(
                _stream(service, rag, question, kwargs, body.model, answer_id, request, needs_model),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        started = time.perf_counter()
        if needs_model:
            slots = await service.slot()
            try:
                answer = await run_in_threadpool(lambda: rag.ask(question, **kwargs))
            finally:
                slots.release()
        else:
            answer = await run_in_threadpool(lambda: rag.ask(question, **kwargs))
        _log_answer(service, answer_id, body.model, answer, time.perf_counter() - started, question)
        return _completion(answer, body.model, answer_id)

    return app


def _conversation(messages, serve: ServeConfig) -> tuple[str, list[dict]]:
    """The question (the last user message) and the earlier turns, checked against the limits."""
    if len(messages) > serve.max_messages:
        raise APIError(
            400, f"too many messages: {len(messages)} (at most {serve.max_messages})", "too_many_messages", "messages"
        )
    for i, m in enumerate(messages):
        if len(m.text()) > serve.max_message_chars:
            raise APIError(
                400,
                f"messages[{i}] is {len(m.text())} characters long (at most {serve.max_message_chars})",
                "message_too_long",
                f"messages.{i}.content",
            )
    if messages[-1].role != "user" or not messages[-1].text().strip():
        raise APIError(400, "the last message must be the user's question, with text", "invalid_messages", "messages")
    history = [{"role": m.role, "content": m.text()} for m in messages[:-1] if m.role in ("user", "assistant")]
    return messages[-1].text().strip(), history


def _rag_extension(answer, answer_id: str) -> dict:
    data = answer.to_dict()
    return {
        "answer_id": answer_id,
        "refused": answer.refused,
        "citations": answer.citations,
        "sources": data["sources"],
        "mode": answer.mode,
        "adapter": Path(answer.adapter).name if answer.adapter else None,
        "timings": data["timings"],
    }


def _usage(answer) -> dict:
    prompt = int(answer.timings.get("prompt_tokens") or 0)
    completion = int(answer.timings.get("new_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(answer, model: str, answer_id: str) -> dict:
    return {
        "id": answer_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.answer},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(answer),
        "rag": _rag_extension(answer, answer_id),
    }


def _chunk(
    answer_id: str, model: str, created: int, delta: dict, finish: str | None = None, extra: dict | None = None
) -> str:
    payload = {
        "id": answer_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        **(extra or {}),
    }
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _stream(
    service: Service, rag, question: str, kwargs: dict, model: str, answer_id: str, request, needs_model: bool
):
    """Server-sent events for one answer. The answer runs in a worker thread that pushes text pieces to this
    coroutine; when the client disconnects, the next piece raises `Cancelled` there and generation stops."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()
    gone = threading.Event()
    created = int(time.time())
    started = time.perf_counter()

    def on_text(text: str) -> None:
        if gone.is_set():
            raise Cancelled()
        loop.call_soon_threadsafe(pieces.put_nowait, ("text", text))

    def work():
        try:
            answer = rag.ask(question, on_text=on_text, **kwargs)
            loop.call_soon_threadsafe(pieces.put_nowait, ("done", answer))
        except Cancelled:
            loop.call_soon_threadsafe(pieces.put_nowait, ("cancelled", None))
        except Exception as exc:  # reported to the client as an error event
            loop.call_soon_threadsafe(pieces.put_nowait, ("error", exc))

    slots = None
    try:
        yield _chunk(answer_id, model, created, {"role": "assistant", "content": ""})
        if needs_model:
            slots = await service.slot()
        task = loop.run_in_executor(None, work)
        while True:
            try:
                kind, value = await asyncio.wait_for(pieces.get(), timeout=0.5)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    gone.set()
                continue
            if kind == "text":
                yield _chunk(answer_id, model, created, {"content": value})
            elif kind == "done":
                _log_answer(service, answer_id, model, value, time.perf_counter() - started, question)
                yield _chunk(
                    answer_id,
                    model,
                    created,
                    {},
                    "stop",
                    {"usage": _usage(value), "rag": _rag_extension(value, answer_id)},
                )
                yield "data: [DONE]\n\n"
                break
            elif kind == "error":
                log.error("answer %s failed: %s", answer_id, value)
                body = APIError(500, f"the answer failed: {type(value).__name__}", "answer_failed").body()
                yield f"data: {json.dumps(body)}\n\n"
                break
            else:
                log.info("answer %s cancelled: the client went away", answer_id)
                break
        await task
    finally:
        gone.set()  # also when the response is torn down because the client disconnected
        if slots is not None:
            slots.release()


def _log_answer(service: Service, answer_id: str, model: str, answer, seconds: float, question: str) -> None:
    service.remember(
        answer_id,
        {
            "model": model,
            "refused": answer.refused,
            "mode": answer.mode,
            "sources": [h.chunk.source for h in answer.sources],
            "citations": answer.citations,
        },
    )
    shown = f" question={question!r}" if service.serve.log_questions else f" question_chars={len(question)}"
    log.info(
        "answer %s model=%s mode=%s refused=%s %.2fs%s", answer_id, model, answer.mode, answer.refused, seconds, shown
    )


class _Auth:
    """ASGI middleware: every /v1 request needs `Authorization: Bearer KEY` with a configured key (checked
    before the body is read, in constant time per key)."""

    def __init__(self, app, serve: ServeConfig):
        self.app, self.serve = app, serve
        self.keys = [k.encode() for k in serve.api_keys]

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or self.serve.no_auth
            or not scope["path"].startswith("/v1/")
            or scope["path"] == "/v1/health"
        ):
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            error = APIError(401, "missing API key: send the header 'Authorization: Bearer KEY'", "invalid_api_key")
        elif not any(hmac.compare_digest(token, key) for key in self.keys):
            error = APIError(401, "invalid API key", "invalid_api_key")
        else:
            return await self.app(scope, receive, send)
        await _send_error(send, error, [(b"www-authenticate", b"Bearer")])


class _BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes, whether declared (Content-Length) or
    streamed (chunked). The body is read here, counted, and handed on whole."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _too_large(send, self.limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > self.limit:
                return await _too_large(send, self.limit)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body, delivered = b"".join(chunks), False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later messages (a disconnect) come from the client

        await self.app(scope, replay, send)


async def _too_large(send, limit: int) -> None:
    await _send_error(send, APIError(413, f"the request body is larger than {limit} bytes", "body_too_large"))


async def _send_error(send, error: APIError, headers: list | None = None) -> None:
    body = json.dumps(error.body()).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())] + (headers or [])
    await send({"type": "http.response.start", "status": error.status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def _version() -> str:
    from . import __version__

    return __version__


SETTINGS_ENV = "RAG_SERVE_SETTINGS"  # how `--workers N` hands the settings to each worker process


def _setup_logging() -> None:
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"%(levelname)s:     rag[{os.getpid()}]: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def run(service: Service, workers: int = 1) -> None:
    """Serve until interrupted: one process, or `workers` uvicorn worker processes on the same port that each
    load the models and open the index memory-mapped (the operating system shares its pages between them)."""
    import uvicorn

    _setup_logging()
    if workers <= 1:
        app = create_app(service)
        uvicorn.run(app, host=service.serve.host, port=service.serve.port, log_level="info", access_log=True)
        return
    from dataclasses import asdict

    settings = {"serve": asdict(service.serve), "config": asdict(service.config)}
    settings["serve"]["api_keys"] = []  # keys travel in their own variable, not in a settings blob
    os.environ[SETTINGS_ENV] = json.dumps(settings)
    os.environ["RAG_SERVE_KEYS"] = ",".join(service.serve.api_keys)
    uvicorn.run(
        "rag.serve:app_from_env",
        factory=True,
        host=service.serve.host,
        port=service.serve.port,
        workers=workers,
        log_level="info",
    )


def app_from_env():
    """The app of one worker process, from the settings `run(workers=N)` put in the environment."""
    _setup_logging()
    settings = json.loads(os.environ[SETTINGS_ENV])
    serve = ServeConfig(**{**settings["serve"], "api_keys": read_api_keys(os.environ.get("RAG_SERVE_KEYS"))})
    service = Service(serve, Config.from_dict(settings["config"], SETTINGS_ENV), mmap=True)
    service.warm_up()
    return create_app(service)
