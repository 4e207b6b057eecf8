"""Opens and clicks of one campaign: unique and total, people and machines apart (with the sign that gave
each machine away), the link report, and the click map's badges."""

from __future__ import annotations

import html as html_lib
import re
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from sendwell.db.models import Campaign, Event
from sendwell.insight import machines

# The stored machine reasons in words; the English text is the admin catalog's msgid, so no page
# or report shows an internal code.
MACHINE_SIGNS = {
    machines.SCANNER_USER_AGENT: "Link scanner",
    machines.SCANNER_NETWORK: "Link scanner (mail-security network)",
    machines.APPLE_MPP: "Apple Mail Privacy Protection",
    machines.GOOGLE_IMAGE_PROXY: "Image proxy (Gmail)",
    machines.YAHOO_PROXY: "Image proxy (Yahoo Mail)",
    machines.TRAP_LINK: "Hidden trap link",
    machines.TOO_SOON: "Too soon after delivery",
    machines.ALL_LINKS: "Every link at once",
    machines.HEAD_REQUEST: "HEAD request (a link check)",
}
OTHER_SIGN = "Other sign"

_ANCHOR = re.compile(r"""<a\b[^>]*?\bhref\s*=\s*(["'])(https?://[^"'\s>]+)\1[^>]*>(.*?)</a\s*>""",
                     re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>|\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_ALT = re.compile(r"""\balt\s*=\s*(["'])(.*?)\1""", re.IGNORECASE | re.DOTALL)
LABEL_SIZE = 80


def _rate(count: int, of: int) -> float:
    return round(count / of, 6) if of else 0.0


def engagement_figures(session: Session, *, campaign_id: int, delivered: int) -> dict[str, Any]:
    """Opens and clicks of a campaign, unique (people or mails) and total, people and machines apart.

    Rates are against delivered mails and use people only: machines fetch without anyone reading.
    """
    figures: dict[str, Any] = {}
    for kind, name in (("opened", "opens"), ("clicked", "clicks")):
        figures[name] = {"people": 0, "people_total": 0, "machines": 0, "machines_total": 0}
    rows = session.execute(
        select(Event.kind, Event.machine, func.count(), func.count(distinct(Event.contact_id)))
        .where(Event.campaign_id == campaign_id, Event.kind.in_(("opened", "clicked")))
        .group_by(Event.kind, Event.machine))
    for kind, machine, total, unique in rows:
        side = "machines" if machine else "people"
        bucket = figures["opens" if kind == "opened" else "clicks"]
        bucket[side] += unique
        bucket[f"{side}_total"] += total
    for bucket in (figures["opens"], figures["clicks"]):
        bucket["rate"] = _rate(bucket["people"], delivered)
    return {"delivered": delivered, **figures, "machine_reasons": machine_reasons(session, campaign_id=campaign_id)}


def machine_reasons(session: Session, *, campaign_id: int) -> list[dict[str, Any]]:
    """Per sign that gave a machine away: mails it opened or clicked, and its opens and clicks, most first."""
    rows = session.execute(
        select(Event.machine_reason, Event.kind, func.count(), func.count(distinct(Event.send_id)))
        .where(Event.kind.in_(("clicked", "opened")), Event.campaign_id == campaign_id, Event.machine.is_(True))
        .group_by(Event.machine_reason, Event.kind))
    signs: dict[str, dict[str, Any]] = {}
    for reason, kind, total, mails in rows:
        code = reason if reason in MACHINE_SIGNS else "other"
        sign = signs.setdefault(code, {"reason": code, "label": MACHINE_SIGNS.get(code, OTHER_SIGN), "clicked": 0,
                                       "opened": 0, "clicked_total": 0, "opened_total": 0})
        sign[kind] += mails
        sign[f"{kind}_total"] += total
    return sorted(signs.values(), key=lambda s: (-s["clicked"] - s["opened"], s["label"]))


def link_labels(html: str) -> dict[str, str]:
    """Each http(s) link of a mail's HTML with the words it shows (or its image's alt text), first one wins."""
    labels: dict[str, str] = {}
    for match in _ANCHOR.finditer(html or ""):
        url = html_lib.unescape(match.group(2))
        inner = match.group(3)
        text = " ".join(html_lib.unescape(_TAG.sub(" ", inner)).split())
        if not text and (alt := _ALT.search(inner)):
            text = " ".join(html_lib.unescape(alt.group(2)).split())
        if url not in labels or (text and not labels[url]):
            labels[url] = text[:LABEL_SIZE]
    return labels


def link_report(session: Session, *, campaign_id: int, delivered: int) -> list[dict[str, Any]]:
    """Each link of the mail and each link clicked: people (unique, total), machine clicks, click rate, share.

    The hidden trap link is not a link of the mail: its clicks are machines' and counted in the figures.
    """
    campaign = session.get(Campaign, campaign_id)
    labels = link_labels(campaign.html if campaign is not None else "")
    links = {url: {"url": url, "label": label, "people": 0, "people_total": 0, "machines": 0}
             for url, label in labels.items()}
    url = Event.data["url"].as_string()
    trap = Event.data["trap"].as_boolean()
    rows = session.execute(
        select(url, trap, Event.machine, func.count(), func.count(distinct(Event.contact_id)))
        .where(Event.campaign_id == campaign_id, Event.kind == "clicked")
        .group_by(url, trap, Event.machine))
    for address, is_trap, machine, total, unique in rows:
        if not address or is_trap:
            continue  # clicks reported through the API name no link
        link = links.setdefault(address, {"url": address, "label": "", "people": 0, "people_total": 0, "machines": 0})
        if machine:
            link["machines"] += total
        else:
            link["people"] += unique
            link["people_total"] += total
    all_people = sum(link["people_total"] for link in links.values())
    for link in links.values():
        link["click_rate"] = _rate(link["people"], delivered)
        link["share"] = _rate(link["people_total"], all_people)
    return sorted(links.values(), key=lambda k: (-k["people_total"], -k["machines"], k["url"]))


_BADGE = ('<span style="display:inline-block;margin:0 0 0 4px;padding:0 6px;border-radius:9px;background:#ffe08a;'
          'color:#3d2a00;border:1px solid #c9a227;font:bold 11px/16px Arial,Helvetica,sans-serif;'
          'text-decoration:none;vertical-align:middle;white-space:nowrap" title="{title}">{text}</span>')


def annotate_links(html: str, badges: dict[str, tuple[str, str]]) -> str:
    """The mail's HTML with a badge (text, title) after each link that has one: the click map, no script."""

    def add(match: re.Match[str]) -> str:
        badge = badges.get(html_lib.unescape(match.group(2)))
        if badge is None:
            return match.group(0)
        text, title = badge
        return match.group(0) + _BADGE.format(text=html_lib.escape(text), title=html_lib.escape(title))

    return _ANCHOR.sub(add, html)
