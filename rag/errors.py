"""The errors `rag` raises on purpose.

Every message says what was wrong and how to fix it. Catch `RagError` to handle all of them; the CLI turns
them into a one-line message and a non-zero exit code instead of a traceback.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class of every error `rag` raises deliberately."""


class ConfigError(RagError, ValueError):
    """A setting has a bad value or an unknown name."""


class PromptTooLongError(ConfigError):
    """The question alone does not fit the generator's prompt (a pasted message); auto mode answers extractively."""


class LoadError(RagError):
    """One file could not be read as a document. Ingestion reports it and skips the file."""


class PartlyLoaded(LoadError):
    """Some records of a file could not be read: `documents` are the rest. Ingestion indexes them and reports
    the message; a caller that only knows `LoadError` skips the file as before."""

    def __init__(self, message: str, documents: list):
        super().__init__(message)
        self.documents = documents


class NothingIndexedError(RagError):
    """No file under the given paths could be indexed."""


class IndexFormatError(RagError):
    """An index folder is missing, incomplete or written by an incompatible version."""


class EmbedderMismatchError(RagError):
    """A query or a document would be embedded by a different model than the index was built with."""


class IndexLockedError(RagError):
    """Another process is writing the same index."""


class Cancelled(RagError):
    """An answer was cancelled by its caller (a cancelled task, a client that went away) before it finished."""


class MissingDependencyError(RagError, ImportError):
    """An optional dependency is not installed; the message names the pip command that installs it."""


def require(module: str, pip_name: str | None = None, purpose: str = ""):
    """Import `module` or raise `MissingDependencyError` with an install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f" (needed for {purpose})" if purpose else ""
        raise MissingDependencyError(
            f"the Python package '{pip_name or module}' is not installed{what}; "
            f"install it with: pip install '{pip_name or module}'"
        ) from exc
