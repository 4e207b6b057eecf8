"""RFC 9457 problem details: every error of the API is `application/problem+json`."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "tag:sendwell,2026:problem/"  # RFC 9457 §3.1.1: a URI that need not resolve


class FieldError(BaseModel):
    field: str = Field(description="The field at fault, e.g. `email`, `items[3].country`, `query.limit`.")
    message: str


class Problem(BaseModel):
    """RFC 9457 §3: the members we send; `errors` extends it for validation failures."""

    type: str = Field(description="`about:blank` or a `tag:sendwell,2026:problem/<name>` URI")
    title: str
    status: int
    detail: str = ""
    errors: list[FieldError] = Field(default_factory=list)


class ApiProblem(Exception):
    """Raised by a route to answer with a problem document."""

    def __init__(self, status: int, detail: str = "", *, kind: str | None = None,
                 errors: list[FieldError] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.errors = errors or []
        self.headers = headers


def invalid(field: str, message: str) -> ApiProblem:
    """A 422 naming one field."""
    return ApiProblem(422, f"{field}: {message}", kind="validation", errors=[FieldError(field=field, message=message)])


def problem_response(status: int, detail: str = "", *, kind: str | None = None,
                     errors: list[FieldError] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body = Problem(type=TYPE_BASE + kind if kind else "about:blank", title=title, status=status,
                   detail=detail, errors=errors or [])
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]" if out else f"items[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def install_problem_handlers(app: FastAPI) -> None:
    """Turn every error raised in the app into a problem document."""

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, kind=exc.kind, errors=exc.errors, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail) if exc.detail else "", headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [FieldError(field=_field_name(tuple(e.get("loc", ()))), message=str(e.get("msg", "invalid")))
                  for e in exc.errors()]
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:3]) or "invalid request"
        return problem_response(422, detail, kind="validation", errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("API request failed: %s %s", request.method, request.url.path)
        return problem_response(500, "an unexpected error; it has been logged", kind="internal")


# Error statuses every authenticated operation can answer.
COMMON_ERRORS = {"401": "missing, unknown or revoked token", "403": "the token lacks the scope",
                 "422": "a field is invalid (the problem's `errors` name it)"}


def problem_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with every 4xx/5xx answer described as application/problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                         servers=app.servers)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    field_error = components["Problem"].pop("$defs", {}).get("FieldError")
    if field_error:
        components["FieldError"] = field_error
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for code, description in COMMON_ERRORS.items():
                responses.setdefault(code, {"description": description})
            if "requestBody" in operation:
                responses.setdefault("400", {"description": "the body is not valid JSON (or not UTF-8)"})
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = {PROBLEM_JSON: {"schema": ref}}
                    if response.get("description") in (None, "", "Validation Error"):
                        response["description"] = COMMON_ERRORS.get(code, HTTPStatus(int(code)).phrase)
    app.openapi_schema = schema
    return schema
