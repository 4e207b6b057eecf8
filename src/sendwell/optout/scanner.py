"""A heuristic for link scanners: it flags suspicious one-click POSTs for review, never ignores them."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime


# Security gateways and scripted clients that fetch (and sometimes POST to) links in mail.
_SCANNER_UA = re.compile(
    r"bot\b|crawler|spider|scan|urlscan|barracuda|proofpoint|mimecast|safelinks|"
    r"symantec|trend ?micro|fortiguard|sophos|cisco|ironport|python-requests|python-httpx|"
    r"aiohttp|curl/|wget/|go-http-client|okhttp|java/|libwww|headlesschrome|phantomjs",
    re.IGNORECASE,
)
# A sample of large cloud / hosting ranges (not exhaustive): a person rarely clicks from one.
# Mail providers' own one-click POSTs also come from data centres, which is why this only flags.
_DATACENTRE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "3.0.0.0/9", "13.32.0.0/12", "18.128.0.0/9", "34.64.0.0/10", "35.184.0.0/13",
        "52.0.0.0/10", "54.64.0.0/11", "20.32.0.0/11", "40.64.0.0/10", "104.131.0.0/16",
        "138.68.0.0/16", "159.65.0.0/16", "167.99.0.0/16", "45.55.0.0/16", "2600:1f00::/24",
    )
)
FAST_AFTER_DELIVERY_SECONDS = 30


def is_datacentre(ip: str) -> bool:
    """True for an address inside one of the known hosting ranges."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in _DATACENTRE_NETWORKS)


def assess(*, ip: str, user_agent: str, now: datetime, sent_at: datetime | None) -> list[str]:
    """The signals that make a one-click POST look automated; empty when it looks like a person."""
    signals: list[str] = []
    if not user_agent.strip():
        signals.append("no_user_agent")
    elif _SCANNER_UA.search(user_agent):
        signals.append("scanner_user_agent")
    if is_datacentre(ip):
        signals.append("datacentre_ip")
    if sent_at is not None and (now - sent_at).total_seconds() < FAST_AFTER_DELIVERY_SECONDS:
        signals.append("seconds_after_delivery")
    return signals


def is_suspected(signals: list[str]) -> bool:
    """A known scanner agent alone, or speed together with any other signal."""
    if "scanner_user_agent" in signals:
        return True
    return "seconds_after_delivery" in signals and len(signals) > 1
