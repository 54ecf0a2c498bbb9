"""`python -m service.serve [uvicorn options]`: uvicorn serving the API, every log line JSON.

This is uvicorn's own command line with two defaults: the app (`service.main:app`) and the
logging configuration `service/logging.json`, which sends uvicorn's lines (start-up,
shutdown, errors, worker restarts) through the same JSON formatter as the service's. Every
uvicorn option works (`--host`, `--port`, `--workers`, `--proxy-headers`…); `--log-config`
(or UVICORN_LOG_CONFIG) replaces the JSON configuration. uvicorn's access log stays off: the
service writes its own (`service.access`, with the request id and route template).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from uvicorn.main import main as uvicorn_main

APP = "service.main:app"
LOG_CONFIG = Path(__file__).with_name("logging.json")


def main(argv: Sequence[str] | None = None) -> None:
    """Run uvicorn with the service's defaults; exits with uvicorn's status."""
    uvicorn_main.main(
        args=list(argv) if argv is not None else None,
        prog_name="python -m service.serve",
        default_map={"app": APP, "log_config": str(LOG_CONFIG)},
    )


if __name__ == "__main__":
    main()
