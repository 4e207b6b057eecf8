"""The dashboard: key rates, open alerts, trend and breakdown charts, reasons — all from insight."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from sendwell.db.session import transaction
from sendwell.insight.alerts import with_messages
from sendwell.insight.rates import Rates
from sendwell.insight.report import build_report
from sendwell.web.admin.pages import Admin, Viewer

CHART_DIMENSIONS = ("region", "stage", "industry", "language")


def totals(campaigns: list[dict[str, Any]]) -> Rates:
    """All campaigns together: the rates a marketer watches first."""
    total = Rates(key="all")
    for row in campaigns:
        total.delivered += row["delivered"]
        total.unsubscribed += row["unsubscribed"]
        total.complained += row["complained"]
        total.hard_bounced += row["hard_bounced"]
    return total


def trend(over_time: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Daily rates for the chart; a day without deliveries has no rate (a gap, not a zero)."""
    def rate(n: int, d: int) -> float | None:
        return round(100 * n / d, 4) if d else None

    return {"days": [row["day"] for row in over_time],
            "unsubscribe": [rate(row["unsubscribed"], row["delivered"]) for row in over_time],
            "complaint": [rate(row.get("complained", 0), row["delivered"]) for row in over_time]}


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin")

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    @r.get("")
    def home() -> Response:
        return RedirectResponse("/admin/dashboard", status_code=303)

    @r.get("/dashboard")
    def dashboard(request: Request, user: Viewer = Depends(viewer)) -> Response:
        with transaction(admin.runtime.factory) as db:
            report = build_report(db)
            alerts = with_messages(db, alerts=report["alerts"])
        by = {dim: [row for row in report["by"][dim] if row["delivered"]][:10] for dim in CHART_DIMENSIONS}
        peaks = {dim: max([max(r["unsubscribe_rate"], r["complaint_rate"]) for r in rows] or [0]) or 1.0
                 for dim, rows in by.items()}
        return admin.render(request, "dashboard.html", user, total=totals(report["campaigns"]),
                            campaigns=report["campaigns"][:8], alerts=alerts, by=by, peaks=peaks,
                            trend=trend(report["over_time"]), reasons=report["reasons"],
                            recommendations=report["recommendations"])

    return r
