"""The dashboard: key rates, open alerts, trend and breakdown charts, reasons — all from insight."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from sendwell.db.session import transaction
from sendwell.insight.alerts import with_messages
from sendwell.insight.rates import Rates
from sendwell.insight.report import build_report
from sendwell.web.admin.charts import daily_chart
from sendwell.web.admin.pages import Admin, Viewer, gettext_for

CHART_DIMENSIONS = ("region", "stage", "industry", "language")
TREND_KINDS = ("delivered", "opened", "clicked", "unsubscribed", "complained")


def totals(campaigns: list[dict[str, Any]]) -> Rates:
    """All campaigns together: the rates a marketer watches first."""
    total = Rates(key="all")
    for row in campaigns:
        total.delivered += row["delivered"]
        total.unsubscribed += row["unsubscribed"]
        total.complained += row["complained"]
        total.hard_bounced += row["hard_bounced"]
    return total


def trend(over_time: list[dict[str, Any]], _: Callable[..., str]) -> dict[str, Any]:
    """The daily chart's data, with each day's unsubscribe and complaint rate in percent for its legend and table;
    a day without deliveries has no rate (a gap, not a zero)."""
    def rate(n: int, d: int) -> float | None:
        return round(100 * n / d, 4) if d else None

    return dict(daily_chart(over_time, TREND_KINDS, _),
                unsubscribe=[rate(row["unsubscribed"], row["delivered"]) for row in over_time],
                complaint=[rate(row["complained"], row["delivered"]) for row in over_time])


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
                            trend=trend(report["over_time"], gettext_for(user.language)), days=report["over_time"],
                            reasons=report["reasons"],
                            recommendations=report["recommendations"])

    return r
