"""How the server runs and what it accepts: `ServeConfig`, API keys, the loopback rule.

What this module does not do: answer settings (those are `rag.config.Config`, shared with the CLI), and
nothing here imports FastAPI, so `rag --help` and the settings checks stay light.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

DEFAULT_MODEL = "rag"  # the model name that means "the base generator, no adapter"


@dataclass
class ServeConfig:
    """How the server runs and what it accepts. Raises `ConfigError` for an unsafe or impossible setting."""

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
    generation_process: bool = True  # in-process models generate in a niced child: searches stay fast (README)
    max_queue: int = 32  # requests waiting for a generation slot before the server answers 503
    feedback_log: str = "feedback.jsonl"
    log_questions: bool = False  # put questions in the log (they may hold customers' personal data)
    reload_check_s: float = 1.0  # how often (at most) a request checks whether an index was rebuilt

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
        if self.reload_check_s < 0:
            raise ConfigError(f"`reload_check_s` must be >= 0 seconds, got {self.reload_check_s}")
        if self.generation_slots < 1 or self.max_queue < 0:
            raise ConfigError(
                f"`generation_slots` must be >= 1 and `max_queue` >= 0, "
                f"got generation_slots={self.generation_slots}, max_queue={self.max_queue}"
            )


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_api_keys(env: str | None = None, path: str | os.PathLike | None = None) -> list[str]:
    """Keys from a comma-separated variable and/or a file with one key per line (# comments allowed), without
    duplicates, in order. Raises `ConfigError` when the file cannot be read.

    >>> read_api_keys("key-a, key-b,,key-a")
    ['key-a', 'key-b']
    """
    keys = [k.strip() for k in (env or "").split(",") if k.strip()]
    if path is not None:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read the API keys file {path}: {exc.strerror}") from exc
        keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return list(dict.fromkeys(keys))
