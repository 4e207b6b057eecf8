"""The opt-out part of `sendwell demo`: every web method, the survey, undo, thank-you mails, reasons."""

from __future__ import annotations

import email
import email.policy
import re
from typing import Any

import httpx
from sqlalchemy import func, select

from sendwell.db.models import Contact, Event
from sendwell.db.session import transaction
from sendwell.followups import dispatch_outbox
from sendwell.optout.service import reasons_breakdown
from sendwell.optout.tokens import SALT_UNSUBSCRIBE, TokenData, make_token

_UNSUBSCRIBE = re.compile(r"<(https?://[^>]+/u/[^>]+)>")
_PREFERENCES = re.compile(r"(https?://\S+/p/[\w.\-]+)")
# How the demo's leavers answer the optional survey (the seed's four causes and "other").
ANSWERS = ["too_many", "not_relevant", "too_many", "situation_changed", "never_signed_up", "not_relevant",
           "too_many", "other", "situation_changed", "too_many", "not_relevant"]


def _links(received: Any) -> tuple[str, str, str]:
    msg = email.message_from_bytes(received.data, policy=email.policy.default)
    url = _UNSUBSCRIBE.search(str(msg["List-Unsubscribe"])).group(1)  # type: ignore[union-attr]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return received.rcpt_tos[0], url, _PREFERENCES.search(text).group(1)  # type: ignore[union-attr]


def exercise_optout(runtime: Any, messages: list[Any], earlier: list[str], say: Any = print) -> dict[str, Any]:
    """Drive each web method over real HTTP against the running app; return the opt-out summary."""
    settings = runtime.settings
    picked = [_links(m) for m in messages[:: max(1, len(messages) // 12)][:12]]
    ok = {}
    with httpx.Client(timeout=10, follow_redirects=False) as client:
        def post(url: str, **data: Any) -> str:
            response = client.post(url, data=data)
            if response.status_code != 200:
                raise RuntimeError(f"POST {url} answered {response.status_code}")
            return url

        leavers: list[str] = []  # unsubscribe URLs of people who left in this step
        # The unsubscribe page: look, then click "Unsubscribe from all".
        for _addr, url, _prefs in picked[0:2]:
            ok["page_get"] = client.get(url).status_code
            leavers.append(post(url, **{"List-Unsubscribe": "One-Click", "source": "page"}))
        # The alternatives that keep a buyer: fewer mails, launches only, a pause.
        for (_addr, url, _prefs), choice in zip(picked[2:5], ("monthly", "launches_only", "pause_3")):
            post(f"{url}/alternative", choice=choice)
        # The preference center: one saves a lower frequency, one leaves from there.
        _addr, _url, prefs = picked[5]
        ok["preferences_get"] = client.get(prefs).status_code
        post(prefs, frequency="monthly", pause="keep", language="en")
        _addr, url, prefs = picked[6]
        post(url, **{"List-Unsubscribe": "One-Click", "source": "preferences"})
        leavers.append(url)
        # Mail clients' RFC 8058 one-click POSTs.
        for _addr, url, _prefs in picked[7:9]:
            leavers.append(post(url, **{"List-Unsubscribe": "One-Click"}))
        # The six who left earlier in the demo answer too (their links come from their mails).
        with transaction(runtime.factory) as session:
            ids = session.scalars(select(Contact.id).where(Contact.email.in_(earlier))).all()
        leavers += [f"{settings.base_url}/u/{make_token(settings.secret_keys, SALT_UNSUBSCRIBE, TokenData(i, None, None))}"
                    for i in ids]
        for url, answer in zip(leavers, ANSWERS):
            post(f"{url}/reason", reason=answer, text="We now buy through a distributor" if answer == "other" else "")
        # One person changes their mind: Undo on the confirmation page.
        post(f"{leavers[0]}/undo")
        # "Manage my subscription" by address: a magic link by mail, same answer for anyone.
        post(f"{settings.base_url}/manage", email=picked[9][0])
        post(f"{settings.base_url}/manage", email="nobody@unknown.example")
    sent = {"done": 0}
    while True:
        counts = dispatch_outbox(runtime)
        sent["done"] += counts["done"]
        if not counts["claimed"]:
            break
    with transaction(runtime.factory) as session:
        by_method = dict(session.execute(select(Event.method, func.count()).where(Event.kind == "unsubscribed")
                                         .group_by(Event.method)).all())
        kinds = dict(session.execute(select(Event.kind, func.count()).group_by(Event.kind)).all())
        flagged = session.scalar(select(func.count()).select_from(Event).where(
            Event.kind == "unsubscribed", Event.data["scanner_suspected"].as_boolean().is_(True)))
        reasons = reasons_breakdown(session)
    summary = {
        "by_method": by_method,
        "alternatives_chosen": 3,
        "preferences_changed": kinds.get("preferences_changed", 0),
        "resubscribed": kinds.get("resubscribed", 0),
        "thank_you_sent": kinds.get("thank_you_sent", 0),
        "magic_links_sent": kinds.get("magic_link_sent", 0),
        "scanner_flagged": flagged or 0,
        "reasons": reasons,
        "checks": ok,
    }
    say(f"7. Opt-out methods over HTTP: {by_method}; 3 chose an alternative instead; "
        f"{summary['resubscribed']} clicked Undo; {summary['thank_you_sent']} thank-you mails, "
        f"{summary['magic_links_sent']} magic link sent")
    return summary


def format_optout(summary: dict[str, Any]) -> list[str]:
    """Lines for the closing report."""
    total = sum(summary["reasons"].values()) or 1
    lines = ["Why people left (optional survey):"]
    for reason, n in sorted(summary["reasons"].items(), key=lambda kv: -kv[1]):
        lines.append(f"    {reason:<18} {n:>3}  {100 * n / total:5.1f} %")
    lines.append(f"Kept instead of lost: {summary['alternatives_chosen']} chose fewer mails / launches only / a pause; "
                 f"{summary['resubscribed']} undid their unsubscribe")
    lines.append(f"Thank-you mails: {summary['thank_you_sent']} (one per person, none after a complaint); "
                 f"one-click POSTs flagged for review as likely scanners (the demo posts from a script, seconds "
                 f"after delivery; flagged, still honoured): {summary['scanner_flagged']}")
    return lines
