"""Types shared by the API modules: bounded ids, text without NUL, pages."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Generic, TypeVar

from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field

MAX_ID = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite
MAX_PAGE = 500
DEFAULT_PAGE = 50
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL


def bounded(max_length: int, **kw: object) -> object:
    """A pydantic Field for a string column of this length."""
    return Field(max_length=max_length, pattern=NO_NUL, **kw)  # type: ignore[arg-type]


def _sane(value: datetime) -> datetime:
    # Out-of-range years overflow on conversion and in date arithmetic (consent expiry).
    if not 1900 <= value.year <= 2200:
        raise ValueError("the year must be between 1900 and 2200")
    return value.astimezone(timezone.utc)


When = Annotated[AwareDatetime, AfterValidator(_sane)]
ContactId = Annotated[int, Path(ge=1, le=MAX_ID)]
CampaignId = Annotated[int, Path(ge=1, le=MAX_ID)]
SegmentId = Annotated[int, Path(ge=1, le=MAX_ID)]
After = Annotated[int, Query(ge=0, le=MAX_ID, description="Cursor: return items with an id greater than this (`next_after` of the previous page).")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, at most {MAX_PAGE}.")]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of items in id order; pass `next_after` as `after` for the next page (null: no more)."""

    items: list[T]
    next_after: int | None


def page_of(items: list[T], limit: int, key: str = "id") -> Page[T]:
    nxt = getattr(items[-1], key) if len(items) == limit and items else None
    return Page[T](items=items, next_after=nxt)
