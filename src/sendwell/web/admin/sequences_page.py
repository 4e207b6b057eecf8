"""Sequences: list, create from YAML/JSON or a ready-made template, the per-step report, pause and resume, a paused
step's resume, the dry run and a new version — the same service as `sendwell sequences`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import yaml
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from sendwell.campaigns.service import CampaignError
from sendwell.content.render import TemplateError
from sendwell.content.service import ComplianceError
from sendwell.db.models import Sequence
from sendwell.db.session import transaction
from sendwell.insight.rates import REASONS
from sendwell.insight.sequence_steps import reasons_by_step, step_recommendations
from sendwell.sequences import service
from sendwell.sequences.definition import DefinitionError, load_text
from sendwell.sequences.templates import list_templates, load_template, value_problems
from sendwell.web.admin.pages import Admin, Viewer

REFUSALS = (DefinitionError, service.SequenceError, CampaignError, TemplateError, ComplianceError)
MAX_TEXT = 200_000  # characters of a pasted definition


class _Dumper(yaml.SafeDumper):
    """Writes a mail's multi-line html as a `|` block, as a person would type it."""


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def as_yaml(definition: dict[str, Any]) -> str:
    """A stored definition as the YAML a person edits (keys in the order written)."""
    return yaml.dump(definition, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def from_template(name: str, values: dict[str, str]) -> str:
    """A ready-made sequence's definition as YAML with these values, or "" while a value is missing or wrong."""
    try:
        return as_yaml(load_template(name, values))
    except DefinitionError:
        return ""


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """A list row: enrolled and active, per mail step sent and unsubscribe rate, and the paused steps."""
    counts = report["enrollments"]
    for step in report["steps"]:
        # A critical spike alert holds the step at the next arrival even while its campaign is not paused yet.
        step["held"] = bool(step.get("paused") or (step.get("alert") or {}).get("pauses_step"))
    mails = [s for s in report["steps"] if s["kind"] == "mail"]
    return {**report, "enrolled": sum(counts.values()), "active": counts.get("active", 0), "mails": mails,
            "paused_steps": [s["id"] for s in mails if s["held"]]}


def leavers(db: Session, *, sequence_id: int, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Survey answers per mail step (the reasons given as columns, in the survey's order) and the step advice."""
    by_step = reasons_by_step(db, sequence_id=sequence_id)
    order = [s["id"] for s in steps if s["kind"] == "mail"]
    order += [step_id for step_id in by_step if step_id not in order]  # a step only an earlier version had
    return {"codes": [c for c in REASONS if any(c in counts for counts in by_step.values())],
            "rows": [{"id": step_id, "counts": by_step.get(step_id, {})} for step_id in order],
            "advice": [r.as_dict() for r in step_recommendations(db, sequence_id=sequence_id)]}


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin/sequences")
    runtime = admin.runtime

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    def edit_form(request: Request, user: Viewer, *, template: str, status: int = 200, error: Any = None,
                  text: str = "", **ctx: Any) -> Response:
        """The create or edit page, with the text as typed and what the service said of it."""
        findings = error.report.errors if isinstance(error, ComplianceError) else []
        return admin.render(request, template, user, status=status, text=text, findings=findings,
                            error=None if error is None or findings else str(error), **ctx)

    @r.get("")
    def sequences(request: Request, user: Viewer = Depends(viewer)) -> Response:
        with transaction(runtime.factory) as db:
            rows = [summary(service.step_report(db, sequence_id=s.id))
                    for s in service.list_sequences(db)]
        return admin.render(request, "sequences.html", user, sequences=rows)

    @r.get("/new")
    def new(request: Request, user: Viewer = Depends(viewer)) -> Response:
        made = list_templates()
        query = request.query_params
        chosen = next((t for t in made if t["name"] == query.get("template")), None)
        text, missing = "", None
        if chosen:
            given = {k: str(query[f"value.{k}"])[:2000] for k in chosen["values"] if f"value.{k}" in query}
            problems = value_problems(chosen["name"], given)
            chosen = {**chosen, "fields": [
                {**f, "value": given.get(f["key"], "" if f["default"] is None else f["default"]),
                 "problem": problems.get(f["key"])} for f in chosen["fields"]]}
            text = from_template(chosen["name"], given)
            missing = [f for f in chosen["fields"] if f["problem"]] or None
        return edit_form(request, user, template="sequences_new.html", templates=made, chosen=chosen, text=text,
                         missing=missing)

    @r.post("")
    async def create(request: Request, user: Viewer = Depends(viewer)) -> Response:
        text = str((await request.form()).get("definition", ""))[:MAX_TEXT]
        try:
            with transaction(runtime.factory) as db:
                sequence_id = service.create_sequence(db, settings=runtime.settings, data=load_text(text)).id
        except REFUSALS as exc:
            return edit_form(request, user, template="sequences_new.html", status=400, error=exc, text=text,
                             templates=list_templates(), chosen=None, missing=None)
        return RedirectResponse(f"/admin/sequences/{sequence_id}?created=1", status_code=303)

    def sequence_page(request: Request, user: Viewer, sequence_id: int, template: str,
                      read: Callable[[Session, Sequence], dict[str, Any]]) -> Response:
        """A page of one sequence (404 when there is none) with what `read` takes from the database."""
        with transaction(runtime.factory) as db:
            sequence = db.get(Sequence, sequence_id)
            if sequence is None:
                return admin.render(request, "not_found.html", user, status=404)
            ctx = read(db, sequence)
        return admin.render(request, template, user, **ctx)

    @r.get("/{sequence_id}")
    def detail(request: Request, sequence_id: int, user: Viewer = Depends(viewer)) -> Response:
        done = next((k for k in ("created", "saved", "paused", "resumed", "step") if k in request.query_params), "")
        def read(db: Session, sequence: Sequence) -> dict[str, Any]:
            seq = summary(service.step_report(db, sequence_id=sequence.id))
            return {"seq": seq, "done": done, "definition": as_yaml(dict(sequence.definition)),
                    "step": request.query_params.get("step", ""),
                    "left": leavers(db, sequence_id=sequence.id, steps=seq["steps"])}

        return sequence_page(request, user, sequence_id, "sequences_detail.html", read)

    @r.get("/{sequence_id}/dry-run")
    def dry_run(request: Request, sequence_id: int, user: Viewer = Depends(viewer)) -> Response:
        return sequence_page(request, user, sequence_id, "sequences_dry_run.html", lambda db, sequence: {
            "seq": {"id": sequence.id, "name": sequence.name}, "found": service.dry_run(db, sequence_id=sequence.id)})

    @r.get("/{sequence_id}/edit")
    def edit(request: Request, sequence_id: int, user: Viewer = Depends(viewer)) -> Response:
        return sequence_page(request, user, sequence_id, "sequences_edit.html", lambda db, sequence: {
            "seq": service.describe(db, sequence), "text": as_yaml(dict(sequence.definition)), "findings": [],
            "error": None})

    def act(request: Request, user: Viewer, sequence_id: int, change: Callable[[Session], Any], done: str) -> Response:
        """Make a change to one sequence and show it with a notice (404 for a sequence or a step there is not)."""
        try:
            with transaction(runtime.factory) as db:
                change(db)
        except service.SequenceError:
            return admin.render(request, "not_found.html", user, status=404)
        return RedirectResponse(f"/admin/sequences/{sequence_id}?{done}", status_code=303)

    @r.post("/{sequence_id}/status")
    async def set_status(request: Request, sequence_id: int, user: Viewer = Depends(viewer)) -> Response:
        status = "paused" if (await request.form()).get("status") == "paused" else "active"
        return act(request, user, sequence_id, lambda db: service.set_status(db, sequence_id=sequence_id, status=status),
                   "paused=1" if status == "paused" else "resumed=1")

    @r.post("/{sequence_id}/steps/{step_id}/resume")
    async def resume_step(request: Request, sequence_id: int, step_id: str, user: Viewer = Depends(viewer)) -> Response:
        return act(request, user, sequence_id,
                   lambda db: service.resume_step(db, sequence_id=sequence_id, step_id=step_id),
                   "step=" + quote(step_id))

    @r.post("/{sequence_id}/edit")
    async def save(request: Request, sequence_id: int, user: Viewer = Depends(viewer)) -> Response:
        text = str((await request.form()).get("definition", ""))[:MAX_TEXT]
        try:
            with transaction(runtime.factory) as db:
                sequence = db.get(Sequence, sequence_id)
                if sequence is None:
                    return admin.render(request, "not_found.html", user, status=404)
                seq = service.describe(db, sequence)
                service.update_sequence(db, settings=runtime.settings, sequence_id=sequence_id, data=load_text(text))
        except REFUSALS as exc:
            return edit_form(request, user, template="sequences_edit.html", status=400, error=exc, text=text, seq=seq)
        return RedirectResponse(f"/admin/sequences/{sequence_id}?saved=1", status_code=303)

    return r
