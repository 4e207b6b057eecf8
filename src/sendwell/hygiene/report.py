"""A hygiene pass's report as lines a person reads (the CLI table, the demo, the admin later)."""

from __future__ import annotations

from typing import Any

from sendwell.i18n.messages import N_, english, message

NOTHING_FLAGGED = N_("nothing flagged")
QUEUED = N_("#%(campaign)s, %(n)s mails queued")
BLOCKED = N_("blocked by the compliance lint: %(findings)s")
NONE_NEEDED = N_("none needed")
COUNT_BY_REASON = N_("%(n)s (%(reasons)s)")
CHECKED = N_("%(n)s: %(flagged)s; %(invalid)s invalid suppressed")
RECORDED = N_("%(n)s recorded")


def summary_messages(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(job, what it did as a message) of a pass's report: the admin translates both."""
    jobs = report["jobs"]
    s, a = jobs["sunset"], jobs["addresses"]
    flagged = ", ".join(f"{k} {v}" for k, v in a["flagged"].items() if v) or message(NOTHING_FLAGGED)
    not_asked = s["not_asked"]

    def count(n: Any) -> dict[str, Any]:
        return message("%(n)s", n=n)

    campaign = (message(QUEUED, campaign=s["campaign_id"], n=s.get("queued", 0)) if s["campaign_id"]
                else message(BLOCKED, findings="; ".join(s["blocked"])) if s.get("blocked") else message(NONE_NEEDED))
    return [
        ("sunset: entered re-engagement", count(s["entered"])),
        ("sunset: reconfirmation campaign", campaign),
        ("sunset: asked (mail delivered)", count(s["asked"])),
        ("sunset: kept (clicked “keep me subscribed”)", count(s.get("kept", 0))),
        ("sunset: engaged again (click, reply, preferences)", count(s["engaged"])),
        ("sunset: left meanwhile (never asked again)", count(s["left"])),
        ("sunset: could not be asked", message(COUNT_BY_REASON, n=not_asked["count"], reasons=", ".join(
            f"{k} {v}" for k, v in not_asked["by_reason"].items())) if not_asked["count"] else count(0)),
        ("sunset: suppressed (no answer)", count(s["sunset"])),
        ("sunset: still waiting for an answer", count(s["in_flow"])),
        ("addresses checked", message(CHECKED, n=a["checked"], flagged=flagged, invalid=a["invalid_suppressed"])),
        ("soft-bounce streaks suppressed", count(jobs["soft_bounces"]["suppressed"])),
        ("CASL implied consent lapsed", message(RECORDED, n=jobs["consent_expiry"]["expired"])),
        ("pauses ended", count(jobs["pauses"]["resumed"])),
        ("deferrals cleared", count(jobs["deferrals"]["cleared"])),
    ]


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(job, what it did) lines of a pass's report, for the CLI and the demo."""
    return [(job, english(**result)) for job, result in summary_messages(report)]
