"""The import wizard: upload → column mapping (prefilled) → dry-run report with rejected rows → import;
and the import history: each run, who ran it, what it did and its rejected rows (downloadable).

Uploads live in the data folder until the import is done or cancelled; any left behind by an
abandoned wizard are deleted a day later, on the next upload.

Every step calls contacts.importer.import_contacts, the function behind `sendwell contacts
import`, so the checks and the all-or-nothing rule are the CLI's.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup
from starlette.datastructures import UploadFile

from sendwell.contacts.fields import FIELDS, IGNORE, ImportFileError, map_headers
from sendwell.contacts.history import (
    KEEP_REJECTED,
    get_import,
    list_imports,
    record_import,
    rejected_rows,
)
from sendwell.contacts.importer import import_contacts
from sendwell.contacts.problems import FieldProblem
from sendwell.contacts.tabular import FileFormatError, neutralise, open_table
from sendwell.db.models import ConsentKind
from sendwell.db.session import transaction
from sendwell.web.admin.pages import Admin, Viewer, gettext_for
from sendwell.web.limits import IMPORT_FILE_BYTES

SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx")
MAX_UPLOAD = IMPORT_FILE_BYTES
ABANDONED_AFTER = 24 * 3600  # seconds an upload may wait for its import before it is deleted
_CHUNK = 1 << 20
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")
CONSENT_KINDS = [k.value for k in ConsentKind if k is not ConsentKind.LEGITIMATE_INTEREST]


def _uploads(admin: Admin) -> Path:
    folder = admin.runtime.settings.data_dir / "admin-imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _forget(path: Path) -> None:
    """Delete an upload and the file holding its original name."""
    path.unlink(missing_ok=True)
    path.with_suffix(".name").unlink(missing_ok=True)


def _sweep(folder: Path, *, now: float) -> None:
    """Delete uploads (and their names) older than ABANDONED_AFTER: wizards nobody finished."""
    for path in folder.iterdir():
        try:
            if now - path.stat().st_mtime > ABANDONED_AFTER:
                path.unlink(missing_ok=True)
        except OSError:
            continue  # another request deleted it first


async def _save(upload: UploadFile, path: Path) -> bool:
    """Copy the upload to `path` a chunk at a time; False (and nothing kept) when it passes MAX_UPLOAD."""
    size = 0
    with path.open("wb") as out:
        while chunk := await upload.read(_CHUNK):
            size += len(chunk)
            if size > MAX_UPLOAD:
                break
            out.write(chunk)
    if size > MAX_UPLOAD:
        path.unlink(missing_ok=True)
        return False
    return True


def _upload_path(admin: Admin, token: str) -> Path | None:
    """The uploaded file for a wizard token; None for a malformed or unknown token."""
    if not _TOKEN.fullmatch(token):
        return None
    found = [p for p in _uploads(admin).glob(token + ".*") if p.suffix in SUFFIXES]
    return found[0] if found else None


# What each contact field is called on the pages (catalog msgids); its code is what `--map` and headers use.
FIELD_LABELS = {
    "email": "Email address", "first_name": "First name", "last_name": "Last name", "name": "Full name",
    "company": "Company", "job_title": "Job title", "country": "Country", "industry": "Industry", "stage": "Stage",
    "language": "Language", "timezone": "Time zone", "tags": "Tags", "consent": "Consent",
    "consent_date": "Consent date",
}


def _choices(header: str) -> list[tuple[str, str]]:
    return [(f, FIELD_LABELS[f]) for f in FIELDS] + [("custom:" + header, "custom"), (IGNORE, "ignore")]


class _TheirData:
    """A value from the person's file inside a translated sentence, marked as theirs (`%s` and `%r` alike)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __html__(self) -> str:
        return Markup('<span translate="no">{}</span>').format(self.value)

    def __repr__(self) -> str:
        return Markup('<span translate="no">{}</span>').format(repr(self.value))


@pass_context
def field_shown(context: Context, field: str) -> Markup:
    """A rejected row's field: its label in the reader's language and, beside it, the code the file can use."""
    _ = context["_"]
    if field in FIELD_LABELS:
        return Markup("{} <code>{}</code>").format(_(FIELD_LABELS[field]), field)
    if field.startswith("custom:"):
        return Markup('{} <span translate="no">{}</span>').format(_("custom"), field.removeprefix("custom:"))
    if field == "(row)":
        return Markup("{}").format(_("Whole row"))
    return Markup("<code>{}</code>").format(field)


