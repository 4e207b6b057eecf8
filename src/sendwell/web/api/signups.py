"""/signups: a website's own signup form hands a signup over; the person confirms by the mailed link."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.signup import service
from sendwell.web.api.problems import ApiProblem, invalid
from sendwell.web.api.schemas import NO_NUL, bounded

Value = Annotated[str, Field(max_length=service.MAX_VALUE, pattern=NO_NUL)]


class SignupIn(BaseModel):
    """The form's fields by name (first_name, company, a custom field …); fields the form does not show are ignored."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"form": 1, "email": "anna@importer.example", "first_name": "Anna", "company": "Importer GmbH",
         "topics": ["led-news"], "ip": "203.0.113.5", "user_agent": "Mozilla/5.0 …"}]})

    form: int = Field(ge=1, description="the signup form's id (`sendwell forms list`)")
    email: str = bounded(320, json_schema_extra={"format": "email"})
    topics: list[Annotated[str, Field(max_length=100)]] | None = Field(
        default=None, max_length=50, description="slugs of the form's topics chosen; omitted: all the form offers")
    ip: str = bounded(64, default="", description="the person's IP address, kept as proof of the signup")
    user_agent: str = bounded(500, default="", description="the person's browser, kept as proof of the signup")


class Accepted(BaseModel):
    status: str = Field(description="always `accepted`: the answer never says whether the address is known")


def router(runtime: Runtime, require: Any, wake: Callable[[], None]) -> APIRouter:
    r = APIRouter(tags=["signups"])

    @r.post("/signups", status_code=202, response_model=Accepted, dependencies=[require("signups:write")],
            responses={404: {"description": "no signup form has this id"},
                       422: {"description": "the address or a field is invalid"}})
    def create_signup(body: SignupIn) -> Accepted:
        """Take a signup and mail the confirmation link (double opt-in); nothing is subscribed before the
        person confirms. Honeypot, rate limits, suppressed or recently asked addresses get the same 202."""
        values = {k: str(v) for k, v in (body.model_extra or {}).items() if isinstance(v, (str, int, float))}
        values["email"] = body.email
        settings = runtime.settings
        try:
            with transaction(runtime.factory) as session:
                service.submit_signup(session, form_id=body.form, values=values, topics=body.topics,
                                      pepper=settings.pepper, ip=body.ip, user_agent=body.user_agent,
                                      expire_days=settings.signup_expire_days)
        except service.FormNotFound:
            raise ApiProblem(404, f"no signup form {body.form}", kind="not-found") from None
        except service.SignupError as exc:
            raise invalid("email" if "address" in exc.template else "fields", str(exc)) from None
        wake()  # the outbox dispatcher of `sendwell serve` sends the mail now
        return Accepted(status="accepted")

    return r
