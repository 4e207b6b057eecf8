"""/campaigns/{id}/clone, /rename, /archive, /unarchive and DELETE /campaigns/{id}: the admin's campaign management."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from sendwell.campaigns import service as campaign_service
from sendwell.campaigns.service import CampaignError
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.web.api.campaigns import CONFLICT, NOT_FOUND, CampaignOut, _existing, _out
from sendwell.web.api.problems import ApiProblem
from sendwell.web.api.schemas import CampaignId, bounded


class CloneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = bounded(200, default=None, min_length=1, description='default "Copy of <name>"')


class RenameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = bounded(200, min_length=1)


class ArchivedOut(BaseModel):
    id: int
    archived: bool


def router(runtime: Runtime, require: Any) -> APIRouter:
    r = APIRouter(prefix="/campaigns", tags=["campaigns"])
    write = [require("campaigns:write")]

    @r.post("/{campaign_id}/clone", status_code=201, response_model=CampaignOut, dependencies=write,
            responses=NOT_FOUND)
    def clone_campaign(campaign_id: CampaignId, body: CloneIn | None = None) -> CampaignOut:
        """A new draft with the campaign's content, audience and settings; no sends, no figures."""
        with transaction(runtime.factory) as session:
            _existing(session, campaign_id)
            copy = campaign_service.clone_campaign(session, campaign_id=campaign_id, name=body.name if body else None)
            return _out(session, copy)

    @r.post("/{campaign_id}/rename", response_model=CampaignOut, dependencies=write, responses=NOT_FOUND)
    def rename_campaign(campaign_id: CampaignId, body: RenameIn) -> CampaignOut:
        """A new name, in any status."""
        with transaction(runtime.factory) as session:
            _existing(session, campaign_id)
            try:
                campaign = campaign_service.rename_campaign(session, campaign_id=campaign_id, name=body.name)
            except CampaignError as exc:
                raise ApiProblem(422, str(exc), kind="validation") from None
            return _out(session, campaign)

    @r.delete("/{campaign_id}", status_code=204, dependencies=write, responses={**NOT_FOUND, **CONFLICT})
    def delete_campaign(campaign_id: CampaignId) -> Response:
        """Delete a draft that never sent; 409 for anything else (archive it instead)."""
        try:
            with transaction(runtime.factory) as session:
                _existing(session, campaign_id)
                campaign_service.delete_campaign(session, campaign_id=campaign_id)
        except CampaignError as exc:
            raise ApiProblem(409, str(exc), kind="conflict") from None
        return Response(status_code=204)

    def archiver(archived: bool) -> Any:
        def handler(campaign_id: CampaignId) -> ArchivedOut:
            try:
                with transaction(runtime.factory) as session:
                    _existing(session, campaign_id)
                    campaign_service.archive_campaign(session, campaign_id=campaign_id, archived=archived)
            except CampaignError as exc:
                raise ApiProblem(409, str(exc), kind="conflict") from None
            return ArchivedOut(id=campaign_id, archived=archived)

        handler.__name__ = "archive_campaign" if archived else "unarchive_campaign"
        handler.__doc__ = ("Set a finished or cancelled campaign aside: hidden from the admin's list, sends and "
                           "report kept." if archived else "Take a campaign out of the archive.")
        return handler

    for action, archived in (("archive", True), ("unarchive", False)):
        r.add_api_route(f"/{{campaign_id}}/{action}", archiver(archived), methods=["POST"], response_model=ArchivedOut,
                        dependencies=write, responses={**NOT_FOUND, **CONFLICT})
    return r
