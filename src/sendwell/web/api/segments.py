"""/segments: saved segment expressions and live counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.segments import service as segments
from sendwell.segments.expression import SegmentError
from sendwell.web.api.problems import ApiProblem, FieldError, invalid
from sendwell.web.api.schemas import SegmentId, bounded


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = bounded(200, min_length=1)
    expression: str = bounded(2000, description="e.g. `region = eu and stage in (prospect, customer)`")


class ExpressionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expression: str = bounded(2000)


class SegmentOut(BaseModel):
    id: int
    name: str
    expression: str
    created_at: datetime


class CountOut(BaseModel):
    count: int = Field(description="contacts the rule selects")
    suppressed: int = Field(description="of those, on the suppression list")
    no_lawful_basis: int = Field(description="of those, not suppressed but without a lawful basis for their country")
    reachable: int = Field(description="of those, could receive marketing now (before pauses, topics and caps)")


def _count(session: Any, expression: str) -> CountOut:
    try:
        c = segments.count_segment(session, expression=expression)
        return CountOut(count=c["matching"], suppressed=c["suppressed"], no_lawful_basis=c["no_lawful_basis"],
                        reachable=c["reachable"])
    except RecursionError:
        raise invalid("expression", "nested too deeply") from None


def router(runtime: Runtime, require: Any) -> APIRouter:
    r = APIRouter(prefix="/segments", tags=["segments"])

    @r.get("", response_model=list[SegmentOut], dependencies=[require("contacts:read")])
    def list_segments() -> list[SegmentOut]:
        with transaction(runtime.factory) as session:
            return [SegmentOut.model_validate(s, from_attributes=True) for s in segments.list_segments(session)]

    @r.post("", status_code=201, response_model=SegmentOut, dependencies=[require("contacts:write")],
            responses={409: {"description": "the name is taken"}})
    def create_segment(body: SegmentIn) -> SegmentOut:
        try:
            with transaction(runtime.factory) as session:
                segment = segments.create_segment(session, name=body.name, expression=body.expression)
                return SegmentOut.model_validate(segment, from_attributes=True)
        except segments.SegmentExists as exc:
            raise ApiProblem(409, str(exc), kind="conflict", errors=[FieldError(field="name", message=str(exc))]) from None
        except SegmentError as exc:
            raise invalid("name" if "name" in str(exc) and not body.name.strip() else "expression", str(exc)) from None
        except RecursionError:
            raise invalid("expression", "nested too deeply") from None

    @r.post("/count", response_model=CountOut, dependencies=[require("contacts:read")])
    def count_expression(body: ExpressionIn) -> CountOut:
        """How many contacts an expression selects now, without saving it."""
        try:
            with transaction(runtime.factory) as session:
                return _count(session, body.expression)
        except SegmentError as exc:
            raise invalid("expression", str(exc)) from None

    @r.get("/{segment_id}/count", response_model=CountOut, dependencies=[require("contacts:read")],
           responses={404: {"description": "no such segment"}})
    def count_segment(segment_id: SegmentId) -> CountOut:
        with transaction(runtime.factory) as session:
            segment = segments.get_segment_by_id(session, segment_id=segment_id)
            if segment is None:
                raise ApiProblem(404, f"no segment with id {segment_id}", kind="not-found")
            return _count(session, segment.expression)

    return r
