"""The import history: each import run from the admin, who ran it, what it did and its rejected rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.contacts.importer import ImportResult
from sendwell.db.models import ImportBatch, ImportRejection

KEEP_REJECTED = 10_000  # rejected rows kept per run; the counts are always whole


def record_import(session: Session, *, filename: str, imported_by: str, result: ImportResult, source: str = "",
                  now: datetime | None = None) -> ImportBatch:
    """Store one import run (not a dry run) with the rejected rows the result holds."""
    batch = ImportBatch(
        created_at=now or datetime.now(timezone.utc), filename=filename[:200], source=source[:200],
        imported_by=imported_by[:320], rows=result.rows, created=result.created if result.written else 0,
        updated=result.updated if result.written else 0, duplicates=result.duplicates,
        suppressed=result.suppressed, rejected=result.rejected, written=result.written,
    )
    session.add(batch)
    session.flush()
    session.add_all(
        ImportRejection(batch_id=batch.id, row=e.row, field=e.field[:100], template=e.template or e.message,
                        params=e.params if e.template else {})
        for e in result.errors[:KEEP_REJECTED]
    )
    session.flush()
    return batch


def list_imports(session: Session, *, limit: int = 200) -> list[ImportBatch]:
    """The latest import runs, newest first."""
    return list(session.scalars(select(ImportBatch).order_by(ImportBatch.id.desc()).limit(limit)))


def get_import(session: Session, *, batch_id: int) -> ImportBatch | None:
    """One import run by id, or None."""
    return session.get(ImportBatch, batch_id)


def rejected_rows(session: Session, *, batch_id: int) -> Iterator[ImportRejection]:
    """The stored rejected rows of a run, by row number."""
    query = (select(ImportRejection).where(ImportRejection.batch_id == batch_id)
             .order_by(ImportRejection.row, ImportRejection.id).execution_options(yield_per=1000))
    yield from session.scalars(query)
