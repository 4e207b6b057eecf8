"""What an import reports: the counts of a dry run with bad rows, and errors as translatable templates."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from sendwell.contacts.importer import import_contacts
from sendwell.db.models import Contact

PEPPER = b"test-pepper-0123456789"
GOOD = "".join(f"buyer{n}@lighting{n}.example,DE\n" for n in range(7))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "buyers.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_dry_run_with_bad_rows_counts_the_good_rows_as_new(session, tmp_path) -> None:
    path = write(tmp_path, "email,country\n" + GOOD + "not-an-address,DE\n")
    result = import_contacts(session, path=path, pepper=PEPPER, dry_run=True, rejected_path=False)
    assert (result.rows, result.created, result.rejected, result.written) == (8, 7, 1, False)
    assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_row_errors_carry_a_template_and_its_values(session, tmp_path) -> None:
    path = write(tmp_path, "email,country,language,consent_date\n"
                           "anna@licht.example,Atlantis,xx-yy-zz,2026/13/45\n"
                           "bad-address,DE,de,\n")
    result = import_contacts(session, path=path, pepper=PEPPER, dry_run=True, rejected_path=False)
    by_field = {e.field: e for e in result.errors}
    country = by_field["country"]
    assert country.template == "unknown country %(value)r (use an ISO code such as DE or a name)"
    assert country.params == {"value": "Atlantis"}
    assert country.message == country.template % country.params
    assert by_field["consent_date"].template == "cannot read date %(value)r (use YYYY-MM-DD)"
    assert by_field["email"].template == "%(value)s is not a valid address: it has no @ sign."
    assert by_field["email"].message == "'bad-address' is not a valid address: it has no @ sign."
    assert all(e.message == e.template % e.params for e in result.errors)
