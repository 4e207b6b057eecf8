"""Campaign reports as plain data, CSV, and a self-contained HTML file with inline SVG charts."""

from __future__ import annotations

import csv
import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.contacts.tabular import neutralise
from sendwell.db.models import Campaign
from sendwell.insight.alerts import open_alerts
from sendwell.insight.clicks import engagement_figures, link_report
from sendwell.insight.rates import over_time, reasons
from sendwell.insight.recommendations import recommend
from sendwell.insight.rollup import dashboard_breakdown, merged_by_value

REPORT_DIMENSIONS = ("region", "stage", "industry", "country", "language")


def build_report(session: Session, *, campaign_id: int | None = None, stage_caps: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything a dashboard or a manager's report needs, as plain data."""
    if campaign_id is not None and session.get(Campaign, campaign_id) is None:
        raise ValueError(f"no campaign with id {campaign_id}")
    # Counters kept by the scheduler plus the not-yet-rolled tail: fast however many events exist.
    names = dict(session.execute(select(Campaign.id, Campaign.name)).all())
    totals = dashboard_breakdown(session, dimension="all", campaign_id=campaign_id)
    campaigns = []
    for cid in sorted(totals, reverse=True):
        rates = totals[cid].get("")
        if rates is not None:
            rates.key = names.get(cid, str(cid))
            campaigns.append(dict(rates.as_dict(), id=cid))
    engagement = None
    if campaign_id is not None:
        # One campaign's opens and clicks in full (unique and total, per machine sign, per link):
        # read from its events, which the (kind, campaign) index finds without a scan.
        delivered = campaigns[0]["delivered"] if campaigns else 0
        engagement = dict(engagement_figures(session, campaign_id=campaign_id, delivered=delivered),
                          links=link_report(session, campaign_id=campaign_id, delivered=delivered))
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "campaign_id": campaign_id,
        # Opens exist only where the open pixel was turned on; without any, reports leave them out.
        "opens_tracked": any(c["opened"] or c["machine_opened"] for c in campaigns),
        "campaigns": campaigns,
        "engagement": engagement,
        "by": {dim: [r.as_dict() for r in merged_by_value(dashboard_breakdown(session, dimension=dim, campaign_id=campaign_id))]
               for dim in REPORT_DIMENSIONS},
        "reasons": reasons(session, campaign_id=campaign_id),
        "over_time": over_time(session),  # per day: delivered, people opening and clicking, opt-outs
        "alerts": [{"id": a.id, "campaign_id": a.campaign_id, "kind": a.kind, "severity": a.severity,
                    "message": a.message, "created_at": a.created_at.isoformat(timespec="seconds")}
                   for a in open_alerts(session, campaign_id=campaign_id)],
        "recommendations": [r.as_dict() for r in recommend(session, campaign_id=campaign_id, stage_caps=stage_caps)],
    }


CSV_COLUMNS = ("dimension", "key", "delivered", "unsubscribed", "unsubscribe_rate", "complained",
               "complaint_rate", "hard_bounced", "hard_bounce_rate", "soft_bounced", "clicked", "click_rate",
               "machine_clicked", "opened", "machine_opened")


