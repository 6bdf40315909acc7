"""Errors as HTTP answers: `APIError` (OpenAI's error shape) and the status each `rag` error gets.

Every error the server answers has OpenAI's shape, so a bot's OpenAI client raises its usual exceptions:
`{"error": {"message", "type", "param", "code"}}`. `rag`'s own errors (`rag.errors.RagError`) map to:

    ConfigError                                   400 invalid_request   (a setting or per-call value is wrong)
    IndexFormatError, EmbedderMismatchError,
    IndexLockedError                              503 index_unavailable (the index needs rebuilding or is busy)
    MissingDependencyError                        501 missing_dependency
    RemoteError (the generation server failed)    502 upstream_error
    Cancelled                                     499 cancelled         (the client went away; not a failure)
    any other RagError                            500 rag_error

The message is the error's own, which says what to do. What this module does not do: install the handlers
(`rag.serve.app`) or decide which errors a route raises.
"""

from __future__ import annotations

from ..errors import (
    Cancelled,
    ConfigError,
    EmbedderMismatchError,
    IndexFormatError,
    IndexLockedError,
    MissingDependencyError,
    RagError,
)

CLIENT_CLOSED = 499  # nginx's "client closed request": nobody reads it, but access logs show why


class APIError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.headers = status, message, code, param, headers

    def body(self) -> dict:
        """The JSON body.

        >>> APIError(404, "no index named 'x'", "index_not_found", "index").body()["error"]["type"]
        'not_found_error'
        """
        kind = {401: "authentication_error", 404: "not_found_error", 413: "invalid_request_error"}.get(
            self.status, "server_error" if self.status >= 500 else "invalid_request_error"
        )
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def from_rag_error(exc: RagError) -> APIError:
    """The HTTP answer for one of `rag`'s own errors (see the table in this module's docstring).

    >>> from rag.errors import ConfigError, IndexFormatError
    >>> from_rag_error(ConfigError("k must be a positive integer")).status
    400
    >>> e = from_rag_error(IndexFormatError("index x is inconsistent; rebuild it"))
    >>> e.status, e.code, e.message
    (503, 'index_unavailable', 'the index is not available: index x is inconsistent; rebuild it')
    """
    message = str(exc) or type(exc).__name__
    if isinstance(exc, Cancelled):
        return APIError(CLIENT_CLOSED, f"the request was cancelled: {message}", "cancelled")
    if isinstance(exc, ConfigError):
        return APIError(400, message, "invalid_request")
    if isinstance(exc, (IndexFormatError, EmbedderMismatchError, IndexLockedError)):
        return APIError(503, f"the index is not available: {message}", "index_unavailable", "index")
    if isinstance(exc, MissingDependencyError):
        return APIError(501, message, "missing_dependency")
    from ..remote import RemoteError  # light: the HTTP client loads only when a request is sent

    if isinstance(exc, RemoteError):
        return APIError(502, f"the generation server failed: {message}", "upstream_error")
    return APIError(500, f"the answer failed: {message}", "rag_error")


def internal_error() -> APIError:
    """The answer for an unexpected exception: no traceback or internals, only where to look."""
    return APIError(500, "internal server error; the server log has the details", "internal_error")
