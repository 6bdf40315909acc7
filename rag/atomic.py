"""Write-then-replace, in one place: a folder or a file appears complete at its final path, or not at all.

Everything `rag` writes for later use goes through here: index manifests, converted models, tuned adapters,
merged models, evaluation reports. A folder is written in a temporary sibling and swapped into place with
one `renameat2(RENAME_EXCHANGE)` on Linux (both folders exist at every instant, so a crash leaves either the
old or the new one); where the kernel or file system lacks it, the old folder is moved aside first and
deleted after. A file is written beside its target, flushed, and `os.replace`d.

What this module does not do: locking between writers (`rag.store.write_lock` does, for indexes).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (new names, renames) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike) -> None:
    """Flush every file under `path`, and the folders holding them."""
    for root, _, files in os.walk(path):
        for name in files:
            with open(Path(root) / name, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(root)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False where that is unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_dir(new: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the complete folder `new` at `target`, replacing what is there (see the module docstring)."""
    new, target = Path(new), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.rename(new, target)
    elif _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # `new` now holds the previous folder
    else:
        aside = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, aside)
        os.rename(new, target)
        shutil.rmtree(aside, ignore_errors=True)
    fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, keep_existing: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; when the block ends normally, its contents become
    `target`. On an exception nothing changes and the temporary folder is removed. With `keep_existing`, a
    `target` that appeared meanwhile (another process finished the same work first) is kept instead."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if keep_existing and target.exists():
            return
        fsync_tree(tmp)
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically (its folder is made if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_json(path: str | os.PathLike, data, indent: int | None = 1) -> None:
    """Write `data` as JSON (UTF-8, non-ASCII kept) to `path` atomically."""
    write_text(path, json.dumps(data, ensure_ascii=False, indent=indent, default=str) + "\n")
