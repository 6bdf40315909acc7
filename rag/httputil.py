"""Pure helpers of the HTTP generator backend (`rag.remote`): URLs without credentials for messages, a token
estimate for a tokenizer we cannot see, `Retry-After`, a failed response's own message, and the request changes
a server's 400 asks for. No network, no httpx import.
"""

from __future__ import annotations

import email.utils
import json
import time
from urllib.parse import urlsplit, urlunsplit


def redact(url: str) -> str:
    """`url` without user info or query (where credentials sometimes hide), for messages and logs.

    >>> redact("https://user:secret@api.example.com/v1?key=abc")
    'https://api.example.com/v1'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def estimate_tokens(text: str) -> int:
    """A deliberately high estimate of a text's tokens for a tokenizer we cannot see: ~3.5 ASCII characters
    per token (English runs ~4 with most tokenizers), 1.5 tokens per other character (CJK costs 0.7 with
    multilingual tokenizers, up to 3 bytes with English-only ones).

    >>> estimate_tokens("How long is the warranty?"), estimate_tokens("退货需要多久")
    (8, 9)
    """
    other = sum(1 for ch in text if ord(ch) > 127)
    return int(-(-(len(text) - other) // 3.5) + -(-other * 3 // 2))


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date), None if absent or unreadable.

    >>> retry_after("2"), retry_after(None), retry_after("soon")
    (2.0, None, None)
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def server_message(response) -> str:
    """The server's own words about a failed request: OpenAI's `error.message`, FastAPI's `detail`, or the body's
    first 300 characters."""
    text = response.text.strip()
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300] or "(empty body)"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
        if data.get("detail"):
            return json.dumps(data["detail"], ensure_ascii=False)[:300]
        if data.get("message"):
            return str(data["message"])[:300]
    return " ".join(text.split())[:300]


def adapt_request(body: dict, message: str, adjusted: set[str]) -> bool:
    """Change `body` the way a server's 400 asks for (a parameter it does not take); False when nothing fits."""
    lowered = message.lower()
    if "max_completion_tokens" in lowered and "max_tokens" in body and "max_tokens" not in adjusted:
        body["max_completion_tokens"] = body.pop("max_tokens")
        adjusted.add("max_tokens")
        return True
    if "stream_options" in lowered and "stream_options" in body:
        body.pop("stream_options")
        adjusted.add("stream_options")
        return True
    return False
