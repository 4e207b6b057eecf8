"""/reports: the same report as `sendwell report`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from sendwell.db.session import transaction
from sendwell.insight.report import build_report
from sendwell.runtime import Runtime
from sendwell.web.api.problems import ApiProblem
from sendwell.web.api.schemas import MAX_ID


class AlertOut(BaseModel):
    id: int
    campaign_id: int | None
    kind: str
    severity: str
    message: str
    created_at: str


class ReportOut(BaseModel):
    generated_at: str
    campaign_id: int | None
    campaigns: list[dict[str, Any]]
    # One campaign's opens and clicks (with campaign_id only): unique and total, people and machines
    # apart, per machine sign, and per link.
    engagement: dict[str, Any] | None = None
    over_time: list[dict[str, Any]] = []
    by: dict[str, list[dict[str, Any]]]
    reasons: dict[str, Any]
    alerts: list[AlertOut]
    recommendations: list[dict[str, Any]]


def router(runtime: Runtime, require: Any) -> APIRouter:
    r = APIRouter(prefix="/reports", tags=["reports"])

    @r.get("", response_model=ReportOut, dependencies=[require("reports:read")],
           responses={404: {"description": "no such campaign"}})
    def report(campaign_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> ReportOut:
        """Rates by campaign and dimension, reasons, figures per day, open alerts and recommendations; with
        campaign_id also that campaign's opens and clicks (people and machines apart) and its link report."""
        with transaction(runtime.factory) as session:
            try:
                data = build_report(session, campaign_id=campaign_id)
            except ValueError as exc:
                raise ApiProblem(404, str(exc), kind="not-found") from None
        return ReportOut(**data)

    return r
