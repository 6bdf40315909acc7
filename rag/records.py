"""JSON Lines parsing shared by every reader of records (FAQ files, BEIR data, tuning data, question sets)."""

from __future__ import annotations

import json

from .errors import ConfigError


def parse_jsonl_numbered(
    text: str, where: str, error=ConfigError, require: str | None = None
) -> list[tuple[int, dict]]:
    """Like `parse_jsonl`, with each record's line number, for readers whose own checks name the line.

    >>> parse_jsonl_numbered('{"a": 1}\\n\\n{"a": 2}\\n', "x.jsonl")
    [(1, {'a': 1}), (3, {'a': 2})]
    """
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where} line {number} is not valid JSON ({exc.msg}); fix or remove that line") from exc
        except RecursionError as exc:
            raise error(f"{where} line {number} nests too deeply to be read; records are flat objects") from exc
        if not isinstance(row, dict):
            raise error(f"{where} line {number} is not a JSON object")
        if require and require not in row:
            raise error(f"{where} line {number} has no '{require}' field")
        rows.append((number, row))
    return rows


def parse_jsonl(text: str, where: str, error=ConfigError, require: str | None = None) -> list[dict]:
    """One JSON object per non-blank line; `error` (naming `where` and the line) for anything else.

    >>> parse_jsonl('{"a": 1}\\n\\n{"a": 2}\\n', "x.jsonl")
    [{'a': 1}, {'a': 2}]
    """
    return [row for _, row in parse_jsonl_numbered(text, where, error, require)]
