"""Run the ASGI app with uvicorn: the logging every server uses, and a background-thread server (demo and tests)."""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import re
import threading
import time
from datetime import datetime, timezone
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

# A recipient link's token is the recipient's key to their unsubscribe, preference and
# confirmation pages: whoever reads the access log could act as them. Only the token segment
# is replaced; the rest of the path (`/u/…/reason`) and the query stay for debugging.
_RECIPIENT_TOKEN = re.compile(r"(/(?:u|p|k|c|r|o|manage)/)[^/?#\s\"]+")


def redact_tokens(path: str) -> str:
    """`/u/eyJj….sig/reason?lang=de` → `/u/…/reason?lang=de`."""
    return _RECIPIENT_TOKEN.sub("\\1…", path)


class RedactTokens(logging.Filter):
    """Takes recipient tokens out of uvicorn's access-log records before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (SENDWELL_LOG_FORMAT=json): time, level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(log_format: str = "text") -> dict[str, Any]:
    """uvicorn's own logging configuration, with recipient tokens redacted from the access log.

    "json" formats uvicorn's records and Sendwell's own (the `sendwell` logger) as JSON lines.
    """
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["recipient_tokens"] = {"()": RedactTokens}
    # On the logger, not a handler: every handler, text or JSON, gets clean records.
    config["loggers"]["uvicorn.access"]["filters"] = ["recipient_tokens"]
    if log_format == "json":
        for formatter in config["formatters"].values():
            formatter.clear()
            formatter["()"] = JsonFormatter
        config["loggers"]["sendwell"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def configure_logging(log_format: str = "text") -> None:
    """Logging for a process without uvicorn (`sendwell worker`): Sendwell's INFO records on stderr."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def proxy_options(trusted_proxies: str) -> dict[str, Any]:
    """uvicorn's forwarded-header options from SENDWELL_TRUSTED_PROXIES (comma-separated IPs / CIDRs).

    Empty trusts nobody, loopback included (uvicorn's own default trusts 127.0.0.1, so anything
    on the host could pick its client address with X-Forwarded-For and dodge the per-IP
    sign-in limit). Raises ValueError naming a bad entry.
    """
    trusted = [p.strip() for p in trusted_proxies.split(",") if p.strip()]
    for entry in trusted:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"SENDWELL_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR") from None
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted}


class BackgroundServer:
    """uvicorn in a daemon thread; `with` starts it and stops it cleanly."""

    def __init__(self, app: Any, port: int, host: str = "127.0.0.1", trusted_proxies: str = "") -> None:
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                   log_config=log_config(), **proxy_options(trusted_proxies)))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the web server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
