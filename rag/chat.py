"""A conversation with a `rag.RAG`: follow-ups are retrieved with the previous question's words (see
`rag.pipeline.standalone_query`), and the answer addresses the question actually asked.

What this module does not do: answer (`rag.pipeline.RAG` does, given the session's history).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from .types import Answer


@dataclass
class ChatSession:
    """A multi-turn conversation: follow-ups are retrieved with the context of the previous question. One
    session is one conversation: ask its turns one after the other (`ask`/`stream`, or `aask`/`astream`)."""

    rag: object  # a rag.RAG
    history: list[dict] = field(default_factory=list)
    max_turns: int = 6  # earlier turns are forgotten (and the prompt budget drops them first)
    closed_book: bool = False

    def _recent(self) -> list[dict]:
        return self.history[-2 * self.max_turns :]

    def _remember(self, question: str, answer: Answer) -> None:
        self.history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.answer}]

    def ask(self, question: str, **kwargs) -> Answer:
        kwargs.setdefault("closed_book", self.closed_book)
        answer = self.rag.ask(question, history=self._recent(), **kwargs)
        self._remember(question, answer)
        return answer

    def stream(self, question: str, **kwargs) -> Iterator[str | Answer]:
        kwargs.setdefault("closed_book", self.closed_book)
        for piece in self.rag.stream(question, history=self._recent(), **kwargs):
            if isinstance(piece, Answer):
                self._remember(question, piece)
            yield piece

    async def aask(self, question: str, **kwargs) -> Answer:
        kwargs.setdefault("closed_book", self.closed_book)
        answer = await self.rag.aask(question, history=self._recent(), **kwargs)
        self._remember(question, answer)
        return answer

    async def astream(self, question: str, **kwargs) -> AsyncIterator[str | Answer]:
        kwargs.setdefault("closed_book", self.closed_book)
        async for piece in self.rag.astream(question, history=self._recent(), **kwargs):
            if isinstance(piece, Answer):
                self._remember(question, piece)
            yield piece
