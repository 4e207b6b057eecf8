"""Hygiene: what the last passes did (or would do, for dry runs) and where the sunset flow stands."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.db.models import AddressFlag, Reengagement, SchedulerLease
from sendwell.db.session import transaction
from sendwell.hygiene.report import summary_messages
from sendwell.hygiene.scheduler import JOB
from sendwell.hygiene.service import list_runs
from sendwell.web.admin.pages import Admin, Viewer

RUNS_SHOWN = 20


def reengagement_status(session: Session) -> dict[str, int]:
    """Contacts in the sunset flow now (waiting to be asked, asked) and how past flows ended."""
    open_ = Reengagement.resolved_at.is_(None)
    status = {
        "waiting_to_be_asked": session.scalar(select(func.count()).select_from(Reengagement)
                                              .where(open_, Reengagement.asked_at.is_(None))) or 0,
        "asked": session.scalar(select(func.count()).select_from(Reengagement)
                                .where(open_, Reengagement.asked_at.is_not(None))) or 0,
    }
    for outcome, n in session.execute(select(Reengagement.outcome, func.count()).where(Reengagement.outcome.is_not(None))
                                      .group_by(Reengagement.outcome)):
        status[outcome] = n
    return status


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin")
    runtime = admin.runtime

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    @r.get("/hygiene")
    def hygiene(request: Request, user: Viewer = Depends(viewer)) -> Response:
        with transaction(runtime.factory) as db:
            runs: list[dict[str, Any]] = [
                {"id": run.id, "as_of": run.as_of, "started_at": run.started_at, "finished_at": run.finished_at,
                 "dry_run": run.dry_run, "trigger": run.trigger,
                 "rows": summary_messages(run.report) if run.report.get("jobs") else []}
                for run in list_runs(db, limit=RUNS_SHOWN)]
            lease = db.get(SchedulerLease, JOB)
            flags = dict(db.execute(select(AddressFlag.flag, func.count()).group_by(AddressFlag.flag)).all())
            context = {"runs": runs, "reengagement": reengagement_status(db), "flags": flags,
                       "next_run_at": lease.next_run_at if lease else None,
                       "interval_hours": runtime.settings.hygiene_interval_hours,
                       "inactive_days": runtime.settings.sunset_days,
                       "answer_days": runtime.settings.reconfirm_days}
        return admin.render(request, "hygiene.html", user, **context)

    return r