def write_csv(report: dict[str, Any], path: Path) -> None:
    """One row per campaign and per dimension value; text a spreadsheet would run as a formula stays text."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in report["campaigns"]:
            writer.writerow(_safe_cells({"dimension": "campaign", **row}))
        for dim, rows in report["by"].items():
            for row in rows:
                writer.writerow(_safe_cells({"dimension": dim, **row}))


def _safe_cells(row: dict[str, Any]) -> dict[str, Any]:
    # Campaign names and audience values are typed by people; the same neutraliser as the contacts export.
    return {k: neutralise(v) if isinstance(v, str) else v for k, v in row.items()}


def _bar_chart(rows: list[dict[str, Any]], metric: str, title: str) -> str:
    """A horizontal bar chart as inline SVG: no script, no external file, readable in any mail client."""
    rows = [r for r in rows if r["delivered"]][:12]
    if not rows:
        return ""
    width, bar_h, label_w = 560, 22, 170
    peak = max(r[metric] for r in rows) or 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{len(rows) * bar_h + 30}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<text x="0" y="14" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    for i, row in enumerate(rows):
        y = 24 + i * bar_h
        w = (width - label_w - 70) * row[metric] / peak
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{html.escape(str(row["key"]))[:24]}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{bar_h - 8}" fill="#d9534f"/>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 14}" font-size="12">{row[metric]:.2%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: dict[str, Any], *, company: str) -> str:
    """A self-contained HTML report a marketer can send to a manager."""
    e = html.escape

    # People and machines (link scanners, image proxies) side by side; only people are engagement.
    engagement = [("clicked", "clicks (people)"), ("machine_clicked", "clicks (machines)")]
    if report.get("opens_tracked"):
        engagement += [("opened", "opens (people)"), ("machine_opened", "opens (machines)")]

    def table(rows: list[dict[str, Any]], first: str) -> str:
        head = (f"<tr><th>{e(first)}</th><th>delivered</th><th>unsubscribed</th><th>rate</th>"
                "<th>complaints</th><th>hard bounces</th>"
                + "".join(f"<th>{title}</th>" for _, title in engagement) + "</tr>")
        body = "".join(
            f"<tr><td>{e(str(r['key']))}</td><td>{r['delivered']}</td><td>{r['unsubscribed']}</td>"
            f"<td>{r['unsubscribe_rate']:.2%}</td><td>{r['complained']}</td><td>{r['hard_bounced']}</td>"
            + "".join(f"<td>{r.get(key, 0)}</td>" for key, _ in engagement) + "</tr>" for r in rows)
        return f"<table>{head}{body}</table>"

    sections = [f"<h1>{e(company)} — campaign report</h1>",
                f"<p class=muted>Generated {e(report['generated_at'])}</p>",
                "<h2>Campaigns</h2>", table(report["campaigns"], "campaign")]
    if report.get("engagement"):
        sections.append(_engagement_html(report["engagement"], opens=bool(report.get("opens_tracked"))))
    if report["alerts"]:
        sections.append("<h2>Alerts</h2><ul>" + "".join(
            f"<li class={e(a['severity'])}><strong>{e(a['severity'])}</strong>: {e(a['message'])}</li>"
            for a in report["alerts"]) + "</ul>")
    if report["recommendations"]:
        sections.append("<h2>Recommendations</h2><ul>" + "".join(
            f"<li><strong>{e(r['title'])}</strong> — {e(r['why'])}</li>" for r in report["recommendations"]) + "</ul>")
    for dim, rows in report["by"].items():
        sections.append(f"<h2>By {e(dim)}</h2>")
        sections.append(_bar_chart(rows, "unsubscribe_rate", f"Unsubscribe rate by {dim}"))
        sections.append(table(rows, dim))
    counts = report["reasons"]["counts"].get("all", {})
    if counts:
        sections.append("<h2>Why people left</h2><ul>" + "".join(
            f"<li>{e(k.replace('_', ' '))}: {v}</li>" for k, v in counts.items()) + "</ul>")
    if report["reasons"]["free_text"]:
        sections.append("<h3>In their words</h3><ul>" + "".join(
            f"<li>“{e(a['text'])}” ({e(a['reason'])})</li>" for a in report["reasons"]["free_text"][:50]) + "</ul>")
    style = ("body{font-family:Arial,Helvetica,sans-serif;max-width:900px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ddd;padding:4px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}.muted{color:#666}"
             ".critical{color:#b00}.warning{color:#a60}")
    return (f"<!DOCTYPE html><html><head><meta charset=utf-8><title>{e(company)} report</title>"
            f"<style>{style}</style></head><body>{''.join(sections)}</body></html>")


def _engagement_html(figures: dict[str, Any], *, opens: bool) -> str:
    """One campaign's opens and clicks (people and machines apart), the machines' signs and each link, as tables."""
    e = html.escape
    names = ("opens", "clicks") if opens else ("clicks",)
    rows = "".join(f"<tr><td>{name}</td><td>{figures[name]['people']}</td><td>{figures[name]['people_total']}</td>"
                   f"<td>{figures[name]['rate']:.2%}</td><td>{figures[name]['machines']}</td>"
                   f"<td>{figures[name]['machines_total']}</td></tr>" for name in names)
    # Without the open pixel nothing is said of opens: no figure, no heading, no column.
    parts = ["<h2>Opens and clicks</h2>" if opens else "<h2>Clicks</h2>",
             f"<table><tr><th></th><th>people</th><th>{'their opens or clicks' if opens else 'their clicks'}</th>"
             f"<th>rate of delivered</th><th>mails machines fetched</th><th>machine fetches</th></tr>{rows}</table>"]
    if figures["machine_reasons"]:
        parts.append("<h3>How the machines were recognised</h3><table><tr><th>sign</th><th>mails clicked</th>"
                     + ("<th>mails opened</th>" if opens else "") + "</tr>" + "".join(
                         f"<tr><td>{e(r['label'])}</td><td>{r['clicked']}</td>"
                         + (f"<td>{r['opened']}</td>" if opens else "") + "</tr>"
                         for r in figures["machine_reasons"]) + "</table>")
    if figures["links"]:
        parts.append("<h2>Links</h2><table><tr><th>link</th><th>people</th><th>clicks</th><th>click rate</th>"
                     "<th>share of people's clicks</th><th>machine clicks</th></tr>" + "".join(
                         f"<tr><td>{e(k['label']) + '<br>' if k['label'] else ''}{e(k['url'])}</td><td>{k['people']}</td>"
                         f"<td>{k['people_total']}</td><td>{k['click_rate']:.2%}</td><td>{k['share']:.0%}</td>"
                         f"<td>{k['machines']}</td></tr>" for k in figures["links"]) + "</table>")
    return "".join(parts)
