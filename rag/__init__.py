"""rag: retrieval-augmented answers over your own knowledge base, with optional adapter tuning.

    >>> import rag
    >>> rag.build_index(["corpora"], "indexes/default")        # doctest: +SKIP
    >>> rag.Retriever("indexes/default").search("How do I reset the router?")  # doctest: +SKIP

Public names are imported lazily so that `import rag` (and `rag --help`) stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "build_index": ("rag.ingest", "build_index"),
    "IndexSummary": ("rag.ingest", "IndexSummary"),
    "Retriever": ("rag.retrieve", "Retriever"),
    "Config": ("rag.config", "Config"),
    "ChunkConfig": ("rag.config", "ChunkConfig"),
    "EmbedConfig": ("rag.config", "EmbedConfig"),
    "IndexConfig": ("rag.config", "IndexConfig"),
    "RetrieveConfig": ("rag.config", "RetrieveConfig"),
    "Document": ("rag.types", "Document"),
    "Chunk": ("rag.types", "Chunk"),
    "Hit": ("rag.types", "Hit"),
    "RagError": ("rag.errors", "RagError"),
    "load_embedder": ("rag.embeddings", "load_embedder"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rag' has no attribute {name!r}")


def __dir__():
    return __all__
