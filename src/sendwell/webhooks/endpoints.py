"""Webhook event-type names and endpoint subscriptions parsed from SENDWELL_WEBHOOK_URLS (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass

# Every event a webhook endpoint can receive; the names are a contract (docs/api.md).
EVENT_TYPES: dict[str, str] = {
    "contact.unsubscribed": "a contact opted out of all marketing (any method)",
    "contact.preferences_changed": "a contact chose fewer mails, a pause or other topics",
    "contact.resubscribed": "a contact undid an opt-out or confirmed a double opt-in",
    "contact.bounced": "a hard or soft bounce was recorded for a contact",
    "contact.complained": "a contact marked a mail as spam (an ARF or provider complaint)",
    "alert.raised": "a new alert: a spike of unsubscribes, complaints or bounces, or receivers rejecting our mail",
}


@dataclass(frozen=True)
class Endpoint:
    url: str
    events: frozenset[str] | None  # None = every event type

    def wants(self, event_type: str) -> bool:
        """True if this endpoint subscribes to the event type."""
        if self.events is None:
            return True
        return event_type in self.events or f"{event_type.partition('.')[0]}.*" in self.events


def parse_endpoints(value: str) -> list[Endpoint]:
    """`SENDWELL_WEBHOOK_URLS`: comma-separated `URL [event-type ...]`; no event types = all of them.

    `https://crm.example/hook, https://ops.example/hook alert.raised contact.complained`
    (a `contact.*` wildcard is accepted). Raises ValueError naming the bad entry.
    """
    endpoints = []
    for entry in value.split(","):
        parts = entry.split()
        if not parts:
            continue
        url, wanted = parts[0], parts[1:]
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"SENDWELL_WEBHOOK_URLS: {url!r} is not an http(s) URL")
        for name in wanted:
            if name not in EVENT_TYPES and not (name.endswith(".*") and any(
                    e.startswith(name[:-1]) for e in EVENT_TYPES)):
                raise ValueError(f"SENDWELL_WEBHOOK_URLS: unknown event type {name!r} for {url} "
                                 f"(one of {', '.join(EVENT_TYPES)})")
        endpoints.append(Endpoint(url, frozenset(wanted) if wanted else None))
    return endpoints
