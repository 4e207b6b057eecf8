"""Run the ASGI app with uvicorn in a background thread (demo and tests)."""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import Any

import uvicorn


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
                                                   **proxy_options(trusted_proxies)))
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
