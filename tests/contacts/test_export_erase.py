"""Export (CSV and XLSX, suppressed left out, formulas neutralised) and GDPR erasure."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import func, select

from sendwell.cli.main import cli, register_commands
from sendwell.contacts.importer import import_contacts
from sendwell.contacts.service import erase_contact, export_contacts
from sendwell.contacts.tabular import neutralise
from sendwell.db.models import Consent, Contact, Event, Send, Subscription, Suppression
from sendwell.optout.service import unsubscribe_contact
from sendwell.suppression.service import hash_email
from tests.helpers import make_contact

register_commands()
PEPPER = b"test-pepper-0123456789"


@pytest.mark.parametrize("value", ["=1+1", "+49 170", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_formula_starts_are_neutralised(value) -> None:
    assert neutralise(value) == "'" + value
    assert neutralise("plain") == "plain" and neutralise("") == ""


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_leaves_suppressed_out_and_neutralises(session, tmp_path, fmt) -> None:
    """COMPLIANCE rule 17, and OWASP CSV injection."""
    make_contact(session, email="evil@x.example", company='=HYPERLINK("http://evil.example","Click")',
                 job_title="@SUM(1+1)", tags=["-fair"])
    leaver = make_contact(session, email="leaver@x.example")
    make_contact(session, email="kept@x.example", company="Kept GmbH")
    unsubscribe_contact(session, contact_id=leaver.id, method="one_click")
    session.flush()
    out = tmp_path / f"export.{fmt}"
    assert export_contacts(session, path=out) == 2
    if fmt == "csv":
        with out.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
    else:
        sheet = load_workbook(out).active
        values = [[c.value for c in row] for row in sheet.iter_rows()]
        rows = [dict(zip(values[0], v)) for v in values[1:]]
        assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
    by_email = {r["email"]: r for r in rows}
    assert set(by_email) == {"evil@x.example", "kept@x.example"}
    assert by_email["evil@x.example"]["company"] == '\'=HYPERLINK("http://evil.example","Click")'
    assert by_email["evil@x.example"]["job_title"] == "'@SUM(1+1)"
    assert by_email["evil@x.example"]["tags"] == "'-fair"
    assert not list(tmp_path.glob("*.tmp"))


def test_erasure_keeps_only_the_hash(session, tmp_path) -> None:
    """GDPR Art 17, with the opt-out surviving (ICO: suppress, do not delete)."""
    path = tmp_path / "c.csv"
    path.write_text("email,first_name,company\nanna@licht.example,Anna,Licht GmbH\nbob@x.example,Bob,X\n")
    import_contacts(session, path=path, pepper=PEPPER, consent="express", topic="led")
    anna = session.scalar(select(Contact).where(Contact.email == "anna@licht.example"))
    unsubscribe_contact(session, contact_id=anna.id, method="page", ip="203.0.113.9", user_agent="Firefox")
    session.add(Event(kind="unsubscribe_reason", contact_id=anna.id,
                      data={"reason": "other", "text": "I am Anna from Licht GmbH"}))
    session.flush()
    anna_id = anna.id
    result = erase_contact(session, email="Anna@Licht.example", pepper=PEPPER)
    assert result.found and result.suppression_reason == "unsubscribe"  # the first reason stays
    assert session.get(Contact, anna_id) is None
    assert session.scalar(select(func.count()).select_from(Consent).where(Consent.contact_id == anna_id)) == 0
    assert session.scalar(select(func.count()).select_from(Subscription).where(Subscription.contact_id == anna_id)) == 0
    events = session.scalars(select(Event).where(Event.kind.in_(["unsubscribed", "unsubscribe_reason"]))).all()
    assert len(events) == 2
    assert all(e.contact_id is None and e.ip == "" and e.user_agent == "" for e in events)
    assert all("text" not in e.data for e in events) and any(e.data.get("reason") == "other" for e in events)
    # Nothing of Anna is left in any text column of the database.
    dump = json.dumps([[str(v) for v in row] for model in (Contact, Consent, Event, Suppression)
                       for row in session.execute(select(model.__table__)).all()])
    assert "anna" not in dump.lower() and "licht" not in dump.lower() and "203.0.113.9" not in dump
    assert session.scalar(select(Suppression.email_hash).where(
        Suppression.email_hash == hash_email(PEPPER, "anna@licht.example"))) is not None

    # Re-importing the address after erasure keeps it out.
    again = import_contacts(session, path=path, pepper=PEPPER, consent="express")
    assert (again.suppressed, again.updated, again.created) == (1, 1, 0)
    assert session.scalar(select(Contact).where(Contact.email == "anna@licht.example")) is None


def test_erasure_covers_every_spelling_of_the_address(session) -> None:
    make_contact(session, email="Mixed.Case@x.example")
    assert erase_contact(session, email="MIXED.case@X.example", pepper=PEPPER).found
    assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_erasing_an_unknown_address_still_suppresses_it(session) -> None:
    result = erase_contact(session, email="ghost@nowhere.example", pepper=PEPPER)
    assert not result.found and result.suppression_reason == "erased"
    make_contact(session, email="ghost@nowhere.example")
    assert session.scalar(select(Suppression.reason).where(
        Suppression.email_hash == hash_email(PEPPER, "ghost@nowhere.example"))) == "erased"


def test_erasure_removes_sends_but_keeps_campaign(session) -> None:
    from sendwell.db.models import Campaign

    contact = make_contact(session, email="s@x.example")
    campaign = Campaign(name="c", subject="s", html="<p>x</p>")
    session.add(campaign)
    session.flush()
    session.add(Send(campaign_id=campaign.id, contact_id=contact.id))
    session.flush()
    erase_contact(session, email="s@x.example", pepper=PEPPER)
    assert session.scalar(select(func.count()).select_from(Send)) == 0
    assert session.get(Campaign, campaign.id) is not None


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str | None]:
    return {"SENDWELL_DATA_DIR": str(tmp_path / "data"), "SENDWELL_DATABASE_URL": db_url,
            "SENDWELL_SECRET_KEY": None, "SENDWELL_HASH_PEPPER": None, "SENDWELL_SMTP_URL": None,
            "SENDWELL_QUEUE_URL": None, "SENDWELL_REGION_MAP": "HK=cn"}


def run(env, *args: str, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_cli_import_export_erase_vocabulary(env, tmp_path) -> None:
    run(env, "init", "--json")
    src = tmp_path / "in.csv"
    src.write_text("Mail Address,Firma,Land,行业\nkim@firma.example,Firma AG,Hong Kong,照明\n"
                   "bad-address,X,DE,lighting\n", encoding="utf-8")
    failed = run(env, "contacts", "import", str(src), "--map", "Mail Address=email,Firma=company,Land=country",
                 "--consent", "express", ok=False)
    assert failed.exit_code != 0 and "row 3, field 'email'" in failed.output and "nothing was imported" in failed.output
    assert (tmp_path / "in.rejected.csv").exists()
    out = json.loads(run(env, "contacts", "import", str(src), "--map", "Mail Address=email,Firma=company,Land=country",
                         "--consent", "express", "--skip-invalid", "--json").output)
    assert (out["created"], out["rejected"], out["consents_recorded"]) == (1, 1, 1)
    run(env, "contacts", "vocabulary", "add", "industry", "pet-supplies", "--alias", "宠物用品")
    listed = json.loads(run(env, "contacts", "vocabulary", "list", "industry", "--json").output)
    assert {"value": "pet-supplies", "builtin": False, "aliases": ["宠物用品"], "label": "pet-supplies"} in listed
    exported = json.loads(run(env, "contacts", "export", str(tmp_path / "out.xlsx"), "--json").output)
    assert exported["exported"] == 1
    sheet = load_workbook(tmp_path / "out.xlsx").active
    row = [c.value for c in list(sheet.iter_rows())[1]]
    assert (row[0], row[3]) == ("kim@firma.example", "Firma AG") and "cn" in row
    erased = json.loads(run(env, "contacts", "erase", "kim@firma.example", "--json").output)
    assert erased["found"] and erased["suppression_reason"] == "erased"
    again = json.loads(run(env, "contacts", "import", str(src), "--map", "Mail Address=email,Firma=company,Land=country",
                           "--skip-invalid", "--json").output)
    assert again["kept_out_suppressed"] == 1 and again["created"] == 0