@pass_context
def reason_shown(context: Context, template: str, params: dict[str, Any]) -> Markup:
    """Why a row was rejected, in the reader's language; the value from the file is marked as the person's data."""
    _ = context["_"]
    if not params:
        return Markup("{}").format(_(template))
    shown = {k: _TheirData(v) if k == "value" else v for k, v in params.items()}
    return Markup("{}").format(_(template)) % shown


def _said(exc: ValueError, language: str) -> str:
    """An import error in the reader's language when it is a template with values, else as raised."""
    if isinstance(exc, FieldProblem):
        return gettext_for(language)(exc.template, **exc.params)
    return str(exc)


def _prefill(headers: list[str], language: str = "en") -> tuple[list[str], str]:
    """The field each column maps to, as the CLI's header detection sees it, and its error if any."""
    try:
        columns, _custom = map_headers(headers)
        error = ""
    except ImportFileError as exc:
        columns, error = {}, _said(exc, language)
    chosen = []
    for index, header in enumerate(headers):
        field = columns.get(index)
        chosen.append(field if field else (IGNORE if not header.strip() else "custom:" + header.strip()))
    return chosen, error


def _options(form: Any) -> dict[str, Any]:
    consent = str(form.get("consent", ""))
    return {"consent": consent if consent in CONSENT_KINDS else "", "source": str(form.get("source", ""))[:200],
            "topic": str(form.get("topic", "")).strip()[:100], "skip_invalid": form.get("skip_invalid") == "1"}


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin/import")

    async def marketer(request: Request) -> Viewer:
        return await admin.require(request, "marketer")

    async def viewer(request: Request) -> Viewer:
        return await admin.require(request, "viewer")

    def headers_of(path: Path) -> list[str]:
        with open_table(path) as table:
            return [h.strip().lstrip("\ufeff") for h in table.headers]

    def mapping_page(request: Request, user: Viewer, token: str, path: Path, *, status: int = 200,
                     chosen: list[str] | None = None, error: str = "", options: dict[str, Any] | None = None,
                     report: Any = None) -> Response:
        headers = headers_of(path)
        prefilled, detect_error = _prefill(headers, user.language)
        name_file = path.with_suffix(".name")
        filename = name_file.read_text(encoding="utf-8") if name_file.exists() else path.name
        return admin.render(request, "import_mapping.html", user, status=status, token=token, filename=filename,
                            columns=list(zip(headers, chosen or prefilled)), choices=_choices,
                            error=error or detect_error, consent_kinds=CONSENT_KINDS,
                            options=options or {"consent": "", "source": "", "topic": "", "skip_invalid": False},
                            report=report, field_shown=field_shown, reason_shown=reason_shown)

    @r.get("")
    def upload_form(request: Request, user: Viewer = Depends(marketer)) -> Response:
        return admin.render(request, "import_upload.html", user, fields=FIELD_LABELS)

    @r.post("")
    async def upload(request: Request, user: Viewer = Depends(marketer)) -> Response:
        form = await request.form()  # already parsed (and its CSRF token checked) by `marketer`
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return admin.render(request, "import_upload.html", user, fields=FIELD_LABELS, status=400,
                                error="Choose a CSV or XLSX file.")
        suffix = Path(upload.filename).suffix.lower()
        if suffix not in SUFFIXES:
            return admin.render(request, "import_upload.html", user, fields=FIELD_LABELS, status=400,
                                error="Only .csv, .tsv, .txt and .xlsx files can be imported.")
        _sweep(_uploads(admin), now=time.time())
        token = secrets.token_urlsafe(24)
        path = _uploads(admin) / f"{token}{suffix}"
        if not await _save(upload, path):
            return admin.render(request, "import_upload.html", user, fields=FIELD_LABELS, status=413,
                                error="The file is larger than 50 MB; split it or use `sendwell contacts import`.")
        # The name the marketer knows the file by, for the mapping page (the stored name is random).
        path.with_suffix(".name").write_text(Path(upload.filename).name[:200], encoding="utf-8")
        try:
            headers_of(path)
        except (FileFormatError, OSError, ValueError) as exc:
            _forget(path)
            return admin.render(request, "import_upload.html", user, fields=FIELD_LABELS, status=400,
                                error=str(exc))
        return mapping_page(request, user, token, path)

    def run(request: Request, user: Viewer, token: str, form: Any, *, dry_run: bool) -> Response:
        path = _upload_path(admin, token)
        if path is None:
            return admin.render(request, "not_found.html", user, status=404)
        headers = headers_of(path)
        chosen = [str(form.get(f"map_{i}", IGNORE)) for i in range(len(headers))]
        mapping = {h: c for h, c in zip(headers, chosen) if h}
        options = _options(form)
        try:
            with transaction(admin.runtime.factory) as db:
                result = import_contacts(
                    db, path=path, pepper=admin.runtime.settings.pepper, source=options["source"],
                    consent=options["consent"] or None, topic=options["topic"] or None, mapping=mapping,
                    dry_run=dry_run, skip_invalid=options["skip_invalid"], rejected_path=False,
                    region_map=admin.runtime.settings.region_overrides, keep_errors=KEEP_REJECTED)
                if not dry_run:
                    name_file = path.with_suffix(".name")
                    filename = name_file.read_text(encoding="utf-8") if name_file.exists() else path.name
                    record_import(db, filename=filename, imported_by=user.email, result=result,
                                  source=options["source"])
        except ImportFileError as exc:
            return mapping_page(request, user, token, path, status=400, chosen=chosen,
                                error=_said(exc, user.language),
                                options=options)
        if dry_run or not result.written:
            return mapping_page(request, user, token, path, chosen=chosen, options=options, report=result)
        _forget(path)
        return admin.render(request, "import_done.html", user, report=result)

    @r.post("/{token}/check")
    async def check(request: Request, token: str, user: Viewer = Depends(marketer)) -> Response:
        return run(request, user, token, await request.form(), dry_run=True)

    @r.post("/{token}/run")
    async def commit(request: Request, token: str, user: Viewer = Depends(marketer)) -> Response:
        return run(request, user, token, await request.form(), dry_run=False)

    @r.get("/history")
    def history(request: Request, user: Viewer = Depends(viewer)) -> Response:
        with transaction(admin.runtime.factory) as db:
            batches = list_imports(db)
            db.expunge_all()
        return admin.render(request, "import_history.html", user, batches=batches)

    @r.get("/history/{batch_id}")
    def batch(request: Request, batch_id: int, user: Viewer = Depends(viewer)) -> Response:
        with transaction(admin.runtime.factory) as db:
            found = get_import(db, batch_id=batch_id)
            if found is None:
                return admin.render(request, "not_found.html", user, status=404)
            rows = [r for _, r in zip(range(SHOWN_REJECTED), rejected_rows(db, batch_id=batch_id))]
            db.expunge_all()
        return admin.render(request, "import_batch.html", user, batch=found, rejected=rows, shown=SHOWN_REJECTED,
                            field_shown=field_shown, reason_shown=reason_shown)

    @r.get("/history/{batch_id}/rejected.csv")
    def rejected_csv(request: Request, batch_id: int, user: Viewer = Depends(viewer)) -> Response:
        with transaction(admin.runtime.factory) as db:
            if get_import(db, batch_id=batch_id) is None:
                return admin.render(request, "not_found.html", user, status=404)
        name = f"import-{batch_id}-rejected.csv"
        return StreamingResponse(_rejected_lines(admin, batch_id, user.language), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"',
                                          "Cache-Control": "no-store"})

    @r.post("/{token}/cancel")
    async def cancel(request: Request, token: str, user: Viewer = Depends(marketer)) -> Response:
        path = _upload_path(admin, token)
        if path is not None:
            _forget(path)
        return RedirectResponse("/admin/import", status_code=303)

    return r


SHOWN_REJECTED = 200  # rejected rows on the page; the download has every stored one


def _rejected_lines(admin: Admin, batch_id: int, language: str) -> Iterator[bytes]:
    """The stored rejected rows as CSV in the reader's language, UTF-8 with a BOM for Excel."""
    _ = gettext_for(language)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "field", "message"])
    yield ("\ufeff" + buffer.getvalue()).encode()
    with transaction(admin.runtime.factory) as db:
        for n, rejection in enumerate(rejected_rows(db, batch_id=batch_id)):
            buffer.seek(0)
            buffer.truncate()
            writer.writerow([rejection.row, rejection.field, neutralise(_(rejection.template, **rejection.params))])
            yield buffer.getvalue().encode()
