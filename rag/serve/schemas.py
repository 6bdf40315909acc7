"""The request bodies the API accepts, as pydantic models (FastAPI validates them and answers 400 otherwise).

Chat requests follow OpenAI's chat-completions protocol and allow its many optional fields (they are
ignored); `index`, `k`, `mode` and `closed_book` are rag's extensions. Search and feedback bodies forbid
unknown fields, so a typo is a 400 rather than a silently ignored setting.

What this module does not do: the limits that depend on `ServeConfig` (message count and length, `k`,
`max_tokens`); `rag.serve.app` checks those.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..text import unencodable
from .config import DEFAULT_MODEL


class TextPart(BaseModel):
    """One part of a message's content list; only "text" parts are read."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    @field_validator("content")
    @classmethod
    def _encodable(cls, content):
        # half of a surrogate pair (a client's broken emoji) cannot be read as text: a 400 before any answer
        # starts, rather than an error in the middle of a stream
        for text in [content] if isinstance(content, str) else [p.text for p in content or [] if p.text]:
            where = unencodable(text)
            if where:
                raise ValueError(f"content is not valid text: {where} (half of a surrogate pair); send UTF-8 text")
        return content

    def text(self) -> str:
        """The message's text, its text parts joined."""
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
    # sampling settings are the server's (the reader's answers are greedy), but out of OpenAI's ranges they are
    # a client's mistake, answered as OpenAI answers it; one choice is made per request
    n: int = Field(default=1, ge=1, le=1, description="only 1: one answer per request")
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
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
    # the right answer, when the given one was wrong: with the question it becomes a training example
    # (`rag tune feedback.jsonl --task scorer --index NAME`)
    correction: str | None = Field(default=None, max_length=4000)
