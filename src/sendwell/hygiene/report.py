"""A hygiene pass's report as lines a person reads (the CLI table, the demo, the admin later)."""

from __future__ import annotations

from typing import Any


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(job, what it did) lines of a pass's report, for the CLI and the demo."""
    jobs = report["jobs"]
    s, a = jobs["sunset"], jobs["addresses"]
    flagged = ", ".join(f"{k} {v}" for k, v in a["flagged"].items() if v) or "nothing flagged"
    not_asked = s["not_asked"]
    rows = [
        ("sunset: entered re-engagement", str(s["entered"])),
        ("sunset: reconfirmation campaign",
         f"#{s['campaign_id']}, {s.get('queued', 0)} mails queued" if s["campaign_id"]
         else "blocked by the compliance lint: " + "; ".join(s["blocked"]) if s.get("blocked") else "none needed"),
        ("sunset: asked (mail delivered)", str(s["asked"])),
        ("sunset: kept (clicked “keep me subscribed”)", str(s.get("kept", 0))),
        ("sunset: engaged again (click, reply, preferences)", str(s["engaged"])),
        ("sunset: left meanwhile (never asked again)", str(s["left"])),
        ("sunset: could not be asked", f"{not_asked['count']}" + (
            f" ({', '.join(f'{k} {v}' for k, v in not_asked['by_reason'].items())})" if not_asked["count"] else "")),
        ("sunset: suppressed (no answer)", str(s["sunset"])),
        ("sunset: still waiting for an answer", str(s["in_flow"])),
        ("addresses checked", f"{a['checked']}: {flagged}; {a['invalid_suppressed']} invalid suppressed"),
        ("soft-bounce streaks suppressed", str(jobs["soft_bounces"]["suppressed"])),
        ("CASL implied consent lapsed", f"{jobs['consent_expiry']['expired']} recorded"),
        ("pauses ended", str(jobs["pauses"]["resumed"])),
        ("deferrals cleared", str(jobs["deferrals"]["cleared"])),
    ]
    return rows
