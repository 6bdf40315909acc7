"""The HTTP API for bots: OpenAI-compatible chat completions over rag indexes (`rag serve`).

    from rag.serve import ServeConfig, Service, create_app, run
    run(Service(ServeConfig(api_keys=[...])))        # or: uvicorn on create_app(service)

One module per concern, in the order a request meets them:

    config.py      ServeConfig (host, keys, limits, queue), read_api_keys, is_loopback
    middleware.py  API keys and the body-size limit, before any route
    schemas.py     the request bodies (pydantic)
    app.py         create_app: the routes, and rag errors turned into HTTP answers
    service.py     Service: indexes with their own embedders, generators per adapter, the generation queue,
                   recent answers and feedback
    streaming.py   server-sent events, and stopping a generation whose client went away
    responses.py   OpenAI response bodies (completion, chunk, usage, the `rag` extension)
    errors.py      APIError (OpenAI's error shape) and the status of each rag error
    workers.py     run on uvicorn, one process or `--workers N`

The names below load on first use, so `from rag.serve import ServeConfig` (or `Service`) does not import
FastAPI; `create_app` and `run` do.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ServeConfig": "config",
    "read_api_keys": "config",
    "APIError": "errors",
    "Service": "service",
    "create_app": "app",
    "run": "workers",
    "app_from_env": "workers",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rag.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
