"""rag: retrieval-augmented answers over your own knowledge base, with optional adapter tuning.

    >>> import rag
    >>> rag.build_index(["corpora"], "indexes/default")                         # doctest: +SKIP
    >>> bot = rag.RAG("indexes/default")                                        # doctest: +SKIP
    >>> bot.ask("How do I reset the router?").answer                            # doctest: +SKIP

Everything a bot needs is a name on this package: `RAG` (ask, stream, chat; aask, astream for asyncio),
`Answer`, `ChatSession`, `Retriever`, `Hit`, `Chunk`, `Document`, `build_index`, `IndexSummary`, `Config`
and its sections, the errors (`RagError` and its subclasses), `LangChainRetriever`, `TuneOptions`.
Names are imported lazily, on first use, so that `import rag` (and `rag --help`) stays light: no torch,
no numpy until something needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    # answering
    "RAG": "rag.pipeline",
    "ChatSession": "rag.chat",
    "Answer": "rag.types",
    # retrieval and ingestion
    "Retriever": "rag.retrieve",
    "Hit": "rag.types",
    "Chunk": "rag.types",
    "Document": "rag.types",
    "build_index": "rag.ingest",
    "IndexSummary": "rag.ingest",
    "load_embedder": "rag.embeddings",
    # settings
    "Config": "rag.config",
    "ChunkConfig": "rag.config",
    "EmbedConfig": "rag.config",
    "IndexConfig": "rag.config",
    "RetrieveConfig": "rag.config",
    "GenerateConfig": "rag.config",
    "AnswerConfig": "rag.config",
    # tuning (the function is `rag.tune.tune`: a package name cannot be both the submodule and the function)
    "TuneOptions": "rag.tune",
    # interop
    "LangChainRetriever": "rag.integrations.langchain",
    # errors
    "RagError": "rag.errors",
    "ConfigError": "rag.errors",
    "LoadError": "rag.errors",
    "NothingIndexedError": "rag.errors",
    "IndexFormatError": "rag.errors",
    "EmbedderMismatchError": "rag.errors",
    "IndexLockedError": "rag.errors",
    "MissingDependencyError": "rag.errors",
    "Cancelled": "rag.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return __all__
