"""The FastAPI application: routes, request limits, and errors turned into OpenAI-shaped answers.

    POST /v1/chat/completions   OpenAI's protocol (`stream: true` too); the answer's sources, citations and
                                refused flag are in the extension field `rag`
    GET  /v1/models             "rag" and the tuned folders under `adapters_dir`
    POST /v1/search             the chunks most relevant to a query
    POST /v1/feedback           a rating and comment for an answer id, appended to a JSONL log
    GET  /health                liveness, what is loaded, the generation each open index serves (no key needed)

Searches and answers run in worker threads, never on the event loop. Every `rag` error a request raises
becomes a 4xx/5xx in OpenAI's shape (`rag.serve.errors`); anything unexpected a 500 without internals (the
traceback goes to the server log). What this module does not do: hold state (`rag.serve.service`), stream
(`rag.serve.streaming`), check keys or body size (`rag.serve.middleware`), or run a server
(`rag.serve.workers`).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from functools import partial

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..errors import Cancelled, RagError
from .config import ServeConfig
from .errors import APIError, from_rag_error, internal_error
from .middleware import Auth, BodyLimit
from .responses import completion
from .schemas import ChatRequest, FeedbackRequest, Message, SearchRequest
from .service import Service
from .streaming import stream_answer, unless_disconnected

log = logging.getLogger(__name__)


def create_app(service: Service) -> FastAPI:
    """The FastAPI application serving `service`."""
    serve = service.serve
    app = FastAPI(title="rag", version=_version(), docs_url="/docs", redoc_url=None)
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=serve.max_body_bytes)
    app.add_middleware(Auth, serve=serve)  # outermost: a caller without a key learns nothing else

    @app.get("/health")
    @app.get("/v1/health")
    async def health():
        await run_in_threadpool(service.refresh)  # a rebuilt index is picked up (and shown) here too
        indexes = service.indexes()
        return {
            "status": "ok",
            "pid": os.getpid(),
            "index": serve.index,
            "generation": next((i["generation"] for i in indexes if i["index"] == "default"), None),
            "indexes": indexes,
            "models_loaded": service.loaded_models(),
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
        _check_k(body.k, serve)
        retriever = await run_in_threadpool(service.retriever, service.index_folder(body.index))
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
            "correction": body.correction,
            "known": known is not None,
            **(known or {}),
        }
        await run_in_threadpool(service.feedback, record)
        return {"object": "feedback", "answer_id": body.answer_id, "recorded": True}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request):
        question, history = _conversation(body.messages, serve)
        adapter = service.adapter_folder(body.model)
        if body.k is not None:
            _check_k(body.k, serve)
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
        if needs_model:
            service.admit()  # a full queue is a 503 now, while the status can still say so
        if body.stream:
            return StreamingResponse(
                stream_answer(service, rag, question, kwargs, body.model, answer_id, needs_model),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )

        async def answer(cancel):
            if not needs_model:  # extractive answers need no generation slot
                return await run_in_threadpool(partial(rag.ask, question, cancel=cancel, **kwargs))
            async with service.generation_slot():
                return await run_in_threadpool(partial(rag.ask, question, cancel=cancel, **kwargs))

        started = time.perf_counter()
        found = await unless_disconnected(request, answer)
        service.record(answer_id, body.model, found, time.perf_counter() - started, question)
        return completion(found, body.model, answer_id)

    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RagError)
    async def rag_error(request, exc: RagError):
        error = from_rag_error(exc)
        if isinstance(exc, Cancelled):  # the client left: nothing went wrong on this side
            log.info("%s %s cancelled: %s", request.method, request.url.path, exc)
        elif error.status >= 500:
            log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):  # an unknown path or method, in the same shape
        error = APIError(exc.status_code, str(exc.detail), "not_found" if exc.status_code == 404 else None)
        return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):
        # Starlette re-raises the exception after this answer is sent, so the server log gets the traceback
        return JSONResponse(internal_error().body(), status_code=500)

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


def _check_k(k: int, serve: ServeConfig) -> None:
    if k > serve.max_k:
        raise APIError(400, f"k must be at most {serve.max_k}, got {k}", "invalid_k", "k")


def _conversation(messages: list[Message], serve: ServeConfig) -> tuple[str, list[dict]]:
    """The question (the last user message) and the earlier user/assistant turns, checked against the limits.
    Client system prompts are dropped: rag keeps its own grounded one."""
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


def _version() -> str:
    from .. import __version__

    return __version__
