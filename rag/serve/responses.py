"""Answers as OpenAI response bodies: a chat completion, a streamed chunk (one server-sent event), usage, and
rag's extension field `rag` (answer id, refused, citations, sources, mode, timings).

What this module does not do: decide what to answer or when to send it (`rag.serve.app`,
`rag.serve.streaming`). Pure functions of an `Answer`; no FastAPI.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..types import Answer
from .errors import APIError


def rag_extension(answer: Answer, answer_id: str) -> dict:
    """What an OpenAI client ignores and a rag-aware bot reads: sources, citations, refusal, timings."""
    data = answer.to_dict()
    return {
        "answer_id": answer_id,
        "refused": answer.refused,
        "citations": answer.citations,
        "sources": data["sources"],
        "mode": answer.mode,
        "adapter": Path(answer.adapter).name if answer.adapter else None,
        "timings": data["timings"],
        "warnings": answer.warnings,
    }


def usage(answer: Answer) -> dict:
    """OpenAI's token counts (zero for answers that needed no generation)."""
    prompt = int(answer.timings.get("prompt_tokens") or 0)
    completion = int(answer.timings.get("new_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(answer: Answer, model: str, answer_id: str) -> dict:
    """A `chat.completion` object for a whole answer."""
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
        "usage": usage(answer),
        "rag": rag_extension(answer, answer_id),
    }


def chunk(
    answer_id: str, model: str, created: int, delta: dict, finish: str | None = None, extra: dict | None = None
) -> str:
    """One `chat.completion.chunk` as a server-sent event.

    >>> chunk("chatcmpl-1", "rag", 0, {"content": "Hi"}).startswith('data: {"id": "chatcmpl-1"')
    True
    """
    payload = {
        "id": answer_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        **(extra or {}),
    }
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def error_event(error: APIError) -> str:
    """An error in the middle of a stream, as OpenAI sends it: an event whose data is the error body (the
    official client raises it as an `APIError`).

    >>> error_event(APIError(400, "bad k", "invalid_k", "k"))
    'data: {"error": {"message": "bad k", "type": "invalid_request_error", "param": "k", "code": "invalid_k"}}\\n\\n'
    """
    return f"data: {json.dumps(error.body(), ensure_ascii=False)}\n\n"


DONE = "data: [DONE]\n\n"
