"""The systems an evaluation compares, in one table: each one's name, the adapter it answers with, whether it
retrieves, how it answers and a one-line label; and how a system's generator (backend, model, adapter) is named.

`answer_mode_of` says how a system answers in a run's answer mode (and so whether its generator runs at all).

What this module does not do: run systems (`rag.eval.harness`) or score them (`rag.eval.metrics`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError


@dataclass(frozen=True)
class System:
    name: str
    adapter: str | None  # the adapter kind it answers with: None (the base model), "ft", "raft" or "reader"
    retrieves: bool  # answers over retrieved passages, so retrieval and citations are scored too
    label: str  # what it is, in a few words (report legend, help text)
    answer_mode: str | None = None  # a fixed answer mode; None: the suite's `answer_mode`
    default: bool = True  # run when a suite does not list its systems


SYSTEMS: tuple[System, ...] = (
    System("closed-book", None, False, "the base model alone"),
    System("rag", None, True, "the base model over retrieved passages"),
    System("ft", "ft", False, "an adapter fine-tuned on the documents and training questions, closed book"),
    System("ft+rag", "ft", True, "that fine-tuned adapter over retrieved passages"),
    System("raft+rag", "raft", True, "a RAFT adapter (Zhang et al. 2024) over retrieved passages"),
    System(
        "reader+rag",
        "reader",
        True,
        "the reader adapter shipped with rag (RAFT-style, public data) over retrieved passages",
        default=False,
    ),
    # a reference point for what the generator adds or loses, so not run unless asked for
    System(
        "extractive",
        None,
        True,
        "rag's default answer mode: the best passage sentence, cited, no language model",
        answer_mode="extractive",
        default=False,
    ),
)
BY_NAME: dict[str, System] = {s.name: s for s in SYSTEMS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
DEFAULT: tuple[str, ...] = tuple(s.name for s in SYSTEMS if s.default)


def parse_systems(value: str | Iterable[str] | None) -> list[str]:
    """A list of system names, from a list or a comma-separated string, checked; duplicates dropped.

    >>> parse_systems("rag, ft+rag,rag")
    ['rag', 'ft+rag']
    >>> parse_systems(["rag", "finetuned"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rag.errors.ConfigError: unknown system(s) ['finetuned']; systems are closed-book, rag, ft, ft+rag, ...
    """
    names = [s.strip() for s in value.split(",")] if isinstance(value, str) else list(value or [])
    bad = [s for s in names if s not in BY_NAME]
    if bad or not names:
        raise ConfigError(f"unknown system(s) {bad or names}; systems are {', '.join(NAMES)}")
    return list(dict.fromkeys(names))


def answer_mode_of(system: str, suite_mode: str) -> str:
    """How `system` answers in a run whose `answer_mode` is `suite_mode`: "closed-book" (the model alone, in any
    mode), the system's own fixed mode (`extractive`), or the suite's. In "extractive" no language model runs:
    `rag`, `reader+rag`, `ft+rag` and `raft+rag` then answer as the `extractive` system does, their generator
    and adapter unused.

    >>> [answer_mode_of(s, "extractive") for s in ("closed-book", "reader+rag", "extractive")]
    ['closed-book', 'extractive', 'extractive']
    >>> answer_mode_of("raft+rag", "auto"), answer_mode_of("extractive", "generative")
    ('auto', 'extractive')
    """
    spec = BY_NAME[system]
    if not spec.retrieves:
        return "closed-book"
    return spec.answer_mode or suite_mode


def runs_generator(mode: str) -> bool:
    """Whether a system answering in `mode` (`answer_mode_of`) runs its language model (and adapter)."""
    return mode != "extractive"


def served(generate) -> bool:
    """True when a `GenerateConfig` answers over HTTP (its adapters are then the server's, by name)."""
    from ..generate import backend_of

    return backend_of(generate) == "openai"


def describe_generator(generate) -> dict:
    """What a system answers with, for the report: backend, model, adapter and server (no credentials)."""
    from ..generate import backend_of
    from ..models import resolve_adapter
    from ..remote import redact

    adapter = resolve_adapter(generate.model, generate.adapter, backend_of(generate))
    if adapter and served(generate):
        adapter = Path(adapter).name  # the server's adapter, by name
    return {
        "backend": backend_of(generate),
        "model": generate.model,
        "adapter": adapter,
        "server": redact(generate.base_url) if generate.base_url else None,
    }
