"""Answers delivered while their client listens: a streamed answer as server-sent events, and a whole answer
that stops generating when its client goes away.

A stream sends the assistant role at once, then the answer's text pieces as the model produces them, then a
last chunk with usage and rag's extension, then `data: [DONE]`. An error after the first event cannot change
the HTTP status any more, so it is sent as an error event in OpenAI's shape. When the client disconnects,
Starlette cancels the stream; leaving `RAG.astream` stops the generation at its next token and frees the
generation slot.

What this module does not do: check requests or pick the index and model (`rag.serve.app`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from ..errors import Cancelled, RagError
from ..types import Answer
from .errors import APIError, from_rag_error, internal_error
from .responses import DONE, chunk, error_event, rag_extension, usage
from .service import Service

log = logging.getLogger(__name__)

T = TypeVar("T")


async def stream_answer(
    service: Service, rag, question: str, kwargs: dict, model: str, answer_id: str, needs_model: bool
) -> AsyncIterator[str]:
    """The server-sent events of one answer (`kwargs` go to `RAG.astream`); a generation waits for a slot."""
    created = int(time.time())
    started = time.perf_counter()
    yield chunk(answer_id, model, created, {"role": "assistant", "content": ""})
    try:
        answer: Answer | None = None
        async with service.generation_slot() if needs_model else contextlib.nullcontext():
            # aclosing: however this stream ends, the answer's generation is stopped now, not when collected
            async with contextlib.aclosing(rag.astream(question, **kwargs)) as pieces:
                async for piece in pieces:
                    if isinstance(piece, str):
                        yield chunk(answer_id, model, created, {"content": piece})
                    else:
                        answer = piece
        assert answer is not None  # astream always ends with the Answer
        service.record(answer_id, model, answer, time.perf_counter() - started, question)
        extra = {"usage": usage(answer), "rag": rag_extension(answer, answer_id)}
        yield chunk(answer_id, model, created, {}, "stop", extra)
        yield DONE
    except (asyncio.CancelledError, GeneratorExit, Cancelled):
        log.info("answer %s cancelled: the client went away", answer_id)
        raise
    except APIError as exc:  # the queue was full after all
        yield error_event(exc)
    except RagError as exc:
        error = from_rag_error(exc)
        log.error("answer %s failed: %s: %s", answer_id, type(exc).__name__, exc)
        yield error_event(error)
    except Exception:
        log.exception("answer %s failed", answer_id)
        yield error_event(internal_error())


async def unless_disconnected(request, work: Callable[[threading.Event], Awaitable[T]]) -> T:
    """`await work(cancel)`, unless the client of `request` disconnects first: then `cancel` is set (a running
    generation stops at its next token), a request still queued for a slot leaves the queue, and `Cancelled`
    is raised once the work has really stopped (so that the generation slot is freed only then)."""
    cancel = threading.Event()
    task = asyncio.ensure_future(work(cancel))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # this request itself is cancelled (the server stops): stop the work too
        cancel.set()
        task.cancel()
        raise
    finally:
        gone.cancel()
    if task.done():
        return task.result()
    cancel.set()
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: its Cancelled is expected, not worth a warning
    raise Cancelled("the client went away before the answer was ready")


async def _disconnected(request) -> None:
    """Return once the client has gone. The body has been read, so uvicorn answers `receive()` only when the
    connection closes (or the response is complete, by which time nobody waits for this)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
