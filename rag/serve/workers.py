"""Running the server on uvicorn: one process, or `workers` processes on one port.

With several workers uvicorn starts fresh processes that import `rag.serve.workers:app_from_env`; the
settings reach them through environment variables (the API keys in a variable of their own, never inside
the settings blob). Each worker loads its own models and opens the index memory-mapped, so the operating
system shares the index's pages between them. What this module does not do: build the app
(`rag.serve.app`) or read command-line flags (`rag.cli.serving`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

from ..config import Config, EmbedConfig
from .config import ServeConfig, read_api_keys
from .service import Service

SETTINGS_ENV = "RAG_SERVE_SETTINGS"  # how `--workers N` hands the settings to each worker process
KEYS_ENV = "RAG_SERVE_KEYS"
FACTORY = "rag.serve.workers:app_from_env"

log = logging.getLogger("rag.serve")  # the parent of every rag.serve.* module's logger


def setup_logging() -> None:
    """rag's log lines beside uvicorn's, tagged with the worker's pid."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"%(levelname)s:     rag[{os.getpid()}]: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def run(service: Service, workers: int = 1) -> None:
    """Serve until interrupted: in this process, or in `workers` uvicorn worker processes on the same port
    that each load the models and open the index memory-mapped."""
    import uvicorn

    from .app import create_app

    setup_logging()
    if workers <= 1:
        app = create_app(service)
        uvicorn.run(app, host=service.serve.host, port=service.serve.port, log_level="info", access_log=True)
        return
    settings = {
        "serve": dataclasses.asdict(service.serve),
        "config": service.config.to_dict(),
        "embed": dataclasses.asdict(service.embed_config) if service.embed_config is not None else None,
    }
    settings["serve"]["api_keys"] = []  # keys travel in their own variable, not in a settings blob
    os.environ[SETTINGS_ENV] = json.dumps(settings)
    os.environ[KEYS_ENV] = ",".join(service.serve.api_keys)
    uvicorn.run(
        FACTORY, factory=True, host=service.serve.host, port=service.serve.port, workers=workers, log_level="info"
    )


def app_from_env():
    """The app of one worker process, from the settings `run(workers=N)` put in the environment."""
    from .app import create_app

    setup_logging()
    settings = json.loads(os.environ[SETTINGS_ENV])
    serve = ServeConfig(**{**settings["serve"], "api_keys": read_api_keys(os.environ.get(KEYS_ENV))})
    embed = EmbedConfig(**settings["embed"]) if settings.get("embed") else None
    service = Service(serve, Config.from_dict(settings["config"], SETTINGS_ENV), mmap=True, embed_config=embed)
    service.warm_up()
    return create_app(service)
