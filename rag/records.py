"""JSON Lines parsing shared by every reader of records (FAQ files, BEIR data, tuning data, question sets)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .errors import ConfigError


def parse_jsonl_numbered(
    text: str, where: str, error=ConfigError, require: str | None = None
) -> list[tuple[int, dict]]:
    """Like `parse_jsonl`, with each record's line number, for readers whose own checks name the line.

    >>> parse_jsonl_numbered('{"a": 1}\\n\\n{"a": 2}\\n', "x.jsonl")
    [(1, {'a': 1}), (3, {'a': 2})]
    """
    rows = []
    for number, row, wrong in jsonl_lines(text):
        if wrong:
            raise error(f"{where} line {number} {wrong}")
        if not isinstance(row, dict):
            raise error(f"{where} line {number} is not a JSON object")
        if require and require not in row:
            raise error(f"{where} line {number} has no '{require}' field")
        rows.append((number, row))
    return rows


def jsonl_lines(text: str) -> Iterator[tuple[int, Any, str]]:
    """Each non-blank line's number with its value, or with None and what is wrong with it, for readers that
    skip a bad line (an FAQ file keeps its other records) as well as those that stop at it.

    >>> list(jsonl_lines('{"a": 1}\\n\\n{oops'))
    [(1, {'a': 1}, ''), (3, None, 'is not valid JSON (Expecting property name enclosed in double quotes); fix or remove that line')]
    """
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line), ""
        except json.JSONDecodeError as exc:
            yield number, None, f"is not valid JSON ({exc.msg}); fix or remove that line"
        except RecursionError:
            yield number, None, "nests too deeply to be read; records are flat objects"


def parse_jsonl(text: str, where: str, error=ConfigError, require: str | None = None) -> list[dict]:
    """One JSON object per non-blank line; `error` (naming `where` and the line) for anything else.

    >>> parse_jsonl('{"a": 1}\\n\\n{"a": 2}\\n', "x.jsonl")
    [{'a': 1}, {'a': 2}]
    """
    return [row for _, row in parse_jsonl_numbered(text, where, error, require)]
