"""JSON Lines parsing shared by every reader of records (FAQ files, BEIR data, tuning data, question sets)."""

from __future__ import annotations

import json

from .errors import ConfigError


def parse_jsonl(text: str, where: str, error=ConfigError, require: str | None = None) -> list[dict]:
    """One JSON object per non-blank line; `error` (naming `where` and the line) for anything else.

    >>> parse_jsonl('{"a": 1}\\n\\n{"a": 2}\\n', "x.jsonl")
    [{'a': 1}, {'a': 2}]
    """
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where} line {number} is not valid JSON ({exc.msg}); fix or remove that line") from exc
        if not isinstance(row, dict):
            raise error(f"{where} line {number} is not a JSON object")
        if require and require not in row:
            raise error(f"{where} line {number} has no '{require}' field")
        rows.append(row)
    return rows
