"""Import contacts from CSV or XLSX in bounded memory: validate, merge duplicates, record consent.

One cohesive pipeline (read, validate, merge, write chunk by chunk); its parts share the
chunk's state, and the field rules live in contacts/fields.py.

All or nothing by default (DESIGN.md: "nothing already stored is lost or half-written"):
rows are validated and written chunk by chunk inside one SAVEPOINT, which is rolled back if
any row is bad (or on --dry-run). `skip_invalid=True` imports the valid rows on purpose.
Either way every bad row goes to the rejected-rows file with its row number, field and reason.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, func, select, update
from sqlalchemy.orm import Session

from sendwell.contacts.addresses import notes_for_valid
from sendwell.contacts.fields import ImportFileError, RowError, RowParser, map_headers
from sendwell.contacts.lawful_basis import expiry_for, normalise_kind
from sendwell.contacts.records import ensure_topic
from sendwell.contacts.regions import region_for
from sendwell.contacts.roles import ROLE_ADDRESSES
from sendwell.contacts.tabular import FileFormatError, neutralise, open_table
from sendwell.contacts.vocabulary import INDUSTRY, STAGE, load_vocabulary
from sendwell.db.models import (
    SCOPE_ALL,
    Consent,
    ConsentSource,
    Contact,
    Stage,
    Subscription,
    Topic,
)
from sendwell.db.rawsql import driver_cursor

CHUNK = 2000
KEEP_ERRORS = 50  # the first errors kept in memory for the summary; all go to the file


@dataclass
class ImportResult:
    rows: int = 0
    created: int = 0
    updated: int = 0
    duplicates: int = 0  # rows merged into an earlier row of the same file
    suppressed: int = 0  # kept out: on the suppression list (COMPLIANCE rule 18)
    rejected: int = 0
    consents: int = 0
    written: bool = False
    dry_run: bool = False
    skip_invalid: bool = False
    file_format: str = ""
    rejected_file: str | None = None
    custom_columns: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    # Address cleaning's notes (role address, disposable domain, likely typo): imported, but
    # worth a look; the first KEEP_ERRORS are kept (contacts/addresses.py).
    warnings: list[RowError] = field(default_factory=list)
    warning_count: int = 0

    def note_address(self, row: int, email: str, roles: frozenset[str]) -> None:
        """The import's address-cleaning hook: warn on the row, never change the address."""
        for note in notes_for_valid(email, roles=roles):
            self.warning_count += 1
            if len(self.warnings) < KEEP_ERRORS:
                self.warnings.append(RowError(row, "email", str(note)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "duplicates_merged": self.duplicates,
            "kept_out_suppressed": self.suppressed,
            "already_suppressed": self.suppressed,
            "rejected": self.rejected,
            "consents_recorded": self.consents,
            "written": self.written,
            "dry_run": self.dry_run,
            "skip_invalid": self.skip_invalid,
            "format": self.file_format,
            "rejected_file": self.rejected_file,
            "custom_columns": self.custom_columns,
            "errors": [str(e) for e in self.errors],
            "warnings": [str(w) for w in self.warnings],
            "warning_count": self.warning_count,
        }


class _Rejected:
    """The rejected-rows file (row, field, value, reason), opened only when there is something to say."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh: Any = None
        self._csv: Any = None

    def add(self, row: int, field_name: str, value: str, reason: str) -> None:
        if self.path is None:
            return
        if self._fh is None:
            self._fh = self.path.open("w", newline="", encoding="utf-8-sig")
            self._csv = csv.writer(self._fh)
            self._csv.writerow(["row", "field", "value", "reason"])
        self._csv.writerow([row, field_name, neutralise(value[:500]), reason])

    def close(self) -> str | None:
        if self._fh is None:
            return None
        self._fh.close()
        return str(self.path)


def default_rejected_path(path: Path) -> Path:
    """`buyers.csv` → `buyers.rejected.csv`, next to the input."""
    return path.with_name(path.stem + ".rejected.csv")


def import_contacts(
    session: Session,
    *,
    path: Path,
    pepper: bytes,
    source: str = "",
    consent: str | None = None,
    consent_source: str = ConsentSource.IMPORT_FILE.value,
    wording: str = "",
    topic: str | None = None,
    mapping: dict[str, str] | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    rejected_path: Path | None | bool = True,
    region_map: dict[str, str] | None = None,
    roles: frozenset[str] | None = None,
    now: datetime | None = None,
    on_progress: Callable[[int, int | None, int], None] | None = None,
    chunk_size: int = CHUNK,
    keep_errors: int = KEEP_ERRORS,
) -> ImportResult:
    """Import a CSV or XLSX file; all or nothing unless `skip_invalid`. ImportFileError for file-level faults."""
    now = now or datetime.now(timezone.utc)
    roles = roles if roles is not None else frozenset(ROLE_ADDRESSES.split(","))
    try:
        consent_kind = normalise_kind(consent) if consent else None
    except ValueError as exc:
        raise ImportFileError(f"--consent: {exc}") from None
    if consent_source not in {s.value for s in ConsentSource}:
        raise ImportFileError(f"unknown consent source {consent_source!r} "
                           f"(use one of {', '.join(s.value for s in ConsentSource)})")
    source = source or path.name
    wording = wording or f"Imported from {source} ({consent_source})"
    if rejected_path is True:
        rejected_path = default_rejected_path(path)
    elif rejected_path is False:
        rejected_path = None
    try:
        table = open_table(path)
    except FileFormatError as exc:
        raise ImportFileError(str(exc)) from None
    except OSError as exc:
        raise ImportFileError(f"cannot read the file: {exc.strerror or exc}") from None
    result = ImportResult(dry_run=dry_run, skip_invalid=skip_invalid, file_format=table.description)
    rejected = _Rejected(rejected_path if isinstance(rejected_path, Path) else None)
    savepoint = session.begin_nested()
    cache = _BigPageCache(session)
    try:
        with table:
            columns, result.custom_columns = map_headers(table.headers, mapping)
            writer = _ChunkWriter(
                session, pepper=pepper, source=source, consent_kind=consent_kind,
                consent_source=consent_source, wording=wording,
                topic_id=_topic_id(session, topic), region_map=region_map or {}, now=now, result=result,
                rejected=rejected,
            )
            parser = RowParser(load_vocabulary(session, INDUSTRY), load_vocabulary(session, STAGE), now,
                               has_custom=bool(result.custom_columns), fields=frozenset(columns.values()))
            width = len(table.headers)
            column_items = list(columns.items())
            for chunk in _chunks(table.rows(), chunk_size):
                valid: dict[str, tuple[int, dict[str, Any]]] = {}
                for number, cells in chunk:
                    if not "".join(cells).strip():
                        continue
                    result.rows += 1
                    row_errors: list[RowError] = []
                    if len(cells) > width and any(c.strip() for c in cells[width:]):
                        row_errors.append(RowError.of(number, "(row)", "%(cells)s cells but %(headers)s headers",
                                                      cells=len(cells), headers=width))
                        fields = None
                    else:
                        n = len(cells)
                        values = {name: cells[i] for i, name in column_items if i < n}
                        fields = parser.parse(values, number, row_errors)
                    if fields is None:
                        result.rejected += 1
                        for err in row_errors:
                            if len(result.errors) < keep_errors:
                                result.errors.append(err)
                            raw = _raw_value(cells, columns, err.field)
                            rejected.add(err.row, err.field, raw, err.message)
                        continue
                    # One person whatever the letter case; the first spelling is the one kept.
                    key = fields["email"].lower()
                    earlier = valid.get(key)
                    if earlier is not None:
                        result.duplicates += 1
                        fields = dict(_merge_rows(earlier[1], fields), email=earlier[1]["email"])
                    valid[key] = (number, fields)
                    result.note_address(number, fields["email"], roles)
                # All or nothing: after the first bad row nothing more is written, but every
                # row is still validated so the rejected-rows file lists them all. A dry run
                # writes on (into the savepoint it rolls back) so it counts what the good rows
                # would do: new, updated, kept out.
                if valid and (skip_invalid or dry_run or result.rejected == 0):
                    writer.write(valid)
                if on_progress is not None:
                    done, total = table.progress()
                    on_progress(done, total, result.rows)
        if result.rejected and not skip_invalid or dry_run:
            savepoint.rollback()
        else:
            savepoint.commit()
            result.written = True
    except BaseException:
        if savepoint.is_active:
            savepoint.rollback()
        raise
    finally:
        cache.restore()
        result.rejected_file = rejected.close()
    return result


class _BigPageCache:
    """A 64 MB SQLite page cache on the import's connection while it runs (2 MB by default).

    The indexes on address and address hash take keys in random order: once they outgrow
    the cache every insert rereads pages (−10 % time at 200,000 rows, more beyond). Only this
    connection, only for the import, so other processes keep the small default.
    """

    SIZE = -65536  # negative: in KiB

    def __init__(self, session: Session) -> None:
        self.cursor = None
        connection = session.connection()
        if connection.dialect.name == "sqlite":
            self.cursor = driver_cursor(connection)
            self.before = self.cursor.execute("PRAGMA cache_size").fetchone()[0]
            self.cursor.execute(f"PRAGMA cache_size={self.SIZE}")

    def restore(self) -> None:
        if self.cursor is not None:
            self.cursor.execute(f"PRAGMA cache_size={int(self.before)}")


def _raw_value(cells: list[str], columns: dict[int, str], field_name: str) -> str:
    for index, name in columns.items():
        if name == field_name and index < len(cells):
            return cells[index]
    return ""


def _merge_rows(first: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """A later row for the same address adds to an earlier one: blanks never wipe values."""
    merged = dict(first)
    for key, value in later.items():
        if key == "tags":
            merged["tags"] = sorted(set(first["tags"]) | set(value))
        elif key == "custom":
            merged["custom"] = {**first["custom"], **value}
        elif value not in (None, ""):
            merged[key] = value
    return merged


def _topic_id(session: Session, topic: str | None) -> int | None:
    if not topic:
        return None
    return ensure_topic(session, slug=topic).id


_CONTACT_COLUMNS = ("first_name", "last_name", "company", "job_title", "industry", "timezone")


class _ChunkWriter:
    """Writes one chunk of validated rows: set-based lookups, bulk inserts and updates."""

    def __init__(self, session: Session, *, pepper: bytes, source: str, consent_kind: str | None,
                 consent_source: str, wording: str, topic_id: int | None, region_map: dict[str, str],
                 now: datetime, result: ImportResult, rejected: _Rejected) -> None:
        self.session = session
        self.pepper = pepper
        self.source = source[:200]
        self.consent_kind = consent_kind
        self.consent_source = consent_source
        self.wording = wording
        self.wording_hash = hashlib.sha256(wording.encode()).hexdigest()
        self.topic_id = topic_id
        self.region_map = region_map
        self.now = now
        self.result = result
        self.rejected = rejected
        # Contacts with a larger id were created by this import: a later row for the same
        # address is a duplicate within the file, not an update of stored data.
        self.max_id_before = session.scalar(select(func.max(Contact.id))) or 0
        # Stored contacts this import already updated: another spelling of the address in a
        # later chunk is a duplicate too (one consent per contact per import).
        self.updated_ids: set[int] = set()

    def write(self, valid: dict[str, tuple[int, dict[str, Any]]]) -> None:
        """Store one chunk of valid rows, keyed by lower-cased address (`fields["email"]` as given)."""
        session = self.session
        pepper = self.pepper
        # The same HMAC-SHA256 as suppression.service.hash_email, through the one-shot C
        # function (ten times faster per call; a test checks both agree). The hash is of the
        # lower-cased address: it is both the suppression key and the contacts' unique key.
        hashes = {key: hmac.digest(pepper, key.strip().encode(), "sha256").hex() for key in valid}
        # Lookups by a chunk of keys go straight to the driver: SQLAlchemy compiling an IN
        # list of 2,000 parameters costs more than the database answering it.
        suppressed = {h for (h,) in _select_in(
            session, "SELECT email_hash FROM suppressions WHERE scope = {scope} AND email_hash {in_keys}",
            list(hashes.values()), scope=SCOPE_ALL)}
        known = [h for _, h in _select_in(session, "SELECT id, email_hash FROM contacts WHERE email_hash {in_keys}",
                                          list(hashes.values()))]
        existing = {row.email_hash: row for row in session.execute(
            select(Contact.id, Contact.email_hash, Contact.first_name, Contact.last_name, Contact.company,
                   Contact.job_title, Contact.industry, Contact.timezone, Contact.tags, Contact.custom)
            .where(Contact.email_hash.in_(known))
        )} if known else {}
        new_rows: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        consent_for: list[tuple[str, dict[str, Any]]] = []  # (hash, fields) needing a consent row
        for key, (number, fields) in valid.items():
            email, email_hash = fields["email"], hashes[key]
            if email_hash in suppressed:
                # COMPLIANCE rule 18: an import never resubscribes; the address is kept out.
                self.result.suppressed += 1
                self.rejected.add(number, "email", email, "kept out: on the suppression list (not imported)")
                continue
            row = existing.get(email_hash)
            if row is None:
                new_rows.append(self._new(email, email_hash, fields))
                self.result.created += 1
                consent_for.append((email_hash, fields))
                continue
            if row.id > self.max_id_before or row.id in self.updated_ids:
                self.result.duplicates += 1
            else:
                self.result.updated += 1
                self.updated_ids.add(row.id)
                consent_for.append((email_hash, fields))
            updates.append(self._update(row, fields))
        ids: dict[str, int] = {email_hash: row.id for email_hash, row in existing.items()}
        if new_rows:
            _bulk_insert(session, Contact.__table__, new_rows)
            ids.update(_select_in(session, "SELECT email_hash, id FROM contacts WHERE email_hash {in_keys}",
                                  [r["email_hash"] for r in new_rows]))
        if updates:
            session.execute(update(Contact), updates)
        self._consents([(ids[h], fields) for h, fields in consent_for])
        self._subscriptions([ids[h] for h, _ in consent_for])

    def _new(self, email: str, email_hash: str, f: dict[str, Any]) -> dict[str, Any]:
        return {
            "email": email,
            "email_hash": email_hash,
            **{key: f[key] or "" for key in _CONTACT_COLUMNS},
            "stage": f["stage"] or Stage.NEW_LEAD.value,
            "country": f["country"],
            "region": region_for(f["country"], self.region_map) if f["country"] else "other",
            "language": f["language"] or "en",
            "tags": f["tags"],
            "custom": f["custom"],
            "source": self.source,
            "frequency_tier": "default",
            "paused_until": None,
            "last_engaged_at": None,
            "created_at": self.now,
            "updated_at": self.now,
        }

    def _update(self, row: Any, f: dict[str, Any]) -> dict[str, Any]:
        # Blank cells never wipe what is stored: a partial re-import only adds information.
        values: dict[str, Any] = {"id": row.id, "updated_at": self.now}
        for key in _CONTACT_COLUMNS:
            values[key] = f[key] or getattr(row, key)
        if f["country"]:
            values["country"] = f["country"]
            values["region"] = region_for(f["country"], self.region_map)
        if f["stage"]:
            values["stage"] = f["stage"]
        if f["language"]:
            values["language"] = f["language"]
        values["tags"] = sorted(set(row.tags or []) | set(f["tags"]))
        values["custom"] = {**(row.custom or {}), **f["custom"]}
        return values

    def _consents(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
        records = []
        for contact_id, f in rows:
            kind = f["consent"] or self.consent_kind
            if kind is None:
                continue
            obtained = f["consent_date"] or self.now
            records.append({
                "contact_id": contact_id,
                "kind": kind,
                "source": f"import:{self.source}"[:200],
                "source_kind": self.consent_source,
                "obtained_at": obtained,
                "ip": "",
                "wording": self.wording,
                "wording_hash": self.wording_hash,
                # CASL s10(10): implied consent runs from the purchase or inquiry, not the import.
                "expires_at": expiry_for(kind, obtained),
                "withdrawn_at": None,
            })
        if records:
            _bulk_insert(self.session, Consent.__table__, records)
            self.result.consents += len(records)

    def _subscriptions(self, contact_ids: list[int]) -> None:
        if self.topic_id is None or not contact_ids:
            return
        # Never touch an existing subscription row: an "unsubscribed" one stays so.
        # A contact this import created has none yet; only the earlier ones are looked up.
        earlier = [cid for cid in contact_ids if cid <= self.max_id_before]
        have = {cid for (cid,) in _select_in(
            self.session, "SELECT contact_id FROM subscriptions WHERE topic_id = {topic} AND contact_id {in_keys}",
            earlier, topic=self.topic_id)}
        rows = [
            {"contact_id": cid, "topic_id": self.topic_id, "status": "subscribed",
             "created_at": self.now, "updated_at": self.now}
            for cid in dict.fromkeys(contact_ids) if cid not in have
        ]
        if rows:
            _bulk_insert(self.session, Subscription.__table__, rows)


def _select_in(session: Session, sql: str, keys: list[Any], **fixed: Any) -> list[tuple[Any, ...]]:
    """Rows of `sql` for a list of keys, on the DB-API cursor.

    `{in_keys}` becomes `IN (?, ?, …)` on SQLite and `= ANY(%s)` with one array on PostgreSQL
    (psycopg would parse a query with 2,000 placeholders each time); `{name}` is a fixed value.
    """
    if not keys:
        return []
    connection = session.connection()
    cursor = driver_cursor(connection)
    if connection.dialect.name == "postgresql":
        query = sql.format(in_keys="= ANY(%s)", **{name: "%s" for name in fixed})
        cursor.execute(query, (*fixed.values(), list(keys)))
    else:
        query = sql.format(in_keys=f"IN ({', '.join('?' * len(keys))})", **{name: "?" for name in fixed})
        cursor.execute(query, (*fixed.values(), *keys))
    return cursor.fetchall()


def _bulk_insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows of one shape at driver speed: COPY on PostgreSQL, executemany on SQLite.

    SQLAlchemy's per-row parameter processing costs more than the database's own work here;
    values are converted once per column with the same processors SQLAlchemy would use.
    """
    connection = session.connection()
    dialect = connection.dialect
    names = list(rows[0])
    columns = [table.c[name] for name in names]
    if dialect.name == "postgresql":
        # COPY's text format parses each value as its column's type; JSON goes in as text.
        json_cols = [i for i, c in enumerate(columns) if isinstance(c.type, JSON)]
        memo: dict[Any, Any] = {}
        raw = connection.connection.driver_connection
        with raw.cursor() as cur:
            with cur.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                for row in rows:
                    values = [row[n] for n in names]
                    for i in json_cols:
                        values[i] = _convert(values[i], json.dumps, memo)
                    copy.write_row(values)
        return
    # Column by column: most values of a processed column repeat (the import time, empty
    # tags and custom fields), so each distinct value is converted once.
    values = []
    for name, column in zip(names, columns):
        cells = [row[name] for row in rows]
        process = column.type._cached_bind_processor(dialect)
        if process is not None:
            memo: dict[Any, Any] = {}
            cells = [_convert(cell, process, memo) for cell in cells]
        values.append(cells)
    tuples = list(zip(*values))
    marks = ", ".join("?" for _ in names)
    connection.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})", tuples)


def _convert(value: Any, process: Callable[[Any], Any], memo: dict[Any, Any]) -> Any:
    if isinstance(value, list):
        key: Any = ("list", *value)
    elif isinstance(value, dict):
        key = ("dict", *value.items())
    else:
        key = value
    try:
        return memo[key]
    except KeyError:
        converted = memo[key] = process(value)
        return converted
    except TypeError:  # an unhashable value inside a list or dict
        return process(value)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


__all__ = ["ImportFileError", "ImportResult", "RowError", "Topic", "default_rejected_path",
           "import_contacts"]
